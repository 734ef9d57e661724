/* node_int.h: struct node, shared by the protocol core's modules only
 * (node.c, send.c, recv.c, gossip.c, user.c, reconnect.c, security.c,
 * utimer.c, rules.c, probe.c, stream.c, pushpull.c, keyops.c, suspicion.c). */
#ifndef HS_NODE_INT_H
#define HS_NODE_INT_H

#include "base/rng.h"
#include "base/timers.h"
#include "core/broadcast.h"
#include "core/metadata.h"
#include "core/node.h"
#include "core/suspicion.h"

_Static_assert(MEMBER_NAME_MAX == CONFIG_NAME_MAX,
               "member names are config names");

enum node_phase {
    PHASE_NEW,
    PHASE_RUNNING,
    PHASE_LEAVING,
    PHASE_LEFT
};

#define NODE_NOTED_MAX 256   /* sources of refused traffic remembered */
#define NODE_NAMES_NOTED 256 /* member names already logged */

/* What a member name was logged for (node_note_name). */
enum {
    NOTE_REFUSED = 1, /* allow_member refused it */
    NOTE_CONFLICT     /* another address claimed it */
};

/* Our own probe in flight (at most one; SWIM section 3.1). */
struct probe {
    bool active;
    uint32_t seq;
    struct member *target;
    uint64_t sent;
    uint64_t interval; /* probe_interval scaled by awareness */
    int expected_nacks, nacks;
    bool tcp_ok;           /* the TCP fallback ping was answered */
    struct stream *tcp;    /* the TCP fallback ping, while open */
    struct timer indirect; /* probe_timeout: go indirect */
    struct timer expire;   /* interval: judge the probe */
};

/* An ack we wait for on behalf of another node (indirect probe relay). */
struct relay {
    struct relay *next;
    struct node *nd;
    uint32_t seq;       /* our ping's sequence number */
    uint32_t their_seq; /* the requester's */
    struct hs_addr reply_to;
    char *reply_name;
    bool want_nack, acked;
    struct timer timeout; /* probe_timeout */
};

enum stream_kind {
    STREAM_IN,       /* accepted: read one request, answer */
    STREAM_PUSHPULL, /* we dialled: send state, read state */
    STREAM_PING,     /* we dialled: fallback ping, read ack */
    STREAM_USER,     /* we dialled: send a user message */
    STREAM_META,     /* we dialled: metadata request, answer */
    STREAM_KEYS      /* we dialled: keyring operation, answer */
};

struct join_op;
struct stream;

/* A stream we dialled ended, as a libuv request completes: with its
 * answer (one whole message, type byte first) and err 0, or without
 * (err and why; msg NULL). Called once, then the stream is freed. */
typedef void (*stream_done_fn)(struct stream *s, int err, const char *why,
                               const uint8_t *msg, size_t n);
/* The node is closing: let go of what the stream holds, no callbacks. */
typedef void (*stream_cancel_fn)(struct stream *s);

struct stream {
    struct stream *next, *prev;
    struct node *nd;
    struct io_stream *io;
    int kind;
    bool connected, done;
    struct hs_addr peer;
    struct buf in;
    struct wire_stream_scan scan;
    size_t need;
    struct buf out; /* request to write once connected */
    struct timer deadline;
    bool join;              /* push/pull with Join=true */
    struct join_op *op;     /* the join this push/pull belongs to */
    uint32_t seq;           /* fallback ping */
    void *req;              /* metadata request (md_node.c) */
    struct keyop *keyop;    /* keyring operation (keyops.c) */
    size_t keyop_slot;      /* which member of it */
    bool label_done;        /* inbound: the label header was checked */
    bool encrypted;         /* the message arrived encrypted */
    bool seal;              /* encrypt our messages whatever
                              * gossip_verify_outgoing says */
    stream_done_fn on_done; /* dialled: NULL when no answer comes */
    stream_cancel_fn on_cancel;
};

struct join_op {
    size_t pending;
    int joined;
    int err;
    char why[160];
    node_join_cb cb;
    void *ud;
};

struct node_utimer {
    struct timer timer;
    struct node_utimer *next, *prev;
    struct node *nd;
    uint64_t repeat;
    node_utimer_fn fn;
    void *ud;
};

struct node {
    struct config cfg;
    struct io io;
    struct hooks hooks;
    const struct hs_logger *log;
    int phase;
    bool paused;
    bool mixed; /* a foreign member was seen: see take_broadcasts */
    node_observer_fn observer; /* tooling's view of member events */
    void *observer_ud;
    struct hs_rng rng;

    struct timers timers;
    uint64_t wakeup_at;
    bool in_timers;

    struct members members;
    struct member *self;
    size_t self_name_len;
    struct hs_addr advertise;
    struct buf meta; /* our private data */
    uint32_t incarnation;
    uint32_t seq;
    int awareness;

    struct bqueue queue;      /* memberlist messages, keyed by member */
    struct bqueue user_queue; /* user broadcasts */

    struct timer probe_tick, gossip_tick, pushpull_tick;
    size_t probe_index;
    bool probe_missed_tick;
    struct probe probe;
    struct relay *relays;

    struct stream *streams;
    int inbound_streams;

    struct hs_cidr *cidrs;
    size_t ncidrs;

    node_leave_cb leave_cb;
    void *leave_ud;
    struct timer leave_timer;

    struct node_utimer *utimers;
    struct metadata *store; /* the cluster metadata store */

    /* Members that failed, tried again now and then (Serf's reconnect):
     * without it two halves of a healed partition stay apart. */
    struct failed {
        char name[CONFIG_NAME_MAX + 1];
        struct hs_addr addr;
        uint64_t since;
    } * failed;
    size_t nfailed;
    struct timer reconnect_tick;
    struct timer meta_tick;

    /* Rumors (gossiped user messages) seen lately: a hash set of their
     * ids, forgotten oldest first. */
    uint64_t rumor_seq;
    uint64_t *seen;      /* RUMOR_SLOTS slots, 0 = empty */
    uint64_t *seen_ring; /* RUMOR_KEEP ids in arrival order */
    size_t seen_pos, seen_n;
    struct buf scratch; /* packet being built */
    struct node_stats stats;

    /* Encryption (keyring.c). The keyring is empty when encryption is
     * off; the label and verify flags live in cfg. */
    struct keyring keyring;
    struct buf sealed; /* packet being sealed */
    struct buf rx;     /* packet being opened */
    bool rx_busy;
    node_keyring_fn keyring_fn;
    void *keyring_ud;
    struct keyop *keyops; /* cluster-wide key operations under way */
    int nkeyops;
    /* Sources of refused traffic already logged, by IP and reason: each
     * is logged once, then only counted. */
    struct noted {
        uint8_t ip[16];
        uint8_t len, reason;
    } noted[NODE_NOTED_MAX];
    size_t nnoted, noted_next;
    /* Member names already logged, by hash and NOTE_* kind (kind 0: a
     * free slot): made on first use, oldest forgotten first. */
    struct noted_name {
        uint64_t hash;
        uint8_t kind;
    } * names_noted;
    size_t nnames_noted, names_noted_next;
};

/* ===== node.c, send.c, recv.c, user.c, reconnect.c, security.c:
 * helpers for the other core modules ===== */

static inline uint64_t node_now(const struct node *nd)
{
    return nd->io.now(nd->io.ctx);
}
uint64_t node_rand(struct node *nd);
/* Uniform in [0, n). */
size_t node_rand_n(struct node *nd, size_t n);
void node_arm(struct node *nd, struct timer *t, uint64_t at);
void node_disarm(struct node *nd, struct timer *t);
/* Send one message (or compound) by UDP: compress when smaller, CRC when
 * `to_member` speaks protocol 5, then the wire. */
int node_send_raw(struct node *nd, const struct hs_addr *to,
                  const struct member *to_member, const uint8_t *msg,
                  size_t len);
/* Send a message with piggybacked broadcasts (memberlist's sendMsg). */
int node_send_msg(struct node *nd, const struct hs_addr *to, const uint8_t *msg,
                  size_t len);
/* Queue a memberlist broadcast about `about` (may be NULL). */
/* Queue an alive about m, written from m itself when sent (`msg` is the
 * message as it reads now, for its length). */
void node_queue_alive(struct node *nd, struct member *m, const struct buf *msg);
void node_queue_broadcast(struct node *nd, struct member *about,
                          const struct buf *msg, bool notify);
void node_event(struct node *nd, int event, const struct member *m);
/* A member was declared dead (remember it), or is alive (forget it). */
void node_member_failed(struct node *nd, const struct member *m);
void node_member_back(struct node *nd, const struct member *m);
bool node_ip_allowed(const struct node *nd, const struct hs_addr *a);
/* The six version bytes we announce. */
void node_vsn(const struct node *nd, uint8_t vsn[6]);
/* k random members (excluding self) for which `ok` holds. */
size_t node_pick(struct node *nd, struct member **out, size_t k,
                 bool (*ok)(const struct node *, const struct member *));
/* A user message payload (gossip or stream): unwrap the envelope and hand
 * it to on_message. */
/* A member sent our envelope (by name), or sent something foreign (from
 * its address; no-op if no member has that address). */
void node_peer_hearsay(struct node *nd, const char *name, size_t len);
void node_peer_foreign(struct node *nd, const struct hs_addr *addr);
/* Is the member at this address known to run something else? */
bool node_peer_is_foreign(const struct node *nd, const struct hs_addr *addr);
/* A user message (by UDP or stream), its envelope decoded up front:
 * env_rc 0 (ours: env), HS_ENOTFOUND (a foreign payload), or the
 * decoding error. */
struct user_msg {
    const uint8_t *p;
    size_t n;
    int env_rc;
    struct wire_envelope env;
};
void user_msg_decode(struct user_msg *u, const uint8_t *p, size_t n);
void node_user_message(struct node *nd, const struct user_msg *u,
                       const struct hs_addr *from);
/* Fill up to `limit` bytes with broadcasts (memberlist getBroadcasts),
 * laid end to end in out with their lengths in lens (send.c). */
size_t node_take_broadcasts(struct node *nd, size_t overhead, size_t limit,
                            struct buf *out, size_t *lens, size_t max,
                            bool ours);
/* msgs laid end to end in `all` as one message (single, or compound). */
int node_pack(const struct buf *all, const size_t *lens, size_t n,
              struct buf *out);
/* The broadcast queue's writer of lazy news (an alive about a member). */
void node_queue_encode(void *ud, struct bcast **slot, struct buf *out);
/* Timer callbacks: gossip.c, reconnect.c. */
void gossip_tick(struct timer *t);
void reconnect_tick(struct timer *t);
void node_count_drop(struct node *nd, int reason, const struct hs_addr *from,
                     const char *what, const char *why);
/* Count a drop for encryption or label reasons, and log it at WARN the
 * first time for this source IP and reason. */
void node_refuse(struct node *nd, int reason, const struct hs_addr *from,
                 const char *what, const char *why);
/* Is this the first time `name` is noted for `kind` (NOTE_*)? Remembers
 * it if so: a problem about a member is logged once, then only counted.
 * The last NODE_NAMES_NOTED names are remembered. */
bool node_note_name(struct node *nd, int kind, const char *name, size_t len);
/* Forget the notes about a name (it joined: a new problem is news). */
void node_unnote_name(struct node *nd, const char *name, size_t len);
/* Count one message of `type`, `bytes` long as encoded (hearsay stats);
 * a type byte out of range counts nothing. */
static inline void node_count_in(struct node *nd, int type, size_t bytes)
{
    if (type >= 0 && type < WIRE_TYPE_COUNT) {
        nd->stats.msgs_in[type]++;
        nd->stats.msg_bytes_in[type] += bytes;
    }
}
static inline void node_count_out(struct node *nd, int type, size_t bytes)
{
    if (type >= 0 && type < WIRE_TYPE_COUNT) {
        nd->stats.msgs_out[type]++;
        nd->stats.msg_bytes_out[type] += bytes;
    }
}
/* Do we seal what we send (a key, and gossip_verify_outgoing)? */
static inline bool node_seals(const struct node *nd)
{
    return !keyring_empty(&nd->keyring) && nd->cfg.gossip_verify_outgoing;
}
/* Bytes a packet grows by after its message: label and encryption. */
size_t node_packet_overhead(const struct node *nd);
/* A fresh nonce from the io layer's randomness. */
void node_nonce(struct node *nd, uint8_t nonce[KEYRING_NONCE]);
/* The keyring changed: tell the observer (0, or its error). */
int node_keyring_changed(struct node *nd, char *err, size_t errlen);

/* Lifeguard local health (awareness.go): the score stays within
 * [0, awareness_max_multiplier - 1] and scales the probe interval. */
static inline void node_awareness(struct node *nd, int delta)
{
    int v = nd->awareness + delta, max = nd->cfg.awareness_max_multiplier - 1;
    nd->awareness = v < 0 ? 0 : v > max ? max : v;
}

/* ===== rules.c: memberlist's state rules (they act on a node:
 * broadcasts, timers, hooks) ===== */

/* An alive message. `bootstrap` is set only for our own first alive.
 * `from` is the address the news came from (a packet's sender, a state
 * sync's peer): a member we do not know is added only within the growth
 * limits of that address (max_new_members, new_member_rate), else it is
 * refused and counted (dropped: member_limit). NULL: not limited (our
 * own alive, a join asked for here). */
void members_on_alive(struct node *nd, const struct wire_alive *a,
                      bool bootstrap, const struct hs_addr *from);
void members_on_suspect(struct node *nd, const struct wire_suspect *s);
void members_on_dead(struct node *nd, const struct wire_suspect *d);
/* Push/pull merge of remote states (after verification), from the peer
 * at `from` (NULL: a join asked for here, not limited). */
void members_merge(struct node *nd, const struct wire_node_state *states,
                   size_t n, const struct hs_addr *from);
/* Refute an accusation against ourselves: bump the incarnation past
 * `accused` and broadcast alive. */
void members_refute(struct node *nd, uint32_t accused);
/* Broadcast a fresh alive about ourselves with the next incarnation
 * (private data changed, or a resume after a pause). */
void members_announce_self(struct node *nd);
/* Reap dead (and left) members whose state changed longer ago than
 * gossip_to_the_dead_time; shuffle the probe order. */
void members_reset(struct node *nd);

/* ===== dispatch.c: the message table ===== */
/* Check and decode one message of a packet (its type byte, then the
 * body), then run its handler; a body that does not decode, or a type
 * with no handler, is counted as a drop here. */
void dispatch_message(struct node *nd, const struct hs_addr *from, uint8_t type,
                      const uint8_t *body, size_t n);

/* ===== probe.c ===== */
void probe_init(struct node *nd);
void probe_close(struct node *nd);
void probe_tick(struct timer *t);
/* Handlers of decoded messages (dispatch.c decodes them). */
void probe_on_ping(struct node *nd, const struct hs_addr *from,
                   const struct wire_ping *msg);
void probe_on_indirect(struct node *nd, const struct hs_addr *from,
                       const struct wire_indirect_ping *msg);
void probe_on_ack(struct node *nd, const struct hs_addr *from,
                  const struct wire_ack *msg);
void probe_on_nack(struct node *nd, const struct hs_addr *from,
                   const struct wire_nack *msg);
/* A member is going away: forget it in the probe state. */
void probe_forget(struct node *nd, struct member *m);

/* ===== stream.c ===== */
/* Dial a stream of `kind` (for counts and logs): `done` is called when
 * it ends (NULL: no answer is read; the stream ends once written), and
 * `cancel` if the node closes first. */
struct stream *stream_dial(struct node *nd, int kind, const struct hs_addr *to,
                           uint64_t timeout_ms, stream_done_fn done,
                           stream_cancel_fn cancel);
/* Is p[0..n) a WIRE_USER stream message carrying our envelope of
 * `env_kind`? Its envelope goes to *e. */
bool stream_envelope(const uint8_t *p, size_t n, int env_kind,
                     struct wire_envelope *e);
/* Wrap msg for the wire (compress when enabled) into s->out. */
int stream_set_request(struct stream *s, const uint8_t *msg, size_t len);
void stream_finish(struct stream *s);
void stream_close_all(struct node *nd);
/* Encode a message for a stream: compressed when enabled, then sealed
 * when we seal (or always if `seal`). */
int stream_wrap(struct node *nd, const uint8_t *msg, size_t len, bool seal,
                struct buf *out);

/* ===== keyops.c ===== */
struct keyop;
/* Answer a keyring request (the body of a KEYS_REQ envelope) from `from`:
 * the KEYS_RESP body goes to out. `encrypted`: the request arrived
 * encrypted; anything else is refused. */
void keyops_serve(struct node *nd, const char *from, size_t fromlen,
                  const uint8_t *body, size_t n, bool encrypted,
                  struct buf *out);
/* Forget every operation (node_close): no callbacks. */
void keyops_close(struct node *nd);

/* ===== pushpull.c ===== */
/* Our full state: 06 header, node states, user state. `to` is the peer
 * we call when we start (else NULL); `remote` the peer's user state when
 * we answer its push/pull (else NULL). */
int pushpull_encode(struct node *nd, bool join, const struct hs_addr *to,
                    const uint8_t *remote, size_t remotelen, struct buf *out);
/* A complete push/pull message (after the type byte) from `peer`;
 * `started` when it answers our own, `asked` when that was a join asked
 * for here (node_join): only then are the members it brings not held to
 * the peer's growth limits. Returns 0 or an error with why. */
int pushpull_merge(struct node *nd, const uint8_t *body, size_t len, bool *join,
                   bool started, bool asked, const struct hs_addr *peer,
                   char *why, size_t whylen);
/* The user state of a complete push/pull body, or NULL. */
const uint8_t *pushpull_user_state(const uint8_t *body, size_t len, size_t *n);
void pushpull_tick(struct timer *t);
/* Push/pull with one address (periodic: join=false). */
int pushpull_start(struct node *nd, const struct hs_addr *to, bool join,
                   struct join_op *op);

#endif
