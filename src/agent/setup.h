/* setup.h: bring a node up on real sockets, and take it down again: the
 * start-up that `hearsay agent` (main.c) and the Lua module's in-process
 * nodes (hearsay.node{}, lua/module.c) share.
 *
 * The order is the agent's:
 *
 *   agent_setup_open    make the transport (not bound yet) and the
 *                       node, attach them
 *   (the caller)        hooks: the agent's lua_host, or the scripts an
 *                       in-process node loads in the calling Lua state;
 *                       whatever else it checks before taking a port
 *   agent_setup_start   bind the transport, find the address to
 *                       advertise, start the node
 *   (the caller)        what it serves beside the node
 *   agent_setup_join    the joins of the configuration
 *   agent_setup_close   close the node, then the transport
 *
 * Each step that fails leaves what was made in the set-up for
 * agent_setup_close. The set-up knows nothing of Lua, the control
 * endpoint or metrics: it links into the Lua module too. */
#ifndef HS_AGENT_SETUP_H
#define HS_AGENT_SETUP_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "agent/join.h"
#include "base/log.h"
#include "core/config.h"
#include "core/node.h"
#include "io/transport.h"

/* A node being set up on a loop, and what it is made of. */
struct agent_setup {
    uv_loop_t *loop;
    const struct hs_logger *log; /* the node's and the transport's log */
    struct transport *tp;        /* owned; NULL until made, once closed */
    struct node *node;           /* owned; NULL until made, once closed */
    struct joiner joiner;        /* joins in flight (join.c) */
    struct hs_addr adv;          /* the advertised address, once started */
};

/* Make a transport for cfg's address on loop, not bound yet (no port is
 * taken: transport_new), make the node (with no hooks yet) and attach it
 * to the transport. `refuse`, when not NULL, refuses new joins while it
 * is true (an agent that is leaving). loop and log must outlive the
 * set-up. Returns 0, or an HS_E* code with the sentence in err: the
 * transport's own (s->tp is NULL), or "cannot create the node: ...". */
int agent_setup_open(struct agent_setup *s, const struct config *cfg,
                     uv_loop_t *loop, const struct hs_logger *log,
                     const bool *refuse, char *err, size_t errlen);

/* Run before the node starts (the agent opens its data dir here, so
 * that the node starts with what it kept). 0, or an HS_E* code with the
 * sentence in err. */
typedef int (*agent_setup_step)(void *ud, char *err, size_t errlen);

/* Bind the transport (transport_listen), find the address to advertise
 * (s->adv), run before_start when not NULL, then start the node. Returns
 * 0, or an HS_E* code with the sentence in err ("cannot bind UDP ...:
 * address already in use"). */
int agent_setup_start(struct agent_setup *s, const struct config *cfg,
                      agent_setup_step before_start, void *ud, char *err,
                      size_t errlen);

/* The answers to the joins at start-up; either callback may be NULL. */
struct agent_setup_joins {
    join_cb joined;        /* the `join` addresses, tried once */
    join_retry_cb retried; /* `retry_join`: joined, or gave up */
    void *ud;
};

/* Join cfg's `join` addresses once, and its `retry_join` ones every
 * retry_interval until a join succeeds (after retry_max failed retries,
 * when set, retried() hears that it gave up). A join that cannot even
 * start is answered at once, as one that failed. */
void agent_setup_join(struct agent_setup *s, const struct config *cfg,
                      const struct agent_setup_joins *j);

/* Close the node (joins waiting on it will never hear back), then the
 * transport. cb(ud) runs once, when the transport's handles are closed
 * (the loop must run on), or before this returns when there was none. */
void agent_setup_close(struct agent_setup *s, void (*cb)(void *ud), void *ud);

#endif
