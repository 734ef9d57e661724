/* sim_queue.c: the simulation's event queue (a binary heap ordered by
 * time, then by the order of pushing) and its virtual clock, and running
 * the events in that order. */
#include "io/sim_int.h"

#include <string.h>

static bool ev_before(const struct event *a, const struct event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

/* The heap's order (HS_INVARIANT): no event runs before its parent. */
static bool heap_ok(const struct sim *s)
{
    for (size_t i = 1; i < s->n; i++)
        if (ev_before(s->heap[i], s->heap[(i - 1) / 2]))
            return false;
    return true;
}

void ev_push(struct sim *s, struct event *e)
{
    HS_INVARIANT(e->at >= s->now); /* the clock never goes back */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct event **h = hs_realloc(s->heap, cap * sizeof *h);
        if (h == NULL) {
            hs_free(e);
            return;
        }
        s->heap = h;
        s->cap = cap;
    }
    e->seq = s->seq++;
    size_t i = s->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(e, s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
    HS_INVARIANT(heap_ok(s));
}

struct event *ev_pop(struct sim *s)
{
    struct event *top = s->heap[0];
    struct event *last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct event *best = last;
        if (l < s->n && ev_before(s->heap[l], best)) {
            m = l;
            best = s->heap[l];
        }
        if (r < s->n && ev_before(s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n)
        s->heap[i] = last;
    HS_INVARIANT(heap_ok(s));
    return top;
}

struct event *ev_new(int type, uint64_t at, const struct snode *to,
                     const void *data, size_t len)
{
    struct event *e = hs_calloc(1, sizeof *e + len);
    if (e == NULL)
        return NULL;
    e->type = type;
    e->at = at;
    e->node = to->idx;
    e->epoch = to->epoch;
    e->len = len;
    if (len)
        memcpy(e->data, data, len);
    return e;
}
void ev_drop(struct event *e)
{
    if (e->h)
        half_unref(e->h);
    hs_free(e);
}

uint64_t sim_now(const struct sim *s)
{
    return s->now;
}

/* ===== Running ===== */

bool sim_step(struct sim *s, uint64_t until)
{
    while (s->n > 0 && s->heap[0]->at <= until) {
        struct event *e = ev_pop(s);
        struct snode *sn = s->nodes[e->node];
        if (e->at > s->now)
            s->now = e->at;
        /* A frozen process handles nothing until it thaws. */
        if (sn->paused_until > s->now && sn->nd && e->epoch == sn->epoch) {
            e->at = sn->paused_until;
            ev_push(s, e);
            continue;
        }
        if (!io_deliver(s, e))
            ev_drop(e);
        return true;
    }
    return false;
}

void sim_run(struct sim *s, uint64_t ms)
{
    uint64_t until = s->now + ms;
    while (sim_step(s, until))
        ;
    s->now = until;
}
