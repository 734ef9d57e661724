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
        struct bcast *b = q->items[i];
        if (b->slot && *b->slot == b)
            *b->slot = NULL;
        hs_free(b);
    }
    hs_free(q->items);
    q->items = NULL;
    q->n = q->cap = 0;
}

/* True if a sorts before b. */
static bool before(const struct bcast *a, const struct bcast *b)
{
    if (a->transmits != b->transmits)
        return a->transmits < b->transmits;
    if (a->len != b->len)
        return a->len > b->len;
    return a->id > b->id;
}

static size_t lower_bound(const struct bqueue *q, const struct bcast *key)
{
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (before(q->items[mid], key))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t find(const struct bqueue *q, const struct bcast *b)
{
    size_t i = lower_bound(q, b);
    while (i < q->n && q->items[i] != b)
        i++; /* ids are unique, so this loop runs at most once */
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
        struct bcast **items = hs_realloc(q->items, cap * sizeof *items);
        if (items == NULL)
            return HS_ENOMEM;
        q->items = items;
        q->cap = cap;
    }
    size_t i = lower_bound(q, b);
    memmove(q->items + i + 1, q->items + i, (q->n - i) * sizeof *q->items);
    q->items[i] = b;
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
        struct bcast *victim = q->items[q->n - 1];
        if (victim == b)
            victim = q->items[q->n - 2];
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

void bqueue_take(struct bqueue *q, size_t overhead, size_t limit,
                 int transmit_limit, struct buf *out, size_t *lens,
                 size_t max, size_t *n)
{
    *n = 0;
    if (q->n == 0)
        return;
    size_t used = 0;
    struct bcast *reinsert[256];
    size_t nre = 0;
    uint32_t tier = q->items[0]->transmits;
    while (*n < max && nre < HS_ARRAY_LEN(reinsert)) {
        if (used + overhead >= limit)
            break;
        size_t free_bytes = limit - used - overhead;
        /* The first message of this tier no longer than free_bytes: in
         * array order that is the largest that fits, newest first. */
        struct bcast key = {tier, (uint32_t)HS_MIN(free_bytes, UINT32_MAX),
                            UINT64_MAX, NULL, false};
        size_t i = lower_bound(q, &key);
        if (i >= q->n || q->items[i]->transmits != tier) {
            /* Nothing fits in this tier: go to the next one, if any. */
            size_t j = i;
            while (j < q->n && q->items[j]->transmits == tier)
                j++;
            if (j >= q->n)
                break;
            tier = q->items[j]->transmits;
            continue;
        }
        struct bcast *b = q->items[i];
        buf_append(out, b->msg, b->len);
        lens[(*n)++] = b->len;
        used += overhead + b->len;
        remove_at(q, i);
        if ((int)b->transmits + 1 >= transmit_limit) {
            finish(q, b);
        } else {
            /* Reinsert after the walk, or we would meet it again in the
             * next tier. */
            b->transmits++;
            reinsert[nre++] = b;
        }
    }
    for (size_t i = 0; i < nre; i++)
        if (insert(q, reinsert[i])) {
            finish(q, reinsert[i]); /* out of memory: let it go */
        }
}
