/* node.h: a hearsay node: the protocol core's public API.
 *
 * struct node owns everything of one cluster member: its member table,
 * broadcast queues, timers, probes and streams. It runs on whatever struct
 * io it is given (io/transport*.c for real sockets, io/sim*.c for the
 * simulated network) and calls user code only through struct hooks. This
 * is the only API the agent, the Lua binding and the simulator call. */
#ifndef HS_NODE_H
#define HS_NODE_H

#include "base/log.h"
#include "codec/keyring.h"
#include "core/config.h"
#include "core/hooks.h"
#include "core/members.h"
#include "io/io.h"

struct node;

/* ===== Counters (hearsay stats) ===== */

/* Why a packet or stream was dropped. */
#define NODE_DROPS(X)                        \
    X(DROP_MALFORMED, "malformed")           \
    X(DROP_TRUNCATED, "truncated")           \
    X(DROP_CRC, "crc")                       \
    X(DROP_UNKNOWN_TYPE, "unknown_type")     \
    X(DROP_TOO_BIG, "too_big")               \
    X(DROP_DECOMPRESS, "decompress")         \
    X(DROP_WRONG_NODE, "wrong_node")         \
    X(DROP_CIDR, "cidr")                     \
    X(DROP_PAUSED, "paused")                 \
    X(DROP_VERSION, "version")               \
    X(DROP_REFUSED, "refused")               \
    X(DROP_STREAM_LIMIT, "stream_limit")     \
    X(DROP_STREAM_TIMEOUT, "stream_timeout") \
    X(DROP_ENCRYPTED, "encrypted")           \
    X(DROP_LABEL, "label")                   \
    X(DROP_DECRYPT, "decrypt")               \
    X(DROP_PLAINTEXT, "plaintext")           \
    X(DROP_MEMBER_LIMIT, "member_limit")

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
    /* Bytes of those messages as encoded, type byte included; a wrapper
     * (compound, compress, has-crc, encrypt) counts all it wraps. */
    uint64_t msg_bytes_in[WIRE_TYPE_COUNT], msg_bytes_out[WIRE_TYPE_COUNT];
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

typedef void (*node_join_cb)(void *ud, int joined, int err, const char *why);
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

/* Replace the hooks (a script reload); takes effect at once. */
void node_set_hooks(struct node *nd, const struct hooks *hooks);
/* Member events for tooling (the simulation's counters), seen before the
 * on_member hook; one observer, NULL removes it. */
typedef void (*node_observer_fn)(void *ud, int event, const struct member *m);
void node_set_observer(struct node *nd, node_observer_fn fn, void *ud);
/* Ask the node_meta hook again and announce the new private data. */
int node_update_meta(struct node *nd);
/* Take these bytes as our private data (at most WIRE_META_MAX) and
 * announce them with the next incarnation, without asking the node_meta
 * hook (hearsay tags); the hook's answer replaces them at the next
 * node_update_meta. 0, HS_ETOOBIG, HS_ENOMEM, or HS_ESTATE before
 * node_start or once leaving. */
int node_set_meta(struct node *nd, const uint8_t *p, size_t n);
/* serf's force-leave: mark a member that failed (dead, or suspect) as
 * left here, stop trying to reconnect to it, and gossip its leave (a
 * dead message from the member itself, at its last incarnation), which
 * makes the members that still see it alive or suspect mark it left too.
 * 0 (also when it had left already), HS_ENOTFOUND (no such member),
 * HS_EINVAL (ourselves), HS_EREFUSED (it is alive), HS_ESTATE (not
 * running). */
int node_force_leave(struct node *nd, const char *name, size_t len);
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

/* ===== Encryption and labels =====
 * The node starts with the key of its configuration (encrypt or
 * encrypt_passphrase), if any. Packets and streams are sealed with the
 * keyring's primary key while gossip_verify_outgoing holds, and opened
 * with any installed key; what no key opens (or, with
 * gossip_verify_incoming, what is not encrypted) is dropped, counted and
 * logged once per source address. Keys never appear in logs. */
const struct keyring *node_keyring(const struct node *nd);
/* This node's keyring, as memberlist's AddKey, UseKey and RemoveKey:
 * 0, or HS_EINVAL (not a key of 16, 24 or 32 bytes), HS_ETOOBIG (the ring
 * is full), HS_ENOTFOUND (use: not installed), HS_ESTATE (remove: the
 * primary key). */
int node_keyring_install(struct node *nd, const uint8_t *key, size_t len);
/* Called after every change of the keyring, made here or asked for by a
 * peer (the agent saves its keyring file there). A non-zero return with a
 * sentence in err is reported to whoever asked for the change. */
typedef int (*node_keyring_fn)(void *ud, const struct keyring *kr, char *err,
                               size_t errlen);
void node_set_keyring_observer(struct node *nd, node_keyring_fn fn, void *ud);
/* Take the reloadable security settings of cfg: gossip_verify_incoming,
 * gossip_verify_outgoing, label and skip_inbound_label_check, and the key
 * of encrypt (or encrypt_passphrase) when no key is installed yet. 0, or
 * HS_EINVAL with a sentence in err (nothing changed). */
int node_reconfigure_security(struct node *nd, const struct config *cfg,
                              char *err, size_t errlen);

/* ===== Key operations across the cluster (serf keys) =====
 * Install, use or remove a key on every member, or list every member's
 * keys: this node first, then each other member alive or suspect over an
 * encrypted stream of its own (a hearsay envelope that other software
 * ignores). cb runs once every member answered or failed (tcp_timeout). */
enum {
    NODE_KEYS_LIST,
    NODE_KEYS_INSTALL,
    NODE_KEYS_USE,
    NODE_KEYS_REMOVE
};

struct node_keys_failure {
    char *name;    /* the member */
    char *message; /* what went wrong there */
};

struct node_keys_count {
    uint8_t key[KEYRING_KEY_MAX];
    uint8_t len;
    size_t installed; /* members that have it */
    size_t primary;   /* members whose primary it is */
};

struct node_keys_result {
    int op;
    size_t nodes;                       /* members asked, this node included */
    size_t responses;                   /* members that answered */
    size_t errors;                      /* answers that reported a failure */
    struct node_keys_failure *failures; /* answered or not, nfailures */
    size_t nfailures;
    struct node_keys_count *keys; /* NODE_KEYS_LIST: nkeys */
    size_t nkeys;
};

/* The result is lent to cb for its duration. */
typedef void (*node_keys_cb)(void *ud, const struct node_keys_result *r);
/* 0 once the operation started (cb follows, maybe before this returns),
 * or an error and cb never runs: HS_EUNSUPP with no keyring ("encryption
 * is not enabled"), HS_EINVAL for a bad key, HS_EBUSY when 16 operations
 * are under way, or this node's own refusal (HS_ENOTFOUND: use of a key
 * not installed here; HS_ESTATE: removal of the primary key). */
int node_keys(struct node *nd, int op, const uint8_t *key, size_t len,
              node_keys_cb cb, void *ud);
/* The caller of node_keys no longer wants its answer (its connection or
 * script went away): cb will not run for that ud. When the node closes
 * first, operations under way end without a call. */
void node_keys_cancel(struct node *nd, node_keys_cb cb, void *ud);
/* A sentence for a node_keys error code and operation. */
const char *node_keys_strerror(int op, int err);

/* ===== Queries ===== */
const struct member *node_self(const struct node *nd);
/* Ourselves as a member before the member table has us: while node_start
 * asks the node_meta hook (private data not known yet). False before
 * node_start. */
bool node_self_view(const struct node *nd, struct member *out);
/* The node's wall clock, in milliseconds since 1970 (virtual in a
 * simulation). */
uint64_t node_wall(const struct node *nd);
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
/* True while the node handles max_inbound_streams streams already: the
 * io layer should leave new connections waiting (in its accept queue)
 * until a stream closes, rather than hand them over to be refused. */
bool node_inbound_full(const struct node *nd);
/* An inbound stream, accepted `waited` ms ago (the io layer waited for
 * its first byte): its first whole message must arrive by tcp_timeout
 * after the accept. Returns the owner to pass back in its callbacks, or
 * NULL after closing it (too many streams). */
void *node_io_stream_accepted(struct node *nd, struct io_stream *s,
                              const struct hs_addr *from, uint64_t waited);
void node_io_stream_connected(struct node *nd, void *owner, int status);
void node_io_stream_data(struct node *nd, void *owner, const uint8_t *p,
                         size_t n);
/* The peer closed (err 0) or the stream failed. */
void node_io_stream_end(struct node *nd, void *owner, int err);

/* The push/pull interval for a cluster of n members (memberlist's
 * pushPullScale): doubled per power of two past 32 members. */
uint64_t pushpull_scale(uint64_t interval, size_t n);

#endif
