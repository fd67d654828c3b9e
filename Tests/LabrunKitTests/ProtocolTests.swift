import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

@Suite struct ControlProtocolTests {
    @Test func requestRoundTrip() throws {
        let r = ControlRequest(.snapshot(.create(name: "before-oops", force: true)))
        let line = r.encodedLine()
        #expect(line.last == 0x0A)
        #expect(try ControlRequest.decode(Array(line.dropLast())).get() == r)
    }

    @Test(arguments: ["{", "[]", "{\"v\":2,\"op\":\"status\"}", "{\"op\":\"status\"}", "{\"v\":1,\"op\":\"format-disk\"}", "{\"v\":1,\"op\":\"status\",\"name\":5}"])
    func malformedRequestsAreRefusedWithOneLine(_ text: String) {
        guard case .failure(let e) = ControlRequest.decode(Array(text.utf8)) else { Issue.record("accepted \(text)"); return }
        #expect(!e.message.unicodeScalars.contains { $0 == "\n" || $0 == "\r" })
    }

    @Test func seededGarbageNeverCrashesTheDecoders() {
        var rng = SplitMix64(seed: 7)
        let valid = Array(ControlRequest(.snapshot(.list)).encodedLine().dropLast())
        for _ in 0..<2000 {
            var bytes = valid
            for _ in 0..<Int(rng.next() % 6) {
                let i = Int(rng.next() % UInt64(bytes.count))
                bytes[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            _ = ControlRequest.decode(bytes)
            _ = try? QMPMessage.decode(bytes)
        }
    }
}

/// A fake QEMU on one end of a socketpair, speaking QMP as QEMU 7.2 does.
@Suite struct QMPClientTests {
    func pair() throws -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    func readLine(_ fd: FileDescriptor) -> String {
        var line: [UInt8] = []
        while case .success(let b) = fd.read(upTo: 1), let c = b.first, c != 0x0A { line.append(c) }
        return String(decoding: line, as: UTF8.self)
    }

    @Test func handshakeRepliesByIdAndEventsInterleaved() throws {
        let (mine, qemu) = try pair()
        defer { qemu.close() }
        try mine.setNonBlocking(true)
        let client = QMPClient(fd: mine)
        var events: [String] = []
        client.onEvent = { name, _ in events.append(name) }
        var statusResult: JSONValue?
        var humanResult: Result<JSONValue, QMPError>?
        client.send(.queryStatus) { statusResult = try? $0.get() }
        client.send(.human("savevm x")) { humanResult = $0 }

        try qemu.writeAll("{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n")
        client.handleReadable()
        #expect(readLine(qemu).contains("\"execute\":\"qmp_capabilities\""))
        try qemu.writeAll("{\"return\": {}, \"id\": 1}\r\n")
        client.handleReadable()
        #expect(client.isReady)
        let l1 = readLine(qemu), l2 = readLine(qemu)
        #expect(l1.contains("query-status") && l1.contains("\"id\":2"))
        #expect(l2.contains("human-monitor-command") && l2.contains("savevm x") && l2.contains("\"id\":3"))
        // Reply out of order, with an event between.
        try qemu.writeAll("{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}, \"id\": 3}\r\n{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 2}\r\n")
        client.handleReadable()
        #expect(events == ["STOP"])
        #expect(statusResult?["running"]?.bool == true)
        #expect(humanResult == .failure(QMPError(errorClass: "GenericError", desc: "nope")))
    }

    @Test func disconnectFailsPendingCommands() throws {
        let (mine, qemu) = try pair()
        try mine.setNonBlocking(true)
        let client = QMPClient(fd: mine)
        var result: Result<JSONValue, QMPError>?
        client.send(.quit) { result = $0 }
        qemu.close()
        client.handleReadable()
        #expect(client.isClosed)
        #expect(result == .failure(.disconnected))
    }

    @Test func hmpErrorTextIsRecognised() {
        #expect(HMPResult.error(in: "") == nil)
        #expect(HMPResult.error(in: "Error: Snapshot 'x' does not exist in one or more devices\r\n") == "Snapshot 'x' does not exist in one or more devices")
    }
}

@Suite struct SystemTests {
    @Test func ptyPairRelaysAndReportsHangup() throws {
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 40, columns: 100))
        #expect(WindowSize.of(pty.secondary) == WindowSize(rows: 40, columns: 100))
        try pty.primary.writeAll([0x61, 0x0D])
        #expect(try pty.secondary.read(upTo: 16).get() == [0x61, 0x0D])
        pty.secondary.close()
        var set = PollSet()
        set.add(pty.primary)
        let r = try set.wait(timeout: 1000)
        #expect(r[pty.primary]?.hangup == true)
        pty.primary.close()
    }

    @Test func rawModeRestoresExactly() throws {
        let pty = try PseudoTerminal.open(size: nil)
        defer { pty.primary.close(); pty.secondary.close() }
        var before = termios()
        // Give it cooked settings first (openpty's secondary is raw here).
        tcgetattr(pty.secondary.rawValue, &before)
        before.c_lflag |= tcflag_t(ICANON | ECHO | ISIG)
        tcsetattr(pty.secondary.rawValue, TCSANOW, &before)
        tcgetattr(pty.secondary.rawValue, &before)
        let raw = try RawMode(pty.secondary)
        var during = termios()
        tcgetattr(pty.secondary.rawValue, &during)
        #expect(during.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0)
        raw.restore()
        raw.restore()
        var after = termios()
        tcgetattr(pty.secondary.rawValue, &after)
        #expect(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag && after.c_oflag == before.c_oflag)
        // The guard's serialised form restores the same settings.
        let hex = raw.originalSettingsHex
        _ = try RawMode(pty.secondary)
        #expect(RawMode.restore(hex: hex, on: pty.secondary))
        tcgetattr(pty.secondary.rawValue, &after)
        #expect(after.c_lflag == before.c_lflag)
    }

    @Test func spawnCapturesOutputAndStatus() throws {
        let out = try Spawner.run("sh", ["-c", "echo out; echo err >&2; exit 7"])
        #expect(out.stdout == "out\n" && out.stderr == "err\n")
        #expect(out.status == .exited(7))
        #expect(throws: SystemCallError.self) { try Spawner.run("/no/such/program", []) }
    }

    @Test func signalPipeDeliversSignals() throws {
        let pipe = try SignalPipe([.windowChanged])
        defer { pipe.uninstall() }
        // To the process, not this thread: a test worker thread may block the signal.
        kill(getpid(), SIGWINCH)
        var set = PollSet()
        set.add(pipe.readEnd)
        _ = try set.wait(timeout: 2000)
        #expect(pipe.drain() == [.windowChanged])
    }

    @Test func lineBufferSplitsAndBounds() throws {
        var b = LineBuffer(limit: 8)
        #expect(try b.append(Array("ab\r\ncd".utf8)) == [Array("ab".utf8)])
        #expect(try b.append(Array("\n".utf8)) == [Array("cd".utf8)])
        #expect(throws: LineBuffer.LineError.self) { try b.append(Array(repeating: 0x41, count: 20)) }
    }
}
