/* pushpull.c: full state exchange (memberlist pushPull, mergeRemoteState).
 *
 * At join and periodically with one random member, both sides send every
 * member they know and merge what they get: the anti-entropy that repairs
 * whatever gossip missed. The period grows with the cluster size so that
 * the cost stays flat. */
#include "core/node_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

uint64_t pushpull_scale(uint64_t interval, size_t n)
{
    /* memberlist pushPullScale: beyond 32 nodes, one more interval per
     * doubling. */
    const size_t threshold = 32;
    if (n <= threshold)
        return interval;
    double mult = ceil(log2((double)n) - log2((double)threshold)) + 1.0;
    return (uint64_t)mult * interval;
}

/* Our user state: the hearsay envelope (kind STATE) and a map of
 * sections, "lua" (the local_state hook's blob) and "meta" (the metadata
 * store's digest, even of an empty store: the peer answers it with what
 * we lack). Serf would log and drop it, so a peer known to run something
 * else gets no "meta", and no state at all without a local_state hook.
 * `to` is the peer we call (NULL when answering), `remote` its state
 * (when answering). */
static int user_state(struct node *nd, bool join, const struct hs_addr *to,
                      const uint8_t *remote, size_t remotelen, struct buf *out)
{
    struct buf lua = BUF_INIT, meta = BUF_INIT;
    bool has_lua = nd->hooks.local_state &&
                   nd->hooks.local_state(nd->hooks.ud, join, &lua) == 0;
    /* The peer's metadata section, if its user state is ours. */
    const uint8_t *rmeta = NULL;
    size_t rmetalen = 0;
    struct wire_envelope e;
    int erc = remote && remotelen ? wire_get_envelope(remote, remotelen, &e)
                                  : HS_EINVAL;
    bool foreign = erc == HS_ENOTFOUND || (to && node_peer_is_foreign(nd, to));
    bool has_meta = !foreign;
    if (!has_lua && !has_meta) {
        buf_free(&lua);
        return 0;
    }
    if (erc == 0 && e.kind == WIRE_ENV_STATE) {
        struct mp_reader r;
        uint32_t nf;
        mp_reader_init(&r, e.body, e.len);
        if (mp_read_map(&r, &nf) == 0)
            for (uint32_t i = 0; i < nf; i++) {
                const uint8_t *k, *v;
                uint32_t kl, vl;
                if (mp_read_raw(&r, &k, &kl) || mp_read_raw(&r, &v, &vl))
                    break;
                if (kl == 4 && !memcmp(k, "meta", 4)) {
                    rmeta = v;
                    rmetalen = vl;
                }
            }
    }
    if (has_meta)
        metadata_sync_encode(nd->store, rmeta, rmetalen, &meta);
    wire_put_envelope(out, WIRE_ENV_STATE, nd->cfg.name, nd->self_name_len);
    mp_write_map(out, (uint32_t)has_lua + (uint32_t)has_meta);
    if (has_lua) {
        mp_write_str(out, "lua");
        mp_write_raw(out, lua.data, lua.len);
    }
    if (has_meta) {
        mp_write_str(out, "meta");
        mp_write_raw(out, meta.data, meta.len);
    }
    int rc = out->err ? out->err : lua.err ? lua.err : meta.err;
    buf_free(&lua);
    buf_free(&meta);
    return rc;
}

const uint8_t *pushpull_user_state(const uint8_t *body, size_t len, size_t *n)
{
    struct mp_reader r;
    struct wire_pushpull_header h;
    WIRE_SCRATCH(sc);
    mp_reader_init(&r, body, len);
    if (wire_get_pushpull_header(&r, &h, &sc, NULL) || h.user_state_len <= 0 ||
        (uint64_t)h.user_state_len > len)
        return NULL;
    *n = (size_t)h.user_state_len;
    return body + len - *n;
}

int pushpull_encode(struct node *nd, bool join, const struct hs_addr *to,
                    const uint8_t *remote, size_t remotelen, struct buf *out)
{
    struct buf user = BUF_INIT;
    if (user_state(nd, join, to, remote, remotelen, &user))
        buf_reset(&user);
    const struct members *t = &nd->members;
    struct wire_pushpull_header h = {(int64_t)t->n, (int64_t)user.len, join};
    wire_put_pushpull_header(out, &h);
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        struct wire_node_state ns = {
            .name = wire_raw(m->name, m->name_len),
            .addr = wire_raw(m->addr.ip, m->addr.len),
            .port = m->addr.port,
            .meta = m->meta_len ? wire_raw(m->meta, m->meta_len)
                                : (struct wire_raw){0},
            .incarnation = m->incarnation,
            .state = m->state,
            .vsn = wire_raw(m->vsn, 6),
        };
        wire_put_node_state(out, &ns);
    }
    buf_append(out, user.data, user.len);
    int rc = out->err ? out->err : user.err;
    buf_free(&user);
    return rc;
}

/* Hand each section of a peer's user state to its owner; a foreign
 * state goes whole to merge_remote_state. */
static void merge_user_state(struct node *nd, const uint8_t *p, size_t n,
                             bool join, bool started,
                             const struct hs_addr *peer)
{
    struct wire_envelope e;
    int rc = wire_get_envelope(p, n, &e);
    if (rc == 0)
        node_peer_hearsay(nd, e.from, e.fromlen);
    else if (rc == HS_ENOTFOUND && started)
        node_peer_foreign(nd, peer); /* the address we called */
    if (rc != 0 || e.kind != WIRE_ENV_STATE) {
        if (nd->hooks.merge_remote_state)
            nd->hooks.merge_remote_state(nd->hooks.ud, p, n, join);
        return;
    }
    struct mp_reader r;
    uint32_t nf;
    mp_reader_init(&r, e.body, e.len);
    if (mp_read_map(&r, &nf))
        return;
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k, *v;
        uint32_t kl, vl;
        if (mp_read_raw(&r, &k, &kl) || mp_read_raw(&r, &v, &vl))
            return;
        if (kl == 3 && !memcmp(k, "lua", 3) && nd->hooks.merge_remote_state)
            nd->hooks.merge_remote_state(nd->hooks.ud, v, vl, join);
        else if (kl == 4 && !memcmp(k, "meta", 4))
            metadata_sync_merge(nd->store, v, vl, started, peer);
    }
}

int pushpull_merge(struct node *nd, const uint8_t *body, size_t len, bool *join,
                   bool started, bool asked, const struct hs_addr *peer,
                   char *why, size_t whylen)
{
    struct mp_reader r;
    struct wire_pushpull_header h;
    WIRE_SCRATCH(hsc);
    const char *w = NULL;
    mp_reader_init(&r, body, len);
    if (wire_get_pushpull_header(&r, &h, &hsc, &w) || h.nodes < 0 ||
        h.user_state_len < 0) {
        snprintf(why, whylen, "bad push/pull header");
        return HS_EBADMSG;
    }
    *join = h.join;
    size_t n = (size_t)h.nodes;
    /* The stream scan already checked that n maps are really there, so
     * this allocation is bounded by the bytes received. */
    struct wire_node_state *states = n ? hs_calloc(n, sizeof *states) : NULL;
    /* []byte fields sent as arrays take no less room on the wire. */
    struct wire_scratch sc = {n ? hs_malloc(len) : NULL, len, 0};
    int rc = 0;
    if (n && (states == NULL || sc.p == NULL)) {
        rc = HS_ENOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = wire_get_node_state(&r, &states[i], &sc, &w);
        if (rc) {
            snprintf(why, whylen, "bad node state %zu: %s", i,
                     w ? w : "malformed");
            goto out;
        }
        const struct wire_node_state *s = &states[i];
        if (s->name.n == 0 || s->name.n > CONFIG_NAME_MAX ||
            memchr(s->name.p, 0, s->name.n) || s->meta.n > WIRE_META_MAX) {
            rc = HS_EBADMSG;
            snprintf(why, whylen, "bad node state %zu: name or meta", i);
            goto out;
        }
    }
    if ((uint64_t)h.user_state_len > mp_left(&r)) {
        rc = HS_ETRUNC;
        snprintf(why, whylen, "user state cut short");
        goto out;
    }
    rc = members_verify_protocol(&nd->members, states, n, why, whylen);
    if (rc)
        goto out;
    if (h.join && nd->hooks.allow_merge) {
        /* Candidates as members, for the hook's eyes only. */
        struct member *ms = hs_calloc(n ? n : 1, sizeof *ms);
        const struct member **ptrs = hs_calloc(n ? n : 1, sizeof *ptrs);
        char *names = hs_calloc(n ? n : 1, CONFIG_NAME_MAX + 1);
        if (ms == NULL || ptrs == NULL || names == NULL) {
            rc = HS_ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++) {
                char *nm = names + i * (CONFIG_NAME_MAX + 1);
                memcpy(nm, states[i].name.p, states[i].name.n);
                ms[i].name = nm;
                ms[i].name_len = states[i].name.n;
                addr_from_raw(states[i].addr.p, states[i].addr.n,
                              states[i].port, &ms[i].addr);
                ms[i].meta = (uint8_t *)(uintptr_t)states[i].meta.p;
                ms[i].meta_len = (uint16_t)states[i].meta.n;
                ms[i].incarnation = states[i].incarnation;
                ms[i].state = (uint8_t)(states[i].state & 3);
                if (states[i].vsn.n >= 6)
                    memcpy(ms[i].vsn, states[i].vsn.p, 6);
                ptrs[i] = &ms[i];
            }
            char reason[160] = "";
            if (nd->hooks.allow_merge(nd->hooks.ud, ptrs, n, reason,
                                      sizeof reason)) {
                rc = HS_EREFUSED;
                snprintf(why, whylen, "merge refused: %s",
                         reason[0] ? reason : "by allow_merge");
            }
        }
        hs_free(ms);
        hs_free(ptrs);
        hs_free(names);
        if (rc)
            goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (states[i].port == 0 || nd->cfg.protocol_version < 2)
            states[i].port = nd->advertise.port;
    /* A join asked for here takes the whole cluster at once; any other
     * sync, ours or a peer's, adds what its peer may (members.c). */
    members_merge(nd, states, n, started && asked ? NULL : peer);
    if (h.user_state_len > 0)
        merge_user_state(nd, body + r.off, (size_t)h.user_state_len, h.join,
                         started, peer);
out:
    hs_free(states);
    hs_free(sc.p);
    return rc;
}

static void answered(struct stream *s, int err, const char *why,
                     const uint8_t *p, size_t n);
static void cancelled(struct stream *s);

int pushpull_start(struct node *nd, const struct hs_addr *to, bool join,
                   struct join_op *op)
{
    struct buf b = BUF_INIT;
    int rc = pushpull_encode(nd, join, to, NULL, 0, &b);
    struct stream *s = NULL;
    if (rc == 0) {
        s = stream_dial(nd, STREAM_PUSHPULL, to, nd->cfg.tcp_timeout, answered,
                        cancelled);
        rc = s ? stream_set_request(s, b.data, b.len) : HS_EIO;
    }
    buf_free(&b);
    if (rc) {
        if (s)
            stream_finish(s);
        return rc;
    }
    s->join = join;
    s->op = op;
    nd->stats.push_pulls_out++;
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "state sync started: peer=%s join=%s",
             addr_format(to, ab, sizeof ab), join ? "true" : "false");
    return 0;
}

static void join_release(struct join_op *op)
{
    if (--op->pending == 0) {
        node_join_cb cb = op->cb;
        void *ud = op->ud;
        int joined = op->joined, e = op->joined ? 0 : op->err;
        char w[sizeof op->why];
        memcpy(w, op->why, sizeof w);
        hs_free(op);
        if (cb)
            cb(ud, joined, e, e ? w : NULL);
    }
}

static void join_step(struct join_op *op, int err, const char *why)
{
    if (err) {
        op->err = err;
        snprintf(op->why, sizeof op->why, "%s", why ? why : "");
    } else {
        op->joined++;
    }
    join_release(op);
}

/* A push/pull we started ended: err 0 if merged. */
static void pushpull_done(struct node *nd, struct stream *s, int err,
                          const char *why)
{
    char ab[HS_ADDRSTRLEN];
    addr_format(&s->peer, ab, sizeof ab);
    if (err == HS_ECLOSED && why == NULL) {
        /* the node is closing: nothing to report */
    } else if (err) {
        nd->stats.push_pull_errors++;
        HS_WARN(nd->log, "state sync with %s failed: %s", ab,
                why ? why : hs_strerror(err));
    } else {
        HS_INFO(nd->log, "state sync done: peer=%s join=%s members=%zu", ab,
                s->join ? "true" : "false", members_count(&nd->members));
    }
    struct join_op *op = s->op;
    s->op = NULL;
    if (op)
        join_step(op, err, why);
}

/* Our push/pull's stream ended: merge the peer's state, if it sent it. */
static void answered(struct stream *s, int err, const char *why,
                     const uint8_t *p, size_t n)
{
    struct node *nd = s->nd;
    if (err) {
        pushpull_done(nd, s, err, why ? why : hs_strerror(err));
        return;
    }
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *w = NULL;
    char msg[200] = "";
    if (p[0] == WIRE_ERR) {
        struct wire_err e;
        mp_reader_init(&r, p + 1, n - 1);
        if (wire_get_err(&r, &e, &sc, &w) == 0)
            snprintf(msg, sizeof msg, "remote error: %.*s",
                     (int)HS_MIN(e.error.n, 150u), (const char *)e.error.p);
        else
            snprintf(msg, sizeof msg, "remote error");
        pushpull_done(nd, s, HS_EREFUSED, msg);
        return;
    }
    if (p[0] != WIRE_PUSHPULL) {
        pushpull_done(nd, s, HS_EBADMSG, "answer is not a push/pull");
        return;
    }
    bool join = s->join;
    int rc = pushpull_merge(nd, p + 1, n - 1, &join, true, s->op != NULL,
                            &s->peer, msg, sizeof msg);
    pushpull_done(nd, s, rc, rc ? msg : NULL);
}

/* The node is closing: release the join silently (no callbacks). */
static void cancelled(struct stream *s)
{
    if (s->op) {
        s->op->cb = NULL;
        pushpull_done(s->nd, s, HS_ECLOSED, NULL);
    }
}

static bool sync_peer(const struct node *nd, const struct member *m)
{
    (void)nd;
    return m->state == MEMBER_ALIVE;
}

void pushpull_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, pushpull_tick);
    node_arm(nd, t,
             node_now(nd) + pushpull_scale(nd->cfg.push_pull_interval,
                                           members_count(&nd->members)));
    if (nd->paused || nd->phase != PHASE_RUNNING)
        return;
    struct member *peer;
    if (node_pick(nd, &peer, 1, sync_peer) == 1)
        pushpull_start(nd, &peer->addr, false, NULL);
}

int node_join(struct node *nd, const struct hs_addr *addrs,
              const char *const *names, size_t n, node_join_cb cb, void *ud)
{
    if (nd->phase != PHASE_RUNNING)
        return HS_ESTATE;
    if (n == 0)
        return HS_EINVAL;
    struct join_op *op = hs_calloc(1, sizeof *op);
    if (op == NULL)
        return HS_ENOMEM;
    op->pending = n + 1; /* one extra, dropped below, keeps op alive */
    op->cb = cb;
    op->ud = ud;
    char ab[HS_ADDRSTRLEN];
    for (size_t i = 0; i < n; i++) {
        addr_format(&addrs[i], ab, sizeof ab);
        if (nd->cfg.require_node_names &&
            (names == NULL || names[i] == NULL || names[i][0] == '\0')) {
            join_step(op, HS_EINVAL,
                      "require_node_names: give the address as "
                      "name/host:port");
            continue;
        }
        HS_INFO(nd->log, "joining: addr=%s", ab);
        int rc = pushpull_start(nd, &addrs[i], true, op);
        if (rc)
            join_step(op, rc, hs_strerror(rc));
    }
    join_release(op);
    return 0;
}
