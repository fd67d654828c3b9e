extension LabrunCLI {
    static func snapshot(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        guard let sub = args.first else { throw .usage("snapshot: missing subcommand (create, restore, list or delete)") }
        let rest = Array(args.dropFirst())
        switch sub {
        case "create", "save": return try snapshotCreate(rest, context)
        case "restore", "load", "apply": return try snapshotRestore(rest, context)
        case "delete", "rm": return try snapshotDelete(rest, context)
        case "list", "ls": return try snapshotList(rest, context)
        default: throw .usage("snapshot: unknown subcommand '\(sub)' (create, restore, list or delete)")
        }
    }

    static func snapshotCreate(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["force", "disk-only"], positionals: 1...1).parse(args, command: "snapshot create")
        let name = a.positionals[0]
        try SnapshotName.validateNew(name)
        let controller = try context.controller()
        switch try controller.route(for: "create snapshot '\(name)'") {
        case .live(let fd):
            let r = try controller.send(ControlRequest(.snapshotCreate, name: name, force: a.flag("force"), diskOnly: a.flag("disk-only")), over: fd)
            say(r.message ?? Messages.created(r.snapshot, name: name, seconds: r.seconds ?? 0))
        case .offline:
            let started = monotonicSeconds()
            let info = try controller.offlineSnapshots().create(name: name, force: a.flag("force"))
            say(Messages.created(info, name: name, seconds: monotonicSeconds() - started))
        }
        return 0
    }

    static func snapshotRestore(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(positionals: 1...1).parse(args, command: "snapshot restore")
        let name = a.positionals[0]
        try SnapshotName.validate(name)
        let controller = try context.controller()
        switch try controller.route(for: "restore snapshot '\(name)'") {
        case .live(let fd):
            let r = try controller.send(ControlRequest(.snapshotRestore, name: name), over: fd)
            say(r.message ?? Messages.restored(name: name, seconds: r.seconds ?? 0, live: true, resumesVM: true))
        case .offline:
            let started = monotonicSeconds()
            let info = try controller.offlineSnapshots().restore(name: name)
            try controller.setPendingResume(info.hasVMState ? name : nil)
            say(Messages.restored(name: name, seconds: monotonicSeconds() - started, live: false, resumesVM: info.hasVMState))
        }
        return 0
    }

    static func snapshotDelete(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(positionals: 1...1).parse(args, command: "snapshot delete")
        let name = a.positionals[0]
        try SnapshotName.validate(name)
        let controller = try context.controller()
        switch try controller.route(for: "delete snapshot '\(name)'") {
        case .live(let fd):
            let r = try controller.send(ControlRequest(.snapshotDelete, name: name), over: fd)
            say(r.message ?? Messages.deleted(name: name))
        case .offline:
            _ = try controller.offlineSnapshots().delete(name: name)
            if controller.pendingResume == name { try controller.setPendingResume(nil) }
            say(Messages.deleted(name: name))
        }
        return 0
    }

    static func snapshotList(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["json"]).parse(args, command: "snapshot list")
        let controller = try context.controller()
        let list: [SnapshotInfo]
        switch try controller.route(for: "list snapshots") {
        case .live(let fd): list = try controller.send(ControlRequest(.snapshotList), over: fd).snapshots ?? []
        case .offline: list = try controller.offlineSnapshots().list()
        }
        if a.flag("json") {
            say(SnapshotTable.json(list))
        } else {
            say(SnapshotTable.render(list).trimmedTrailingNewline)
        }
        return 0
    }
}

extension String {
    var trimmedTrailingNewline: String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
