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

/// The wire names of the operations (`op`).
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
    case suspend
    /// Reset the running VM in place (`undo`: back to the previous runtime layer).
    case reset
    /// A file from the guest, through its agent (`labrun gdb` reads /proc/kallsyms).
    case readFile = "read-file"
    /// Rename a snapshot of the running VM's runtime layer (`name` → `newName`).
    case snapshotRename = "snapshot.rename"
    /// Copy the running VM's disk into a standalone qcow2 (a QMP backup job).
    case export
}

/// What a client asks of the supervisor.
public enum ControlCommand: Equatable, Sendable {
    case status
    case stop
    /// Answered once the guest agent is up (the guest has booted).
    case waitReady
    /// A shell command line to run in the guest, and its time limit in seconds (0: none).
    case exec(command: String, timeout: Int)
    case snapshot(SnapshotRequest)
    /// Save the whole VM to disk and end QEMU; the next boot resumes it.
    case suspend
    /// Start the VM again on a fresh runtime layer (or, `undo`, on the previous one), in
    /// place: the console stays open.
    case reset(undo: Bool)
    /// A guest file's bytes (gzip-compressed, base64 in the response's `stdout`).
    case readFile(path: String)
    /// Rename a snapshot (QEMU cannot while it holds the image: the VM is suspended around it).
    case renameSnapshot(old: String, new: String)
    /// Back the running disk up into `path` (absolute: an empty standalone qcow2 of the
    /// disk's size, made by the client); progress lines carry `transfer`. `speed` limits the job (bytes/s, 0: none).
    case export(path: String, compress: Bool, speed: Int)
}

public struct ControlRequest: Equatable, Sendable {
    public var v: Int
    public var command: ControlCommand

    public init(_ command: ControlCommand) {
        self.v = ControlProtocol.version
        self.command = command
    }

    /// The request as it travels: `op` plus the fields that operation has.
    private struct Wire: Codable {
        var v: Int
        var op: ControlOperation
        var name: String?
        var force: Bool?
        var diskOnly: Bool?
        var command: String?
        var timeout: Int?
        var undo: Bool?
        var newName: String?
        var path: String?
        var compress: Bool?
        var speed: Int?
    }

    private var wire: Wire {
        var w = Wire(v: v, op: .status)
        switch command {
        case .status: w.op = .status
        case .stop: w.op = .stop
        case .waitReady: w.op = .waitReady
        case .suspend: w.op = .suspend
        case .reset(let undo): w.op = .reset; w.undo = undo
        case .readFile(let path): w.op = .readFile; w.command = path
        case .renameSnapshot(let old, let new): w.op = .snapshotRename; w.name = old; w.newName = new
        case .export(let path, let compress, let speed): w.op = .export; w.path = path; w.compress = compress; w.speed = speed
        case .exec(let line, let timeout): w.op = .exec; w.command = line; w.timeout = timeout
        case .snapshot(.list): w.op = .snapshotList
        case .snapshot(.create(let name, let force, let diskOnly)):
            w.op = .snapshotCreate; w.name = name; w.force = force; w.diskOnly = diskOnly
        case .snapshot(.restore(let name)): w.op = .snapshotRestore; w.name = name
        case .snapshot(.delete(let name)): w.op = .snapshotDelete; w.name = name
        }
        return w
    }

    private init(_ w: Wire) {
        v = w.v
        switch w.op {
        case .status: command = .status
        case .stop: command = .stop
        case .waitReady: command = .waitReady
        case .suspend: command = .suspend
        case .reset: command = .reset(undo: w.undo ?? false)
        case .readFile: command = .readFile(path: w.command ?? "")
        case .snapshotRename: command = .renameSnapshot(old: w.name ?? "", new: w.newName ?? "")
        case .export: command = .export(path: w.path ?? "", compress: w.compress ?? false, speed: w.speed ?? 0)
        case .exec: command = .exec(command: w.command ?? "", timeout: w.timeout ?? 0)
        case .snapshotList: command = .snapshot(.list)
        // A missing name is the empty name, which the snapshot rules refuse.
        case .snapshotCreate: command = .snapshot(.create(name: w.name ?? "", force: w.force ?? false, diskOnly: w.diskOnly ?? false))
        case .snapshotRestore: command = .snapshot(.restore(name: w.name ?? ""))
        case .snapshotDelete: command = .snapshot(.delete(name: w.name ?? ""))
        }
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
            return .success(ControlRequest(try JSONDecoder().decode(Wire.self, from: Data(line))))
        } catch {
            return .failure(LabrunError("malformed control request: unknown operation or wrong field types"))
        }
    }

    public func encodedLine() -> [UInt8] {
        jsonLine(wire)
    }

    /// The operation's wire name.
    public var op: ControlOperation { wire.op }
}

/// What `status` reports about a running supervisor.
public struct SupervisorStatus: Codable, Equatable, Sendable {
    public var lab: String
    public var runDirectory: String
    public var supervisorPid: Int32
    public var qemuPid: Int32
    /// QEMU's run state from query-status ("running", "paused", …), "starting", or "not
    /// responding" when QEMU has stopped answering (stopped, stuck, or making no progress).
    public var runState: String
    public var uptimeSeconds: Double
    public var accelerator: String
    public var shared: String?
    public var gdbPort: Int?
    /// The guest agent answers (exec, share handling around snapshots).
    public var agent: Bool?
    /// Why QEMU is judged not responding (its pid and process state), when it is.
    public var notResponding: String?
    /// The guest kernel: "running", "panicked", "oopsed N times" or "not responding".
    public var guest: String?
    /// The title of the last kernel crash report, if any.
    public var lastReport: String?
    /// The kernel the VM booted (the lab's, or `--kernel`).
    public var kernel: String?
    /// What the boot checkpoint waits for, while one is being made (keys and guest requests wait).
    public var bootCheckpoint: String?
}

public struct ControlResponse: Codable, Equatable, Sendable {
    public var v: Int = ControlProtocol.version
    /// false for a progress line, true for the one final response.
    public var final: Bool = true
    public var ok: Bool = true
    /// A line for the user (progress or result).
    public var message: String?
    public var exitCode: Int32?
    /// What a snapshot request did (typed; `Messages` renders it).
    public var outcome: SnapshotOutcome?
    public var status: SupervisorStatus?
    /// `exec` progress lines: output of the guest command, as it comes.
    public var stdout: String?
    public var stderr: String?
    /// `export` progress: bytes copied so far of the total.
    public var transfer: TransferProgress?

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

/// How far a copy has come (a live export's backup job).
public struct TransferProgress: Codable, Equatable, Sendable {
    public var done: Int64
    public var total: Int64

    public init(done: Int64, total: Int64) {
        self.done = done
        self.total = total
    }

    /// 0…100.
    public var percent: Double { total > 0 ? min(100, Double(done) * 100 / Double(total)) : 0 }
}
