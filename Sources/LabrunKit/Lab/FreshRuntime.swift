import FoundationEssentials

/// Whether the lab's runtime layer is still exactly as labrun made it on the golden image
/// (just created by `boot`, `reset` or `init`, never booted or snapshotted since): then a boot
/// may resume the golden image's boot checkpoint instead of booting. `LAB/.labrun-fresh`
/// records the new layer's inode, size and modification time; any write changes them.
public enum FreshRuntime {
    static func path(_ lab: Lab) -> String { lab.root + "/.labrun-fresh" }

    /// Records the runtime layer just made as fresh.
    public static func mark(_ lab: Lab) {
        guard let id = FileIdentity.of(lab.runtimePath),
              let data = try? JSONEncoder().encode(id) else { return }
        try? String(decoding: data, as: UTF8.self).write(toFile: path(lab))
    }

    /// True while the runtime layer is the one recorded, unchanged.
    public static func isFresh(_ lab: Lab) -> Bool {
        guard let bytes = readSmallFile(path(lab), limit: 64 * 1024),
              let recorded = try? JSONDecoder().decode(FileIdentity.self, from: Data(bytes)) else { return false }
        return FileIdentity.of(lab.runtimePath) == recorded
    }

    /// The runtime layer is about to change (a boot, a restore): forget it was fresh.
    public static func clear(_ lab: Lab) { removeFile(path(lab)) }
}
