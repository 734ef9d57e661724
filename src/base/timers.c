/* timers.c: binary min-heap of timers keyed by (deadline, arming order). */
#include "base/timers.h"

void timers_init(struct timers *ts)
{
    ts->heap = NULL;
    ts->n = ts->cap = 0;
    ts->next_order = 0;
}

void timers_close(struct timers *ts)
{
    for (size_t i = 0; i < ts->n; i++)
        ts->heap[i]->slot = SIZE_MAX;
    hs_free(ts->heap);
    timers_init(ts);
}

void timer_init(struct timer *t, timer_fn fn)
{
    t->at = 0;
    t->order = 0;
    t->slot = SIZE_MAX;
    t->fn = fn;
}

static bool before(const struct timer *a, const struct timer *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

/* The heap's invariant: each timer knows its slot, and no timer fires
 * before its parent. */
static bool heap_ok(const struct timers *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        if (ts->heap[i]->slot != i)
            return false;
        if (i > 0 && before(ts->heap[i], ts->heap[(i - 1) / 2]))
            return false;
    }
    return ts->n <= ts->cap;
}

static void place(struct timers *ts, size_t i, struct timer *t)
{
    ts->heap[i] = t;
    t->slot = i;
}

static void sift_up(struct timers *ts, size_t i)
{
    struct timer *t = ts->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, ts->heap[parent]))
            break;
        place(ts, i, ts->heap[parent]);
        i = parent;
    }
    place(ts, i, t);
}

static void sift_down(struct timers *ts, size_t i)
{
    struct timer *t = ts->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct timer *best = t;
        if (l < ts->n && before(ts->heap[l], best)) {
            m = l;
            best = ts->heap[l];
        }
        if (r < ts->n && before(ts->heap[r], best))
            m = r;
        if (m == i)
            break;
        place(ts, i, ts->heap[m]);
        i = m;
    }
    place(ts, i, t);
}

static void remove_at(struct timers *ts, size_t i)
{
    struct timer *t = ts->heap[i];
    t->slot = SIZE_MAX;
    ts->n--;
    if (i == ts->n)
        return;
    struct timer *moved = ts->heap[ts->n];
    place(ts, i, moved);
    sift_down(ts, i);
    sift_up(ts, moved->slot);
}

int timer_start(struct timers *ts, struct timer *t, uint64_t at)
{
    if (timer_active(t))
        remove_at(ts, t->slot);
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 16;
        struct timer **h = hs_realloc(ts->heap, cap * sizeof *h);
        if (h == NULL)
            return HS_ENOMEM;
        ts->heap = h;
        ts->cap = cap;
    }
    t->at = at;
    t->order = ts->next_order++;
    place(ts, ts->n++, t);
    sift_up(ts, ts->n - 1);
    HS_INVARIANT(heap_ok(ts));
    return 0;
}

void timer_stop(struct timers *ts, struct timer *t)
{
    if (timer_active(t))
        remove_at(ts, t->slot);
    HS_INVARIANT(heap_ok(ts));
}

uint64_t timers_next(const struct timers *ts)
{
    return ts->n ? ts->heap[0]->at : UINT64_MAX;
}

size_t timers_run(struct timers *ts, uint64_t now)
{
    size_t fired = 0;
    while (ts->n > 0 && ts->heap[0]->at <= now) {
        struct timer *t = ts->heap[0];
        remove_at(ts, 0);
        HS_INVARIANT(heap_ok(ts));
        fired++;
        t->fn(t);
    }
    return fired;
}
