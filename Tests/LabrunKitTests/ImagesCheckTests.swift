import Testing
@testable import LabrunKit

@Suite(.enabled(if: hasQemuImg)) struct ImagesCheckTests {
    /// Sets the 16-bit refcount of host cluster `cluster` (first refcount block). Cluster 0,
    /// the header, has refcount 1: 2 makes a leak, 0 a corruption. Deterministic, unlike
    /// killing qemu-img mid-write.
    func setRefcount(_ s: Scratch, _ image: String, cluster: Int, to value: UInt16) throws {
        var bytes = s.bytes(image)
        func u64(_ at: Int) -> Int { bytes[at..<at + 8].reduce(0) { $0 << 8 | Int($1) } }
        let refcountBlock = u64(u64(48))
        bytes[refcountBlock + 2 * cluster] = UInt8(value >> 8)
        bytes[refcountBlock + 2 * cluster + 1] = UInt8(value & 0xff)
        try s.write(image, bytes)
    }

    @Test func cleanLeakyRepairedCorruptAndUnsupported() throws {
        try withScratch { s in
            let img = try QemuImg()
            let image = try s.makeImage()
            let clean = try img.check(image, repair: false)
            #expect(clean == CheckResult(status: .clean))
            #expect(clean.explanation == "no errors")

            try setRefcount(s, image, cluster: 0, to: 2)
            let leaky = try img.check(image, repair: false)
            #expect(leaky == CheckResult(status: .leaks(1), leakedClusters: 1))
            #expect(leaky.explanation == "1 leaked cluster: wasted space only, no data is harmed; `labrun check --repair` reclaims it while the VM is stopped")

            let repaired = try img.check(image, repair: true)
            #expect(repaired == CheckResult(status: .clean, leaksFixed: 1))
            #expect(repaired.explanation == "no errors; repaired 1 leaked cluster")
            #expect(try img.check(image, repair: false) == CheckResult(status: .clean))

            try setRefcount(s, image, cluster: 0, to: 0)
            let corrupt = try img.check(image, repair: false)
            #expect(corrupt == CheckResult(status: .corrupt(1), corruptions: 1))
            #expect(corrupt.explanation.hasPrefix("1 corruption: the image is damaged"))
            #expect(corrupt.explanation.contains("restore a snapshot"))
            #expect(corrupt.explanation.contains("-r all"))

            // Repairing leaks only cannot fix a corruption: qemu-img gives up with an error.
            let gaveUp = try img.check(image, repair: true)
            guard case .error(let line) = gaveUp.status else {
                Issue.record("expected an error, got \(gaveUp)")
                return
            }
            #expect(line.hasPrefix("qemu-img: "))

            let raw = s.path("raw.img")
            try s.run("qemu-img", ["create", "-q", "-f", "raw", raw, "1M"])
            let unsupported = try img.check(raw, repair: false)
            #expect(unsupported.status == .unsupported)
            #expect(unsupported.explanation == "this image format has no consistency check")

            let missing = try img.check(s.path("missing.qcow2"), repair: false)
            #expect(missing.status == .error("qemu-img: Could not open '\(s.path("missing.qcow2"))': Could not open '\(s.path("missing.qcow2"))': No such file or directory"))
        }
    }

    @Test func parsesAReportWithoutQemu() {
        let json = Array(#"{"image-end-offset": 393216, "total-clusters": 16, "check-errors": 0, "leaks": 7, "leaks-fixed": 2, "filename": "x", "format": "qcow2"}"#.utf8)
        let r = CheckResult(exitCode: 3, json: json, errorLine: "")
        #expect(r == CheckResult(status: .leaks(7), leakedClusters: 7, leaksFixed: 2))
        #expect(r.explanation.hasPrefix("7 leaked clusters: "))
        #expect(CheckResult(exitCode: 1, json: [], errorLine: "qemu-img: boom").explanation == "the check could not run: qemu-img: boom")
    }
}
