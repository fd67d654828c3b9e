/// A user-facing failure: one line that says what to do, and the exit code.
///
/// Exit codes: 1 for a refused or failed operation, 64 (EX_USAGE) for bad command-line usage.
public struct LabrunError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public let exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }

    public static func usage(_ message: String) -> LabrunError {
        LabrunError(message, exitCode: 64)
    }

    public var description: String { message }
}

extension SystemCallError {
    /// A system failure as a user-facing error.
    public var asLabrunError: LabrunError { LabrunError(description) }
}
