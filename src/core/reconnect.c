/* reconnect.c: failed members tried again now and then (Serf's
 * reconnect_interval). */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

/* ===== Reconnect (Serf's reconnect_interval) ===== */

#define FAILED_MAX 1024

void node_member_failed(struct node *nd, const struct member *m)
{
    if (nd->cfg.reconnect_interval == 0)
        return;
    size_t i = 0;
    while (i < nd->nfailed && strcmp(nd->failed[i].name, m->name))
        i++;
    if (i == nd->nfailed) {
        if (nd->failed == NULL)
            nd->failed = hs_calloc(FAILED_MAX, sizeof *nd->failed);
        if (nd->failed == NULL)
            return;
        if (nd->nfailed == FAILED_MAX) { /* forget the oldest */
            memmove(nd->failed, nd->failed + 1,
                    (FAILED_MAX - 1) * sizeof *nd->failed);
            nd->nfailed--;
        }
        i = nd->nfailed++;
    }
    snprintf(nd->failed[i].name, sizeof nd->failed[i].name, "%s", m->name);
    nd->failed[i].addr = m->addr;
    nd->failed[i].since = node_now(nd);
}

void node_member_back(struct node *nd, const struct member *m)
{
    for (size_t i = 0; i < nd->nfailed; i++) {
        if (strcmp(nd->failed[i].name, m->name) == 0) {
            nd->failed[i] = nd->failed[--nd->nfailed];
            return;
        }
    }
}

void reconnect_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, reconnect_tick);
    node_arm(nd, t, node_now(nd) + nd->cfg.reconnect_interval);
    if (nd->paused || nd->phase != PHASE_RUNNING)
        return;
    uint64_t now = node_now(nd);
    for (size_t i = 0; i < nd->nfailed;) {
        const struct member *m = members_find(&nd->members, nd->failed[i].name,
                                              strlen(nd->failed[i].name));
        if (now - nd->failed[i].since > nd->cfg.reconnect_timeout ||
            (m && m->state == MEMBER_ALIVE))
            nd->failed[i] = nd->failed[--nd->nfailed];
        else
            i++;
    }
    if (nd->nfailed == 0)
        return;
    struct failed *f = &nd->failed[node_rand_n(nd, nd->nfailed)];
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "reconnecting: member=%s addr=%s", f->name,
             addr_format(&f->addr, ab, sizeof ab));
    pushpull_start(nd, &f->addr, true, NULL);
}
