/// A parsed command line for one command: flags, options with values, positionals.
/// `--opt=value` and `--opt value` both work; `--` ends options.
public struct ParsedArguments: Equatable, Sendable {
    public var flags: Set<String> = []
    public var options: [String: String] = [:]
    public var positionals: [String] = []

    public func flag(_ name: String) -> Bool { flags.contains(name) }
    public func option(_ name: String) -> String? { options[name] }

    public func int(_ name: String, in range: ClosedRange<Int>) throws(LabrunError) -> Int? {
        guard let v = options[name] else { return nil }
        guard let n = Int(v), range.contains(n) else {
            throw .usage("--\(name) \(v): expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}

/// What a command accepts.
public struct ArgumentSpec: Sendable {
    public var flags: Set<String> = []
    public var options: Set<String> = []
    /// Options whose value may be left out (`--shared` alone means the default folder).
    public var optionalValueOptions: Set<String> = []
    public var positionals: ClosedRange<Int> = 0...0
    /// After `--`, everything is positional (for `exec -- CMD ARGS`).
    public var passThroughAfterDoubleDash = false

    public init(flags: Set<String> = [], options: Set<String> = [], optionalValueOptions: Set<String> = [],
                positionals: ClosedRange<Int> = 0...0) {
        self.flags = flags
        self.options = options
        self.optionalValueOptions = optionalValueOptions
        self.positionals = positionals
    }

    public func parse(_ args: [String], command: String) throws(LabrunError) -> ParsedArguments {
        var out = ParsedArguments()
        var i = 0
        var onlyPositionals = false
        while i < args.count {
            let a = args[i]
            i += 1
            if onlyPositionals || !a.hasPrefix("-") || a == "-" {
                out.positionals.append(a)
                continue
            }
            if a == "--" { onlyPositionals = true; continue }
            // A one-letter option the command declares may be spelt `-x` (`log -f -n 20`).
            let short = !a.hasPrefix("--") && a.count == 2 && (flags.contains(String(a.dropFirst())) || options.contains(String(a.dropFirst())))
            guard a.hasPrefix("--") || short else {
                throw .usage("\(command): unknown option \(a); see `labrun \(command) --help`")
            }
            var name = String(a.dropFirst(short ? 1 : 2))
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if flags.contains(name) {
                guard value == nil else { throw .usage("\(command): --\(name) takes no value") }
                out.flags.insert(name)
            } else if options.contains(name) {
                if value == nil {
                    guard i < args.count, !args[i].hasPrefix("--") else { throw .usage("\(command): --\(name) needs a value") }
                    value = args[i]
                    i += 1
                }
                out.options[name] = value
            } else if optionalValueOptions.contains(name) {
                if value == nil, i < args.count, !args[i].hasPrefix("-") { value = args[i]; i += 1 }
                out.options[name] = value ?? ""
            } else {
                throw .usage("\(command): unknown option --\(name); see `labrun \(command) --help`")
            }
        }
        guard positionals.contains(out.positionals.count) else {
            if out.positionals.count < positionals.lowerBound {
                throw .usage("\(command): missing argument; see `labrun \(command) --help`")
            }
            throw .usage("\(command): unexpected argument '\(out.positionals[positionals.upperBound])'; see `labrun \(command) --help`")
        }
        return out
    }
}
