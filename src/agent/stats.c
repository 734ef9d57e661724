/* stats.c: every number of a running agent, collected once for
 * `hearsay stats` and the Prometheus endpoint (see stats.h). */
#include "agent/stats.h"

#include <stddef.h>

#include "agent/agent.h"
#include "agent/wal.h"
#include "agent/watchdog.h"
#include "core/metadata.h"
#include "core/node.h"
#include "io/transport.h"
#include "lua/host.h"

/* ===== The metrics ===== */

#define COUNTER(name, help) \
    (&(const struct stats_metric){name, STATS_COUNTER, NULL, help})
#define GAUGE(name, help) \
    (&(const struct stats_metric){name, STATS_GAUGE, NULL, help})

/* A plain counter of a stats struct: its JSON key, where it lies, and
 * its metric; `label` is the value of the metric's label, if it has one.
 */
struct field {
    const char *key;
    size_t off;
    const struct stats_metric *metric;
    const char *label;
};

#define NS(f) offsetof(struct node_stats, f)

static const struct field node_fields[] = {
    {"packets_in", NS(packets_in),
     COUNTER("packets_received_total", "Packets received, before any check."),
     NULL},
    {"packets_out", NS(packets_out),
     COUNTER("packets_sent_total", "Packets sent."), NULL},
    {"bytes_in", NS(bytes_in),
     COUNTER("packets_received_bytes_total", "Bytes of the packets received."),
     NULL},
    {"bytes_out", NS(bytes_out),
     COUNTER("packets_sent_bytes_total", "Bytes of the packets sent."), NULL},
    {"send_errors", NS(send_errors),
     COUNTER("send_errors_total", "Packets the transport failed to send."),
     NULL},
    {"probes", NS(probes),
     COUNTER("probes_total", "Probes of other members (SWIM's ping)."), NULL},
    {"probes_failed", NS(probes_failed),
     COUNTER("probes_failed_total",
             "Probes that got no ack in time: direct, indirect or over "
             "TCP."),
     NULL},
    {"indirect_probes", NS(indirect_probes),
     COUNTER("indirect_probes_total",
             "Requests to other members to probe a member that missed its "
             "ack."),
     NULL},
    {"tcp_pings", NS(tcp_pings),
     COUNTER("tcp_pings_total", "Fallback pings over TCP after a missed ack."),
     NULL},
    {"tcp_ping_rescues", NS(tcp_ping_rescues),
     COUNTER("tcp_ping_rescues_total",
             "Probes that only the TCP fallback ping answered."),
     NULL},
    {"nacks_received", NS(nacks_received),
     COUNTER("nacks_received_total",
             "Nacks from members asked to probe indirectly."),
     NULL},
    {"suspicions", NS(suspicions),
     COUNTER("suspicions_total",
             "Members this node suspected after a failed probe."),
     NULL},
    {"refutations", NS(refutations),
     COUNTER("refutations_total",
             "Suspicions or deaths of this node that it refuted."),
     NULL},
    {"deaths", NS(deaths),
     COUNTER("deaths_total", "Members declared dead (not those that left)."),
     NULL},
    {"conflicts", NS(conflicts),
     COUNTER("name_conflicts_total",
             "Claims of a member's name by another address (the first of "
             "each name is logged)."),
     NULL},
    {"push_pulls_out", NS(push_pulls_out),
     COUNTER("push_pulls_started_total",
             "Full state syncs (push/pull) this node started."),
     NULL},
    {"push_pulls_in", NS(push_pulls_in),
     COUNTER("push_pulls_served_total",
             "Full state syncs (push/pull) other nodes started with this "
             "one."),
     NULL},
    {"push_pull_errors", NS(push_pull_errors),
     COUNTER("push_pull_errors_total", "Full state syncs that failed."), NULL},
    {"streams_in", NS(streams_in),
     COUNTER("streams_accepted_total", "TCP streams other nodes opened."),
     NULL},
    {"streams_out", NS(streams_out),
     COUNTER("streams_opened_total", "TCP streams this node opened."), NULL},
    {"broadcasts_queued", NS(broadcasts_queued),
     COUNTER("broadcasts_queued_total", "Messages queued for gossip."), NULL},
    {"user_messages_in", NS(user_messages_in),
     COUNTER("user_messages_received_total",
             "User messages delivered to the hooks."),
     NULL},
    {"user_messages_out", NS(user_messages_out),
     COUNTER("user_messages_sent_total", "User messages sent to members."),
     NULL},
    {"members_refused", NS(members_refused),
     COUNTER("members_refused_total",
             "Alive messages the allow_member hook refused (the first of "
             "each member is logged)."),
     NULL},
    {"rumors_duplicate", NS(rumors_duplicate),
     COUNTER("rumors_duplicate_total",
             "Gossiped user messages heard again, and not delivered again."),
     NULL},
};

/* Messages by type; the bytes are each message's encoded size, and a
 * wrapper (compound, compress, has-crc, encrypt) counts all it wraps. */
static const struct stats_metric msgs_in = {
    "messages_received_total", STATS_COUNTER, "type",
    "Messages received, by type (a wrapper and each message in it count)."};
static const struct stats_metric msgs_out = {
    "messages_sent_total", STATS_COUNTER, "type",
    "Messages sent, by type (a wrapper and each message in it count)."};
static const struct stats_metric msg_bytes_in = {
    "messages_received_bytes_total", STATS_COUNTER, "type",
    "Bytes of the messages received, by type, as encoded."};
static const struct stats_metric msg_bytes_out = {
    "messages_sent_bytes_total", STATS_COUNTER, "type",
    "Bytes of the messages sent, by type, as encoded."};
static const struct stats_metric dropped = {
    "dropped_total", STATS_COUNTER, "reason",
    "Packets and streams dropped, by reason."};

static const struct stats_metric members = {"members", STATS_GAUGE, "state",
                                            "Members known, by state."};

#define LS(f) offsetof(struct lnode_stats, f)

static const struct field hook_fields[] = {
    {"calls", LS(calls),
     COUNTER("hook_calls_total", "Calls of the scripts' hooks."), NULL},
    {"errors", LS(errors),
     COUNTER("hook_errors_total",
             "Hook calls that failed (the documented default applied)."),
     NULL},
    {"budget_stops", LS(budget_stops),
     COUNTER("hook_budget_stops_total",
             "Hook calls stopped for running past script_budget."),
     NULL},
    {"memory_errors", LS(memory_errors),
     COUNTER("hook_memory_errors_total",
             "Hook calls that went over script_memory."),
     NULL},
};

#define MS(f) offsetof(struct meta_stats, f)

static const struct stats_metric meta_writes = {
    "metadata_writes_total", STATS_COUNTER, "origin",
    "Writes to the metadata store taken, made here (local) or received "
    "(remote)."};
static const struct stats_metric meta_refused = {
    "metadata_writes_refused_total", STATS_COUNTER, "origin",
    "Writes to the metadata store the validate_metadata hook refused."};

static const struct field meta_fields[] = {
    {"writes_local", MS(writes_local), &meta_writes, "local"},
    {"writes_remote", MS(writes_remote), &meta_writes, "remote"},
    {"refused_local", MS(refused_local), &meta_refused, "local"},
    {"refused_remote", MS(refused_remote), &meta_refused, "remote"},
    {"refused_future", MS(refused_future),
     COUNTER("metadata_writes_deferred_total",
             "Received writes put off for a version beyond "
             "metadata_max_skew."),
     NULL},
    {"fetches", MS(fetches),
     COUNTER("metadata_fetches_total",
             "Values too large to gossip, fetched over a stream."),
     NULL},
    {"fetch_errors", MS(fetch_errors),
     COUNTER("metadata_fetch_errors_total", "Fetches that failed."), NULL},
    {"sync_streams", MS(sync_streams),
     COUNTER("metadata_sync_streams_total",
             "Streams that synced the entries of differing buckets."),
     NULL},
    {"sync_bytes_out", MS(sync_bytes_out),
     COUNTER("metadata_sync_sent_bytes_total",
             "Bytes of metadata entries sent in syncs and fetches."),
     NULL},
    {"sync_bytes_in", MS(sync_bytes_in),
     COUNTER("metadata_sync_received_bytes_total",
             "Bytes of metadata entries received in syncs and fetches."),
     NULL},
    {"digest_bytes_out", MS(digest_bytes_out),
     COUNTER("metadata_digest_sent_bytes_total",
             "Bytes of store digests sent with push/pulls."),
     NULL},
    {"digest_bytes_in", MS(digest_bytes_in),
     COUNTER("metadata_digest_received_bytes_total",
             "Bytes of store digests received with push/pulls."),
     NULL},
    {"tombstones_collected", MS(tombstones_collected),
     COUNTER("metadata_tombstones_collected_total",
             "Deleted keys forgotten after metadata_tombstone_ttl."),
     NULL},
    {"refused_horizon", MS(refused_horizon),
     COUNTER("metadata_writes_behind_horizon_total",
             "Received writes of keys deleted and forgotten here (at or "
             "below the tombstone horizon), refused."),
     NULL},
    {"dropped_horizon", MS(dropped_horizon),
     COUNTER("metadata_keys_dropped_total",
             "Keys forgotten because a peer whose tombstone horizon covers "
             "them lacks them (deleted there)."),
     NULL},
};

#define TS(f) offsetof(struct transport_stats, f)

static const struct field transport_fields[] = {
    {"udp_recv_errors", TS(udp_recv_errors),
     COUNTER("transport_udp_receive_errors_total",
             "Errors reading the UDP socket."),
     NULL},
    {"udp_send_errors", TS(udp_send_errors),
     COUNTER("transport_udp_send_errors_total",
             "Errors writing to the UDP socket."),
     NULL},
    {"tcp_accepts", TS(tcp_accepts),
     COUNTER("transport_tcp_accepts_total", "TCP connections accepted."), NULL},
    {"tcp_refused", TS(tcp_refused),
     COUNTER("transport_tcp_refused_total",
             "TCP connections refused at accept."),
     NULL},
    {"frames_in", TS(frames_in),
     COUNTER("transport_frames_received_total",
             "Packets received over tcp-transport connections."),
     NULL},
    {"frames_out", TS(frames_out),
     COUNTER("transport_frames_sent_total",
             "Packets sent over tcp-transport connections."),
     NULL},
    {"frame_errors", TS(frame_errors),
     COUNTER("transport_frame_errors_total",
             "Badly framed packets on tcp-transport connections."),
     NULL},
    {"tcp_refused_per_ip", TS(tcp_refused_per_ip),
     COUNTER("transport_tcp_refused_per_ip_total",
             "TCP connections refused at accept for "
             "max_inbound_streams_per_ip."),
     NULL},
    {"tcp_timeouts", TS(tcp_timeouts),
     COUNTER("transport_tcp_timeouts_total",
             "TCP connections closed for sending nothing, or no whole "
             "packet frame, within tcp_timeout."),
     NULL},
};

#define WS(f) offsetof(struct wal_stats, f)

static const struct field wal_fields[] = {
    {"log_bytes", WS(log_bytes),
     GAUGE("data_dir_log_bytes",
           "Bytes in the data dir's log files (since the last snapshot)."),
     NULL},
    {"snapshot_bytes", WS(snapshot_bytes),
     GAUGE("data_dir_snapshot_bytes",
           "Bytes of the data dir's snapshot segments."),
     NULL},
    {"records", WS(records),
     COUNTER("data_dir_log_records_total",
             "Changes of the store appended to the log."),
     NULL},
    {"fsyncs", WS(fsyncs),
     COUNTER("data_dir_fsyncs_total",
             "Groups of log records written and fsynced."),
     NULL},
    {"group_max", WS(group_max),
     GAUGE("data_dir_group_records_max",
           "Most records one fsync of the log has carried."),
     NULL},
    {"saves", WS(saves),
     COUNTER("data_dir_saves_total",
             "Saves that reached the disk: log groups, snapshot segments, "
             "members files."),
     NULL},
    {"save_failures", WS(save_failures),
     COUNTER("data_dir_save_failures_total",
             "Saves that failed (a write, fsync or rename of the data "
             "dir)."),
     NULL},
    {"writes_refused", WS(refused),
     COUNTER("data_dir_writes_refused_total",
             "Local writes refused because the log could not be written."),
     NULL},
    {"changes_unlogged", WS(dropped),
     COUNTER("data_dir_changes_unlogged_total",
             "Changes applied while the log could not be written (the next "
             "snapshot saves them)."),
     NULL},
    {"snapshots", WS(snapshots),
     COUNTER("data_dir_snapshots_total",
             "Snapshots written whole (the log compacted into them)."),
     NULL},
    {"last_save_time", WS(last_save_time),
     GAUGE("data_dir_last_save_timestamp_seconds",
           "Unix time of the last save that reached the disk."),
     NULL},
    {"last_failure_time", WS(last_failure_time),
     GAUGE("data_dir_last_failure_timestamp_seconds",
           "Unix time of the last save that failed (0: none)."),
     NULL},
};

/* The Prometheus endpoint's answers: metrics.c gives their samples
 * (metrics_samples), named here with every other metric. */
const struct stats_metric stats_metrics_answers = {
    "metrics_answers_total", STATS_COUNTER, "code",
    "Answers of this endpoint, by HTTP status code."};

/* ===== Collecting ===== */

struct out {
    stats_fn fn;
    void *ud;
};

static void emit(const struct out *o, const struct stats_metric *m,
                 const char *group, const char *key, const char *label,
                 uint64_t value)
{
    struct stats_sample s = {m, group, key, label, value, false, NULL};
    o->fn(o->ud, &s);
}

static void emit_fields(const struct out *o, const char *group,
                        const struct field *f, size_t n, const void *base)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = *(const uint64_t *)((const char *)base + f[i].off);
        emit(o, f[i].metric, group, f[i].key, f[i].label, v);
    }
}

/* One counter per message type, in a JSON object of its own. */
static void emit_types(const struct out *o, const struct stats_metric *m,
                       const char *group, const uint64_t *v)
{
    for (int i = 0; i < WIRE_TYPE_COUNT; i++)
        emit(o, m, group, wire_type_name(i), wire_type_name(i), v[i]);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

void stats_collect(const struct agent *a, stats_part metrics, stats_fn fn,
                   void *ud)
{
    const struct out o = {fn, ud};
    const struct node *nd = a->setup.node;
    const struct node_stats *s = node_stats(nd);

    emit_fields(&o, NULL, node_fields, COUNT(node_fields), s);
    emit_types(&o, &msgs_in, "msgs_in", s->msgs_in);
    emit_types(&o, &msgs_out, "msgs_out", s->msgs_out);
    emit_types(&o, &msg_bytes_in, "msg_bytes_in", s->msg_bytes_in);
    emit_types(&o, &msg_bytes_out, "msg_bytes_out", s->msg_bytes_out);
    for (int i = 0; i < NODE_DROP_COUNT; i++)
        emit(&o, &dropped, "dropped", node_drop_name(i), node_drop_name(i),
             s->dropped[i]);

    const struct members *t = node_members(nd);
    for (int i = 0; i < 4; i++)
        emit(&o, &members, "members", member_state_name(i),
             member_state_name(i), t->count[i]);
    emit(&o, NULL, "members", "total", NULL, t->n);
    emit(&o,
         GAUGE("health_score",
               "Lifeguard's local health score: 0 is healthy; higher "
               "stretches probe timeouts."),
         NULL, "health", NULL, (uint64_t)node_health(nd));
    emit(&o,
         GAUGE("broadcast_queue_messages",
               "Messages waiting in the gossip queues."),
         NULL, "broadcast_queue", NULL, node_broadcast_queue_len(nd));
    struct stats_sample paused = {
        GAUGE("paused", "1 while the heartbeat is paused (hearsay pause)."),
        NULL,
        "paused",
        NULL,
        node_paused(nd),
        true,
        NULL};
    fn(ud, &paused);
    emit(&o, GAUGE("keyring_keys", "Encryption keys installed."), NULL, NULL,
         NULL, node_keyring(nd)->n);

    struct lnode_stats hs = {0, 0, 0, 0};
    if (a->lua)
        hs = lua_host_lnode(a->lua)->stats;
    emit(&o, GAUGE("hook_scripts", "Hook scripts loaded."), "hooks", "scripts",
         NULL, a->lua ? lua_host_count(a->lua) : 0);
    emit_fields(&o, "hooks", hook_fields, COUNT(hook_fields), &hs);

    if (a->wd) {
        struct watchdog_stats ws = watchdog_stats(a->wd);
        emit(&o,
             &(const struct stats_metric){
                 "loop_longest_step_seconds", STATS_GAUGE_US, NULL,
                 "The longest step of the event loop so far (the time it "
                 "took to run what one poll for I/O brought)."},
             "loop", "longest_step_us", NULL, ws.longest_step_us);
        emit(&o,
             COUNTER("loop_slow_steps_total",
                     "Steps of the event loop that took 100 ms or "
                     "more."),
             "loop", "slow_steps", NULL, ws.slow_steps);
        emit(&o,
             COUNTER("loop_stalls_total",
                     "Times the event loop did not turn for a second "
                     "or more (the watchdog logs each one)."),
             "loop", "stalls", NULL, ws.stalls);
    }

    const struct metadata *md = node_metadata(nd);
    size_t live = metadata_count(md, false), all = metadata_count(md, true);
    emit(&o, GAUGE("metadata_keys", "Keys in the metadata store."), "metadata",
         "keys", NULL, live);
    emit(&o,
         GAUGE("metadata_tombstones",
               "Deleted keys the metadata store still remembers."),
         "metadata", "tombstones", NULL, all - live);
    emit_fields(&o, "metadata", meta_fields, COUNT(meta_fields),
                metadata_stats(md));

    if (a->wal) {
        const struct wal_stats *ws = wal_stats(a->wal);
        struct stats_sample failing = {
            GAUGE("data_dir_failing",
                  "1 while the data dir's log cannot be written (local "
                  "writes are refused)."),
            "data_dir",
            "failing",
            NULL,
            ws->failing,
            true,
            NULL};
        fn(ud, &failing);
        emit_fields(&o, "data_dir", wal_fields, COUNT(wal_fields), ws);
        struct stats_sample error = {NULL, "data_dir", "last_save_error", NULL,
                                     0,    false,      ws->last_error};
        fn(ud, &error);
    }
    if (a->setup.tp)
        emit_fields(&o, "transport", transport_fields, COUNT(transport_fields),
                    transport_stats(a->setup.tp));
    if (metrics)
        metrics(a, fn, ud);
    emit(&o,
         &(const struct stats_metric){"build_info", STATS_GAUGE, "version",
                                      "The hearsay version, as a label."},
         NULL, NULL, HS_VERSION, 1);
}
