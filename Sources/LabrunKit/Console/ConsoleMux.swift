/// What the console asks the supervisor to do. The mux decides; the supervisor delivers.
public enum ConsoleIntent: Equatable, Sendable {
    /// Keyboard bytes for the guest.
    case toGuest([UInt8])
    /// Keyboard bytes for the QEMU monitor.
    case toMonitor([UInt8])
    /// Guest output for the screen (live, or held output let go).
    case show([UInt8])
    /// labrun's own raw bytes (prompt echo, help text).
    case echo([UInt8])
    /// A labrun line, shown at once (it answers the user's key).
    case notice(String)
    /// Start a labrun prompt (no newline at its end).
    case prompt(String)
    case quit
    case suspend
    /// Reset the VM in place to the golden image (after the user said yes).
    case reset
    /// Leave this terminal; the VM runs on.
    case detach
    case status
    /// Take a snapshot; `description` is what the user typed at the second question (nil: none).
    case createSnapshot(name: String, description: String?)
    /// Connect to the monitor; the supervisor answers with `monitorOpened()` or a notice.
    case openMonitor
    case closeMonitor
    /// Send Alt-SysRq-KEY to the guest.
    case sysrq(String)
}

/// The console's modes and held output, as a pure state machine: keys and guest output in,
/// intents out. In the console mode keys go to the guest; in the snapshot prompt to a line
/// editor; in the monitor to QEMU's monitor; after Ctrl-a b the next key is a SysRq key.
/// While the user is in a prompt or the monitor, guest output is held and shown after.
public struct ConsoleMux: Sendable {
    public enum Mode: Equatable, Sendable {
        case console
        case prompt(LineEditor, defaultName: String)
        /// After the name: the snapshot's description (optional: Enter skips).
        case describe(LineEditor, name: String)
        case monitor
        case sysrq
        /// A y/N question (Ctrl-a r): the next key answers it.
        case confirmReset
    }

    public private(set) var mode: Mode = .console
    private var parser = EscapeParser()
    /// Guest output held while the user is in a prompt or the monitor.
    public private(set) var held: [UInt8] = []

    /// Drops the held output (a terminal that fell too far behind skips ahead); its size.
    public mutating func dropHeld() -> Int {
        defer { held.removeAll() }
        return held.count
    }

    public init() {}

    /// Feeds a prompt's line editor what this read holds up to the line's end (one key's escape
    /// sequence arrives in one read; a lone Esc at its end cancels); later keys stay for the
    /// guest. The accepted line, or nil while editing (`editor` has the state) or once cancelled
    /// (the mode is then back to the console).
    private mutating func feedLine(_ editor: inout LineEditor, _ rest: inout ArraySlice<UInt8>, _ out: inout [ConsoleIntent]) -> String? {
        let end = rest.firstIndex { $0 == 0x0D || $0 == 0x0A || $0 == 0x03 }.map { rest.index(after: $0) } ?? rest.endIndex
        let chunk = rest[..<end]
        rest = rest[end...]
        switch editor.feed(chunk) {
        case .editing(let echo):
            if !echo.isEmpty { out.append(.echo(echo)) }
            return nil
        case .cancelled:
            out.append(.echo([0x0D, 0x0A]))
            out += backToConsole(notice: "snapshot cancelled")
            return nil
        case .accepted(let text):
            out.append(.echo([0x0D, 0x0A]))
            return text
        }
    }

    static let describePrompt = "description (optional; Enter skips, Esc cancels): "

    public var isHolding: Bool { mode != .console && mode != .sysrq && mode != .confirmReset }

    /// Guest output: shown at once, or held while a prompt or the monitor is up.
    public mutating func guest(_ bytes: [UInt8]) -> [ConsoleIntent] {
        guard !bytes.isEmpty else { return [] }
        if isHolding { held += bytes; return [] }
        return [.show(bytes)]
    }

    /// What one keyboard read asks for. `qemuReady` tells whether SysRq can be sent now;
    /// `defaultName` is the name Ctrl-a s offers.
    public mutating func keys(_ bytes: [UInt8], qemuReady: Bool, defaultName: @autoclosure () -> String) -> [ConsoleIntent] {
        var out: [ConsoleIntent] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            switch mode {
            case .prompt(var editor, let def):
                guard let text = feedLine(&editor, &rest, &out) else {
                    if case .prompt = mode { mode = .prompt(editor, defaultName: def) }
                    continue
                }
                let name = text.isEmpty ? def : text
                // A name that can never be taken is refused before the second question.
                do {
                    try SnapshotName.validateNew(name)
                } catch {
                    out += backToConsole(notice: "failed: " + error.message)
                    continue
                }
                mode = .describe(LineEditor(), name: name)
                out.append(.prompt(Self.describePrompt))
            case .describe(var editor, let name):
                guard let text = feedLine(&editor, &rest, &out) else {
                    if case .describe = mode { mode = .describe(editor, name: name) }
                    continue
                }
                out += backToConsole(notice: nil)
                out.append(.createSnapshot(name: name, description: text.trimmed.isEmpty ? nil : text.trimmed))
            case .confirmReset:
                let b = rest.removeFirst()
                mode = .console
                if b == UInt8(ascii: "y") || b == UInt8(ascii: "Y") {
                    out += [.echo(Array("y\r\n".utf8)), .notice("resetting the VM to the golden image"), .reset]
                } else {
                    out += [.echo([0x0D, 0x0A]), .notice("reset cancelled")]
                }
            case .sysrq:
                let b = rest.removeFirst()
                mode = .console
                let c = Character(UnicodeScalar(b))
                if b < 0x80 && (c.isLetter || c.isNumber) {
                    out.append(.sysrq(String(c).lowercased()))
                } else {
                    out.append(.notice("SysRq cancelled"))
                }
            case .console, .monitor:
                // Parse up to and including the byte after a Ctrl-a, so a command that
                // changes mode (monitor, prompt) takes effect for the bytes after it.
                let cut: Int
                if parser.awaitingCommand {
                    cut = 1
                } else if let e = rest.firstIndex(of: EscapeKeys.escape) {
                    cut = min(rest.distance(from: rest.startIndex, to: e) + 2, rest.count)
                } else {
                    cut = rest.count
                }
                let chunk = rest.prefix(cut)
                rest = rest.dropFirst(cut)
                for action in parser.feed(chunk) {
                    switch action {
                    case .forward(let data): out.append(mode == .monitor ? .toMonitor(data) : .toGuest(data))
                    case .command(let c): out += command(c, qemuReady: qemuReady, defaultName: defaultName())
                    }
                }
            }
        }
        return out
    }

    private mutating func command(_ c: EscapeCommand, qemuReady: Bool, defaultName: String) -> [ConsoleIntent] {
        switch c {
        case .quit:
            return [.notice("quitting: shutting the VM down"), .quit]
        case .help:
            return [.echo(Array(("\r\n" + EscapeKeys.helpText).utf8))]
        case .snapshot:
            var out: [ConsoleIntent] = mode == .monitor ? [.closeMonitor] : []
            mode = .prompt(LineEditor(), defaultName: defaultName)
            out.append(.prompt("snapshot name [\(defaultName)] (Enter accepts, Esc cancels): "))
            return out
        case .monitor:
            guard mode == .monitor else { return [.openMonitor] }
            return [.closeMonitor] + backToConsole(notice: "back to the guest console")
        case .status:
            return [.status]
        case .suspend:
            return [.notice("suspending: saving the VM's state"), .suspend]
        case .detach:
            return [.detach]
        case .reset:
            var out: [ConsoleIntent] = mode == .monitor ? [.closeMonitor] : []
            mode = .confirmReset
            out.append(.prompt("Reset the VM to the golden image? The runtime layer becomes the undo step (`labrun reset --undo`). [y/N] "))
            return out
        case .sendBreak:
            guard qemuReady else { return [.notice("QEMU is not ready yet")] }
            mode = .sysrq
            return [.notice("SysRq: press the command key (h lists them in the guest's log, s sync, u remount ro, b reboot)")]
        case .unknown(let b):
            return [.notice("Ctrl-a \(Self.keyName(b)) does nothing; Ctrl-a h lists the keys")]
        }
    }

    /// The monitor connection is up: keys go to it and guest output is held.
    public mutating func monitorOpened() -> [ConsoleIntent] {
        mode = .monitor
        return [.notice("QEMU monitor (guest output is kept meanwhile); Ctrl-a c returns to the guest")]
    }

    /// The monitor closed from QEMU's side.
    public mutating func monitorClosed() -> [ConsoleIntent] {
        guard mode == .monitor else { return [] }
        return backToConsole(notice: "the monitor closed; back to the guest console")
    }

    /// Back to the console: the held guest output follows labrun's line.
    public mutating func backToConsole(notice: String?) -> [ConsoleIntent] {
        mode = .console
        var out: [ConsoleIntent] = []
        if let notice { out.append(.notice(notice + (held.isEmpty ? "" : " (guest output meanwhile follows)"))) }
        if !held.isEmpty {
            out.append(.show(held))
            held.removeAll()
        }
        return out
    }

    static func keyName(_ b: UInt8) -> String {
        if b < 0x20 { return "Ctrl-" + String(UnicodeScalar(b + 0x60)) }
        if b < 0x7F { return String(UnicodeScalar(b)) }
        return "0x" + String(b, radix: 16)
    }
}
