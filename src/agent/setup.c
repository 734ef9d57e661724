/* setup.c: bring a node up on real sockets and take it down again, for
 * the agent and for the Lua module's in-process nodes (setup.h). */
#include "agent/setup.h"

#include <stdio.h>

int agent_setup_open(struct agent_setup *s, const struct config *cfg,
                     uv_loop_t *loop, const struct hs_logger *log,
                     const bool *refuse, char *err, size_t errlen)
{
    *s = (struct agent_setup){.loop = loop, .log = log};
    s->joiner =
        (struct joiner){.loop = loop, .nodep = &s->node, .refusep = refuse};
    int rc = transport_new(loop, cfg, log, &s->tp, err, errlen);
    if (rc) {
        s->tp = NULL;
        return rc;
    }
    rc = node_new(cfg, transport_io(s->tp), NULL, log, &s->node);
    if (rc) {
        s->node = NULL;
        snprintf(err, errlen, "cannot create the node: %s", hs_strerror(rc));
        return rc;
    }
    transport_attach(s->tp, s->node);
    return 0;
}

int agent_setup_start(struct agent_setup *s, const struct config *cfg,
                      agent_setup_step before_start, void *ud, char *err,
                      size_t errlen)
{
    int rc = transport_listen(s->tp, err, errlen);
    if (rc == 0)
        rc = transport_advertise(s->tp, cfg, &s->adv, err, errlen);
    if (rc)
        return rc;
    if (before_start && (rc = before_start(ud, err, errlen)))
        return rc;
    if ((rc = node_start(s->node, &s->adv)))
        snprintf(err, errlen, "cannot start the node: %s", hs_strerror(rc));
    return rc;
}

void agent_setup_join(struct agent_setup *s, const struct config *cfg,
                      const struct agent_setup_joins *j)
{
    if (cfg->join.n) {
        struct join_req *req;
        int rc = join_start(&s->joiner, (const char *const *)cfg->join.v,
                            cfg->join.n, j->joined, j->ud, &req);
        if (rc && j->joined)
            j->joined(j->ud, 0, rc, NULL);
    }
    if (cfg->retry_join.n) {
        struct join_retry_opts o = {cfg->retry_interval,
                                    (unsigned)cfg->retry_max, 0, false,
                                    "retry_join"};
        int rc = join_retry_start(&s->joiner, &cfg->retry_join, &o, s->log,
                                  j->retried, j->ud);
        if (rc && j->retried)
            j->retried(j->ud, 0, hs_strerror(rc));
    }
}

void agent_setup_close(struct agent_setup *s, void (*cb)(void *ud), void *ud)
{
    if (s->node) { /* before the transport: it closes its streams there */
        struct node *nd = s->node;
        s->node = NULL;
        node_close(nd);
        join_node_closed(&s->joiner);
    }
    if (s->tp) {
        struct transport *tp = s->tp;
        s->tp = NULL;
        transport_close(tp, cb, ud);
    } else {
        cb(ud);
    }
}
