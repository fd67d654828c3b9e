import Testing
@testable import LabrunKit

@Suite struct ScreenTests {
    /// A screen writing into a pipe we read back.
    func screen() throws -> (Screen, FileDescriptor) {
        let p = try FileDescriptor.pipe()
        return (Screen(fd: p.writeEnd), p.readEnd)
    }

    func readAll(_ fd: FileDescriptor) throws -> String {
        try fd.setNonBlocking(true)
        var out: [UInt8] = []
        while case .success(let b) = fd.read(), !b.isEmpty { out += b }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func noticeWaitsForTheGuestLineToEnd() throws {
        let (s, r) = try screen()
        s.guest(Array("[ 5.0] sysrq: HELP : loglevel(0-9".utf8))
        s.notice("snapshot 'x' created")
        #expect(try readAll(r) == "[ 5.0] sysrq: HELP : loglevel(0-9")
        s.guest(Array(") reboot(b)\r\nnext line".utf8))
        #expect(try readAll(r) == ") reboot(b)\r\n[labrun] snapshot 'x' created\r\nnext line")
    }

    @Test func noticeAfterAPromptShowsOnceTheGuestIsQuiet() throws {
        let (s, r) = try screen()
        s.guest(Array("root@lab:~# ".utf8))
        s.notice("done")
        let deadline = try #require(s.noticeDeadline)
        s.tick(now: deadline - 0.01)
        #expect(try readAll(r) == "root@lab:~# ")
        s.tick(now: deadline)
        #expect(try readAll(r) == "\r\n[labrun] done\r\n")
        #expect(s.noticeDeadline == nil)
    }

    @Test func answersToKeysAndNoticesAtLineStartAreImmediate() throws {
        let (s, r) = try screen()
        s.notice("first")
        s.guest(Array("abc".utf8))
        s.notice("help", now: true)
        #expect(try readAll(r) == "[labrun] first\r\nabc\r\n[labrun] help\r\n")
    }
}
