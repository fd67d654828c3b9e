import Glibc

/// Monotonic time in seconds, for timeouts and the durations labrun reports.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Sleeps for a short while outside any poll loop (CLI side only).
public func sleepSeconds(_ s: Double) {
    var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
    var rest = timespec()
    while case .failure(.interrupted) = valueOrErrno(retryOnInterrupt: false, { nanosleep(&ts, &rest) }) {
        ts = rest
    }
}

/// The wall clock in seconds since 1970. The corresponding C function is `clock_gettime`.
public func wallClockSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
