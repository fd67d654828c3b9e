import FoundationEssentials

/// `labrun module build|load|unload DIR` (issue 14 §1): an out-of-tree module built against
/// the headers of the kernel the lab boots, loaded into the running guest through its agent,
/// with the kernel messages it produced.
extension LabrunCLI {
    static func module(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        guard let verb = args.first, ["build", "load", "unload"].contains(verb) else {
            throw .usage("module: expected build, load or unload; see `labrun module --help`")
        }
        let a = try ArgumentSpec(positionals: 1...64).parse(Array(args.dropFirst()), command: "module")
        let controller = try context.controller()
        let target = absolutePath(a.positionals[0])
        let params = Array(a.positionals.dropFirst())
        switch verb {
        case "build": return try buildModule(target, controller)
        case "load": return try loadModule(target, params, controller)
        default: return try unloadModule(target, controller)
        }
    }

    /// The kernel release the lab boots (guest-build/kernel-version of the built guest).
    static func guestKernelRelease(_ lab: Lab) throws(LabrunError) -> String {
        let file = parentDirectory(lab.kernelPath) + "/kernel-version"
        guard let bytes = readSmallFile(file, limit: 256), case let v = String(decoding: bytes, as: UTF8.self).trimmed, !v.isEmpty else {
            throw LabrunError("cannot tell which kernel the lab boots (no \(file)): build the guest with `make guest`")
        }
        return v
    }

    /// The build tree to compile against: a kernel tree the lab's kernel comes from (its
    /// .config beside), else Debian's linux-headers for the guest's release, installed when
    /// missing (as root; a 13 MB download, once).
    static func moduleBuildTree(_ lab: Lab) throws(LabrunError) -> String {
        var dir = parentDirectory(lab.kernelPath)
        for _ in 0..<4 {
            if fileExists(dir + "/.config") && fileExists(dir + "/Makefile") && fileExists(dir + "/Module.symvers") { return dir }
            dir = parentDirectory(dir)
        }
        let release = try guestKernelRelease(lab)
        let headers = "/usr/src/linux-headers-\(release)"
        if isDirectory(headers) { return headers }
        guard currentUserID == 0 else {
            throw LabrunError("no headers for the guest's kernel \(release): install them with `sudo apt-get install linux-headers-\(release)`")
        }
        printError("installing linux-headers-\(release) (about 13 MB, once)")
        var update = SpawnConfiguration(executable: "apt-get", arguments: ["install", "-y", "-qq", "--no-install-recommends", "linux-headers-\(release)"])
        update.environment = ["DEBIAN_FRONTEND": "noninteractive", "PATH": environmentValue("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"]
        update.standardInput = .devNull
        update.standardOutput = .descriptor(.standardError)
        let status: TerminationStatus
        do { status = try Spawner.spawn(update).wait() } catch { throw error.asLabrunError }
        guard status.isSuccess, isDirectory(headers) else {
            throw LabrunError("could not install linux-headers-\(release) (\(status)): try `apt-get update` first")
        }
        return headers
    }

    static func buildModule(_ dir: String, _ controller: LabController) throws(LabrunError) -> Int32 {
        guard isDirectory(dir), fileExists(dir + "/Kbuild") || fileExists(dir + "/Makefile") else {
            throw LabrunError("\(dir) is not a module directory: it needs a Kbuild (obj-m += NAME.o) or a Makefile")
        }
        let tree = try moduleBuildTree(controller.lab)
        // Unknown symbols stay warnings: the kernel's own reason shows at load time.
        var make = SpawnConfiguration(executable: "make", arguments: ["-C", tree, "M=\(dir)", "KBUILD_MODPOST_WARN=1", "modules"])
        make.standardInput = .devNull
        let status: TerminationStatus
        do { status = try Spawner.spawn(make).wait() } catch { throw LabrunError("cannot run make: \(error) (apt-get install make gcc)") }
        guard status.isSuccess else { throw LabrunError("the module in \(dir) did not build (make: \(status))") }
        let built = namesInDirectory(dir).filter { $0.hasSuffix(".ko") }.sorted()
        say("built \(built.joined(separator: ", ")) against \(tree)")
        return 0
    }

    /// The module file: FILE.ko itself, or the one .ko in DIR (the newest when several).
    static func moduleFile(_ target: String) throws(LabrunError) -> String {
        if target.hasSuffix(".ko") {
            guard fileExists(target) else { throw LabrunError("no module at \(target): `labrun module build DIR` first") }
            return target
        }
        let kos = namesInDirectory(target).filter { $0.hasSuffix(".ko") }
        guard let newest = kos.max(by: { (FileStatus.of(target + "/" + $0)?.modifiedNanoseconds ?? 0) < (FileStatus.of(target + "/" + $1)?.modifiedNanoseconds ?? 0) }) else {
            throw LabrunError("no .ko in \(target): build it with `labrun module build \(target)` (or `make module M=\(target)`)")
        }
        return target + "/" + newest
    }

    /// Runs `script` in the guest through the agent; its output here; its status back.
    private static func guestScript(_ script: String, _ controller: LabController) throws(LabrunError) -> Int32 {
        let link = try controller.requireSupervisor()
        let r = try link.send(.exec(command: script, timeout: 120)) { progress in
            if let out = progress.stdout { try? FileDescriptor.standardOutput.writeAll(out) }
            if let err = progress.stderr { try? FileDescriptor.standardError.writeAll(err) }
        }
        if let m = r.message { printError(m) }
        return r.exitCode ?? 0
    }

    static func loadModule(_ target: String, _ params: [String], _ controller: LabController) throws(LabrunError) -> Int32 {
        let file = try moduleFile(target)
        let name = String(file.split(separator: "/").last!.dropLast(3))
        // Without its debug info the module travels in a few KiB (the agent's channel is a line).
        let stripped = "/tmp/labrun-\(currentProcessID)-\(name).ko"
        defer { removeFile(stripped) }
        let strip = try? Spawner.run("objcopy", ["--strip-debug", file, stripped])
        let source = strip?.status.isSuccess == true ? stripped : file
        let bytes: [UInt8]
        do { bytes = try readWholeFile(source) } catch { throw error.asLabrunError }
        guard bytes.count < 4 << 20 else { throw LabrunError("\(file) is \(bytes.count >> 20) MiB: too big to send through the agent") }
        let b64 = Data(bytes).base64EncodedString()
        let guestFile = "/tmp/labrun-\(name).ko"
        let args = params.map(shellQuoted).joined(separator: " ")
        let script = """
            n=$(dmesg | wc -l); printf '%s' '\(b64)' | base64 -d > \(guestFile) || exit 1
            insmod \(guestFile) \(args); rc=$?; rm -f \(guestFile)
            dmesg | tail -n +$((n + 1))
            [ $rc = 0 ] || echo "\(name).ko did not load: $(dmesg | tail -n 1)" >&2
            exit $rc
            """
        let rc = try guestScript(script, controller)
        if rc == 0 { printError("\(name) is loaded (`labrun module unload \(name)` removes it)") }
        return rc
    }

    static func unloadModule(_ target: String, _ controller: LabController) throws(LabrunError) -> Int32 {
        var name = String(target.split(separator: "/").last ?? "")
        if name.hasSuffix(".ko") { name = String(name.dropLast(3)) }
        if isDirectory(target), let file = try? moduleFile(target) { name = String(file.split(separator: "/").last!.dropLast(3)) }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw LabrunError("\(target): not a module name or directory")
        }
        let script = "n=$(dmesg | wc -l); rmmod \(name); rc=$?; dmesg | tail -n +$((n + 1)); exit $rc"
        return try guestScript(script, controller)
    }
}
