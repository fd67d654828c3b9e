import Glibc

// Things glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not see.
// Values from <bits/socket.h>/<asm-generic/socket.h> (x86_64 and aarch64 alike).

/// struct ucred from <bits/socket.h>.
struct PeerCredentials {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}

/// SO_PEERCRED from <asm-generic/socket.h>.
let SO_PEERCRED_OPTION: Int32 = 17

/// epoll from <sys/epoll.h>, which Swift's Glibc module does not import: its calls looked up
/// in the C library by name (the documented way to call C through a `@convention(c)` pointer),
/// its constants and its event layout as the kernel defines them. An event is `uint32_t
/// events` and a 64-bit `data`: packed (12 bytes) on x86_64, 16 bytes elsewhere.
enum Epoll {
    static let cloexec: Int32 = 0o2000000
    static let add: Int32 = 1
    static let delete: Int32 = 2
    static let modify: Int32 = 3
    static let input: UInt32 = 0x001
    static let output: UInt32 = 0x004
    #if arch(x86_64)
    static let eventSize = 12
    static let dataOffset = 4
    #else
    static let eventSize = 16
    static let dataOffset = 8
    #endif

    typealias CreateCall = @convention(c) (Int32) -> Int32
    typealias ControlCall = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    typealias WaitCall = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32

    private static func lookUp<T>(_ name: String, as: T.Type) -> T? {
        guard let me = dlopen(nil, RTLD_NOW), let symbol = dlsym(me, name) else { return nil }
        return unsafeBitCast(symbol, to: T.self)
    }
    static let create = lookUp("epoll_create1", as: CreateCall.self)
    static let control = lookUp("epoll_ctl", as: ControlCall.self)
    static let wait = lookUp("epoll_wait", as: WaitCall.self)
}
