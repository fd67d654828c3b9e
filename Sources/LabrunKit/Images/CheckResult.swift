import FoundationEssentials

/// The outcome of `qemu-img check --output=json`, with a plain-words explanation.
public struct CheckResult: Equatable, Sendable {
    public enum Status: Equatable, Sendable {
        /// Exit 0: nothing wrong (after any repair).
        case clean
        /// Exit 3: clusters allocated but used by nothing: wasted space only.
        case leaks(Int)
        /// Exit 2: metadata errors: data may be wrong or lost.
        case corrupt(Int)
        /// Exit 1: qemu-img could not check (also when another process holds the image).
        case error(String)
        /// Exit 63: the format has no consistency check (raw).
        case unsupported
    }

    public var status: Status
    /// Leaked clusters still present.
    public var leakedClusters: Int
    /// Corruptions still present.
    public var corruptions: Int
    /// Leaked clusters reclaimed by this run (`repair`).
    public var leaksFixed: Int
    public var corruptionsFixed: Int

    public init(status: Status, leakedClusters: Int = 0, corruptions: Int = 0, leaksFixed: Int = 0, corruptionsFixed: Int = 0) {
        self.status = status
        self.leakedClusters = leakedClusters
        self.corruptions = corruptions
        self.leaksFixed = leaksFixed
        self.corruptionsFixed = corruptionsFixed
    }

    private struct Report: Decodable {
        var leaks: Int?
        var corruptions: Int?
        var leaksFixed: Int?
        var corruptionsFixed: Int?
        enum CodingKeys: String, CodingKey {
            case leaks, corruptions
            case leaksFixed = "leaks-fixed"
            case corruptionsFixed = "corruptions-fixed"
        }
    }

    /// Interprets qemu-img check's exit code, its JSON report (absent when it failed early)
    /// and its error line.
    public init(exitCode: Int32, json: [UInt8], errorLine: String) {
        let report = try? JSONDecoder().decode(Report.self, from: Data(json))
        let leaks = report?.leaks ?? 0, corruptions = report?.corruptions ?? 0
        let status: Status = switch exitCode {
        case 0: .clean
        case 2: .corrupt(corruptions)
        case 3: .leaks(leaks)
        case 63: .unsupported
        default: .error(errorLine)
        }
        self.init(status: status, leakedClusters: leaks, corruptions: corruptions,
                  leaksFixed: report?.leaksFixed ?? 0, corruptionsFixed: report?.corruptionsFixed ?? 0)
    }

    /// What the result means and what to do about it, in one line.
    public var explanation: String {
        switch status {
        case .clean where leaksFixed > 0 || corruptionsFixed > 0:
            let fixed = [(leaksFixed, "leaked cluster"), (corruptionsFixed, "corruption")].filter { $0.0 > 0 }
            return "no errors; repaired " + fixed.map { counted($0.0, $0.1) }.joined(separator: " and ")
        case .clean:
            return "no errors"
        case .leaks(let n):
            return "\(counted(n, "leaked cluster")): wasted space only, no data is harmed; `labrun check --repair` reclaims it while the VM is stopped"
        case .corrupt(let n):
            return "\(counted(n, "corruption")): the image is damaged and data may be wrong or lost; restore a snapshot or reset the runtime layer (`qemu-img check -r all` may repair it, but can lose data)"
        case .error(let message):
            return "the check could not run: \(message)"
        case .unsupported:
            return "this image format has no consistency check"
        }
    }
}

/// "1 leaked cluster", "3 leaked clusters".
func counted(_ n: Int, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}
