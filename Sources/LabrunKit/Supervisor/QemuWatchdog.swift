/// Tells a busy QEMU from a hung one while QMP has a command waiting for its reply. QMP does
/// not answer during a long savevm or loadvm, so silence alone means nothing: what counts is
/// the process's state and whether it does I/O (the runtime layer grows as VM state is
/// written). A QEMU that is stopped (SIGSTOP), stuck in uninterruptible I/O, or makes no
/// progress for `stallLimit` is judged hung; when its replies come again it has recovered.
final class QemuWatchdog: LoopPart {
    let pid: Int32
    /// The file QEMU writes VM state into (its growth is progress).
    let image: String
    /// When the oldest QMP command still waiting was sent; nil when none waits.
    var busySince: () -> Double? = { nil }
    /// Every `progressInterval` while QMP has been silent for longer than that.
    var onProgress: (String) -> Void = { _ in }
    var onHung: (String) -> Void = { _ in }
    var onRecovered: () -> Void = {}
    /// Whether a client waits on QEMU or the guest without a QMP command of its own pending
    /// (an `exec`): then QEMU is asked `probe` every `progressInterval`, so a stopped QEMU is
    /// noticed there too.
    var wantsProbe: () -> Bool = { false }
    var probe: () -> Void = {}
    private var nextProbe: Double = 0

    /// How long QMP may be silent before progress is shown (and how often after that).
    let progressInterval: Double
    /// No I/O and no growth of the image for this long: hung.
    let stallLimit: Double
    /// In state D with no progress for this long: hung.
    let uninterruptibleLimit: Double

    /// Why QEMU is judged hung, while it is.
    private(set) var hung: String?
    private var nextCheck: Double?
    private var watchStart: Double?
    private var startSize: Int64 = 0
    private var lastProgress: (io: UInt64?, size: Int64, at: Double) = (nil, 0, 0)
    private var uninterruptibleSince: Double?

    init(pid: Int32, image: String, progressInterval: Double = 2, stallLimit: Double = 30, uninterruptibleLimit: Double = 10) {
        self.pid = pid
        self.image = image
        self.progressInterval = progressInterval
        self.stallLimit = stallLimit
        self.uninterruptibleLimit = uninterruptibleLimit
    }

    var interests: [PollInterest] { [] }
    var deadline: Double? {
        if let since = busySince() { return max(since + progressInterval, nextCheck ?? 0) }
        return wantsProbe() ? nextProbe : nil
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if busySince() == nil, wantsProbe(), now >= nextProbe {
            nextProbe = now + progressInterval
            probe()
        }
        guard let since = busySince() else {
            if hung != nil {
                hung = nil
                onRecovered()
            }
            watchStart = nil
            nextCheck = nil
            return
        }
        if watchStart != since { begin(since, now: now) }
        guard now - since >= progressInterval, now >= (nextCheck ?? 0) else { return }
        nextCheck = now + progressInterval
        check(since, now: now)
    }

    private func begin(_ since: Double, now: Double) {
        watchStart = since
        startSize = FileStatus.of(image)?.allocatedBytes ?? 0
        lastProgress = (ProcessSample.of(pid)?.ioBytes, startSize, now)
        uninterruptibleSince = nil
        nextCheck = nil
    }

    private func check(_ since: Double, now: Double) {
        guard hung == nil, let sample = ProcessSample.of(pid) else { return }
        let size = FileStatus.of(image)?.allocatedBytes ?? 0
        if sample.ioBytes != lastProgress.io || size != lastProgress.size { lastProgress = (sample.ioBytes, size, now) }
        uninterruptibleSince = sample.state == "D" ? (uninterruptibleSince ?? now) : nil
        let what = "QEMU (pid \(pid)) is \(sample.stateName)"
        if sample.isStopped {
            return declare("\(what) and does not answer")
        }
        if let d = uninterruptibleSince, now - d >= uninterruptibleLimit, now - lastProgress.at >= uninterruptibleLimit {
            return declare("\(what) for \(Int(now - d)) s with no progress")
        }
        if now - lastProgress.at >= stallLimit {
            return declare("\(what) but has made no progress for \(Int(now - lastProgress.at)) s")
        }
        let grown = max(0, size - startSize)
        let written = grown >= 1 << 20 ? ": \(formatBytes(UInt64(grown))) of VM state written so far" : ""
        onProgress("QEMU is working (\(Int(now - since)) s\(written))")
    }

    private func declare(_ why: String) {
        hung = why
        onHung(why)
    }

    /// QEMU's state now, for `status`: a reason when it cannot answer (stopped), else nil.
    var notResponding: String? {
        if let hung { return hung }
        if let s = ProcessSample.of(pid), s.isStopped { return "QEMU (pid \(pid)) is \(s.stateName) and does not answer" }
        return nil
    }
}
