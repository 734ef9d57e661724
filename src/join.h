/* join.h: join a cluster by address or host name, without blocking.
 *
 * Each address is "host:port", "[v6]:port", "host" (port 7946) or
 * "name/host:port", which gives the node name for require_node_names.
 * Host names are resolved with libuv's getaddrinfo; every address a name
 * resolves to is joined, as memberlist does. */
#ifndef HS_JOIN_H
#define HS_JOIN_H

#include <uv.h>

#include "node.h"

/* The owner's view of its node: joins in flight are on its list. */
struct joiner {
    uv_loop_t *loop;
    struct node **nodep;   /* *nodep is NULL once the node closed */
    const bool *refusep;   /* when true (say, leaving), refuse new joins */
    struct join_req *pending;
};

/* cb(ud, joined, 0, NULL) when at least one push/pull succeeded, else
 * cb(ud, 0, err, sentence). *out is set before cb can run, and cb may run
 * before join_start returns. An error return means cb never runs. */
typedef void (*join_cb)(void *ud, int joined, int err, const char *why);
int join_start(struct joiner *jr, const char *const *specs, size_t n,
               join_cb cb, void *ud, struct join_req **out);
/* The caller no longer wants the answer. */
void join_cancel(struct join_req *j);
/* The node was closed: joins waiting on it will never hear back; what no
 * longer waits on a resolve is freed. */
void join_node_closed(struct joiner *jr);

#endif
