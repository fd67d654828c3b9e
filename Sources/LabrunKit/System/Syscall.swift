import Glibc

/// The single choke point for errno and EINTR: runs `body`, turns -1 into the current
/// errno, and retries only on EINTR when `retryOnInterrupt` is set. Nothing else reads errno.
@inline(__always)
func valueOrErrno<T: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ body: () -> T
) -> Result<T, Errno> {
    while true {
        let value = body()
        if value != -1 { return .success(value) }
        let err = Errno.current
        if retryOnInterrupt && err == .interrupted { continue }
        return .failure(err)
    }
}

/// Like `valueOrErrno`, for calls that return 0 or -1 and whose value does not matter.
@inline(__always)
func nothingOrErrno<T: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ body: () -> T
) -> Result<Void, Errno> {
    valueOrErrno(retryOnInterrupt: retryOnInterrupt, body).map { _ in () }
}

/// For the posix_spawn family and friends, which return the error code instead of setting errno.
@inline(__always)
func checkReturnCode(_ call: String, _ code: Int32) throws(SystemCallError) {
    if code != 0 { throw SystemCallError(call: call, errno: Errno(rawValue: code)) }
}

extension Result where Failure == Errno {
    /// Unwraps, naming the call in the thrown error.
    @inline(__always)
    func get(_ call: String) throws(SystemCallError) -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let err): throw SystemCallError(call: call, errno: err)
        }
    }
}
