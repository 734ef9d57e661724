#!/bin/sh
# check-leftovers.sh: fail (and clean up) if a spec left an agent running.
# Specs start agents on 127.0.1.x-127.0.99.x, under run-specs.sh, which
# marks them with HEARSAY_SPEC_ROOT (this checkout): another checkout's
# agents on the same machine are not ours to judge or to kill.
root=$(cd "$(dirname "$0")/.." && pwd)
left=""
for pid in $(pgrep -f '(hearsay|serf) agent'); do
    line=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || continue
    echo "$line" | grep -qE '127\.0\.[1-9][0-9]?\.' || continue
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null |
        grep -qxF "HEARSAY_SPEC_ROOT=$root" || continue
    left="$left$pid $line
"
done
if [ -n "$left" ]; then
    echo "check-leftovers: processes left behind by the specs:" >&2
    printf '%s' "$left" >&2
    printf '%s' "$left" | awk '{print $1}' | xargs -r kill -9 2>/dev/null
    exit 1
fi
echo "check-leftovers: no process left behind"
