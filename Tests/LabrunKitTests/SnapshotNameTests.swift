import FoundationEssentials
import Testing
@testable import LabrunKit

@Suite struct SnapshotNameTests {
    /// Each refused class, with a fragment of its (distinct) message.
    static let refused: [(name: String, says: String)] = [
        ("", "is empty"),
        ("1", "all digits"),
        ("0042", "all digits"),
        (String(repeating: "a", count: 256), "256 bytes long"),
        (String(repeating: "é", count: 128), "256 bytes long"),
        ("a b", "whitespace"),
        ("a\u{00A0}b", "whitespace"),
        ("a\u{2028}b", "whitespace"),
        ("it's", "quote or backslash"),
        ("say\"hi\"", "quote or backslash"),
        ("a`b`", "quote or backslash"),
        ("a\\b", "quote or backslash"),
        ("a\nb", "control character U+000A"),
        ("a\tb", "control character U+0009"),
        ("a\u{7F}", "control character U+007F"),
        ("a\u{1B}[31m", "control character U+001B"),
        ("a\u{85}", "control character U+0085"),
        ("a\u{202E}b", "control character U+202E"),
        ("a$b", "shell character '$'"),
        ("a;b", "shell character ';'"),
        ("a|b", "shell character '|'"),
        ("a&b", "shell character '&'"),
        ("a<b", "shell character '<'"),
        ("a>b", "shell character '>'"),
        ("a(b", "shell character '('"),
        ("a)b", "shell character ')'"),
        ("a{b", "shell character '{'"),
        ("a}b", "shell character '}'"),
        ("a*", "shell character '*'"),
        ("a?", "shell character '?'"),
        ("a[1]", "shell character '['"),
        ("a]", "shell character ']'"),
        ("~a", "shell character '~'"),
        ("a!", "shell character '!'"),
        ("#a", "shell character '#'"),
        ("-rf", "starts with '-'"),
        ("a/b", "contains '/' (U+002F)"),
        ("a%b", "contains '%' (U+0025)"),
        ("snow☃", "contains '☃' (U+2603)"),
    ]

    @Test(arguments: refused) func refuses(_ c: (name: String, says: String)) {
        #expect {
            try SnapshotName.validate(c.name)
        } throws: { error in
            let e = error as! LabrunError
            return e.exitCode == 1 && e.message.contains(c.says) && !e.message.unicodeScalars.contains { $0 == "\n" || $0 == "\r" }
        }
    }

    @Test func messagesAreDistinctPerClass() {
        func message(_ name: String) -> String {
            do { try SnapshotName.validate(name); return "" } catch { return error.message }
        }
        let samples = ["", "12", String(repeating: "x", count: 300), "a b", "a'b", "a\u{1}", "a;b", "-a", "a/b"]
        let messages = samples.map(message)
        #expect(Set(messages).count == samples.count)
        #expect(message("12").contains("'v12'"))
    }

    @Test(arguments: [
        "before-patch", "snap-20261126-203105", "v1", "1a", "a1", "1.0", "+1", "x_y", "k:v", "user@host", "a,b", "a=b",
        "été", "Ünïcödé", "снимок", "快照", "e\u{301}tat", "١٢٣", ".hidden", "a-", "_",
        String(repeating: "a", count: 255), String(repeating: "é", count: 127) + "a",
    ])
    func allows(_ name: String) throws {
        try SnapshotName.validate(name)
    }

    @Test func defaultNameIsLocalTimeStamped() throws {
        let date = Date(timeIntervalSince1970: 1_795_723_189.9)
        let name = SnapshotName.defaultName(date: date)
        let t = CalendarTime.local(1_795_723_189)
        #expect(name == "snap-\(t.date(separator: ""))-\(t.time(separator: ""))")
        #expect(name.count == "snap-YYYYMMDD-HHMMSS".count)
        try SnapshotName.validate(name)
        #expect(CalendarTime.utc(1_795_723_189) == CalendarTime(year: 2026, month: 11, day: 26, hour: 19, minute: 59, second: 49))
    }

    /// The live-restore undo snapshot's name cannot be created, but stays valid for restore
    /// and delete (a crash may leave one behind).
    @Test func theRestoreUndoNameIsKeptForLabrun() throws {
        try SnapshotName.validate(SnapshotName.restoreUndo)
        #expect { try SnapshotName.validateNew(SnapshotName.restoreUndo) } throws: {
            ($0 as? LabrunError)?.message.contains("kept for labrun's own use") == true
        }
        try SnapshotName.validateNew("labrun-before-restore-2")
        #expect(throws: LabrunError.self) { try SnapshotName.validateNew("") }
    }
}
