/// How a child is ended: a list of steps, each an action and how long to give it before the
/// next, always ending in SIGKILL (swift-subprocess's TeardownStep, as data instead of sleeps).
public struct TeardownStep: Equatable, Sendable {
    public enum Action: Equatable, Sendable {
        /// Ask politely through the child's own protocol (QMP quit for QEMU).
        case request
        /// Send a signal; a stopped child is continued too, so it can act on it.
        case signal(Signal)
    }
    public var action: Action
    public var wait: Double

    public init(_ action: Action, wait: Double) {
        self.action = action
        self.wait = wait
    }

    /// QMP quit, then SIGTERM after 5 s, then SIGKILL after 2 s more.
    public static let graceful = [TeardownStep(.request, wait: 5), TeardownStep(.signal(.terminate), wait: 2), TeardownStep(.signal(.kill), wait: 0)]
    /// For a child that does not answer: no request, straight to the signals.
    public static let unresponsive = Array(graceful.dropFirst())
}

/// Runs the teardown steps against a child from the poll loop: `begin`, then `handle` at each
/// deadline. A `.request` step whose requester returns false (nobody to ask) is skipped.
final class Teardown: LoopPart {
    private let child: ChildProcess
    /// Asks the child to quit; false when that cannot be done now.
    private let request: () -> Bool
    private var steps: [TeardownStep] = []
    private(set) var deadline: Double?
    private(set) var started = false

    init(child: ChildProcess, request: @escaping () -> Bool) {
        self.child = child
        self.request = request
    }

    var interests: [PollInterest] { [] }

    /// What the step being waited out is.
    private var current: TeardownStep.Action?

    /// Starts ending the child (once; later calls change nothing).
    func begin(_ steps: [TeardownStep] = TeardownStep.graceful) {
        guard child.status == nil, !started else { return }
        started = true
        self.steps = steps
        next()
    }

    /// The child will not answer a request: stop waiting for it and go on to the signals now.
    func escalate() {
        if current == .request { next() }
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard let d = deadline, now >= d else { return }
        next()
    }

    private func next() {
        guard child.status == nil, !steps.isEmpty else { deadline = nil; return }
        let step = steps.removeFirst()
        current = step.action
        switch step.action {
        case .request:
            guard request() else { return next() }
        case .signal(let s):
            child.send(s)
            if s != .kill { child.send(.continue) }
        }
        deadline = steps.isEmpty ? nil : monotonicSeconds() + step.wait
    }
}
