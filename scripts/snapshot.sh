#!/bin/sh
# Thin wrapper kept for old lab scripts: runs labrun's snapshot commands.
#   ./scripts/snapshot.sh create|restore|delete NAME
#   ./scripts/snapshot.sh list [--json]
#   ./scripts/snapshot.sh info [--json]
# The lab is the one labrun finds (--lab is not needed here: LABRUN_LAB, or this checkout).
# NAME is handed to labrun as one argument: never evaluated, never passed through a shell.
# labrun's own messages and exit codes come through unchanged; usage errors exit 2.
set -eu

usage() {
    echo "usage: $0 create|restore|delete NAME | list [--json] | info [--json]" >&2
    exit 2
}

here=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
if [ -n "${LABRUN_BIN:-}" ]; then
    if [ ! -x "$LABRUN_BIN" ]; then
        echo "snapshot.sh: LABRUN_BIN=$LABRUN_BIN is not an executable; unset it, or run \`make build\` first" >&2
        exit 1
    fi
    labrun=$LABRUN_BIN
elif [ -x "$here/.build/release/labrun" ]; then
    labrun=$here/.build/release/labrun
elif [ -x "$here/.build/debug/labrun" ]; then
    labrun=$here/.build/debug/labrun
elif command -v labrun >/dev/null 2>&1; then
    labrun=labrun
else
    echo "snapshot.sh: labrun is not built: run \`make build\` first" >&2
    exit 1
fi

[ $# -ge 1 ] || usage
verb=$1
shift
case $verb in
    create|restore|delete)
        [ $# -eq 1 ] && [ -n "$1" ] || usage
        # `--` keeps a name that starts with '-' a name (labrun then refuses it as one).
        exec "$labrun" snapshot "$verb" -- "$1"
        ;;
    list)
        [ $# -eq 0 ] || { [ $# -eq 1 ] && [ "$1" = "--json" ]; } || usage
        exec "$labrun" snapshot list "$@"
        ;;
    info)
        [ $# -eq 0 ] || { [ $# -eq 1 ] && [ "$1" = "--json" ]; } || usage
        exec "$labrun" info "$@"
        ;;
    *)
        usage
        ;;
esac
