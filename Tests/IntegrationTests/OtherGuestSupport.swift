import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

// Helpers for the suites that boot the other guests (issue 5): the full Debian guest in the
// repository's `debian/` lab (`make rootfs`) and the tiny AArch64 guest in `guest-aarch64/`
// (`make guest-aarch64`).

/// The lab `make rootfs` builds.
let debianLabRoot = repositoryRoot + "/debian"
/// The lab `make guest-aarch64` builds.
let aarch64LabRoot = repositoryRoot + "/guest-aarch64"

/// A throwaway lab made by `labrun --lab SOURCE init DIR [--arch ARCH]`: its own runtime layer on
/// another lab's golden image. Stopped and removed at the end, like TestLab.
final class DerivedLab {
    let root: String
    let initOutput: Spawner.Output

    init(source: String, arch: String? = nil, name: String = "lab") throws {
        var template = Array("/tmp/labrun-test-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        root = dir + "/" + name
        initOutput = try labrun(["--lab", source, "init", root] + (arch.map { ["--arch", $0] } ?? []))
        try #require(initOutput.status == .exited(0), "labrun init failed: \(initOutput.stderr)")
    }

    var runtime: String { root + "/" + Lab.runtimeName }

    @discardableResult
    func cli(_ args: [String]) throws -> Spawner.Output {
        try labrun(["--lab", root] + args)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    @discardableResult
    func ok(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try cli(args)
        #expect(r.status == .exited(0), "labrun \(args.joined(separator: " ")) → \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        return r.stdout
    }

    func boot(_ extra: [String] = []) throws -> ConsoleSession {
        try ConsoleSession(arguments: ["--lab", root, "boot"] + extra)
    }

    /// Boots and waits for the root shell; returns the session and the seconds it took.
    func bootToShell(_ extra: [String] = [], timeout: Double) throws -> (ConsoleSession, Double) {
        let start = monotonicSeconds()
        let s = try boot(extra)
        try s.waitForShell(timeout: timeout)
        return (s, monotonicSeconds() - start)
    }

    deinit {
        _ = try? labrun(["--lab", root, "stop"])
        _ = try? Spawner.run("rm", ["-rf", parentDirectory(root)])
    }
}

extension ConsoleSession {
    /// Ctrl-a x, and labrun ends with 0.
    func quitCleanly(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try send([0x01, UInt8(ascii: "x")])
        let s = waitForExit(timeout: 30)
        #expect(s == .exited(0), "labrun did not quit cleanly: \(String(describing: s))", sourceLocation: sourceLocation)
    }
}

/// "12.3": seconds to one decimal.
func tenths(_ seconds: Double) -> String {
    let t = Int((seconds * 10).rounded())
    return "\(t / 10).\(t % 10)"
}

/// Prints a measurement where `swift test` shows it (the README's numbers come from these).
func report(_ line: String) {
    try? FileDescriptor.standardError.writeAll("[measured] " + line + "\n")
}
