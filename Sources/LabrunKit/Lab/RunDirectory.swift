/// Where a lab's supervisor keeps its sockets and pid file: LAB/.labrun (mode 0700), unless
/// a socket path there would exceed the 107-byte sun_path limit; then a short per-user path
/// keyed by a hash of the lab's path, so every labrun command finds the same place.
public struct RunDirectory: Sendable {
    public let path: String

    public init(lab: String, runtimeDirectory: String? = environmentValue("XDG_RUNTIME_DIR")) {
        let local = lab + "/.labrun"
        if (local + "/control.sock").utf8.count <= UnixSocket.maxPathLength {
            path = local
            return
        }
        // The short place depends on the environment ($XDG_RUNTIME_DIR): a supervisor started
        // from a desktop terminal and a command run from ssh, cron or `sudo -u` may see
        // different ones. Use whichever already holds this lab's supervisor, so every labrun
        // command finds the same place; a new one goes to the first that fits.
        let key = "/labrun-" + fnv1a(lab)
        let candidates = [runtimeDirectory.flatMap { $0.hasPrefix("/") ? $0 + key : nil }, "/tmp/labrun-\(currentUserID)" + key]
            .compactMap { $0 }.filter { ($0 + "/control.sock").utf8.count <= UnixSocket.maxPathLength }
        let inUse = candidates.first { fileExists($0 + "/control.sock") || fileExists($0 + "/pid") }
        path = inUse ?? candidates.first ?? "/tmp/labrun-\(currentUserID)" + key
    }

    public var controlSocket: String { path + "/control.sock" }
    public var qmpSocket: String { path + "/qmp.sock" }
    public var hmpSocket: String { path + "/hmp.sock" }
    public var agentSocket: String { path + "/agent.sock" }
    /// Where terminals attach to the console (`labrun attach`).
    public var consoleSocket: String { path + "/console.sock" }
    public var pidFile: String { path + "/pid" }
    /// The snapshot an offline restore asked the next boot to resume from.
    public var resumeFile: String { path + "/resume" }

    /// Creates the directory (and a short-path parent) with mode 0700; refuses one owned by
    /// someone else or open to others.
    public func create() throws(LabrunError) {
        for dir in [parentDirectory(path), path] where !dir.hasSuffix("/tmp") && dir != "/" {
            if !createDirectory(dir, mode: 0o700) && !fileExists(dir) {
                throw LabrunError("cannot create run directory \(dir)")
            }
            if dir == path || dir.hasPrefix("/tmp/labrun-") {
                guard let st = FileStatus.ofLink(dir), st.isDirectory, st.ownerUID == currentUserID else {
                    throw LabrunError("run directory \(dir) is not a directory owned by you; remove it")
                }
                do { try setPermissions(dir, 0o700) } catch { throw error.asLabrunError }
            }
        }
    }

    /// A one-line refusal when this run directory or its control socket exists but this user
    /// may not use it (another user's supervisor: mode 0700 directory, 0600 socket); nil otherwise.
    public var permissionProblem: String? {
        guard let st = FileStatus.ofLink(path) else { return nil }
        if !isSearchable(path) || (fileExists(controlSocket) && !isReadWritable(controlSocket)) {
            return "permission denied: this lab's run directory \(path) belongs to another user (uid \(st.ownerUID)); their VM is theirs to stop"
        }
        return nil
    }

    /// Removes the sockets and pid file a dead supervisor left behind (keeps `resume`).
    public func cleanStale() {
        for f in [controlSocket, consoleSocket, qmpSocket, hmpSocket, agentSocket, pidFile] { removeFile(f) }
    }

    public func readPid() -> Int32? {
        guard let bytes = readSmallFile(pidFile, limit: 64) else { return nil }
        return Int32(String(decoding: bytes, as: UTF8.self).trimmed)
    }
}

/// FNV-1a 64-bit, hex: a stable short key for a path.
func fnv1a(_ s: String) -> String {
    var h: UInt64 = 0xcbf29ce484222325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
