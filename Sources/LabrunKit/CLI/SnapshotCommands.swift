import FoundationEssentials

extension LabrunCLI {
    static func snapshot(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        guard let sub = args.first else { throw .usage("snapshot: missing subcommand (\(subcommands))") }
        let rest = Array(args.dropFirst())
        switch sub {
        case "create", "save":
            let a = try ArgumentSpec(flags: ["force", "disk-only", "json"], options: ["m", "message"], positionals: 1...1).parse(rest, command: "snapshot create")
            let text = a.option("m") ?? a.option("message")
            if let text { try validDescription(text) }
            return try runSnapshot(.create(name: a.positionals[0], force: a.flag("force"), diskOnly: a.flag("disk-only")), json: a.flag("json"), description: text, context)
        case "restore", "load", "apply":
            let a = try ArgumentSpec(flags: ["json"], positionals: 1...1).parse(rest, command: "snapshot restore")
            return try runSnapshot(.restore(name: a.positionals[0]), json: a.flag("json"), context)
        case "delete", "rm":
            let a = try ArgumentSpec(flags: ["json"], positionals: 1...1).parse(rest, command: "snapshot delete")
            return try runSnapshot(.delete(name: a.positionals[0]), json: a.flag("json"), context)
        case "list", "ls":
            let a = try ArgumentSpec(flags: ["json", "tree"]).parse(rest, command: "snapshot list")
            guard !(a.flag("json") && a.flag("tree")) else { throw .usage("snapshot list: --json has every field, --tree draws the family: choose one") }
            let controller = try context.controller()
            let (entries, _) = try controller.snapshotEntries()
            let colour = Colour.for(.standardOutput)
            if a.flag("json") {
                say(SnapshotTable.storyJSON(entries))
            } else if a.flag("tree") {
                say(SnapshotTable.tree(entries, golden: Lab.goldenName, colour: colour))
            } else {
                say(SnapshotTable.storyTable(entries, colour: colour))
            }
            return 0
        case "rename", "mv":
            let a = try ArgumentSpec(positionals: 2...2).parse(rest, command: "snapshot rename")
            say(try context.controller().renameSnapshot(a.positionals[0], to: a.positionals[1]).message)
            return 0
        case "describe":
            let a = try ArgumentSpec(positionals: 1...2).parse(rest, command: "snapshot describe")
            let text = a.positionals.count == 2 ? a.positionals[1] : ""
            try validDescription(text)
            say(try context.controller().describeSnapshot(a.positionals[0], text))
            return 0
        default: throw .usage("snapshot: unknown subcommand '\(sub)' (\(subcommands))")
        }
    }

    static let subcommands = "create, restore, list, delete, rename or describe"

    /// A description must be text: valid UTF-8 (checked on the raw argument, since Swift's
    /// arguments replace bad bytes), no control characters but newlines and tabs, at most 4 KiB.
    static func validDescription(_ text: String) throws(LabrunError) {
        for i in 0..<Int(CommandLine.argc) {
            if let raw = CommandLine.unsafeArgv[i], String(validatingCString: raw) == nil {
                throw LabrunError("an argument is not valid UTF-8; give the description as UTF-8 text")
            }
        }
        try SnapshotHistory.validateDescription(text)
    }

    /// One snapshot request through the lab's routing facade; the outcome is rendered here,
    /// the same whichever path carried it out.
    static func runSnapshot(_ request: SnapshotRequest, json: Bool, description: String? = nil, _ context: Context) throws(LabrunError) -> Int32 {
        let controller = try context.controller()
        let (outcome, live) = try controller.snapshot(request)
        if let description, case .created(_, let s?, _, _, _) = outcome { SnapshotHistory(lab: controller.lab).describe(s, description) }
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
