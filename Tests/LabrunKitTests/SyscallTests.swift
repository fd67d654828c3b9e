import Glibc
import Testing
@testable import LabrunKit

/// The errno/EINTR policy through the syscall seam: an interrupted call is retried until it
/// goes through, a short write is continued, close is never retried.
@Suite struct SyscallTests {
    /// A fake call that fails with `errno` the first `failures` times, then does `then`.
    final class Script {
        var calls = 0
        let failures: Int
        let errnoValue: Int32
        init(failures: Int, errno: Int32 = EINTR) { self.failures = failures; self.errnoValue = errno }
        func fail() -> Bool {
            calls += 1
            guard calls <= failures else { return false }
            errno = errnoValue
            return true
        }
    }

    @Test(arguments: [0, 1, 5]) func readIsRetriedOnEveryInterrupt(_ n: Int) {
        let script = Script(failures: n)
        let r = FileDescriptor(rawValue: 99).read(upTo: 8) { _, buf, count in
            if script.fail() { return -1 }
            let bytes: [UInt8] = [1, 2, 3]
            buf!.copyMemory(from: bytes, byteCount: min(count, 3))
            return 3
        }
        #expect(script.calls == n + 1)
        #expect((try? r.get()) == [1, 2, 3])
    }

    @Test func anotherErrorIsReturnedNotRetried() {
        let script = Script(failures: 10, errno: EIO)
        let r = FileDescriptor(rawValue: 99).read(upTo: 8) { _, _, _ in script.fail() ? -1 : 0 }
        #expect(script.calls == 1)
        guard case .failure(let e) = r else { Issue.record("read succeeded"); return }
        #expect(e == .ioError)
    }

    @Test func writeAllContinuesShortWritesAndInterrupts() throws {
        var written: [UInt8] = []
        var calls = 0
        let payload = Array("hello, short writes".utf8)
        try FileDescriptor(rawValue: 99).writeAll(payload) { _, buf, count in
            calls += 1
            if calls % 3 == 0 { errno = EINTR; return -1 }
            // One byte at a time.
            written.append(buf!.load(as: UInt8.self))
            return 1
        }
        #expect(written == payload)
        #expect(calls == payload.count + payload.count / 2)
    }

    @Test func writeAllReportsAHardFailure() {
        #expect(throws: SystemCallError.self) {
            try FileDescriptor(rawValue: 99).writeAll([1, 2, 3]) { _, _, _ in errno = EPIPE; return -1 }
        }
    }

    @Test func closeIsNeverRetried() {
        let script = Script(failures: 3)
        let r = FileDescriptor(rawValue: 99).close { _ in script.fail() ? -1 : 0 }
        #expect(script.calls == 1, "close was called \(script.calls) times")
        guard case .failure(let e) = r else { Issue.record("close reported success"); return }
        #expect(e == .interrupted)
    }
}
