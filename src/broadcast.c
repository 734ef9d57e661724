/* broadcast.c: transmit-limited broadcast queue as a sorted array.
 *
 * The order is (transmits ascending, length descending, id descending),
 * memberlist's btree order, folded into one key. The array holds it
 * backwards: the next message to send is the last item. Sending takes
 * from the end and puts the messages back one tier up, so the work of a
 * packet is the size of the lowest tiers, not of the queue: a node that
 * has just learned of thousands of members queues thousands of messages
 * (a simulated bootstrap of N nodes queues N * N). */
#include "broadcast.h"

#include <math.h>
#include <string.h>


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
    for (size_t i = 0; i < q->n; i++) {
        struct bcast *b = q->items[i].b;
        if (b->slot && *b->slot == b)
            *b->slot = NULL;
        hs_free(b);
    }
    hs_free(q->items);
    q->items = NULL;
    q->n = q->cap = 0;
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

/* How many items have a key >= `key`: they are items[0 .. count). */
static size_t count_ge(const struct bqueue *q, uint64_t key)
{
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (q->items[mid].key >= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t find(const struct bqueue *q, const struct bcast *b)
{
    size_t i = count_ge(q, key_of(b));
    while (i > 0 && q->items[i - 1].b != b)
        i--; /* keys are unique but for wrapped ids: rarely loops */
    return i - 1;
}

static void remove_at(struct bqueue *q, size_t i)
{
    memmove(q->items + i, q->items + i + 1,
            (q->n - i - 1) * sizeof *q->items);
    q->n--;
}

static int insert(struct bqueue *q, struct bcast *b)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct bitem *items = hs_realloc(q->items, cap * sizeof *items);
        if (items == NULL)
            return HS_ENOMEM;
        q->items = items;
        q->cap = cap;
    }
    uint64_t key = key_of(b);
    size_t i = count_ge(q, key);
    memmove(q->items + i + 1, q->items + i, (q->n - i) * sizeof *q->items);
    q->items[i] = (struct bitem){key, b};
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
     * the array); never the one just queued. */
    while (q->max_items && q->n > q->max_items) {
        size_t i = q->items[0].b == b ? 1 : 0;
        struct bcast *victim = q->items[i].b;
        remove_at(q, i);
        q->dropped++;
        finish(q, victim);
    }
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
    size_t i = find(q, b);
    if (b->lazy) {
        /* Its owner goes: keep the message as it reads now. */
        struct buf m = BUF_INIT;
        q->encode(q->ud, slot, &m);
        struct bcast *c = NULL;
        if (!m.err && m.len == b->len)
            c = hs_malloc(sizeof *c + m.len);
        if (c == NULL) {
            remove_at(q, i);
            b->slot = NULL;
            finish(q, b);
        } else {
            *c = *b;
            c->lazy = false;
            memcpy(c->msg, m.data, m.len);
            q->items[i].b = c;
            hs_free(b);
            b = c;
        }
        buf_free(&m);
    }
    b->slot = NULL;
}
/* Put the reinserted items (sorted here) back into the array, whose
 * taken items (b == NULL) all lie at or after `from`: only items[from ..]
 * move, compacted in place and then merged with the reinserted ones from
 * the end. There are never more reinserted than taken items, so the array
 * does not grow. */
static void merge_back(struct bqueue *q, size_t from, struct bitem *add,
                       size_t k)
{
    for (size_t i = 1; i < k; i++) { /* insertion sort, descending: k is
                                      * small */
        struct bitem x = add[i];
        size_t j = i;
        while (j > 0 && add[j - 1].key < x.key) {
            add[j] = add[j - 1];
            j--;
        }
        add[j] = x;
    }
    if (k > 0) {
        size_t at = count_ge(q, add[0].key);
        if (at < from)
            from = at;
    }
    size_t live = from;
    for (size_t i = from; i < q->n; i++)
        if (q->items[i].b)
            q->items[live++] = q->items[i];
    size_t a = live, b = k, out = live + k;
    while (b > 0) {
        if (a > from && q->items[a - 1].key < add[b - 1].key)
            q->items[--out] = q->items[--a];
        else
            q->items[--out] = add[--b];
    }
    q->n = live + k;
}

/* The index of the next item to send with a key >= `key` that is still
 * in the array (not taken in this call), or SIZE_MAX. */
static size_t next_ge(const struct bqueue *q, uint64_t key)
{
    size_t i = count_ge(q, key);
    while (i > 0 && q->items[i - 1].b == NULL)
        i--; /* taken already in this call */
    return i > 0 ? i - 1 : SIZE_MAX;
}

/* Append b's message; false if a lazy owner's news changed length without
 * a new push (a bug elsewhere, but never a packet over its limit). */
static bool write_msg(struct bqueue *q, const struct bcast *b,
                      struct buf *out)
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

/* Taking marks each message it takes (b = NULL) instead of moving the
 * array, so a packet's worth of messages costs one pass over the part of
 * the array it touched. */
void bqueue_take(struct bqueue *q, size_t overhead, size_t limit,
                 int transmit_limit, struct buf *out, size_t *lens,
                 size_t max, size_t *n)
{
    *n = 0;
    if (q->n == 0)
        return;
    size_t used = 0, nre = 0, ndone = 0, from = q->n;
    struct bitem re[256];
    struct bcast *done[512]; /* taken to the limit, and spares */
    uint32_t tier = q->items[q->n - 1].b->transmits;
    while (*n < max && nre < HS_ARRAY_LEN(re) &&
           ndone < HS_ARRAY_LEN(re)) {
        if (used + overhead >= limit)
            break;
        size_t free_bytes = limit - used - overhead;
        /* The first message of this tier no longer than free_bytes: in
         * queue order that is the largest that fits, newest first. */
        size_t i = next_ge(q, make_key(tier, free_bytes, KEY_ID_MASK));
        if (i == SIZE_MAX || q->items[i].b->transmits != tier ||
            q->items[i].b->len > free_bytes) {
            /* Nothing fits in this tier: go to the next one, if any. */
            if (tier >= 1023)
                break; /* the key cannot tell higher tiers apart */
            size_t j = next_ge(q, make_key(tier + 1, 0xffff, KEY_ID_MASK));
            if (j == SIZE_MAX)
                break;
            tier = q->items[j].b->transmits;
            continue;
        }
        struct bcast *b = q->items[i].b;
        q->items[i].b = NULL;
        if (i < from)
            from = i;
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
            re[nre++] = (struct bitem){key_of(b), b};
        }
    }
    if (from < q->n)
        merge_back(q, from, re, nre);
    for (size_t i = 0; i < ndone; i++)
        finish(q, done[i]);
}
