/* broadcast.h: the transmit-limited broadcast queue (memberlist's
 * TransmitLimitedQueue).
 *
 * Messages wait here to be piggybacked on pings and acks and sent in
 * gossip rounds. Order: fewest transmits first; within a tier, larger
 * messages first, then newer first. A message is dropped once sent
 * retransmit_mult * ceil(log10(n+1)) times. A queued message about a
 * member (or a metadata key) is replaced by newer news about it
 * (memberlist keys by node name; broadcast.go): the owner keeps a `struct
 * bcast *` slot that the queue fills and clears. The queue owns its
 * messages. */
#ifndef HS_BROADCAST_H
#define HS_BROADCAST_H

#include "base/buf.h"
#include "codec/wire.h"

struct bcast {
    uint64_t id;
    struct bcast **slot; /* its owner's pointer to it, or NULL */
    uint32_t len;
    uint16_t transmits; /* below 1024: see retransmit_limit */
    bool notify;        /* call the queue's on_finished when done */
    bool lazy;          /* no bytes here: the queue's encode writes them */
    uint8_t msg[];
};

/* A queue slot: the message and its place in the order as one number,
 * so that searching the queue never leaves its chunks. */
struct bitem {
    uint64_t key;
    struct bcast *b;
};

struct bchunk;

struct bqueue {
    struct bchunk **chunks; /* sorted by key, the next to send last */
    size_t nchunks, chunks_cap;
    size_t n; /* messages queued */
    uint64_t next_id;
    size_t max_items; /* oldest tier-0... the newest are kept */
    uint64_t dropped; /* pushed out by the bound */
    void (*on_finished)(void *ud, struct bcast *b);
    /* Appends the message of a lazy broadcast, from its owner's slot. */
    void (*encode)(void *ud, struct bcast **slot, struct buf *out);
    void *ud;
};

void bqueue_init(struct bqueue *q, size_t max_items);
void bqueue_close(struct bqueue *q);
/* Queue a copy of msg. With a slot, the message it holds (older news
 * about the same owner) is dropped first, and the slot then points to the
 * new one until it is done. Returns 0 or HS_ENOMEM. */
int bqueue_push(struct bqueue *q, struct bcast **slot, const void *msg,
                size_t len, bool notify);
/* Queue a message that its owner (the slot) can write again at any time,
 * `len` bytes long: the queue keeps no copy, and asks q->encode for the
 * bytes each time it sends it. The owner's news must not change without a
 * new push (or a disown). */
int bqueue_push_lazy(struct bqueue *q, struct bcast **slot, size_t len,
                     bool notify);
/* Forget the slot (its owner is being freed); a lazy message is written
 * out first and stays queued. */
void bqueue_disown(struct bqueue *q, struct bcast **slot);
/* Take messages that fit in `limit` bytes, counting `overhead` bytes per
 * message: each is appended to `out` and its length to lens[*n]. Takes at
 * most `max` messages. Messages reaching `transmit_limit` are dropped. */
void bqueue_take(struct bqueue *q, size_t overhead, size_t limit,
                 int transmit_limit, struct buf *out, size_t *lens, size_t max,
                 size_t *n);
static inline size_t bqueue_len(const struct bqueue *q)
{
    return q->n;
}

/* retransmit_mult * ceil(log10(n + 1)) (memberlist retransmitLimit). */
int retransmit_limit(int mult, size_t n);

#endif
