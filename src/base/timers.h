/* timers.h: the core's timers, a min-heap of deadlines in one struct.
 *
 * The protocol core never owns an OS timer: it keeps its deadlines here
 * and asks the io layer for one wake-up at the earliest (io.h). Time is
 * always an argument. Timers are embedded in their owners (container_of);
 * equal deadlines fire in the order they were armed, so runs are
 * deterministic. */
#ifndef HS_TIMERS_H
#define HS_TIMERS_H

#include "base/hs.h"

struct timer;
typedef void (*timer_fn)(struct timer *t);

struct timer {
    uint64_t at;
    uint64_t order; /* arming sequence: ties fire first-armed first */
    size_t slot;    /* position in the heap, SIZE_MAX when idle */
    timer_fn fn;
};

struct timers {
    struct timer **heap;
    size_t n, cap;
    uint64_t next_order;
};

void timers_init(struct timers *ts);
void timers_close(struct timers *ts);
void timer_init(struct timer *t, timer_fn fn);
static inline bool timer_active(const struct timer *t)
{
    return t->slot != SIZE_MAX;
}
/* (Re)arm t to fire at `at`. Returns 0 or HS_ENOMEM. */
int timer_start(struct timers *ts, struct timer *t, uint64_t at);
void timer_stop(struct timers *ts, struct timer *t);
/* The earliest deadline, or UINT64_MAX when none is armed. */
uint64_t timers_next(const struct timers *ts);
/* Fire every timer due at or before `now`, earliest first. A callback may
 * arm and stop timers, itself included. Returns how many fired. */
size_t timers_run(struct timers *ts, uint64_t now);

#endif
