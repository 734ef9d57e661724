/* suspicion.h: Lifeguard suspicion timers with confirmations.
 *
 * A suspected member gets a timer that starts at `max` (or `min` when no
 * confirmations are expected) and shrinks as independent nodes confirm the
 * suspicion (Lifeguard, section IV-B "Dynamic suspicion timeouts";
 * memberlist suspicion.go). The math is kept apart from the mechanism in
 * pure functions. A suspicion belongs to its member (m->suspicion). */
#ifndef HS_SUSPICION_H
#define HS_SUSPICION_H

#include "base/timers.h"

struct node;
struct member;

/* min timeout: mult * max(1, log10(max(1, n))) * interval, in ms, with
 * the node-scale rounded down to 1/1000 as memberlist does. */
uint64_t suspicion_timeout(int mult, size_t n, uint64_t interval_ms);
/* Time left after `confirmations` of `k` expected, `elapsed` ms after the
 * start: max - ln(c+1)/ln(k+1) * (max - min), floored to whole ms, never
 * below min, minus elapsed. May be negative (fire now). */
int64_t suspicion_remaining(int confirmations, int k, uint64_t elapsed,
                            uint64_t min, uint64_t max);

struct suspicion {
    struct timer timer;
    struct node *node;
    struct member *m;
    uint64_t start;
    uint64_t min, max;
    uint64_t change; /* the member's state_change when suspected */
    int k;           /* confirmations expected */
    int n;           /* confirmations received */
    size_t nfrom;
    char *from[]; /* who accused: the first, then each confirmer */
};

/* Start a suspicion of m raised by `from`; m->suspicion is set. */
int suspicion_start(struct node *nd, struct member *m, const char *from,
                    size_t fromlen, int k, uint64_t min, uint64_t max,
                    uint64_t now);
/* Count a confirmation from `from`. Returns true if it was new (the
 * suspect message should be re-gossiped). */
bool suspicion_confirm(struct suspicion *s, const char *from, size_t len,
                       uint64_t now);
/* Stop and free m's suspicion, if any. */
void suspicion_cancel(struct node *nd, struct member *m);

#endif
