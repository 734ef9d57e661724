/* members.h: the member table and the alive/suspect/dead/left rules.
 *
 * The table belongs to the node (one struct members per node). It keeps
 * every member by name, plus the probe order: an array walked round-robin
 * and shuffled at each wrap (SWIM section 4.3). Only this module changes
 * a member's state; everyone else asks through members_on_alive(),
 * members_on_suspect() and members_on_dead(), so the incarnation rules
 * live in one place (memberlist's aliveNode, suspectNode, deadNode). */
#ifndef HS_MEMBERS_H
#define HS_MEMBERS_H

#include "base/addr.h"
#include "codec/wire.h"

struct node;
struct suspicion;
struct bcast;

enum member_state {
    MEMBER_ALIVE = WIRE_STATE_ALIVE,
    MEMBER_SUSPECT = WIRE_STATE_SUSPECT,
    MEMBER_DEAD = WIRE_STATE_DEAD,
    MEMBER_LEFT = WIRE_STATE_LEFT
};

/* What a member runs, as learned from what it sends: hearsay (our
 * envelope) or something else (Serf, memberlist), which gets none of our
 * metadata or rumors, since it could only log and drop them. */
enum { PEER_UNKNOWN, PEER_HEARSAY, PEER_FOREIGN };

const char *member_state_name(int state);
/* -1 if unknown */
int member_state_parse(const char *s);

struct member {
    const char *name;     /* NUL-terminated, stored with the member */
    uint8_t *meta;        /* owned; NULL when empty */
    /* Owned by other modules, cleared when they let go. */
    struct suspicion *suspicion;
    struct bcast *bcast;  /* our queued broadcast about this member */
    uint64_t state_change; /* ms, node clock */
    struct hs_addr addr;  /* exactly as announced (4 or 16 bytes) */
    uint32_t incarnation;
    uint32_t index;       /* position in the probe order */
    uint16_t meta_len;
    uint8_t vsn[6];       /* pmin pmax pcur dmin dmax dcur */
    uint8_t name_len;     /* names are at most CONFIG_NAME_MAX (255) */
    uint8_t state;
    uint8_t peer;         /* PEER_*: what its messages say it runs */
};

static inline bool member_dead_or_left(const struct member *m)
{
    return m->state == MEMBER_DEAD || m->state == MEMBER_LEFT;
}

/* A hash slot: the member's place in the probe order (plus one; zero is
 * an empty slot) and its name's hash, so that a probe passing over other
 * members never has to read them. Eight bytes a member: every node holds
 * every member, so a simulation of N nodes holds N * N of these. */
struct mslot {
    uint32_t idx;
    uint32_t hash;
};

/* What one source address may still add to the table (members.c's
 * growth limits): `debt` thousandths of a member, repaid at
 * new_member_rate a second since `at`. */
struct msource {
    uint64_t at;
    uint64_t debt;
    uint8_t ip[16];
    uint8_t len;          /* 0: a free slot */
};

struct members {
    struct member **order; /* probe order; every member, self included */
    size_t n, cap;
    struct mslot *slots;   /* open addressing by name hash, at most 3/4
                            * full */
    size_t nslots;
    size_t count[4];       /* members per state */
    size_t ip_named;       /* members whose name could be an IP address */
    struct msource *sources; /* growth limits by address, made on first
                              * use */
};

void members_init(struct members *t);
/* Frees every member; owners of suspicions/broadcasts let go first. */
void members_close(struct members *t);
struct member *members_find(const struct members *t, const char *name,
                            size_t len);
/* Add a new member at a random position of the probe order (`r` is a
 * random number). The member starts dead with incarnation 0, as in Go, so
 * the alive that created it reads as a join. */
int members_add(struct members *t, const char *name, size_t len,
                const struct hs_addr *addr, uint64_t r, struct member **out);
/* Remove and free. */
void members_remove(struct members *t, struct member *m);
void members_set_state(struct members *t, struct member *m, int state,
                       uint64_t now);
int members_set_meta(struct member *m, const uint8_t *p, size_t n);
static inline size_t members_count(const struct members *t)
{
    return t->n;
}

/* The alive message that announces m as it now is. */
void members_write_alive(const struct member *m, struct buf *b);

/* ===== Rules (they act on a node: broadcasts, timers, hooks) ===== */

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

/* memberlist's verifyProtocol over remote states and our table. */
int members_verify_protocol(const struct members *t,
                            const struct wire_node_state *states, size_t n,
                            char *why, size_t whylen);

#endif
