import Glibc

/// A broken-down calendar time, to the second.
public struct CalendarTime: Equatable, Sendable {
    public var year, month, day, hour, minute, second: Int

    /// In the local time zone (TZ). The corresponding C function is `localtime_r`.
    public static func local(_ secondsSince1970: Int64) -> CalendarTime { convert(secondsSince1970, localtime_r) }

    /// In UTC. The corresponding C function is `gmtime_r`.
    public static func utc(_ secondsSince1970: Int64) -> CalendarTime { convert(secondsSince1970, gmtime_r) }

    private static func convert(
        _ seconds: Int64, _ function: (UnsafePointer<time_t>, UnsafeMutablePointer<tm>) -> UnsafeMutablePointer<tm>?
    ) -> CalendarTime {
        var t = time_t(seconds)
        var parts = tm()
        _ = function(&t, &parts)
        return CalendarTime(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
                            hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec))
    }

    /// "2026-11-26" with separator "-", "20261126" with "".
    public func date(separator: String) -> String {
        [zeroPadded(year, 4), zeroPadded(month, 2), zeroPadded(day, 2)].joined(separator: separator)
    }

    /// "20:31:05" with separator ":", "203105" with "".
    public func time(separator: String) -> String {
        [zeroPadded(hour, 2), zeroPadded(minute, 2), zeroPadded(second, 2)].joined(separator: separator)
    }
}

/// `n` in decimal with leading zeros up to `width` digits.
func zeroPadded(_ n: some BinaryInteger, _ width: Int) -> String {
    let digits = String(n)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

extension CalendarTime {
    /// Seconds since 1970 of this local time. The corresponding C function is `mktime`.
    public var secondsSince1970Local: Int64 {
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        parts.tm_isdst = -1
        return Int64(mktime(&parts))
    }
}
