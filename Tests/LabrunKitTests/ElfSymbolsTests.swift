import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// `labrun gdb`'s ELF reading (issue 14 §3): debug info present or not, and a symbol's address,
/// checked against gcc's output and nm.
@Suite(.enabled(if: findExecutable("gcc") != nil && findExecutable("nm") != nil, "needs gcc and nm"))
struct ElfSymbolsTests {
    @Test func debugInfoAndAddressesMatchNm() throws {
        var template = Array("/tmp/labrun-elf-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        try "int _text_marker(void) { return 42; }\nint main(void) { return _text_marker(); }\n".write(toFile: dir + "/m.c")
        #expect(try Spawner.run("gcc", ["-g", "-o", dir + "/with", dir + "/m.c"]).status == .exited(0))
        #expect(try Spawner.run("gcc", ["-o", dir + "/without", dir + "/m.c"]).status == .exited(0))
        #expect(ElfSymbols.hasDebugInfo(dir + "/with"))
        #expect(!ElfSymbols.hasDebugInfo(dir + "/without"))
        #expect(!ElfSymbols.hasDebugInfo(dir + "/m.c"))
        let nm = try Spawner.run("nm", [dir + "/with"]).stdout
        let line = try #require(nm.split(separator: "\n").first { $0.hasSuffix(" T _text_marker") })
        let expected = UInt64(line.split(separator: " ")[0], radix: 16)
        #expect(ElfSymbols.address(of: "_text_marker", in: dir + "/with") == expected)
        #expect(ElfSymbols.address(of: "_text_mark", in: dir + "/with") == nil)
        #expect(ElfSymbols.address(of: "main", in: dir + "/missing") == nil)
    }
}
