import FoundationEssentials

extension LabrunCLI {
    static func snapshot(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        guard let sub = args.first else { throw .usage("snapshot: missing subcommand (create, restore, list or delete)") }
        let rest = Array(args.dropFirst())
        switch sub {
        case "create", "save":
            let a = try ArgumentSpec(flags: ["force", "disk-only", "json"], positionals: 1...1).parse(rest, command: "snapshot create")
            return try runSnapshot(.create(name: a.positionals[0], force: a.flag("force"), diskOnly: a.flag("disk-only")), json: a.flag("json"), context)
        case "restore", "load", "apply":
            let a = try ArgumentSpec(flags: ["json"], positionals: 1...1).parse(rest, command: "snapshot restore")
            return try runSnapshot(.restore(name: a.positionals[0]), json: a.flag("json"), context)
        case "delete", "rm":
            let a = try ArgumentSpec(flags: ["json"], positionals: 1...1).parse(rest, command: "snapshot delete")
            return try runSnapshot(.delete(name: a.positionals[0]), json: a.flag("json"), context)
        case "list", "ls":
            let a = try ArgumentSpec(flags: ["json"]).parse(rest, command: "snapshot list")
            return try runSnapshot(.list, json: a.flag("json"), context)
        default: throw .usage("snapshot: unknown subcommand '\(sub)' (create, restore, list or delete)")
        }
    }

    /// One snapshot request through the lab's routing facade; the outcome is rendered here,
    /// the same whichever path carried it out.
    static func runSnapshot(_ request: SnapshotRequest, json: Bool, _ context: Context) throws(LabrunError) -> Int32 {
        let controller = try context.controller()
        let (outcome, live) = try controller.snapshot(request)
        if case .listed(let list) = outcome {
            say(json ? SnapshotTable.json(list) : SnapshotTable.render(list).trimmedTrailingNewline)
        } else if json {
            say(encodeJSON(SnapshotResult(outcome: outcome, live: live)))
        } else if let line = Messages.text(of: outcome) {
            say(line)
        }
        return 0
    }

    /// `snapshot create|restore|delete --json`: the outcome with its figures.
    struct SnapshotResult: Encodable {
        var op: String
        var name: String?
        var live: Bool
        var seconds: Double?
        var snapshot: SnapshotInfo?
        var message: String?

        init(outcome: SnapshotOutcome, live: Bool) {
            self.live = live
            seconds = outcome.seconds
            message = Messages.text(of: outcome)
            switch outcome {
            case .listed: op = "list"
            case .created(let n, let s, _, _, _): op = "create"; name = n; snapshot = s
            case .restored(let s, _, _, _, _): op = "restore"; name = s.name; snapshot = s
            case .deleted(let n, let s): op = "delete"; name = n; snapshot = s
            }
        }
    }
}

extension String {
    var trimmedTrailingNewline: String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
