import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 14 §1: a module built against the lab's kernel, loaded into the running guest and
/// unloaded; a module that cannot load says why. Needs the kernel's headers (installed by
/// `labrun module build` as root) and make/gcc.
@Suite(.serialized, .enabled(if: integrationAvailable && findExecutable("make") != nil && findExecutable("gcc") != nil, "needs QEMU, the guest, make and gcc"))
struct ModuleTests {
    /// A copy of examples/NAME in a temporary directory (the build leaves its products there).
    func example(_ name: String, in lab: TestLab) throws -> String {
        let dir = parentDirectory(lab.root) + "/" + name
        let r = try Spawner.run("cp", ["-a", repositoryRoot + "/examples/" + name, dir])
        try #require(r.status == .exited(0), "\(r.stderr)")
        return dir
    }

    @Test func buildLoadUseAndUnloadTheExampleModule() throws {
        let lab = try TestLab()
        let hello = try example("hello", in: lab)
        let built = try lab.cli(["module", "build", hello])
        try #require(built.status == .exited(0), "module build: \(built.stderr.suffix(800))")
        #expect(fileExists(hello + "/hello.ko"))

        #expect(try lab.cli(["boot", "--detach"]).status == .exited(0))
        let loaded = try lab.cli(["module", "load", hello, "whom=integration", "times=2"])
        #expect(loaded.status == .exited(0), "\(loaded.stderr)")
        #expect(loaded.stdout.contains("hello: loaded, greeting integration"), "the kernel's messages: \(loaded.stdout)")
        #expect(try lab.exec("cat /proc/hello").stdout == "hello, integration\nhello, integration\n")
        #expect(try lab.exec("dmesg | grep -c 'hello: loaded'").stdout.trimmed == "1")

        let unloaded = try lab.cli(["module", "unload", hello])
        #expect(unloaded.status == .exited(0) && unloaded.stdout.contains("hello: unloaded"), "\(unloaded.stdout)\(unloaded.stderr)")
        #expect(try lab.exec("test -e /proc/hello; echo $?").stdout.trimmed == "1")

        // A module with an unknown symbol builds (a warning) and does not load: the kernel's reason.
        let broken = try example("broken", in: lab)
        #expect(try lab.cli(["module", "build", broken]).status == .exited(0))
        let refused = try lab.cli(["module", "load", broken])
        #expect(refused.status != .exited(0))
        #expect(refused.stderr.contains("Unknown symbol labrun_no_such_function"), "\(refused.stderr)")
        _ = try lab.cli(["stop"])
    }

    @Test func badModuleArgumentsAreOneLineErrors() throws {
        let lab = try TestLab()
        let notAModule = try lab.cli(["module", "build", lab.root])
        expectOneLineRefusal(notAModule, "module build of a lab directory")
        #expect(notAModule.stderr.contains("Kbuild"))
        let stopped = try lab.cli(["module", "load", repositoryRoot + "/examples/hello/hello.ko"])
        expectOneLineRefusal(stopped, "module load of a missing .ko")
        #expect(try lab.cli(["module", "frobnicate", "x"]).status == .exited(64))
    }

    /// `labrun run -- CMD` (issue 14 §4): boots, runs CMD, stops, exits with CMD's status; a
    /// panic gives 125; the share is at /mnt (git bisect run … -- /mnt/test.sh).
    @Test func runIsATestRunner() throws {
        let lab = try TestLab()
        let three = try lab.cli(["run", "--", "sh", "-c", "echo out-of-guest; exit 3"])
        #expect(three.status == .exited(3), "\(three.stderr)")
        #expect(three.stdout == "out-of-guest\n")
        #expect(try lab.cli(["status"]).stdout.hasPrefix("stopped"), "run left the VM running")
        try "#!/bin/sh\necho from-the-share\nexit 0\n".write(toFile: lab.root + "/shared/test.sh")
        chmod(lab.root + "/shared/test.sh", 0o755)
        let script = try lab.cli(["run", "--reset", "--", "/mnt/test.sh"])
        #expect(script.status == .exited(0) && script.stdout == "from-the-share\n", "\(script.stdout)\(script.stderr)")
        let panic = try lab.cli(["run", "--", "sh", "-c", "echo c > /proc/sysrq-trigger"])
        #expect(panic.status == .exited(ExitReason.panicExitCode), "\(panic.stderr)")
        #expect(try lab.cli(["status"]).stdout.hasPrefix("stopped"))
    }

    /// gdb that names things (§3): `bt` shows function names, and a breakpoint on a loaded
    /// module's function is hit when the guest calls it, with the function's name.
    @Test(.enabled(if: findExecutable("gdb") != nil && findExecutable("as") != nil, "needs gdb and binutils"))
    func gdbNamesFunctionsAndHitsABreakpointInAModule() throws {
        let lab = try TestLab()
        let hello = try example("hello", in: lab)
        try #require(try lab.cli(["module", "build", hello]).status == .exited(0))
        let port = freeLoopbackPort()
        #expect(try lab.cli(["boot", "--detach", "--gdb-port", String(port)]).status == .exited(0))
        #expect(try lab.cli(["module", "load", hello]).status == .exited(0))

        let bt = try lab.cli(["gdb", "--", "-batch", "-ex", "bt"])
        let frames = lines(bt.stdout).filter { $0.hasPrefix("#") }
        let named = frames.filter { $0.contains(" in ") && !$0.contains(" in ?? ") }
        #expect(!frames.isEmpty && named.count * 2 >= frames.count, "bt names too few functions: \(bt.stdout)\(bt.stderr)")

        // A breakpoint in the module; the guest reads /proc/hello until gdb reports the hit.
        var config = SpawnConfiguration(executable: labrunBinary, arguments: ["--lab", lab.root, "gdb", "--", "-batch",
            "-ex", "break hello_show", "-ex", "continue", "-ex", "bt 1"])
        let out = try FileDescriptor.pipe()
        config.standardInput = .devNull
        config.standardOutput = .descriptor(out.writeEnd)
        config.standardError = .descriptor(out.writeEnd)
        let gdb = try Spawner.spawn(config)
        out.writeEnd.close()
        defer { out.readEnd.close() }
        try out.readEnd.setNonBlocking(true)
        var text = ""
        let deadline = monotonicSeconds() + 60
        var poked: ChildProcess?
        while monotonicSeconds() < deadline && gdb.poll() == nil {
            while case .success(let b) = out.readEnd.read(), !b.isEmpty { text += String(decoding: b, as: UTF8.self) }
            if text.contains("Breakpoint 1 at"), poked == nil || poked?.poll() != nil {
                var c = SpawnConfiguration(executable: labrunBinary, arguments: ["--lab", lab.root, "exec", "--", "cat", "/proc/hello"])
                c.standardInput = .devNull; c.standardOutput = .devNull; c.standardError = .devNull
                poked = try Spawner.spawn(c)
            }
            sleepSeconds(0.2)
        }
        while case .success(let b) = out.readEnd.read(), !b.isEmpty { text += String(decoding: b, as: UTF8.self) }
        #expect(text.contains("Breakpoint 1,") && text.contains("hello_show"), "gdb said: \(text.suffix(1500))")
        _ = gdb.wait(upTo: 10)
        _ = poked?.wait(upTo: 10)
        _ = try lab.cli(["stop"])
    }
}
