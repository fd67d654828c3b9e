#!/usr/bin/env bash
# build-tiny.sh — build labrun's tiny default Linux guest from Debian packages.
#
# Usage: guest/build-tiny.sh [--force] [--arch x86_64|aarch64] LABDIR
#
# Makes (names are relied upon by the Swift code):
#   LABDIR/guest-build/vmlinux         ELF kernel (PVH entry: QEMU -kernel boots it without decompressing);
#                                      x86_64 only
#   LABDIR/guest-build/vmlinuz         Debian's original kernel: compressed bzImage on x86_64 (fallback),
#                                      the (uncompressed) Image that QEMU boots on aarch64
#   LABDIR/guest-build/kernel-version  e.g. "6.1.0-56-amd64"
#   LABDIR/guest-build/initrd.img      busybox + virtio/ext4/9p modules; /init (guest/initrd-init) mounts
#                                      /dev/vda and switch_roots
#   LABDIR/debian-rootfs-base.img      Layer 1: raw ext4, 256 MiB sparse, busybox userland
#   LABDIR/debian-rootfs.qcow2         Layer 2: golden qcow2 overlay, backing file "debian-rootfs-base.img" (relative)
#   LABDIR/lab.conf                    aarch64 only: "arch = aarch64" (added to an existing lab.conf)
# Work files: LABDIR/guest-build/cache (downloaded .deb, kept), LABDIR/guest-build/tmp.* (removed on exit).
#
# --arch aarch64: Debian's arm64 kernel (linux-image-6.1.0-N-arm64) and busybox-static:arm64, found through
# a private apt state in guest-build/cache/apt-arm64 (the host's apt configuration and lists are untouched;
# the mirrors are the ones the host's apt uses), console ttyAMA0; installs qemu-system-arm when missing.
#
# Idempotent: only what is missing (or stale because the kernel version changed) is built; --force rebuilds
# everything (and picks the newest kernel again). Every artefact is written under a temporary name and
# renamed into place, so an interrupted run never leaves a half-made file that a later run would trust.
# Environment: LABRUN_GUEST_KVER=6.1.0-N-amd64 (or -arm64) picks a specific kernel instead of the newest
# (used when there is no kernel-version yet, or with --force).
set -euo pipefail

# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------
ROOTFS_SIZE=256M
READY_LINE='labrun-guest: ready'
# Modules the initrd loads, in dependency order (a build-time check verifies the order against the
# modules' own "depends=" lists). Built-in ones are skipped. crc32c_generic: ext4's metadata_csum needs
# crc32c, and TCG's default CPU has no SSE4.2 for crc32c-intel.
INITRD_MODULES=(virtio_pci_modern_dev virtio_pci_legacy_dev virtio_ring virtio virtio_pci virtio_blk
                crc32c_generic jbd2 mbcache crc16 ext4 9pnet 9pnet_virtio netfs fscache 9p virtio_console)
# Modules copied into the rootfs's /lib/modules/KVER (plus everything they depend on). Debian's whole
# module tree is ~390 MB and would not fit in the 256 MiB Layer 1, so only a useful virtual-machine subset.
ROOTFS_MODULES=("${INITRD_MODULES[@]}" virtio_mmio virtio_balloon virtio_input virtio_rng virtio_net
                virtio_scsi sd_mod vsock vmw_vsock_virtio_transport vsock_loopback loop overlay fuse
                squashfs isofs vfat nls_utf8 nls_cp437 crc32c_intel button evdev)
APT_PREREQS=(busybox-static cpio xz-utils fakeroot e2fsprogs qemu-utils)

# Per architecture (set once --arch is known): Debian's name for it, the serial console, the modules
# that make QEMU's power button reach acpid, and the QEMU package.
set_arch() {
    case $1 in
        x86_64)
            DEB_ARCH=amd64; CONSOLE=ttyS0; POWER_MODULES="button evdev"; QEMU_PKG=qemu-system-x86 ;;
        aarch64)
            # virt's power button is a GPIO key (PL061, built in) -> gpio_keys -> evdev -> acpid.
            DEB_ARCH=arm64; CONSOLE=ttyAMA0; POWER_MODULES="gpio_keys evdev"; QEMU_PKG=qemu-system-arm
            ROOTFS_MODULES+=(gpio_keys) ;;
        *) echo "unknown architecture '$1' (expected x86_64 or aarch64)" >&2; usage ;;
    esac
}

# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die()  { printf 'build-tiny: error: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 [--force] [--arch x86_64|aarch64] LABDIR" >&2; exit 2; }

FORCE=0
LAB=
ARCH=x86_64
while (($#)); do
    case $1 in
        --force) FORCE=1 ;;
        --arch) (($# > 1)) || usage; ARCH=$2; shift ;;
        --arch=*) ARCH=${1#--arch=} ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $1" >&2; usage ;;
        *) [[ -z $LAB ]] || usage; LAB=$1 ;;
    esac
    shift
done
[[ -n $LAB ]] || usage
set_arch "$ARCH"

START=$(date +%s.%N)
mkdir -p "$LAB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)   # guest/: the recipe files
# shellcheck source=debian-mirror.sh
source "$HERE/debian-mirror.sh"
LAB=$(cd "$LAB" && pwd -P)
GB=$LAB/guest-build
CACHE=$GB/cache
STAMPS=$GB/stamps
mkdir -p "$GB" "$CACHE" "$STAMPS"

# One build at a time per LABDIR (flock is in util-linux, which is essential in Debian).
exec 9>"$GB/.build.lock"
flock -n 9 || die "another build-tiny.sh is running on $LAB"

# Leftovers of an interrupted run (we hold the lock, so nobody else owns them).
rm -rf "$GB"/tmp.* "$CACHE"/dl.*
rm -f "$GB"/*.part "$STAMPS"/*.part "$LAB"/debian-rootfs-base.img.part "$LAB"/debian-rootfs.qcow2.part

WORK=$(mktemp -d "$GB/tmp.XXXXXX")
cleanup() {
    rm -rf "$WORK" "$CACHE"/dl.*
    rm -f "$GB"/*.part "$STAMPS"/*.part "$LAB"/debian-rootfs-base.img.part "$LAB"/debian-rootfs.qcow2.part
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP   # (bash runs the EXIT trap on "exit", not when a signal kills it)

# publish TMP FINAL: atomically move a finished temp file into place.

# ---------------------------------------------------------------------------------------------------------
# Step 1: host prerequisites (installed only when a tool is missing)
# ---------------------------------------------------------------------------------------------------------
say "prerequisites"
# apt for the guest's architecture: the host's own apt for x86_64; for aarch64 a private state (lists,
# cache, status, sources) in the cache directory, so the host's apt never sees arm64.
APT_OPTS=()
if [[ $DEB_ARCH != amd64 ]]; then
    ADIR=$CACHE/apt-$DEB_ARCH
    mkdir -p "$ADIR/lists/partial" "$ADIR/cache/archives/partial" "$ADIR/sources.list.d"
    [[ -e $ADIR/status ]] || : >"$ADIR/status"
    debian_mirrors
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    opt="[arch=$DEB_ARCH signed-by=$keyring]"
    [[ -r $keyring ]] || opt="[arch=$DEB_ARCH]"   # (then apt's trusted.gpg.d)
    printf 'deb %s %s %s main\n' "$opt" "$DEBIAN_MIRROR" bookworm "$opt" "$DEBIAN_MIRROR" bookworm-updates \
        "$opt" "$DEBIAN_SECURITY_MIRROR" bookworm-security >"$ADIR/sources.list.part"
    mv -f "$ADIR/sources.list.part" "$ADIR/sources.list"
    APT_OPTS=(-o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures::=$DEB_ARCH"
              -o "Dir::State::Lists=$ADIR/lists" -o "Dir::State::status=$ADIR/status"
              -o "Dir::Cache=$ADIR/cache" -o "Dir::Etc::SourceList=$ADIR/sources.list"
              -o "Dir::Etc::SourceParts=$ADIR/sources.list.d")
fi
APT_UPDATED=0
apt_update_once() {   # (its messages go to stderr: it runs inside $(newest_kernel) too)
    ((APT_UPDATED)) && return 0
    if ((${#APT_OPTS[@]})); then
        info "apt-get update ($DEB_ARCH lists in $ADIR, from $DEBIAN_MIRROR)" >&2
        apt-get "${APT_OPTS[@]}" update -qq >&2 || die "apt-get update for $DEB_ARCH failed"
    else
        info "apt-get update" >&2; apt-get update -qq >&2
    fi
    APT_UPDATED=1
}
# Install only the packages whose tool is missing ("apt-get install" would also upgrade present ones).
need=()
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' && [[ -x /bin/busybox ]] \
    || need+=(busybox-static)
for pair in cpio:cpio xz:xz-utils fakeroot:fakeroot mkfs.ext4:e2fsprogs qemu-img:qemu-utils "qemu-system-$ARCH:$QEMU_PKG"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
    [[ $(id -u) == 0 ]] || die "missing packages; as root run: apt-get install ${need[*]}"
    apt_update_once
    info "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    info "all present (${APT_PREREQS[*]} $QEMU_PKG)"
fi
BUSYBOX=/bin/busybox
[[ $(head -c 4 "$BUSYBOX" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] || die "$BUSYBOX is not an ELF binary"
# busybox and busybox-static conflict; the static one must own /bin/busybox (it runs without any libc).
dpkg -S "$BUSYBOX" 2>/dev/null | grep -q '^busybox-static:' || die "$BUSYBOX is not from busybox-static"
# The guest's busybox: the host's one on x86_64; on aarch64 busybox-static:arm64 (see guest_busybox). The
# host's busybox still lists the applets and runs depmod (same Debian version, same applets).
GUEST_BUSYBOX=$BUSYBOX

# ---------------------------------------------------------------------------------------------------------
# Step 2: kernel package (download into the cache, unpack into WORK when needed)
# ---------------------------------------------------------------------------------------------------------
newest_kernel() {
    local list re="^linux-image-6\\.1\\.0-[0-9]+-$DEB_ARCH\$"
    # A private (arm64) apt state is refreshed when --force asks for the newest kernel.
    if ((${#APT_OPTS[@]} && FORCE)); then apt_update_once; fi
    list=$(apt-cache "${APT_OPTS[@]}" search --names-only "$re" 2>/dev/null | awk '{print $1}')
    if [[ -z $list ]]; then
        apt_update_once
        list=$(apt-cache "${APT_OPTS[@]}" search --names-only "$re" | awk '{print $1}')
    fi
    [[ -n $list ]] || die "apt-cache finds no linux-image-6.1.0-N-$DEB_ARCH package"
    printf '%s\n' "$list" | sed 's/^linux-image-//' | sort -V | tail -n 1
}

# fetch_deb PACKAGE: make sure the package's .deb (for the guest's architecture) is in the cache; sets DEB
# to its path.
fetch_deb() {
    local pkg=$1 deb size dl
    deb=$(find "$CACHE" -maxdepth 1 -name "${pkg}_*_$DEB_ARCH.deb" | sort -V | tail -n 1)
    if [[ -n $deb ]] && dpkg-deb --info "$deb" >/dev/null 2>&1; then
        info "using cached $(basename "$deb")"
        DEB=$deb; return
    fi
    size=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$pkg" 2>/dev/null | awk '/^Size:/ {print $2; exit}')
    if [[ -z $size ]]; then
        apt_update_once
        size=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$pkg" 2>/dev/null | awk '/^Size:/ {print $2; exit}')
    fi
    [[ -n $size ]] || die "package $pkg is not available from apt (try --force to pick the newest kernel)"
    info "downloading $pkg ($(mib "$size"))"
    # Download into a private dir and move the verified .deb into the cache afterwards.
    dl=$(mktemp -d "$CACHE/dl.XXXXXX")
    (cd "$dl" && apt-get "${APT_OPTS[@]}" download -qq -o APT::Sandbox::User=root "$pkg") \
        || die "apt-get download $pkg failed"
    deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*_$DEB_ARCH.deb" | head -n 1)
    if [[ -z $deb ]] || ! dpkg-deb --info "$deb" >/dev/null; then die "download of $pkg gave no valid .deb"; fi
    mv -f "$deb" "$CACHE/"
    rm -rf "$dl"
    deb=$CACHE/$(basename "$deb")
    info "downloaded $(basename "$deb") ($(mib "$(fsize "$deb")"))"
    DEB=$deb
}

KPKG=$WORK/kpkg   # dpkg -x target
unpack_kernel() {
    [[ -d $KPKG/boot ]] && return 0
    fetch_deb "linux-image-$KVER"
    info "unpacking $(basename "$DEB")"
    dpkg -x "$DEB" "$KPKG"
    [[ -f $KPKG/boot/vmlinuz-$KVER && -d $KPKG/lib/modules/$KVER/kernel ]] \
        || die "$(basename "$DEB") does not contain vmlinuz-$KVER and its modules"
}

# guest_busybox: on a foreign architecture, unpack busybox-static for it and point GUEST_BUSYBOX at it.
guest_busybox() {
    [[ $GUEST_BUSYBOX != "$BUSYBOX" || $DEB_ARCH == amd64 ]] && return 0
    fetch_deb busybox-static
    dpkg -x "$DEB" "$WORK/bbpkg"
    GUEST_BUSYBOX=$WORK/bbpkg/bin/busybox
    # ELF e_machine (bytes 18-19): 0xb7 = AArch64.
    [[ $(od -An -tx1 -j18 -N2 "$GUEST_BUSYBOX" | tr -d ' \n') == b700 ]] \
        || die "$(basename "$DEB") does not contain an AArch64 busybox"
    info "guest busybox: $(basename "$DEB")"
}

# ---------------------------------------------------------------------------------------------------------
# Step 3: vmlinuz, vmlinux, kernel-version
# ---------------------------------------------------------------------------------------------------------
KVER=
if ((FORCE == 0)) && [[ -s $GB/kernel-version ]]; then
    KVER=$(cat "$GB/kernel-version")
    [[ $KVER == *-"$DEB_ARCH" ]] || KVER=   # built for another architecture: start over
fi
NEED_VMLINUX=0; [[ $ARCH == x86_64 ]] && NEED_VMLINUX=1
if ((FORCE)) || [[ -z $KVER || ! -s $GB/vmlinuz ]] || { ((NEED_VMLINUX)) && [[ ! -s $GB/vmlinux ]]; }; then
    say "kernel"
    if [[ -z $KVER ]]; then
        KVER=${LABRUN_GUEST_KVER:-$(newest_kernel)}
        info "kernel version: $KVER"
    else
        info "kernel version: $KVER (from $GB/kernel-version)"
    fi
    [[ $KVER =~ ^[0-9][0-9A-Za-z.+~-]*-$DEB_ARCH$ ]] || die "odd kernel version '$KVER' (expected 6.1.0-N-$DEB_ARCH)"
    unpack_kernel
    src=$KPKG/boot/vmlinuz-$KVER
  if ((NEED_VMLINUX)); then

    say "extracting vmlinux from vmlinuz"
    extract_vmlinux "$src" "$WORK/vmlinux" || die "no XZ-compressed ELF kernel found inside $src"
  else
    # arm64: Debian's vmlinuz is the kernel Image itself (QEMU -kernel boots it, gzip'd or not).
    info "kernel image: $(file -b "$src" 2>/dev/null | cut -c1-60 || echo "$src")"
  fi
    # kernel-version goes last: while it is missing, a later run redoes this whole step.
    rm -f "$GB/kernel-version"
    cp "$src" "$GB/vmlinuz.part"; publish "$GB/vmlinuz.part" "$GB/vmlinuz"
    if ((NEED_VMLINUX)); then
        mv "$WORK/vmlinux" "$GB/vmlinux.part"; publish "$GB/vmlinux.part" "$GB/vmlinux"
    else
        rm -f "$GB/vmlinux"   # (Lab boots guest-build/vmlinux when it exists)
    fi
    printf '%s\n' "$KVER" >"$GB/kernel-version.part"; mv -f "$GB/kernel-version.part" "$GB/kernel-version"
    info "wrote $GB/kernel-version ($KVER)"
else
    say "kernel: up to date ($KVER)"
fi

# ---------------------------------------------------------------------------------------------------------
# Module helpers (work on the unpacked package)
# ---------------------------------------------------------------------------------------------------------
MODDIR=$KPKG/lib/modules/$KVER
declare -A MODPATH=()   # module name (dashes as underscores) -> path relative to MODDIR
declare -A BUILTIN=()
index_modules() {
    ((${#MODPATH[@]})) && return 0
    local p n
    while IFS= read -r p; do
        n=${p##*/}; n=${n%.ko}; MODPATH[${n//-/_}]=$p
    done < <(cd "$MODDIR" && find kernel -name '*.ko')
    # Compressed modules (.ko.xz/.ko.zst) would need unpacking first; Debian 6.1 ships them plain.
    if ((${#MODPATH[@]} == 0)); then
        (cd "$MODDIR" && find kernel \( -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print -quit) | grep -q . \
            && decompress_modules && index_modules && return 0
        die "no kernel modules in the package"
    fi
    while IFS= read -r p; do
        n=${p##*/}; n=${n%.ko}; BUILTIN[${n//-/_}]=1
    done <"$MODDIR/modules.builtin"
}
decompress_modules() {
    info "decompressing modules"
    local f
    while IFS= read -r -d '' f; do
        case $f in
            *.xz) xz -dc "$f" >"${f%.xz}" ;;
            *.zst) zstd -qdc "$f" >"${f%.zst}" ;;
            *.gz) gzip -dc "$f" >"${f%.gz}" ;;
        esac
        rm -f "$f"
    done < <(find "$MODDIR/kernel" \( -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)
}
# mod_deps NAME: the module's "depends=" list from its .modinfo section, one per line.
mod_deps() {
    LC_ALL=C tr '\0' '\n' <"$MODDIR/${MODPATH[$1]}" | sed -n 's/^depends=//p' | head -n 1 | tr ',' '\n' \
        | sed '/^$/d; s/-/_/g'
}
# mod_closure NAME...: the modules plus everything they depend on (unknown and built-in ones left out).
mod_closure() {
    declare -A seen=()
    local queue=("$@") m d
    while ((${#queue[@]})); do
        m=${queue[0]}; queue=("${queue[@]:1}"); m=${m//-/_}
        [[ -n ${seen[$m]:-} ]] && continue
        seen[$m]=1
        if [[ -n ${BUILTIN[$m]:-} ]]; then continue; fi
        if [[ -z ${MODPATH[$m]:-} ]]; then info "note: module $m not in this kernel, skipped" >&2; continue; fi
        printf '%s\n' "$m"
        while IFS= read -r d; do queue+=("$d"); done < <(mod_deps "$m")
    done
}
# copy_modules DESTROOT NAME...: copy the .ko files to DESTROOT/lib/modules/KVER/<same path> + metadata.
copy_modules() {
    local root=$1 dest=$1/lib/modules/$KVER m; shift
    mkdir -p "$dest"
    for m in "$@"; do
        mkdir -p "$dest/$(dirname "${MODPATH[$m]}")"
        cp "$MODDIR/${MODPATH[$m]}" "$dest/${MODPATH[$m]}"
    done
    cp "$MODDIR"/modules.builtin "$MODDIR"/modules.order "$dest/"
    [[ -f $MODDIR/modules.builtin.modinfo ]] && cp "$MODDIR/modules.builtin.modinfo" "$dest/"
    # The .deb has no modules.dep; busybox's depmod makes one (no kmod needed on the host).
    "$BUSYBOX" depmod -b "$root" "$KVER"
}

# busybox_tree ROOT: /bin/busybox plus a symlink for every applet at its usual place.
busybox_tree() {
    local root=$1 p
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
    cp "$GUEST_BUSYBOX" "$root/bin/busybox"
    while IFS= read -r p; do
        [[ -e $root/$p || -L $root/$p ]] || ln -s /bin/busybox "$root/$p"
    done < <("$BUSYBOX" --list-full)
}

# in_fakeroot FUNCTION ARGS...: run one of this script's functions in a single fakeroot session.
# (fakeroot is a /bin/sh script, which drops bash's exported functions: pass the definition instead.)
in_fakeroot() {
    local fn=$1; shift
    fakeroot -- bash -euo pipefail -c "$(declare -f "$fn"); $fn \"\$@\"" "$fn" "$@"
}

# A stamp records the kernel version and a hash of the recipe (this script, the guest agent and
# mount-shared), so a changed kernel or a changed guest recipe rebuilds what depends on it.
# The initrd's recipe is its own (the initrd's /init, guest/initrd-init, is not in the root file system):
# a changed /init rebuilds the initrd only.
RECIPE=$(cat "$HERE/build-tiny.sh" "$HERE/lib.sh" "$HERE/labrun-agent" "$HERE/mount-shared" | sha256sum | cut -c1-16)
INITRD_RECIPE=$(cat "$HERE/build-tiny.sh" "$HERE/lib.sh" "$HERE/initrd-init" "$HERE/mount-modules" | sha256sum | cut -c1-16)
recipe_of() { if [[ $1 == initrd ]]; then echo "$INITRD_RECIPE"; else echo "$RECIPE"; fi; }
stamp_ok() { [[ -f $STAMPS/$1 && $(cat "$STAMPS/$1") == "$KVER $(recipe_of "$1")" ]]; }
set_stamp() { printf '%s\n' "$KVER $(recipe_of "$1")" >"$STAMPS/$1.part"; mv -f "$STAMPS/$1.part" "$STAMPS/$1"; }

# ---------------------------------------------------------------------------------------------------------
# Step 4: initrd.img
# ---------------------------------------------------------------------------------------------------------
build_initrd_tree() {   # runs under fakeroot: $1 = tree, $2 = output cpio.gz
    local t=$1 out=$2
    mkdir -p "$t"/{dev,proc,sys,newroot,etc,root,tmp}
    mknod -m 600 "$t/dev/console" c 5 1
    mknod -m 666 "$t/dev/null" c 1 3
    (cd "$t" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$out"
}

if ((FORCE)) || [[ ! -s $GB/initrd.img ]] || ! stamp_ok initrd; then
    say "initrd"
    unpack_kernel
    guest_busybox
    index_modules
    T=$WORK/initrd
    busybox_tree "$T"
    # Load list: skip built-ins, check every dependency comes earlier in the list.
    declare -A loaded=()
    load=()
    for m in "${INITRD_MODULES[@]}"; do
        if [[ -n ${BUILTIN[$m]:-} ]]; then info "$m is built in"; loaded[$m]=1; continue; fi
        [[ -n ${MODPATH[$m]:-} ]] || die "initrd module $m is neither a module nor built in for $KVER"
        while IFS= read -r d; do
            [[ -n ${loaded[$d]:-} || -n ${BUILTIN[$d]:-} ]] \
                || die "initrd module order: $m needs $d, which is not loaded before it (fix INITRD_MODULES)"
        done < <(mod_deps "$m")
        loaded[$m]=1; load+=("$m")
    done
    copy_modules "$T" "${load[@]}"
    mkdir -p "$T/etc"
    for m in "${load[@]}"; do echo "/lib/modules/$KVER/${MODPATH[$m]}"; done >"$T/etc/initrd-modules"
    info "${#load[@]} modules: ${load[*]}"

    install -m 755 "$HERE/initrd-init" "$T/init"
    install -D -m 755 "$HERE/mount-modules" "$T/sbin/mount-modules"
    in_fakeroot build_initrd_tree "$T" "$GB/initrd.img.part"
    publish "$GB/initrd.img.part" "$GB/initrd.img"
    set_stamp initrd
else
    say "initrd: up to date"
fi

# ---------------------------------------------------------------------------------------------------------
# Step 5: Layer 1 — debian-rootfs-base.img
# ---------------------------------------------------------------------------------------------------------
# Builds the whole tree and runs mkfs.ext4 -d in ONE fakeroot session, so that ownership (root),
# modes and device nodes land in the image without loop mounts or real root rights.
build_rootfs_image() {   # runs under fakeroot: $1 = tree, $2 = output image, $3 = size
    local t=$1 out=$2
    mkdir -p "$t"/{dev,proc,sys,tmp,run,mnt,root,etc/init.d,etc/labrun,usr/local/bin,var/log,var/tmp,home}
    chmod 1777 "$t/tmp" "$t/var/tmp"
    chmod 700 "$t/root"
    ln -s /run "$t/var/run"
    ln -s /proc/mounts "$t/etc/mtab"
    mknod -m 600 "$t/dev/console" c 5 1
    mknod -m 666 "$t/dev/null" c 1 3
    chown -R 0:0 "$t"
    truncate -s "$3" "$out"   # sparse file of the final size (mkfs.ext4 then needs no size argument)
    mkfs.ext4 -q -F -b 4096 -L labroot -E root_owner=0:0 -d "$t" "$out"
}

OLD_GOLDEN=0
if ((FORCE)) || [[ ! -s $LAB/debian-rootfs-base.img ]] || ! stamp_ok rootfs; then
    say "Layer 1: debian-rootfs-base.img"
    unpack_kernel
    guest_busybox
    index_modules
    T=$WORK/rootfs
    busybox_tree "$T"
    mapfile -t mods < <(mod_closure "${ROOTFS_MODULES[@]}")
    copy_modules "$T" "${mods[@]}"
    info "${#mods[@]} modules in /lib/modules/$KVER"
    mkdir -p "$T/etc/init.d" "$T/usr/local/bin" "$T/etc/labrun"

    cat >"$T/etc/inittab" <<EOF
# busybox init (labrun tiny guest)
::sysinit:/etc/init.d/rcS
# Login shell on the serial console; cttyhack makes it the controlling tty (job control, ^C).
$CONSOLE::respawn:/bin/cttyhack /bin/sh -l
# The labrun guest agent on its own virtio-serial port (guest/AGENT.md); never the console.
::respawn:/etc/labrun/labrun-agent
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
EOF

    cat >"$T/etc/init.d/rcS" <<EOF
#!/bin/sh
# System start (busybox init ::sysinit). The initrd has already loaded the modules and moved
# /dev, /proc and /sys here; each mount below is done only if still missing.
# (Debian's busybox-static has no "mountpoint" applet: look in /proc/mounts instead.)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -e /proc/mounts ] || mount -t proc -o nosuid,nodev,noexec proc /proc
mounted() { grep -q "^[^ ]* \$1 " /proc/mounts; }
mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mounted /dev || mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || mount -t devpts -o nosuid,noexec,mode=0620,ptmxmode=0666 devpts /dev/pts
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
mounted /tmp || mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mounted /run || mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
grep -q ' / [^ ]* rw' /proc/mounts || mount -o remount,rw /
hostname -F /etc/hostname
ifconfig lo 127.0.0.1 up 2>/dev/null
# Power button (QEMU's system_powerdown: ACPI on x86_64, a GPIO key on aarch64's virt) ->
# /etc/acpi/PWRF/00000080 -> poweroff. In the background: the boot does not wait for it.
{ modprobe -a $POWER_MODULES && acpid -l /dev/null; } >/dev/null 2>&1 &
echo '$READY_LINE'
EOF

    cat >"$T/etc/init.d/rcK" <<'EOF'
#!/bin/sh
# System stop (busybox init ::shutdown, before it kills all processes): flush and unmount
# everything; what is busy (the root) is remounted read-only instead.
sync
umount -a -r 2>/dev/null
sync
EOF

    cat >"$T/etc/profile" <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export TERM="${TERM:-vt100}"
export PS1='root@lab:\w# '
umask 022
cd "$HOME"
EOF

    install -m 755 "$HERE/mount-shared" "$T/usr/local/bin/mount-shared"

    mkdir -p "$T/etc/acpi/PWRF"
    printf '#!/bin/sh\n# ACPI power button (e.g. QEMU system_powerdown): orderly power-off.\nexec /sbin/poweroff\n' \
        >"$T/etc/acpi/PWRF/00000080"
    chmod 755 "$T/etc/init.d/rcS" "$T/etc/init.d/rcK" "$T/etc/acpi/PWRF/00000080"
    echo lab >"$T/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tlab\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$T/etc/hosts"
    # "root:x:" (not empty): an empty password field breaks name lookups in static busybox.
    echo 'root:x:0:0:root:/root:/bin/sh' >"$T/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\ndisk:x:6:\n' >"$T/etc/group"
    echo '/bin/sh' >"$T/etc/shells"
    : >"$T/etc/fstab"
    echo "$KVER" >"$T/etc/labrun/kernel-version"
    install -m 755 "$HERE/labrun-agent" "$T/etc/labrun/labrun-agent"

    in_fakeroot build_rootfs_image "$T" "$LAB/debian-rootfs-base.img.part" "$ROOTFS_SIZE"
    # The golden overlay refers to the old Layer 1: remove it first, so that even an interrupted run
    # cannot leave it on top of the new one (a missing golden image is recreated below / next time).
    [[ -e $LAB/debian-rootfs.qcow2 ]] && OLD_GOLDEN=1
    rm -f "$LAB/debian-rootfs.qcow2" "$STAMPS/rootfs"
    publish "$LAB/debian-rootfs-base.img.part" "$LAB/debian-rootfs-base.img"
    info "(sparse; $(du -k "$LAB/debian-rootfs-base.img" | awk '{printf "%.1f MiB", $1/1024}') on disk)"
    set_stamp rootfs
    LAYER1_REBUILT=1
else
    say "Layer 1: up to date"
    LAYER1_REBUILT=0
fi

# ---------------------------------------------------------------------------------------------------------
# Step 6: Layer 2 — golden overlay debian-rootfs.qcow2 (relative backing path)
# ---------------------------------------------------------------------------------------------------------
make_golden "$LAB" "$LAYER1_REBUILT" "$OLD_GOLDEN" build-tiny

# ---------------------------------------------------------------------------------------------------------
# Step 7: lab.conf — a non-x86_64 lab must say its architecture (the rest of the file is the user's)
# ---------------------------------------------------------------------------------------------------------
if [[ $ARCH != x86_64 ]]; then
    conf=$LAB/lab.conf
    current=$(sed -n 's/^[[:space:]]*arch[[:space:]]*=[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$conf" 2>/dev/null | tail -n 1 || :)
    if [[ -z $current ]]; then
        { [[ -s $conf ]] && cat "$conf"
          printf '# labrun lab: the tiny %s guest (guest/build-tiny.sh --arch %s)\narch = %s\n' "$ARCH" "$ARCH" "$ARCH"
        } >"$conf.part"
        mv -f "$conf.part" "$conf"
        say "lab.conf: arch = $ARCH"
    elif [[ $current != "$ARCH" ]]; then
        die "$conf says arch = $current, but this lab now holds an $ARCH guest: fix lab.conf"
    fi
fi

say "done in $(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')"
