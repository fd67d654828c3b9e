/// Snapshot operations on the running VM through QMP, each a short chain of QMP requests
/// that never blocks the loop: every step continues in the previous reply's completion.
/// Live create = full VM state (HMP savevm), restore = loadvm (the VM runs on from there),
/// delete = delvm; names are validated and existence checked first, because QEMU itself
/// silently overwrites on savevm and "succeeds" deleting a missing name.
struct LiveSnapshots {
    let qmp: QMPClient
    let agent: GuestAgent
    /// The VM exports a 9p share: it may be mounted in the guest, which blocks savevm.
    let shareExported: Bool
    /// This VM's shape, recorded with each snapshot and checked before each restore.
    let shape: VMShape
    let shapes: SnapshotShapes
    typealias Done = (ControlResponse) -> Void

    /// The runtime layer's snapshots, from query-named-block-nodes (same keys as qemu-img's JSON).
    func snapshots(_ done: @escaping (Result<[SnapshotInfo], LabrunError>) -> Void) {
        qmp.send(.queryNamedBlockNodes) { r in
            switch r {
            case .failure(let e): done(.failure(LabrunError("QEMU: \(e.desc)")))
            case .success(let nodes):
                let node = nodes.array?.first { $0["node-name"]?.string == QemuCommand.runtimeNode }
                guard let node else { return done(.failure(LabrunError("QEMU has no '\(QemuCommand.runtimeNode)' disk node"))) }
                let list = node["image"]?["snapshots"]
                done(.success(list.flatMap { try? $0.decode([SnapshotInfo].self) } ?? []))
            }
        }
    }

    /// An HMP command: nil on success, else QEMU's error text.
    func human(_ line: String, _ done: @escaping (String?) -> Void) {
        qmp.send(.human(line)) { r in
            switch r {
            case .failure(let e): done(e.desc)
            case .success(let out):
                let text = out.string ?? ""
                done(text.trimmed.isEmpty ? nil : (HMPResult.error(in: text) ?? text.trimmed))
            }
        }
    }

    func list(_ done: @escaping Done) {
        snapshots { r in
            switch r {
            case .failure(let e): done(.failure(e))
            case .success(let list):
                var resp = ControlResponse()
                resp.snapshots = list
                done(resp)
            }
        }
    }

    /// Validates the name and fetches the list, then calls `next` with it.
    private func prepare(_ name: String, _ done: @escaping Done, _ next: @escaping ([SnapshotInfo]) -> Void) {
        do { try SnapshotName.validate(name) } catch { return done(.failure(error)) }
        snapshots { r in
            switch r {
            case .failure(let e): done(.failure(e))
            case .success(let list): next(list)
            }
        }
    }

    func create(name: String, force: Bool, diskOnly: Bool = false, _ done: @escaping Done) {
        let started = monotonicSeconds()
        do { try SnapshotName.validateNew(name) } catch { return done(.failure(error)) }
        prepare(name, done) { existing in
            if let old = existing.first(where: { $0.name == name }), !force { return done(.failure(Messages.exists(name, id: old.id))) }
            let finish: (String?, String) -> Void = { err, note in
                if let err { return done(.failure(LabrunError("snapshot '\(name)' not created: \(err)" + spaceHint(err)))) }
                let seconds = monotonicSeconds() - started
                snapshots { r in
                    var resp = ControlResponse()
                    let list = (try? r.get()) ?? []
                    resp.snapshot = list.last { $0.name == name }
                    if let made = resp.snapshot, made.hasVMState { shapes.record(shape, for: made, existing: list) }
                    resp.seconds = seconds
                    resp.message = Messages.created(resp.snapshot, name: name, seconds: seconds) + note
                    done(resp)
                }
            }
            if diskOnly { return diskSnapshot(name, replacing: existing.contains { $0.name == name }) { finish($0, "; RAM was not saved") } }
            withMigrationUnblocked { blocked, note in
                if let blocked { return finish(blocked, "") }
                // HMP savevm replaces a snapshot of the same name (that is what --force asked for).
                human("savevm \(name)") { err in
                    guard note != nil else { return finish(err, "") }
                    agent.setShareMounted(true) { mountErr in
                        finish(err, mountErr.map { "; /mnt could not be mounted again: \($0)" } ?? "; /mnt was unmounted in the guest around it")
                    }
                }
            }
        }
    }

    /// After a savevm write error, how much room the lab's file system has (a full disk shows
    /// up as QEMU's bare "Input/output error").
    private func spaceHint(_ error: String) -> String {
        guard error.contains("Input/output error") || error.contains("No space") else { return "" }
        guard let free = freeBytes(onFileSystemOf: shapes.path) else { return "" }
        let needed = UInt64(shape.memoryMiB) << 20
        guard free < needed else { return "" }
        return "; the lab's file system has \(formatBytes(free)) free and a snapshot of this VM needs up to \(formatBytes(needed)): free some space (`labrun snapshot list` shows what each snapshot holds)"
    }

    /// A disk-only internal snapshot of the runtime layer (works live even when migration is blocked).
    private func diskSnapshot(_ name: String, replacing: Bool, _ done: @escaping (String?) -> Void) {
        let take = {
            qmp.send(QMPCommand("blockdev-snapshot-internal-sync", ["device": .string(QemuCommand.runtimeNode), "name": .string(name)])) { r in
                if case .failure(let e) = r { return done(e.desc) }
                done(nil)
            }
        }
        guard replacing else { return take() }
        human("delvm \(name)") { err in
            if let err { return done(err) }
            take()
        }
    }

    /// Runs `body` once savevm can work: with nothing blocking migration, at once; when the
    /// only blocker is the mounted 9p share and the agent runs, after unmounting it (the
    /// note then says to mount it again). Otherwise `body` gets QEMU's reason.
    private func withMigrationUnblocked(_ body: @escaping (_ blocked: String?, _ unmounted: String?) -> Void) {
        qmp.send(.queryMigrate) { r in
            let reasons = ((try? r.get())?["blocked-reasons"]?.array ?? []).compactMap(\.string)
            guard !reasons.isEmpty else { return body(nil, nil) }
            let shareOnly = shareExported && reasons.allSatisfy { $0.contains("VirtFS") }
            guard shareOnly else { return body(reasons.joined(separator: "; ") + (shareExported ? "; `--disk-only` takes a disk-only snapshot" : ""), nil) }
            guard agent.isReady else {
                return body("the shared folder is mounted at /mnt and the guest agent is not running to unmount it: `umount /mnt` in the guest, or use --disk-only", nil)
            }
            agent.setShareMounted(false) { why in
                if let why { return body("\(why); leave /mnt (e.g. `cd /`) and try again, or use --disk-only", nil) }
                body(nil, "unmounted")
            }
        }
    }

    func restore(name: String, _ done: @escaping Done) {
        let started = monotonicSeconds()
        prepare(name, done) { existing in
            guard let snap = existing.first(where: { $0.name == name }) else { return done(.failure(Messages.missing(name, existing: existing))) }
            guard snap.hasVMState else {
                return done(.failure(LabrunError("snapshot '\(name)' is disk only (no VM state): stop the VM (`labrun stop`), then restore it")))
            }
            // QEMU resets the machine and reverts the disk before it reads the VM state, so a
            // load that fails (e.g. the snapshot was taken with another memory size) would leave
            // a rebooting guest on the snapshot's disk. A snapshot labrun took has its shape on
            // record: refuse a different one up front, at no cost. For one labrun did not take
            // (a monitor savevm), save the VM first and go back to it if the load fails.
            let recorded = shapes.shape(of: snap)
            if let recorded, recorded != shape {
                return done(.failure(LabrunError("snapshot '\(name)' was taken in a VM with \(recorded), this one has \(shape): stop it and boot with `labrun boot \(recorded.bootFlags)` to restore it")))
            }
            // (Restoring a left-over undo snapshot itself goes unguarded: saving would replace it.)
            let guarded = recorded == nil && name != Self.undoSnapshot
            let protect: (@escaping (String?) -> Void) -> Void = guarded
                ? { next in human("savevm \(Self.undoSnapshot)", next) }
                : { $0(nil) }
            protect { saveErr in
                let undoable = guarded && saveErr == nil
                human("loadvm \(name)") { err in
                    guard let err else {
                        let finish = {
                            let seconds = monotonicSeconds() - started
                            var resp = ControlResponse()
                            resp.snapshot = snap
                            resp.seconds = seconds
                            resp.message = Messages.restored(name: name, seconds: seconds, live: true, resumesVM: true)
                            // Snapshots are taken with the share unmounted: mount it again.
                            guard shareExported, agent.isReady else { return done(resp) }
                            agent.setShareMounted(true) { why in
                                if let why { resp.message! += "; /mnt could not be mounted again: \(why)" }
                                done(resp)
                            }
                        }
                        guard undoable else { return finish() }
                        return human("delvm \(Self.undoSnapshot)") { _ in finish() }
                    }
                    let failed = { (outcome: String) in
                        // A failed loadvm leaves the VM paused (runstate restore-vm): resume it.
                        let fail = LabrunError("snapshot '\(name)' not restored: \(err); \(outcome)")
                        qmp.send(.queryStatus) { st in
                            let running = (try? st.get())?["running"]?.bool ?? false
                            if running { return done(.failure(fail)) }
                            qmp.send(.cont) { _ in done(.failure(fail)) }
                        }
                    }
                    guard undoable else {
                        let why = saveErr.map { " (\($0))" } ?? ""
                        return failed("QEMU had already reset the VM and reverted its disk to the snapshot\(why); the VM keeps running from there")
                    }
                    human("loadvm \(Self.undoSnapshot)") { backErr in
                        human("delvm \(Self.undoSnapshot)") { _ in
                            failed(backErr == nil
                                ? "the VM keeps running as it was"
                                : "going back failed too (\(backErr!)); the VM was reset and keeps running")
                        }
                    }
                }
            }
        }
    }

    /// The snapshot a live restore saves the running VM to first, and deletes afterwards.
    static let undoSnapshot = SnapshotName.restoreUndo

    func delete(name: String, _ done: @escaping Done) {
        prepare(name, done) { existing in
            guard existing.contains(where: { $0.name == name }) else { return done(.failure(Messages.missing(name, existing: existing))) }
            human("delvm \(name)") { err in
                if let err { return done(.failure(LabrunError("snapshot '\(name)' not deleted: \(err)"))) }
                var resp = ControlResponse()
                resp.message = Messages.deleted(name: name)
                done(resp)
            }
        }
    }
}
