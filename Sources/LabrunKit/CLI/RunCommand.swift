extension LabrunCLI {
    /// `labrun run [--kernel PATH [--modules DIR]] [--reset] [--shared [DIR]] [--timeout S] [--keep] -- CMD`:
    /// boots the lab in the background (resuming the boot checkpoint when it can), runs CMD in
    /// the guest with its output here, stops the VM, and exits with CMD's status, 125 when the
    /// guest kernel panics. Made for `git bisect run labrun run --kernel … -- /mnt/test.sh`.
    static func runCommand(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let split = args.firstIndex(of: "--")!
        let own = Array(args[..<split])
        let words = Array(args[args.index(after: split)...])
        let a = try ArgumentSpec(flags: ["reset", "keep", "cold"], options: ["kernel", "modules", "timeout", "mem", "cpus", "accel"],
                                 optionalValueOptions: ["shared"]).parse(own, command: "run")
        guard !words.isEmpty else { throw .usage("run: no command; usage: labrun run [--kernel PATH [--modules DIR]] [--reset] -- COMMAND [ARGS...]") }
        let timeout = try a.int("timeout", in: 1...86400) ?? 0
        let controller = try context.controller()
        if let denied = controller.run.permissionProblem { throw LabrunError(denied) }
        if controller.isRunning {
            throw LabrunError("this lab's VM is already running: `labrun exec -- CMD` runs a command in it (or `labrun stop` first)")
        }
        if a.flag("reset") {
            try ImageLock.requireUnlocked(controller.layerPaths, action: "reset the runtime layer")
            printError(try controller.resetRuntimeLayer())
        }
        var bootArgs: [String] = []
        for name in ["kernel", "modules", "mem", "cpus", "accel"] { if let v = a.option(name) { bootArgs += ["--\(name)", v] } }
        // The share is mounted at /mnt (where a test script usually lives).
        bootArgs += ["--shared"] + (a.option("shared").flatMap { $0.isEmpty ? nil : [$0] } ?? [])
        if a.flag("cold") { bootArgs += ["--cold", "--yes"] }
        do {
            _ = try bootInBackground(bootArgs, controller, attach: false, quiet: true)
        } catch {
            _ = try? controller.supervisor().map { try controller.stopRunning(over: $0) }
            throw error
        }
        defer {
            if !a.flag("keep"), let link = controller.supervisor() { try? controller.stopRunning(over: link) }
        }
        let link = try controller.requireSupervisor()
        let r = try link.send(.exec(command: words.map(shellQuoted).joined(separator: " "), timeout: timeout)) { progress in
            if let out = progress.stdout { try? FileDescriptor.standardOutput.writeAll(out) }
            if let err = progress.stderr { try? FileDescriptor.standardError.writeAll(err) }
        }
        if let m = r.message { printError(m) }
        return r.exitCode ?? 0
    }
}
