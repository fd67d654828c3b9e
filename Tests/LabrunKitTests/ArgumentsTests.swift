import Testing
@testable import LabrunKit

@Suite struct ArgumentsTests {
    let spec = ArgumentSpec(flags: ["json", "force"], options: ["mem"], optionalValueOptions: ["shared"], positionals: 0...1)

    @Test func flagsOptionsAndPositionals() throws {
        let a = try spec.parse(["--json", "--mem", "512", "name"], command: "t")
        #expect(a.flag("json") && !a.flag("force"))
        #expect(a.option("mem") == "512")
        #expect(a.positionals == ["name"])
        #expect(try spec.parse(["--mem=1G"], command: "t").option("mem") == "1G")
    }

    @Test func optionalValue() throws {
        #expect(try spec.parse(["--shared"], command: "t").option("shared") == "")
        #expect(try spec.parse(["--shared", "dir"], command: "t").option("shared") == "dir")
    }

    @Test(arguments: [["--bogus"], ["-x"], ["--json=1"], ["--mem"], ["a", "b"]])
    func usageErrorsExit64(_ args: [String]) {
        #expect(throws: LabrunError.self) { try spec.parse(args, command: "t") }
        do { _ = try spec.parse(args, command: "t") } catch { #expect(error.exitCode == 64) }
    }

    @Test func cliExitCodes() {
        #expect(LabrunCLI.main(["--help"]) == 0)
        #expect(LabrunCLI.main(["boot", "--help"]) == 0)
        #expect(LabrunCLI.main(["boot", "--no-such-flag"]) == 64)
        #expect(LabrunCLI.main(["no-such-command"]) == 64)
        #expect(LabrunCLI.main(["snapshot", "create"]) == 64)
    }
}

@Suite struct LabConfigTests {
    @Test func parsesKeysAndComments() throws {
        let c = try LabConfig.parse("# lab\nmem = 1G\ncpus=2\naccel = tcg\nappend = console=ttyS0 quiet nokaslr\n\n")
        #expect(c.memoryMiB == 1024 && c.cpus == 2 && c.accel == .tcg)
        #expect(c.append == "console=ttyS0 quiet nokaslr")
    }

    @Test(arguments: ["mem = lots", "cpus = 0", "nonsense", "colour = blue", "accel = xen", "gdb_port = 70000", "kernel ="])
    func refusesBadLinesNamingThem(_ text: String) {
        #expect(throws: LabrunError.self) { try LabConfig.parse("mem = 256\n" + text) }
        do { _ = try LabConfig.parse("mem = 256\n" + text, file: "lab.conf") } catch { #expect(error.message.hasPrefix("lab.conf:2:")) }
    }

    @Test func windowsLineEndings() throws {
        let c = try LabConfig.parse("mem = 512\r\ncpus = 2\r\n")
        #expect(c.memoryMiB == 512 && c.cpus == 2)
    }

    @Test func memorySuffixes() {
        #expect(LabConfig.parseMemory("256") == 256)
        #expect(LabConfig.parseMemory("512M") == 512)
        #expect(LabConfig.parseMemory("2G") == 2048)
        #expect(LabConfig.parseMemory("1GiB") == 1024)
        #expect(LabConfig.parseMemory("10") == nil)
    }
}

@Suite struct QemuCommandTests {
    func command(_ options: BootOptions = BootOptions(), root: String = "/labs/my,lab") throws -> [String] {
        var config = LabConfig()
        config.kernel = "/k/vmlinux"
        config.initrd = "/k/initrd.img"
        let lab = Lab(root: root, config: config)
        return try QemuCommand(lab: lab, options: options, environment: "tcg").arguments(runDirectory: RunDirectory(lab: root))
    }

    @Test func neverUsesQemusOwnMuxOrDefaultMonitor() throws {
        let a = try command()
        let line = a.joined(separator: " ")
        #expect(!line.contains("mon:stdio") && !line.contains("-nographic"))
        #expect(line.contains("-monitor none"))
        #expect(line.contains("stdio,id=console,signal=off"))
        #expect(a.contains("tcg"))
    }

    @Test func commasInPathsAreDoubled() throws {
        let line = try command().joined(separator: " ")
        #expect(line.contains("filename=/labs/my,,lab/debian-runtime.qcow2"))
    }

    @Test func gdbBindsLoopbackOnly() throws {
        var o = BootOptions()
        o.gdbPort = 4321
        let a = try command(o)
        #expect(a.contains("tcp:127.0.0.1:4321"))
        #expect(!a.contains("-s"))
    }

    @Test func sshForwardBindsLoopbackOnly() throws {
        var config = LabConfig()
        config.sshPort = 2222
        let a = try QemuCommand(lab: Lab(root: "/x", config: config), options: BootOptions(), environment: "tcg")
            .arguments(runDirectory: RunDirectory(lab: "/x"))
        #expect(a.contains("user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"))
        #expect(!a.joined(separator: " ").contains("hostfwd=tcp::"))
    }

    @Test func badAccelOverrideIsRefused() {
        #expect(throws: LabrunError.self) {
            try QemuCommand(lab: Lab(root: "/x", config: LabConfig()), options: BootOptions(), environment: "xen")
        }
    }

    @Test func deepLabMovesTheRunDirectory() {
        let deep = "/tmp/" + String(repeating: "d", count: 120)
        let run = RunDirectory(lab: deep)
        #expect(!run.path.hasPrefix(deep))
        #expect(run.controlSocket.utf8.count <= UnixSocket.maxPathLength)
        #expect(RunDirectory(lab: deep).path == run.path)
        #expect(RunDirectory(lab: "/short").path == "/short/.labrun")
    }
}
