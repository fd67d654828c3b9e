/// Colour for people at a terminal (issue 15 §4): snapshot names, the snapshot the VM is on,
/// errors. None when NO_COLOR is set (https://no-color.org: present and not empty), when TERM is
/// "dumb", or when the output is not a terminal.
public struct Colour: Sendable {
    public let enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    /// Whether output on `fd` gets colour.
    public static func `for`(_ fd: FileDescriptor) -> Colour {
        if let v = environmentValue("NO_COLOR"), !v.isEmpty { return Colour(enabled: false) }
        if environmentValue("TERM") == "dumb" { return Colour(enabled: false) }
        return Colour(enabled: fd.isTerminal)
    }

    public static let off = Colour(enabled: false)

    private func wrap(_ s: String, _ code: String) -> String { enabled && !s.isEmpty ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }

    /// A snapshot's name.
    public func name(_ s: String) -> String { wrap(s, "1;36") }
    /// The snapshot the VM is on now.
    public func current(_ s: String) -> String { wrap(s, "1;32") }
    /// An error's lead word.
    public func error(_ s: String) -> String { wrap(s, "1;31") }
    /// Secondary text (descriptions, parents).
    public func dim(_ s: String) -> String { wrap(s, "2") }
}
