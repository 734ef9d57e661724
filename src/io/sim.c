/* sim.c: a simulated network under a virtual clock (sim.h): the node
 * table, and each node's life: added, killed, restarted, paused. The
 * rest is in sim_*.c (sim_int.h says which piece does what). */
#include "io/sim_int.h"

#include <string.h>

/* ===== Nodes ===== */

void sim_set_backlog(struct sim *s, size_t n)
{
    s->backlog = n;
}

int sim_new(uint64_t seed, struct sim **out)
{
    struct sim *s = hs_calloc(1, sizeof *s);
    if (s == NULL)
        return HS_ENOMEM;
    hs_rng_seed(&s->rng, seed);
    s->link = sim_link_default();
    s->log_level = HS_LOG_OFF;
    s->backlog = BACKLOG_DEFAULT;
    *out = s;
    return 0;
}

void sim_free(struct sim *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        struct snode *sn = s->nodes[i];
        if (sn->nd && s->life_fn)
            s->life_fn(s->life_ud, i, sn->nd, false);
        node_close(sn->nd);
        sn->nd = NULL;
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        struct snode *sn = s->nodes[i];
        for (size_t j = 0; j < sn->nbacklog; j++)
            ev_drop(sn->backlog[sn->head + j]);
        hs_free(sn->backlog);
        config_free(&sn->cfg);
        hs_free(sn);
    }
    while (s->n)
        ev_drop(ev_pop(s));
    hs_free(s->pairs);
    hs_free(s->blocks);
    hs_free(s->heap);
    hs_free(s->nodes);
    hs_free(s);
}

void sim_set_lifecycle(struct sim *s, sim_life_fn fn, void *ud)
{
    s->life_fn = fn;
    s->life_ud = ud;
}

bool sim_paused(const struct sim *s, size_t idx)
{
    return idx < s->nnodes && s->nodes[idx]->paused_until > s->now;
}

static int boot(struct snode *sn)
{
    struct sim *s = sn->sim;
    struct node *nd;
    int rc = node_new(&sn->cfg, &sn->io, &sn->hooks, &sn->log, &nd);
    if (rc)
        return rc;
    sn->nd = nd;
    sn->raised = 0;
    node_set_observer(nd, obs_event, sn);
    if (s->life_fn)
        s->life_fn(s->life_ud, sn->idx, nd, true);
    rc = node_start(nd, &sn->addr);
    if (rc) {
        if (s->life_fn)
            s->life_fn(s->life_ud, sn->idx, nd, false);
        node_close(nd);
        sn->nd = NULL;
    }
    return rc;
}

int sim_add(struct sim *s, const struct config *cfg, const struct hooks *hooks,
            size_t *idx)
{
    if (s->nnodes >= (1u << 24) - 2 || sim_find(s, cfg->name) >= 0)
        return HS_EINVAL;
    if (s->nnodes == s->capnodes) {
        size_t cap = s->capnodes ? s->capnodes * 2 : 16;
        struct snode **nn = hs_realloc(s->nodes, cap * sizeof *nn);
        if (nn == NULL)
            return HS_ENOMEM;
        s->nodes = nn;
        s->capnodes = cap;
    }
    struct snode *sn = hs_calloc(1, sizeof *sn);
    if (sn == NULL || config_copy(&sn->cfg, cfg)) {
        hs_free(sn);
        return HS_ENOMEM;
    }
    sn->sim = s;
    sn->idx = (uint32_t)s->nnodes;
    size_t id = s->nnodes + 1;
    uint8_t ip[4] = {10, (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    addr_from_raw(ip, 4, 7946, &sn->addr);
    if (hooks)
        sn->hooks = *hooks;
    sn->io = io_of(sn);
    sn->log = (struct hs_logger){s->sink ? s->log_level : HS_LOG_OFF,
                                 obs_log_sink, sn};
    s->nodes[s->nnodes++] = sn;
    int rc = boot(sn);
    if (rc)
        return rc;
    *idx = sn->idx;
    return 0;
}

size_t sim_count(const struct sim *s)
{
    return s->nnodes;
}

struct node *sim_node(struct sim *s, size_t idx)
{
    return idx < s->nnodes ? s->nodes[idx]->nd : NULL;
}

const char *sim_name(const struct sim *s, size_t idx)
{
    return idx < s->nnodes ? s->nodes[idx]->cfg.name : NULL;
}

struct hs_addr sim_addr(const struct sim *s, size_t idx)
{
    return s->nodes[idx]->addr;
}

long sim_find(const struct sim *s, const char *name)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (!strcmp(s->nodes[i]->cfg.name, name))
            return (long)i;
    return -1;
}

bool sim_alive(const struct sim *s, size_t idx)
{
    return idx < s->nnodes && s->nodes[idx]->nd != NULL;
}

void sim_kill(struct sim *s, size_t idx)
{
    if (idx >= s->nnodes || s->nodes[idx]->nd == NULL)
        return;
    struct snode *sn = s->nodes[idx];
    /* A crash: the core never hears about its streams again; the peers
     * see their connections reset. */
    struct node *nd = sn->nd;
    if (s->life_fn)
        s->life_fn(s->life_ud, idx, nd, false);
    sn->nd = NULL;
    sn->epoch++;
    sn->wake_gen++;
    sn->paused_until = 0;
    node_close(nd); /* closes its streams through io_stream_close */
    backlog_reset(s, sn);
}

int sim_restart(struct sim *s, size_t idx)
{
    if (idx >= s->nnodes)
        return HS_EINVAL;
    sim_kill(s, idx);
    return boot(s->nodes[idx]);
}

void sim_pause(struct sim *s, size_t idx, uint64_t ms)
{
    if (idx < s->nnodes)
        s->nodes[idx]->paused_until = s->now + ms;
}

void sim_set_slow(struct sim *s, size_t idx, uint64_t ms)
{
    if (idx < s->nnodes)
        s->nodes[idx]->slow_ms = ms;
}

void sim_set_clock_offset(struct sim *s, size_t idx, int64_t ms)
{
    if (idx < s->nnodes)
        s->nodes[idx]->clock_offset = ms;
}
