import FoundationEssentials

/// Signals that end a long CLI command (Ctrl-C, SIGTERM, a closed terminal), as a pipe the
/// command polls beside its work, so it can stop a child or a backup job and remove what it
/// half wrote before it exits.
public final class CommandInterruption {
    let pipe: SignalPipe
    /// The first signal that arrived.
    public private(set) var signal: Signal?

    public init() throws(LabrunError) {
        do { pipe = try SignalPipe([.interrupt, .terminate, .hangup]) } catch { throw error.asLabrunError }
    }

    /// The descriptor to poll.
    var readEnd: FileDescriptor { pipe.readEnd }

    /// True once a signal has arrived (reads the pipe).
    @discardableResult
    public func check() -> Bool {
        if let s = pipe.drain().first, signal == nil { signal = s }
        return signal != nil
    }

    /// The error a command ends with after `signal`: exit status 128 + the signal's number.
    public func error(_ what: String) -> LabrunError {
        let s = signal ?? .interrupt
        return LabrunError("\(what) cancelled (\(s))", exitCode: 128 + s.rawValue)
    }

    deinit { pipe.uninstall() }
}

/// A progress line on stderr: redrawn in place on a terminal, else one line per quarter.
struct ProgressLine {
    let label: String
    let terminal = FileDescriptor.standardError.isTerminal
    private var shown = -1
    private var drawn = false

    init(_ label: String) { self.label = label }

    mutating func show(_ percent: Double) {
        let p = Int(percent.rounded(.down))
        if terminal {
            guard p != shown else { return }
            shown = p
            drawn = true
            try? FileDescriptor.standardError.writeAll("\rlabrun: \(label) \(p)%\u{1B}[K")
        } else {
            let quarter = p / 25
            guard quarter > shown, quarter > 0 else { return }
            shown = quarter
            try? FileDescriptor.standardError.writeAll("labrun: \(label) \(quarter * 25)%\n")
        }
    }

    /// Clears a redrawn line (before the result or an error is printed).
    mutating func end() {
        guard drawn else { return }
        drawn = false
        try? FileDescriptor.standardError.writeAll("\r\u{1B}[K")
    }
}

extension QemuImg {
    /// `qemu-img convert -p -O qcow2 [-c] [-U] [-l snapshot.name=NAME] SOURCE TARGET`: a
    /// standalone qcow2 (the source flattened with its backing chain). Progress (qemu-img's
    /// "(12.34/100%)" on stdout) goes to `progress`; a signal on `interruption` stops
    /// qemu-img and throws. The caller owns TARGET (a `.part` name) and removes it on failure.
    public func convert(_ source: String, to target: String, snapshot: String? = nil, compress: Bool = false,
                        shareLocks: Bool = false, interruption: CommandInterruption,
                        progress: (Double) -> Void) throws(LabrunError) {
        var args = ["convert", "-p", "-O", "qcow2"]
        if compress { args.append("-c") }
        if shareLocks { args.append("-U") }
        if let snapshot { args += ["-l", "snapshot.name=" + snapshot] }
        args += [Self.plainPath(source), Self.plainPath(target)]
        try runWatched(args, interruption: interruption, what: "copy", progress: progress)
    }

    /// `qemu-img compare -f qcow2 -F qcow2 A B`: nil when the guest sees the same bytes in
    /// both, else why not (the first differing offset, or qemu-img's error line).
    public func compare(_ a: String, _ b: String, shareLocks: Bool = false) throws(LabrunError) -> String? {
        let args = ["compare"] + (shareLocks ? ["-U"] : []) + ["-f", "qcow2", "-F", "qcow2", Self.plainPath(a), Self.plainPath(b)]
        let out: Spawner.Output
        do { out = try Spawner.run(executable, args) } catch { throw error.asLabrunError }
        if out.status.isSuccess { return nil }
        let text = (out.stdout + "\n" + out.stderr).split(separator: "\n").map(\.trimmed).filter { !$0.isEmpty }
        return text.first { $0.hasPrefix("qemu-img: ") } ?? text.first ?? "qemu-img compare failed (\(out.status))"
    }

    /// `qemu-img create -f qcow2 PATH SIZE`: an empty standalone image (a live export's target,
    /// made here so that QEMU does not announce it on the guest's console).
    public func createEmpty(_ path: String, virtualSize: Int64) throws(LabrunError) {
        let out: Spawner.Output
        do { out = try Spawner.run(executable, ["create", "-q", "-f", "qcow2", Self.plainPath(path), "\(virtualSize)"]) } catch { throw error.asLabrunError }
        guard out.status.isSuccess else { throw LabrunError(Self.errorLine(out)) }
    }

    /// Runs qemu-img, reading its progress, until it ends or a signal arrives (then it is
    /// stopped with SIGTERM, and SIGKILL if it lingers).
    private func runWatched(_ arguments: [String], interruption: CommandInterruption, what: String,
                            progress: (Double) -> Void) throws(LabrunError) {
        let out: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        let err: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do {
            out = try FileDescriptor.pipe()
            err = try FileDescriptor.pipe()
        } catch { throw error.asLabrunError }
        var config = SpawnConfiguration(executable: executable, arguments: arguments)
        config.standardInput = .devNull
        config.standardOutput = .descriptor(out.writeEnd)
        config.standardError = .descriptor(err.writeEnd)
        let child: ChildProcess
        do { child = try Spawner.spawn(config) } catch {
            [out.readEnd, out.writeEnd, err.readEnd, err.writeEnd].forEach { $0.close() }
            throw error.asLabrunError
        }
        out.writeEnd.close()
        err.writeEnd.close()
        defer { out.readEnd.close(); err.readEnd.close() }
        var stderrBytes: [UInt8] = []
        var progressText: [UInt8] = []
        var open: Set<FileDescriptor> = [out.readEnd, err.readEnd]
        while !open.isEmpty {
            if interruption.check() {
                child.send(.terminate)
                if child.wait(upTo: 5) == nil { child.send(.kill); child.wait() }
                throw interruption.error(what)
            }
            var set = PollSet()
            for fd in open { set.add(fd) }
            set.add(interruption.readEnd)
            let ready = (try? set.wait(timeout: -1)) ?? [:]
            for fd in open {
                guard let r = ready[fd], r.readable || r.hangup || r.invalid else { continue }
                switch fd.read() {
                case .success(let bytes) where !bytes.isEmpty:
                    if fd == err.readEnd { stderrBytes += bytes; continue }
                    progressText += bytes
                    if let p = Self.lastPercent(progressText) { progress(p) }
                    if let cut = progressText.lastIndex(of: UInt8(ascii: ")")) { progressText.removeSubrange(...cut) }
                case .failure(.wouldBlock): break
                default: open.remove(fd)
                }
            }
        }
        let status = child.wait()
        guard status.isSuccess else {
            throw LabrunError(Self.errorLine(Spawner.Output(status: status, standardOutput: [], standardError: stderrBytes)))
        }
    }

    /// The last "(NN.NN/100%)" in qemu-img's progress output.
    static func lastPercent(_ bytes: [UInt8]) -> Double? {
        // Each report is "(P/100%)"; the last complete one counts.
        for chunk in String(decoding: bytes, as: UTF8.self).split(separator: "(").reversed() {
            guard let slash = chunk.firstIndex(of: "/"), chunk[slash...].hasPrefix("/100%)") else { continue }
            return Double(chunk[..<slash])
        }
        return nil
    }

    /// A relative path that qemu-img could read as an option or a protocol ("nbd:…").
    static func plainPath(_ path: String) -> String {
        !path.hasPrefix("/") && (path.hasPrefix("-") || path.contains(":")) ? "./" + path : path
    }
}
