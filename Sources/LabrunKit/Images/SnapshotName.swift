import FoundationEssentials

/// The rules a snapshot name must follow so that every path (qemu-img, QMP, the HMP monitor
/// parser, a Makefile, a shell) sees the same name, and so that no name can be mistaken for a
/// snapshot ID or an option.
///
/// Allowed: letters (any script, with their combining marks), digits, and `._-+:@,=`.
public enum SnapshotName {
    /// QEMU keeps a name in `char name[256]` (QEMUSnapshotInfo, include/block/snapshot.h) and
    /// silently cuts longer ones to 255 bytes of UTF-8 (checked with qemu-img 7.2: a 256-byte
    /// name is stored as 255 bytes and can no longer be applied by its full name).
    public static let maxBytes = 255

    /// Punctuation allowed besides letters and digits.
    public static let allowedPunctuation = "._-+:@,="

    private static let quotes: Set<Unicode.Scalar> = ["'", "\"", "`", "\\"]
    private static let shellCharacters: Set<Unicode.Scalar> = [
        "$", ";", "|", "&", "<", ">", "(", ")", "{", "}", "*", "?", "[", "]", "~", "!", "#",
    ]
    private static let onlyAllowed = "use only letters, digits and \(allowedPunctuation)"

    /// Throws a one-line refusal saying what to do when `name` is not a safe snapshot name.
    public static func validate(_ name: String) throws(LabrunError) {
        if name.isEmpty {
            throw LabrunError("snapshot name is empty; give a name such as 'before-patch'")
        }
        for scalar in name.unicodeScalars {
            let p = scalar.properties
            if p.generalCategory == .control || p.generalCategory == .format {
                throw LabrunError("snapshot name contains the control character \(codePoint(scalar)); \(onlyAllowed)")
            }
            if p.isWhitespace || p.generalCategory == .spaceSeparator {
                throw LabrunError("snapshot name '\(name)' contains whitespace; use '-' or '_' between words")
            }
            if quotes.contains(scalar) {
                throw LabrunError("snapshot name '\(name)' contains a quote or backslash (\(scalar)); remove it")
            }
            if shellCharacters.contains(scalar) {
                throw LabrunError("snapshot name '\(name)' contains the shell character '\(scalar)'; \(onlyAllowed)")
            }
            if !isAllowed(scalar) {
                throw LabrunError("snapshot name '\(name)' contains '\(scalar)' (\(codePoint(scalar))); \(onlyAllowed)")
            }
        }
        if name.unicodeScalars.allSatisfy({ $0.isASCII && $0.properties.numericType == .decimal }) {
            throw LabrunError(
                "snapshot name '\(name)' is all digits, which QEMU mistakes for a snapshot ID (restore would load the wrong snapshot); add a letter, e.g. 'v\(name)'")
        }
        if name.hasPrefix("-") {
            throw LabrunError("snapshot name '\(name)' starts with '-' and would look like an option; start it with a letter or digit")
        }
        let bytes = name.utf8.count
        if bytes > maxBytes {
            throw LabrunError("snapshot name is \(bytes) bytes long; QEMU keeps at most \(maxBytes) bytes and would cut the rest, so shorten it")
        }
    }

    /// The snapshot a live restore saves the running VM to first (to go back to when QEMU
    /// fails to load the one asked for) and deletes right after: no user snapshot may have it.
    public static let restoreUndo = "labrun-before-restore"

    /// `validate`, plus: not a name labrun keeps for itself. For creating snapshots; an
    /// existing one of that name (left by a crash) can still be restored or deleted.
    public static func validateNew(_ name: String) throws(LabrunError) {
        try validate(name)
        if name == restoreUndo {
            throw LabrunError("snapshot name '\(name)' is kept for labrun's own use during a live restore; choose another")
        }
    }

    /// The name used when none is given: `snap-YYYYMMDD-HHMMSS` in local time.
    public static func defaultName(date: Date = Date()) -> String {
        let t = CalendarTime.local(Int64(date.timeIntervalSince1970.rounded(.down)))
        return "snap-\(t.date(separator: ""))-\(t.time(separator: ""))"
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        if allowedPunctuation.unicodeScalars.contains(scalar) { return true }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .decimalNumber:
            return true
        default:
            return false
        }
    }

    private static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
