/* join.c: join a cluster by address or host name: resolve every address
 * without blocking the loop, then push/pull with all that were found in
 * one node_join (memberlist's Join). Used by the agent and by in-process
 * nodes. */
#include "join.h"

#include <stdio.h>
#include <string.h>

#include "transport.h"

struct jres {
    struct join_req *j;
    size_t idx;
};

struct join_req {
    struct joiner *jr;
    struct join_req *prev, *next; /* in jr->pending */
    join_cb cb;
    void *ud;
    size_t n;             /* addresses asked for */
    size_t resolving;     /* resolves not yet answered */
    bool node_waiting;    /* node_join in flight */
    struct jres *res;     /* one per address asked for */
    char **specs;         /* copies of the addresses asked for */
    char **spec_names;    /* the "name/" part of each, or NULL */
    struct hs_addr *addrs;       /* every address found */
    const char **names;          /* the node name of each ("" unknown) */
    size_t naddrs, cap;
    int err;
    char why[256];
};

static void join_free(struct join_req *j)
{
    struct joiner *jr = j->jr;
    if (j->prev)
        j->prev->next = j->next;
    else if (jr->pending == j)
        jr->pending = j->next;
    if (j->next)
        j->next->prev = j->prev;
    for (size_t i = 0; i < j->n; i++) {
        hs_free(j->specs ? j->specs[i] : NULL);
        hs_free(j->spec_names ? j->spec_names[i] : NULL);
    }
    hs_free(j->specs);
    hs_free(j->spec_names);
    hs_free(j->res);
    hs_free(j->addrs);
    hs_free(j->names);
    hs_free(j);
}

static void join_complete(struct join_req *j, int joined, int err,
                          const char *why)
{
    join_cb cb = j->cb;
    void *ud = j->ud;
    char w[sizeof j->why];
    snprintf(w, sizeof w, "%s", why && *why ? why : hs_strerror(err));
    join_free(j);
    if (cb)
        cb(ud, joined, joined > 0 ? 0 : err, joined > 0 ? NULL : w);
}

static void on_node_joined(void *ud, int joined, int err, const char *why)
{
    struct join_req *j = ud;
    j->node_waiting = false;
    if (joined > 0)
        join_complete(j, joined, 0, NULL);
    else
        join_complete(j, 0, err ? err : HS_EIO, why);
}

/* Every resolve has answered: join what was found. */
static void join_resolved(struct join_req *j)
{
    struct joiner *jr = j->jr;
    if (*jr->nodep == NULL) { /* shut down meanwhile: nobody to answer */
        join_free(j);
        return;
    }
    if (j->naddrs == 0) {
        join_complete(j, 0, j->err ? j->err : HS_ENOTFOUND, j->why);
        return;
    }
    j->node_waiting = true;
    int rc = node_join(*jr->nodep, j->addrs, j->names, j->naddrs,
                       on_node_joined, j);
    if (rc) {
        j->node_waiting = false;
        join_complete(j, 0, rc, jr->refusep && *jr->refusep ? "the agent is leaving" : NULL);
    }
}

static void on_resolved(void *ud, int err, const struct hs_addr *addrs,
                        size_t n)
{
    struct jres *r = ud;
    struct join_req *j = r->j;
    const char *spec_name = j->spec_names[r->idx];
    if (err == 0 && n == 0)
        err = HS_ENOTFOUND;
    if (err && j->err == 0) {
        j->err = err;
        snprintf(j->why, sizeof j->why, "cannot resolve \"%.128s\": %s",
                 j->specs[r->idx] ? j->specs[r->idx] : "?",
                 hs_strerror(err));
    }
    /* memberlist joins every address a name resolves to. */
    for (size_t i = 0; err == 0 && i < n; i++) {
        if (j->naddrs == j->cap) {
            size_t cap = j->cap ? j->cap * 2 : 8;
            struct hs_addr *na = hs_realloc(j->addrs, cap * sizeof *na);
            if (na == NULL)
                break;
            j->addrs = na;
            const char **nn = hs_realloc(j->names, cap * sizeof *nn);
            if (nn == NULL)
                break;
            j->names = nn;
            j->cap = cap;
        }
        j->addrs[j->naddrs] = addrs[i];
        j->names[j->naddrs] = spec_name ? spec_name : "";
        j->naddrs++;
    }
    if (--j->resolving == 0)
        join_resolved(j);
}

int join_start(struct joiner *jr, const char *const *specs, size_t n,
                 join_cb cb, void *ud, struct join_req **out)
{
    if (*jr->nodep == NULL || (jr->refusep && *jr->refusep))
        return HS_ESTATE;
    if (n == 0)
        return HS_EINVAL;
    struct join_req *j = hs_calloc(1, sizeof *j);
    if (j == NULL)
        return HS_ENOMEM;
    j->jr = jr;
    j->cb = cb;
    j->ud = ud;
    j->n = n;
    j->res = hs_calloc(n, sizeof *j->res);
    j->specs = hs_calloc(n, sizeof *j->specs);
    j->spec_names = hs_calloc(n, sizeof *j->spec_names);
    if (j->res == NULL || j->specs == NULL || j->spec_names == NULL) {
        join_free(j);
        return HS_ENOMEM;
    }
    j->next = jr->pending;
    if (jr->pending)
        jr->pending->prev = j;
    jr->pending = j;
    *out = j;
    /* One extra count, dropped below, so that resolves answering at once
     * cannot finish the join halfway through this loop. */
    j->resolving = n + 1;
    for (size_t i = 0; i < n; i++) {
        const char *hostport = specs[i];
        const char *slash = strchr(specs[i], '/');
        j->res[i].j = j;
        j->res[i].idx = i;
        j->specs[i] = hs_strndup(specs[i], strlen(specs[i]));
        if (slash) { /* "name/host:port" */
            j->spec_names[i] = hs_strndup(specs[i],
                                          (size_t)(slash - specs[i]));
            hostport = slash + 1;
        }
        int rc = j->specs[i] == NULL || (slash && j->spec_names[i] == NULL)
                     ? HS_ENOMEM
                     : transport_resolve(jr->loop, hostport, 7946,
                                         on_resolved, &j->res[i]);
        if (rc)
            on_resolved(&j->res[i], rc, NULL, 0);
    }
    if (--j->resolving == 0)
        join_resolved(j);
    return 0;
}

void join_cancel(struct join_req *j)
{
    if (j) {
        j->cb = NULL;
        j->ud = NULL;
    }
}

void join_node_closed(struct joiner *jr)
{
    struct join_req *j = jr->pending, *next;
    for (; j; j = next) {
        next = j->next;
        j->node_waiting = false;
        j->cb = NULL;
        if (j->resolving == 0)
            join_free(j); /* else join_resolved frees it */
    }
}
