# Shared by build-tiny.sh and build-debian.sh (sourced, not run): output helpers and the
# golden-image step. Part of both builders' recipe hash.

say()  { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
mib()  { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
fsize() { stat -c %s "$1"; }
# publish TMP FINAL: the last step of every artefact (an interrupted build leaves only TMP).
publish() { mv -f "$1" "$2"; info "wrote $2 ($(mib "$(fsize "$2")"))"; }

# make_golden LAB LAYER1_REBUILT OLD_GOLDEN PROGRAM
# Layer 2: the golden overlay debian-rootfs.qcow2 on Layer 1, with a relative backing path (the
# lab can move). Made when missing or when Layer 1 was rebuilt; then a runtime layer made on the
# previous golden image no longer matches it and is moved aside, snapshots and all.
make_golden() {
    local lab=$1 rebuilt=$2 old=$3 prog=$4 aside
    if ! ((rebuilt)) && [[ -s $lab/debian-rootfs.qcow2 ]]; then
        say "Layer 2: up to date"
        return
    fi
    if ((old)); then
        say "Layer 2: Layer 1 was rebuilt, so the golden image debian-rootfs.qcow2 is recreated (empty)"
    else
        say "Layer 2: debian-rootfs.qcow2"
    fi
    (cd "$lab" && qemu-img create -q -f qcow2 -F raw -b debian-rootfs-base.img debian-rootfs.qcow2.part \
        && mv -f debian-rootfs.qcow2.part debian-rootfs.qcow2)
    info "wrote $lab/debian-rootfs.qcow2 (backing file: debian-rootfs-base.img)"
    if [[ -e $lab/debian-runtime.qcow2 ]]; then
        aside=$lab/debian-runtime.qcow2.old-golden-$(date +%Y%m%d-%H%M%S)
        mv -f "$lab/debian-runtime.qcow2" "$aside"
        echo "$prog: the runtime layer was made on the previous golden image: moved to $aside" >&2
    fi
}

# extract_vmlinux VMLINUZ OUT: Debian's bzImage carries the kernel as one XZ stream. Find the XZ
# magic FD 37 7A 58 5A 00, decompress that stream alone (--single-stream ignores what follows:
# the size trailer and the rest of the bzImage) and keep the first candidate that is a 64-bit
# ELF (booted with -kernel through its PVH entry, it halves boot time under TCG). Fails when none is.
extract_vmlinux() {
    local src=$1 out=$2 off
    for off in $(LC_ALL=C grep -obUaP '\xFD\x37\x7A\x58\x5A\x00' "$src" | cut -d: -f1); do
        # (tail gets SIGPIPE when xz stops after the stream: hence "|| :".)
        if { tail -c +"$((off + 1))" "$src" || :; } | xz -dc --single-stream >"$out" 2>/dev/null \
           && [[ $(head -c 5 "$out" | od -An -tx1 | tr -d ' \n') == 7f454c4602 ]]; then
            info "XZ stream at byte $off -> 64-bit ELF"
            return 0
        fi
    done
    rm -f "$out"
    return 1
}
