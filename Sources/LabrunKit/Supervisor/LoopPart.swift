/// One job of the supervisor's poll loop. The supervisor collects every part's interests and
/// deadline, waits once, and hands each part the readiness of the descriptors it asked for.
/// A part knows nothing of the others: what it produces goes out through closures the
/// supervisor wires up.
protocol LoopPart: AnyObject {
    /// The descriptors this part wants polled now.
    var interests: [PollInterest] { get }
    /// When this part next needs a turn without any descriptor being ready (monotonic seconds).
    var deadline: Double? { get }
    /// Called once per loop turn with the readiness of this part's descriptors (possibly none).
    func handle(_ ready: [FileDescriptor: Readiness], now: Double)
    /// Adds `interests` to the loop's set (parts on the console's hot path do it without an array).
    func addInterests(to set: inout PollSet)
}

extension LoopPart {
    var deadline: Double? { nil }
    func addInterests(to set: inout PollSet) { for i in interests { set.add(i) } }
}

/// The signal self-pipe as a loop part: each signal that arrived goes to `onSignal`.
final class SignalEvents: LoopPart {
    let pipe: SignalPipe
    var onSignal: (Signal) -> Void = { _ in }

    init(_ signals: [Signal]) throws(SystemCallError) { pipe = try SignalPipe(signals) }

    var interests: [PollInterest] { [PollInterest(pipe.readEnd)] }
    func addInterests(to set: inout PollSet) { set.add(pipe.readEnd) }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard ready[pipe.readEnd] != nil else { return }
        pipe.drain().forEach(onSignal)
    }
}
