import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 15 §5: `labrun export FILE` and `labrun import FILE DIR`. The witness is a file
/// written in the guest: it must be in the exported image, read back by booting a lab
/// imported from it.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, the guest and a built labrun"))
struct ExportTests {
    /// `labrun --lab DIR ARGS` for a lab that is not a TestLab (an imported one).
    @discardableResult
    func cli(_ root: String, _ args: [String]) throws -> Spawner.Output {
        try labrun(["--lab", root] + args)
    }

    /// Runs a shell line in the running guest of `root`; its stdout.
    @discardableResult
    func guest(_ root: String, _ line: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try cli(root, ["exec", "--", "sh", "-c", line])
        #expect(r.status == .exited(0), "exec \(line) → \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        return r.stdout.trimmed
    }

    func bootDetached(_ root: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try cli(root, ["boot", "--detach"])
        try #require(r.status == .exited(0), "boot --detach: \(r.stderr)", sourceLocation: sourceLocation)
    }

    func stop(_ root: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try cli(root, ["stop"])
        #expect(r.status == .exited(0), "stop: \(r.stderr)", sourceLocation: sourceLocation)
    }

    /// Imports `file` into `dir`, boots it, returns what `cat PATH` says in its guest, stops it.
    func importAndRead(_ file: String, into dir: String, _ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try labrun(["--lab", repositoryRoot, "import", file, dir])
        try #require(r.status == .exited(0), "import \(file): \(r.stderr)", sourceLocation: sourceLocation)
        try bootDetached(dir, sourceLocation: sourceLocation)
        defer { try? stop(dir) }
        return try guest(dir, "cat \(path) 2>&1 || true", sourceLocation: sourceLocation)
    }

    /// `qemu-img info` of an exported file: (format, backing file, virtual size).
    func info(_ path: String) throws -> ImageInfo {
        let infos = try QemuImg().info(path, backingChain: false)
        return try #require(infos.first)
    }

    func qemuImg(_ args: [String]) throws -> Spawner.Output { try Spawner.run("qemu-img", args) }

    /// The files in `dir` whose names end in ".part".
    func partFiles(_ dir: String) -> [String] { namesInDirectory(dir).filter { $0.hasSuffix(".part") } }

    @Test func offlineExportOfNowAndOfASnapshotImportsAndBoots() throws {
        let lab = try TestLab()
        let out = parentDirectory(lab.root)
        try bootDetached(lab.root)
        try guest(lab.root, "echo first-state > /root/witness; sync")
        try stop(lab.root)
        try lab.ok(["snapshot", "create", "before"])
        try bootDetached(lab.root)
        try guest(lab.root, "echo second-state > /root/witness; sync")
        try stop(lab.root)
        let runtimeBefore = lab.fileStamp(lab.runtime)

        let now = try lab.cli(["export", out + "/now.qcow2"])
        #expect(now.status == .exited(0), "\(now.stderr)")
        #expect(now.stdout.contains("compared with"), "\(now.stdout)")
        let snap = try lab.cli(["export", "--snapshot", "before", out + "/before.qcow2"])
        #expect(snap.status == .exited(0), "\(snap.stderr)")
        let packed = try lab.cli(["export", "--snapshot", "before", "--compress", out + "/before-c.qcow2"])
        #expect(packed.status == .exited(0), "\(packed.stderr)")
        #expect(lab.fileStamp(lab.runtime) == runtimeBefore, "export changed the runtime layer")
        #expect(partFiles(out).isEmpty)

        for name in ["now", "before", "before-c"] {
            let i = try info(out + "/\(name).qcow2")
            #expect(i.format == "qcow2" && i.backingFilename == nil, "\(name): \(i)")
            #expect(try qemuImg(["check", out + "/\(name).qcow2"]).status == .exited(0), "\(name) fails qemu-img check")
        }
        // The compressed copy holds the same data, in less space.
        #expect(try qemuImg(["compare", out + "/before.qcow2", out + "/before-c.qcow2"]).status == .exited(0))
        let plain = FileStatus.of(out + "/before.qcow2")?.size ?? 0, small = FileStatus.of(out + "/before-c.qcow2")?.size ?? 0
        #expect(small < plain, "compressed \(small) B, plain \(plain) B")
        // The current state differs from the snapshot's.
        #expect(try qemuImg(["compare", out + "/now.qcow2", out + "/before.qcow2"]).status == .exited(1))

        #expect(try importAndRead(out + "/now.qcow2", into: out + "/lab-now", "/root/witness") == "second-state")
        #expect(try importAndRead(out + "/before-c.qcow2", into: out + "/lab-before", "/root/witness") == "first-state")
        // The imported image is the new lab's golden image: a reset comes back to it.
        let imported = out + "/lab-before"
        #expect(try info(imported + "/" + Lab.runtimeName).backingFilename == Lab.goldenName)
        try bootDetached(imported)
        try guest(imported, "echo changed > /root/witness; sync")
        try stop(imported)
        #expect(try cli(imported, ["reset", "--yes"]).status == .exited(0))
        try bootDetached(imported)
        #expect(try guest(imported, "cat /root/witness") == "first-state")
        try stop(imported)
    }

    @Test func liveExportLeavesTheGuestRunningAndBoots() throws {
        let lab = try TestLab()
        let out = parentDirectory(lab.root)
        try bootDetached(lab.root)
        // A writer and a ticker: the writer keeps the disk busy during the copy; the ticker's
        // uptimes show whether the guest ever stood still.
        try guest(lab.root, "echo live-state > /root/witness; sync")
        try guest(lab.root, """
            (i=0; while :; do i=$((i+1)); echo $i > /root/count; dd if=/dev/urandom of=/root/blob bs=64k count=8 2>/dev/null; sync; done) </dev/null >/dev/null 2>&1 &
            (while :; do cut -d' ' -f1 /proc/uptime >> /tmp/ticks; usleep 20000; done) </dev/null >/dev/null 2>&1 &
            """)
        sleepSeconds(1)
        let countBefore = Int(try guest(lab.root, "cat /root/count")) ?? -1
        try guest(lab.root, ": > /tmp/ticks")
        let started = monotonicSeconds()
        let r = try lab.cli(["export", out + "/live.qcow2"])
        let took = monotonicSeconds() - started
        #expect(r.status == .exited(0), "\(r.stderr)")
        #expect(r.stdout.contains("VM running"), "\(r.stdout)")
        sleepSeconds(0.5)
        let ticks = try guest(lab.root, "cat /tmp/ticks").split(separator: "\n").compactMap { Double($0) }
        let countAfter = Int(try guest(lab.root, "cat /root/count")) ?? -1
        #expect(countAfter > countBefore, "the writer stood still: \(countBefore) → \(countAfter)")
        let gaps = zip(ticks, ticks.dropFirst()).map { $1 - $0 }
        let longest = gaps.max() ?? 0
        print("live export: \(Messages.formatSeconds(took)); guest ticks \(ticks.count), longest gap \(Messages.formatSeconds(longest))")
        #expect(ticks.count > 5, "too few ticks: \(ticks.count)")
        #expect(longest < 1.0, "the guest stood still for \(longest) s during the export")
        #expect(partFiles(out).isEmpty)
        let i = try info(out + "/live.qcow2")
        #expect(i.format == "qcow2" && i.backingFilename == nil)
        #expect(try qemuImg(["check", out + "/live.qcow2"]).status == .exited(0))

        // A snapshot of the running VM, read beside it.
        try lab.ok(["snapshot", "create", "live-snap"])
        let s = try lab.cli(["export", "--snapshot", "live-snap", "--compress", out + "/live-snap.qcow2"])
        #expect(s.status == .exited(0), "\(s.stderr)")
        try stop(lab.root)

        #expect(try importAndRead(out + "/live.qcow2", into: out + "/lab-live", "/root/witness") == "live-state")
        #expect(try importAndRead(out + "/live-snap.qcow2", into: out + "/lab-snap", "/root/witness") == "live-state")
    }

    /// Ctrl-C or SIGTERM of the CLI during a live export: the job is cancelled, no file is
    /// left (neither FILE nor its .part), and the VM runs on.
    @Test func liveExportCancelledBySignalLeavesNothing() throws {
        let lab = try TestLab()
        let out = parentDirectory(lab.root)
        try bootDetached(lab.root)
        defer { try? stop(lab.root) }
        for signal in [SIGTERM, SIGINT] {
            var config = SpawnConfiguration(executable: labrunBinary, arguments: ["--lab", lab.root, "export", out + "/slow.qcow2"])
            config.environment = ["LABRUN_EXPORT_SPEED": "1000000"]
            config.standardInput = .devNull
            config.standardOutput = .devNull
            try "".write(toFile: out + "/export.err")
            config.standardError = .path(out + "/export.err")
            let child = try Spawner.spawn(config)
            let deadline = monotonicSeconds() + 10
            while partFiles(out).isEmpty && monotonicSeconds() < deadline { sleepSeconds(0.05) }
            #expect(!partFiles(out).isEmpty, "no .part file appeared")
            sleepSeconds(0.5)
            _ = kill(child.pid, signal)
            let status = child.wait(upTo: 10)
            #expect(status == .exited(128 + signal), "\(String(describing: status)): \(String(decoding: readSmallFile(out + "/export.err") ?? [], as: UTF8.self)) \(String(decoding: readSmallFile(lab.root + "/console.log") ?? [], as: UTF8.self).suffix(1500))")
            let gone = monotonicSeconds() + 5
            while !partFiles(out).isEmpty && monotonicSeconds() < gone { sleepSeconds(0.05) }
            #expect(partFiles(out).isEmpty && !fileExists(out + "/slow.qcow2"), "left: \(namesInDirectory(out))")
            #expect(try guest(lab.root, "echo alive") == "alive")
        }
        // The supervisor cancels the job within a second; then it takes the next export.
        var next = try lab.cli(["export", out + "/after.qcow2"])
        let until = monotonicSeconds() + 5
        while next.status != .exited(0) && next.stderr.contains("another export") && monotonicSeconds() < until {
            sleepSeconds(0.2)
            next = try lab.cli(["export", out + "/after.qcow2"])
        }
        #expect(next.status == .exited(0), "\(next.stderr)")
    }

    @Test func exportRefusesBadInputAndLeavesNoPartAfterAFailure() throws {
        let lab = try TestLab()
        let out = parentDirectory(lab.root)
        let before = lab.fileStamp(lab.runtime)
        try lab.ok(["export", out + "/a.qcow2"])
        let stamp = lab.fileStamp(out + "/a.qcow2")
        #expect(try lab.refused(["export", out + "/a.qcow2"]).contains("--force"))
        #expect(lab.fileStamp(out + "/a.qcow2") == stamp)
        #expect(try lab.cli(["export", "--force", out + "/a.qcow2"]).status == .exited(0))
        #expect(try lab.refused(["export", "--snapshot", "missing", out + "/b.qcow2"]).contains("no snapshot named 'missing'"))
        #expect(try lab.refused(["export", out + "/no/such/dir/b.qcow2"]).contains("does not exist"))
        #expect(try lab.refused(["export", lab.runtime, "--force"]).contains("own images"))
        try lab.refused(["export", out], status: 1)
        #expect(try lab.cli(["export"]).status == .exited(64))
        #expect(!fileExists(out + "/b.qcow2") && partFiles(out).isEmpty)

        guard getuid() == 0 else { return }
        // A read-only directory, and a full file system (offline, then live).
        let ro = out + "/ro", full = out + "/full"
        #expect(makeDirectory(ro) && makeDirectory(full))
        #expect(try Spawner.run("mount", ["-t", "tmpfs", "-o", "ro,size=1M", "tmpfs", ro]).status == .exited(0))
        defer { _ = try? Spawner.run("umount", [ro]) }
        #expect(try Spawner.run("mount", ["-t", "tmpfs", "-o", "size=2M", "tmpfs", full]).status == .exited(0))
        defer { _ = try? Spawner.run("umount", [full]) }
        #expect(try lab.refused(["export", ro + "/x.qcow2"]).contains("not writable"))
        let offline = try lab.cli(["export", full + "/x.qcow2"])
        #expect(offline.status == .exited(1))
        #expect(offline.stderr.split(separator: "\n").last?.contains("No space left") == true, "\(offline.stderr)")
        #expect(namesInDirectory(full).isEmpty, "left: \(namesInDirectory(full))")
        #expect(lab.fileStamp(lab.runtime) == before, "a failed export changed the runtime layer")

        try bootDetached(lab.root)
        defer { try? stop(lab.root) }
        let live = try lab.cli(["export", full + "/x.qcow2"])
        expectOneLineRefusal(live, "live export into a full file system")
        #expect(live.stderr.contains("No space left"), "\(live.stderr)")
        #expect(namesInDirectory(full).isEmpty, "left: \(namesInDirectory(full))")
        #expect(try guest(lab.root, "echo alive") == "alive")
        #expect(try lab.cli(["export", "--snapshot", "missing", out + "/c.qcow2"]).status == .exited(1))
    }

    @Test func importRefusesWhatIsNotAStandaloneQcow2() throws {
        let lab = try TestLab()
        let out = parentDirectory(lab.root)
        func refusedImport(_ file: String, _ dir: String, _ needle: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try labrun(["--lab", lab.root, "import", file, dir])
            expectOneLineRefusal(r, "import \(file)", sourceLocation: sourceLocation)
            #expect(r.stderr.contains(needle), "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(!fileExists(dir) || !fileExists(dir + "/" + Lab.goldenName), "\(dir) was made", sourceLocation: sourceLocation)
        }
        // A runtime layer has a backing file; the base layer is raw; text is not an image.
        try refusedImport(lab.runtime, out + "/x", "backing file")
        try refusedImport(repositoryRoot + "/" + Lab.baseName, out + "/x", "raw")
        try "not an image\n".write(toFile: out + "/text")
        try refusedImport(out + "/text", out + "/x", "not qcow2")
        try refusedImport(out + "/missing.qcow2", out + "/x", "does not exist")
        #expect(!fileExists(out + "/x"))
        // An existing lab is not replaced without --force.
        try lab.ok(["export", out + "/good.qcow2"])
        try refusedImport(out + "/good.qcow2", lab.root, "--force")
        #expect(try labrun(["--lab", lab.root, "import", "--help"]).stdout.contains("usage: labrun import"))
    }
}
