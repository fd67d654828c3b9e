/// Just enough of a 64-bit little-endian ELF file (a kernel's vmlinux) for `labrun gdb`: whether
/// it carries DWARF debug info, and a symbol's link-time address. Section headers and the symbol
/// table are read with a few preads (a vmlinux with debug info is hundreds of MB). Anything
/// unexpected is "no".
enum ElfSymbols {
    private struct Section { var name: UInt32; var type: UInt32; var offset: UInt64; var size: UInt64; var link: UInt32; var entrySize: UInt64 }

    private static func sections(_ fd: FileDescriptor) -> [Section]? {
        guard let h = try? fd.read(upTo: 64, at: 0).get(), h.count == 64,
              h[0] == 0x7F, h[1] == 0x45, h[2] == 0x4C, h[3] == 0x46, h[4] == 2, h[5] == 1 else { return nil }
        let shoff = h.le(0x28, 8), shentsize = Int(h.le(0x3A, 2)), shnum = Int(h.le(0x3C, 2))
        guard shentsize >= 64, shnum > 0, shnum < 65536,
              let table = try? fd.read(upTo: shentsize * shnum, at: Int64(shoff)).get(), table.count == shentsize * shnum else { return nil }
        return (0..<shnum).map { i in
            let b = Array(table[(i * shentsize)..<(i * shentsize + 64)])
            return Section(name: UInt32(b.le(0, 4)), type: UInt32(b.le(4, 4)), offset: b.le(0x18, 8), size: b.le(0x20, 8),
                           link: UInt32(b.le(0x28, 4)), entrySize: b.le(0x38, 8))
        }
    }

    private static func withFile<R>(_ path: String, _ body: (FileDescriptor, [Section], [UInt8]) -> R?) -> R? {
        guard let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return nil }
        defer { fd.close() }
        guard let all = sections(fd), let h = try? fd.read(upTo: 64, at: 0).get() else { return nil }
        let index = Int(h.le(0x3E, 2))
        guard index < all.count, all[index].size < 1 << 24,
              let names = try? fd.read(upTo: Int(all[index].size), at: Int64(all[index].offset)).get() else { return nil }
        return body(fd, all, names)
    }

    private static func name(_ names: [UInt8], _ at: UInt32) -> String {
        let start = Int(at)
        guard start < names.count else { return "" }
        return String(decoding: names[start...].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The file is an ELF with a .debug_info section.
    static func hasDebugInfo(_ path: String) -> Bool {
        withFile(path) { _, all, names in all.contains { name(names, $0.name) == ".debug_info" && $0.size > 0 } } ?? false
    }

    /// The value of symbol `symbol` in .symtab.
    static func address(of symbol: String, in path: String) -> UInt64? {
        withFile(path) { fd, all, _ in
            guard let symtab = all.first(where: { $0.type == 2 }), symtab.entrySize == 24, Int(symtab.link) < all.count,
                  symtab.size < 1 << 28, all[Int(symtab.link)].size < 1 << 28,
                  let syms = try? fd.read(upTo: Int(symtab.size), at: Int64(symtab.offset)).get(),
                  let strings = try? fd.read(upTo: Int(all[Int(symtab.link)].size), at: Int64(all[Int(symtab.link)].offset)).get() else { return nil }
            let wanted = Array(symbol.utf8)
            var i = 0
            while i + 24 <= syms.count {
                let at = Int(syms.le(i, 4))
                if at + wanted.count < strings.count, Array(strings[at..<(at + wanted.count)]) == wanted, strings[at + wanted.count] == 0 {
                    return syms.le(i + 8, 8)
                }
                i += 24
            }
            return nil
        }
    }
}

extension Array where Element == UInt8 {
    /// A little-endian unsigned integer of `width` bytes at `at`.
    func le(_ at: Int, _ width: Int) -> UInt64 {
        self[at..<(at + width)].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}
