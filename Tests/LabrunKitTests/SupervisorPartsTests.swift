import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The supervisor's parts on their own, without QEMU: the control server's connection ids,
/// the teardown steps and the watchdog, each on real descriptors and real child processes.
@Suite(.serialized) struct SupervisorPartsTests {
    func tempDir() -> String {
        var template = Array("/tmp/labrun-parts-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    /// Drives a server's poll loop for `seconds`.
    func pump(_ server: ControlServer, _ seconds: Double, until done: () -> Bool = { false }) {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline && !done() {
            var set = PollSet()
            for i in server.interests { set.add(i) }
            let ready = (try? set.wait(timeout: 20)) ?? [:]
            server.handle(ready, now: monotonicSeconds())
        }
    }

    /// A client that dies with its request pending leaves its descriptor number to the next
    /// client; the late reply must not reach that one.
    @Test func aGoneClientsReplyNeverReachesTheNextOne() throws {
        signal(SIGPIPE, SIG_IGN)
        let dir = tempDir()
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let server = try ControlServer(path: dir + "/control.sock")
        defer { server.close() }
        var requests: [(ControlServer.ConnectionID, ControlRequest)] = []
        server.onRequest = { requests.append(($0, $1)) }

        let first = try UnixSocket.connect(path: server.path)
        try first.writeAll(ControlRequest(.snapshot(.create(name: "big2"))).encodedLine())
        pump(server, 2) { requests.count == 1 }
        let firstID = try #require(requests.first?.0)
        first.close()
        pump(server, 0.2) { !server.isConnected(firstID) }
        #expect(!server.isConnected(firstID))

        let second = try UnixSocket.connect(path: server.path)
        defer { second.close() }
        try second.writeAll(ControlRequest(.snapshot(.list)).encodedLine())
        pump(server, 2) { requests.count == 2 }
        let secondID = try #require(requests.last?.0)
        #expect(secondID != firstID)

        // The first client's late answer is dropped; the second gets its own.
        var late = ControlResponse()
        late.message = "snapshot 'big2' created"
        server.respond(firstID, late)
        var own = ControlResponse()
        own.message = "the list"
        server.respond(secondID, own)
        pump(server, 0.3)
        try second.setNonBlocking(true)
        var got: [UInt8] = []
        while case .success(let b) = second.read(), !b.isEmpty { got += b }
        let lines = String(decoding: got, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first.map { (try? JSONDecoder().decode(ControlResponse.self, from: Data($0.utf8)))?.message } == "the list")
    }

    func spawn(_ script: String) throws -> ChildProcess {
        var config = SpawnConfiguration(executable: "sh", arguments: ["-c", script])
        config.standardInput = .devNull
        config.standardOutput = .devNull
        return try Spawner.spawn(config)
    }

    func drive(_ part: some LoopPart, for seconds: Double, until done: () -> Bool) {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline && !done() {
            part.handle([:], now: monotonicSeconds())
            sleepSeconds(0.02)
        }
    }

    @Test func teardownSkipsAnUnavailableRequestAndEscalatesToKill() throws {
        // Ignores SIGTERM: only SIGKILL ends it.
        let child = try spawn("trap '' TERM; while :; do sleep 0.05; done")
        sleepSeconds(0.2)   // the trap is set
        var asked = 0
        let teardown = Teardown(child: child) { asked += 1; return false }
        let started = monotonicSeconds()
        teardown.begin([TeardownStep(.request, wait: 5), TeardownStep(.signal(.terminate), wait: 0.3), TeardownStep(.signal(.kill), wait: 0)])
        drive(teardown, for: 5) { child.poll() != nil }
        #expect(asked == 1)
        #expect(child.poll() == .signaled(SIGKILL))
        #expect(monotonicSeconds() - started < 2, "the unavailable request must not cost its 5 s")
    }

    @Test func teardownEndsAStoppedChildWithoutWaitingForItsRequest() throws {
        let child = try spawn("while :; do sleep 0.05; done")
        kill(child.pid, SIGSTOP)
        let teardown = Teardown(child: child) { true }
        let started = monotonicSeconds()
        teardown.begin()
        teardown.escalate()
        drive(teardown, for: 5) { child.poll() != nil }
        // SIGTERM with SIGCONT: a stopped child acts on it at once.
        #expect(child.poll() == .signaled(SIGTERM))
        #expect(monotonicSeconds() - started < 1.5)
    }

    @Test func watchdogShowsProgressThenCallsAStoppedProcessHungThenRecovers() throws {
        let dir = tempDir()
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let image = dir + "/image"
        // A busy "QEMU": it keeps writing.
        let child = try spawn("while :; do head -c 65536 /dev/zero >> \(image); sleep 0.05; done")
        defer { child.send(.kill); child.send(.continue); child.wait() }
        let dog = QemuWatchdog(pid: child.pid, image: image, progressInterval: 0.2, stallLimit: 1, uninterruptibleLimit: 1)
        var busy: Double? = monotonicSeconds()
        var progress: [String] = [], hung: [String] = [], recovered = 0
        dog.busySince = { busy }
        dog.onProgress = { progress.append($0) }
        dog.onHung = { hung.append($0) }
        dog.onRecovered = { recovered += 1 }
        drive(dog, for: 1.5) { false }
        #expect(progress.count >= 3, "\(progress)")
        #expect(hung.isEmpty, "a process that works is not hung: \(hung)")

        kill(child.pid, SIGSTOP)
        drive(dog, for: 2) { !hung.isEmpty }
        #expect(hung.count == 1 && hung[0].contains("pid \(child.pid)") && hung[0].contains("stopped"), "\(hung)")
        #expect(dog.notResponding != nil)

        kill(child.pid, SIGCONT)
        busy = nil   // its replies came
        drive(dog, for: 0.5) { recovered > 0 }
        #expect(recovered == 1 && dog.notResponding == nil)
    }

    @Test func watchdogCallsAProcessThatMakesNoProgressHung() throws {
        let child = try spawn("sleep 30")
        defer { child.send(.kill); child.wait() }
        let dog = QemuWatchdog(pid: child.pid, image: "/nonexistent", progressInterval: 0.2, stallLimit: 1, uninterruptibleLimit: 1)
        dog.busySince = { 0 }
        var hung: [String] = []
        dog.onHung = { hung.append($0) }
        drive(dog, for: 3) { !hung.isEmpty }
        #expect(hung.first?.contains("no progress") == true, "\(hung)")
    }

    @Test func processSampleParsesNamesWithSpacesAndParentheses() {
        let s = ProcessSample.parse(stat: "42 (qemu (x) y) T 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3", io: "rchar: 10\nwchar: 5\nsyscr: 1\n")
        #expect(s == ProcessSample(state: "T", ioBytes: 15, cpuTicks: 12))
        #expect(s?.isStopped == true)
    }
}

/// A boot that stops in its initrd is told, with the initrd's reason, once: the tiny guest's
/// initrd says "labrun-initrd: ERROR:", the Debian guest's initramfs-tools "Dropping to a shell!".
@Suite struct BootFailureWatchTests {
    func failures(_ console: String) -> [String] {
        let watch = CrashWatch()
        var seen: [String] = []
        watch.onBootFailure = { seen.append($0) }
        // In pieces, as a console arrives.
        var bytes = Array(console.utf8)[...]
        while !bytes.isEmpty {
            watch.feed(Array(bytes.prefix(7)))
            bytes = bytes.dropFirst(7)
        }
        return seen
    }

    @Test func eitherInitrdsReasonIsToldOnce() {
        #expect(failures("Loading...\r\nlabrun-initrd: ERROR: no virtio_blk: the kernel cannot see the lab's disk\r\nlabrun-initrd: ERROR: again\r\n")
                == ["no virtio_blk: the kernel cannot see the lab's disk"])
        #expect(failures("Gave up waiting for root file system device.  Common problems:\n - Boot args (cat /proc/cmdline)\nALERT!  /dev/vda does not exist.  Dropping to a shell!\n(initramfs) ")
                == ["its initramfs stopped: /dev/vda does not exist"])
        #expect(failures("Begin: Mounting root file system ... done.\nlab login: root\n").isEmpty)
    }
}

/// The guest relay batches a UART-paced flood (a pause after a read of some hundred bytes) but
/// never pauses a producer that fills the pty's buffer: that pause capped it at 4 KiB per pause.
@Suite struct GuestRelayFloodTests {
    func read(after written: Int) throws -> (bytes: Int, paused: Bool) {
        let pty = try PseudoTerminal.open(size: nil)
        defer { pty.primary.close(); pty.secondary.close() }
        try pty.primary.setNonBlocking(true)
        let relay = GuestRelay(pty: pty.primary)
        var got = 0
        relay.onOutput = { got += $0.count }
        // As much of it as the pty takes now (the guest's side never waits here).
        try pty.secondary.setNonBlocking(true)
        _ = pty.secondary.write([UInt8](repeating: 0x61, count: written))
        var set = PollSet()
        set.add(pty.primary)
        let ready = try set.wait(timeout: 1000)
        relay.handle(ready, now: monotonicSeconds())
        return (got, relay.deadline != nil)
    }

    @Test func pausesOnlyForAFloodSlowerThanItsReads() throws {
        let small = try read(after: 100)
        #expect(small.bytes == 100 && !small.paused, "a keystroke's echo is never followed by a pause")
        let uart = try read(after: 1000)
        #expect(uart.bytes == 1000 && uart.paused, "a UART-paced flood is read in batches")
        let fast = try read(after: 65536)
        #expect(fast.bytes >= GuestRelay.fullRead && !fast.paused, "a full buffer means a producer faster than any pause: \(fast)")
    }
}
