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
        let link = try context.controller().requireSupervisor()
        let r = try link.send(.exec(command: words.map(shellQuoted).joined(separator: " "), timeout: timeout)) { progress in
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
        guard let link = controller.waitForSupervisor(seconds: timeout) else {
            throw LabrunError("no VM started within \(Int(timeout)) s: start it with `labrun boot`")
        }
        _ = try link.send(.waitReady) { _ in }
        return 0
    }
}
