/// What a boot does with the boot checkpoint.
public enum CheckpointPlan: Equatable, Sendable {
    /// An ordinary boot (the runtime layer is not fresh, or checkpoints are off).
    case none
    /// Resume this checkpoint (its disk is already the runtime layer).
    case resume(Checkpoint)
    /// Boot cold and keep a checkpoint for this key once the guest is up.
    case make(CheckpointStore, CheckpointKey)
}

/// Decides how a boot starts (issue 11): a fresh runtime layer resumes the golden image's
/// boot checkpoint when one fits; otherwise it boots cold, says why in one line, and keeps a
/// new checkpoint. A damaged checkpoint is never loaded: it is moved aside.
public enum BootPlanner {
    /// `options` with the checkpoint plan set, the runtime layer made ready for it. `say`
    /// gets the one line that explains a cold boot.
    public static func plan(_ lab: Lab, _ options: BootOptions, cold: Bool, say: (String) -> Void) throws(LabrunError) -> BootOptions {
        var options = options
        options.checkpoint = .none
        let fresh = FreshRuntime.isFresh(lab)
        // From here on the layer will be booted (or replaced by the checkpoint's disk).
        FreshRuntime.clear(lab)
        guard fresh, !options.resumeSuspended, options.loadSnapshot == nil, !options.waitForGdb,
              let store = CheckpointStore(lab: lab) else { return options }
        guard let key = CheckpointKey(command: try QemuCommand(lab: lab, options: options)) else { return options }
        if cold {
            say("cold boot (--cold): a new boot checkpoint is kept once the guest is up")
            options.checkpoint = .make(store, key)
            return options
        }
        switch store.find(key) {
        case .found(let checkpoint):
            do {
                try checkpoint.installDisk(as: lab.runtimePath, backing: lab.runtimeBacking)
                options.checkpoint = .resume(checkpoint)
            } catch {
                let moved = store.moveAside(checkpoint.directory)
                say(damaged(error.message, moved))
                options.checkpoint = .make(store, key)
            }
        case .missing(let why):
            say("booting cold: \(why); a boot checkpoint is kept once the guest is up")
            options.checkpoint = .make(store, key)
        case .damaged(let why, let moved):
            say(damaged(why, moved))
            options.checkpoint = .make(store, key)
        }
        return options
    }

    static func damaged(_ why: String, _ moved: String?) -> String {
        "the boot checkpoint is not usable: \(why); " + (moved.map { "moved to \($0); " } ?? "removed; ") + "booting cold, and keeping a new one"
    }
}

extension BootPlanner {
    /// What a plain `labrun boot` of this stopped lab will do with the boot checkpoint, for
    /// `status` and `info` (nil when the runtime layer is not fresh). Reads no state file.
    public static func preview(_ lab: Lab) -> String? {
        guard FreshRuntime.isFresh(lab), SuspendedState.of(lab) == nil else { return nil }
        guard let store = CheckpointStore(lab: lab) else { return "fresh runtime layer; boot checkpoints are off (lab.conf)" }
        guard let command = try? QemuCommand(lab: lab, options: BootOptions()), let key = CheckpointKey(command: command) else { return nil }
        if let record = CheckpointStore.record(in: store.path(for: key)), record.key == key {
            return "fresh runtime layer: `labrun boot` resumes the boot checkpoint of \(record.createdText)"
        }
        return "fresh runtime layer: `labrun boot` boots cold and keeps a boot checkpoint"
    }
}
