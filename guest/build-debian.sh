#!/usr/bin/env bash
# build-debian.sh — build labrun's full Debian bookworm guest (systemd, gcc, gdb, strace, sshd …)
# into a lab directory.
#
# Usage: guest/build-debian.sh [--force] LABDIR        (as root: mmdebstrap runs in root mode)
#
# Makes (names are relied upon by the Swift code):
#   LABDIR/debian-rootfs-base.img      Layer 1: raw ext4 (sparse, 2 GiB or more), the whole Debian system
#   LABDIR/debian-rootfs.qcow2         Layer 2: golden qcow2 overlay, backing file "debian-rootfs-base.img" (relative)
#   LABDIR/guest-build/vmlinuz         the Debian kernel installed in Layer 1 (linux-image-amd64)
#   LABDIR/guest-build/vmlinux         the same kernel as an ELF (PVH entry; boots ~2 s faster under TCG)
#   LABDIR/guest-build/initrd.img      its initramfs-tools initrd, small (MODULES=list: virtio, ext4)
#   LABDIR/guest-build/kernel-version  e.g. "6.1.0-56-amd64"
#   LABDIR/lab.conf                    only when missing: mem = 1G, append = console=ttyS0 …
#   LABDIR/shared/                     the lab's shared folder (`labrun boot --shared`)
# Work files: LABDIR/guest-build/tmp.* (removed on exit), LABDIR/guest-build/debian-build.log (mmdebstrap's
# output of the last build).
#
# Idempotent: when Layer 1 is up to date (same recipe: this script, the guest agent, the package list and
# the mirrors) nothing is done; --force rebuilds (and takes the newest packages). Everything is built in a
# temporary directory and renamed into place at the end, so an interrupted run (Ctrl-C) leaves the previous
# build, or nothing, never a half-made layer. If Layer 1 is rebuilt, the golden image is recreated (empty)
# and an existing runtime layer is moved aside (debian-runtime.qcow2.old-golden-DATE): it no longer fits.
#
# Environment:
#   LABRUN_DEBIAN_PACKAGES        replaces the package list (comma or space separated; see PACKAGES below)
#   LABRUN_DEBIAN_EXTRA_PACKAGES  adds packages to it
#   LABRUN_DEBIAN_SIZE            Layer 1 size, e.g. 4G (default: 2 GiB, or what the tree needs + 1 GiB)
#   LABRUN_DEBIAN_MIRROR, LABRUN_DEBIAN_SECURITY_MIRROR   instead of the ones apt uses on this host
set -euo pipefail

# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------
SUITE=bookworm
PACKAGES=(systemd-sysv udev dbus kmod procps iproute2 openssh-server build-essential gdb strace
          vim-tiny less linux-image-amd64)
# The initrd holds only these (and what they depend on); udev loads everything else after switch_root.
# virtio_console: the guest agent's port exists before systemd starts. crc32c_generic: ext4's
# metadata_csum needs crc32c, and TCG's default CPU has no SSE4.2 for crc32c-intel.
INITRD_MODULES=(virtio_pci virtio_blk virtio_console ext4 crc32c_generic)
MIN_SIZE_MIB=2048
READY_LINE='labrun-guest: ready'

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die()  { printf 'build-debian: error: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 [--force] LABDIR" >&2; exit 2; }
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }'; }

FORCE=0
LAB=
for arg in "$@"; do
    case $arg in
        --force) FORCE=1 ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) [[ -z $LAB ]] || usage; LAB=$arg ;;
    esac
done
[[ -n $LAB ]] || usage
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap --mode=root, and files owned by root in Layer 1): run it with sudo"

START=$(date +%s.%N)
mkdir -p "$LAB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)   # guest/: the recipe files
LAB=$(cd "$LAB" && pwd -P)
GB=$LAB/guest-build
STAMPS=$GB/stamps
mkdir -p "$GB" "$STAMPS"
# shellcheck source=debian-mirror.sh
source "$HERE/debian-mirror.sh"

# One build at a time per LABDIR (the tiny builder uses the same lock).
exec 9>"$GB/.build.lock"
flock -n 9 || die "another guest build is running on $LAB"

PARTS=("$LAB/debian-rootfs-base.img.part" "$LAB/debian-rootfs.qcow2.part" "$LAB/lab.conf.part"
       "$GB"/vmlinuz.part "$GB"/vmlinux.part "$GB"/initrd.img.part "$GB"/kernel-version.part "$STAMPS"/debian.part)

# remove_tree DIR: rm -rf that never follows a mount out of DIR. mmdebstrap runs in its own mount
# namespace (below), so nothing should be mounted there; if something is (a run without unshare), it
# is unmounted first, and --one-file-system keeps rm off anything still mounted.
remove_tree() {
    local d=$1 m
    [[ -e $d ]] || return 0
    while read -r m; do
        umount -l "$m" 2>/dev/null || :
    done < <(awk -v d="$d" '{ gsub(/\\040/, " ", $5); if (index($5, d "/") == 1) print $5 }' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$d"
}

# Leftovers of an interrupted run (we hold the lock, so nobody else owns them).
for d in "$GB"/tmp.*; do remove_tree "$d"; done
rm -f "${PARTS[@]}"

WORK=$(mktemp -d "$GB/tmp.XXXXXX")
chmod 755 "$WORK"   # apt downloads as the _apt user
cleanup() {
    remove_tree "$WORK"
    rm -f "${PARTS[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP   # (bash runs the EXIT trap on "exit", not when a signal kills it)


# Processes that have one of this lab's images open (a running VM): rebuilding under them would pull
# the disk from under a running guest.
images_in_use() {
    local l
    for l in /proc/[0-9]*/fd/*; do
        case $(readlink "$l" 2>/dev/null) in
            "$LAB"/debian-rootfs-base.img | "$LAB"/debian-rootfs.qcow2 | "$LAB"/debian-runtime.qcow2)
                l=${l#/proc/}; echo "${l%%/*}" ;;
        esac
    done | sort -u | tr '\n' ' '
}

# ---------------------------------------------------------------------------------------------------------
# Step 1: what to build
# ---------------------------------------------------------------------------------------------------------
if [[ -n ${LABRUN_DEBIAN_PACKAGES:-} ]]; then
    read -r -a PACKAGES <<<"${LABRUN_DEBIAN_PACKAGES//,/ }"
fi
if [[ -n ${LABRUN_DEBIAN_EXTRA_PACKAGES:-} ]]; then
    read -r -a extra <<<"${LABRUN_DEBIAN_EXTRA_PACKAGES//,/ }"
    PACKAGES+=("${extra[@]}")
fi
((${#PACKAGES[@]})) || die "the package list is empty"
for p in "${PACKAGES[@]}"; do
    [[ $p =~ ^[a-z0-9][a-z0-9+.:=~-]*$ ]] || die "odd package name '$p'"
done
debian_mirrors
SIZE_SETTING=${LABRUN_DEBIAN_SIZE:-auto}
RECIPE=$( { cat "$HERE/build-debian.sh" "$HERE/lib.sh" "$HERE/labrun-agent" "$HERE/mount-shared" "$HERE/mount-modules" "$HERE"/initramfs-tools/* "$HERE/debian-mirror.sh"
            echo "${PACKAGES[*]} | $DEBIAN_MIRROR | $DEBIAN_SECURITY_MIRROR | $SIZE_SETTING"; } | sha256sum | cut -c1-16)

up_to_date() {
    [[ -s $LAB/debian-rootfs-base.img && -s $GB/initrd.img && -s $GB/vmlinuz && -s $GB/kernel-version
       && -f $STAMPS/debian && $(cat "$STAMPS/debian") == "$RECIPE $(cat "$GB/kernel-version")" ]]
}

if ((FORCE == 0)) && up_to_date; then
    say "Layer 1: up to date ($(cat "$GB/kernel-version"); packages: ${PACKAGES[*]})"
    LAYER1_REBUILT=0
else
    busy=$(images_in_use)
    [[ -z $busy ]] || die "this lab's images are in use by pid $busy (a running VM?): stop it first (labrun --lab $LAB stop)"

    # -----------------------------------------------------------------------------------------------------
    # Step 2: host prerequisites (installed only when a tool is missing)
    # -----------------------------------------------------------------------------------------------------
    say "prerequisites"
    need=()
    for pair in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs qemu-img:qemu-utils xz:xz-utils unshare:util-linux; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
    done
    if ((${#need[@]})); then
        info "apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        info "all present (mmdebstrap e2fsprogs qemu-utils xz-utils)"
    fi
    [[ -d /usr/share/mmdebstrap/hooks/merged-usr ]] || die "mmdebstrap's merged-usr hook is missing (/usr/share/mmdebstrap/hooks/merged-usr)"

    # -----------------------------------------------------------------------------------------------------
    # Step 3: mmdebstrap
    # -----------------------------------------------------------------------------------------------------
    say "mmdebstrap $SUITE (minbase + ${#PACKAGES[@]} packages) from $DEBIAN_MIRROR"
    info "packages: ${PACKAGES[*]}"
    info "security: $DEBIAN_SECURITY_MIRROR; full output in $GB/debian-build.log"
    T=$WORK/tree
    mkdir -p "$T"
    modules_list=$(printf '%s\\n' "${INITRD_MODULES[@]}")
    t0=$(date +%s.%N)
    # Its own mount namespace: whatever mmdebstrap mounts in the tree (proc, sys, dev) disappears with it,
    # even when it is killed. TMPDIR in WORK: its temporary files go when WORK goes.
    # The essential hook runs before any other package is installed, so the kernel's postinst already
    # builds the small initrd (MODULES=list; ROOT is the fallback when the command line has no root=).
    if ! TMPDIR=$WORK unshare --mount --propagation private -- \
        mmdebstrap --mode=root --format=directory --variant=minbase \
            --include="$(IFS=,; echo "${PACKAGES[*]}")" \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-include=/usr/share/locale/locale.alias' \
            --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
            --essential-hook="printf 'MODULES=list\nROOT=/dev/vda\n' >\"\$1/etc/initramfs-tools/conf.d/labrun\"" \
            --essential-hook="printf '$modules_list' >\"\$1/usr/share/initramfs-tools/modules.d/labrun.conf\"" \
            --essential-hook="mkdir -p \"\$1/etc/initramfs-tools/hooks\" \"\$1/etc/initramfs-tools/scripts/init-top\" && install -m 755 $(printf %q "$HERE/initramfs-tools/hook") \"\$1/etc/initramfs-tools/hooks/labrun\" && install -m 755 $(printf %q "$HERE/initramfs-tools/init-top") \"\$1/etc/initramfs-tools/scripts/init-top/labrun-modules\"" \
            "$SUITE" "$T" \
            "deb $DEBIAN_MIRROR $SUITE main" \
            "deb $DEBIAN_MIRROR $SUITE-updates main" \
            "deb $DEBIAN_SECURITY_MIRROR $SUITE-security main" \
            </dev/null 2>&1 | tee "$GB/debian-build.log" | { grep --line-buffered '^[IWE]: ' || :; } \
            | sed -u -e 's/^I: /    /' -e "s#$T#TREE#g" | cut -c1-150
    then
        echo "build-debian: mmdebstrap failed or was interrupted; the lab is unchanged. The end of $GB/debian-build.log:" >&2
        tail -n 15 "$GB/debian-build.log" >&2
        exit 1
    fi
    info "mmdebstrap took $(elapsed "$t0"); tree: $(du -sx --block-size=1M "$T" | cut -f1) MiB"

    # -----------------------------------------------------------------------------------------------------
    # Step 4: the lab's configuration (in Layer 1, like the tiny guest: the golden image stays empty)
    # -----------------------------------------------------------------------------------------------------
    say "lab configuration"
    [[ -n $T && -d $T/etc && -x $T/usr/bin/systemctl ]] || die "mmdebstrap made no usable tree in $T"
    echo lab >"$T/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tlab\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$T/etc/hosts"
    cat >"$T/etc/fstab" <<'EOF'
# labrun: the root file system is the VM's virtio-blk disk (the runtime qcow2 layer). No boot-time
# fsck (pass 0): it costs seconds under TCG, and ext4's journal recovers an unclean stop.
/dev/vda  /  ext4  rw,errors=remount-ro  0  0
EOF
    # QEMU's user-mode network (if the VM has one) answers DNS here.
    rm -f "$T/etc/resolv.conf"; echo 'nameserver 10.0.2.3' >"$T/etc/resolv.conf"

    # Root: automatic login on the serial console; password "root" (for ssh through a 127.0.0.1 forward).
    echo 'root:root' | chpasswd -R "$T"
    mkdir -p "$T/etc/systemd/system/serial-getty@.service.d"
    cat >"$T/etc/systemd/system/serial-getty@.service.d/labrun.conf" <<EOF
# labrun: root is logged in automatically on the serial console (ttyS0, ttyAMA0), and the console
# shows "$READY_LINE" just before (the same line the tiny guest prints when it is up).
[Service]
ExecStartPre=-/bin/sh -c 'echo "$READY_LINE" >/dev/%I'
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 - \$TERM
EOF
    mkdir -p "$T/etc/ssh/sshd_config.d"
    printf '# labrun: root/root over ssh (labrun forwards the port on 127.0.0.1 only)\nPermitRootLogin yes\n' \
        >"$T/etc/ssh/sshd_config.d/labrun.conf"

    # The guest agent (guest/AGENT.md): started by udev as soon as its virtio-serial port exists.
    mkdir -p "$T/etc/labrun"
    install -m 755 "$HERE/labrun-agent" "$T/etc/labrun/labrun-agent"
    cat >"$T/etc/systemd/system/labrun-agent.service" <<'EOF'
[Unit]
Description=labrun guest agent (virtio-serial port org.labrun.agent)
After=local-fs.target

[Service]
ExecStart=/etc/labrun/labrun-agent
Restart=always
RestartSec=1
EOF
    cat >"$T/etc/udev/rules.d/60-labrun-agent.rules" <<'EOF'
# labrun: start the guest agent when its virtio-serial port appears (at boot: udev's coldplug).
SUBSYSTEM=="virtio-ports", ATTR{name}=="org.labrun.agent", TAG+="systemd", ENV{SYSTEMD_WANTS}+="labrun-agent.service"
EOF
    install -m 755 "$HERE/mount-shared" "$T/usr/local/bin/mount-shared"
    # Another kernel's modules (labrun boot --kernel): its read-only modules disk on
    # /lib/modules/RELEASE before udev's coldplug, so its devices' modules load as usual.
    install -m 755 "$HERE/mount-modules" "$T/usr/local/sbin/mount-modules"
    cat >"$T/etc/systemd/system/labrun-modules.service" <<'EOF'
[Unit]
Description=labrun: the booted kernel's modules from labrun's modules disk
DefaultDependencies=no
After=systemd-remount-fs.service
Before=systemd-udev-trigger.service systemd-modules-load.service local-fs.target
ConditionPathExists=!/lib/modules/%v/modules.dep

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/mount-modules

[Install]
WantedBy=sysinit.target
EOF
    systemctl --root="$T" --quiet enable labrun-modules.service
    # The terminal's TERM (labrun writes it to /run/labrun/term when this guest has a terminfo
    # entry for it): the serial console's shell takes it before each prompt.
    cat >"$T/etc/profile.d/labrun-term.sh" <<'EOF'
_labrun_term() { [ -r /run/labrun/term ] && read -r _t </run/labrun/term && [ "$_t" != "$TERM" ] && export TERM="$_t"; }
case "$PROMPT_COMMAND" in *_labrun_term*) ;; *) PROMPT_COMMAND="_labrun_term${PROMPT_COMMAND:+; $PROMPT_COMMAND}" ;; esac
EOF

    cat >"$T/etc/motd" <<'EOF'

labrun lab guest: Debian bookworm (root is logged in on the serial console).
  Console keys: Ctrl-a then  x quit   s snapshot   c QEMU monitor   i status
                             b SysRq (next key)    h help    Ctrl-a literal Ctrl-a
  mount-shared              mount the host's shared folder on /mnt (boot with --shared)
  gcc, make, gdb, strace are installed; apt works when the VM has a network.

EOF
    # Network, if the VM has a NIC (QEMU's user-mode network, as labrun's ssh forward uses): a static
    # address set by udev when the NIC appears. No DHCP daemon: under TCG systemd-networkd alone costs
    # seconds of boot, and the getty waits for network.target. For other networks:
    # `systemctl enable --now systemd-networkd` (DHCP on en*/eth*, configured below).
    cat >"$T/usr/local/sbin/labrun-net-up" <<'EOF'
#!/bin/sh
# labrun-net-up IFACE — give the first NIC QEMU's user-mode network address (run by udev).
ip route show default | grep -q . && exit 0   # only one NIC gets the default route
ip link set "$1" up
ip addr add 10.0.2.15/24 dev "$1"
ip route add default via 10.0.2.2 dev "$1"
exit 0
EOF
    chmod 755 "$T/usr/local/sbin/labrun-net-up"
    cat >"$T/etc/udev/rules.d/90-labrun-net.rules" <<'EOF'
# labrun: configure the NIC for QEMU's user-mode network (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3).
ACTION=="add", SUBSYSTEM=="net", KERNEL!="lo", RUN+="/usr/local/sbin/labrun-net-up $name"
EOF
    cat >"$T/etc/systemd/network/80-labrun.network" <<'EOF'
# Used only if systemd-networkd is enabled (it is not by default; see /usr/local/sbin/labrun-net-up).
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
    # The journal stays in RAM: no journal flush at boot, and no log writes growing the runtime layer
    # and its snapshots (the kernel's messages are on the console anyway).
    mkdir -p "$T/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\n' >"$T/etc/systemd/journald.conf.d/labrun.conf"
    # sshd starts per connection (ssh.socket), not at boot.
    if [[ -e $T/lib/systemd/system/ssh.socket ]]; then
        systemctl --root="$T" --quiet disable ssh.service
        systemctl --root="$T" --quiet enable ssh.socket
    fi
    # What only costs boot time here: timers that wake up and work in the background of a slow TCG
    # guest, and modules this VM has no use for (no DRM, EFI or device mapper).
    for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
             modprobe@drm.service modprobe@efi_pstore.service modprobe@dm_mod.service; do
        systemctl --root="$T" --quiet mask "$u"
    done

    # -----------------------------------------------------------------------------------------------------
    # Step 5: kernel, vmlinux, initrd
    # -----------------------------------------------------------------------------------------------------
    say "kernel"
    KVER=$(find "$T/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
    [[ -n $KVER ]] || die "the tree has no /boot/vmlinuz-*: the package list needs a linux-image package (labrun boots the kernel installed in Layer 1)"
    [[ -s $T/boot/initrd.img-$KVER ]] || die "the tree has no /boot/initrd.img-$KVER"
    [[ -d $T/lib/modules/$KVER ]] || die "the tree has no /lib/modules/$KVER"
    echo "$KVER" >"$T/etc/labrun/kernel-version"
    info "kernel $KVER, initrd $(mib "$(fsize "$T/boot/initrd.img-$KVER")")"
    K=$WORK/kernel
    mkdir -p "$K"
    cp "$T/boot/vmlinuz-$KVER" "$K/vmlinuz"
    cp "$T/boot/initrd.img-$KVER" "$K/initrd.img"
    extract_vmlinux "$K/vmlinuz" "$K/vmlinux" \
        || info "no XZ-compressed ELF in vmlinuz: booting vmlinuz (slower under TCG)"

    # -----------------------------------------------------------------------------------------------------
    # Step 6: Layer 1 image (mkfs.ext4 -d: no loop mount)
    # -----------------------------------------------------------------------------------------------------
    used=$(du -sx --block-size=1M "$T" | cut -f1)
    if [[ $SIZE_SETTING == auto ]]; then
        size=$(( used + (used / 2 > 1024 ? used / 2 : 1024) ))
        size=$(( (size + 255) / 256 * 256 ))
        ((size >= MIN_SIZE_MIB)) || size=$MIN_SIZE_MIB
        size=${size}M
    else
        size=$SIZE_SETTING
    fi
    say "Layer 1: debian-rootfs-base.img ($size sparse, $used MiB used)"
    t0=$(date +%s.%N)
    truncate -s "$size" "$LAB/debian-rootfs-base.img.part"
    mkfs.ext4 -q -F -b 4096 -L labroot -E root_owner=0:0 -d "$T" "$LAB/debian-rootfs-base.img.part" \
        || die "mkfs.ext4 -d failed (is $size large enough for $used MiB? set LABRUN_DEBIAN_SIZE)"
    info "mkfs.ext4 -d took $(elapsed "$t0")"

    # -----------------------------------------------------------------------------------------------------
    # Step 7: put it all in place. The golden image goes first (it depends on the old Layer 1), and the
    # stamp last: an interruption in between leaves no golden image, which the next run rebuilds.
    # -----------------------------------------------------------------------------------------------------
    busy=$(images_in_use)
    [[ -z $busy ]] || die "this lab's images are in use by pid $busy (a running VM?): stop it first; nothing was changed"
    OLD_GOLDEN=0
    [[ -e $LAB/debian-rootfs.qcow2 ]] && OLD_GOLDEN=1
    rm -f "$LAB/debian-rootfs.qcow2" "$STAMPS/debian" "$GB/kernel-version"
    cp "$K/vmlinuz" "$GB/vmlinuz.part"; publish "$GB/vmlinuz.part" "$GB/vmlinuz"
    if [[ -e $K/vmlinux ]]; then
        mv "$K/vmlinux" "$GB/vmlinux.part"; publish "$GB/vmlinux.part" "$GB/vmlinux"
    else
        rm -f "$GB/vmlinux"
    fi
    cp "$K/initrd.img" "$GB/initrd.img.part"; publish "$GB/initrd.img.part" "$GB/initrd.img"
    publish "$LAB/debian-rootfs-base.img.part" "$LAB/debian-rootfs-base.img"
    info "(sparse; $(du -k "$LAB/debian-rootfs-base.img" | awk '{printf "%.0f MiB", $1/1024}') on disk)"
    echo "$KVER" >"$GB/kernel-version.part"; mv -f "$GB/kernel-version.part" "$GB/kernel-version"
    echo "$RECIPE $KVER" >"$STAMPS/debian.part"; mv -f "$STAMPS/debian.part" "$STAMPS/debian"
    LAYER1_REBUILT=1
fi

# ---------------------------------------------------------------------------------------------------------
# Step 8: Layer 2 — golden overlay debian-rootfs.qcow2 (relative backing path)
# ---------------------------------------------------------------------------------------------------------
make_golden "$LAB" "$LAYER1_REBUILT" "${OLD_GOLDEN:-0}" build-debian

# ---------------------------------------------------------------------------------------------------------
# Step 9: lab.conf (only when missing: it is the user's file) and the shared folder
# ---------------------------------------------------------------------------------------------------------
mkdir -p "$LAB/shared"
if [[ ! -e $LAB/lab.conf ]]; then
    cat >"$LAB/lab.conf.part" <<'EOF'
# labrun lab: the full Debian bookworm guest (guest/build-debian.sh). Kernel and initrd: guest-build/.
# Root is logged in automatically on the console. Drop "quiet" to watch the kernel and systemd boot.
mem = 1G
append = console=ttyS0 root=/dev/vda quiet
EOF
    mv -f "$LAB/lab.conf.part" "$LAB/lab.conf"
    info "wrote $LAB/lab.conf (mem = 1G)"
else
    info "kept $LAB/lab.conf"
fi

say "done in $(elapsed "$START"): boot it with \`labrun --lab $LAB boot\`"
