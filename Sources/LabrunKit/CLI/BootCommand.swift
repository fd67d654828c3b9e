extension LabrunCLI {
    static let bootSpec = ArgumentSpec(
        flags: ["debug", "wait-gdb", "dry-run", "detach", "cold", "yes", "supervise", "owner"],
        options: ["mem", "cpus", "accel", "qemu", "gdb-port", "kernel", "modules"],
        optionalValueOptions: ["shared"])

    static func boot(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try bootSpec.parse(args, command: "boot")
        let controller = try context.controller()
        let lab = controller.lab
        var options = BootOptions()
        if let m = a.option("mem") {
            guard let mib = LabConfig.parseMemory(m) else { throw .usage("--mem \(m): expected MiB, like 256, 512M or 1G") }
            options.memoryMiB = mib
        }
        options.cpus = try a.int("cpus", in: 1...64)
        if let acc = a.option("accel") {
            guard let v = Accelerator(rawValue: acc) else { throw .usage("--accel \(acc): expected auto, kvm or tcg") }
            options.accel = v
        }
        options.qemu = a.option("qemu")
        if let k = a.option("kernel") {
            let path = absolutePath(k)
            guard isReadable(path), !isDirectory(path) else { throw LabrunError("--kernel \(k): no readable kernel image there (a bzImage or vmlinux from a kernel build tree)") }
            options.kernel = path
        }
        // --modules is for the kernel booted; lab.conf's `modules` for lab.conf's kernel only.
        options.modules = a.option("modules") ?? (options.kernel == nil ? lab.resolve(lab.config.modules) : nil)
        if let s = a.option("shared") { options.shared = s.isEmpty ? lab.sharedPath : absolutePath(s) }
        let port = try a.int("gdb-port", in: 1...65535)
        if a.flag("debug") || a.flag("wait-gdb") || port != nil { options.gdbPort = port ?? lab.config.gdbPort }
        options.waitForGdb = a.flag("wait-gdb")
        options.loadSnapshot = controller.pendingResume
        options.dryRun = a.flag("dry-run")
        let suspended = SuspendedState.of(lab)
        if let suspended, !a.flag("cold") {
            // Resume in the shape it was suspended in, whatever the flags say.
            options = options.resuming(suspended, in: lab)
        }

        if a.flag("dry-run") {
            let planned = try kernelModules(lab, kernel: options.kernel ?? lab.kernelPath, given: options.modules, build: false)
            options.kernelModules = planned.boot
            for note in planned.notes { printError(note) }
        }
        let command = try QemuCommand(lab: lab, options: options)
        if a.flag("dry-run") {
            say(command.spawnConfiguration(runDirectory: lab.runDirectory).description)
            return 0
        }
        guard a.flag("supervise") else {
            // This process is the terminal; the supervisor runs in its own (issue 12).
            var childArgs = args.filter { $0 != "--detach" }
            if let suspended, a.flag("cold"), !a.flag("yes") {
                try confirm("Discard the VM suspended at \(suspended.since) and boot afresh?", false)
                childArgs.append("--yes")
            }
            return try bootInBackground(childArgs, controller, attach: !a.flag("detach"))
        }
        // From here on: the supervisor's own process (no terminal; lines for the user go to
        // every attached terminal once the console is up).
        var startup: [String] = []
        let printError = { (line: String) in startup.append(line) }

        // One labrun command at a time on a lab: an offline snapshot running right now must
        // finish before QEMU opens the images. Held for the supervisor's life (commands that
        // come meanwhile find its control socket first and never wait for this lock).
        // Refuse before anything starts: another user's lab, a running lab (whose supervisor
        // holds the lock: never wait for it), missing pieces, images in use.
        if let denied = lab.runDirectory.permissionProblem { throw LabrunError(denied) }
        if let running = controller.supervisorOrCommandLock() {
            running.close()
            let pid = lab.runDirectory.readPid().map { " (labrun pid \($0))" } ?? ""
            throw LabrunError("this lab's VM is already running\(pid); use that console, or `labrun stop` first")
        }
        if let dead = controller.cleanStaleRunDirectory(), dead > 0 {
            printError("cleaned up after a labrun (pid \(dead)) that ended without shutting down")
        }
        if let suspended, a.flag("cold") {
            try confirm("Discard the VM suspended at \(suspended.since) and boot afresh?", a.flag("yes"))
            SuspendedState.discard(in: lab)
            printError("discarded the VM suspended at \(suspended.since)")
        } else if let suspended {
            printError("resuming the VM suspended at \(suspended.since)")
        }
        guard findExecutable(command.qemuBinary) != nil else {
            throw LabrunError("\(command.qemuBinary) not found: install it with `apt-get install qemu-system-x86` (or pass --qemu PATH)")
        }
        guard fileExists(command.kernelPath) else {
            throw LabrunError("no kernel at \(command.kernelPath): build the default guest with `make guest`")
        }
        if let initrd = lab.initrdPath, !fileExists(initrd) {
            throw LabrunError("no initrd at \(initrd): build the default guest with `make guest`")
        }
        // Another kernel's modules: its early ones added to the initrd, all of them on a disk
        // (a suspended VM's kernel and modules came back with `resuming`).
        do {
            let planned = try kernelModules(lab, kernel: command.kernelPath, given: options.modules, build: true)
            options.kernelModules = planned.boot
            for note in planned.notes { printError(note) }
        }
        if let shared = options.shared {
            if !fileExists(shared) { _ = makeDirectory(shared) }
            guard isDirectory(shared) else { throw LabrunError("shared folder \(shared) is not a directory") }
        }
        if let port = options.gdbPort, !TCPPort.isFreeOnLoopback(port) {
            throw LabrunError("gdb port 127.0.0.1:\(port) is in use (another VM's gdb stub?): pick another with --gdb-port PORT")
        }
        try ImageLock.requireUnlocked(controller.layerPaths, action: "boot")
        if try controller.ensureRuntimeLayer() {
            printError("created the runtime layer \(Lab.runtimeName) on the golden image")
        }
        // A few preads: qcow2 header and every backing file present (no qemu-img at start-up).
        try controller.requireSoundRuntime()
        if let resume = options.loadSnapshot, !options.resumeSuspended {
            let existing = (try? controller.offlineSnapshots().list()) ?? []
            if let snap = existing.first(where: { $0.name == resume && $0.hasVMState }) {
                // Resume in the VM shape the snapshot was taken in, whatever the flags say.
                if let recorded = SnapshotShapes(lab: lab).shape(of: snap), recorded != (try QemuCommand(lab: lab, options: options)).shape {
                    options.memoryMiB = recorded.memoryMiB
                    options.cpus = recorded.cpus
                    options.accel = recorded.cpu == "host" ? .kvm : .tcg
                    options.shared = recorded.share ? (options.shared ?? lab.sharedPath) : nil
                    if let shared = options.shared { makeDirectory(shared) }
                    printError("resuming from snapshot '\(resume)' with its settings: \(recorded)")
                } else {
                    printError("resuming from snapshot '\(resume)'")
                }
            } else {
                printError("snapshot '\(resume)' to resume from is gone; booting normally")
                options.loadSnapshot = nil
                try? controller.setPendingResume(nil)
            }
        }
        // A fresh runtime layer resumes the golden image's boot checkpoint, or boots cold and keeps one.
        options = try BootPlanner.plan(lab, options, cold: a.flag("cold")) { printError($0) }
        let final = try QemuCommand(lab: lab, options: options)
        let supervisor = Supervisor(lab: lab, command: final, startupLines: startup)
        supervisor.ownerWillAttach = a.flag("owner")
        // Up: nothing more is said on stderr (the terminal that started us reads it only until now).
        let reason = try supervisor.runUntilExit(started: { redirectStandardErrorToNull() })
        return reason.exitCode
    }

    /// `labrun boot` in a terminal, and `boot --detach`: the supervisor is started in its own
    /// session with no terminal (`boot --supervise`); its errors before it answers are this
    /// command's one-line error. Then this terminal attaches as the owner (the VM ends with
    /// it unless it detaches), or, with --detach, the command returns once the guest is up.
    static func bootInBackground(_ bootArgs: [String], _ controller: LabController, attach: Bool, quiet: Bool = false) throws(LabrunError) -> Int32 {
        guard let exe = realPath("/proc/self/exe") else { throw LabrunError("cannot find the labrun executable") }
        if controller.isRunning {
            let pid = controller.run.readPid().map { " (labrun pid \($0))" } ?? ""
            if attach && FileDescriptor.standardInput.isTerminal {
                try confirm("This lab's VM is already running\(pid). Attach to its console?", false)
                return attachConsole(controller, owner: false, readOnly: false)
            }
            throw LabrunError("this lab's VM is already running\(pid); `labrun attach` shows its console, `labrun stop` ends it")
        }
        let errors: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do { errors = try FileDescriptor.pipe() } catch { throw error.asLabrunError }
        var config = SpawnConfiguration(executable: exe, arguments: ["--lab", controller.lab.root, "boot", "--supervise"] + (attach ? ["--owner"] : []) + bootArgs)
        config.standardInput = .devNull
        config.standardOutput = .devNull
        config.standardError = .descriptor(errors.writeEnd)
        config.newSession = true
        let child: ChildProcess
        do { child = try Spawner.spawn(config) } catch {
            errors.readEnd.close(); errors.writeEnd.close()
            throw error.asLabrunError
        }
        errors.writeEnd.close()
        defer { errors.readEnd.close() }
        // Until the supervisor answers, a failure is the boot's own one-line error.
        // Only our own child's supervisor counts (its pid file names it).
        guard let link = controller.waitForSupervisor(seconds: .infinity, pid: child.pid, stillStarting: { child.poll() == nil }) else {
            let said = readAll(errors.readEnd).split(whereSeparator: \.isNewline).last.map { String($0.dropFirst($0.hasPrefix("labrun: ") ? 8 : 0)) }
            throw LabrunError(said ?? "the VM did not start (\(child.wait()))")
        }
        guard !attach else {
            link.close()
            return attachConsole(controller, owner: true, readOnly: false)
        }
        _ = try link.send(.waitReady) { _ in }
        if quiet { return 0 }
        say("the VM runs in the background (labrun pid \(child.pid)); `labrun attach` shows its console; `labrun exec -- CMD`, `labrun snapshot …`, `labrun stop`")
        return 0
    }

    /// Attaches this terminal to the running VM's console until it detaches or the VM ends;
    /// the line that says which goes to stderr once the terminal is restored.
    static func attachConsole(_ controller: LabController, owner: Bool, readOnly: Bool) -> Int32 {
        var hello = ConsoleHello()
        hello.owner = owner
        hello.readOnly = readOnly
        let viewer: ConsoleViewer
        do { viewer = try ConsoleViewer(path: controller.run.consoleSocket, hello: hello) } catch {
            printError(error.message)
            return error.exitCode
        }
        let pid = viewer.welcome?.supervisorPid ?? controller.run.readPid() ?? 0
        switch viewer.run() {
        case .detached:
            printError("detached: the VM runs on (labrun pid \(viewer.welcome?.supervisorPid ?? pid)); `labrun attach` brings its console back, `labrun stop` ends it")
            return 0
        case .ended(let f):
            printError(f.message)
            return f.exitCode
        case .signal(let s):
            printError(owner ? "stopped by \(s); the VM was shut down" : "stopped by \(s); detached, the VM runs on")
            return 128 + s.rawValue
        case .lost:
            printError("the VM's supervisor (labrun pid \(viewer.welcome?.supervisorPid ?? pid)) ended without a word (was it killed?); its VM is gone")
            return 1
        }
    }

    /// Another kernel's modules for this boot (KernelModulesBoot.plan), and what to tell the user.
    static func kernelModules(_ lab: Lab, kernel: String, given: String?, build: Bool) throws(LabrunError) -> (boot: KernelModulesBoot?, notes: [String]) {
        var notes: [String] = []
        let boot = try KernelModulesBoot.plan(lab: lab, kernel: kernel, given: given, build: build, notes: &notes)
        return (boot, notes)
    }

    /// What is in a pipe now, without waiting.
    private static func readAll(_ fd: FileDescriptor) -> String {
        try? fd.setNonBlocking(true)
        var out: [UInt8] = []
        while case .success(let b) = fd.read(), !b.isEmpty { out += b }
        return String(decoding: out, as: UTF8.self)
    }

}
