import FoundationEssentials

/// The console socket between the supervisor and each attached terminal (`labrun boot`'s own
/// terminal, `labrun attach`): length-prefixed frames, one type byte and a 32-bit big-endian
/// length, then the payload (raw bytes, or one JSON object). The supervisor sends the guest's
/// output and its own notices; a terminal sends keys, its size and its console commands.
public enum ConsoleProtocol {
    public static let version = 1
    /// The largest frame either side accepts.
    public static let maxFrame = 1 << 20
}

/// What a terminal says first.
public struct ConsoleHello: Codable, Equatable, Sendable {
    public var v = ConsoleProtocol.version
    /// The terminal that started the boot: while it is attached, killing it (SIGKILL) ends the
    /// VM as before; any other terminal only ever detaches.
    public var owner = false
    /// Only watches: keys are not sent.
    public var readOnly = false
    public var rows: Int?
    public var columns: Int?
    /// The terminal's TERM.
    public var term: String?
    /// The terminal's own descriptors (input, output) came with this hello (SCM_RIGHTS): the
    /// supervisor relays that terminal itself, without the hop through this process.
    public var direct: Bool?

    public init() {}
}

/// The supervisor's answer to a hello.
public struct ConsoleWelcome: Codable, Equatable, Sendable {
    public var lab: String
    public var supervisorPid: Int32
    /// The QEMU monitor's socket (Ctrl-a c connects to it).
    public var monitorSocket: String
    /// Other terminals attached at this moment.
    public var others: Int
    /// The supervisor took the terminal's descriptors and relays it itself: the client then only
    /// keeps the terminal's mode, its size and its signals.
    public var direct: Bool?
}

/// The supervisor's last word to a terminal: why the console ends.
public struct ConsoleFarewell: Codable, Equatable, Sendable {
    public var message: String
    public var exitCode: Int32
}

/// Console commands a terminal sends (its Ctrl-a keys that act on the VM).
public enum ConsoleCommand: Codable, Equatable, Sendable {
    case quit
    case suspend
    case reset
    case snapshot(name: String, description: String? = nil)
    case sysrq(key: String)
    case status
}

public enum ConsoleMessage: Equatable, Sendable {
    // supervisor → terminal
    case output([UInt8])
    case notice(String)
    /// A notice shown at once, even in the middle of a guest line (what follows it belongs after it).
    case urgentNotice(String)
    case welcome(ConsoleWelcome)
    case farewell(ConsoleFarewell)
    // terminal → supervisor
    case hello(ConsoleHello)
    case keys([UInt8])
    case resize(rows: Int, columns: Int)
    case command(ConsoleCommand)
    /// This terminal leaves; why ("hang-up" when its terminal went away, empty for Ctrl-a d).
    /// From the supervisor to a direct terminal: it has left (its Ctrl-a d, or its hang-up).
    case detach(String)

    var type: UInt8 {
        switch self {
        case .output: UInt8(ascii: "O")
        case .notice: UInt8(ascii: "N")
        case .urgentNotice: UInt8(ascii: "U")
        case .welcome: UInt8(ascii: "W")
        case .farewell: UInt8(ascii: "F")
        case .hello: UInt8(ascii: "H")
        case .keys: UInt8(ascii: "K")
        case .resize: UInt8(ascii: "R")
        case .command: UInt8(ascii: "C")
        case .detach: UInt8(ascii: "D")
        }
    }

    private var payload: [UInt8] {
        func json(_ v: some Encodable) -> [UInt8] { Array((try? JSONEncoder().encode(v)) ?? Data()) }
        switch self {
        case .output(let b), .keys(let b): return b
        case .notice(let t), .urgentNotice(let t): return Array(t.utf8)
        case .welcome(let w): return json(w)
        case .farewell(let f): return json(f)
        case .hello(let h): return json(h)
        case .resize(let r, let c): return Array("\(r) \(c)".utf8)
        case .command(let c): return json(c)
        case .detach(let why): return Array(why.utf8)
        }
    }

    /// The frame as it travels.
    public var frame: [UInt8] { Self.frame(type, payload) }

    static func frame(_ type: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return [type, UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)] + payload
    }

    /// An output frame built straight from the bytes (the console's hot path).
    public static func outputFrame(_ bytes: [UInt8]) -> [UInt8] { frame(UInt8(ascii: "O"), bytes) }

    static func decode(type: UInt8, _ p: [UInt8]) -> ConsoleMessage? {
        func json<T: Decodable>(_ t: T.Type) -> T? { try? JSONDecoder().decode(T.self, from: Data(p)) }
        switch type {
        case UInt8(ascii: "O"): return .output(p)
        case UInt8(ascii: "K"): return .keys(p)
        case UInt8(ascii: "N"): return .notice(String(decoding: p, as: UTF8.self))
        case UInt8(ascii: "U"): return .urgentNotice(String(decoding: p, as: UTF8.self))
        case UInt8(ascii: "W"): return json(ConsoleWelcome.self).map { .welcome($0) }
        case UInt8(ascii: "F"): return json(ConsoleFarewell.self).map { .farewell($0) }
        case UInt8(ascii: "H"): return json(ConsoleHello.self).map { .hello($0) }
        case UInt8(ascii: "C"): return json(ConsoleCommand.self).map { .command($0) }
        case UInt8(ascii: "D"): return .detach(String(decoding: p, as: UTF8.self))
        case UInt8(ascii: "R"):
            let parts = String(decoding: p, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
            guard parts.count == 2, (1...10_000).contains(parts[0]), (1...10_000).contains(parts[1]) else { return nil }
            return .resize(rows: parts[0], columns: parts[1])
        default: return nil
        }
    }
}

/// Splits a byte stream into console messages.
public struct ConsoleFrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public enum DecodeError: Error, Equatable { case tooLarge, malformed }

    /// Appends bytes; returns the complete messages. A frame too large or not understood
    /// throws (the connection is then closed).
    public mutating func append(_ bytes: [UInt8]) throws(DecodeError) -> [ConsoleMessage] {
        buffer += bytes
        var out: [ConsoleMessage] = []
        while buffer.count - start >= 5 {
            let n = Int(buffer[start + 1]) << 24 | Int(buffer[start + 2]) << 16 | Int(buffer[start + 3]) << 8 | Int(buffer[start + 4])
            guard n <= ConsoleProtocol.maxFrame else { throw .tooLarge }
            guard buffer.count - start >= 5 + n else { break }
            guard let m = ConsoleMessage.decode(type: buffer[start], Array(buffer[(start + 5)..<(start + 5 + n)])) else { throw .malformed }
            out.append(m)
            start += 5 + n
        }
        if start > 0 && (start == buffer.count || start > 65536) {
            buffer.removeFirst(start)
            start = 0
        }
        return out
    }
}
