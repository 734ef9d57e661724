/* join.h: join a cluster by address or host name, without blocking.
 *
 * Each address is "host:port", "[v6]:port", "host" (port 7946) or
 * "name/host:port", which gives the node name for require_node_names.
 * Host names are resolved with libuv's getaddrinfo; every address a name
 * resolves to is joined, as memberlist does. */
#ifndef HS_JOIN_H
#define HS_JOIN_H

#include <uv.h>

#include "core/node.h"

#include "base/log.h"
#include "core/config.h"
#include "io/transport.h"

/* The owner's view of its node: joins in flight and joins to retry are
 * on its lists. */
struct joiner {
    uv_loop_t *loop;
    struct node **nodep; /* *nodep is NULL once the node closed */
    const bool *refusep; /* when true (say, leaving), refuse new joins */
    struct join_req *pending;
    struct join_retry *retries;
    /* How names are resolved; NULL is transport_resolve (the fuzz target
     * gives one that asks no DNS). */
    int (*resolve)(uv_loop_t *loop, const char *hostport, uint16_t default_port,
                   transport_resolve_cb cb, void *ud);
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
 * longer waits on a resolve is freed, and retries stop (their timers
 * close as the loop runs; their callbacks never run). */
void join_node_closed(struct joiner *jr);

/* ===== Retries (serf's retry_join) =====
 * Join `specs` now, then again every interval_ms until a join succeeds;
 * host names are resolved again at each attempt, so a name that appears
 * in DNS later works. Each attempt is logged as serf logs it ("Joining
 * cluster...", "Join completed. Synced with N initial agents", "Join
 * failed: ..., retrying in 30s"). cb(ud, joined, NULL) once a join
 * succeeded; cb(ud, 0, why) once `max` retries after the first attempt
 * failed too (max 0: never). With give_up_ms, retries end quietly (no
 * callback) after that long, and with until_not_alone, once the node
 * has another member that is alive or suspect (someone joined it).
 * Stops at join_node_closed. The retry belongs to the joiner. */
struct join_retry_opts {
    uint64_t interval_ms;
    unsigned max;
    uint64_t give_up_ms;
    bool until_not_alone;
    const char *what; /* what the logs call these addresses */
};
typedef void (*join_retry_cb)(void *ud, int joined, const char *why);
int join_retry_start(struct joiner *jr, const struct config_list *specs,
                     const struct join_retry_opts *o,
                     const struct hs_logger *log, join_retry_cb cb, void *ud);

#endif
