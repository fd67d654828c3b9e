extension LabrunCLI {
    /// `labrun exec [--timeout S] -- CMD ARGS…`: each word is quoted for the guest's shell, so
    /// the guest runs exactly this argv.
    static func exec(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let split = args.firstIndex(of: "--")
        let own = split.map { Array(args[..<$0]) } ?? args
        let words = split.map { Array(args[args.index(after: $0)...]) } ?? []
        let a = try ArgumentSpec(options: ["timeout"]).parse(own, command: "exec")
        guard !words.isEmpty else { throw .usage("exec: no command; usage: labrun exec [--timeout S] -- COMMAND [ARGS...]") }
        let timeout = try a.int("timeout", in: 1...86400) ?? 0
        let controller = try context.controller()
        if let denied = controller.run.permissionProblem { throw LabrunError(denied) }
        guard let fd = ControlClient.connect(controller.run.controlSocket) else {
            throw LabrunError("the VM is not running: start it with `labrun boot` (or `make run`) first")
        }
        let r = try controller.send(ControlRequest(.exec, command: words.map(shellQuoted).joined(separator: " "), timeout: timeout), over: fd) { progress in
            if let out = progress.stdout { try? FileDescriptor.standardOutput.writeAll(out) }
            if let err = progress.stderr { try? FileDescriptor.standardError.writeAll(err) }
        }
        if let m = r.message { printError(m) }
        return r.exitCode ?? 0
    }

    /// Waits for a supervisor to answer (a `labrun boot` just started in the background),
    /// then for its guest to come up.
    static func waitReady(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(options: ["timeout"]).parse(args, command: "wait-ready")
        let timeout = Double(try a.int("timeout", in: 1...3600) ?? 120)
        let controller = try context.controller()
        let deadline = monotonicSeconds() + timeout
        var fd = ControlClient.connect(controller.run.controlSocket)
        while fd == nil && monotonicSeconds() < deadline {
            sleepSeconds(0.05)
            fd = ControlClient.connect(controller.run.controlSocket)
        }
        guard let fd else { throw LabrunError("no VM started within \(Int(timeout)) s: start it with `labrun boot`") }
        _ = try controller.send(ControlRequest(.waitReady), over: fd) { _ in }
        return 0
    }
}
