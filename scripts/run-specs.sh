#!/bin/sh
# run-specs.sh: every busted spec. The specs on real sockets (tagged net)
# mostly wait, each file on loopback addresses of its own, so their files
# run side by side (JOBS at a time, default 4), beside one process for the
# rest (unit and simulation specs), which mostly computes. Prints each
# report when all are done; fails if any does. Extra arguments go to busted.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM
jobs=${JOBS:-4}
# The agents' logs, pid files and data dirs, removed at the end.
HEARSAY_SPEC_TMP="$out/tmp"
export HEARSAY_SPEC_TMP
# Every process the specs start inherits it: check-leftovers.sh looks for
# this checkout's processes only, not another checkout's on the machine.
HEARSAY_SPEC_ROOT=$(pwd)
export HEARSAY_SPEC_ROOT

busted "$@" --exclude-tags=net,slow > "$out/0-local" 2>&1 &
local_pid=$!

# One busted per file with net specs; a file's status goes to its .rc.
grep -l '#net' spec/*_spec.lua | while read -r f; do
    echo "$f"
done | xargs -P "$jobs" -I{} sh -c '
    name=$(basename "{}" .lua)
    busted "$@" --tags=net --exclude-tags=slow "{}" > "'"$out"'/net-$name" 2>&1
    echo $? > "'"$out"'/net-$name.rc"
' sh "$@"

wait $local_pid
status=$?

echo "== specs in one process (unit, simulation)"
cat "$out/0-local"
for f in "$out"/net-*; do
    case "$f" in *.rc) continue ;; esac
    echo "== $(basename "$f" | sed 's/^net-//') (on loopback)"
    cat "$f"
    rc=$(cat "$f.rc" 2>/dev/null || echo 1)
    [ "$rc" -eq 0 ] || status=1
done
exit "$status"
