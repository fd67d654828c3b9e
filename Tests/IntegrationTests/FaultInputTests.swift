import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 7, "Bad input": each refused with one line and an exit status ≠ 0, and nothing
/// changed. (Bad snapshot names on every path, and a foreign QEMU holding the image, are
/// SnapshotRefusalTests, SnapshotEntryPointTests and SnapshotFaultTests.)
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct FaultInputTests {
    /// Every command that reads the lab, offline. `boot` runs under timeout(1): should it not
    /// be refused, it must not hang the test.
    static let commands: [[String]] = [
        ["snapshot", "list"], ["snapshot", "create", "x"], ["snapshot", "restore", "keep"], ["snapshot", "delete", "keep"],
        ["info"], ["check"], ["check", "--repair"], ["boot"],
    ]

    func run(_ lab: TestLab, _ args: [String]) throws -> Spawner.Output {
        try Spawner.run("timeout", ["60", labrunBinary, "--lab", lab.root] + args)
    }

    /// What "nothing changed" compares: the lab's files, and no supervisor left behind.
    func stamps(_ lab: TestLab) -> [String] {
        [lab.fileStamp(lab.runtime), lab.fileStamp(lab.root + "/lab.conf"), lab.fileStamp(lab.root + "/" + Lab.undoName),
         String(fileExists(lab.root + "/.labrun/control.sock")), String(fileExists(lab.root + "/.labrun/pid"))]
    }

    @Test(arguments: [
        ("no equals sign", Array("mem = 256\nkernel\n".utf8)),
        ("truncated mid-value", Array("# labrun lab\narch = x86_64\nkernel = ".utf8)),
        ("truncated mid-key", Array("mem = 256\ncp".utf8)),
        ("binary garbage", (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }),
        ("a NUL byte", Array("mem = 256\0\n".utf8)),
        ("invalid UTF-8", [0x6D, 0x65, 0x6D, 0x20, 0x3D, 0x20, 0xFF, 0xFE, 0x0A]),
        ("a bad value", Array("mem = lots\n".utf8)),
        ("an unknown key", Array("memory = 256\n".utf8)),
        ("one huge line", Array(repeating: UInt8(ascii: "a"), count: 300_000)),
    ])
    func corruptLabConfIsRefusedByEveryCommand(_ what: String, _ content: [UInt8]) throws {
        let lab = try TestLab()
        try lab.ok(["snapshot", "create", "keep"])
        let fd = try FileDescriptor.open(lab.root + "/lab.conf", O_WRONLY | O_TRUNC)
        try fd.writeAll(content)
        fd.close()
        let before = stamps(lab)
        for args in Self.commands + [["status"], ["stop"], ["reset", "--yes"], ["exec", "--", "true"]] {
            let r = try run(lab, args)
            expectOneLineRefusal(r, "\(what): labrun \(args.joined(separator: " "))")
            #expect(r.stderr.contains("lab.conf"), "\(what): the refusal does not name lab.conf: \(r.stderr)")
        }
        #expect(stamps(lab) == before, "\(what): something changed")
    }

    @Test func missingImagesAreRefusedByEveryCommand() throws {
        let lab = try TestLab()
        // No runtime layer yet: every command but boot (which creates it) says so.
        removeFile(lab.runtime)
        for args in Self.commands where args != ["boot"] {
            let r = try run(lab, args)
            expectOneLineRefusal(r, "labrun \(args.joined(separator: " ")) without a runtime layer")
            #expect(r.stderr.contains("does not exist yet"), "\(r.stderr)")
        }
        #expect(!fileExists(lab.runtime))
        // No golden image either (lab.conf points where there is none).
        try "golden = \(lab.root)/gone.qcow2\nkernel = \(repositoryRoot)/guest-build/vmlinux\ninitrd = \(repositoryRoot)/guest-build/initrd.img\n"
            .write(toFile: lab.root + "/lab.conf")
        let before = stamps(lab)
        for args in Self.commands + [["reset", "--yes"]] {
            let r = try run(lab, args)
            expectOneLineRefusal(r, "labrun \(args.joined(separator: " ")) without images")
            #expect(r.stderr.contains("make guest"), "\(r.stderr)")
        }
        #expect(stamps(lab) == before && !fileExists(lab.runtime))
    }

    /// The runtime layer's backing chain with a file missing (moved away, at any depth): every
    /// command refuses naming the missing file, the image is untouched; put back, all works.
    @Test func runtimeWhoseBackingFileIsMissingOrMoved() throws {
        let lab = try TestLab()
        // runtime → mid.qcow2 → low.qcow2 → the golden image.
        let dir = parentDirectory(lab.root)
        let low = dir + "/low.qcow2", mid = dir + "/mid.qcow2"
        for (image, backing) in [(low, repositoryRoot + "/" + Lab.goldenName), (mid, low), (lab.runtime, mid)] {
            let r = try Spawner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, image])
            try #require(r.status == .exited(0), "\(r.stderr)")
        }
        try lab.ok(["snapshot", "create", "keep"])
        for missing in [mid, low] {
            try renameFile(missing, missing + ".moved")
            let before = stamps(lab)
            for args in Self.commands {
                let r = try run(lab, args)
                expectOneLineRefusal(r, "labrun \(args.joined(separator: " ")) with \(missing) moved")
                #expect(r.stderr.contains("backing file \(missing)") && r.stderr.contains("missing"), "\(r.stderr)")
            }
            #expect(stamps(lab) == before, "the runtime image changed while its backing file was missing")
            try renameFile(missing + ".moved", missing)
        }
        #expect(try lab.ok(["snapshot", "list"]).contains("keep"))
        #expect(try lab.cli(["check"]).status == .exited(0))
    }

    @Test(arguments: [("raw garbage", 1 << 20), ("an empty file", 0), ("a short file", 7)])
    func aFileThatIsNotQcow2AtTheRuntimePath(_ what: String, _ size: Int) throws {
        let lab = try TestLab()
        var x: UInt32 = 2463534242
        let fd = try FileDescriptor.open(lab.runtime, O_WRONLY | O_TRUNC)
        // xorshift32: reproducible garbage.
        try fd.writeAll((0..<size).map { _ in x ^= x << 13; x ^= x >> 17; x ^= x << 5; return UInt8(truncatingIfNeeded: x) })
        fd.close()
        let before = stamps(lab)
        for args in Self.commands {
            let r = try run(lab, args)
            expectOneLineRefusal(r, "labrun \(args.joined(separator: " ")) on \(what)")
            #expect(r.stderr.contains("not a qcow2 image") && r.stderr.contains("labrun reset --yes"), "\(what): \(r.stderr)")
        }
        #expect(stamps(lab) == before, "\(what) was changed")
    }

    /// Broken messages written by hand to a running supervisor's control socket: each gets one
    /// error line (or, past the size limit, the line and a closed connection); the supervisor
    /// keeps running: status answers and the guest responds.
    @Test func brokenControlMessagesLeaveTheSupervisorRunning() throws {
        let lab = try TestLab()
        let session = try lab.bootToShell()
        let socket = try #require(try lab.runningStatus().status?.runDirectory) + "/control.sock"
        let cases: [(String, [UInt8], String)] = [
            ("malformed JSON", Array("{\"v\":1,\"op\":\"status\"\n".utf8), "malformed control request"),
            ("not JSON at all", Array("hello supervisor\n".utf8), "malformed control request"),
            ("binary", [0xFF, 0xFE, 0x00, 0x01, 0x0A], "malformed control request"),
            ("an empty line", [0x0A], "malformed control request"),
            ("a JSON array", Array("[1,2,3]\n".utf8), "malformed control request"),
            ("unknown version", Array("{\"v\":99,\"op\":\"status\"}\n".utf8), "unsupported control protocol version 99"),
            ("no version", Array("{\"op\":\"status\"}\n".utf8), "unsupported control protocol version (none)"),
            ("unknown op", Array("{\"v\":1,\"op\":\"format-disk\"}\n".utf8), "unknown operation"),
            ("wrong field type", Array("{\"v\":1,\"op\":\"snapshot.create\",\"name\":[1]}\n".utf8), "wrong field types"),
            ("shell metacharacters in a name", Array("{\"v\":1,\"op\":\"snapshot.create\",\"name\":\"$(touch /tmp/pwned);x\"}\n".utf8), "shell character"),
            ("1 MiB without a newline", Array(repeating: UInt8(ascii: "{"), count: 1 << 20), "longer than 65536 bytes"),
        ]
        for (what, bytes, expected) in cases {
            let (got, closed) = try rawControlExchange(socket, bytes)
            #expect(got.count == 1, "\(what): \(got.count) lines: \(got)")
            let response = got.first.flatMap { try? JSONDecoder().decode(ControlResponse.self, from: Data($0.utf8)) }
            #expect(response?.ok == false && response?.final == true && response?.message?.contains(expected) == true, "\(what): \(got)")
            #expect(closed, "\(what): the supervisor kept the connection open")
        }
        #expect(!fileExists("/tmp/pwned"))
        // A client that connects, says nothing and goes away, and one that half-sends.
        do { let fd = try UnixSocket.connect(path: socket); fd.close() }
        do { let fd = try UnixSocket.connect(path: socket); try fd.writeAll("{\"v\":1,"); fd.close() }

        let st = try lab.runningStatus()
        #expect(st.running && st.status?.runState == "running")
        #expect(lines(try session.shell("echo alive")).contains("alive"))
        let exec = try lab.exec("echo alive")
        #expect(exec.stdout == "alive\n")
        try lab.ok(["snapshot", "create", "still-works"])
        try session.quit()
    }
}

/// A lab made by `labrun init` refers to another lab's golden image: if that image is rebuilt,
/// this lab's runtime layer no longer matches it and must not boot through it.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct GoldenIdentityTests {
    @Test func aRebuiltGoldenImageIsRefusedUntilReset() throws {
        let source = try TestLab(name: "source")
        // The source lab gets a golden image of its own, so rebuilding it touches nothing shared.
        let golden = source.root + "/" + Lab.goldenName
        #expect(try Spawner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", repositoryRoot + "/" + Lab.goldenName, golden]).status.isSuccess)
        for f in ["vmlinux", "initrd.img"] {
            makeDirectory(source.root + "/guest-build")
            #expect(try Spawner.run("cp", [repositoryRoot + "/guest-build/" + f, source.root + "/guest-build/" + f]).status.isSuccess)
        }
        try "".write(toFile: source.root + "/lab.conf")
        let made = parentDirectory(source.root) + "/made"
        #expect(try labrun(["--lab", source.root, "init", made]).status == .exited(0))
        #expect(readSmallFile(made + "/lab.conf").map { String(decoding: $0, as: UTF8.self) }?.contains("golden_id = ") == true)
        #expect(try labrun(["--lab", made, "info"]).status == .exited(0))
        // "Rebuild" the golden image: a new file at the same path.
        #expect(try Spawner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", repositoryRoot + "/" + Lab.goldenName, golden + ".new"]).status.isSuccess)
        try renameFile(golden + ".new", golden)
        // (boot runs the same check; `info` and `list` are used here because a boot that wrongly
        // went ahead would start a VM instead of returning.)
        for command in [["info"], ["snapshot", "list"]] {
            let refused = try labrun(["--lab", made] + command)
            #expect(refused.status == .exited(1))
            #expect(refused.stderr.contains("was rebuilt") && refused.stderr.contains("labrun reset --yes"), "\(refused.stderr)")
            #expect(lines(refused.stderr).count == 1)
        }
        // reset makes a fresh layer on the new golden image and records it; the old one is the undo step.
        #expect(try labrun(["--lab", made, "reset", "--yes"]).status == .exited(0))
        #expect(try labrun(["--lab", made, "info"]).status == .exited(0))
        #expect(fileExists(made + "/" + Lab.undoName))
    }
}
