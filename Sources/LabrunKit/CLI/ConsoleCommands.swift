import FoundationEssentials

extension LabrunCLI {
    static func attach(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["read-only"]).parse(args, command: "attach")
        let controller = try context.controller()
        if let denied = controller.run.permissionProblem { throw LabrunError(denied) }
        guard controller.isRunning else {
            throw LabrunError("the VM is not running: start it with `labrun boot` (or `make run`)")
        }
        return attachConsole(controller, owner: false, readOnly: a.flag("read-only"))
    }

    static func log(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["follow", "f", "timestamps"], options: ["n", "boot", "since"]).parse(args, command: "log")
        let controller = try context.controller()
        var query = ConsoleLogQuery()
        query.last = try a.int("n", in: 0...10_000_000)
        if let b = a.option("boot") {
            guard let n = Int(b) else { throw .usage("--boot \(b): expected a number (0 the latest boot, -1 the one before, 1 the first)") }
            query.boot = n
        }
        if let s = a.option("since") {
            guard let t = ConsoleLogQuery.parseTime(s, now: wallClockSeconds()) else {
                throw .usage("--since \(s): expected a time like \"2026-12-02 10:30\", \"10:30\", or \"-10m\"")
            }
            query.since = t
        }
        query.timestamps = a.flag("timestamps")
        let reader = ConsoleLogReader(path: controller.lab.consoleLogPath, files: controller.lab.config.logFiles)
        let follow = a.flag("follow") || a.flag("f")
        guard reader.exists || follow else {
            throw LabrunError("no console log yet in \(controller.lab.root): it starts with the next `labrun boot`")
        }
        let out = FileDescriptor.standardOutput
        var lines = reader.lines(query)
        if let n = query.last, lines.count > n { lines = Array(lines.suffix(n)) }
        for line in lines { try? out.writeAll(line) }
        guard follow else { return 0 }
        ignoreBrokenPipeSignal()
        var tail = reader.follower()
        while true {
            for line in tail.next(query) {
                do { try out.writeAll(line) } catch { return 0 }
            }
            sleepSeconds(0.1)
        }
    }
}
