import Glibc

/// A POSIX error number as a typed Swift error.
///
/// `description` comes from `strerror`. Match with `catch Errno.interrupted`.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's errno. Only `valueOrErrno` and the spawn helpers read it.
    static var current: Errno { Errno(rawValue: errno) }

    public var description: String { String(cString: strerror(rawValue)) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let ioError = Errno(rawValue: EIO)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let exists = Errno(rawValue: EEXIST)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let noChild = Errno(rawValue: ECHILD)
    public static let noProcess = Errno(rawValue: ESRCH)
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    public static let noSpace = Errno(rawValue: ENOSPC)

    public static func ~= (lhs: Errno, rhs: any Error) -> Bool {
        (rhs as? Errno) == lhs
    }
}

/// An error from a system call, with the call's name for context.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Errno
    public var description: String { "\(call): \(errno)" }
}
