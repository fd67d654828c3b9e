import FoundationEssentials

/// The console's delivery side, in each attached terminal: what the pure `ConsoleMux` decides
/// is carried out here, on this terminal's screen, toward the guest (through the supervisor)
/// and on the QEMU monitor view (Ctrl-a c). What reaches past the console (quit, status, a
/// snapshot, SysRq, detach) goes to the closures the viewer sets.
final class ConsoleDesk {
    private(set) var mux = ConsoleMux()
    let screen: Screen
    /// Keys for the guest (the current QEMU's console).
    var toGuest: ([UInt8]) -> Void = { _ in }
    var monitorPath: String
    private(set) var monitor: MonitorView? { didSet { onMonitorChanged() } }

    var onQuit: () -> Void = {}
    var onSuspend: () -> Void = {}
    var onReset: () -> Void = {}
    var onStatus: () -> Void = {}
    var onDetach: () -> Void = {}
    var onSnapshot: (String, String?) -> Void = { _, _ in }
    var onSysRq: (String) -> Void = { _ in }
    /// SysRq can be sent (QEMU is past its QMP handshake).
    var qemuReady: () -> Bool = { false }
    /// The monitor view came or went (the loop's parts change).
    var onMonitorChanged: () -> Void = {}

    init(screen: Screen, monitorPath: String) {
        self.screen = screen
        self.monitorPath = monitorPath
    }

    /// The screen and the held output can take more guest output.
    var canTakeOutput: Bool { !screen.isFull && mux.held.count < screen.highWater }

    func guest(_ bytes: [UInt8]) { apply(mux.guest(bytes)) }

    func keys(_ bytes: [UInt8]) {
        apply(mux.keys(bytes, qemuReady: qemuReady(), defaultName: SnapshotName.defaultName(date: Date())))
    }

    /// Guest output waiting for this terminal (on the screen's queue and held by a prompt).
    var backlog: Int { screen.queue.count + mux.held.count }

    /// Drops the backlog (the terminal stopped reading); how many bytes.
    func dropBacklog() -> Int { screen.dropQueued() + mux.dropHeld() }

    /// At exit: held output is shown, not lost.
    func releaseHeld() { if mux.isHolding { apply(mux.backToConsole(notice: nil)) } }

    func close() { monitor?.close() }

    /// The VM is being started again (a reset in place): held output is shown, and the
    /// monitor view (of the old QEMU) ends.
    func vmRestarting() {
        releaseHeld()
        monitor?.close()
        monitor = nil
    }

    private func apply(_ intents: [ConsoleIntent]) {
        for intent in intents {
            switch intent {
            case .toGuest(let keys): toGuest(keys)
            case .toMonitor(let keys): monitor?.send(keys)
            case .show(let bytes): screen.guest(bytes)
            case .echo(let bytes): screen.raw(bytes)
            case .notice(let text): screen.notice(text, now: true)
            case .prompt(let text): screen.prompt(text)
            case .quit: onQuit()
            case .suspend: onSuspend()
            case .reset: onReset()
            case .status: onStatus()
            case .detach: onDetach()
            case .createSnapshot(let name, let description): onSnapshot(name, description)
            case .openMonitor: openMonitor()
            case .closeMonitor:
                monitor?.close()
                monitor = nil
            case .sysrq(let key):
                onSysRq(key)
                screen.notice("sent SysRq \(key) (Alt-SysRq-\(key) on the guest's keyboard)", now: true)
            }
        }
    }

    private func openMonitor() {
        guard let m = try? MonitorView(path: monitorPath) else {
            return screen.notice("cannot reach the QEMU monitor at \(monitorPath)", now: true)
        }
        m.onOutput = { [unowned self] in screen.raw($0) }
        m.onClosed = { [unowned self] in
            monitor = nil
            apply(mux.monitorClosed())
        }
        monitor = m
        apply(mux.monitorOpened())
    }
}
