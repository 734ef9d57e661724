/* metadata.c: the cluster metadata store: versions, validation, gossip,
 * anti-entropy by hash tree, fetches of large values, snapshots. */
#include "core/metadata_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/mp.h"
#include "core/node_int.h"

void metadata_set_observer(struct metadata *md, meta_observer_fn fn,
                           void *ud)
{
    md->observer = fn;
    md->observer_ud = ud;
}

/* Room for one more in a queue (a vector of `size`-byte items). */
static int reserve(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    if (n >= SYNC_QUEUE_MAX)
        return HS_ENOMEM;
    size_t c = *cap ? *cap * 2 : 16;
    void *nv = hs_realloc(*v, c * size);
    if (nv == NULL)
        return HS_ENOMEM;
    *v = nv;
    *cap = c;
    return 0;
}

#define Q_RESERVE(q) reserve((void **)&(q).v, &(q).cap, (q).n, sizeof *(q).v)
#define Q_LEFT(q) ((q).n - (q).pos)

uint64_t md_wall(const struct metadata *md)
{
    return md->nd->io.wall(md->nd->io.ctx);
}

bool md_expired(const struct metadata *md, uint64_t version,
                uint64_t now)
{
    return now > version_ms(version) + md->nd->cfg.metadata_tombstone_ttl;
}

uint64_t metadata_hlc_next(struct metadata *md, uint64_t wall_ms)
{
    uint64_t pt = wall_ms << 16;
    md->hlc = pt > md->hlc ? pt : md->hlc + 1;
    return md->hlc;
}

void md_hlc_observe(struct metadata *md, uint64_t v)
{
    if (v > md->hlc)
        md->hlc = v;
}

/* The horizon in force. A collected tombstone says "every key deleted at
 * or before this version is gone"; refusing what is older than it is
 * right only if this store holds every live key that old. That is so once
 * a sync has completed (we then hold what the peer held when it began):
 * so the horizon counts only up to the start of the last sync completed.
 * A new node refuses nothing until its first sync has brought it up to
 * date; a node restarted from a snapshot keeps both marks as they were
 * when it was saved, true of the store it saved. */
uint64_t metadata_horizon(const struct metadata *md)
{
    return HS_MIN(md->horizon, md->synced);
}

/* ===== Streams: sync and fetch =====
 * A request: {hz, push: [entries], want: [keys], tree: [[depth, bits],
 * ...], ranges: [[depth, bits(, key)], ...], gone: [[key, version,
 * origin], ...]},
 * every field optional (nodes from before the hash tree send push and
 * want only, and ignore the rest). hz is the asker's horizon.
 *
 * The answer: {hz, e: [entries], served: n, t: [...], r: [entries],
 * rdone: n}. e: the wanted entries we have, in order, within
 * ANSWER_BYTES; `served` says how many of the wanted keys were answered.
 * t: for each tree node asked about, in order, [count, [[key, version,
 * origin, deleted], ...]] when it holds at most LIST_MAX entries, else
 * [count, the 16 child hashes (8 bytes each, big-endian), [16 child
 * counts]]. r: the entries of the ranges, in order (the first from after
 * its key, if given), RANGE_BATCH at most; rdone: how many ranges it
 * covers whole (the next one, in part). gone: keys the asker
 * lacks, at or below its horizon: the answerer drops its copy. */

#define LIST_CAP 1024 /* entries listed for one node (path collisions) */

/* A horizon from a peer, unless from a clock far ahead (the HLC would
 * follow it): 0 then. */
static uint64_t peer_horizon(const struct metadata *md, uint64_t hz)
{
    return version_ms(hz) > md_wall(md) + md->nd->cfg.metadata_max_skew ? 0
                                                                     : hz;
}

static int send_request(struct metadata *md, const struct hs_addr *to,
                        const struct buf *body, struct request *rq)
{
    struct node *nd = md->nd;
    struct buf b = BUF_INIT, env = BUF_INIT;
    wire_put_envelope(&env, WIRE_ENV_META_REQ, nd->cfg.name,
                      nd->self_name_len);
    wire_put_user_header(&b, (int64_t)(env.len + body->len));
    buf_append(&b, env.data, env.len);
    buf_append(&b, body->data, body->len);
    int rc = b.err;
    struct stream *s = NULL;
    if (rc == 0) {
        s = stream_open(nd, STREAM_META, to, nd->cfg.tcp_timeout);
        rc = s ? stream_set_request(s, b.data, b.len) : HS_EIO;
    }
    if (rc == 0) {
        s->req = rq;
        md->stats.sync_bytes_out += b.len;
    } else if (s) {
        stream_finish(s);
    }
    buf_free(&b);
    buf_free(&env);
    return rc;
}

static void sync_free(struct metadata *md, struct sync *sy)
{
    struct sync **pp = &md->syncs;
    while (*pp && *pp != sy)
        pp = &(*pp)->next;
    if (*pp)
        *pp = sy->next;
    for (size_t i = 0; i < sy->want.n; i++)
        hs_free(sy->want.v[i]);
    for (size_t i = 0; i < sy->push.n; i++)
        hs_free(sy->push.v[i]);
    for (size_t i = 0; i < sy->gone.n; i++) {
        hs_free(sy->gone.v[i].key);
        hs_free(sy->gone.v[i].origin);
    }
    hs_free(sy->want.v);
    hs_free(sy->push.v);
    hs_free(sy->gone.v);
    hs_free(sy->asks.v);
    hs_free(sy->wranges.v);
    hs_free(sy->pranges.v);
    hs_free(sy);
}

/* Nothing left to ask or send: we now hold what the peer held when the
 * sync began (unless something failed on the way). */
static void sync_done(struct metadata *md, struct sync *sy)
{
    char ab[HS_ADDRSTRLEN];
    if (!sy->failed && sy->t0 > md->synced)
        md->synced = sy->t0;
    HS_DEBUG(md->nd->log, "metadata sync done: peer=%s complete=%s",
             addr_format(&sy->peer, ab, sizeof ab),
             sy->failed ? "false" : "true");
    if (sy->dropped)
        HS_INFO(md->nd->log, "metadata keys dropped: peer=%s keys=%zu (the "
                "peer lacks them and its tombstone horizon is past them: "
                "deleted there)", ab, sy->dropped);
    sync_free(md, sy);
}

static void q_ask(struct sync *sy, const struct pfx *p)
{
    if (Q_RESERVE(sy->asks)) {
        sy->failed = true;
        return;
    }
    sy->asks.v[sy->asks.n++] = *p;
}

static void q_want_range(struct sync *sy, const struct pfx *p)
{
    if (Q_RESERVE(sy->wranges)) {
        sy->failed = true;
        return;
    }
    sy->wranges.v[sy->wranges.n++] = *p;
}

static void q_push_range(struct sync *sy, const struct prange *r)
{
    if (Q_RESERVE(sy->pranges)) {
        sy->failed = true;
        return;
    }
    sy->pranges.v[sy->pranges.n++] = *r;
}

static void q_key(struct sync *sy, char ***v, size_t *n, size_t *cap,
                  const char *k, size_t kl)
{
    char *d = NULL;
    if (reserve((void **)v, cap, *n, sizeof **v) ||
        (d = hs_strndup(k, kl)) == NULL) {
        sy->failed = true;
        return;
    }
    (*v)[(*n)++] = d;
}

#define Q_WANT(sy, k, kl) \
    q_key(sy, &(sy)->want.v, &(sy)->want.n, &(sy)->want.cap, k, kl)
#define Q_PUSH(sy, k, kl) \
    q_key(sy, &(sy)->push.v, &(sy)->push.n, &(sy)->push.cap, k, kl)

static void q_gone(struct sync *sy, const char *k, size_t kl, const char *o,
                   size_t ol, uint64_t version)
{
    struct krec g = {hs_strndup(k, kl), hs_strndup(o, ol), (uint16_t)kl,
                     (uint8_t)ol, version};
    if (g.key == NULL || g.origin == NULL || Q_RESERVE(sy->gone)) {
        hs_free(g.key);
        hs_free(g.origin);
        sy->failed = true;
        return;
    }
    sy->gone.v[sy->gone.n++] = g;
}

static void set_cursor(bool *has, uint64_t *path, char *key, uint16_t *len,
                       const struct meta_entry *e)
{
    *has = true;
    *path = e->path;
    *len = e->keylen;
    memcpy(key, e->key, e->keylen);
}

/* The entries to push in the next request: single keys, then the
 * ranges, skipping what the peer listed as the same or newer, dropping
 * what it lacks below its horizon. */
static uint32_t fill_pushes(struct metadata *md, struct sync *sy,
                            struct buf *b)
{
    uint32_t n = 0;
    size_t bytes = 0, visits = 0;
    uint64_t now = md_wall(md);
    while (n < PUSH_BATCH && bytes < PUSH_BYTES && visits < VISIT_BATCH) {
        visits++;
        if (sy->push.pos < sy->push.n) {
            const char *k = sy->push.v[sy->push.pos++];
            const struct meta_entry *e = md_find(md, k, strlen(k));
            if (e) {
                md_put_entry(b, e, true, false);
                n++;
                bytes += e->len + e->keylen + 32;
            }
            continue;
        }
        if (sy->pranges.pos >= sy->pranges.n)
            break;
        const struct prange *r = &sy->pranges.v[sy->pranges.pos];
        struct meta_entry *e =
            sy->pcur ? md_tree_after(md, sy->pcurpath, sy->pcurkey,
                                     sy->pcurlen, false)
                     : md_tree_after(md, r->p.lo, "", 0, true);
        if (e == NULL || e->path > pfx_hi(&r->p)) {
            sy->pranges.pos++;
            sy->pcur = false;
            continue;
        }
        set_cursor(&sy->pcur, &sy->pcurpath, sy->pcurkey, &sy->pcurlen, e);
        if (e->deleted && md_expired(md, e->version, now))
            continue;
        const struct seen *s = NULL;
        for (int i = 0; i < r->nseen && s == NULL; i++)
            if (r->seen[i].path == e->path)
                s = &r->seen[i];
        if (s) {
            if (s->digest == e->digest || s->version > e->version)
                continue; /* the same, or theirs is newer (asked for) */
        } else if (!r->partial && e->version <= sy->peer_hz) {
            /* It lacks the key, and has collected tombstones as recent:
             * deleted there. A tombstone it does not need either. */
            if (md_drop(md, e))
                sy->dropped++;
            continue;
        }
        md_put_entry(b, e, true, false);
        n++;
        bytes += e->len + e->keylen + 32;
    }
    return n;
}

static void write_pfx(struct buf *b, const struct pfx *p, bool open)
{
    int bits = pfx_bits(p->depth);
    mp_write_array(b, open ? 3 : 2);
    mp_write_uint(b, p->depth);
    mp_write_uint(b, bits >= 64 ? p->lo : p->lo >> (64 - bits));
}

static int read_pfx(struct mp_reader *r, uint32_t n, struct pfx *p)
{
    uint64_t d, bits;
    if (n < 2 || mp_read_uint(r, &d) || d < 1 || d > TREE_DEPTH ||
        mp_read_uint(r, &bits))
        return HS_EBADMSG;
    int nb = pfx_bits((int)d);
    if (nb < 64 && bits >> nb)
        return HS_EBADMSG;
    p->depth = (uint8_t)d;
    p->lo = nb >= 64 ? bits : bits << (64 - nb);
    return 0;
}

/* Send the next request of a sync, or finish it. */
static void sync_next(struct metadata *md, struct sync *sy)
{
    struct buf pushes = BUF_INIT, body = BUF_INIT;
    uint32_t npush = fill_pushes(md, sy, &pushes);
    size_t nask = HS_MIN(Q_LEFT(sy->asks), (size_t)ASK_BATCH);
    size_t nwant = HS_MIN(Q_LEFT(sy->want), (size_t)WANT_BATCH);
    size_t ngone = HS_MIN(Q_LEFT(sy->gone), (size_t)GONE_BATCH);
    size_t nrange = HS_MIN(Q_LEFT(sy->wranges), (size_t)RANGES_BATCH);
    bool more_pushes = Q_LEFT(sy->push) || Q_LEFT(sy->pranges);
    if (!npush && !nask && !nwant && !ngone && !nrange && !more_pushes) {
        buf_free(&pushes);
        sync_done(md, sy);
        return;
    }
    mp_write_map(&body, 1 + (npush > 0) + (nwant > 0) + (nask > 0) +
                            (nrange > 0) + (ngone > 0));
    mp_write_str(&body, "hz");
    mp_write_uint(&body, metadata_horizon(md));
    if (npush) {
        mp_write_str(&body, "push");
        mp_write_array(&body, npush);
        buf_append(&body, pushes.data, pushes.len);
    }
    if (nwant) {
        mp_write_str(&body, "want");
        mp_write_array(&body, (uint32_t)nwant);
        for (size_t i = 0; i < nwant; i++)
            mp_write_str(&body, sy->want.v[sy->want.pos + i]);
    }
    if (nask) {
        mp_write_str(&body, "tree");
        mp_write_array(&body, (uint32_t)nask);
        for (size_t i = 0; i < nask; i++)
            write_pfx(&body, &sy->asks.v[sy->asks.pos + i], false);
    }
    if (nrange) {
        mp_write_str(&body, "ranges");
        mp_write_array(&body, (uint32_t)nrange);
        for (size_t i = 0; i < nrange; i++) {
            bool cur = i == 0 && sy->wcur;
            write_pfx(&body, &sy->wranges.v[sy->wranges.pos + i], cur);
            if (cur)
                mp_write_raw(&body, sy->wcurkey, sy->wcurlen);
        }
    }
    if (ngone) {
        mp_write_str(&body, "gone");
        mp_write_array(&body, (uint32_t)ngone);
        for (size_t i = 0; i < ngone; i++) {
            const struct krec *g = &sy->gone.v[sy->gone.pos + i];
            mp_write_array(&body, 3);
            mp_write_raw(&body, g->key, g->keylen);
            mp_write_uint(&body, g->version);
            mp_write_raw(&body, g->origin, g->originlen);
        }
    }
    struct request *rq = hs_calloc(1, sizeof *rq);
    int rc = rq && !body.err && !pushes.err ? 0 : HS_ENOMEM;
    if (rc == 0 && nask) {
        rq->tree = hs_malloc(nask * sizeof *rq->tree);
        if (rq->tree == NULL)
            rc = HS_ENOMEM;
        else
            memcpy(rq->tree, sy->asks.v + sy->asks.pos,
                   nask * sizeof *rq->tree);
    }
    if (rc == 0) {
        rq->md = md;
        rq->sync = sy;
        rq->asked = nwant;
        rq->ntree = nask;
        rq->nranges = nrange;
        sy->asks.pos += nask;
        sy->gone.pos += ngone;
        rc = send_request(md, &sy->peer, &body, rq);
    }
    buf_free(&pushes);
    buf_free(&body);
    if (rc) {
        if (rq)
            hs_free(rq->tree);
        hs_free(rq);
        md->stats.fetch_errors++;
        sync_free(md, sy);
        return;
    }
    md->stats.sync_streams++;
}

static void fetch_free(struct metadata *md, struct fetch *f)
{
    struct fetch **pp = &md->fetches;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    hs_free(f);
}

static int fetch_from(struct metadata *md, struct fetch *f,
                      const struct hs_addr *to)
{
    struct buf body = BUF_INIT;
    mp_write_map(&body, 2);
    mp_write_str(&body, "push");
    mp_write_array(&body, 0);
    mp_write_str(&body, "want");
    mp_write_array(&body, 1);
    mp_write_raw(&body, f->key, f->keylen);
    struct request *rq = hs_calloc(1, sizeof *rq);
    int rc = rq && !body.err ? 0 : HS_ENOMEM;
    if (rc == 0) {
        rq->md = md;
        rq->fetch = f;
        rq->asked = 1;
        rc = send_request(md, to, &body, rq);
    }
    if (rc)
        hs_free(rq);
    buf_free(&body);
    return rc;
}

void md_start_fetch(struct metadata *md, const struct view *v,
                    const struct hs_addr *from)
{
    for (struct fetch *f = md->fetches; f; f = f->next)
        if (f->keylen == v->keylen && !memcmp(f->key, v->key, v->keylen) &&
            f->version >= v->version)
            return; /* already on its way */
    struct fetch *f = hs_calloc(1, sizeof *f);
    if (f == NULL)
        return;
    f->version = v->version;
    f->keylen = (uint16_t)v->keylen;
    memcpy(f->key, v->key, v->keylen);
    f->originlen = (uint8_t)v->originlen;
    memcpy(f->origin, v->origin, v->originlen);
    f->next = md->fetches;
    md->fetches = f;
    md->stats.fetches++;
    /* From the node that told us: it has the value. */
    if (from == NULL || fetch_from(md, f, from)) {
        md->stats.fetch_errors++;
        fetch_free(md, f);
    }
}

/* The origin, as a second chance for a fetch that failed. */
static bool retry_from_origin(struct metadata *md, struct fetch *f)
{
    if (f->retried)
        return false;
    f->retried = true;
    const struct member *m = members_find(&md->nd->members, f->origin,
                                          f->originlen);
    return m && m->state == MEMBER_ALIVE && m != md->nd->self &&
           fetch_from(md, f, &m->addr) == 0;
}

/* ===== Serving a request ===== */

/* One tree node, as the answer describes it. */
static void answer_node(const struct metadata *md, const struct pfx *p,
                        struct buf *out)
{
    struct tview v;
    md_tree_view(md, p, &v);
    mp_write_array(out, v.count <= LIST_MAX || p->depth >= TREE_DEPTH ? 2
                                                                      : 3);
    mp_write_uint(out, v.count);
    if (v.count <= LIST_MAX || p->depth >= TREE_DEPTH) {
        uint32_t n = HS_MIN(v.count, (uint32_t)LIST_CAP);
        mp_write_array(out, n);
        const struct meta_entry *e = md_tree_after(md, p->lo, "", 0, true);
        for (uint32_t i = 0; i < n && e; i++) {
            mp_write_array(out, 4);
            mp_write_raw(out, e->key, e->keylen);
            mp_write_uint(out, e->version);
            mp_write_raw(out, e->origin, e->originlen);
            mp_write_bool(out, e->deleted);
            e = md_tree_after(md, e->path, e->key, e->keylen, false);
        }
        return;
    }
    uint64_t hash[16];
    uint32_t count[16];
    uint8_t hb[16 * 8];
    md_tree_kids(p, &v, hash, count);
    for (int c = 0; c < 16; c++) {
        hs_put_be32(hb + 8 * c, (uint32_t)(hash[c] >> 32));
        hs_put_be32(hb + 8 * c + 4, (uint32_t)hash[c]);
    }
    mp_write_raw(out, hb, sizeof hb);
    mp_write_array(out, 16);
    for (int c = 0; c < 16; c++)
        mp_write_uint(out, count[c]);
}

/* The entries of the ranges asked for, in order, from after rkey in the
 * first (if given), RANGE_BATCH and RANGE_BYTES at most, and how many
 * ranges that covers whole. */
static void answer_ranges(const struct metadata *md, const struct pfx *rp,
                          uint32_t nranges, const uint8_t *rkey,
                          uint32_t rkeylen, struct buf *reply)
{
    struct buf rb = BUF_INIT;
    uint32_t rn = 0, done = 0;
    for (; done < nranges; done++) {
        const struct pfx *q = &rp[done];
        uint64_t hi = pfx_hi(q);
        const struct meta_entry *e;
        const char *k = (const char *)rkey;
        uint64_t kp = rkey ? key_path(k, rkeylen) : 0;
        if (done == 0 && rkey && kp >= q->lo && kp <= hi)
            e = md_tree_after(md, kp, k, rkeylen, false);
        else /* from its start (a key from elsewhere is ignored) */
            e = md_tree_after(md, q->lo, "", 0, true);
        for (; e && e->path <= hi && rn < RANGE_BATCH &&
               rb.len < RANGE_BYTES;
             e = md_tree_after(md, e->path, e->key, e->keylen, false)) {
            md_put_entry(&rb, e, true, false);
            rn++;
        }
        if (e && e->path <= hi)
            break; /* the budget ran out inside this one */
    }
    mp_write_str(reply, "r");
    mp_write_array(reply, rn);
    buf_append(reply, rb.data, rb.len);
    mp_write_str(reply, "rdone");
    mp_write_uint(reply, done);
    buf_free(&rb);
}

/* The peer lacks these keys and its horizon is past them: ours are
 * copies of deleted keys. */
static void serve_gone(struct metadata *md, struct mp_reader *r, uint32_t n,
                       uint64_t hz)
{
    size_t dropped = 0;
    for (uint32_t i = 0; i < n && i < 4 * GONE_BATCH; i++) {
        uint32_t three, kl, ol;
        const uint8_t *k, *o;
        uint64_t ver;
        if (mp_read_array(r, &three) || three != 3 ||
            mp_read_raw(r, &k, &kl) || mp_read_uint(r, &ver) ||
            mp_read_raw(r, &o, &ol))
            return;
        if (kl > META_KEY_MAX)
            continue;
        struct meta_entry *e = md_find(md, (const char *)k, kl);
        if (e && !e->deleted && e->version <= hz &&
            newer(e->version, e->origin, e->originlen, ver,
                  (const char *)o, ol) <= 0)
            dropped += md_drop(md, e);
    }
    if (dropped)
        HS_INFO(md->nd->log, "metadata keys dropped: keys=%zu (a peer lacks "
                "them and its tombstone horizon is past them: deleted "
                "there)", dropped);
}

int metadata_stream_serve(struct metadata *md, const uint8_t *p, size_t n,
                          struct buf *reply)
{
    struct mp_reader r, wr, tr, gr;
    uint32_t nf, na, nwant = 0, ntree = 0, ngone = 0;
    uint64_t hz = 0;
    bool wants = false, tree = false, gone = false;
    struct pfx rp[RANGES_BATCH];
    uint32_t nranges = 0;
    const uint8_t *rkey = NULL;
    uint32_t rkeylen = 0;
    mp_reader_init(&r, p, n);
    md->stats.sync_bytes_in += n;
    if (mp_read_map(&r, &nf))
        return HS_EBADMSG;
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k;
        uint32_t kl;
        if (mp_read_raw(&r, &k, &kl))
            return HS_EBADMSG;
        if (kl == 4 && !memcmp(k, "push", 4)) {
            if (mp_read_array(&r, &na))
                return HS_EBADMSG;
            for (uint32_t j = 0; j < na; j++) {
                struct view v;
                if (md_get_entry(&r, &v))
                    return HS_EBADMSG;
                if (!v.deleted && !v.has_value)
                    v.value = (const uint8_t *)"";
                md_apply(md, &v);
            }
        } else if (kl == 4 && !memcmp(k, "want", 4)) {
            wr = r;
            wants = true;
            if (mp_read_array(&r, &nwant))
                return HS_EBADMSG;
            for (uint32_t j = 0; j < nwant; j++)
                if (mp_skip(&r))
                    return HS_EBADMSG;
        } else if (kl == 4 && !memcmp(k, "tree", 4)) {
            if (mp_read_array(&r, &ntree) || ntree > 8 * ASK_BATCH)
                return HS_EBADMSG;
            tr = r;
            tree = true;
            for (uint32_t j = 0; j < ntree; j++) {
                struct pfx q;
                if (mp_read_array(&r, &na) || na != 2 || read_pfx(&r, na, &q))
                    return HS_EBADMSG;
            }
        } else if (kl == 6 && !memcmp(k, "ranges", 6)) {
            if (mp_read_array(&r, &nranges) || nranges > RANGES_BATCH)
                return HS_EBADMSG;
            for (uint32_t j = 0; j < nranges; j++) {
                /* The first may go on after a key. */
                if (mp_read_array(&r, &na) || na > 2u + (j == 0) ||
                    read_pfx(&r, na, &rp[j]) ||
                    (na == 3 && mp_read_raw(&r, &rkey, &rkeylen)) ||
                    rkeylen > META_KEY_MAX)
                    return HS_EBADMSG;
            }
        } else if (kl == 4 && !memcmp(k, "gone", 4)) {
            if (mp_read_array(&r, &ngone))
                return HS_EBADMSG;
            gr = r;
            gone = true;
            for (uint32_t j = 0; j < ngone; j++)
                if (mp_skip(&r))
                    return HS_EBADMSG;
        } else if (kl == 2 && !memcmp(k, "hz", 2)) {
            if (mp_read_uint(&r, &hz))
                return HS_EBADMSG;
            hz = peer_horizon(md, hz);
            md_hlc_observe(md, hz);
        } else if (mp_skip(&r)) {
            return HS_EBADMSG;
        }
    }
    if (gone)
        serve_gone(md, &gr, ngone, hz);
    /* The wanted entries we have, in order, within the budget. */
    struct buf entries = BUF_INIT;
    uint32_t served = 0, count = 0;
    if (wants) {
        /* Within the bytes, and a bound on the keys looked up (nodes
         * before the tree ask 1,000 at a time): `served` tells how far. */
        mp_read_array(&wr, &na);
        for (; served < nwant && served < 4 * WANT_BATCH &&
               entries.len < ANSWER_BYTES;
             served++) {
            const uint8_t *k;
            uint32_t kl;
            if (mp_read_raw(&wr, &k, &kl))
                break;
            const struct meta_entry *e = md_find(md, (const char *)k, kl);
            if (e) {
                md_put_entry(&entries, e, true, false);
                count++;
            }
        }
    }
    mp_write_map(reply, 3 + tree + 2 * (nranges > 0));
    mp_write_str(reply, "hz");
    mp_write_uint(reply, metadata_horizon(md));
    mp_write_str(reply, "e");
    mp_write_array(reply, count);
    buf_append(reply, entries.data, entries.len);
    mp_write_str(reply, "served");
    mp_write_uint(reply, served);
    buf_free(&entries);
    if (tree) {
        mp_write_str(reply, "t");
        mp_write_array(reply, ntree);
        for (uint32_t j = 0; j < ntree; j++) {
            struct pfx q;
            mp_read_array(&tr, &na);
            read_pfx(&tr, na, &q);
            answer_node(md, &q, reply);
        }
    }
    if (nranges)
        answer_ranges(md, rp, nranges, rkey, rkeylen, reply);
    md->stats.sync_bytes_out += reply->len;
    return reply->err;
}

/* ===== Reading an answer ===== */

/* A tree node the peer described: what differs below it becomes more
 * questions, keys wanted or told gone, and ranges fetched or pushed. */
static int read_node(struct metadata *md, struct sync *sy,
                     const struct pfx *p, struct mp_reader *r)
{
    uint32_t n;
    uint64_t count;
    if (mp_read_array(r, &n) || (n != 2 && n != 3) ||
        mp_read_uint(r, &count))
        return HS_EBADMSG;
    struct tview v;
    md_tree_view(md, p, &v);
    if (n == 2) { /* its entries */
        uint32_t ne;
        if (mp_read_array(r, &ne) || ne > LIST_CAP)
            return HS_EBADMSG;
        struct prange pr = {*p, ne > LIST_MAX, 0, {{0, 0, 0}}};
        uint64_t now = md_wall(md), hz = metadata_horizon(md), hi = pfx_hi(p);
        for (uint32_t j = 0; j < ne; j++) {
            uint32_t four, kl, ol;
            const uint8_t *k, *o;
            uint64_t ver;
            bool del;
            if (mp_read_array(r, &four) || four != 4 ||
                mp_read_raw(r, &k, &kl) || mp_read_uint(r, &ver) ||
                mp_read_raw(r, &o, &ol) || mp_read_bool(r, &del))
                return HS_EBADMSG;
            if (kl > META_KEY_MAX || memchr(k, 0, kl) || ol == 0 ||
                ol > 255)
                continue;
            const char *key = (const char *)k, *org = (const char *)o;
            uint64_t path = key_path(key, kl);
            if (path < p->lo || path > hi)
                continue; /* not in this node: a confused peer */
            if (pr.nseen < LIST_MAX)
                pr.seen[pr.nseen++] =
                    (struct seen){path, ver, digest_of(key, kl, org, ol, ver,
                                                       del)};
            if (del && md_expired(md, ver, now))
                continue;
            const struct meta_entry *e =
                md->n ? md_find_path(md, key, kl, path) : NULL;
            if (e) {
                if (newer(ver, org, ol, e->version, e->origin,
                          e->originlen) > 0)
                    Q_WANT(sy, key, kl);
            } else if (ver > hz) {
                Q_WANT(sy, key, kl);
            } else if (!del) {
                q_gone(sy, key, kl, org, ol, ver); /* deleted here */
            }
        }
        if (v.count)
            q_push_range(sy, &pr);
        return 0;
    }
    const uint8_t *hb;
    uint32_t hl, nc;
    uint64_t tc[16];
    if (p->depth >= TREE_DEPTH || mp_read_raw(r, &hb, &hl) ||
        hl != 16 * 8 || mp_read_array(r, &nc) || nc != 16)
        return HS_EBADMSG;
    for (int c = 0; c < 16; c++)
        if (mp_read_uint(r, &tc[c]))
            return HS_EBADMSG;
    uint64_t hash[16];
    uint32_t cnt[16];
    md_tree_kids(p, &v, hash, cnt);
    for (unsigned c = 0; c < 16; c++) {
        uint64_t th = (uint64_t)hs_be32(hb + 8 * c) << 32 |
                      hs_be32(hb + 8 * c + 4);
        if (th == hash[c] && tc[c] == cnt[c])
            continue;
        struct pfx kid = pfx_child(p, c);
        if (tc[c] == 0) {
            if (cnt[c]) {
                struct prange pr = {kid, false, 0, {{0, 0, 0}}};
                q_push_range(sy, &pr); /* it has nothing there */
            }
        } else if (cnt[c] == 0) {
            q_want_range(sy, &kid);
        } else {
            q_ask(sy, &kid);
        }
    }
    return 0;
}

/* Entries the peer sent; those refused by our horizon it should forget.
 * For ranges (rq given), each must lie in the ranges asked for, taken in
 * the order asked: *at says in which the last one was, *last is its
 * key. */
static int read_entries(struct metadata *md, struct sync *sy,
                        struct mp_reader *r, const struct request *rq,
                        size_t *at, struct view *last, uint32_t *got)
{
    uint32_t ne;
    if (mp_read_array(r, &ne))
        return HS_EBADMSG;
    for (uint32_t j = 0; j < ne; j++) {
        struct view v;
        if (md_get_entry(r, &v))
            return HS_EBADMSG;
        if (rq) {
            uint64_t path = key_path((const char *)v.key, v.keylen);
            const struct pfx *ranges = sy->wranges.v + sy->wranges.pos;
            while (*at < rq->nranges &&
                   (path < ranges[*at].lo || path > pfx_hi(&ranges[*at])))
                ++*at; /* the ones before are done */
            if (*at == rq->nranges)
                return HS_EBADMSG; /* not what was asked */
            *last = v;
            ++*got;
        }
        if (!v.deleted && !v.has_value)
            v.value = (const uint8_t *)"";
        if (md_apply(md, &v) == HORIZON && sy)
            q_gone(sy, (const char *)v.key, v.keylen,
                   (const char *)v.origin, v.originlen, v.version);
    }
    return 0;
}

void metadata_stream_answer(struct metadata *md, void *req, const uint8_t *p,
                            size_t n)
{
    struct request *rq = req;
    struct sync *sy = rq->sync;
    struct fetch *f = rq->fetch;
    uint64_t served = 0;
    bool ok = p != NULL, had_t = false, had_r = false;
    struct view last;
    uint32_t ranged = 0;
    size_t at = 0;
    uint64_t rdone = 0;
    if (ok) {
        md->stats.sync_bytes_in += n;
        struct mp_reader r;
        uint32_t nf, nt;
        mp_reader_init(&r, p, n);
        ok = mp_read_map(&r, &nf) == 0;
        for (uint32_t i = 0; ok && i < nf; i++) {
            const uint8_t *k;
            uint32_t kl;
            uint64_t hz;
            if (mp_read_raw(&r, &k, &kl)) {
                ok = false;
            } else if (kl == 1 && k[0] == 'e') {
                ok = read_entries(md, sy, &r, NULL, NULL, NULL, NULL) == 0;
            } else if (kl == 6 && !memcmp(k, "served", 6)) {
                ok = mp_read_uint(&r, &served) == 0;
            } else if (kl == 2 && !memcmp(k, "hz", 2)) {
                ok = mp_read_uint(&r, &hz) == 0;
                hz = peer_horizon(md, hz);
                md_hlc_observe(md, hz);
                if (sy && hz > sy->peer_hz)
                    sy->peer_hz = hz;
            } else if (kl == 1 && k[0] == 't' && sy) {
                ok = mp_read_array(&r, &nt) == 0 && nt == rq->ntree;
                for (uint32_t j = 0; ok && j < nt; j++)
                    ok = read_node(md, sy, &rq->tree[j], &r) == 0;
                had_t = true;
            } else if (kl == 1 && k[0] == 'r' && sy && rq->nranges) {
                ok = read_entries(md, sy, &r, rq, &at, &last, &ranged) == 0;
                had_r = true;
            } else if (kl == 5 && !memcmp(k, "rdone", 5)) {
                ok = mp_read_uint(&r, &rdone) == 0;
            } else {
                ok = mp_skip(&r) == 0;
            }
        }
        /* What was asked must be answered. */
        if (ok && rq->ntree && !had_t)
            ok = false;
        /* Ranges: done ones whole, entries only in those and the next;
         * some progress, or it would never end. */
        if (ok && rq->nranges &&
            (!had_r || rdone > rq->nranges || (ranged && at > rdone) ||
             (rdone == 0 && ranged == 0) ||
             (ranged && at == rdone && rdone == rq->nranges)))
            ok = false;
    }
    if (!ok) {
        md->stats.fetch_errors++;
        HS_DEBUG(md->nd->log, "metadata %s failed: %s", f ? "fetch" : "sync",
                 p ? "bad answer" : "no answer");
    }
    if (f) {
        hs_free(rq);
        if (!ok && retry_from_origin(md, f))
            return;
        fetch_free(md, f);
        return;
    }
    if (sy == NULL) {
        hs_free(rq->tree);
        hs_free(rq);
        return;
    }
    if (ok && rq->nranges) {
        /* On from after the last entry, in the range it came from. */
        if (rdone)
            sy->wcur = false;
        sy->wranges.pos += rdone;
        if (ranged && at == rdone) {
            sy->wcur = true;
            sy->wcurlen = (uint16_t)last.keylen;
            memcpy(sy->wcurkey, last.key, last.keylen);
            sy->wcurpath = key_path(sy->wcurkey, sy->wcurlen);
        }
    }
    bool asked = rq->asked > 0;
    size_t nasked = rq->asked;
    hs_free(rq->tree);
    hs_free(rq);
    if (!ok) {
        sync_free(md, sy);
        return;
    }
    /* Whatever was not served comes in the next batch; nothing served
     * at all means the peer cannot help with those keys. */
    if (asked && served == 0) {
        sy->want.pos += nasked;
        sy->failed = true;
    } else {
        sy->want.pos += HS_MIN((size_t)served, nasked);
    }
    sync_next(md, sy);
}

/* ===== Anti-entropy in push/pull =====
 * The section: {b: the 256 top hashes of the tree (8 bytes each), t: 1
 * (we walk the tree), hz: our horizon, l: [[bucket, [[key, version,
 * origin, deleted], ...]], ...]}. l, the entries of the buckets that
 * differ, only in an answer to a node from before the tree (no t), for
 * LEGACY_LIST_MAX entries at most; a node that walks the tree gets the
 * top hashes only, and the side that started the push/pull asks for
 * what lies below the buckets that differ over a stream. */

static void bucket_bytes(const struct metadata *md, uint8_t *out)
{
    for (int i = 0; i < TREE_TOP; i++) {
        hs_put_be32(out + 8 * i, (uint32_t)(md->top[i].hash >> 32));
        hs_put_be32(out + 8 * i + 4, (uint32_t)md->top[i].hash);
    }
}

static uint64_t bucket_at(const uint8_t *b, int i)
{
    return (uint64_t)hs_be32(b + 8 * i) << 32 | hs_be32(b + 8 * i + 4);
}

struct section {
    const uint8_t *buckets;  /* NULL if none */
    const uint8_t *lists;    /* the "l" array, as bytes */
    size_t listslen;
    bool tree;
    uint64_t hz;
};

static int get_section(const uint8_t *p, size_t n, struct section *s)
{
    struct mp_reader r;
    uint32_t nf;
    memset(s, 0, sizeof *s);
    mp_reader_init(&r, p, n);
    if (mp_read_map(&r, &nf))
        return HS_EBADMSG;
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k, *v;
        uint32_t kl, vl;
        uint64_t t;
        if (mp_read_raw(&r, &k, &kl))
            return HS_EBADMSG;
        if (kl == 1 && k[0] == 'b') {
            if (mp_read_raw(&r, &v, &vl) || vl != 8 * TREE_TOP)
                return HS_EBADMSG;
            s->buckets = v;
        } else if (kl == 1 && k[0] == 'l') {
            size_t at = r.off;
            if (mp_skip(&r))
                return HS_EBADMSG;
            s->lists = p + at;
            s->listslen = r.off - at;
        } else if (kl == 1 && k[0] == 't') {
            if (mp_read_uint(&r, &t))
                return HS_EBADMSG;
            s->tree = t >= 1;
        } else if (kl == 2 && !memcmp(k, "hz", 2)) {
            if (mp_read_uint(&r, &s->hz))
                return HS_EBADMSG;
        } else if (mp_skip(&r)) {
            return HS_EBADMSG;
        }
    }
    return 0;
}

static void put_record(struct buf *out, const struct meta_entry *e)
{
    mp_write_array(out, 4);
    mp_write_raw(out, e->key, e->keylen);
    mp_write_uint(out, e->version);
    mp_write_raw(out, e->origin, e->originlen);
    mp_write_bool(out, e->deleted);
}

int metadata_sync_encode(struct metadata *md, const uint8_t *remote,
                         size_t remotelen, struct buf *out)
{
    struct section rs = {0};
    if (remote && get_section(remote, remotelen, &rs))
        rs.buckets = NULL;
    if (rs.buckets)
        md_hlc_observe(md, peer_horizon(md, rs.hz));
    uint8_t b[8 * TREE_TOP];
    bucket_bytes(md, b);
    size_t start = out->len;
    /* An asker from before the tree: the entries of the buckets that
     * differ, as many buckets as fit in LEGACY_LIST_MAX entries. */
    bool list[TREE_TOP] = {false};
    uint32_t nlist = 0;
    size_t listed = 0;
    if (rs.buckets && !rs.tree)
        for (int i = 0; i < TREE_TOP; i++)
            if (bucket_at(rs.buckets, i) != md->top[i].hash &&
                (listed == 0 ||
                 listed + md->top[i].count <= LEGACY_LIST_MAX)) {
                list[i] = true;
                nlist++;
                listed += md->top[i].count;
            }
    mp_write_map(out, nlist ? 4 : 3);
    mp_write_str(out, "b");
    mp_write_raw(out, b, sizeof b);
    mp_write_str(out, "t");
    mp_write_uint(out, 1);
    mp_write_str(out, "hz");
    mp_write_uint(out, metadata_horizon(md));
    if (nlist) {
        mp_write_str(out, "l");
        mp_write_array(out, nlist);
        for (int i = 0; i < TREE_TOP; i++) {
            if (!list[i])
                continue;
            mp_write_array(out, 2);
            mp_write_uint(out, (uint64_t)i);
            mp_write_array(out, md->top[i].count);
            uint32_t w = 0;
            for (const struct meta_entry *e =
                     md_tree_after(md, (uint64_t)i << 56, "", 0, true);
                 e && (e->path >> 56) == (uint64_t)i && w < md->top[i].count;
                 e = md_tree_after(md, e->path, e->key, e->keylen, false), w++)
                put_record(out, e);
        }
    }
    size_t len = out->len - start;
    if (nlist)
        md->stats.sync_bytes_out += len;
    else
        md->stats.digest_bytes_out += len;
    return out->err;
}

/* The key lists of a node from before the tree: what we lack or have
 * older, what it lacks or has older. Reading stops (the sync is then not
 * complete) after LEGACY_LIST_MAX entries of each side. */
static void read_lists(struct metadata *md, struct sync *sy,
                       const uint8_t *p, size_t n)
{
    uint64_t now = md_wall(md), hz = metadata_horizon(md);
    struct mp_reader r;
    uint32_t nb;
    size_t work = 0;
    mp_reader_init(&r, p, n);
    if (mp_read_array(&r, &nb)) {
        sy->failed = true;
        return;
    }
    for (uint32_t i = 0; i < nb; i++) {
        uint32_t two, ne;
        uint64_t bucket;
        if (work > 2 * LEGACY_LIST_MAX || mp_read_array(&r, &two) ||
            two != 2 || mp_read_uint(&r, &bucket) || bucket >= TREE_TOP ||
            mp_read_array(&r, &ne)) {
            sy->failed = true;
            return;
        }
        if (++md->epoch == 0)
            md->epoch = 1;
        /* Theirs: which do we lack or have older? Ours that are not
         * newer get this round's mark. */
        for (uint32_t j = 0; j < ne; j++, work++) {
            uint32_t four, kl, ol;
            const uint8_t *k, *o;
            uint64_t ver;
            bool del;
            if (mp_read_array(&r, &four) || four != 4 ||
                mp_read_raw(&r, &k, &kl) || mp_read_uint(&r, &ver) ||
                mp_read_raw(&r, &o, &ol) || mp_read_bool(&r, &del)) {
                sy->failed = true;
                return;
            }
            if (kl > META_KEY_MAX || memchr(k, 0, kl) ||
                (del && md_expired(md, ver, now)))
                continue;
            struct meta_entry *e = md_find(md, (const char *)k, kl);
            if (e == NULL) {
                if (del || ver > hz)
                    Q_WANT(sy, (const char *)k, kl);
                continue;
            }
            int c = newer(ver, (const char *)o, ol, e->version, e->origin,
                          e->originlen);
            if (c > 0)
                Q_WANT(sy, (const char *)k, kl);
            if (c >= 0)
                e->mark = md->epoch;
        }
        /* Ours in that bucket without the mark: they lack or have older. */
        for (const struct meta_entry *e =
                 md_tree_after(md, bucket << 56, "", 0, true);
             e && (e->path >> 56) == bucket;
             e = md_tree_after(md, e->path, e->key, e->keylen, false), work++)
            if (e->mark != md->epoch &&
                !(e->deleted && md_expired(md, e->version, now)))
                Q_PUSH(sy, e->key, e->keylen);
    }
}

void metadata_sync_merge(struct metadata *md, const uint8_t *p, size_t n,
                         bool started, const struct hs_addr *peer)
{
    struct section s;
    if (get_section(p, n, &s) || s.buckets == NULL)
        return;
    uint64_t hz = peer_horizon(md, s.hz);
    md_hlc_observe(md, hz);
    bool differ = false;
    for (int i = 0; i < TREE_TOP && !differ; i++)
        differ = bucket_at(s.buckets, i) != md->top[i].hash;
    if (s.lists == NULL)
        md->stats.digest_bytes_in += n;
    else
        md->stats.sync_bytes_in += n;
    uint64_t t0 = HS_MAX(md->hlc, md_wall(md) << 16);
    if (!differ) {
        if (t0 > md->synced)
            md->synced = t0; /* in sync: we hold what it holds */
        return;
    }
    /* The one who started the push/pull drives the exchange. */
    if (!started)
        return;
    if (!s.tree && s.lists == NULL)
        return;
    struct sync *sy = hs_calloc(1, sizeof *sy);
    if (sy == NULL)
        return;
    sy->peer = *peer;
    sy->peer_hz = hz;
    sy->t0 = t0;
    if (s.tree) {
        for (int i = 0; i < TREE_TOP; i++) {
            uint64_t theirs = bucket_at(s.buckets, i);
            if (theirs == md->top[i].hash)
                continue;
            struct pfx b = {(uint64_t)i << 56, 1};
            if (theirs == 0) {
                struct prange pr = {b, false, 0, {{0, 0, 0}}};
                q_push_range(sy, &pr); /* it has nothing there */
            } else if (md->top[i].count == 0) {
                q_want_range(sy, &b);
            } else {
                q_ask(sy, &b);
            }
        }
    } else {
        read_lists(md, sy, s.lists, s.listslen);
    }
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(md->nd->log, "metadata sync: peer=%s tree=%s asks=%zu "
             "fetch=%zu push=%zu want=%zu",
             addr_format(peer, ab, sizeof ab), s.tree ? "true" : "false",
             sy->asks.n, sy->wranges.n, sy->pranges.n + sy->push.n,
             sy->want.n);
    sy->next = md->syncs;
    md->syncs = sy;
    sync_next(md, sy);
}

/* ===== Upkeep ===== */

size_t metadata_queued(const struct metadata *md)
{
    return bqueue_len(&md->queue);
}

bool metadata_tick(struct metadata *md)
{
    md_rehash_step(md, REHASH_TICK);
    md_ht_maybe_shrink(md);
    if (md->nbusy)
        return false; /* hooks are running: next time */
    uint64_t now = md_wall(md);
    size_t k = 0;
    while (md->nheap && k < TICK_BATCH &&
           md_expired(md, md->heap[0]->version, now)) {
        struct meta_entry *e = md->heap[0];
        if (e->version > md->horizon)
            md->horizon = e->version;
        md_unlink_entry(md, e);
        md_entry_free(md, e);
        k++;
    }
    if (k) {
        md->stats.tombstones_collected += k;
        md->dirty = true;
    }
    return md->nheap && md_expired(md, md->heap[0]->version, now);
}

int metadata_new(struct node *nd, struct metadata **out)
{
    struct metadata *md = hs_calloc(1, sizeof *md);
    if (md == NULL)
        return HS_ENOMEM;
    md->nd = nd;
    /* From the node's random state, without drawing from it: the same
     * seed gives the same run as before there was a table to seed. */
    md->seed = mix64(nd->rng.s[0] ^ nd->rng.s[3]);
    hs_rng_seed(&md->rng, mix64(nd->rng.s[1] ^ nd->rng.s[2]));
    bqueue_init(&md->queue, QUEUE_MAX);
    *out = md;
    return 0;
}

/* Every entry freed and every index emptied. */
static void free_entries(struct metadata *md, bool disown)
{
    struct meta_entry *e = md->head[0], *next;
    for (; e; e = next) {
        next = e->fwd[0];
        if (disown) {
            md_entry_free(md, e);
        } else {
            hs_free(e->value);
            hs_free(e);
        }
    }
    memset(md->head, 0, sizeof md->head);
    for (int t = 0; t < 2; t++) {
        hs_free(md->ht[t].b);
        memset(&md->ht[t], 0, sizeof md->ht[t]);
    }
    md->rehashing = false;
    md->rehash = 0;
    for (int i = 0; i < TREE_TOP; i++) {
        md_free_kids(&md->top[i]);
        memset(&md->top[i], 0, sizeof md->top[i]);
    }
    hs_free(md->heap);
    md->heap = NULL;
    md->nheap = md->heapcap = 0;
    md->n = md->ndeleted = 0;
}

void metadata_free(struct metadata *md)
{
    if (md == NULL)
        return;
    while (md->syncs)
        sync_free(md, md->syncs);
    while (md->fetches)
        fetch_free(md, md->fetches);
    /* The queue goes first: entries need not give their slots back. */
    for (struct meta_entry *e = md->head[0]; e; e = e->fwd[0])
        e->bcast = NULL;
    bqueue_close(&md->queue);
    free_entries(md, false);
    hs_free(md);
}

void metadata_clear(struct metadata *md)
{
    free_entries(md, true);
    md->horizon = md->synced = 0;
    md->dirty = true;
}

const struct meta_stats *metadata_stats(const struct metadata *md)
{
    return &md->stats;
}

void metadata_set_dirty(struct metadata *md)
{
    md->dirty = true;
}

bool metadata_take_dirty(struct metadata *md)
{
    bool d = md->dirty;
    md->dirty = false;
    return d;
}

/* ===== Persistence ===== */

#define STATE_FIELDS 3

static void put_state(const struct metadata *md, struct buf *out)
{
    mp_write_str(out, "hlc");
    mp_write_uint(out, md->hlc);
    mp_write_str(out, "hz");
    mp_write_uint(out, md->horizon);
    mp_write_str(out, "sy");
    mp_write_uint(out, md->synced);
}

/* A store-wide field of a state or snapshot map: 1 if it was one, 0 if
 * not (r is then still at its value), <0 if bad. */
static int get_state(struct metadata *md, const uint8_t *k, uint32_t kl,
                     struct mp_reader *r, const char **why)
{
    uint64_t v;
    if (kl == 3 && !memcmp(k, "hlc", 3)) {
        if (mp_read_uint(r, &v)) {
            *why = "bad clock";
            return HS_EBADMSG;
        }
        md_hlc_observe(md, v);
        return 1;
    }
    if (kl == 2 && !memcmp(k, "hz", 2)) {
        if (mp_read_uint(r, &v)) {
            *why = "bad horizon";
            return HS_EBADMSG;
        }
        if (v > md->horizon)
            md->horizon = v;
        md_hlc_observe(md, v);
        return 1;
    }
    if (kl == 2 && !memcmp(k, "sy", 2)) {
        if (mp_read_uint(r, &v)) {
            *why = "bad sync mark";
            return HS_EBADMSG;
        }
        if (v > md->synced)
            md->synced = v;
        return 1;
    }
    return 0;
}

int metadata_state_encode(const struct metadata *md, struct buf *out)
{
    mp_write_map(out, STATE_FIELDS);
    put_state(md, out);
    return out->err;
}

int metadata_state_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why)
{
    struct mp_reader r;
    uint32_t nf;
    mp_reader_init(&r, p, n);
    if (mp_read_map(&r, &nf)) {
        *why = "not the store's state";
        return HS_EBADMSG;
    }
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k;
        uint32_t kl;
        if (mp_read_raw(&r, &k, &kl)) {
            *why = "bad state field";
            return HS_EBADMSG;
        }
        int rc = get_state(md, k, kl, &r, why);
        if (rc < 0)
            return rc;
        if (rc == 0 && mp_skip(&r)) {
            *why = "bad state field";
            return HS_EBADMSG;
        }
    }
    if (mp_left(&r)) {
        *why = "bytes after the state";
        return HS_EBADMSG;
    }
    return 0;
}

int metadata_entry_encode(const struct meta_entry *e, struct buf *out)
{
    md_put_entry(out, e, true, false);
    return out->err;
}

/* Merge an entry read from a snapshot or a log: the newer wins, no hooks,
 * no gossip. */
static int merge_entry(struct metadata *md, const struct view *v)
{
    const struct meta_entry *old =
        md_find(md, (const char *)v->key, v->keylen);
    md_hlc_observe(md, v->version);
    if (old && newer(v->version, (const char *)v->origin, v->originlen,
                     old->version, old->origin, old->originlen) <= 0)
        return 0;
    struct meta_entry *e;
    bool dirty = md->dirty;
    int rc = md_store(md, (const char *)v->key, v->keylen, v->value, v->len,
                      v->deleted, v->version, (const char *)v->origin,
                      v->originlen, &e);
    md->dirty = dirty;
    return rc;
}

int metadata_entry_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why)
{
    struct mp_reader r;
    struct view v;
    mp_reader_init(&r, p, n);
    if (md_get_entry(&r, &v) || mp_left(&r) ||
        (!v.deleted && !v.has_value && v.big)) {
        *why = "bad entry";
        return HS_EBADMSG;
    }
    int rc = merge_entry(md, &v);
    if (rc)
        *why = "out of memory";
    return rc;
}

int metadata_snapshot(const struct metadata *md, struct buf *out)
{
    mp_write_map(out, STATE_FIELDS + 1);
    put_state(md, out);
    mp_write_str(out, "e");
    mp_write_array(out, (uint32_t)md->n);
    for (const struct meta_entry *e = md->head[0]; e; e = e->fwd[0])
        metadata_entry_encode(e, out);
    return out->err;
}

int metadata_restore(struct metadata *md, const uint8_t *p, size_t n,
                     const char **why)
{
    struct mp_reader r;
    uint32_t nf, ne;
    mp_reader_init(&r, p, n);
    if (mp_read_map(&r, &nf)) {
        *why = "not a metadata snapshot";
        return HS_EBADMSG;
    }
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k;
        uint32_t kl;
        if (mp_read_raw(&r, &k, &kl)) {
            *why = "bad snapshot field";
            return HS_EBADMSG;
        }
        int rc = get_state(md, k, kl, &r, why);
        if (rc < 0)
            return rc;
        if (rc > 0)
            continue;
        if (kl == 1 && k[0] == 'e') {
            if (mp_read_array(&r, &ne)) {
                *why = "bad entry list";
                return HS_EBADMSG;
            }
            for (uint32_t j = 0; j < ne; j++) {
                struct view v;
                if (md_get_entry(&r, &v)) {
                    *why = "bad entry";
                    return HS_EBADMSG;
                }
                if (merge_entry(md, &v)) {
                    *why = "out of memory";
                    return HS_ENOMEM;
                }
            }
        } else if (mp_skip(&r)) {
            *why = "bad snapshot field";
            return HS_EBADMSG;
        }
    }
    md->dirty = false;
    return 0;
}

/* ===== Checks (for tests) ===== */

#define FAULT(...)                                                         \
    do {                                                                   \
        snprintf(why, whylen, __VA_ARGS__);                                \
        return -1;                                                         \
    } while (0)

static int check_node(const struct tnode *t, int d, uint64_t lo,
                      size_t *seen, char *why, size_t whylen)
{
    uint64_t h = 0;
    uint64_t hi = d == 0 ? UINT64_MAX
                         : lo | (pfx_bits(d) >= 64 ? 0
                                                   : UINT64_MAX >>
                                                         pfx_bits(d));
    if (t->kids == NULL) {
        if (t->n != t->count)
            FAULT("leaf at depth %d counts %u, holds %u", d, t->count, t->n);
        if (t->n > t->cap)
            FAULT("leaf over its capacity");
        for (uint32_t i = 0; i < t->n; i++) {
            const struct meta_entry *e = t->v[i];
            h ^= e->digest;
            if (e->path < lo || e->path > hi)
                FAULT("key %s in the wrong node", e->key);
            if (i && pk_cmp(t->v[i - 1]->path, t->v[i - 1]->key,
                            t->v[i - 1]->keylen, e) >= 0)
                FAULT("leaf out of order at %s", e->key);
        }
        *seen += t->n;
    } else {
        uint32_t c = 0;
        for (unsigned k = 0; k < 16; k++) {
            const struct tnode *kid = &t->kids[k];
            if (check_node(kid, d + 1, lo | (uint64_t)k << (56 - 4 * d),
                           seen, why, whylen))
                return -1;
            h ^= kid->hash;
            c += kid->count;
        }
        if (c != t->count)
            FAULT("inner node at depth %d counts %u, children %u", d,
                  t->count, c);
        if (t->count <= LEAF_MERGE)
            FAULT("inner node at depth %d holds only %u", d, t->count);
    }
    if (h != t->hash)
        FAULT("node at depth %d: hash differs from its entries", d);
    return 0;
}

int metadata_check(const struct metadata *md, char *why, size_t whylen)
{
    size_t n = 0, deleted = 0;
    for (const struct meta_entry *e = md->head[0]; e; e = e->fwd[0]) {
        n++;
        deleted += e->deleted;
        if (e->fwd[0] && key_cmp(e->key, e->keylen, e->fwd[0]->key,
                                 e->fwd[0]->keylen) >= 0)
            FAULT("skip list out of order at %s", e->key);
        if (md_find(md, e->key, e->keylen) != e)
            FAULT("key %s not found by its hash", e->key);
        if (e->path != key_path(e->key, e->keylen) ||
            e->digest != digest_of(e->key, e->keylen, e->origin,
                                   e->originlen, e->version, e->deleted))
            FAULT("key %s: stale path or digest", e->key);
        if (e->deleted != (e->heap != 0) ||
            (e->heap && md->heap[e->heap - 1] != e))
            FAULT("key %s: tombstone heap out of step", e->key);
        for (int i = 1; i < e->level; i++)
            if (e->fwd[i] && key_cmp(e->key, e->keylen, e->fwd[i]->key,
                                     e->fwd[i]->keylen) >= 0)
                FAULT("skip list level %d out of order at %s", i, e->key);
    }
    if (n != md->n || deleted != md->ndeleted || deleted != md->nheap)
        FAULT("counts: %zu entries, %zu deleted listed; %zu, %zu, heap %zu",
              n, deleted, md->n, md->ndeleted, md->nheap);
    if (md->ht[0].used + (md->rehashing ? md->ht[1].used : 0) != n)
        FAULT("hash table holds %zu, not %zu",
              md->ht[0].used + md->ht[1].used, n);
    for (size_t i = 1; i < md->nheap; i++)
        if (md->heap[(i - 1) / 2]->version > md->heap[i]->version)
            FAULT("tombstone heap out of order");
    size_t seen = 0;
    for (int b = 0; b < TREE_TOP; b++)
        if (check_node(&md->top[b], 1, (uint64_t)b << 56, &seen, why,
                       whylen))
            return -1;
    if (seen != n)
        FAULT("hash tree holds %zu, not %zu", seen, n);
    return 0;
}

bool metadata_rehashing(const struct metadata *md)
{
    return md->rehashing;
}

/* ===== The data dir's log ===== */

void metadata_set_journal(struct metadata *md, const struct meta_journal *j)
{
    if (j)
        md->journal = *j;
    else
        memset(&md->journal, 0, sizeof md->journal);
}
