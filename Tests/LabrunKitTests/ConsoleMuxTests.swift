import Testing
@testable import LabrunKit

/// The console's modes as a pure state machine: keys and guest output in, intents out.
@Suite struct ConsoleMuxTests {
    func keys(_ mux: inout ConsoleMux, _ s: [UInt8], ready: Bool = true) -> [ConsoleIntent] {
        mux.keys(s, qemuReady: ready, defaultName: "snap-default")
    }

    @Test func plainKeysAndOutputPassThrough() {
        var mux = ConsoleMux()
        #expect(keys(&mux, Array("ls\r".utf8)) == [.toGuest(Array("ls\r".utf8))])
        #expect(mux.guest([0x41]) == [.show([0x41])])
        #expect(keys(&mux, [0x01, 0x01]) == [.toGuest([0x01])])
    }

    @Test func snapshotPromptHoldsOutputAndAcceptsTheDefault() {
        var mux = ConsoleMux()
        let started = keys(&mux, [0x01, UInt8(ascii: "s")])
        #expect(started == [.prompt("snapshot name [snap-default] (Enter accepts, Esc cancels): ")])
        #expect(mux.guest(Array("boot noise".utf8)).isEmpty)
        #expect(mux.held == Array("boot noise".utf8))
        #expect(keys(&mux, [0x0D]) == [.echo([0x0D, 0x0A]), .prompt(ConsoleMux.describePrompt)])
        #expect(mux.held == Array("boot noise".utf8), "output stays held through the second question")
        let done = keys(&mux, [0x0D])
        #expect(done == [.echo([0x0D, 0x0A]), .show(Array("boot noise".utf8)), .createSnapshot(name: "snap-default", description: nil)])
        #expect(mux.mode == .console && mux.held.isEmpty)
    }

    @Test func typedNameAndKeysAfterTheLineGoToTheGuest() {
        var mux = ConsoleMux()
        _ = keys(&mux, [0x01, UInt8(ascii: "s")])
        let out = keys(&mux, Array("v2\rfirst try\rls".utf8))
        // A line typed in one read is taken whole (no per-key echo), as at the name prompt.
        #expect(out == [.echo([0x0D, 0x0A]), .prompt(ConsoleMux.describePrompt),
                        .echo([0x0D, 0x0A]), .createSnapshot(name: "v2", description: "first try"), .toGuest(Array("ls".utf8))], "\(out)")
    }

    @Test func escAtTheDescriptionCancelsTheSnapshot() {
        var mux = ConsoleMux()
        _ = keys(&mux, [0x01, UInt8(ascii: "s")])
        _ = keys(&mux, Array("v3\r".utf8))
        #expect(keys(&mux, [0x1B]) == [.echo([0x0D, 0x0A]), .notice("snapshot cancelled")])
        #expect(mux.mode == .console)
    }

    @Test func escCancelsAndShowsHeldOutputAfterTheNotice() {
        var mux = ConsoleMux()
        _ = keys(&mux, [0x01, UInt8(ascii: "s")])
        _ = mux.guest([0x42])
        let out = keys(&mux, [0x1B])
        #expect(out == [.echo([0x0D, 0x0A]), .notice("snapshot cancelled (guest output meanwhile follows)"), .show([0x42])])
    }

    @Test func monitorRoutesKeysUntilCtrlACAgain() {
        var mux = ConsoleMux()
        #expect(keys(&mux, [0x01, UInt8(ascii: "c")]) == [.openMonitor])
        #expect(mux.mode == .console, "the mode changes only once the monitor is connected")
        _ = mux.monitorOpened()
        #expect(keys(&mux, Array("info status\r".utf8)) == [.toMonitor(Array("info status\r".utf8))])
        _ = mux.guest([0x43])
        #expect(keys(&mux, [0x01, UInt8(ascii: "c"), UInt8(ascii: "z")])
                == [.closeMonitor, .notice("back to the guest console (guest output meanwhile follows)"), .show([0x43]), .toGuest([UInt8(ascii: "z")])])
    }

    @Test func sysrqTakesOneKeyAndNeedsQemu() {
        var mux = ConsoleMux()
        #expect(keys(&mux, [0x01, UInt8(ascii: "b")], ready: false) == [.notice("QEMU is not ready yet")])
        _ = keys(&mux, [0x01, UInt8(ascii: "b")])
        #expect(keys(&mux, Array("Sx".utf8)) == [.sysrq("s"), .toGuest([UInt8(ascii: "x")])])
        _ = keys(&mux, [0x01, UInt8(ascii: "b")])
        #expect(keys(&mux, [0x1B]) == [.notice("SysRq cancelled")])
    }

    @Test func unknownKeysAreSwallowedWithAHint() {
        var mux = ConsoleMux()
        #expect(keys(&mux, [0x01, 0x05, UInt8(ascii: "q")]) == [.notice("Ctrl-a Ctrl-e does nothing; Ctrl-a h lists the keys"), .toGuest([UInt8(ascii: "q")])])
        #expect(keys(&mux, [0x01, UInt8(ascii: "x")]) == [.notice("quitting: shutting the VM down"), .quit])
    }

    @Test func ctrlAZSuspends() {
        var mux = ConsoleMux()
        #expect(keys(&mux, [0x01, UInt8(ascii: "z")]) == [.notice("suspending: saving the VM's state"), .suspend])
        #expect(EscapeKeys.helpText.contains("suspend"))
    }

    @Test func ctrlAAtTheEndOfOneReadPairsWithTheNext() {
        var mux = ConsoleMux()
        #expect(keys(&mux, [UInt8(ascii: "a"), 0x01]) == [.toGuest([UInt8(ascii: "a")])])
        #expect(keys(&mux, [UInt8(ascii: "i")]) == [.status])
    }
}

/// Ctrl-a r (issue 11): a y/N question; only y resets.
@Suite struct ConsoleMuxResetTests {
    @Test func resetAsksFirstAndOnlyYesResets() {
        var mux = ConsoleMux()
        let asked = mux.keys([0x01, UInt8(ascii: "r")], qemuReady: true, defaultName: "x")
        #expect(asked.count == 1)
        guard case .prompt(let q) = asked.first else { Issue.record("no question: \(asked)"); return }
        #expect(q.contains("[y/N]"))
        #expect(mux.guest([0x41]) == [.show([0x41])], "guest output goes on while asking")
        let no = mux.keys(Array("nls".utf8), qemuReady: true, defaultName: "x")
        #expect(no == [.echo([0x0D, 0x0A]), .notice("reset cancelled"), .toGuest(Array("ls".utf8))], "\(no)")
        _ = mux.keys([0x01, UInt8(ascii: "R")], qemuReady: true, defaultName: "x")
        let yes = mux.keys([UInt8(ascii: "y")], qemuReady: true, defaultName: "x")
        #expect(yes.last == .reset && mux.mode == .console, "\(yes)")
    }
}
