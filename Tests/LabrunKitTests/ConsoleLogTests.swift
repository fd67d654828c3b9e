import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The console log's records, rotation and reading back (issue 12 §1), without QEMU.
@Suite struct ConsoleLogTests {
    func tempDirectory() -> String {
        var template = Array("/tmp/labrun-log-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    @Test func linesNoticesBootsAndPartialLinesReadBackWhole() throws {
        let dir = tempDirectory()
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let log = ConsoleLog(path: dir + "/console.log")
        log.boot("boot")
        log.guest(Array("first li".utf8))
        log.guest(Array("ne\r\nsecond line\nroot@lab:~# ".utf8))
        log.labrun("snapshot 'x' created")
        log.guest(Array("echo hi\r\nhi\r\n".utf8))
        log.close()
        let reader = ConsoleLogReader(path: dir + "/console.log", files: 4)
        let text = reader.lines(ConsoleLogQuery()).map { String(decoding: $0, as: UTF8.self) }.joined()
        #expect(text.contains("first line\n") && text.contains("second line\n"), "\(text)")
        #expect(text.contains("root@lab:~# \n[labrun] snapshot 'x' created\n") || text.contains("root@lab:~# \n"), "\(text)")
        #expect(text.contains("[labrun] snapshot 'x' created\n"))
        #expect(text.hasPrefix("[labrun] -- boot at "), "\(text)")
        var q = ConsoleLogQuery()
        q.timestamps = true
        let stamped = reader.lines(q).map { String(decoding: $0, as: UTF8.self) }
        #expect(stamped.allSatisfy { $0.hasPrefix("[20") && $0.contains(" +") })
    }

    @Test func rotationKeepsTheNewestFilesAndReadsThemInOrder() throws {
        let dir = tempDirectory()
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let log = ConsoleLog(path: dir + "/console.log", fileLimit: 2048, files: 3)
        for i in 0..<400 {
            log.guest(Array("line \(i) of the flood, padded out to some length\n".utf8))
            if i % 20 == 19 { log.flush() }
        }
        log.close()
        #expect(fileExists(dir + "/console.log") && fileExists(dir + "/console.log.1") && fileExists(dir + "/console.log.2"))
        #expect(!fileExists(dir + "/console.log.3"), "more files than log_files")
        for name in ["console.log.1", "console.log.2"] {
            #expect((FileStatus.of(dir + "/" + name)?.size ?? 0) < 4096, "\(name) grew past the limit")
        }
        let lines = ConsoleLogReader(path: dir + "/console.log", files: 3).lines(ConsoleLogQuery()).map { String(decoding: $0, as: UTF8.self) }
        #expect(lines.last == "line 399 of the flood, padded out to some length\n")
        let numbers = lines.compactMap { Int($0.split(separator: " ")[1]) }
        #expect(numbers == numbers.sorted() && numbers.count > 20, "out of order across the rotated files")
    }

    @Test func theLogNeverBlocksWhenItCannotWrite() throws {
        let log = ConsoleLog(path: "/proc/labrun-no-such-dir/console.log")
        var notices: [String] = []
        log.notice = { notices.append($0) }
        log.guest(Array("a line\n".utf8))
        log.flush()
        #expect(notices.count == 1 && notices[0].contains("console log paused"), "\(notices)")
        log.guest(Array("more\n".utf8))
        log.flush()
        #expect(notices.count == 1, "one notice, not one per write")
    }
}
