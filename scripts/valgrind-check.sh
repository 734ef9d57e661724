#!/bin/sh
# valgrind-check.sh: a real agent's life under valgrind's memcheck.
#
# Two agents with hook scripts, data dirs and encryption on loopback
# (127.0.11.1 and 127.0.11.2): b joins a, a kv put on a reaches b, a
# second key is installed across the cluster, then SIGTERM makes b and
# then a leave gracefully. Fails on any block definitely or
# indirectly lost, any invalid read or write or use of uninitialised
# memory, or an agent that does not exit 0. Logs: build/valgrind/.
set -eu
cd "$(dirname "$0")/.."
BIN=${HEARSAY_BIN:-./bin/hearsay}
out=build/valgrind
rm -rf "$out"
mkdir -p "$out"

VG="valgrind --error-exitcode=97 --leak-check=full \
--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
--suppressions=scripts/valgrind.supp --num-callers=30"
A=127.0.11.1
B=127.0.11.2
KEY1=0HERaMvvZVgGs0nUX0Qa0daSFDM8d8sSk6vQQfT8Da8=
KEY2=sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs=
pids=""

cleanup() {
    for p in $pids; do
        kill -9 "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

fail() {
    echo "valgrind-check: $*" >&2
    for f in "$out"/*.vg "$out"/*.err; do
        [ -s "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
    done
    exit 1
}

# Run `$BIN ARGS` until it succeeds, for at most $1 tenths of a second.
retry() {
    n=$1
    shift
    while ! "$BIN" "$@" >"$out/last.out" 2>&1; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.1
    done
}

agent() { # name ip [flags...]
    name=$1 ip=$2
    shift 2
    # shellcheck disable=SC2086
    $VG --log-file="$out/$name.vg" "$BIN" agent --name "$name" \
        --bind "$ip:7946" --control "$ip:7374" --log-level info \
        --data-dir "$out/$name-data" --script examples/first-hook.lua \
        --script examples/config-center.lua --encrypt "$KEY1" "$@" \
        2>"$out/$name.err" &
    last=$!
    pids="$pids $last"
}

# Wait for an agent's exit and check its status and its valgrind report.
finish() { # name pid
    p=$2
    n=300
    while kill -0 "$p" 2>/dev/null; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || fail "$1 did not exit after SIGTERM"
        sleep 0.1
    done
    rc=0
    wait "$p" || rc=$?
    [ "$rc" -eq 97 ] && fail "$1: valgrind found errors (see $out/$1.vg)"
    [ "$rc" -eq 0 ] || fail "$1 exited with status $rc"
    grep -q "ERROR SUMMARY: 0 errors" "$out/$1.vg" ||
        fail "$1: valgrind found errors (see $out/$1.vg)"
}

agent vga "$A"
pid_a=$last
retry 200 members --control "$A:7374" || fail "agent vga did not start"
agent vgb "$B" --join "$A:7946"
pid_b=$last
n=200
until "$BIN" members --control "$A:7374" --status alive 2>/dev/null |
    grep -q vgb; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || fail "vgb did not join vga"
    sleep 0.1
done

doc='{"name": "web", "version": 3, "replicas": 2}'
$VG --log-file="$out/cli.vg" "$BIN" kv put --control "$A:7374" \
    config/web "$doc" >/dev/null || fail "kv put failed (see $out/cli.vg)"
retry 200 kv get --control "$B:7374" config/web ||
    fail "the kv put did not reach vgb"
"$BIN" keys --control "$A:7374" --install "$KEY2" >/dev/null ||
    fail "keys --install failed"
"$BIN" keys --control "$B:7374" --list >"$out/keys.out" ||
    fail "keys --list failed"
grep -q "$KEY2" "$out/keys.out" || fail "vgb does not list the new key"

kill -TERM "$pid_b"
finish vgb "$pid_b"
kill -TERM "$pid_a"
finish vga "$pid_a"
pids=""
echo "valgrind-check: two agents joined, shared a value and a key, and" \
    "left; no leaks, no invalid accesses"
