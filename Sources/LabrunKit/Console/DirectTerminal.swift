/// A terminal the supervisor relays itself (issue 12's keystroke figure): `labrun boot` or
/// `labrun attach` passed its terminal's descriptors with its hello (SCM_RIGHTS), so a key and
/// its echo cross one relay, as before the console split, instead of two. Its keyboard, its
/// screen and its Ctrl-a desk (prompts, the monitor view) live here; the client process only
/// keeps the terminal's mode (and its guard), its size and its signals.
final class DirectTerminal {
    let input: FileDescriptor
    let output: FileDescriptor
    let keyboard: Keyboard
    let screen: Screen
    let desk: ConsoleDesk

    init(input: FileDescriptor, output: FileDescriptor, monitorPath: String) {
        self.input = input
        self.output = output
        // The same open terminal as the client's, which set it non-blocking (and puts it back).
        try? input.setNonBlocking(true)
        try? output.setNonBlocking(true)
        keyboard = Keyboard(fd: input)
        screen = Screen(fd: output)
        desk = ConsoleDesk(screen: screen, monitorPath: monitorPath)
        desk.qemuReady = { true }
        keyboard.onKeys = { [unowned desk] in desk.keys($0) }
    }

    func addInterests(to set: inout PollSet) {
        keyboard.addInterests(to: &set)
        screen.addInterests(to: &set)
        desk.monitor?.addInterests(to: &set)
    }

    var interests: [PollInterest] { keyboard.interests + screen.interests + (desk.monitor?.interests ?? []) }

    var deadline: Double? { screen.deadline }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        keyboard.handle(ready, now: now)
        screen.handle(ready, now: now)
        desk.monitor?.handle(ready, now: now)
    }

    /// Shows what is held and writes what is queued, for up to `seconds` (before the terminal
    /// goes back to its client).
    func finish(seconds: Double) {
        desk.releaseHeld()
        screen.drain(seconds: seconds)
    }

    func close() {
        desk.close()
        input.close()
        output.close()
    }
}
