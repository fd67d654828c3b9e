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
