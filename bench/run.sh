#!/usr/bin/env bash
# `make bench`: labrun's cost against plain QEMU and bare ptys (issue 6). Writes
# bench/results.md and bench/results.json. Needs the release build (LABRUN_BIN overrides
# .build/release/labrun) and the tiny guest (`make guest`). TCG always: KVM is not trusted here.
# Takes about 15 minutes on 2 cores (a few more with the full Debian guest built in debian/; the
# stand-in throughput figure takes 20 more while labrun reads its console at ~1 MiB/s). Extra
# arguments go to the helper (e.g. --only boot,cli; figures: throughput, guest-throughput, keystroke,
# noqmp, boot, suspend, checkpoint, checkpoint-debian, reset, makerun, live, offline, cli; and
# --runs FIGURE=N,... to change how many runs a figure takes). checkpoint-debian
# is skipped unless `make rootfs` has built debian/; makerun runs `make reset`/`make run` in this
# checkout with this labrun (LABRUN=...) on a throwaway lab (LABRUN_LAB=...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
labrun=${LABRUN_BIN:-$root/.build/release/labrun}
case $labrun in /*) ;; *) labrun=$PWD/$labrun ;; esac

# Debian's python3 first (stdlib only), else whatever python3 is on PATH.
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=$(command -v python3 || true); fi
fail() { echo "bench: $*" >&2; exit 1; }
[ -n "$py" ] || fail "python3 not found (apt-get install python3)"
[ -x "$labrun" ] || fail "no labrun binary at $labrun: run \`make build\` (or set LABRUN_BIN)"
# `make build` links the Swift runtime statically; a plain `swift build -c release` does not, and
# every CLI figure then carries about 3 ms more of dynamic loading.
if command -v ldd >/dev/null && ldd "$labrun" 2>/dev/null | grep -q libswiftCore; then
    echo "bench: note: $labrun loads the Swift runtime dynamically (plain swift build): CLI figures come out ~3 ms slower than with \`make build\`" >&2
fi
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 not found: apt-get install qemu-system-x86"
command -v qemu-img >/dev/null || fail "qemu-img not found: apt-get install qemu-utils"
[ -f "$root/guest-build/vmlinux" ] && [ -f "$root/debian-rootfs.qcow2" ] || fail "no tiny guest in $root: run \`make guest\`"

work=$(mktemp -d /tmp/benchlab-XXXXXX)
helper=

# End exactly the processes the helper started (listed as "pid starttime" in $work/pids, so a
# recycled pid is never hit), then remove the throwaway labs.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$helper" ] && kill -0 "$helper" 2>/dev/null; then
        kill -TERM "$helper" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$helper" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$helper" 2>/dev/null || true
    fi
    if [ -f "$work/pids" ]; then
        local pid st now left
        for sig in TERM KILL; do
            left=0
            while read -r pid st; do
                now=$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null || true)
                if [ -n "$now" ] && [ "$now" = "$st" ]; then
                    kill "-$sig" "$pid" 2>/dev/null && left=1
                fi
            done < "$work/pids"
            [ "$left" = 1 ] && [ "$sig" = TERM ] && sleep 2
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

start=$(date +%s)
echo "bench: labrun $labrun; work directory $work"

# A private copy of the built guest (Layer 1 + golden Layer 2 + kernel + initrd), taken under a
# shared lock on the guest build's lock: the benchmark's labs are then immune to a rebuild of the
# guest meanwhile, and to other VMs on this machine that use the repo's golden image (labrun
# refuses to boot or snapshot offline while any layer of the chain is locked by another QEMU).
golden=$work/golden
mkdir -p "$golden/guest-build"
copy_guest() {
    cp --sparse=always "$root/debian-rootfs-base.img" "$root/debian-rootfs.qcow2" "$golden/"
    cp "$root/guest-build/vmlinux" "$root/guest-build/initrd.img" "$golden/guest-build/"
}
if [ -e "$root/guest-build/.build.lock" ] && command -v flock >/dev/null; then
    exec 8<"$root/guest-build/.build.lock"
    flock -s -w 600 8 || fail "the guest is being rebuilt (guest-build/.build.lock held for 10 min)"
    copy_guest
    exec 8<&-
else
    copy_guest
fi
[ "$(qemu-img info --output=json "$golden/debian-rootfs.qcow2" | "$py" -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename",""))')" = debian-rootfs-base.img ] \
    || fail "$root/debian-rootfs.qcow2 is not backed by debian-rootfs-base.img (relative): rebuild with \`make guest\`"

LABRUN_ACCEL=tcg "$py" "$here/labbench.py" --root "$root" --golden "$golden" --labrun "$labrun" --work "$work" --out "$here" "$@" &
helper=$!
wait "$helper"
helper=
echo "bench: done in $(( $(date +%s) - start )) s; wrote $here/results.md, results.json and results.machine.json"
