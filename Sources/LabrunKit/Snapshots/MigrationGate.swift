/// Whether QEMU can save the VM's state now (savevm, snapshot-save, a migration to a file),
/// and making it so when the only blocker is the 9p share mounted in the guest: the guest
/// agent unmounts it (the caller mounts it again afterwards). Shared by snapshots and suspend.
enum MigrationGate {
    /// `then` gets nil and whether the share was unmounted, or QEMU's reason with `alternative`
    /// ("; or use --disk-only") added where the user has one.
    static func open(qmp: QMPClient, agent: GuestAgent, shareExported: Bool, alternative: String = "",
                     step: @escaping (String) -> Void = { _ in },
                     _ then: @escaping (_ blocked: String?, _ unmounted: Bool) -> Void) {
        step("query-migrate")
        qmp.send(.queryMigrate) { r in
            let reasons = ((try? r.get())?["blocked-reasons"]?.array ?? []).compactMap(\.string)
            guard !reasons.isEmpty else { return then(nil, false) }
            guard shareExported && reasons.allSatisfy({ $0.contains("VirtFS") }) else {
                return then(reasons.joined(separator: "; ") + (shareExported && !alternative.isEmpty ? "; `--disk-only` takes a disk-only snapshot" : ""), false)
            }
            guard agent.isReady else {
                return then("the shared folder is mounted at /mnt and the guest agent is not running to unmount it: `umount /mnt` in the guest" + alternative, false)
            }
            step("agent umount")
            agent.setShareMounted(false) { why in
                if let why { return then("\(why); leave /mnt (e.g. `cd /`) and try again" + alternative, false) }
                then(nil, true)
            }
        }
    }
}
