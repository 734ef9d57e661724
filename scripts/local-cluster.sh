#!/usr/bin/env bash
# local-cluster.sh: run N hearsay agents (default 3) on loopback, each
# log line prefixed with the agent's name. The agents start one after the
# other, each once it printed "==> hearsay agent running!"; one that exits
# instead, or takes longer than HEARSAY_START_TIMEOUT, stops the others
# and the script exits 1. SIGINT (Ctrl-C) or SIGTERM makes every agent
# leave the cluster gracefully, one after the other, and the script exits
# 0 once all are gone (another signal hurries them: see stop()).
#
#   scripts/local-cluster.sh [N]
#   bin/hearsay members --control 127.0.0.1:7374     (in another terminal)
#
# Environment (defaults in brackets):
#   HEARSAY_BIN                   the binary [./bin/hearsay]
#   HEARSAY_PROFILE               the agents' profile [lan]
#   HEARSAY_CLUSTER_ADDR          the IP every agent binds [127.0.0.1]
#   HEARSAY_CLUSTER_PORT          agent1's gossip port; agent i has
#                                 PORT+i-1 [7946]
#   HEARSAY_CLUSTER_CONTROL_PORT  agent1's control port, likewise [7374]
#   HEARSAY_START_TIMEOUT         seconds an agent may take to start [10]
set -u
BIN=${HEARSAY_BIN:-./bin/hearsay}
N=${1:-3}
PROFILE=${HEARSAY_PROFILE:-lan}
ADDR=${HEARSAY_CLUSTER_ADDR:-127.0.0.1}
PORT=${HEARSAY_CLUSTER_PORT:-7946}
CPORT=${HEARSAY_CLUSTER_CONTROL_PORT:-7374}
START_TIMEOUT=${HEARSAY_START_TIMEOUT:-10}

for v in N PORT CPORT START_TIMEOUT; do
    case ${!v} in
    '' | *[!0-9]*)
        echo "local-cluster: $v must be a number, not '${!v}'" >&2
        exit 2
        ;;
    esac
done
if [ "$N" -lt 1 ] || [ $((PORT + N - 1)) -gt 65535 ] ||
    [ $((CPORT + N - 1)) -gt 65535 ]; then
    echo "local-cluster: $N agents do not fit from ports $PORT/$CPORT" >&2
    exit 2
fi

# host:port, with an IPv6 address in brackets
hostport() {
    case $ADDR in
    *:*) echo "[$ADDR]:$1" ;;
    *) echo "$ADDR:$1" ;;
    esac
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/hearsay-cluster.XXXXXX") || exit 1
pids=()   # the agents
names=()
trap 'rm -rf "$logs"' EXIT

# Wait for every child: the agents, and their prefixers, which end once
# their agent has and its last lines are out. A trapped signal
# interrupts `wait`; wait again.
wait_all() {
    while ! wait; do :; done
}

# Ask the agents to leave (SIGTERM), the last started first, each once
# the one before has gone (its peers still answer, and its leave spreads
# at once), then exit $1 when every child has ended.
stop() {
    # Another signal hurries every agent on: one not asked yet starts to
    # leave, one leaving exits at once.
    trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done' INT TERM
    echo "==> stopping: every agent leaves the cluster"
    local k p
    for ((k = ${#pids[@]} - 1; k >= 0; k--)); do
        p=${pids[k]}
        kill -TERM "$p" 2>/dev/null
        while kill -0 "$p" 2>/dev/null; do wait "$p"; done
    done
    wait_all
    echo "==> all agents stopped"
    exit "$1"
}
trap 'stop 0' INT TERM

# 0 once the agent printed its banner, 1 if it exited, 2 on the timeout.
wait_ready() {
    local pid=$1 log=$2 deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        grep -q '^==> hearsay agent running!' "$log" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$SECONDS" -ge "$deadline" ] && return 2
        sleep 0.1
    done
}

for i in $(seq 1 "$N"); do
    name="agent$i"
    log="$logs/$name.log"
    args=(agent --name "$name" --bind "$(hostport $((PORT + i - 1)))"
          --control "$(hostport $((CPORT + i - 1)))" --profile "$PROFILE")
    # --retry-join: should agent1 be slow to answer, the others try again
    [ "$i" -gt 1 ] && args+=(--retry-join "$(hostport "$PORT")"
                             --retry-interval 1s)
    : >"$log"
    # Each agent in a session of its own: a Ctrl-C (or a signal to the
    # process group) reaches this script only, which then asks every
    # agent to leave, one signal each.
    setsid "$BIN" "${args[@]}" </dev/null >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    names+=("$name")
    # The prefixer ignores the signals, so that it prints the agent's
    # last lines (its leave) and ends with the agent.
    (
        trap '' INT TERM
        tail -n +1 -s 0.2 --pid="$pid" -f "$log" | sed -u "s/^/[$name] /"
    ) &
    prefixer=$!
    wait_ready "$pid" "$log"
    case $? in
    1)
        wait "$pid"
        rc=$?
        wait "$prefixer" # its last line out before ours
        echo "==> $name did not start (exit status $rc): see its" \
            "last line above" >&2
        stop 1
        ;;
    2)
        echo "==> $name did not start within ${START_TIMEOUT}s" >&2
        stop 1
        ;;
    esac
done

last=$((N - 1))
other=$((N > 1 ? 1 : 0)) # agent2, or agent1 alone
cat <<MSG
==> $N agents on $(hostport "$PORT")-$((PORT + last)), control ports $CPORT-$((CPORT + last))
    In another terminal:
      $BIN members --control $(hostport "$CPORT")
      $BIN pause   --control $(hostport $((CPORT + other)))    (stop ${names[$other]}'s heartbeat)
      $BIN resume  --control $(hostport $((CPORT + other)))
    Press Ctrl-C (or send SIGTERM) to stop them all.
MSG
wait_all
echo "==> all agents stopped"
