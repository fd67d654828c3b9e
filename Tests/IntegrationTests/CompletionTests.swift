import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 15 §3: completion, driven through bash's own completion function; the man page.
@Suite(.serialized, .enabled(if: integrationAvailable && findExecutable("bash") != nil, "needs bash, the guest and a built labrun"))
struct CompletionTests {
    /// What bash's `_labrun` offers for the words typed so far (the last one is being completed).
    func complete(_ words: [String]) throws -> [String] {
        let script = """
            source <(labrun completion bash)
            COMP_WORDS=(\(words.map { "'\($0)'" }.joined(separator: " ")))
            COMP_CWORD=\(words.count - 1)
            _labrun
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let path = parentDirectory(labrunBinary) + ":" + (environmentValue("PATH") ?? "/usr/bin:/bin")
        let r = try runWithEnvironment(["PATH": path], "bash", ["-c", script])
        #expect(r.status == .exited(0), "\(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    @Test func bashCompletesCommandsOptionsAndSnapshotNames() throws {
        let lab = try TestLab()
        try lab.ok(["snapshot", "create", "before-change"])
        try lab.ok(["snapshot", "create", "bisect-good"])
        #expect(try complete(["labrun", "sn"]) == ["snapshot"])
        #expect(Set(try complete(["labrun", "--lab", lab.root, "snapshot", ""])) == ["create", "restore", "list", "delete", "rename", "describe"])
        #expect(Set(try complete(["labrun", "--lab", lab.root, "snapshot", "restore", ""])) == ["before-change", "bisect-good"])
        #expect(try complete(["labrun", "--lab", lab.root, "snapshot", "delete", "bi"]) == ["bisect-good"])
        #expect(try complete(["labrun", "attach", "--re"]) == ["--read-only"])
        #expect(Set(try complete(["labrun", "boot", "--accel", ""])) == ["auto", "kvm", "tcg"])

        // Live too: the running VM's snapshots, as fast.
        let session = try lab.bootToShell()
        try lab.ok(["snapshot", "create", "live-one"])
        let started = monotonicSeconds()
        let names = try lab.cli(["__complete", "snapshots"])
        let took = monotonicSeconds() - started
        #expect(Set(names.stdout.split(separator: "\n").map(String.init)) == ["before-change", "bisect-good", "live-one"])
        #expect(took < 0.5, "completing snapshot names took \(took) s")
        try session.quit()
    }

    @Test func manPageAndScriptsForEveryShell() throws {
        let man = try labrun(["__man"])
        #expect(man.stdout.hasPrefix(".TH LABRUN 1") && man.stdout.contains(".SS snapshot") && man.stdout.contains("labrun attach"))
        for shell in ["bash", "zsh", "fish"] {
            let r = try labrun(["completion", shell])
            #expect(r.status == .exited(0) && r.stdout.contains("__complete"), "\(shell)")
        }
        #expect(try labrun(["completion", "tcsh"]).status == .exited(64))
    }
}
