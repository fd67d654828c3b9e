#!/usr/bin/env bash
# fetch-test-kernel.sh — a kernel the lab was not built with, for the tests of `--kernel --modules`:
# Debian's cloud kernel (linux-image-6.1.0-N-cloud-amd64, about 26 MB; no 9p, virtio and ext4 as
# modules or built in), unpacked as a `make modules_install` would leave it.
#
# Usage: guest/fetch-test-kernel.sh LABDIR
# Makes LABDIR/guest-build/test-kernel/root/boot/vmlinuz-RELEASE and .../root/lib/modules/RELEASE (with
# the modules.dep that the .deb lacks, by kmod's depmod, else busybox's) and LABDIR/guest-build/test-kernel/release.
# The .deb is kept in LABDIR/guest-build/test-kernel/cache; a second run downloads nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() { printf 'fetch-test-kernel: error: %s\n' "$*" >&2; exit 1; }
(($# == 1)) || { echo "usage: $0 LABDIR" >&2; exit 2; }
TK=$(cd "$1" && pwd -P)/guest-build/test-kernel
mkdir -p "$TK/cache"
exec 9>"$TK/.lock"
flock 9

# kmod's depmod also writes the binary indexes that kmod's modprobe (the Debian guest's) needs;
# busybox's writes modules.dep only, enough for the tiny guest's busybox modprobe.
depmod=$(command -v depmod || command -v /sbin/depmod || true)
if [[ -s $TK/release && -f $TK/root/lib/modules/$(cat "$TK/release")/modules.dep ]]; then
    release=$(cat "$TK/release")
    if [[ -n $depmod && ! -f $TK/root/lib/modules/$release/modules.dep.bin ]]; then
        "$depmod" -b "$TK/root" "$release" || die "depmod failed on $TK/root"
    fi
    info "test kernel: $release (cached)"; exit 0
fi
deb=$(find "$TK/cache" -maxdepth 1 -name 'linux-image-*-cloud-amd64_*_amd64.deb' | sort -V | tail -n 1)
if [[ -z $deb ]] || ! dpkg-deb --info "$deb" >/dev/null 2>&1; then
    list() { apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1; }
    pkg=$(list)
    if [[ -z $pkg ]]; then apt-get update -qq >&2 || true; pkg=$(list); fi
    [[ -n $pkg ]] || die "apt-cache finds no linux-image-6.1.0-N-cloud-amd64 package"
    rm -rf "$TK/dl"; mkdir -p "$TK/dl"
    (cd "$TK/dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") || die "apt-get download $pkg failed"
    deb=$(find "$TK/dl" -maxdepth 1 -name '*.deb' | head -n 1)
    [[ -n $deb ]] && dpkg-deb --info "$deb" >/dev/null || die "download of $pkg gave no valid .deb"
    mv -f "$deb" "$TK/cache/"; rm -rf "$TK/dl"
    deb=$TK/cache/$(basename "$deb")
    info "downloaded $(basename "$deb") ($(mib "$(fsize "$deb")"))"
fi
rm -rf "$TK/root.part"
dpkg-deb -x "$deb" "$TK/root.part"
vmlinuz=$(find "$TK/root.part/boot" -name 'vmlinuz-*' | head -n 1)
[[ -n $vmlinuz ]] || die "$(basename "$deb") has no boot/vmlinuz-*"
release=${vmlinuz##*/vmlinuz-}
if [[ -n $depmod ]]; then "$depmod" -b "$TK/root.part" "$release"; else busybox depmod -b "$TK/root.part" "$release"; fi
rm -rf "$TK/root"; mv "$TK/root.part" "$TK/root"
echo "$release" >"$TK/release"
info "test kernel: $release in $TK/root"
