#!/bin/sh
# fuzz.sh: run libFuzzer targets one after the other and print a table.
#
#   scripts/fuzz.sh SECONDS TARGET...
#
# Each target (build/fuzz/fuzz_TARGET, from `make fuzz-build`) first runs
# every input of its committed corpus spec/fuzz/corpus/TARGET, then fuzzes
# for the rest of SECONDS. New inputs go to build/fuzz/corpus/TARGET (the
# committed corpus is only read); crashes, leaks and timeouts to
# build/fuzz/artifacts/TARGET/. Logs are in build/fuzz/logs/TARGET.log.
# FUZZ_FRESH=1 empties build/fuzz/corpus/TARGET first (a short smoke run
# then starts from the committed seeds alone); FUZZ_NICE=1 runs the
# targets under `nice -n 19`; FUZZ_ARGS adds libFuzzer flags. Exits 1 if
# any target found anything.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS TARGET..." >&2
    exit 2
fi
secs=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/fuzz
mkdir -p "$out/logs"
nice=""
[ "${FUZZ_NICE:-0}" = 1 ] && nice="nice -n 19"

# Leaks are errors; UBSan stops at the first report with a stack.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

# The number after `key:` in a libFuzzer status line.
field() {
    echo "$1" | sed -n "s/.* $2: *\\([0-9][0-9]*[a-zA-Z]*\\).*/\\1/p"
}

table="target|execs|exec/s|cov|ft|corpus (n/size)|crashes"
found=0
for t in "$@"; do
    bin=$out/fuzz_$t
    seeds=$root/spec/fuzz/corpus/$t
    work=$out/corpus/$t
    art=$out/artifacts/$t
    log=$out/logs/$t.log
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing (make fuzz-build)" >&2
        exit 2
    fi
    [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$work"
    mkdir -p "$work" "$art" "$seeds"
    before=$(find "$art" -type f | wc -l)
    echo "fuzz: $t for ${secs}s"
    rc=0
    # shellcheck disable=SC2086
    $nice "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" \
        ${FUZZ_ARGS:-} "$work" "$seeds" >"$log" 2>&1 || rc=$?
    after=$(find "$art" -type f | wc -l)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # a sanitizer report outside libFuzzer's own artifacts
    fi
    status=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
        tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" |
        tail -n 1)
    cov=$(field "$status" cov)
    ft=$(field "$status" ft)
    corp=$(echo "$status" | sed -n 's/.* corp: *\([^ ]*\).*/\1/p')
    table="$table
$t|${execs:-?}|${speed:-?}|${cov:-?}|${ft:-?}|${corp:-?}|$crashes"
    if [ "$crashes" -ne 0 ]; then
        found=1
        echo "fuzz: $t found something (exit $rc); see $log and $art/" >&2
        grep -E 'ERROR|SUMMARY|runtime error|fuzz:' "$log" | head -n 5 >&2
    fi
done

echo "$table" | awk -F'|' '{ printf "%-17s %10s %7s %6s %6s %16s %8s\n",
    $1, $2, $3, $4, $5, $6, $7 }'
exit $found
