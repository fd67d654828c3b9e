/// Snapshot operations on the running VM through QMP, each a short chain of QMP requests
/// that never blocks the loop: every step continues in the previous reply's completion.
/// Live create = full VM state (HMP savevm), restore = loadvm (the VM runs on from there),
/// delete = delvm; names are validated and existence checked first, because QEMU itself
/// silently overwrites on savevm and "succeeds" deleting a missing name.
struct LiveSnapshots {
    let qmp: QMPClient
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

    func create(name: String, force: Bool, _ done: @escaping Done) {
        let started = monotonicSeconds()
        prepare(name, done) { existing in
            if existing.contains(where: { $0.name == name }) && !force { return done(.failure(Messages.exists(name))) }
            // HMP savevm replaces a snapshot of the same name (that is what --force asked for).
            human("savevm \(name)") { err in
                if let err { return done(.failure(LabrunError("snapshot '\(name)' not created: \(err)"))) }
                let seconds = monotonicSeconds() - started
                snapshots { r in
                    var resp = ControlResponse()
                    resp.snapshot = (try? r.get())?.last { $0.name == name }
                    resp.seconds = seconds
                    resp.message = Messages.created(resp.snapshot, name: name, seconds: seconds)
                    done(resp)
                }
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
            human("loadvm \(name)") { err in
                guard let err else {
                    let seconds = monotonicSeconds() - started
                    var resp = ControlResponse()
                    resp.snapshot = snap
                    resp.seconds = seconds
                    resp.message = Messages.restored(name: name, seconds: seconds, live: true, resumesVM: true)
                    return done(resp)
                }
                // A failed loadvm leaves the VM paused (runstate restore-vm): resume it.
                qmp.send(.queryStatus) { st in
                    let running = (try? st.get())?["running"]?.bool ?? false
                    let fail = LabrunError("snapshot '\(name)' not restored: \(err); the VM keeps running as it was")
                    if running { return done(.failure(fail)) }
                    qmp.send(.cont) { _ in done(.failure(fail)) }
                }
            }
        }
    }

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
