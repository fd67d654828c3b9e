import Glibc

/// Where one of the child's standard descriptors comes from.
public enum StandardIO: Sendable, Equatable {
    case inherit
    case devNull
    /// dup2 of one of our descriptors.
    case descriptor(FileDescriptor)
    /// open(path, O_RDWR) in the child: with `newSession`, a tty path becomes its controlling terminal.
    case path(String)
}

/// Everything needed to start a program, as a printable value (`--dry-run` prints it).
public struct SpawnConfiguration: Sendable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// Added to (or replacing in) the inherited environment.
    public var environment: [String: String] = [:]
    public var standardInput: StandardIO = .inherit
    public var standardOutput: StandardIO = .inherit
    public var standardError: StandardIO = .inherit
    /// setsid() in the child: its own session, so it can get its own controlling terminal.
    public var newSession = false

    public init(executable: String, arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }

    /// A copy-pasteable shell rendering: each word quoted when it needs to be.
    public var description: String {
        ([executable] + arguments).map(shellQuoted).joined(separator: " ")
    }
}

/// Quotes a word for display in a POSIX shell (display only: labrun never runs a shell).
public func shellQuoted(_ word: String) -> String {
    let safe = word.unicodeScalars.allSatisfy { c in
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "-_./=:,@+%".unicodeScalars.contains(c)
    }
    if safe && !word.isEmpty { return word }
    return "'" + word.replacingAll("'", with: "'\\''") + "'"
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) {
                return i..<index(i, offsetBy: target.count)
            }
            i = index(after: i)
        }
        return nil
    }
}

/// Finds an executable on PATH (or checks an explicit path). nil when missing.
public func findExecutable(_ name: String, path: String? = nil) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    let dirs = (path ?? getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin").split(separator: ":")
    for dir in dirs + ["/usr/sbin", "/sbin"] {
        let candidate = "\(dir)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
