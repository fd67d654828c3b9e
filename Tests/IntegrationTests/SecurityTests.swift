import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 7, "Nobody else gets in": the run directory and every socket in it are the user's
/// alone, the control server refuses other users itself (SO_PEERCRED), nothing listens beyond
/// 127.0.0.1, and awkward lab paths (deeper than a socket path allows, spaces, non-ASCII) work.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct SecurityTests {
    static let sockets = ["control.sock", "console.sock", "qmp.sock", "hmp.sock", "agent.sock"]

    /// One VM with the gdb stub and the shared folder (everything that opens something):
    /// modes of the run directory and its sockets, another user refused twice over, and the
    /// listening sockets of QEMU and labrun.
    @Test func runDirectorySocketsOtherUsersAndListeners() throws {
        let lab = try TestLab()
        let port = freeLoopbackPort()
        let session = try lab.bootToShell(["--debug", "--gdb-port", String(port), "--shared"])
        let st = try #require(try lab.runningStatus().status)
        let run = st.runDirectory

        // 1. Modes: the directory 0700, every socket (and the pid file) without group or
        // other bits, and each socket exactly 0600.
        #expect(permissions(run) == 0o700, "run directory \(run) is \(octal(permissions(run)))")
        #expect(permissions(run + "/pid").map { $0 & 0o077 == 0 } == true)
        for name in Self.sockets {
            let mode = permissions(run + "/" + name)
            #expect(mode.map { $0 & 0o077 == 0 } == true, "\(name) is \(octal(mode)): open to others")
        }
        for name in Self.sockets {
            #expect(permissions(run + "/" + name) == 0o600, "\(name) is \(octal(permissions(run + "/" + name)))")
        }

        // 2. Another user. The path down to the lab stays searchable and lab.conf readable,
        // so only the run directory and the supervisor stand in the way.
        if runningAsRoot {
            let parent = parentDirectory(lab.root)
            chmod(parent, 0o711)
            chmod(lab.root, 0o755)
            chmod(lab.root + "/lab.conf", 0o644)
            defer { chmod(run, 0o700); chmod(run + "/control.sock", 0o600) }
            let env = ["LABRUN_LAB": lab.root]

            // a) Through the 0700 directory the socket is out of reach: labrun refuses in one
            // line, and a raw connect fails with EACCES.
            let list = try runAsNobody(labrunBinary, ["snapshot", "list"], environment: env)
            expectOneLineRefusal(list, "snapshot list as another user")
            #expect(list.stderr.contains("permission denied"), "\(list.stderr)")
            let boot = try runAsNobody(labrunBinary, ["boot"], environment: env)
            expectOneLineRefusal(boot, "boot as another user")
            if fileExists("/usr/bin/python3") {
                let probe = try runAsNobody("/usr/bin/python3", ["-c", """
                    import socket, sys
                    s = socket.socket(socket.AF_UNIX)
                    try:
                        s.connect(sys.argv[1]); print("connected")
                    except OSError as e:
                        print("errno", e.errno)
                    """, run + "/control.sock"])
                #expect(probe.stdout.trimmed == "errno \(EACCES)", "another user reached the socket: \(probe.stdout)\(probe.stderr)")
            }

            // b) With the directory and socket opened up by mistake, the supervisor's own
            // uid check (SO_PEERCRED) refuses: one line, and nothing happens.
            chmod(run, 0o711)
            chmod(run + "/control.sock", 0o666)
            for args in [["snapshot", "list"], ["snapshot", "create", "intruder"], ["stop"], ["exec", "--", "true"]] {
                let r = try runAsNobody(labrunBinary, args, environment: env)
                expectOneLineRefusal(r, "labrun \(args.joined(separator: " ")) as another user")
                #expect(r.stderr.contains("permission denied: this lab's supervisor belongs to another user"), "\(r.stderr)")
            }
            // Nor can another user attach to the console (issue 12).
            chmod(run + "/console.sock", 0o666)
            let attach = try runAsNobody(labrunBinary, ["attach"], environment: env)
            expectOneLineRefusal(attach, "labrun attach as another user")
            #expect(attach.stderr.contains("permission denied"), "\(attach.stderr)")
            chmod(run + "/console.sock", 0o600)
            chmod(run, 0o700)
            chmod(run + "/control.sock", 0o600)
            #expect(try lab.listJSON().isEmpty, "another user's request created a snapshot")
            #expect(try lab.runningStatus().status?.runState == "running")
        }

        // 3. Listeners: every TCP or UDP socket QEMU or labrun listens on is bound to 127.0.0.1.
        let ss = try Spawner.run("ss", ["-Hltunp"])
        try #require(ss.status == .exited(0), "ss failed: \(ss.stderr)")
        let ours = ss.stdout.split(separator: "\n").filter { $0.contains("pid=\(st.qemuPid),") || $0.contains("pid=\(st.supervisorPid),") }
        #expect(ours.contains { $0.contains("127.0.0.1:\(port)") }, "the gdb stub is not listening on 127.0.0.1:\(port): \(ss.stdout)")
        for line in ours {
            let local = line.split(separator: " ", omittingEmptySubsequences: true)[4]
            #expect(local.hasPrefix("127.0.0.1:"), "listening beyond loopback: \(line)")
        }
        // Unix sockets: only the run directory's.
        let unix = try Spawner.run("ss", ["-Hlxp"])
        for line in unix.stdout.split(separator: "\n") where line.contains("pid=\(st.qemuPid),") || line.contains("pid=\(st.supervisorPid),") {
            #expect(line.contains(run + "/"), "a unix socket outside the run directory: \(line)")
        }
        try session.quit()
    }

    /// A lab whose socket paths would not fit in sun_path (> 108 bytes), and one with spaces
    /// and non-ASCII characters: both boot, snapshot and restore live, and stop. The deep
    /// one's supervisor is found whatever $XDG_RUNTIME_DIR the command sees.
    @Test(arguments: [String(repeating: "deep-", count: 22) + "/lab", "my lab ü ñ 実験"])
    func awkwardLabPathsBootSnapshotAndStop(_ name: String) throws {
        let lab = try TestLab(name: name)
        let deep = (lab.root + "/.labrun/control.sock").utf8.count > UnixSocket.maxPathLength
        let session = try lab.bootToShell()
        let st = try #require(try lab.runningStatus().status)
        if deep {
            #expect(!st.runDirectory.hasPrefix(lab.root), "a deep lab's sockets must move: \(st.runDirectory)")
            #expect((st.runDirectory + "/control.sock").utf8.count <= UnixSocket.maxPathLength)
            #expect(permissions(st.runDirectory) == 0o700 && permissions(parentDirectory(st.runDirectory)) == 0o700)
            // A command run with another $XDG_RUNTIME_DIR (ssh, cron, sudo) finds it too.
            let top = "/" + lab.root.split(separator: "/").prefix(2).joined(separator: "/")
            let other = try runWithEnvironment(["XDG_RUNTIME_DIR": top], labrunBinary, ["--lab", lab.root, "status"])
            #expect(other.status == .exited(0) && other.stdout.hasPrefix("running"), "\(other.stdout)\(other.stderr)")
        } else {
            #expect(st.runDirectory == lab.root + "/.labrun")
        }
        try session.shell("M=first")
        try lab.ok(["snapshot", "create", "first"])
        try session.shell("M=second")
        #expect(try lab.ok(["snapshot", "list"]).contains("first"))
        try lab.ok(["snapshot", "restore", "first"])
        #expect(lines(try session.shell("echo M=$M")).contains("M=first"))
        try lab.ok(["stop"])
        session.waitStopped()
        #expect(!fileExists(st.runDirectory + "/control.sock"))
        #expect(try lab.listJSON().map(\.name) == ["first"])
    }
}
