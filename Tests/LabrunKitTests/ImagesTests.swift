import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

// Shared helpers for the Images*Tests files, then ImageInfo / ImageChain decoding.

let hasQemuImg = findExecutable("qemu-img") != nil && findExecutable("qemu-io") != nil

/// A temporary directory, removed with everything in it when `body` returns.
func withScratch<R>(_ body: (Scratch) throws -> R) throws -> R {
    var template = Array("/tmp/labrun-images-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw LabrunError("mkdtemp failed") }
    let scratch = Scratch(dir: String(cString: made))
    defer { try? FileManager.default.removeItem(atPath: scratch.dir) }
    return try body(scratch)
}

struct Scratch {
    let dir: String
    func path(_ name: String) -> String { "\(dir)/\(name)" }

    /// Runs a tool and requires it to succeed.
    @discardableResult
    func run(_ tool: String, _ args: [String]) throws -> Spawner.Output {
        let out = try Spawner.run(tool, args)
        guard out.status.isSuccess else { throw LabrunError("\(tool) \(args.joined(separator: " ")): \(out.stderr)") }
        return out
    }

    /// Like the lab: base.img raw 1 MiB ← golden.qcow2 ← runtime.qcow2, each backing relative.
    /// The two overlays live in sub/ with the base one level up, to exercise relative paths.
    func makeChain() throws -> (base: String, golden: String, runtime: String) {
        try FileManager.default.createDirectory(atPath: path("sub"), withIntermediateDirectories: true)
        let base = path("base.img"), golden = path("sub/golden.qcow2"), runtime = path("sub/runtime.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "raw", base, "1M"])
        let img = try QemuImg()
        try img.createOverlay(path: golden, backing: "../base.img", backingFormat: "raw")
        try img.createOverlay(path: runtime, backing: "golden.qcow2", backingFormat: "qcow2")
        return (base, golden, runtime)
    }

    /// A lone 1 MiB qcow2 image.
    func makeImage(_ name: String = "disk.qcow2") throws -> String {
        let p = path(name)
        try run("qemu-img", ["create", "-q", "-f", "qcow2", p, "1M"])
        return p
    }

    func bytes(_ p: String) -> [UInt8] { readSmallFile(p, limit: 64 << 20) ?? [] }

    func write(_ p: String, _ bytes: [UInt8]) throws {
        let fd = try FileDescriptor.open(p, O_WRONLY | O_TRUNC)
        try fd.closeAfter { () throws(SystemCallError) in try fd.writeAll(bytes) }
    }

    /// qemu-io with one command; true when it succeeded (a `read -P` pattern mismatch fails).
    func qemuIO(_ image: String, _ command: String) throws -> Bool {
        try Spawner.run("qemu-io", ["-c", command, image]).status.isSuccess
    }
}

@Suite struct ImageInfoTests {
    @Test(.enabled(if: hasQemuImg)) func decodesARealThreeLayerChain() throws {
        try withScratch { s in
            let (base, golden, runtime) = try s.makeChain()
            let img = try QemuImg()
            try img.createSnapshot(runtime, name: "first")
            let layers = try img.info(runtime, backingChain: true)
            let chain = try ImageChain(layers)
            try chain.validate()

            #expect(chain.layers.count == 3)
            #expect(chain.top.filename == runtime)
            #expect(chain.top.format == "qcow2")
            #expect(chain.top.backingFilename == "golden.qcow2")
            #expect(chain.top.fullBackingFilename == s.path("sub/golden.qcow2"))
            #expect(chain.top.backingFilenameFormat == "qcow2")
            #expect(chain.top.virtualSize == 1 << 20)
            #expect(chain.top.clusterSize == 65536)
            #expect(chain.top.dirtyFlag == false)
            #expect(chain.top.corrupt == false)
            #expect((chain.top.actualSize ?? 0) > 0)
            #expect(chain.top.snapshots.map(\.name) == ["first"])
            #expect(chain.top.snapshots.first?.id == "1")
            #expect(chain.top.snapshots.first?.vmStateSize == 0)

            #expect(chain.layers[1].filename == golden)
            #expect(chain.layers[1].backingFilename == "../base.img")
            #expect(chain.layers[1].backingFilenameFormat == "raw")
            #expect(chain.layers[1].snapshots.isEmpty)
            #expect(realPath(chain.bottom.filename) == realPath(base))
            #expect(chain.bottom.format == "raw")
            #expect(chain.bottom.backingFilename == nil)
            #expect(chain.bottom.corrupt == nil)
            #expect(chain.bottom.clusterSize == nil)

            // Without --backing-chain qemu-img prints one object, not an array.
            let single = try img.info(runtime, backingChain: false)
            #expect(single.count == 1)
            #expect(single[0] == chain.top)
            #expect(try img.chain(runtime) == chain)
            #expect(try img.snapshots(runtime) == chain.top.snapshots)
        }
    }

    @Test func roundTripsThroughCodableAndIgnoresUnknownKeys() throws {
        let json = """
            {"filename": "a.qcow2", "format": "qcow2", "virtual-size": 1048576, "actual-size": 200704,
             "backing-filename": "b.img", "full-backing-filename": "/x/b.img", "backing-filename-format": "raw",
             "dirty-flag": false, "cluster-size": 65536, "some-future-key": [1, 2],
             "snapshots": [{"icount": 0, "vm-clock-nsec": 5, "name": "s", "date-sec": 1795723189,
                            "date-nsec": 305578000, "vm-clock-sec": 2, "id": "1", "vm-state-size": 95420416}],
             "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "corrupt": true, "refcount-bits": 16}}}
            """
        let info = try #require(try ImageInfo.decode(Array(json.utf8)).first)
        #expect(info.corrupt == true)
        #expect(info.snapshots == [SnapshotInfo(id: "1", name: "s", vmStateSize: 95420416, dateSeconds: 1795723189,
                                                dateNanoseconds: 305578000, vmClockSeconds: 2, vmClockNanoseconds: 5)])
        let again = try JSONDecoder().decode(ImageInfo.self, from: JSONEncoder().encode(info))
        #expect(again == info)
    }

    @Test func refusesGarbage() {
        #expect(throws: LabrunError.self) { try ImageInfo.decode(Array("qemu-img: oops".utf8)) }
        #expect(throws: LabrunError.self) { try ImageInfo.decode(Array("[{\"filename\": 3}]".utf8)) }
        #expect(throws: LabrunError.self) { try ImageChain([]) }
    }

    @Test func chainValidationNamesTheMismatch() throws {
        let top = ImageInfo(filename: "rt.qcow2", format: "qcow2", virtualSize: 1, backingFilename: "g.qcow2",
                            fullBackingFilename: "g.qcow2", backingFilenameFormat: "qcow2")
        let golden = ImageInfo(filename: "g.qcow2", format: "qcow2", virtualSize: 1, backingFilename: "b.img",
                               fullBackingFilename: "b.img", backingFilenameFormat: "raw")
        let base = ImageInfo(filename: "b.img", format: "raw", virtualSize: 1)
        try ImageChain([top, golden, base]).validate()

        var wrongFormat = base
        wrongFormat.format = "qcow2"
        #expect(throws: LabrunError("g.qcow2 expects its backing file b.img in raw format, but it is qcow2")) {
            try ImageChain([top, golden, wrongFormat]).validate()
        }
        var other = golden
        other.filename = "other.qcow2"
        #expect(throws: LabrunError("rt.qcow2 is backed by g.qcow2, but the next layer is other.qcow2")) {
            try ImageChain([top, other, base]).validate()
        }
        #expect(throws: LabrunError("g.qcow2 is backed by b.img, which qemu-img did not list; is it missing?")) {
            try ImageChain([top, golden]).validate()
        }
        #expect(throws: LabrunError("b.img has no backing file, but qemu-img listed g.qcow2 below it")) {
            try ImageChain([base, golden]).validate()
        }
    }

    @Test(.enabled(if: hasQemuImg)) func failuresCarryQemuImgsOwnLine() throws {
        try withScratch { s in
            let img = try QemuImg()
            let missing = s.path("missing.qcow2")
            #expect(throws: LabrunError("qemu-img: Could not open '\(missing)': Could not open '\(missing)': No such file or directory")) {
                try img.info(missing, backingChain: true)
            }
            // A relative name that looks like an option or a protocol stays a file name.
            #expect(throws: LabrunError("qemu-img: Could not open './-x:y': Could not open './-x:y': No such file or directory")) {
                try img.info("-x:y", backingChain: false)
            }
        }
    }

    @Test func missingQemuImgSaysWhatToInstall() {
        #expect(throws: LabrunError("no-such-qemu-img not found; install it with `apt-get install qemu-utils`")) {
            try QemuImg(executable: "no-such-qemu-img")
        }
    }
}
