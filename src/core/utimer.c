/* utimer.c: timers for user code. */
#include "core/node_int.h"

/* ===== Timers for user code ===== */

static void utimer_unlink(struct node *nd, struct node_utimer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        nd->utimers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void utimer_fire(struct timer *tm)
{
    struct node_utimer *t = HS_CONTAINER_OF(tm, struct node_utimer, timer);
    struct node *nd = t->nd;
    node_utimer_fn fn = t->fn;
    void *ud = t->ud;
    if (t->repeat) {
        node_arm(nd, tm, node_now(nd) + t->repeat); /* before: fn may cancel */
    } else {
        utimer_unlink(nd, t);
        hs_free(t);
    }
    fn(ud); /* t may be gone now */
}

int node_timer_start(struct node *nd, uint64_t delay, uint64_t repeat,
                     node_utimer_fn fn, void *ud, struct node_utimer **out)
{
    struct node_utimer *t = hs_calloc(1, sizeof *t);
    if (t == NULL)
        return HS_ENOMEM;
    t->nd = nd;
    t->repeat = repeat;
    t->fn = fn;
    t->ud = ud;
    timer_init(&t->timer, utimer_fire);
    t->next = nd->utimers;
    if (nd->utimers)
        nd->utimers->prev = t;
    nd->utimers = t;
    node_arm(nd, &t->timer, node_now(nd) + delay);
    if (out)
        *out = t;
    return 0;
}

void node_timer_cancel(struct node *nd, struct node_utimer *t)
{
    node_disarm(nd, &t->timer);
    utimer_unlink(nd, t);
    hs_free(t);
}

uint64_t node_time(const struct node *nd)
{
    return node_now(nd);
}
