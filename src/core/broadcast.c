/* broadcast.c: transmit-limited broadcast queue as a sorted list of
 * chunks.
 *
 * The order is (transmits ascending, length descending, id descending),
 * memberlist's btree order, folded into one key. The queue holds it
 * backwards, in chunks of at most CHUNK_MAX items: the next message to
 * send is the last item of the last chunk. Taking a message, putting it
 * back one tier up and queueing a new one each move at most one chunk,
 * so the work of a packet is the packet's, not the queue's: a node that
 * has just learned of thousands of members queues thousands of messages
 * (a simulated bootstrap of N nodes queues N * N). */
#include "core/broadcast.h"

#include <math.h>
#include <string.h>

/* Items per chunk: a split or a shift moves at most 4 KB. A queue's
 * first chunk starts smaller and grows to it. */
#ifndef CHUNK_MAX
#define CHUNK_MAX 256
#endif
#define CHUNK_FIRST (CHUNK_MAX < 16 ? CHUNK_MAX : 16)

struct bchunk {
    uint32_t n, cap;
    struct bitem items[]; /* sorted by key, descending */
};

int retransmit_limit(int mult, size_t n)
{
    double scale = ceil(log10((double)n + 1.0));
    return mult * (int)scale;
}

void bqueue_init(struct bqueue *q, size_t max_items)
{
    memset(q, 0, sizeof *q);
    q->max_items = max_items;
}

static void finish(struct bqueue *q, struct bcast *b)
{
    if (b->slot && *b->slot == b)
        *b->slot = NULL;
    if (b->notify && q->on_finished)
        q->on_finished(q->ud, b);
    hs_free(b);
}

void bqueue_close(struct bqueue *q)
{
    for (size_t c = 0; c < q->nchunks; c++) {
        struct bchunk *ch = q->chunks[c];
        for (uint32_t i = 0; i < ch->n; i++) {
            struct bcast *b = ch->items[i].b;
            if (b->slot && *b->slot == b)
                *b->slot = NULL;
            hs_free(b);
        }
        hs_free(ch);
    }
    hs_free(q->chunks);
    q->chunks = NULL;
    q->nchunks = q->chunks_cap = 0;
    q->n = 0;
}

/* The order as one number, smallest first: transmits (10 bits: limits
 * stay below 1024), then the length, larger first (16 bits: no larger
 * message fits a packet), then the id, newer first (38 bits: ids wrap
 * after 2^38 messages, which only upsets the newest-first rule for a
 * moment). */
#define KEY_ID_BITS 38
#define KEY_ID_MASK ((UINT64_C(1) << KEY_ID_BITS) - 1)

static uint64_t make_key(uint32_t transmits, size_t len, uint64_t id)
{
    uint64_t t = transmits > 1023 ? 1023 : transmits;
    uint64_t l = len > 0xffff ? 0xffff : len;
    return t << 54 | (0xffff - l) << KEY_ID_BITS |
           (KEY_ID_MASK - (id & KEY_ID_MASK));
}

static uint64_t key_of(const struct bcast *b)
{
    return make_key(b->transmits, b->len, b->id);
}

/* A place in the queue: item i of chunk c. */
struct pos {
    size_t c;
    uint32_t i;
};

/* The queue's invariant: chunks are never empty nor over their size,
 * hold n items in all, and every item's key is its message's, in
 * descending order across the chunks (the next to send last). */
static bool queue_ok(const struct bqueue *q)
{
    size_t n = 0;
    uint64_t prev = UINT64_MAX;
    for (size_t c = 0; c < q->nchunks; c++) {
        const struct bchunk *ch = q->chunks[c];
        if (ch->n == 0 || ch->n > ch->cap || ch->cap > CHUNK_MAX)
            return false;
        for (uint32_t i = 0; i < ch->n; i++) {
            const struct bitem *it = &ch->items[i];
            if (it->key != key_of(it->b) || it->key > prev)
                return false;
            if (it->b->slot && *it->b->slot != it->b)
                return false;
            prev = it->key;
        }
        n += ch->n;
    }
    return n == q->n && q->nchunks <= q->chunks_cap;
}

/* The place after every item with a key >= `key` and before every other:
 * where an item with that key goes. Chunks are never empty. */
static struct pos lower(const struct bqueue *q, uint64_t key)
{
    size_t lo = 0, hi = q->nchunks;
    while (lo < hi) { /* the first chunk whose smallest key is < key */
        size_t mid = lo + (hi - lo) / 2;
        const struct bchunk *ch = q->chunks[mid];
        if (ch->items[ch->n - 1].key >= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == q->nchunks) /* after everything, or the queue is empty */
        return lo == 0 ? (struct pos){0, 0}
                       : (struct pos){lo - 1, q->chunks[lo - 1]->n};
    const struct bchunk *ch = q->chunks[lo];
    uint32_t l = 0, h = ch->n;
    while (l < h) {
        uint32_t mid = l + (h - l) / 2;
        if (ch->items[mid].key >= key)
            l = mid + 1;
        else
            h = mid;
    }
    return (struct pos){lo, l};
}

/* The item just before p, if any. */
static bool before(const struct bqueue *q, struct pos p, struct pos *out)
{
    if (p.i > 0) {
        *out = (struct pos){p.c, p.i - 1};
        return true;
    }
    if (p.c == 0)
        return false;
    *out = (struct pos){p.c - 1, q->chunks[p.c - 1]->n - 1};
    return true;
}

static struct bitem *at(const struct bqueue *q, struct pos p)
{
    return &q->chunks[p.c]->items[p.i];
}

static struct pos find(const struct bqueue *q, const struct bcast *b)
{
    struct pos p = lower(q, key_of(b));
    while (before(q, p, &p) && at(q, p)->b != b)
        ; /* keys are unique but for wrapped ids: rarely loops */
    return p;
}

static void remove_at(struct bqueue *q, struct pos p)
{
    struct bchunk *ch = q->chunks[p.c];
    memmove(ch->items + p.i, ch->items + p.i + 1,
            (ch->n - p.i - 1) * sizeof *ch->items);
    ch->n--;
    q->n--;
    if (ch->n == 0) {
        hs_free(ch);
        memmove(q->chunks + p.c, q->chunks + p.c + 1,
                (q->nchunks - p.c - 1) * sizeof *q->chunks);
        q->nchunks--;
        return;
    }
    /* Keep chunks at least a quarter full: join a small one with its
     * next when both fit in half a chunk. */
    if (p.c + 1 < q->nchunks) {
        struct bchunk *next = q->chunks[p.c + 1];
        if (ch->n + next->n <= CHUNK_MAX / 2 && ch->cap >= ch->n + next->n) {
            memcpy(ch->items + ch->n, next->items,
                   next->n * sizeof *next->items);
            ch->n += next->n;
            hs_free(next);
            memmove(q->chunks + p.c + 1, q->chunks + p.c + 2,
                    (q->nchunks - p.c - 2) * sizeof *q->chunks);
            q->nchunks--;
        }
    }
}

/* Room for one more chunk pointer. */
static int reserve_chunk(struct bqueue *q)
{
    if (q->nchunks < q->chunks_cap)
        return 0;
    size_t cap = q->chunks_cap ? q->chunks_cap * 2 : 4;
    struct bchunk **cs = hs_realloc(q->chunks, cap * sizeof *cs);
    if (cs == NULL)
        return HS_ENOMEM;
    q->chunks = cs;
    q->chunks_cap = cap;
    return 0;
}

static struct bchunk *chunk_new(uint32_t cap)
{
    struct bchunk *ch = hs_malloc(sizeof *ch + cap * sizeof ch->items[0]);
    if (ch != NULL) {
        ch->n = 0;
        ch->cap = cap;
    }
    return ch;
}

static int insert(struct bqueue *q, struct bcast *b)
{
    uint64_t key = key_of(b);
    if (q->nchunks == 0) {
        struct bchunk *ch;
        if (reserve_chunk(q) || (ch = chunk_new(CHUNK_FIRST)) == NULL)
            return HS_ENOMEM;
        ch->items[ch->n++] = (struct bitem){key, b};
        q->chunks[q->nchunks++] = ch;
        q->n++;
        return 0;
    }
    struct pos p = lower(q, key);
    struct bchunk *ch = q->chunks[p.c];
    if (ch->n == CHUNK_MAX) {
        /* Split: the second half goes to a new chunk after this one. */
        struct bchunk *right;
        if (reserve_chunk(q) || (right = chunk_new(CHUNK_MAX)) == NULL)
            return HS_ENOMEM;
        uint32_t half = CHUNK_MAX / 2;
        memcpy(right->items, ch->items + half,
               (CHUNK_MAX - half) * sizeof *ch->items);
        right->n = CHUNK_MAX - half;
        ch->n = half;
        memmove(q->chunks + p.c + 2, q->chunks + p.c + 1,
                (q->nchunks - p.c - 1) * sizeof *q->chunks);
        q->chunks[p.c + 1] = right;
        q->nchunks++;
        if (p.i > half) {
            p = (struct pos){p.c + 1, p.i - half};
            ch = right;
        }
    } else if (ch->n == ch->cap) {
        uint32_t cap = ch->cap * 2 > CHUNK_MAX ? CHUNK_MAX : ch->cap * 2;
        ch = hs_realloc(ch, sizeof *ch + cap * sizeof ch->items[0]);
        if (ch == NULL)
            return HS_ENOMEM;
        ch->cap = cap;
        q->chunks[p.c] = ch;
    }
    memmove(ch->items + p.i + 1, ch->items + p.i,
            (ch->n - p.i) * sizeof *ch->items);
    ch->items[p.i] = (struct bitem){key, b};
    ch->n++;
    q->n++;
    return 0;
}

static int push(struct bqueue *q, struct bcast *b, struct bcast **slot)
{
    if (slot && *slot) {
        struct bcast *old = *slot;
        remove_at(q, find(q, old));
        finish(q, old);
    }
    if (insert(q, b)) {
        hs_free(b);
        return HS_ENOMEM;
    }
    if (slot)
        *slot = b;
    /* Bounded: drop the message that has been sent the most (the first in
     * the queue); never the one just queued. */
    while (q->max_items && q->n > q->max_items) {
        struct pos p = {0, 0};
        if (at(q, p)->b == b)
            p = q->chunks[0]->n > 1 ? (struct pos){0, 1} : (struct pos){1, 0};
        struct bcast *victim = at(q, p)->b;
        remove_at(q, p);
        q->dropped++;
        finish(q, victim);
    }
    HS_INVARIANT(queue_ok(q));
    return 0;
}

static struct bcast *bcast_new(struct bqueue *q, struct bcast **slot,
                               size_t len, size_t stored, bool notify)
{
    struct bcast *b = hs_malloc(sizeof *b + stored);
    if (b == NULL)
        return NULL;
    b->transmits = 0;
    b->len = (uint32_t)len;
    b->id = ++q->next_id;
    b->slot = slot;
    b->notify = notify;
    b->lazy = false;
    return b;
}

int bqueue_push(struct bqueue *q, struct bcast **slot, const void *msg,
                size_t len, bool notify)
{
    if (len > UINT32_MAX)
        return HS_ETOOBIG;
    struct bcast *b = bcast_new(q, slot, len, len, notify);
    if (b == NULL)
        return HS_ENOMEM;
    memcpy(b->msg, msg, len);
    return push(q, b, slot);
}

int bqueue_push_lazy(struct bqueue *q, struct bcast **slot, size_t len,
                     bool notify)
{
    if (len > UINT32_MAX)
        return HS_ETOOBIG;
    if (slot == NULL || q->encode == NULL)
        return HS_EINVAL;
    struct bcast *b = bcast_new(q, slot, len, 0, notify);
    if (b == NULL)
        return HS_ENOMEM;
    b->lazy = true;
    return push(q, b, slot);
}

void bqueue_disown(struct bqueue *q, struct bcast **slot)
{
    struct bcast *b = *slot;
    if (b == NULL)
        return;
    *slot = NULL;
    struct pos p = find(q, b);
    if (b->lazy) {
        /* Its owner goes: keep the message as it reads now. */
        struct buf m = BUF_INIT;
        q->encode(q->ud, slot, &m);
        struct bcast *c = NULL;
        if (!m.err && m.len == b->len)
            c = hs_malloc(sizeof *c + m.len);
        if (c == NULL) {
            remove_at(q, p);
            b->slot = NULL;
            finish(q, b);
        } else {
            *c = *b;
            c->lazy = false;
            memcpy(c->msg, m.data, m.len);
            at(q, p)->b = c;
            hs_free(b);
            b = c;
        }
        buf_free(&m);
    }
    b->slot = NULL;
    HS_INVARIANT(queue_ok(q));
}

/* The next item to send with a key >= `key`, if any. */
static bool next_ge(const struct bqueue *q, uint64_t key, struct pos *p)
{
    return before(q, lower(q, key), p);
}

/* Append b's message; false if a lazy owner's news changed length without
 * a new push (a bug elsewhere, but never a packet over its limit). */
static bool write_msg(struct bqueue *q, const struct bcast *b, struct buf *out)
{
    if (!b->lazy)
        return buf_append(out, b->msg, b->len) == 0;
    size_t before = out->len;
    q->encode(q->ud, b->slot, out);
    if (out->err || out->len - before != b->len) {
        out->len = before;
        return false;
    }
    return true;
}

/* A taken message leaves the queue at once; those to send again go back
 * one tier up after the packet is full, so that one packet never carries
 * a message twice. */
void bqueue_take(struct bqueue *q, size_t overhead, size_t limit,
                 int transmit_limit, struct buf *out, size_t *lens, size_t max,
                 size_t *n)
{
    *n = 0;
    if (q->n == 0)
        return;
    size_t used = 0, nre = 0, ndone = 0;
    struct bcast *re[256];
    struct bcast *done[512]; /* taken to the limit, and spares */
    const struct bchunk *last = q->chunks[q->nchunks - 1];
    uint32_t tier = last->items[last->n - 1].b->transmits;
    while (*n < max && nre < HS_ARRAY_LEN(re) && ndone < HS_ARRAY_LEN(re)) {
        if (used + overhead >= limit)
            break;
        size_t free_bytes = limit - used - overhead;
        /* The first message of this tier no longer than free_bytes: in
         * queue order that is the largest that fits, newest first. */
        struct pos p;
        struct bcast *b =
            next_ge(q, make_key(tier, free_bytes, KEY_ID_MASK), &p)
                ? at(q, p)->b
                : NULL;
        if (b == NULL || b->transmits != tier || b->len > free_bytes) {
            /* Nothing fits in this tier: go to the next one, if any. */
            if (tier >= 1023)
                break; /* the key cannot tell higher tiers apart */
            if (!next_ge(q, make_key(tier + 1, 0xffff, KEY_ID_MASK), &p))
                break;
            tier = at(q, p)->b->transmits;
            continue;
        }
        remove_at(q, p);
        if (!write_msg(q, b, out)) {
            done[ndone++] = b;
            continue;
        }
        lens[(*n)++] = b->len;
        used += overhead + b->len;
        if ((int)b->transmits + 1 >= transmit_limit) {
            done[ndone++] = b;
        } else {
            b->transmits++;
            re[nre++] = b;
        }
    }
    /* Back in the queue; one that finds no memory for it is dropped. */
    for (size_t i = 0; i < nre; i++)
        if (insert(q, re[i]))
            finish(q, re[i]);
    for (size_t i = 0; i < ndone; i++)
        finish(q, done[i]);
    HS_INVARIANT(queue_ok(q));
}
