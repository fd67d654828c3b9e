import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The live path's delicate steps against a scripted QMP peer (and a scripted guest agent):
/// the undo snapshot around a restore, recovery after a failed loadvm, and the share's
/// unmount and remount around savevm. Each script lists what QEMU must be asked, in order,
/// and what it answers.
@Suite struct LiveSnapshotJobTests {
    /// What the peer expects next and answers: `expect` is the command (`execute`, "execute
    /// TAG" for a snapshot job, or "agent VERB"), `reply` the JSON of "return" (or an agent
    /// reply word); a job's `jobError` is what query-jobs reports for it.
    struct Exchange {
        let expect: String
        let reply: String
        var jobError: String?
        init(_ expect: String, _ reply: String = "{}") { self.expect = expect; self.reply = reply }
        static func hmp(_ line: String, _ out: String = "") -> Exchange { Exchange(line, "\"\(out)\"") }
        static func job(_ what: String, error: String? = nil) -> Exchange {
            var e = Exchange(what)
            e.jobError = error
            return e
        }
    }

    static let shape = VMShape(arch: "x86_64", machine: "pc", cpu: "default", memoryMiB: 256, cpus: 1, share: false)

    static func nodes(_ snapshots: [(String, UInt64)]) -> String {
        let list = snapshots.enumerated().map { i, s in
            "{\"id\":\"\(i + 1)\",\"name\":\"\(s.0)\",\"vm-state-size\":\(s.1),\"date-sec\":\(1000 + i),\"date-nsec\":0,\"vm-clock-sec\":0,\"vm-clock-nsec\":0}"
        }
        return "[{\"node-name\":\"runtime\",\"image\":{\"snapshots\":[\(list.joined(separator: ","))]}}]"
    }

    /// Runs `request` against the script; returns the outcome, the steps and what was asked.
    func run(_ request: SnapshotRequest, _ script: [Exchange], shareExported: Bool = false,
             recorded: VMShape? = nil, cancelAfter: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> (result: Result<SnapshotOutcome, SnapshotError>?, steps: [String], asked: [String]) {
        func pair() throws -> (FileDescriptor, FileDescriptor) {
            var fds: [Int32] = [0, 0]
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
            let mine = FileDescriptor(rawValue: fds[0]), peer = FileDescriptor(rawValue: fds[1])
            try mine.setNonBlocking(true)
            try peer.setNonBlocking(true)
            return (mine, peer)
        }
        let (qmpFD, qemu) = try pair()
        let (agentFD, guest) = try pair()
        defer { qemu.close(); guest.close() }
        let qmp = QMPClient(fd: qmpFD)
        let agent = GuestAgent()
        agent.attach(agentFD)
        defer { qmp.close(); agent.close() }
        try qemu.writeAll("{\"QMP\":{\"version\":{}}}\r\n")
        try guest.writeAll("0 hello labrun-agent 1\n")

        var result: Result<SnapshotOutcome, SnapshotError>?
        var context = LiveSnapshotContext(image: "/lab/runtime.qcow2", shareExported: shareExported, shape: Self.shape)
        context.recordedShape = { _ in recorded }
        let job = LiveSnapshotJob(request, qmp: qmp, agent: agent, context: context) { result = $0 }
        var started = false
        var rest = script[...]
        var asked: [String] = []
        var concluded: [(id: String, error: String?)] = []
        var qemuLines = LineBuffer(limit: 1 << 20), guestLines = LineBuffer(limit: 1 << 20)
        let deadline = monotonicSeconds() + 5
        while result == nil && monotonicSeconds() < deadline {
            var set = PollSet()
            for i in qmp.interests + agent.interests { set.add(i) }
            set.add(qemu)
            set.add(guest)
            let ready = try set.wait(timeout: 50)
            qmp.handle(ready, now: monotonicSeconds())
            agent.handle(ready, now: monotonicSeconds())
            if !started && qmp.isReady && agent.isReady { started = true; job.start() }
            if ready[qemu] != nil, case .success(let b) = qemu.read(), !b.isEmpty {
                for line in try qemuLines.append(b) {
                    let msg = try JSONDecoder().decode(JSONValue.self, from: Data(line))
                    let id = msg["id"]?.int ?? 0
                    let execute = msg["execute"]?.string ?? ""
                    if execute == "qmp_capabilities" || execute == "job-dismiss" { try qemu.writeAll("{\"return\":{},\"id\":\(id)}\r\n"); continue }
                    if execute == "query-jobs" {
                        let jobs = concluded.map { j in "{\"id\":\"\(j.id)\",\"status\":\"concluded\"" + (j.error.map { ",\"error\":\"\($0)\"" } ?? "") + "}" }
                        try qemu.writeAll("{\"return\":[\(jobs.joined(separator: ","))],\"id\":\(id)}\r\n")
                        continue
                    }
                    let jobID = msg["arguments"]?["job-id"]?.string
                    let what = jobID != nil ? "\(execute) \(msg["arguments"]?["tag"]?.string ?? "")"
                        : execute == "human-monitor-command" ? (msg["arguments"]?["command-line"]?.string ?? "") : execute
                    asked.append(what)
                    if asked.count == cancelAfter { job.cancel() }
                    guard let next = rest.popFirst() else { Issue.record("unexpected \(what)", sourceLocation: sourceLocation); continue }
                    #expect(what == next.expect, "asked \(what), script expected \(next.expect)", sourceLocation: sourceLocation)
                    if let jobID {
                        #expect(msg["arguments"]?["devices"] == .array([.string("runtime")]), sourceLocation: sourceLocation)
                        concluded.append((jobID, next.jobError))
                        // "concluded" before the command's own reply, as QEMU sometimes sends it.
                        try qemu.writeAll("{\"event\":\"JOB_STATUS_CHANGE\",\"data\":{\"id\":\"\(jobID)\",\"status\":\"concluded\"}}\r\n")
                    }
                    try qemu.writeAll("{\"return\":\(next.reply),\"id\":\(id)}\r\n")
                }
            }
            if ready[guest] != nil, case .success(let b) = guest.read(), !b.isEmpty {
                for line in try guestLines.append(b) {
                    let fields = String(decoding: line, as: UTF8.self).split(separator: " ")
                    let what = "agent " + fields[1]
                    asked.append(what)
                    guard let next = rest.popFirst() else { Issue.record("unexpected \(what)", sourceLocation: sourceLocation); continue }
                    #expect(what == next.expect, "asked \(what), script expected \(next.expect)", sourceLocation: sourceLocation)
                    try guest.writeAll("\(fields[0]) \(next.reply)\n")
                }
            }
        }
        #expect(result != nil, "the job never finished; asked \(asked)", sourceLocation: sourceLocation)
        #expect(rest.isEmpty, "script left: \(rest.map(\.expect))", sourceLocation: sourceLocation)
        return (result, job.steps, asked)
    }

    @Test func restoreOfAnUnrecordedSnapshotSavesAnUndoAndDeletesIt() throws {
        let r = try run(.restore(name: "a"), [
            Exchange("query-named-block-nodes", Self.nodes([("a", 1000)])),
            .job("snapshot-save labrun-before-restore"), .hmp("loadvm a"), .job("snapshot-delete labrun-before-restore"),
        ])
        guard case .success(.restored(let s, _, true, true, nil))? = r.result else { Issue.record("\(String(describing: r.result))"); return }
        #expect(s.name == "a")
    }

    @Test func aFailedLoadGoesBackToTheUndoAndResumesThePausedVM() throws {
        let r = try run(.restore(name: "a"), [
            Exchange("query-named-block-nodes", Self.nodes([("a", 1000)])),
            .job("snapshot-save labrun-before-restore"),
            .hmp("loadvm a", "Error: Missing section footer for pc.ram"),
            .hmp("loadvm labrun-before-restore"), .job("snapshot-delete labrun-before-restore"),
            Exchange("query-status", "{\"running\":false,\"status\":\"restore-vm\"}"),
            Exchange("cont"),
        ])
        #expect(r.result == .failure(.restoreFailed(name: "a", detail: "Missing section footer for pc.ram", outcome: "the VM keeps running as it was")))
        #expect(Messages.text(of: .restoreFailed(name: "a", detail: "x", outcome: "y")) == "snapshot 'a' not restored: x; y")
    }

    @Test func aFailedLoadOfARecordedSnapshotSaysTheVMWasResetAndResumesIt() throws {
        let r = try run(.restore(name: "a"), [
            Exchange("query-named-block-nodes", Self.nodes([("a", 1000)])),
            .hmp("loadvm a", "Error: oops"),
            Exchange("query-status", "{\"running\":false}"), Exchange("cont"),
        ], recorded: Self.shape)
        guard case .failure(.restoreFailed(_, "oops", let outcome))? = r.result else { Issue.record("\(String(describing: r.result))"); return }
        #expect(outcome.contains("already reset the VM"))
    }

    @Test func mismatchedShapesAndDiskOnlySnapshotsAreRefusedBeforeAnyChange() throws {
        var bigger = Self.shape
        bigger.memoryMiB = 1024
        let r = try run(.restore(name: "a"), [Exchange("query-named-block-nodes", Self.nodes([("a", 1000)]))], recorded: bigger)
        #expect(r.result == .failure(.shapeMismatch(name: "a", recorded: bigger, current: Self.shape)))
        let d = try run(.restore(name: "d"), [Exchange("query-named-block-nodes", Self.nodes([("d", 0)]))])
        #expect(d.result == .failure(.diskOnlyWhileRunning(name: "d")))
        #expect(d.asked == ["query-named-block-nodes"])
    }

    @Test func savevmWithTheShareMountedUnmountsAndRemountsIt() throws {
        let r = try run(.create(name: "x"), [
            Exchange("query-named-block-nodes", Self.nodes([])),
            Exchange("query-migrate", "{\"blocked-reasons\":[\"Migration is disabled when VirtFS export path '/s' is mounted in the guest using mount_tag 'hostshare'\"]}"),
            Exchange("agent umount", "ok"), .job("snapshot-save x"), Exchange("agent mount", "ok"),
            Exchange("query-named-block-nodes", Self.nodes([("x", 5000)])),
        ], shareExported: true)
        guard case .success(.created("x", let s?, _, false, .unmountedAround))? = r.result else { Issue.record("\(String(describing: r.result))"); return }
        #expect(s.vmStateSize == 5000)
        #expect(r.steps == ["list", "query-migrate", "agent umount", "snapshot-save x", "agent mount", "list"])
    }

    @Test func aShareThatStaysBusyRefusesTheSnapshotAndChangesNothing() throws {
        let r = try run(.create(name: "x"), [
            Exchange("query-named-block-nodes", Self.nodes([])),
            Exchange("query-migrate", "{\"blocked-reasons\":[\"... VirtFS ...\"]}"),
            Exchange("agent umount", "fail \(Data("/mnt is busy: sh (pid 7)".utf8).base64EncodedString())"),
        ], shareExported: true)
        guard case .failure(.failed(_, let detail, _))? = r.result else { Issue.record("\(String(describing: r.result))"); return }
        #expect(detail.hasPrefix("/mnt is busy: sh (pid 7)"))
    }

    @Test func anExistingNameIsRefusedUnlessForced() throws {
        let r = try run(.create(name: "a"), [Exchange("query-named-block-nodes", Self.nodes([("a", 1000)]))])
        #expect(r.result == .failure(.exists(name: "a", id: "1")))
        let forced = try run(.create(name: "a", force: true), [
            Exchange("query-named-block-nodes", Self.nodes([("a", 1000)])),
            Exchange("query-migrate", "{}"), .job("snapshot-delete a"), .job("snapshot-save a"),
            Exchange("query-named-block-nodes", Self.nodes([("a", 2000)])),
        ])
        guard case .success(.created("a", _, _, _, nil))? = forced.result else { Issue.record("\(String(describing: forced.result))"); return }
    }

    @Test func deleteOfAMissingNameListsWhatExists() throws {
        let r = try run(.delete(name: "ghost"), [Exchange("query-named-block-nodes", Self.nodes([("a", 1), ("b", 0)]))])
        #expect(r.result == .failure(.missing(name: "ghost", existing: ["a", "b"])))
        #expect(Messages.text(of: .missing(name: "ghost", existing: ["a", "b"])) == "no snapshot named 'ghost'; existing: a, b")
    }

    @Test func aCancelledJobStartsNoFurtherChange() throws {
        // The client was told QEMU hung while the list was pending: no savevm follows.
        let r = try run(.create(name: "x"), [
            Exchange("query-named-block-nodes", Self.nodes([])), Exchange("query-migrate", "{}"),
        ], cancelAfter: 1)
        guard case .failure(.failed(_, let detail, _))? = r.result else { Issue.record("\(String(describing: r.result))"); return }
        #expect(detail == LiveSnapshotJob.cancelledText)
    }
}
