/* join.c: join a cluster by address or host name: resolve every address
 * without blocking the loop, then push/pull with all that were found in
 * one node_join (memberlist's Join); and retry a join until it succeeds
 * (serf's retry_join). Used by the agent and by in-process nodes. */
#include "agent/join.h"

#include <stdio.h>
#include <string.h>

#include "core/members.h"
#include "io/transport.h"

struct jres {
    struct join_req *j;
    size_t idx;
};

struct join_req {
    struct joiner *jr;
    struct join_req *prev, *next; /* in jr->pending */
    join_cb cb;
    void *ud;
    size_t n;              /* addresses asked for */
    size_t resolving;      /* resolves not yet answered */
    bool node_waiting;     /* node_join in flight */
    struct jres *res;      /* one per address asked for */
    char **specs;          /* copies of the addresses asked for */
    char **spec_names;     /* the "name/" part of each, or NULL */
    struct hs_addr *addrs; /* every address found */
    const char **names;    /* the node name of each ("" unknown) */
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
    int rc =
        node_join(*jr->nodep, j->addrs, j->names, j->naddrs, on_node_joined, j);
    if (rc) {
        j->node_waiting = false;
        join_complete(j, 0, rc,
                      jr->refusep && *jr->refusep ? "the agent is leaving"
                                                  : NULL);
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
                 j->specs[r->idx] ? j->specs[r->idx] : "?", hs_strerror(err));
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
            j->spec_names[i] = hs_strndup(specs[i], (size_t)(slash - specs[i]));
            hostport = slash + 1;
        }
        int rc = j->specs[i] == NULL || (slash && j->spec_names[i] == NULL)
                     ? HS_ENOMEM
                     : (jr->resolve ? jr->resolve : transport_resolve)(
                           jr->loop, hostport, 7946, on_resolved, &j->res[i]);
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

static void retry_stop(struct join_retry *r);

void join_node_closed(struct joiner *jr)
{
    while (jr->retries)
        retry_stop(jr->retries);
    struct join_req *j = jr->pending, *next;
    for (; j; j = next) {
        next = j->next;
        j->node_waiting = false;
        j->cb = NULL;
        if (j->resolving == 0)
            join_free(j); /* else join_resolved frees it */
    }
}

/* ===== Retries ===== */

struct join_retry {
    struct joiner *jr;
    struct join_retry *prev, *next; /* in jr->retries */
    uv_timer_t timer;
    struct config_list specs;
    struct join_retry_opts o;
    const struct hs_logger *log;
    join_retry_cb cb;
    void *ud;
    unsigned attempts;    /* made so far */
    uint64_t give_up_at;  /* uv_now; 0 = never */
    struct join_req *req; /* the attempt in flight */
};

static void on_retry_closed(uv_handle_t *h)
{
    struct join_retry *r = h->data;
    config_list_truncate(&r->specs, 0);
    hs_free(r);
}

/* Off the joiner's list, and freed once the timer closed. */
static void retry_stop(struct join_retry *r)
{
    struct joiner *jr = r->jr;
    if (r->prev)
        r->prev->next = r->next;
    else
        jr->retries = r->next;
    if (r->next)
        r->next->prev = r->prev;
    join_cancel(r->req);
    r->req = NULL;
    uv_close((uv_handle_t *)&r->timer, on_retry_closed);
}

static void retry_end(struct join_retry *r, int joined, const char *why)
{
    join_retry_cb cb = r->cb;
    void *ud = r->ud;
    retry_stop(r);
    if (cb)
        cb(ud, joined, why);
}

/* "30s", "1m30s" or "1500ms", as serf prints a retry_interval. */
static void format_ms(uint64_t ms, char *out, size_t len)
{
    if (ms % 1000)
        snprintf(out, len, "%llums", (unsigned long long)ms);
    else if (ms >= 60000 && ms % 60000)
        snprintf(out, len, "%llum%llus", (unsigned long long)(ms / 60000),
                 (unsigned long long)(ms % 60000 / 1000));
    else if (ms >= 60000)
        snprintf(out, len, "%llum", (unsigned long long)(ms / 60000));
    else
        snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
}

static void retry_attempt(struct join_retry *r);

static void on_retry_timer(uv_timer_t *t)
{
    struct join_retry *r = t->data;
    struct node *nd = *r->jr->nodep;
    if (nd == NULL)
        return; /* join_node_closed stops us */
    const struct members *m = node_members(nd);
    if (r->o.until_not_alone &&
        m->count[MEMBER_ALIVE] + m->count[MEMBER_SUSPECT] > 1) {
        HS_INFO(r->log, "no longer alone: stopped joining the %s", r->o.what);
        retry_stop(r);
        return;
    }
    if (r->give_up_at && uv_now(r->jr->loop) >= r->give_up_at) {
        HS_WARN(r->log, "gave up joining the %s after %u attempts", r->o.what,
                r->attempts);
        retry_stop(r);
        return;
    }
    retry_attempt(r);
}

static void on_retry_joined(void *ud, int joined, int err, const char *why)
{
    struct join_retry *r = ud;
    char every[32];
    r->req = NULL;
    if (joined > 0) {
        HS_INFO(r->log,
                "Join completed. Synced with %d initial agents: "
                "join=%s attempts=%u",
                joined, r->o.what, r->attempts);
        retry_end(r, joined, NULL);
        return;
    }
    if (why == NULL)
        why = hs_strerror(err);
    if (r->o.max && r->attempts > r->o.max) {
        HS_ERROR(r->log,
                 "maximum retry join attempts made, exiting: "
                 "attempts=%u last_error=\"%s\"",
                 r->attempts, why);
        retry_end(r, 0, why);
        return;
    }
    format_ms(r->o.interval_ms, every, sizeof every);
    HS_WARN(r->log,
            "Join failed: %s, retrying in %s: join=%s "
            "attempts=%u",
            why, every, r->o.what, r->attempts);
    uv_timer_start(&r->timer, on_retry_timer, r->o.interval_ms, 0);
}

static void retry_attempt(struct join_retry *r)
{
    r->attempts++;
    HS_INFO(r->log, "Joining cluster...: join=%s attempt=%u", r->o.what,
            r->attempts);
    /* join_start sets r->req before the callback can run; the callback
     * clears it. */
    int rc = join_start(r->jr, (const char *const *)r->specs.v, r->specs.n,
                        on_retry_joined, r, &r->req);
    if (rc && *r->jr->nodep != NULL && !(r->jr->refusep && *r->jr->refusep))
        on_retry_joined(r, 0, rc, NULL);
    /* else: the node is closing or leaving; join_node_closed stops us */
}

int join_retry_start(struct joiner *jr, const struct config_list *specs,
                     const struct join_retry_opts *o,
                     const struct hs_logger *log, join_retry_cb cb, void *ud)
{
    if (specs->n == 0 || o->interval_ms == 0)
        return HS_EINVAL;
    struct join_retry *r = hs_calloc(1, sizeof *r);
    if (r == NULL)
        return HS_ENOMEM;
    for (size_t i = 0; i < specs->n; i++) {
        if (config_list_add(&r->specs, specs->v[i])) {
            config_list_truncate(&r->specs, 0);
            hs_free(r);
            return HS_ENOMEM;
        }
    }
    r->jr = jr;
    r->o = *o;
    r->log = log;
    r->cb = cb;
    r->ud = ud;
    if (o->give_up_ms)
        r->give_up_at = uv_now(jr->loop) + o->give_up_ms;
    uv_timer_init(jr->loop, &r->timer);
    r->timer.data = r;
    r->next = jr->retries;
    if (jr->retries)
        jr->retries->prev = r;
    jr->retries = r;
    retry_attempt(r);
    return 0;
}
