import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The host side of the guest agent against a scripted fake agent on a socketpair.
@Suite struct GuestAgentTests {
    func pair() throws -> (GuestAgent, FileDescriptor) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let mine = FileDescriptor(rawValue: fds[0])
        try mine.setNonBlocking(true)
        let agent = GuestAgent()
        agent.attach(mine)
        return (agent, FileDescriptor(rawValue: fds[1]))
    }

    func line(_ fd: FileDescriptor) -> String {
        var out: [UInt8] = []
        while case .success(let b) = fd.read(upTo: 1), let c = b.first, c != 0x0A { out.append(c) }
        return String(decoding: out, as: UTF8.self)
    }

    func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    @Test func requestsBeforeHelloFailCleanly() throws {
        let (agent, guest) = try pair()
        defer { guest.close(); agent.close() }
        var got: GuestAgent.Event?
        agent.request("hello") { got = $0; return true }
        guard case .failed = got else { Issue.record("expected a failure, got \(String(describing: got))"); return }
    }

    @Test func execStreamsOutputThenExitStatus() throws {
        let (agent, guest) = try pair()
        defer { guest.close(); agent.close() }
        try guest.writeAll("0 hello labrun-agent 1\n")
        agent.handleReadable()
        #expect(agent.isReady)
        var events: [GuestAgent.Event] = []
        agent.exec("echo out; echo err >&2; exit 7", timeout: 5) { events.append($0); if case .exit = $0 { return true }; return false }
        let request = line(guest).split(separator: " ")
        #expect(request.count == 4 && request[1] == "exec" && request[2] == "5")
        #expect(String(decoding: Data(base64Encoded: String(request[3]))!, as: UTF8.self) == "echo out; echo err >&2; exit 7")
        let id = request[0]
        try guest.writeAll("\(id) out \(b64("out\n"))\n\(id) err \(b64("err\n"))\n\(id) exit 7\n99 exit 1\n")
        agent.handleReadable()
        #expect(events == [.stdout(Array("out\n".utf8)), .stderr(Array("err\n".utf8)), .exit(7)])
    }

    @Test func shareUnmountFailureCarriesTheReason() throws {
        let (agent, guest) = try pair()
        defer { guest.close(); agent.close() }
        try guest.writeAll("0 hello labrun-agent 1\n")
        agent.handleReadable()
        var reason: String??
        agent.setShareMounted(false) { reason = .some($0) }
        let request = line(guest).split(separator: " ")
        #expect(request[1] == "umount")
        try guest.writeAll("\(request[0]) fail \(b64("files on /mnt are in use by sh (pid 42)"))\n")
        agent.handleReadable()
        #expect(reason == .some("files on /mnt are in use by sh (pid 42)"))
    }

    @Test func agentRestartFailsWhatWasPendingAndDisconnectToo() throws {
        let (agent, guest) = try pair()
        try guest.writeAll("0 hello labrun-agent 1\n")
        agent.handleReadable()
        var first: GuestAgent.Event?
        agent.request("mount") { first = $0; return true }
        try guest.writeAll("0 hello labrun-agent 1\n")
        agent.handleReadable()
        #expect(first == .failed("the guest agent restarted"))
        var second: GuestAgent.Event?
        agent.request("mount") { second = $0; return true }
        guest.close()
        agent.handleReadable()
        #expect(second == .disconnected)
        #expect(!agent.isReady)
    }
}
