import FoundationEssentials

/// `labrun gdb [-- GDB ARGS]` (issue 14 §3): gdb attached to the running VM's gdb stub, with
/// names. Debian's kernel ships no symbols (the real System.map is in a 1 GB -dbg package), so
/// the names come from the guest's own /proc/kallsyms: every text symbol, the loaded modules'
/// included, at the addresses the running kernel has (so KASLR does not matter), turned into an
/// ELF symbol file with the assembler and linker.
extension LabrunCLI {
    static func gdb(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let split = args.firstIndex(of: "--")
        let own = split.map { Array(args[..<$0]) } ?? args
        let gdbArgs = split.map { Array(args[args.index(after: $0)...]) } ?? []
        _ = try ArgumentSpec().parse(own, command: "gdb")
        let controller = try context.controller()
        let link = try controller.requireSupervisor()
        guard let status = try link.send(.status).status else { throw LabrunError("the supervisor sent no status") }
        guard let port = status.gdbPort else {
            throw LabrunError("the VM runs without a gdb stub: boot it with `labrun boot --debug` (`make run`)")
        }
        guard let gdb = findExecutable("gdb") else { throw LabrunError("gdb not found: apt-get install gdb") }
        var commands = ["set pagination off", "set confirm off"]
        let kernel = status.kernel ?? controller.lab.kernelPath
        // A kernel built with debug info (a tree's vmlinux, or the vmlinux beside its bzImage):
        // all of it, moved to where KASLR put the kernel this boot.
        let tree = parentDirectory(kernel)
        let vmlinux = [kernel, tree + "/vmlinux"].first { ElfSymbols.hasDebugInfo($0) }
        if let vmlinux {
            let offset = kaslrOffset(controller, vmlinux: vmlinux)
            commands.append("symbol-file \(vmlinux)" + (offset == 0 ? "" : " -o \(offset)"))
        } else {
            switch kernelSymbols(controller) {
            case .success(let file):
                commands.append("symbol-file \(file)")
            case .failure(let why):
                printError("no kernel symbols (\(why.message)); gdb starts without names")
                if fileExists(kernel) { commands.append("file \(kernel)") }
            }
        }
        commands.append("target remote 127.0.0.1:\(port)")
        // The kernel's own gdb scripts (lx-symbols, lx-dmesg …) when the kernel came from a tree:
        // they need the debug info, and find the loaded modules themselves (lx-symbols).
        if vmlinux != nil, fileExists(tree + "/vmlinux-gdb.py") {
            commands.append("add-auto-load-safe-path \(tree)")
            commands.append("source \(tree)/vmlinux-gdb.py")
        }
        var config = SpawnConfiguration(executable: gdb, arguments: ["-q"] + commands.flatMap { ["-ex", $0] } + gdbArgs)
        config.standardInput = .inherit
        config.standardOutput = .inherit
        config.standardError = .inherit
        // Ctrl-C belongs to gdb (it interrupts the guest), not to us.
        ignoreInterruptSignal()
        let child: ChildProcess
        do { child = try Spawner.spawn(config) } catch { throw error.asLabrunError }
        let ended = child.wait()
        if case .exited(let code) = ended { return code }
        return 1
    }

    /// How far KASLR moved the running kernel from `vmlinux`'s link address: the guest's `_text`
    /// (its /proc/kallsyms) less the file's; 0 when either is unknown (or there is no KASLR).
    static func kaslrOffset(_ controller: LabController, vmlinux: String) -> Int64 {
        guard let linked = ElfSymbols.address(of: "_text", in: vmlinux),
              case .success(let kallsyms) = guestKallsyms(controller),
              let line = kallsyms.split(separator: 0x0A).first(where: { $0.count > 8 && String(decoding: $0.suffix(8), as: UTF8.self) == " T _text" }),
              let running = UInt64(String(decoding: line.prefix { $0 != 0x20 }, as: UTF8.self), radix: 16) else { return 0 }
        return Int64(bitPattern: running &- linked)
    }

    /// The guest's /proc/kallsyms, read through its agent.
    static func guestKallsyms(_ controller: LabController) -> Result<[UInt8], LabrunError> {
        guard let link = controller.supervisor() else { return .failure(LabrunError("the VM stopped")) }
        let r: ControlResponse
        do { r = try link.send(.readFile(path: "/proc/kallsyms")) { _ in } } catch {
            let hint = error.message.contains("unknown request") ? ": its agent is older than this labrun; rebuild the guest (`make guest`)" : ""
            return .failure(LabrunError("cannot read the guest's /proc/kallsyms: \(error.message)\(hint)"))
        }
        guard let b64 = r.stdout, let gz = Data(base64Encoded: b64) else { return .failure(LabrunError("the guest sent no kallsyms")) }
        let dir = controller.run.path + "/gdb"
        makeDirectory(dir)
        let gzPath = dir + "/kallsyms.gz"
        do {
            let fd = try FileDescriptor.open(gzPath, FileDescriptor.createTruncate, mode: 0o600)
            try fd.closeAfter { () throws(SystemCallError) in try fd.writeAll(Array(gz)) }
        } catch { return .failure(error.asLabrunError) }
        guard let unpacked = try? Spawner.run("gzip", ["-dc", gzPath]), unpacked.status.isSuccess else {
            return .failure(LabrunError("gzip could not unpack the guest's kallsyms"))
        }
        return .success(unpacked.standardOutput)
    }

    /// The running kernel's text symbols as an ELF file (cached in the run directory while the
    /// same kernel runs), or why not.
    static func kernelSymbols(_ controller: LabController) -> Result<String, LabrunError> {
        let kallsyms: [UInt8]
        switch guestKallsyms(controller) {
        case .success(let k): kallsyms = k
        case .failure(let e): return .failure(e)
        }
        let dir = controller.run.path + "/gdb"
        let symbols = KallsymsFile.textSymbols(kallsyms)
        guard symbols.count > 100 else {
            return .failure(LabrunError("the guest's /proc/kallsyms has no addresses (kernel.kptr_restrict?)"))
        }
        let asm = dir + "/kallsyms.s", obj = dir + "/kallsyms.o", elf = dir + "/kallsyms.elf"
        do { try KallsymsFile.assembly(symbols).write(toFile: asm) } catch { return .failure(error.asLabrunError) }
        for (tool, args) in [("as", ["--64", "-o", obj, asm]),
                             ("ld", ["-m", "elf_x86_64", "-o", elf, "-e", "0", "--section-start=.ktext=0x" + String(symbols[0].address, radix: 16), obj])] {
            guard let out = try? Spawner.run(tool, args), out.status.isSuccess else {
                return .failure(LabrunError("\(tool) failed on the kallsyms file (apt-get install binutils)"))
            }
        }
        return .success(elf)
    }
}

/// /proc/kallsyms → an assembler file whose only section is a zero-size (nobits) code section that
/// spans the symbols, each a function label at its address.
enum KallsymsFile {
    struct Symbol: Equatable {
        var address: UInt64
        var name: String
    }

    /// The text symbols (types t, T, w, W), sorted by address, first name per address kept
    /// and names the assembler cannot take dropped.
    static func textSymbols(_ bytes: [UInt8]) -> [Symbol] {
        var out: [Symbol] = []
        var seen = Set<String>()
        for line in bytes.split(separator: 0x0A) {
            let fields = line.split(separator: 0x20, maxSplits: 2)
            guard fields.count == 3, let type = fields[1].first, [0x74, 0x54, 0x77, 0x57].contains(type),
                  let address = UInt64(String(decoding: fields[0], as: UTF8.self), radix: 16), address != 0 else { continue }
            // "name\t[module]": the module's name is not part of the symbol.
            let name = String(decoding: fields[2].prefix { $0 != 0x09 && $0 != 0x20 }, as: UTF8.self)
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }), seen.insert(name).inserted else { continue }
            out.append(Symbol(address: address, name: name))
        }
        out.sort { $0.address < $1.address }
        var unique: [Symbol] = []
        for s in out where unique.last?.address != s.address { unique.append(s) }
        return unique
    }

    static func assembly(_ symbols: [Symbol]) -> String {
        // Not .text: the assembler would ignore @nobits there and write the gigabyte of zeros.
        var s = ".section .ktext,\"ax\",@nobits\n"
        for (i, sym) in symbols.enumerated() {
            s += ".globl \"\(sym.name)\"\n.type \"\(sym.name)\",@function\n\"\(sym.name)\":\n"
            if i + 1 < symbols.count {
                let size = symbols[i + 1].address - sym.address
                s += ".size \"\(sym.name)\",\(min(size, 1 << 20))\n.skip \(size)\n"
            }
        }
        return s
    }
}
