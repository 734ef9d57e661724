#!/usr/bin/env bash
# local-cluster.sh: run N hearsay agents (default 3) on loopback, each
# log line prefixed with the agent's name. Ctrl-C makes every agent leave
# the cluster gracefully, then exits.
#
#   scripts/local-cluster.sh [N]
#   bin/hearsay members --control 127.0.0.1:7374     (in another terminal)
set -u
BIN=${HEARSAY_BIN:-./bin/hearsay}
N=${1:-3}
PROFILE=${HEARSAY_PROFILE:-lan}
pids=()

stop() {
    trap - INT TERM
    echo "==> stopping: every agent leaves the cluster"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait
    echo "==> all agents stopped"
    exit 0
}
trap stop INT TERM

for i in $(seq 1 "$N"); do
    name="agent$i"
    port=$((7945 + i))
    control=$((7373 + i))
    args=(agent --name "$name" --bind "127.0.0.1:$port"
          --control "127.0.0.1:$control" --profile "$PROFILE")
    # --retry-join: agent1 may not listen yet when the others start
    [ "$i" -gt 1 ] && args+=(--retry-join 127.0.0.1:7946 --retry-interval 1s)
    # Each agent in its own session: Ctrl-C reaches this script only,
    # which then asks every agent to leave (one signal each).
    setsid "$BIN" "${args[@]}" > >(sed -u "s/^/[$name] /") 2>&1 &
    pids+=($!)
done

sleep 1
cat <<MSG
==> $N agents on 127.0.0.1:7946-$((7945 + N)), control ports 7374-$((7373 + N))
    In another terminal:
      $BIN members --control 127.0.0.1:7374
      $BIN pause   --control 127.0.0.1:7375    (stop agent2's heartbeat)
      $BIN resume  --control 127.0.0.1:7375
    Press Ctrl-C to stop them all.
MSG
wait
