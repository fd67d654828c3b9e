#!/usr/bin/env bash
# Long fuzzing runs of labrun's parsers (issue 7): the escape parser, the QMP decoder and
# client, the control protocol decoder and server, and the guest agent's reply parser. It runs
# the seeded property tests of Tests/LabrunKitTests/FuzzTests.swift over and over with fresh
# seeds and many iterations, until the time is up or a run fails; a failure prints the
# command line that reproduces it.
#
#   scripts/fuzz.sh                 10 minutes, 5000 iterations a run
#   FUZZ_SECONDS=60 scripts/fuzz.sh
#   LABRUN_FUZZ_SEED=123 LABRUN_FUZZ_ITERATIONS=20000 scripts/fuzz.sh    one run with that seed
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-600}
iterations=${LABRUN_FUZZ_ITERATIONS:-5000}
swift=${SWIFT:-swift}

"$swift" build --build-tests >/dev/null
run() {
    local seed=$1 log
    log=$(mktemp)
    echo "==> fuzz: seed $seed, $iterations iterations"
    if ! LABRUN_FUZZ_SEED=$seed LABRUN_FUZZ_ITERATIONS=$iterations \
         "$swift" test --skip-build --filter 'LabrunKitTests\.Fuzz' >"$log" 2>&1; then
        grep -E 'recorded an issue|failed|error|Fatal|signal' "$log" | head -40 >&2 || tail -40 "$log" >&2
        echo "fuzz: FAILED; reproduce with: LABRUN_FUZZ_SEED=$seed LABRUN_FUZZ_ITERATIONS=$iterations swift test --filter 'LabrunKitTests\\.Fuzz'" >&2
        rm -f "$log"
        exit 1
    fi
    grep -E 'Test run with' "$log" | tail -1 || true
    rm -f "$log"
}

if [ -n "${LABRUN_FUZZ_SEED:-}" ]; then
    run "$LABRUN_FUZZ_SEED"
    exit 0
fi
deadline=$(( $(date +%s) + seconds ))
runs=0
while :; do
    run "$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')"
    runs=$((runs + 1))
    [ "$(date +%s)" -lt "$deadline" ] || break
done
echo "fuzz: $runs runs of $iterations iterations each, no failures"
