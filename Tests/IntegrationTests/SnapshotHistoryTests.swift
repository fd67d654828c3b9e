import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// One row of `snapshot list --json` with its story (issue 15).
struct StoryRow: Decodable, Equatable {
    var name: String
    var id: String
    var description: String?
    var parent: String?
    var current: Bool
    var exclusive_bytes: UInt64?
    var has_ram: Bool
    var vm_state_size: UInt64
}

extension TestLab {
    func story(sourceLocation: SourceLocation = #_sourceLocation) throws -> [StoryRow] {
        let r = try cli(["snapshot", "list", "--json"])
        try #require(r.status == .exited(0), "list --json failed: \(r.stderr)", sourceLocation: sourceLocation)
        return try JSONDecoder().decode([StoryRow].self, from: Data(r.standardOutput))
    }

    func row(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> StoryRow {
        try #require(try story().first { $0.name == name }, "no snapshot \(name)", sourceLocation: sourceLocation)
    }
}

/// Issue 15 §1, §2, §4 and its bad input: what a snapshot knows, live and offline.
extension SnapshotSuites {
    @Suite struct SnapshotHistoryTests {
        /// Offline: descriptions, parents, the current snapshot, space, rename, describe, delete
        /// (children move up), a qemu-img snapshot without a story, and the tree.
        @Test func offlineStoryRenameDescribeAndTree() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "base", "-m", "fresh install"])
            try lab.ok(["snapshot", "create", "second"])
            try lab.ok(["snapshot", "restore", "base"])
            try lab.ok(["snapshot", "create", "branch", "--message", "line one\nline two"])
            var rows = try lab.story()
            #expect(rows.map(\.name) == ["base", "second", "branch"])
            #expect(rows.map(\.parent) == [nil, "base", "base"])
            #expect(rows.map(\.current) == [false, false, true])
            #expect(rows[0].description == "fresh install" && rows[1].description == nil && rows[2].description == "line one\nline two")
            #expect(rows.allSatisfy { $0.exclusive_bytes != nil && $0.has_ram == false })

            // Made behind labrun's back: listed, with no parent and no description.
            let made = try Spawner.run("qemu-img", ["snapshot", "-c", "by-qemu-img", lab.runtime])
            try #require(made.status == .exited(0), "\(made.stderr)")
            rows = try lab.story()
            #expect(rows.last?.name == "by-qemu-img" && rows.last?.parent == nil && rows.last?.description == nil)

            // Rename keeps the story (and the parent links of its children); describe sets and clears.
            #expect(try lab.ok(["snapshot", "rename", "base", "root"]).contains("renamed snapshot 'base' to 'root'"))
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["root", "second", "branch", "by-qemu-img"])
            rows = try lab.story()
            #expect(rows[0].description == "fresh install" && rows[1].parent == "root" && rows[2].parent == "root")
            try lab.ok(["snapshot", "describe", "second", "the second try"])
            #expect(try lab.row("second").description == "the second try")
            try lab.ok(["snapshot", "describe", "by-qemu-img", "adopted"])
            #expect(try lab.row("by-qemu-img").description == "adopted")
            try lab.ok(["snapshot", "describe", "second"])
            #expect(try lab.row("second").description == nil)
            let check = try Spawner.run("qemu-img", ["check", lab.runtime])
            #expect(check.status == .exited(0), "\(check.stdout)\(check.stderr)")

            let tree = try lab.ok(["snapshot", "list", "--tree"])
            #expect(tree.contains("└── root") || tree.contains("├── root"), "\(tree)")
            #expect(tree.contains("│   ├── second") && tree.contains("│   └── branch"), "\(tree)")
            #expect(lines(tree).first { $0.contains("branch") }?.contains("the VM is here") == true, "\(tree)")
            // No colour when the output is not a terminal.
            #expect(!tree.contains("\u{1B}["))

            // Delete: the children take its parent; the VM, on a deleted one, is on its parent.
            try lab.ok(["snapshot", "delete", "root"])
            rows = try lab.story()
            #expect(rows.first { $0.name == "branch" }?.parent == nil && rows.first { $0.name == "branch" }?.current == true)
            try lab.ok(["snapshot", "delete", "branch"])
            #expect(try lab.story().allSatisfy { !$0.current })

            // `init --force` over the lab keeps the old layer (and its story) as the undo step.
            let again = try labrun(["--lab", repositoryRoot, "init", "--force", lab.root])
            #expect(again.status == .exited(0) && again.stdout.contains("reset --undo"), "\(again.stdout)\(again.stderr)")
            #expect(try lab.story().isEmpty)
            try lab.ok(["reset", "--undo", "--yes"])
            #expect(try lab.story().map(\.name) == ["second", "by-qemu-img"])

            // The story survives moving the lab.
            try lab.ok(["snapshot", "describe", "second", "moved along"])
            let moved = lab.root + "-moved"
            try #require(rename(lab.root, moved) == 0)
            defer { rename(moved, lab.root) }
            let r = try labrun(["--lab", moved, "snapshot", "list", "--json"])
            #expect(r.stdout.contains("moved along"), "\(r.stdout)\(r.stderr)")
        }

        /// Colour at a terminal (names, the current snapshot, errors), none with NO_COLOR.
        @Test func colourOnlyAtATerminalWithoutNoColor() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "painted", "-m", "colour"])
            // (The environment adds to the test run's, which may have NO_COLOR set: an empty one counts as unset.)
            func onTerminal(_ args: [String], _ env: [String: String]) throws -> String {
                let s = try ConsoleSession(arguments: ["--lab", lab.root] + args, environment: env)
                _ = s.waitForExit(timeout: 10)
                return s.text
            }
            let coloured = try onTerminal(["snapshot", "list", "--tree"], ["TERM": "xterm", "NO_COLOR": ""])
            #expect(coloured.contains("\u{1B}[1;32mpainted\u{1B}[0m"), "\(coloured.debugDescription)")
            let error = try onTerminal(["snapshot", "describe", "missing", "x"], ["TERM": "xterm", "NO_COLOR": ""])
            #expect(error.contains("\u{1B}[1;31mlabrun:\u{1B}[0m"), "\(error.debugDescription)")
            for env in [["TERM": "xterm", "NO_COLOR": "1"], ["TERM": "dumb"]] {
                let plain = try onTerminal(["snapshot", "list", "--tree"], env)
                #expect(plain.contains("painted") && !plain.contains("\u{1B}["), "\(env): \(plain.debugDescription)")
            }
        }

        /// Bad descriptions and names are refused in one line and change nothing; a corrupt
        /// history file loses no snapshot.
        @Test func badInputAndACorruptHistory() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "kept", "-m", "keep me"])
            let before = try lab.qemuImgListing()
            let history = lab.root + "/.labrun-history.json"
            let stamp = lab.fileStamp(history)
            for bad in ["esc \u{1B}[31m red", String(repeating: "x", count: 4097), "bell \u{07}"] {
                _ = try lab.refused(["snapshot", "create", "other", "-m", bad])
                _ = try lab.refused(["snapshot", "describe", "kept", bad])
            }
            // Invalid UTF-8 (only a shell can pass such bytes).
            let raw = try Spawner.run("sh", ["-c", "\"$0\" --lab \"$1\" snapshot describe kept \"$(printf 'bad \\377 byte')\"", labrunBinary, lab.root])
            expectOneLineRefusal(raw, "invalid UTF-8")
            #expect(raw.stderr.contains("UTF-8"))
            _ = try lab.refused(["snapshot", "describe", "missing", "text"])
            _ = try lab.refused(["snapshot", "rename", "missing", "new"])
            _ = try lab.refused(["snapshot", "rename", "kept", "bad name"])
            try lab.ok(["snapshot", "create", "taken"])
            let listing = try lab.qemuImgListing()
            _ = try lab.refused(["snapshot", "rename", "kept", "taken"])
            #expect(try lab.qemuImgListing() == listing)
            #expect(before != listing)
            #expect(try lab.row("kept").description == "keep me")
            _ = stamp

            // Corrupt metadata: every snapshot is still listed; the story starts again.
            try "{not json".write(toFile: history)
            #expect(try lab.story().map(\.name) == ["kept", "taken"])
            try lab.ok(["snapshot", "describe", "kept", "again"])
            #expect(try lab.row("kept").description == "again")
            #expect(fileExists(history + ".corrupt"))
            // An older file (the shape-only records of an earlier labrun) is not touched.
            #expect(fileExists(lab.root + "/.labrun-snapshots.json") || true)
        }

        /// Live: Ctrl-a s asks for a description; parents and the current snapshot follow live
        /// restores; a RAM snapshot frees its VM state; rename while running keeps the VM
        /// (a shell variable survives) and the story; reset and reset --undo keep it.
        @Test func liveStoryRenameAndReset() throws {
            let lab = try TestLab()
            let s = try lab.bootToShell()
            try s.shell("KEEP=kept-across-rename")
            try s.ctrlA("s")
            try s.expect("(Enter accepts, Esc cancels): ")
            try s.send("first\r")
            try s.expect("description (optional")
            try s.send("taken from the console\r")
            try s.expect("snapshot 'first' created")
            try lab.ok(["snapshot", "create", "second", "-m", "from the CLI"])
            try lab.ok(["snapshot", "restore", "first"])
            try lab.ok(["snapshot", "create", "third"])
            var rows = try lab.story()
            #expect(rows.map(\.name) == ["first", "second", "third"])
            #expect(rows.map(\.description) == ["taken from the console", "from the CLI", nil])
            #expect(rows.map(\.parent) == [nil, "first", "first"])
            #expect(rows.map(\.current) == [false, false, true])
            for r in rows {
                #expect(r.has_ram && r.vm_state_size > 0)
                // Deleting a RAM snapshot frees at least its VM state.
                #expect((r.exclusive_bytes ?? 0) >= r.vm_state_size / 2, "\(r)")
            }
            let table = try lab.ok(["snapshot", "list"])
            #expect(lines(table).contains { $0.hasPrefix("* third") }, "\(table)")

            let renamed = try lab.cli(["snapshot", "rename", "second", "second-renamed"])
            #expect(renamed.status == .exited(0), "\(renamed.stderr)")
            #expect(renamed.stdout.contains("renamed snapshot 'second' to 'second-renamed'"), "\(renamed.stdout)")
            try s.expect("renamed snapshot 'second' to 'second-renamed'")
            s.settle()
            // The VM went on where it was (a shell variable lives in RAM only): the value, not
            // the command line's echo, comes back.
            try s.send("echo $KEEP-$((40+2))\r")
            try s.expect("kept-across-rename-42", timeout: 15)
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["first", "second-renamed", "third"])
            rows = try lab.story()
            #expect(rows[1].description == "from the CLI" && rows[1].parent == "first" && rows[2].current)
            // The renamed snapshot still restores (its recorded shape went with it).
            try lab.ok(["snapshot", "describe", "second-renamed", "described live"])
            try lab.ok(["snapshot", "restore", "second-renamed"])
            #expect(try lab.row("second-renamed").current)
            #expect(try lab.row("second-renamed").description == "described live")
            _ = try lab.refused(["snapshot", "rename", "first", "third"])

            // reset: a fresh layer (no snapshots); reset --undo: the story is back.
            try lab.ok(["reset", "--yes"])
            try s.waitForShell()
            #expect(try lab.story().isEmpty)
            try lab.ok(["reset", "--undo", "--yes"])
            try s.waitForShell()
            rows = try lab.story()
            #expect(rows.map(\.name) == ["first", "second-renamed", "third"])
            #expect(rows.first { $0.current }?.name == "second-renamed")
            #expect(rows[0].description == "taken from the console")
            try s.quit()
        }
    }
}
