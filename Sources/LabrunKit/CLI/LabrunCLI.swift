/// The command-line front end: parses argv, runs one command, and turns every failure into
/// one line on stderr and an exit code. main.swift only calls `LabrunCLI.main`.
public enum LabrunCLI {
    /// Runs labrun with `arguments` (argv without the program name) and returns the exit code.
    public static func main(_ arguments: [String]) -> Int32 {
        // A supervisor that closes early must give an error line, not kill us with SIGPIPE.
        ignoreBrokenPipeSignal()
        do {
            return try run(arguments)
        } catch {
            printError(error.message)
            if error.exitCode == 64 { printError("run `labrun --help` for usage") }
            return error.exitCode
        }
    }

    static func run(_ argv: [String]) throws(LabrunError) -> Int32 {
        var args = argv
        var labDir: String?
        // Global options come before the command.
        while let first = args.first, first.hasPrefix("-") {
            args.removeFirst()
            switch first {
            case "--help", "-h": print(Help.main); return 0
            case "--version": print(Help.version); return 0
            case "--lab":
                guard let d = args.first else { throw .usage("--lab needs a directory") }
                labDir = d
                args.removeFirst()
            case _ where first.hasPrefix("--lab="): labDir = String(first.dropFirst(6))
            default: throw .usage("unknown option \(first)")
            }
        }
        guard let command = args.first else {
            print(Help.main)
            return 64
        }
        args.removeFirst()
        if command == TerminalGuard.commandName { return TerminalGuard.runGuard(settings: args.first ?? "") }
        if command == "help" { print(Help.text(for: args.first ?? "")); return 0 }
        let ownArgs = args.firstIndex(of: "--").map { Array(args[..<$0]) } ?? args
        if ownArgs.contains("--help") || ownArgs.contains("-h") {
            guard knownCommands.contains(command) else { throw .usage("unknown command '\(command)'") }
            print(Help.text(for: command))
            return 0
        }
        // Options may also follow the command (`labrun boot --lab DIR`).
        if let i = ownArgs.firstIndex(of: "--lab"), i + 1 < args.count {
            labDir = args[i + 1]
            args.removeSubrange(i...(i + 1))
        }
        let context = Context(labDirectory: labDir)
        if command == "__complete" { return complete(args, context) }
        if command == "__man" { print(Help.manPage); return 0 }
        switch command {
        case "boot": return try boot(args, context)
        // `run -- CMD` is the test runner; `run` alone is an old name of boot.
        case "run": return args.contains("--") ? try runCommand(args, context) : try boot(args, context)
        case "snapshot": return try snapshot(args, context)
        case "reset": return try reset(args, context)
        case "info": return try info(args, context)
        case "check": return try check(args, context)
        case "status": return try status(args, context)
        case "stop": return try stop(args, context)
        case "suspend": return try suspend(args, context)
        case "init": return try initLab(args, context)
        case "exec": return try exec(args, context)
        case "wait-ready": return try waitReady(args, context)
        case "attach": return try attach(args, context)
        case "log": return try log(args, context)
        case "module": return try module(args, context)
        case "gdb": return try gdb(args, context)
        case "completion": return try completion(args, context)
        case "export": return try export(args, context)
        case "import": return try importLab(args, context)
        default: throw .usage("unknown command '\(command)'")
        }
    }

    static let knownCommands: Set<String> = Set(["boot", "run", "snapshot", "reset", "info", "check", "status", "stop", "suspend", "init", "exec", "wait-ready", "attach", "log", "module", "gdb", "completion", "help"])
        .union(["export", "import"])

    /// What every command needs: the lab, opened lazily (so `--help` works anywhere).
    struct Context {
        let labDirectory: String?
        func controller() throws(LabrunError) -> LabController {
            LabController(lab: try Lab.locate(explicit: labDirectory))
        }
    }

    static func printError(_ message: String) {
        try? FileDescriptor.standardError.writeAll(Colour.for(.standardError).error("labrun:") + " \(message)\n")
    }

    static func say(_ line: String) {
        try? FileDescriptor.standardOutput.writeAll(line + "\n")
    }
}
