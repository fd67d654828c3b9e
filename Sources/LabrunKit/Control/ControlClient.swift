import FoundationEssentials

/// The short-lived, blocking client side: `labrun snapshot create NAME` in another terminal.
public enum ControlClient {
    /// Connects to a supervisor's control socket; nil when nobody answers there.
    public static func connect(_ path: String) -> FileDescriptor? {
        try? UnixSocket.connect(path: path)
    }

    /// Sends one request and returns the final response; progress lines go to `progress`.
    public static func send(_ request: ControlRequest, on fd: FileDescriptor, timeout: Int = 600,
                            progress: (ControlResponse) -> Void = { _ in }) throws(LabrunError) -> ControlResponse {
        defer { fd.close() }
        UnixSocket.setReceiveTimeout(fd, seconds: timeout)
        do { try fd.writeAll(request.encodedLine()) } catch { throw LabrunError("the supervisor closed the control connection: \(error.errno)") }
        var lines = LineBuffer(limit: 64 << 20)
        while true {
            switch fd.read() {
            case .success(let bytes) where !bytes.isEmpty:
                for r in try responses(bytes, &lines) {
                    if !r.final { progress(r); continue }
                    return r
                }
            case .failure(.wouldBlock):
                throw LabrunError("no answer from the supervisor in \(timeout) s; check `labrun status`")
            default:
                throw LabrunError("the supervisor closed the connection before answering (did the VM stop?)")
            }
        }
    }

    /// The responses complete in `lines` once `bytes` are added (one JSON object a line).
    static func responses(_ bytes: [UInt8], _ lines: inout LineBuffer) throws(LabrunError) -> [ControlResponse] {
        guard let got = try? lines.append(bytes) else { throw LabrunError("oversized reply from the supervisor") }
        return try got.map { line throws(LabrunError) in
            guard let r = try? JSONDecoder().decode(ControlResponse.self, from: Data(line)) else {
                throw LabrunError("malformed reply from the supervisor")
            }
            return r
        }
    }
}
