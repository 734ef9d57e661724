/* md_sync.c: the syncs we lead: the tree nodes, ranges and keys
 * still to ask about, fetch or push, and the requests that carry them. */
#include "core/metadata_int.h"

#include "codec/mp.h"

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

/* A horizon from a peer, unless from a clock far ahead (the HLC would
 * follow it): 0 then. */
uint64_t md_peer_horizon(const struct metadata *md, uint64_t hz)
{
    return version_ms(hz) > md_wall(md) + md->cfg->metadata_max_skew ? 0 : hz;
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

void md_sync_free(struct metadata *md, struct sync *sy)
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
    HS_DEBUG(md->log, "metadata sync done: peer=%s complete=%s",
             addr_format(&sy->peer, ab, sizeof ab),
             sy->failed ? "false" : "true");
    if (sy->dropped)
        HS_INFO(md->log,
                "metadata keys dropped: peer=%s keys=%zu (the "
                "peer lacks them and its tombstone horizon is past them: "
                "deleted there)",
                ab, sy->dropped);
    md_sync_free(md, sy);
}

void md_q_ask(struct sync *sy, const struct pfx *p)
{
    if (Q_RESERVE(sy->asks)) {
        sy->failed = true;
        return;
    }
    sy->asks.v[sy->asks.n++] = *p;
}

void md_q_want_range(struct sync *sy, const struct pfx *p)
{
    if (Q_RESERVE(sy->wranges)) {
        sy->failed = true;
        return;
    }
    sy->wranges.v[sy->wranges.n++] = *p;
}

void md_q_push_range(struct sync *sy, const struct prange *r)
{
    if (Q_RESERVE(sy->pranges)) {
        sy->failed = true;
        return;
    }
    sy->pranges.v[sy->pranges.n++] = *r;
}

void md_q_key(struct sync *sy, char ***v, size_t *n, size_t *cap, const char *k,
              size_t kl)
{
    char *d = NULL;
    if (reserve((void **)v, cap, *n, sizeof **v) ||
        (d = hs_strndup(k, kl)) == NULL) {
        sy->failed = true;
        return;
    }
    (*v)[(*n)++] = d;
}

void md_q_gone(struct sync *sy, const char *k, size_t kl, const char *o,
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
static uint32_t fill_pushes(struct metadata *md, struct sync *sy, struct buf *b)
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
            sy->pcur ? md_tree_after(md, sy->pcurpath, sy->pcurkey, sy->pcurlen,
                                     false)
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

int md_read_pfx(struct mp_reader *r, uint32_t n, struct pfx *p)
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
void md_sync_next(struct metadata *md, struct sync *sy)
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
        rc = md_send_request(md, &sy->peer, &body, rq);
    }
    buf_free(&pushes);
    buf_free(&body);
    if (rc) {
        if (rq)
            hs_free(rq->tree);
        hs_free(rq);
        md->stats.fetch_errors++;
        md_sync_free(md, sy);
        return;
    }
    md->stats.sync_streams++;
}
