/* broadcast.c: transmit-limited broadcast queue as a sorted array.
 *
 * The array is ordered by (transmits ascending, length descending, id
 * descending), memberlist's btree order. Queues hold at most a few
 * thousand messages (one per member at most for membership news), so
 * binary search plus memmove is simple and fast. */
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

static size_t lower_bound(const struct bqueue *q, uint64_t key)
{
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (q->items[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t find(const struct bqueue *q, const struct bcast *b)
{
    size_t i = lower_bound(q, key_of(b));
    while (i < q->n && q->items[i].b != b)
        i++; /* keys are unique but for wrapped ids: rarely loops */
    return i;
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
    size_t i = lower_bound(q, key);
    memmove(q->items + i + 1, q->items + i, (q->n - i) * sizeof *q->items);
    q->items[i] = (struct bitem){key, b};
    q->n++;
    return 0;
}

int bqueue_push(struct bqueue *q, struct bcast **slot, const void *msg,
                size_t len, bool notify)
{
    if (len > UINT32_MAX)
        return HS_ETOOBIG;
    struct bcast *b = hs_malloc(sizeof *b + len);
    if (b == NULL)
        return HS_ENOMEM;
    b->transmits = 0;
    b->len = (uint32_t)len;
    b->id = ++q->next_id;
    b->slot = slot;
    b->notify = notify;
    memcpy(b->msg, msg, len);
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
    /* Bounded: drop the message that has been sent the most (the last in
     * order); never the one just queued. */
    while (q->max_items && q->n > q->max_items) {
        struct bcast *victim = q->items[q->n - 1].b;
        if (victim == b)
            victim = q->items[q->n - 2].b;
        remove_at(q, find(q, victim));
        q->dropped++;
        finish(q, victim);
    }
    return 0;
}

void bqueue_disown(struct bqueue *q, struct bcast **slot)
{
    (void)q;
    if (*slot) {
        (*slot)->slot = NULL;
        *slot = NULL;
    }
}

/* Put the reinserted items (sorted here) back: one merge from the end,
 * into an array compacted of the items taken (b == NULL). */
static int merge_back(struct bqueue *q, struct bitem *add, size_t k)
{
    for (size_t i = 1; i < k; i++) { /* insertion sort: k is small */
        struct bitem x = add[i];
        size_t j = i;
        while (j > 0 && add[j - 1].key > x.key) {
            add[j] = add[j - 1];
            j--;
        }
        add[j] = x;
    }
    size_t live = 0;
    for (size_t i = 0; i < q->n; i++)
        if (q->items[i].b)
            q->items[live++] = q->items[i];
    q->n = live;
    if (q->n + k > q->cap) {
        size_t cap = q->cap ? q->cap : 16;
        while (cap < q->n + k)
            cap *= 2;
        struct bitem *items = hs_realloc(q->items, cap * sizeof *items);
        if (items == NULL)
            return HS_ENOMEM;
        q->items = items;
        q->cap = cap;
    }
    size_t a = q->n, b = k, out = q->n + k;
    while (b > 0) {
        if (a > 0 && q->items[a - 1].key > add[b - 1].key)
            q->items[--out] = q->items[--a];
        else
            q->items[--out] = add[--b];
    }
    q->n += k;
    return 0;
}

/* Taking marks each message it takes (b = NULL) instead of moving the
 * array, so a packet's worth of messages costs one pass over the queue,
 * not two moves each. */
void bqueue_take(struct bqueue *q, size_t overhead, size_t limit,
                 int transmit_limit, struct buf *out, size_t *lens,
                 size_t max, size_t *n)
{
    *n = 0;
    if (q->n == 0)
        return;
    size_t used = 0, nre = 0, ndone = 0;
    struct bitem re[256];
    struct bcast *done[512]; /* taken to the limit, and spares */
    uint32_t tier = q->items[0].b->transmits;
    while (*n < max && nre < HS_ARRAY_LEN(re) &&
           ndone < HS_ARRAY_LEN(re)) {
        if (used + overhead >= limit)
            break;
        size_t free_bytes = limit - used - overhead;
        /* The first message of this tier no longer than free_bytes: in
         * queue order that is the largest that fits, newest first. */
        size_t i = lower_bound(q, make_key(tier, free_bytes, KEY_ID_MASK));
        while (i < q->n && q->items[i].b == NULL)
            i++; /* taken already in this call */
        if (i >= q->n || q->items[i].b->transmits != tier ||
            q->items[i].b->len > free_bytes) {
            /* Nothing fits in this tier: go to the next one, if any. */
            if (tier >= 1023)
                break; /* the key cannot tell higher tiers apart */
            size_t j = lower_bound(q, make_key(tier + 1, 0xffff,
                                               KEY_ID_MASK));
            while (j < q->n && q->items[j].b == NULL)
                j++;
            if (j >= q->n)
                break;
            tier = q->items[j].b->transmits;
            continue;
        }
        struct bcast *b = q->items[i].b;
        q->items[i].b = NULL;
        buf_append(out, b->msg, b->len);
        lens[(*n)++] = b->len;
        used += overhead + b->len;
        if ((int)b->transmits + 1 >= transmit_limit) {
            done[ndone++] = b;
        } else {
            b->transmits++;
            re[nre++] = (struct bitem){key_of(b), b};
        }
    }
    if (merge_back(q, re, nre)) {
        for (size_t i = 0; i < nre; i++) /* out of memory: let them go */
            done[ndone++] = re[i].b;
    }
    for (size_t i = 0; i < ndone; i++)
        finish(q, done[i]);
}
