#!/bin/sh
# check-leftovers.sh: fail (and clean up) if a spec left an agent running.
# Specs start agents on 127.0.1.x-127.0.99.x; nothing else is touched.
left=$(pgrep -af '(hearsay|serf) agent' | grep -E '127\.0\.[1-9][0-9]?\.' || true)
if [ -n "$left" ]; then
    echo "check-leftovers: processes left behind by the specs:" >&2
    echo "$left" >&2
    echo "$left" | awk '{print $1}' | xargs -r kill -9 2>/dev/null
    exit 1
fi
echo "check-leftovers: no process left behind"
