import Glibc
import Testing
@testable import LabrunKit

/// The supervisor's epoll wait answers as poll would, across turns: what is wanted now, never
/// what a closed descriptor's file does (its number may name another file by then).
@Suite(.serialized) struct EventSetTests {
    func set(_ entries: [(FileDescriptor, Bool, Bool)]) -> PollSet {
        var s = PollSet()
        for (fd, r, w) in entries { s.add(fd, read: r, write: w) }
        return s
    }

    @Test func reportsWhatIsWantedNowAcrossTurns() throws {
        let events = try EventSet()
        let a = try FileDescriptor.pipe()
        defer { a.writeEnd.close() }
        #expect(try events.wait(set([(a.readEnd, true, false)]), timeout: 0).isEmpty)
        _ = a.writeEnd.write([1])
        let ready = try events.wait(set([(a.readEnd, true, false), (a.writeEnd, false, true)]), timeout: 1000)
        #expect(ready[a.readEnd]?.readable == true)
        #expect(ready[a.writeEnd]?.writable == true)
        // Still readable (level-triggered), and no longer reported once not wanted.
        #expect(try events.wait(set([(a.readEnd, true, false)]), timeout: 0)[a.readEnd]?.readable == true)
        #expect(try events.wait(set([(a.writeEnd, false, false)]), timeout: 0).isEmpty)
        // Wanted for nothing, a hang-up is still reported, as poll does.
        a.readEnd.close()
        #expect(try events.wait(set([(a.writeEnd, false, false)]), timeout: 1000)[a.writeEnd]?.hangup == true)
    }

    @Test func aClosedNumberThatComesBackIsAnotherFile() throws {
        let events = try EventSet()
        let old = try FileDescriptor.pipe()
        defer { old.readEnd.close(); old.writeEnd.close() }
        let new = try FileDescriptor.pipe()
        defer { new.readEnd.close(); new.writeEnd.close() }
        // A number of its own (high: no other test's descriptors get there) for the old read
        // end, whose file stays open elsewhere as a passed terminal does in its client.
        let number = FileDescriptor(rawValue: 900 + Int32(getpid() % 50))
        try #require(dup2(old.readEnd.rawValue, number.rawValue) == number.rawValue)
        _ = try events.wait(set([(number, true, false)]), timeout: 0)
        number.close()
        // The same number comes back for another file, with nothing to read.
        try #require(dup2(new.readEnd.rawValue, number.rawValue) == number.rawValue)
        defer { number.close() }
        _ = old.writeEnd.write([1])   // the old file becomes readable
        #expect(try events.wait(set([(number, true, false)]), timeout: 50).isEmpty)
        _ = new.writeEnd.write([2])
        #expect(try events.wait(set([(number, true, false)]), timeout: 1000)[number]?.readable == true)
    }

    @Test func closedAndRegularFilesAnswerAsPollDoes() throws {
        let events = try EventSet()
        let closed = FileDescriptor(rawValue: 100_000)   // above any open descriptor
        #expect(try events.wait(set([(closed, true, false)]), timeout: 1000)[closed]?.invalid == true)
        let file = try FileDescriptor.open("/etc/hostname", O_RDONLY)
        defer { file.close() }
        #expect(try events.wait(set([(file, true, false)]), timeout: -1)[file]?.readable == true)
    }
}
