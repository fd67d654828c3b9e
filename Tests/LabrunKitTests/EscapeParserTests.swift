import Testing
@testable import LabrunKit

@Suite struct EscapeParserTests {
    @Test func plainBytesAreForwardedUnchanged() {
        var p = EscapeParser()
        #expect(p.feed(Array("uname -r\r".utf8)) == [.forward(Array("uname -r\r".utf8))])
    }

    @Test(arguments: [
        (UInt8(ascii: "x"), EscapeCommand.quit),
        (UInt8(ascii: "c"), .monitor),
        (UInt8(ascii: "s"), .snapshot),
        (UInt8(ascii: "h"), .help),
        (UInt8(ascii: "?"), .help),
        (UInt8(ascii: "i"), .status),
        (UInt8(ascii: "b"), .sendBreak),
        (UInt8(ascii: "q"), .unknown(UInt8(ascii: "q"))),
        (UInt8(ascii: "z"), .suspend),
    ])
    func commandKeys(key: UInt8, command: EscapeCommand) {
        var p = EscapeParser()
        #expect(p.feed([0x41, 0x01, key, 0x42]) == [.forward([0x41]), .command(command), .forward([0x42])])
    }

    @Test func literalCtrlAByDoubleOrA() {
        var p = EscapeParser()
        #expect(p.feed([0x01, 0x01]) == [.forward([0x01])])
        #expect(p.feed([0x01, UInt8(ascii: "a")]) == [.forward([0x01])])
        #expect(!p.awaitingCommand)
    }

    @Test func ctrlASplitAcrossTwoReads() {
        var p = EscapeParser()
        #expect(p.feed([0x6C, 0x73, 0x01]) == [.forward([0x6C, 0x73])])
        #expect(p.awaitingCommand)
        #expect(p.feed([UInt8(ascii: "x"), 0x0D]) == [.command(.quit), .forward([0x0D])])
    }

    @Test func controlKeysReachTheGuest() {
        var p = EscapeParser()
        // Ctrl-C, Ctrl-Z, Ctrl-\ are plain bytes for the guest.
        #expect(p.feed([0x03, 0x1A, 0x1C]) == [.forward([0x03, 0x1A, 0x1C])])
    }

    /// Seeded property test: for random input, the forwarded bytes are exactly the input with
    /// every escape pair removed (a literal pair leaves one Ctrl-a), in order, however the
    /// input is split into reads.
    @Test func randomInputSplitAnywhereForwardsEveryNonEscapeByteInOrder() {
        var rng = SplitMix64(seed: 0x1ab)
        for _ in 0..<500 {
            let n = Int(rng.next() % 200)
            let input: [UInt8] = (0..<n).map { _ in rng.next() % 4 == 0 ? 0x01 : UInt8(truncatingIfNeeded: rng.next()) }
            // Reference: one pass over the whole input.
            var expected: [UInt8] = []
            var commands: [EscapeCommand] = []
            var i = 0
            while i < input.count {
                if input[i] == 0x01 {
                    if i + 1 < input.count {
                        let k = input[i + 1]
                        if k == 0x01 || k == UInt8(ascii: "a") || k == UInt8(ascii: "A") { expected.append(0x01) } else { commands.append(EscapeKeys.command(for: k)) }
                    }
                    i += 2
                } else {
                    expected.append(input[i]); i += 1
                }
            }
            var p = EscapeParser()
            var got: [UInt8] = []
            var gotCommands: [EscapeCommand] = []
            var rest = input[...]
            while !rest.isEmpty {
                let k = Int(rng.next() % 7) + 1
                for a in p.feed(rest.prefix(k)) {
                    switch a {
                    case .forward(let b): got += b
                    case .command(let c): gotCommands.append(c)
                    }
                }
                rest = rest.dropFirst(k)
            }
            #expect(got == expected)
            #expect(gotCommands == commands)
        }
    }

    @Test func helpListsEveryKeyInTheTable() {
        let help = EscapeKeys.helpText
        for entry in EscapeKeys.table { #expect(help.contains(entry.summary)) }
        // Raw terminal: every line feed comes right after a carriage return.
        let bytes = Array(help.utf8)
        #expect(!bytes.indices.contains { bytes[$0] == 0x0A && ($0 == 0 || bytes[$0 - 1] != 0x0D) })
        #expect(help.hasSuffix("\r\n"))
    }
}

/// A tiny seeded generator so property tests are reproducible.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

@Suite struct LineEditorTests {
    @Test func typingBackspaceAndEnter() {
        var e = LineEditor()
        for b in Array("snapx".utf8) { _ = e.feed(b) }
        #expect(e.feed(0x7F) == .editing(echo: [0x08, 0x20, 0x08]))
        _ = e.feed(UInt8(ascii: "1"))
        #expect(e.feed(0x0D) == .accepted("snap1"))
    }

    @Test func escapeCancels() {
        var e = LineEditor()
        _ = e.feed(UInt8(ascii: "a"))
        #expect(e.feed([0x1B]) == .cancelled)
    }

    @Test func backspaceErasesAWholeUTF8Character() {
        var e = LineEditor()
        for b in Array("aé".utf8) { _ = e.feed(b) }
        _ = e.feed(0x7F)
        #expect(e.text == Array("a".utf8))
    }
}

@Suite struct LineEditorKeyTests {
    @Test func arrowKeysAreIgnoredAndLoneEscCancels() {
        var e = LineEditor()
        #expect(e.feed(Array("ab".utf8)) == .editing(echo: Array("ab".utf8)))
        #expect(e.feed([0x1B, UInt8(ascii: "["), UInt8(ascii: "A")]) == .editing(echo: []))
        #expect(e.feed([0x1B, UInt8(ascii: "O"), UInt8(ascii: "P")]) == .editing(echo: []))
        #expect(e.feed([0x1B, UInt8(ascii: "["), UInt8(ascii: "1"), UInt8(ascii: ";"), UInt8(ascii: "5"), UInt8(ascii: "C")]) == .editing(echo: []))
        #expect(e.text == Array("ab".utf8))
        #expect(e.feed([0x1B]) == .cancelled)
    }

    @Test func escFollowedByAPlainKeyCancels() {
        var e = LineEditor()
        #expect(e.feed([0x1B, UInt8(ascii: "x")]) == .cancelled)
    }
}
