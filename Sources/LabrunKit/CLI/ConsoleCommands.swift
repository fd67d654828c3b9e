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
        let a = try ArgumentSpec(flags: ["follow", "f", "timestamps", "reports"], options: ["n", "boot", "since", "report"]).parse(args, command: "log")
        let controller = try context.controller()
        if a.flag("reports") || a.option("report") != nil {
            return try crashReports(a, controller)
        }
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

extension LabrunCLI {
    /// `labrun log --reports` (the list) and `--report N` (one in full).
    static func crashReports(_ a: ParsedArguments, _ controller: LabController) throws(LabrunError) -> Int32 {
        let reader = ConsoleLogReader(path: controller.lab.consoleLogPath, files: controller.lab.config.logFiles)
        let reports = reader.reports()
        let stamp = { (t: Double) -> String in
            let c = CalendarTime.local(Int64(t))
            return "\(c.date(separator: "-")) \(c.time(separator: ":"))"
        }
        if let n = a.option("report") {
            guard let i = Int(n) else { throw .usage("--report \(n): expected a number from `labrun log --reports`") }
            guard (1...max(1, reports.count)).contains(i), i <= reports.count else {
                throw LabrunError(reports.isEmpty ? "no kernel crash reports in the console log" : "no report \(i): `labrun log --reports` lists 1 to \(reports.count)")
            }
            let r = reports[i - 1]
            say("report \(i): \(r.title)")
            say("kind \(r.kind.rawValue)\(r.isPanic ? ", the kernel panicked" : ""); first at \(stamp(r.firstSeen))" + (r.count > 1 ? ", \(r.count) times, the last at \(stamp(r.lastSeen))" : "") + (r.truncated ? "; cut short" : ""))
            say("")
            try? FileDescriptor.standardOutput.writeAll(r.text.hasSuffix("\n") ? r.text : r.text + "\n")
            return 0
        }
        guard !reports.isEmpty else {
            say("no kernel crash reports in the console log")
            return 0
        }
        for (i, r) in reports.enumerated() {
            say("\(String(i + 1).padding(toLength: 4))\(stamp(r.firstSeen))  \(r.title)" + (r.count > 1 ? " (\(r.count) times)" : "") + (r.isPanic && r.kind != .panic ? " [panic]" : ""))
        }
        return 0
    }
}
