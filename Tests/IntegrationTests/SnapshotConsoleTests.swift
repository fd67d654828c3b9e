import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 3, "In-session": Ctrl-a s and Ctrl-a c driven through a pty.
extension SnapshotSuites {
    @Suite struct SnapshotConsoleTests {
        static let promptText = "(Enter accepts, Esc cancels): "

        /// Ctrl-a s: Enter takes the default name, a typed name is used, Esc cancels, a bad name
        /// is refused with one line; each result is one `[labrun]` line with the time it took.
        @Test func ctrlASPromptsDefaultTypedCancelAndBadName() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()

            try session.ctrlA("s")
            let prompt = try session.expect(Self.promptText)
            // "[labrun] snapshot name [snap-YYYYMMDD-HHMMSS] (Enter accepts, Esc cancels): "
            let open = try #require(prompt.firstRange(of: "[labrun] snapshot name ["))
            let defaultName = String(prompt[open.upperBound...].prefix { $0 != "]" })
            #expect(defaultName.count == "snap-20260101-120000".count && defaultName.hasPrefix("snap-"), "\(defaultName)")
            try SnapshotName.validate(defaultName)
            try session.send("\r")
            try session.expect("description (optional")
            try session.send("\r")
            let created = try session.expect(" s\r\n")
            #expect(created.contains("[labrun] snapshot '\(defaultName)' created ("))
            #expect(created.contains("of VM state) in "))

            try session.ctrlA("s")
            try session.expect(Self.promptText)
            try session.send("typed-name\r")
            try session.expect("description (optional")
            try session.send("works: hello loaded\r")
            #expect(try session.expect(" s\r\n").contains("[labrun] snapshot 'typed-name' created ("))

            try session.ctrlA("s")
            try session.expect(Self.promptText)
            try session.send("not-taken")
            try session.send([0x1B])
            try session.expect("[labrun] snapshot cancelled")

            try session.ctrlA("s")
            try session.expect(Self.promptText)
            try session.send("bad name\r")
            try session.expect("[labrun] failed: ")
            let reason = try session.expect("\r\n")
            #expect(reason.contains("contains whitespace"))

            try session.ctrlA("s")
            try session.expect(Self.promptText)
            try session.send("$(touch /tmp/pwned)\r")
            try session.expect("[labrun] failed: snapshot name '$(touch /tmp/pwned)' contains the shell character '$'")
            #expect(!fileExists("/tmp/pwned"))

            // The keys typed at the prompt never reached the guest; the guest still answers.
            #expect(try session.shell("echo alive").contains("alive"))
            #expect(!session.text.contains("not-taken: not found"))
            let names = try lab.listJSON().map(\.name)
            #expect(names == [defaultName, "typed-name"])
            #expect(try lab.qemuImgSnapshots().map(\.name) == names)
            try session.quit()
        }

        /// Ctrl-a c: the QEMU monitor shows the snapshots (`info snapshots`), `info status` works,
        /// Ctrl-a c returns; guest output produced meanwhile is shown after return, not lost.
        @Test func ctrlACMonitorAndBackKeepsGuestOutput() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()
            try lab.ok(["snapshot", "create", "seen-in-monitor"])

            try session.send("sleep 1; echo later-$((6*7))\r")
            try session.ctrlA("c")
            try session.expect("(qemu) ")
            try session.send("info snapshots\r")
            let listing = try session.expect("(qemu) ")
            #expect(listing.contains("seen-in-monitor"))
            try session.send("info status\r")
            #expect(try session.expect("(qemu) ").contains("VM status: running"))
            // Stay in the monitor until the guest has certainly printed its line.
            let start = monotonicSeconds()
            while monotonicSeconds() - start < 2 { session.pump(timeout: 0.1) }
            #expect(!session.text.contains("later-42"), "guest output was mixed into the monitor")

            try session.ctrlA("c")
            try session.expect("[labrun] back to the guest console")
            try session.expect("later-42")
            try session.expect(ConsoleSession.prompt)
            #expect(try session.shell("echo alive").contains("alive"))

            // savevm / loadvm typed in the monitor work as in QEMU, and labrun sees the result.
            try session.shell("echo from-monitor > /root/marker")
            try session.ctrlA("c")
            try session.expect("(qemu) ")
            try session.send("savevm typed-in-monitor\r")
            try session.expect("(qemu) ")
            try session.ctrlA("c")
            try session.expect("[labrun] back to the guest console")
            try session.shell("echo overwritten > /root/marker")
            #expect(try lab.listJSON().map(\.name) == ["seen-in-monitor", "typed-in-monitor"])
            try lab.ok(["snapshot", "restore", "typed-in-monitor"])
            #expect(try session.shell("cat /root/marker").contains("from-monitor"))
            try session.quit()
        }
    }
}
