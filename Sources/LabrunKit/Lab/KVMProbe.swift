/// Decides whether KVM really works here before `accel = auto` picks it. /dev/kvm opening is
/// not enough: on some hosts QEMU aborts at vCPU set-up ("failed to set MSR") or the guest
/// hangs. The probe boots a 64 KiB "BIOS" whose reset vector writes one byte to the serial
/// port, with exactly the accelerator and CPU flags labrun boots with; the byte arriving within
/// a few seconds proves a vCPU ran. The answer is cached per host boot in the run directory.
public enum KVMProbe {
    /// The x86 reset vector at F000:FFF0: mov al,'K'; mov dx,0x3f8; out dx,al; hlt; jmp $-1.
    static let resetVectorCode: [UInt8] = [0xB0, 0x4B, 0xBA, 0xF8, 0x03, 0xEE, 0xF4, 0xEB, 0xFD]

    public static func works(qemu: String, run: RunDirectory, timeout: Double = 3) -> Bool {
        let bootID = readSmallFile("/proc/sys/kernel/random/boot_id", limit: 64).map { String(decoding: $0, as: UTF8.self).trimmed } ?? ""
        let key = "\(bootID) \(qemu)"
        let cache = run.path + "/kvm-probe"
        if let cached = readSmallFile(cache, limit: 1024).map({ String(decoding: $0, as: UTF8.self) }) {
            let parts = cached.trimmed.split(separator: "\n")
            if parts.count == 2, parts[0] == key { return parts[1] == "ok" }
        }
        let ok = probe(qemu: qemu, run: run, timeout: timeout)
        try? "\(key)\n\(ok ? "ok" : "fail")\n".write(toFile: cache)
        return ok
    }

    static func probe(qemu: String, run: RunDirectory, timeout: Double) -> Bool {
        guard (try? run.create()) != nil else { return false }
        var bios = [UInt8](repeating: 0xF4, count: 65536)
        bios.replaceSubrange(0xFFF0..<(0xFFF0 + resetVectorCode.count), with: resetVectorCode)
        let biosPath = run.path + "/kvm-probe.bin"
        defer { removeFile(biosPath) }
        guard let fd = try? FileDescriptor.open(biosPath, FileDescriptor.createTruncate, mode: 0o600),
              (try? fd.closeAfter({ () throws(SystemCallError) in try fd.writeAll(bios) })) != nil,
              let out = try? FileDescriptor.pipe() else { return false }
        var config = SpawnConfiguration(executable: qemu, arguments: [
            "-nodefaults", "-no-user-config", "-display", "none", "-machine", "pc", "-accel", "kvm", "-cpu", "host",
            "-m", "16", "-bios", biosPath, "-serial", "stdio", "-monitor", "none"])
        config.standardInput = .devNull
        config.standardOutput = .descriptor(out.writeEnd)
        config.standardError = .devNull
        guard let child = try? Spawner.spawn(config) else {
            out.readEnd.close(); out.writeEnd.close()
            return false
        }
        out.writeEnd.close()
        defer {
            out.readEnd.close()
            child.send(.kill)
            child.wait()
        }
        var set = PollSet()
        set.add(out.readEnd)
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            guard let ready = try? set.wait(timeout: 100), ready[out.readEnd] != nil else { continue }
            guard case .success(let bytes) = out.readEnd.read(upTo: 16), !bytes.isEmpty else { return false }
            return bytes.contains(UInt8(ascii: "K"))
        }
        return false
    }
}
