import FoundationEssentials

/// A QMP error: `class` (GenericError, CommandNotFound, …) and the human `desc`.
public struct QMPError: Error, Codable, Equatable, Sendable, CustomStringConvertible {
    public let errorClass: String
    public let desc: String
    enum CodingKeys: String, CodingKey { case errorClass = "class", desc }
    public init(errorClass: String, desc: String) { self.errorClass = errorClass; self.desc = desc }
    public var description: String { desc }

    /// The connection closed or QEMU went away before the reply.
    public static let disconnected = QMPError(errorClass: "labrun.Disconnected", desc: "QEMU closed the QMP connection")
}

/// One message from QEMU: the greeting, a reply (matched by id) or an event. Unknown keys ignored.
public enum QMPMessage: Equatable, Sendable {
    case greeting
    case reply(id: Int, Result<JSONValue, QMPError>)
    case event(name: String, data: JSONValue?)
    /// A reply without an id (labrun always sends ids) or anything else unexpected.
    case unrecognized

    private struct Wire: Decodable {
        var QMP: JSONValue?
        var `return`: JSONValue?
        var error: QMPError?
        var event: String?
        var data: JSONValue?
        var id: JSONValue?
    }

    /// Decodes one line. Throws on malformed JSON.
    public static func decode(_ line: [UInt8]) throws -> QMPMessage {
        let w = try JSONDecoder().decode(Wire.self, from: Data(line))
        if w.QMP != nil { return .greeting }
        if let name = w.event { return .event(name: name, data: w.data) }
        guard let id = w.id?.int else { return .unrecognized }
        if let e = w.error { return .reply(id: Int(id), .failure(e)) }
        if let r = w.return { return .reply(id: Int(id), .success(r)) }
        return .unrecognized
    }
}

/// One command to QEMU. Encoded as one JSON line with an id.
public struct QMPCommand: Encodable, Sendable {
    public let execute: String
    public let arguments: JSONValue?
    public var id: Int = 0

    public init(_ execute: String, _ arguments: [String: JSONValue]? = nil) {
        self.execute = execute
        self.arguments = arguments.map { .object($0) }
    }

    public static let capabilities = QMPCommand("qmp_capabilities")
    public static let quit = QMPCommand("quit")
    public static let queryStatus = QMPCommand("query-status")
    public static let cont = QMPCommand("cont")
    public static let queryNamedBlockNodes = QMPCommand("query-named-block-nodes", ["flat": .bool(true)])
    public static let queryMigrate = QMPCommand("query-migrate")
    public static let queryJobs = QMPCommand("query-jobs")

    /// An HMP command through QMP (savevm, loadvm, delvm, sendkey): success is an empty
    /// string; HMP reports errors as text, which `HMPResult` recognises.
    public static func human(_ line: String) -> QMPCommand {
        QMPCommand("human-monitor-command", ["command-line": .string(line)])
    }

    public func encodedLine() -> [UInt8] {
        jsonLine(self)
    }
}

/// HMP's output from human-monitor-command: QEMU 7.2 prints errors as "Error: …" text.
public enum HMPResult {
    public static func error(in output: String) -> String? {
        let trimmed = output.trimmed
        guard !trimmed.isEmpty else { return nil }
        for line in trimmed.split(whereSeparator: \.isNewline) where line.hasPrefix("Error:") {
            return String(line.dropFirst(6)).trimmed
        }
        return nil
    }
}
