/* members.h: the member table and the alive/suspect/dead/left rules.
 *
 * The table belongs to the node (one struct members per node). It keeps
 * every member by name, plus the probe order: an array walked round-robin
 * and shuffled at each wrap (SWIM section 4.3). Only the rules (rules.c,
 * declared in node_int.h) change a member's state; everyone else asks
 * through members_on_alive(), members_on_suspect() and members_on_dead(),
 * so the incarnation rules live in one place (memberlist's aliveNode,
 * suspectNode, deadNode). This table takes what it needs (the time, a
 * random number, the limits) as arguments and never calls the node. */
#ifndef HS_MEMBERS_H
#define HS_MEMBERS_H

#include "base/addr.h"
#include "codec/wire.h"

/* Longest member name (config.h's CONFIG_NAME_MAX, checked there). */
#define MEMBER_NAME_MAX 255

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
enum {
    PEER_UNKNOWN,
    PEER_HEARSAY,
    PEER_FOREIGN
};

const char *member_state_name(int state);
/* -1 if unknown */
int member_state_parse(const char *s);

struct member {
    const char *name; /* NUL-terminated, stored with the member */
    uint8_t *meta;    /* owned; NULL when empty */
    /* Owned by other modules, cleared when they let go. */
    struct suspicion *suspicion;
    struct bcast *bcast;   /* our queued broadcast about this member */
    uint64_t state_change; /* ms, node clock */
    struct hs_addr addr;   /* exactly as announced (4 or 16 bytes) */
    uint32_t incarnation;
    uint32_t index; /* position in the probe order */
    uint16_t meta_len;
    uint8_t vsn[6];   /* pmin pmax pcur dmin dmax dcur */
    uint8_t name_len; /* names are at most CONFIG_NAME_MAX (255) */
    uint8_t state;
    uint8_t peer; /* PEER_*: what its messages say it runs */
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
    uint8_t len; /* 0: a free slot */
};

struct members {
    struct member **order; /* probe order; every member, self included */
    size_t n, cap;
    struct mslot *slots; /* open addressing by name hash, at most 3/4
                            * full */
    size_t nslots;
    size_t count[4];         /* members per state */
    size_t ip_named;         /* members whose name could be an IP address */
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

/* Does m's private data equal r? */
bool member_meta_eq(const struct member *m, const struct wire_raw *r);

/* Growth limits (see members.c): may `from` add one more member `now`,
 * with a bucket of `burst` members refilled at `rate` a second? Takes its
 * token if so. Always true for NULL (not limited) or burst <= 0. */
bool members_admit(struct members *t, const struct hs_addr *from, uint64_t now,
                   int burst, int rate);

/* Shuffle the probe order (Fisher-Yates), drawing rand_n(ud, i) for i
 * from n down to 2: a number in [0, i). */
void members_shuffle(struct members *t, size_t (*rand_n)(void *ud, size_t n),
                     void *ud);

/* memberlist's verifyProtocol over remote states and our table. */
int members_verify_protocol(const struct members *t,
                            const struct wire_node_state *states, size_t n,
                            char *why, size_t whylen);

#endif
