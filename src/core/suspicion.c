/* suspicion.c: Lifeguard suspicion timers (memberlist suspicion.go). */
#include "core/suspicion.h"

#include <math.h>
#include <string.h>

#include "core/node_int.h"

uint64_t suspicion_timeout(int mult, size_t n, uint64_t interval_ms)
{
    double scale = log10(n > 1 ? (double)n : 1.0);
    if (scale < 1.0)
        scale = 1.0;
    /* memberlist keeps three decimals of the scale, truncated. */
    uint64_t scale1000 = (uint64_t)(scale * 1000.0);
    return (uint64_t)mult * scale1000 * interval_ms / 1000;
}

int64_t suspicion_remaining(int confirmations, int k, uint64_t elapsed,
                            uint64_t min, uint64_t max)
{
    double frac = log((double)confirmations + 1.0) / log((double)k + 1.0);
    double raw = (double)max / 1000.0 -
                 frac * ((double)max / 1000.0 - (double)min / 1000.0);
    double ms = floor(1000.0 * raw);
    int64_t timeout = (int64_t)ms;
    if (timeout < (int64_t)min)
        timeout = (int64_t)min;
    return timeout - (int64_t)elapsed;
}

static void expired(struct timer *t)
{
    struct suspicion *s = HS_CONTAINER_OF(t, struct suspicion, timer);
    struct node *nd = s->node;
    struct member *m = s->m;
    /* Still suspect, and for the same accusation? Then it is dead. */
    if (m->state != MEMBER_SUSPECT || m->state_change != s->change) {
        suspicion_cancel(nd, m);
        return;
    }
    int n = s->n, k = s->k;
    struct wire_suspect d = {m->incarnation, wire_raw(m->name, m->name_len),
                             wire_raw(nd->cfg.name, nd->self_name_len)};
    HS_INFO(nd->log, "marking member failed: member=%s confirmations=%d/%d",
            m->name, n, k);
    /* members_on_dead cancels (frees) this suspicion. */
    members_on_dead(nd, &d);
}

int suspicion_start(struct node *nd, struct member *m, const char *from,
                    size_t fromlen, int k, uint64_t min, uint64_t max,
                    uint64_t now)
{
    suspicion_cancel(nd, m);
    size_t slots = (size_t)(k > 0 ? k : 0) + 1;
    struct suspicion *s = hs_calloc(1, sizeof *s + slots * sizeof(char *));
    if (s == NULL)
        return HS_ENOMEM;
    s->node = nd;
    s->m = m;
    s->start = now;
    s->min = min;
    s->max = max;
    s->k = k;
    s->change = m->state_change;
    /* The accuser cannot also confirm. */
    s->from[0] = hs_strndup(from, fromlen);
    s->nfrom = s->from[0] ? 1 : 0;
    timer_init(&s->timer, expired);
    m->suspicion = s;
    node_arm(nd, &s->timer, now + (k < 1 ? min : max));
    return 0;
}

bool suspicion_confirm(struct suspicion *s, const char *from, size_t len,
                       uint64_t now)
{
    if (s->n >= s->k)
        return false;
    for (size_t i = 0; i < s->nfrom; i++)
        if (strlen(s->from[i]) == len &&
            (len == 0 || memcmp(s->from[i], from, len) == 0))
            return false; /* from may be NULL when len is 0 */
    char *copy = hs_strndup(from, len);
    if (copy == NULL)
        return false;
    s->from[s->nfrom++] = copy;
    s->n++;
    int64_t left =
        suspicion_remaining(s->n, s->k, now - s->start, s->min, s->max);
    node_arm(s->node, &s->timer, left > 0 ? now + (uint64_t)left : now);
    HS_DEBUG(s->node->log,
             "suspicion confirmed: member=%s from=%s "
             "confirmations=%d/%d remaining=%lldms",
             s->m->name, copy, s->n, s->k, (long long)(left > 0 ? left : 0));
    return true;
}

void suspicion_cancel(struct node *nd, struct member *m)
{
    struct suspicion *s = m->suspicion;
    if (s == NULL)
        return;
    node_disarm(nd, &s->timer);
    for (size_t i = 0; i < s->nfrom; i++)
        hs_free(s->from[i]);
    hs_free(s);
    m->suspicion = NULL;
}
