import FoundationEssentials

/// The control protocol between `labrun <command>` and a running supervisor: one JSON object
/// per line each way, over `control.sock` (mode 0600, peer uid checked). The client sends one
/// request; the server answers with zero or more progress lines (`final` false) and one final
/// response, then closes. Every message carries `v`; a server refuses versions it doesn't know.
public enum ControlProtocol {
    public static let version = 1
    /// The longest request line the server reads before refusing it.
    public static let maxRequestBytes = 64 * 1024
}

public enum ControlOperation: String, Codable, Sendable, CaseIterable {
    case status
    case snapshotCreate = "snapshot.create"
    case snapshotRestore = "snapshot.restore"
    case snapshotDelete = "snapshot.delete"
    case snapshotList = "snapshot.list"
    case stop
    case exec
    /// Answered once the guest agent is up (the guest has booted).
    case waitReady = "wait-ready"
}

public struct ControlRequest: Codable, Equatable, Sendable {
    public var v: Int
    public var op: ControlOperation
    public var name: String?
    public var force: Bool?
    public var diskOnly: Bool?
    /// `exec`: the shell command line to run in the guest, and its time limit in seconds (0: none).
    public var command: String?
    public var timeout: Int?

    public init(_ op: ControlOperation, name: String? = nil, force: Bool? = nil, diskOnly: Bool? = nil,
                command: String? = nil, timeout: Int? = nil) {
        self.v = ControlProtocol.version
        self.op = op
        self.name = name
        self.force = force
        self.diskOnly = diskOnly
        self.command = command
        self.timeout = timeout
    }

    /// Decodes one line, with a one-line error for each way it can be wrong.
    public static func decode(_ line: [UInt8]) -> Result<ControlRequest, LabrunError> {
        struct Versioned: Decodable { var v: Int? }
        guard let versioned = try? JSONDecoder().decode(Versioned.self, from: Data(line)) else {
            return .failure(LabrunError("malformed control request: not a JSON object"))
        }
        guard versioned.v == ControlProtocol.version else {
            return .failure(LabrunError("unsupported control protocol version \(versioned.v.map(String.init) ?? "(none)"): this supervisor speaks \(ControlProtocol.version); use the same labrun binary for both"))
        }
        do {
            return .success(try JSONDecoder().decode(ControlRequest.self, from: Data(line)))
        } catch {
            return .failure(LabrunError("malformed control request: unknown operation or wrong field types"))
        }
    }
}

/// What `status` reports about a running supervisor.
public struct SupervisorStatus: Codable, Equatable, Sendable {
    public var lab: String
    public var runDirectory: String
    public var supervisorPid: Int32
    public var qemuPid: Int32
    /// QEMU's run state from query-status ("running", "paused", …), or "starting".
    public var runState: String
    public var uptimeSeconds: Double
    public var accelerator: String
    public var shared: String?
    public var gdbPort: Int?
    /// The guest agent answers (exec, share handling around snapshots).
    public var agent: Bool?
}

public struct ControlResponse: Codable, Equatable, Sendable {
    public var v: Int = ControlProtocol.version
    /// false for a progress line, true for the one final response.
    public var final: Bool = true
    public var ok: Bool = true
    /// A line for the user (progress or result).
    public var message: String?
    public var exitCode: Int32?
    public var snapshots: [SnapshotInfo]?
    public var snapshot: SnapshotInfo?
    public var status: SupervisorStatus?
    public var seconds: Double?
    /// `exec` progress lines: output of the guest command, as it comes.
    public var stdout: String?
    public var stderr: String?

    public init() {}

    public static func progress(_ message: String) -> ControlResponse {
        var r = ControlResponse()
        r.final = false
        r.message = message
        return r
    }

    public static func failure(_ error: LabrunError) -> ControlResponse {
        var r = ControlResponse()
        r.ok = false
        r.message = error.message
        r.exitCode = error.exitCode
        return r
    }

    public func encodedLine() -> [UInt8] {
        jsonLine(self)
    }

}

extension ControlRequest {
    public func encodedLine() -> [UInt8] {
        jsonLine(self)
    }
}
