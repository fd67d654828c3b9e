/// A VM's whole state (RAM, devices) as a QEMU migration stream in a file: saved by `suspend`
/// and by the boot checkpoint, loaded by a QEMU started with `-incoming defer`. QEMU's `exec:`
/// migration runs `sh -c`: only labrun-made paths go there, quoted.
enum MigrationFile {
    private static func exec(_ command: String, _ path: String) -> JSONValue { .string("exec:\(command) \(shellQuoted(path))") }

    /// Stops the VM and streams its state into `path`. `done` gets nil once the file is
    /// complete, else QEMU's reason; the VM is left stopped either way (`cont` goes on).
    static func save(_ qmp: QMPClient, to path: String, _ done: @escaping (String?) -> Void) {
        qmp.enableMigrationEvents { err in
            if let err { return done(err) }
            qmp.send(QMPCommand("stop"))
            qmp.whenMigrationEnds { status in
                guard status == "completed" else {
                    return qmp.send(.queryMigrate) { r in done((try? r.get())?["error-desc"]?.string ?? "migration \(status)") }
                }
                done(nil)
            }
            qmp.send(QMPCommand("migrate", ["uri": exec("cat >", path)])) { r in
                if case .failure(let e) = r { done(e.desc) }
            }
        }
    }

    /// Loads the state in `path` into this QEMU (started with `-incoming defer`). `done` gets
    /// nil once it is in (the VM is still paused: `cont` runs it), else the reason.
    static func load(_ qmp: QMPClient, from path: String, _ done: @escaping (String?) -> Void) {
        qmp.enableMigrationEvents { err in
            if let err { return done(err) }
            qmp.whenMigrationEnds { status in
                done(status == "completed" ? nil : "the saved state did not load (\(status))")
            }
            qmp.send(QMPCommand("migrate-incoming", ["uri": exec("cat", path)])) { r in
                if case .failure(let e) = r { done(e.desc) }
            }
        }
    }
}
