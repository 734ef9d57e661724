/* node.h: a hearsay node: the protocol core's public API.
 *
 * struct node owns everything of one cluster member: its member table,
 * broadcast queues, timers, probes and streams. It runs on whatever struct
 * io it is given (transport.c for real sockets, sim.c for the simulated
 * network) and calls user code only through struct hooks. This is the only
 * API main.c, the Lua binding and the simulator call. */
#ifndef HS_NODE_H
#define HS_NODE_H

#include "config.h"
#include "hooks.h"
#include "io.h"
#include "log.h"
#include "members.h"

struct node;

/* ===== Counters (hearsay stats) ===== */

/* Why a packet or stream was dropped. */
#define NODE_DROPS(X)                                               \
    X(DROP_MALFORMED, "malformed")                                  \
    X(DROP_TRUNCATED, "truncated")                                  \
    X(DROP_CRC, "crc")                                              \
    X(DROP_UNKNOWN_TYPE, "unknown_type")                            \
    X(DROP_TOO_BIG, "too_big")                                      \
    X(DROP_DECOMPRESS, "decompress")                                \
    X(DROP_WRONG_NODE, "wrong_node")                                \
    X(DROP_CIDR, "cidr")                                            \
    X(DROP_PAUSED, "paused")                                        \
    X(DROP_VERSION, "version")                                      \
    X(DROP_REFUSED, "refused")                                      \
    X(DROP_STREAM_LIMIT, "stream_limit")                            \
    X(DROP_STREAM_TIMEOUT, "stream_timeout")                        \
    X(DROP_ENCRYPTED, "encrypted")                                  \
    X(DROP_LABEL, "label")

enum node_drop {
#define NODE_DROP_ENUM(name, text) NODE_##name,
    NODE_DROPS(NODE_DROP_ENUM)
#undef NODE_DROP_ENUM
    NODE_DROP_COUNT
};
const char *node_drop_name(int reason);

struct node_stats {
    uint64_t packets_in, packets_out, bytes_in, bytes_out;
    uint64_t msgs_in[WIRE_TYPE_COUNT], msgs_out[WIRE_TYPE_COUNT];
    uint64_t dropped[NODE_DROP_COUNT];
    uint64_t send_errors;
    uint64_t probes, probes_failed, indirect_probes, tcp_pings,
        tcp_ping_rescues, nacks_received;
    uint64_t suspicions, refutations, deaths, conflicts;
    uint64_t push_pulls_out, push_pulls_in, push_pull_errors;
    uint64_t streams_in, streams_out;
    uint64_t broadcasts_queued, user_messages_in, user_messages_out,
        rumors_duplicate;
    uint64_t members_refused;
};

/* ===== Lifecycle ===== */

/* Create a node; copies cfg and hooks, borrows io and log (they must
 * outlive the node). Nothing is sent until node_start. */
int node_new(const struct config *cfg, const struct io *io,
             const struct hooks *hooks, const struct hs_logger *log,
             struct node **out);
/* Announce ourselves (incarnation 1) and start the probe, gossip and
 * push/pull schedules. `advertise` is the address others reach us at
 * (the io layer knows the real bound port). */
int node_start(struct node *nd, const struct hs_addr *advertise);
/* Free everything. Open streams are closed; no callbacks follow. */
void node_close(struct node *nd);

typedef void (*node_join_cb)(void *ud, int joined, int err,
                             const char *why);
/* Push/pull (Join=true) with each address; cb(joined count) when all
 * finished. `names` may be NULL or hold the node name of each address
 * ("" when unknown). */
int node_join(struct node *nd, const struct hs_addr *addrs,
              const char *const *names, size_t n, node_join_cb cb, void *ud);

typedef void (*node_leave_cb)(void *ud, int err);
/* Broadcast our leave and call cb once it has been gossiped its full
 * retransmit count, or after timeout_ms (err HS_ETIMEDOUT). */
int node_leave(struct node *nd, uint64_t timeout_ms, node_leave_cb cb,
               void *ud);

/* pekonode's Stop()/Start(): stop the heartbeat (no probes, gossip or
 * answers; inbound packets are ignored) and resume it with a fresh
 * incarnation and a state sync, which refutes any suspicion. */
void node_pause(struct node *nd);
void node_resume(struct node *nd);
bool node_paused(const struct node *nd);
bool node_left(const struct node *nd);

/* Replace the hooks (a script reload); takes effect at once. */
void node_set_hooks(struct node *nd, const struct hooks *hooks);
/* Member events for tooling (the simulation's counters), seen before the
 * on_member hook; one observer, NULL removes it. */
typedef void (*node_observer_fn)(void *ud, int event,
                                 const struct member *m);
void node_set_observer(struct node *nd, node_observer_fn fn, void *ud);
/* Ask the node_meta hook again and announce the new private data. */
int node_update_meta(struct node *nd);
/* Gossip a user message to every node (a rumor): each node that hears it
 * delivers it once to on_message and passes it on, with the same
 * retransmit limit as membership news. It travels in the hearsay
 * envelope, so receivers learn who sent it. At most udp_buffer_size minus
 * the envelope. */
int node_broadcast(struct node *nd, const void *p, size_t n);
/* Send a user message to one member: by UDP, or over a stream when
 * `reliable` (memberlist SendBestEffort / SendReliable). */
int node_send(struct node *nd, const char *name, const void *p, size_t n,
              bool reliable);

/* ===== Timers for user code =====
 * Run fn(ud) after `delay` ms, then every `repeat` ms if repeat > 0, on
 * the node's clock (real or simulated). Cancelling from inside fn is fine.
 * The node frees the timers still running when it closes (no call). */
struct node_utimer;
typedef void (*node_utimer_fn)(void *ud);
int node_timer_start(struct node *nd, uint64_t delay, uint64_t repeat,
                     node_utimer_fn fn, void *ud, struct node_utimer **out);
void node_timer_cancel(struct node *nd, struct node_utimer *t);
uint64_t node_time(const struct node *nd);

/* The cluster metadata store (metadata.h). */
struct metadata *node_metadata(const struct node *nd);

/* ===== Queries ===== */
const struct member *node_self(const struct node *nd);
const struct members *node_members(const struct node *nd);
const struct node_stats *node_stats(const struct node *nd);
const struct config *node_config(const struct node *nd);
/* Lifeguard health score, 0 = healthy. */
int node_health(const struct node *nd);
size_t node_broadcast_queue_len(const struct node *nd);

/* ===== Called by the io layer ===== */
void node_io_timers(struct node *nd);
void node_io_packet(struct node *nd, const struct hs_addr *from,
                    const uint8_t *p, size_t n);
/* An inbound stream; returns the owner to pass back in its callbacks, or
 * NULL after closing it (too many streams). */
void *node_io_stream_accepted(struct node *nd, struct io_stream *s,
                              const struct hs_addr *from);
void node_io_stream_connected(struct node *nd, void *owner, int status);
void node_io_stream_data(struct node *nd, void *owner, const uint8_t *p,
                         size_t n);
/* The peer closed (err 0) or the stream failed. */
void node_io_stream_end(struct node *nd, void *owner, int err);

#endif
