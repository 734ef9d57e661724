#!/bin/sh
# run-specs.sh: every busted spec, in two groups at once: the specs on
# real sockets (tagged net), which mostly wait, and the rest (unit and
# simulation specs), which mostly compute. Prints each group's report when
# both are done; fails if either does. Extra arguments go to busted.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM
busted "$@" --exclude-tags=net,slow > "$out/local" 2>&1 &
a=$!
busted "$@" --tags=net --exclude-tags=slow > "$out/net" 2>&1 &
b=$!
wait $a
ra=$?
wait $b
rb=$?
echo "== specs in one process (unit, simulation)"
cat "$out/local"
echo "== specs on loopback (agents, serf)"
cat "$out/net"
[ "$ra" -eq 0 ] && [ "$rb" -eq 0 ]
