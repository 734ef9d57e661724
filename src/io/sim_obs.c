/* sim_obs.c: what the simulation lets one see: the nodes' logs, their
 * membership events with the ground truth counted beside them (false
 * suspicions), and whether the cluster has converged. */
#include "io/sim_int.h"

#include <string.h>

/* ===== Logging ===== */

void obs_log_sink(void *ud, int level, const char *msg)
{
    struct snode *sn = ud;
    struct sim *s = sn->sim;
    if (s->sink)
        s->sink(s->sink_ud, sn->cfg.name, s->now, level, msg);
}

void sim_set_event_sink(struct sim *s, sim_event_fn fn, void *ud)
{
    s->event_fn = fn;
    s->event_ud = ud;
}

void sim_set_log(struct sim *s, int level,
                 void (*sink)(void *ud, const char *node, uint64_t now,
                              int level, const char *msg),
                 void *ud)
{
    s->log_level = level;
    s->sink = sink;
    s->sink_ud = ud;
    for (size_t i = 0; i < s->nnodes; i++)
        s->nodes[i]->log.level = sink ? level : HS_LOG_OFF;
}

/* Ground truth for the counters: was the member running, and not
 * frozen, when it was suspected or declared dead? */
void obs_event(void *ud, int event, const struct member *m)
{
    struct snode *sn = ud;
    struct sim *s = sn->sim;
    if (event == HOOK_SUSPECT || event == HOOK_DEAD) {
        const struct snode *t = net_by_addr(s, &m->addr);
        bool running = t && t->nd && t->paused_until <= s->now;
        if (event == HOOK_SUSPECT) {
            /* Raised by its own failed probe (the core counts those just
             * before it suspects), or heard from another node? */
            uint64_t raised = node_stats(sn->nd)->suspicions;
            bool own = raised != sn->raised;
            sn->raised = raised;
            COUNT(sn, suspicions);
            if (running)
                COUNT(sn, false_suspicions);
            if (own)
                COUNT(sn, raised);
            if (own && running)
                COUNT(sn, false_raised);
        } else {
            COUNT(sn, deaths);
            if (running)
                COUNT(sn, false_deaths);
        }
    }
    if (s->event_fn)
        s->event_fn(s->event_ud, sn->idx, event, m);
}

const struct hs_logger *sim_logger(const struct sim *s, size_t idx)
{
    return idx < s->nnodes ? &s->nodes[idx]->log : NULL;
}

const struct sim_stats *sim_stats(const struct sim *s)
{
    return &s->stats;
}

bool sim_converged(struct sim *s)
{
    size_t live = 0;
    for (size_t i = 0; i < s->nnodes; i++)
        live += s->nodes[i]->nd != NULL;
    /* Counts first: until they agree, nothing else needs a look. */
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *nd = s->nodes[i]->nd;
        if (nd && node_members(nd)->count[MEMBER_ALIVE] != live)
            return false;
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *nd = s->nodes[i]->nd;
        if (nd == NULL)
            continue;
        const struct members *t = node_members(nd);
        for (size_t j = 0; j < t->n; j++) {
            const struct member *m = t->order[j];
            if (m->state != MEMBER_ALIVE)
                continue;
            const struct snode *o = net_by_addr(s, &m->addr);
            if (o == NULL || o->nd == NULL || strcmp(o->cfg.name, m->name) != 0)
                return false;
        }
    }
    return true;
}

size_t sim_queued(struct sim *s)
{
    size_t q = 0;
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->nd)
            q += node_broadcast_queue_len(s->nodes[i]->nd);
    return q;
}

size_t sim_count_seeing(struct sim *s, const char *name, int state)
{
    size_t c = 0, len = strlen(name);
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *nd = s->nodes[i]->nd;
        if (nd == NULL)
            continue;
        const struct member *m = members_find(node_members(nd), name, len);
        if (m && m->state == state)
            c++;
    }
    return c;
}

const struct sim_stats *sim_node_stats(const struct sim *s, size_t idx)
{
    return idx < s->nnodes ? &s->nodes[idx]->stats : NULL;
}
