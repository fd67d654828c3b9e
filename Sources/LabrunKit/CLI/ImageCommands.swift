import FoundationEssentials

extension LabrunCLI {
    static func reset(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["yes", "force", "undo"]).parse(args, command: "reset")
        let controller = try context.controller()
        let lab = controller.lab
        // Everything is checked and confirmed before a running VM is touched: a refusal or a
        // "no" must leave the VM running. A running VM is reset in place (its console stays
        // open); --force stops it instead and resets offline.
        var running = false
        if case .live(let link) = try controller.route(for: "reset the runtime layer") {
            link.close()
            running = true
        }
        let inPlace = running && !a.flag("force")
        let how = inPlace ? " The VM restarts in place; its console stays open." : (running ? " The running VM is stopped first." : "")
        if a.flag("undo") {
            guard fileExists(lab.undoPath) else { throw LabrunError("nothing to undo: no previous runtime layer (\(Lab.undoName))") }
            try confirm("Swap the runtime layer with the one saved by the last reset?" + how, a.flag("yes"))
        } else {
            guard fileExists(lab.goldenPath) else { throw LabrunError("no golden image at \(lab.goldenPath): build the default guest with `make guest`") }
            if fileExists(lab.runtimePath) {
                let snapshots = running ? liveSnapshotCount(controller) : ((try? controller.offlineSnapshots().list())?.count ?? 0)
                try confirm("Reset \(Lab.runtimeName) to the golden image? Its changes and \(snapshots) snapshot(s) move to \(Lab.undoName) (one undo step, `labrun reset --undo`)."
                            + how, a.flag("yes"))
            }
        }
        if inPlace {
            guard let link = controller.supervisor() else { throw LabrunError("the VM stopped meanwhile; nothing changed: run `labrun reset` again") }
            let r = try link.send(.reset(undo: a.flag("undo")))
            say(r.message ?? "reset")
            return 0
        }
        if running {
            printError("stopping the running VM first (--force)")
            if let link = controller.supervisor() { try controller.stopRunning(over: link) }
            try ImageLock.requireUnlocked(controller.layerPaths, action: "reset the runtime layer")
        }
        say(a.flag("undo") ? try controller.undoReset() : try controller.resetRuntimeLayer())
        return 0
    }

    /// How many snapshots the running VM's runtime layer holds (for the reset question).
    private static func liveSnapshotCount(_ controller: LabController) -> Int {
        guard let link = controller.supervisor(), let r = try? link.send(.snapshot(.list)) else { return 0 }
        return r.outcome?.snapshots?.count ?? 0
    }

    /// Asks y/N on a terminal; without one, --yes is required.
    static func confirm(_ question: String, _ yes: Bool) throws(LabrunError) {
        if yes { return }
        guard FileDescriptor.standardInput.isTerminal else {
            throw LabrunError("not confirmed: pass --yes to do this without a terminal")
        }
        try? FileDescriptor.standardError.writeAll(question + " [y/N] ")
        var answer: [UInt8] = []
        while case .success(let b) = FileDescriptor.standardInput.read(upTo: 1), let c = b.first, c != 0x0A { answer.append(c) }
        let text = String(decoding: answer, as: UTF8.self).trimmed.lowercased()
        guard text == "y" || text == "yes" else { throw LabrunError("not confirmed: nothing changed") }
    }

    static func info(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["json"]).parse(args, command: "info")
        let controller = try context.controller()
        try controller.requireRuntime()
        let img = try controller.qemuImg()
        var snapshots: [SnapshotInfo]
        let running: Bool
        let chain: ImageChain
        switch try controller.route(for: "read the image chain") {
        case .live(let link):
            running = true
            // The chain's metadata is read-only and safe to read shared; the snapshot list
            // comes from the running QEMU itself.
            snapshots = try link.send(.snapshot(.list)).outcome?.snapshots ?? []
            chain = try img.chain(controller.lab.runtimePath, shareLocks: true)
        case .offline:
            running = false
            chain = try img.chain(controller.lab.runtimePath)
            snapshots = chain.top.snapshots
        }
        if a.flag("json") {
            struct Out: Encodable { var lab: String; var running: Bool; var chain: [ImageInfo]; var snapshots: [SnapshotInfo] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = (try? encoder.encode(Out(lab: controller.lab.root, running: running, chain: chain.layers, snapshots: snapshots))) ?? Data()
            say(String(decoding: data, as: UTF8.self))
            return 0
        }
        say("lab: \(controller.lab.root) (VM \(running ? "running" : "stopped"))")
        let roles = ["runtime", "golden", "base"]
        for (i, layer) in chain.layers.enumerated() {
            let role = i < roles.count ? roles[i] : "layer \(i + 1)"
            var line = "  \(role.padding(toLength: 8))\(layer.filename)  \(layer.format), virtual \(formatBytes(layer.virtualSize))"
            if let used = layer.actualSize { line += ", on disk \(formatBytes(used))" }
            if let backing = layer.backingFilename { line += ", backed by \(backing)" }
            say(line)
        }
        say("snapshots (in \(Lab.runtimeName)):")
        say(SnapshotTable.render(snapshots).split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
        if let resume = controller.pendingResume, !running { say("the next boot resumes from snapshot '\(resume)'") }
        if let s = SuspendedState.of(controller.lab), !running { say("suspended since \(s.since): the next boot resumes it") }
        if !running, let line = BootPlanner.preview(controller.lab) { say(line) }
        return 0
    }

    static func check(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["repair"]).parse(args, command: "check")
        let controller = try context.controller()
        try controller.requireRuntime()
        if case .live(let link) = try controller.route(for: "check the runtime image") {
            link.close()
            throw LabrunError("the VM is running: stop it first (`labrun stop`); checking an image in use gives false reports")
        }
        let result = try controller.qemuImg().check(controller.lab.runtimePath, repair: a.flag("repair"))
        say("\(Lab.runtimeName): \(result.explanation)")
        switch result.status {
        case .clean: return 0
        case .leaks: return 3
        case .corrupt: return 2
        default: return 1
        }
    }

    static func status(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["json"]).parse(args, command: "status")
        let controller = try context.controller()
        struct Stopped: Encodable { var lab: String; var running = false; var runDirectory: String; var resume: String?; var suspendedSince: String?; var bootCheckpoint: String? }
        if let denied = controller.run.permissionProblem { throw LabrunError(denied) }
        if let link = controller.supervisor() {
            let r = try link.send(.status)
            guard let st = r.status else { throw LabrunError("the supervisor sent no status") }
            if a.flag("json") {
                struct Running: Encodable { var running = true; var status: SupervisorStatus }
                say(encodeJSON(Running(status: st)))
            } else {
                say("running: \(st.lab)")
                say("  QEMU pid \(st.qemuPid) (labrun pid \(st.supervisorPid)), \(st.runState), \(st.accelerator), up \(Messages.formatSeconds(st.uptimeSeconds))")
                if let why = st.notResponding { say("  QEMU is not responding: \(why)") }
                if let g = st.guest, g != "running" || st.lastReport != nil {
                    say("  guest kernel: \(g)" + (st.lastReport.map { "; last report: \($0) (`labrun log --reports`)" } ?? ""))
                }
                if st.agent == false { say("  guest agent: not up yet (exec and the share wait for it)") }
                if let c = st.bootCheckpoint { say("  boot checkpoint: \(c)") }
                say("  run directory \(st.runDirectory)")
                if let s = st.shared { say("  shared folder \(s) at /mnt") }
                if let p = st.gdbPort { say("  gdb stub 127.0.0.1:\(p)") }
            }
            return 0
        }
        if let dead = controller.cleanStaleRunDirectory(), dead > 0 {
            printError("cleaned up after a labrun (pid \(dead)) that ended without shutting down")
        }
        if a.flag("json") {
            say(encodeJSON(Stopped(lab: controller.lab.root, runDirectory: controller.run.path, resume: controller.pendingResume,
                                   suspendedSince: SuspendedState.of(controller.lab)?.since, bootCheckpoint: BootPlanner.preview(controller.lab))))
        } else {
            say("stopped: \(controller.lab.root)")
            say("  run directory \(controller.run.path)")
            if let locked = ImageLock.firstLocked(paths: controller.layerPaths) {
                say("  but \(locked.path) is in use by " + (locked.holders.map(\.description).joined(separator: ", ").nonEmpty ?? "another process"))
            }
            if let r = controller.pendingResume { say("  the next boot resumes from snapshot '\(r)'") }
            if let s = SuspendedState.of(controller.lab) { say("  suspended since \(s.since): the next boot resumes it (`labrun boot --cold` discards it)") }
            if let line = BootPlanner.preview(controller.lab) { say("  " + line) }
        }
        return 0
    }

    static func stop(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        _ = try ArgumentSpec().parse(args, command: "stop")
        let controller = try context.controller()
        if let denied = controller.run.permissionProblem { throw LabrunError(denied) }
        guard let link = controller.supervisor() else {
            controller.cleanStaleRunDirectory()
            say("the VM is not running")
            return 0
        }
        try controller.stopRunning(over: link)
        say("the VM was shut down")
        return 0
    }

    static func suspend(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        _ = try ArgumentSpec().parse(args, command: "suspend")
        let controller = try context.controller()
        let link = try controller.requireSupervisor()
        let pid = controller.run.readPid()
        let r = try link.send(.suspend)
        // Wait for the supervisor to end QEMU (the state is already on disk).
        let deadline = monotonicSeconds() + 20
        while monotonicSeconds() < deadline, controller.isRunning || !(pid.map(LabController.hasEnded) ?? true) { sleepSeconds(0.05) }
        say(r.message ?? "suspended")
        return 0
    }

    static func initLab(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["force"], options: ["arch"], positionals: 1...1).parse(args, command: "init")
        var source = try context.controller().lab
        let target = absolutePath(a.positionals[0])
        let arch = try a.option("arch").map { (v: String) throws(LabrunError) -> Architecture in
            guard let x = Architecture(rawValue: v) else { throw .usage("--arch \(v): expected x86_64 or aarch64") }
            return x
        } ?? source.config.arch
        if arch != source.config.arch {
            source = try archGuestLab(arch, near: source)
        }
        guard fileExists(source.goldenPath), fileExists(source.kernelPath) else {
            throw LabrunError("the source lab \(source.root) has no built guest: run `make guest` there first")
        }
        if fileExists(target + "/" + Lab.runtimeName) && !a.flag("force") {
            throw LabrunError("\(target) already holds a lab; use --force to replace its runtime layer")
        }
        guard makeDirectory(target), makeDirectory(target + "/shared") else { throw LabrunError("cannot create \(target)") }
        let lab = Lab(root: realPath(target) ?? target, config: LabConfig())
        let runtime = lab.runtimePath
        var keptUndo = false
        if fileExists(runtime) {
            // --force: the old layer (its snapshots and their story) becomes the undo step, as
            // with `reset`, rather than being lost.
            try ImageLock.requireUnlocked([runtime], action: "replace the runtime layer of \(lab.root)")
            do { try renameFile(runtime, lab.undoPath) } catch { throw error.asLabrunError }
            LabController(lab: lab).layerMovedToUndo()
            keptUndo = true
        }
        try QemuImg().createOverlay(path: runtime, backing: realPath(source.goldenPath) ?? source.goldenPath, backingFormat: "qcow2")
        var conf = "# labrun lab created from \(source.root)\n"
        conf += "arch = \(arch.rawValue)\n"
        conf += "golden = \(realPath(source.goldenPath) ?? source.goldenPath)\n"
        conf += "kernel = \(realPath(source.kernelPath) ?? source.kernelPath)\n"
        if let initrd = source.initrdPath { conf += "initrd = \(realPath(initrd) ?? initrd)\n" }
        conf += "mem = \(source.config.memoryMiB)\ncpus = \(source.config.cpus)\n"
        if let append = source.config.append { conf += "append = \(append)\n" }
        do { try conf.write(toFile: lab.root + "/lab.conf") } catch { throw error.asLabrunError }
        // Which golden image the new runtime layer was made on: boot refuses if it is rebuilt.
        let made = try Lab.open(lab.root)
        try made.recordGoldenIdentity()
        FreshRuntime.mark(made)
        say("created lab \(lab.root): its runtime layer is backed by \(source.goldenPath); boot it with `labrun --lab \(lab.root) boot`"
            + (keptUndo ? " (the previous runtime layer is kept as \(Lab.undoName): `labrun reset --undo`)" : ""))
        return 0
    }

    /// The lab holding the tiny guest for another architecture than `source`'s: `guest-ARCH/` in
    /// the source lab or next to it (the labrun checkout's `make guest-aarch64` builds it there).
    /// When none is built yet, the checkout's guest/build-tiny.sh builds it (about 30 s, once).
    private static func archGuestLab(_ arch: Architecture, near source: Lab) throws(LabrunError) -> Lab {
        let name = "guest-" + arch.rawValue
        let places = [source.root, parentDirectory(source.root)]
        func built(_ dir: String) -> Bool {
            fileExists(dir + "/" + Lab.goldenName) && fileExists(dir + "/guest-build/vmlinuz")
        }
        var dir = places.map { $0 + "/" + name }.first(where: built)
        if dir == nil {
            // The builder: in the source lab or next to it (a checkout), or above this labrun binary.
            var exe = realPath("/proc/self/exe") ?? ""
            var above: [String] = []
            for _ in 0..<5 where exe != "/" && !exe.isEmpty { exe = parentDirectory(exe); above.append(exe) }
            let builders = (places + above).map { ($0, $0 + "/guest/build-tiny.sh") }
            guard let (home, builder) = builders.first(where: { fileExists($0.1) }) else {
                throw LabrunError("no \(arch.rawValue) guest near \(source.root): build one with `make guest-\(arch.rawValue)` in the labrun checkout (or `guest/build-tiny.sh --arch \(arch.rawValue) \(source.root)/\(name)`)")
            }
            let into = (places.contains(home) ? home : source.root) + "/" + name
            printError("building the tiny \(arch.rawValue) guest into \(into) (once): \(builder) --arch \(arch.rawValue) \(into)")
            var config = SpawnConfiguration(executable: "bash", arguments: [builder, "--arch", arch.rawValue, into])
            config.standardInput = .devNull
            config.standardOutput = .descriptor(.standardError)   // stdout stays the one-line result
            let status: TerminationStatus
            do { status = try Spawner.spawn(config).wait() } catch { throw LabrunError("cannot run \(builder): \(error)") }
            guard status.isSuccess, built(into) else {
                throw LabrunError("building the \(arch.rawValue) guest failed (\(status)); see the messages above")
            }
            dir = into
        }
        let lab = try Lab.open(dir!)
        guard lab.config.arch == arch else {
            throw LabrunError("\(lab.root) holds an \(lab.config.arch.rawValue) guest, not \(arch.rawValue): its lab.conf needs `arch = \(arch.rawValue)`")
        }
        return lab
    }

    static func encodeJSON(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
