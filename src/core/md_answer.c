/* md_answer.c: reading the answer to a sync or fetch request of
 * ours: what differs below each tree node becomes the next questions. */
#include "core/metadata_int.h"

#include "codec/mp.h"

/* A tree node the peer described: what differs below it becomes more
 * questions, keys wanted or told gone, and ranges fetched or pushed. */
static int read_node(struct metadata *md, struct sync *sy, const struct pfx *p,
                     struct mp_reader *r)
{
    uint32_t n;
    uint64_t count;
    if (mp_read_array(r, &n) || (n != 2 && n != 3) || mp_read_uint(r, &count))
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
            if (kl > META_KEY_MAX || memchr(k, 0, kl) || ol == 0 || ol > 255)
                continue;
            const char *key = (const char *)k, *org = (const char *)o;
            uint64_t path = key_path(key, kl);
            if (path < p->lo || path > hi)
                continue; /* not in this node: a confused peer */
            if (pr.nseen < LIST_MAX)
                pr.seen[pr.nseen++] = (struct seen){
                    path, ver, digest_of(key, kl, org, ol, ver, del)};
            if (del && md_expired(md, ver, now))
                continue;
            const struct meta_entry *e =
                md->n ? md_find_path(md, key, kl, path) : NULL;
            if (e) {
                if (newer(ver, org, ol, e->version, e->origin, e->originlen) >
                    0)
                    Q_WANT(sy, key, kl);
            } else if (ver > hz) {
                Q_WANT(sy, key, kl);
            } else if (!del) {
                md_q_gone(sy, key, kl, org, ol, ver); /* deleted here */
            }
        }
        if (v.count)
            md_q_push_range(sy, &pr);
        return 0;
    }
    const uint8_t *hb;
    uint32_t hl, nc;
    uint64_t tc[16];
    if (p->depth >= TREE_DEPTH || mp_read_raw(r, &hb, &hl) || hl != 16 * 8 ||
        mp_read_array(r, &nc) || nc != 16)
        return HS_EBADMSG;
    for (int c = 0; c < 16; c++)
        if (mp_read_uint(r, &tc[c]))
            return HS_EBADMSG;
    uint64_t hash[16];
    uint32_t cnt[16];
    md_tree_kids(p, &v, hash, cnt);
    for (unsigned c = 0; c < 16; c++) {
        uint64_t th =
            (uint64_t)hs_be32(hb + 8 * c) << 32 | hs_be32(hb + 8 * c + 4);
        if (th == hash[c] && tc[c] == cnt[c])
            continue;
        struct pfx kid = pfx_child(p, c);
        if (tc[c] == 0) {
            if (cnt[c]) {
                struct prange pr = {kid, false, 0, {{0, 0, 0}}};
                md_q_push_range(sy, &pr); /* it has nothing there */
            }
        } else if (cnt[c] == 0) {
            md_q_want_range(sy, &kid);
        } else {
            md_q_ask(sy, &kid);
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
            md_q_gone(sy, (const char *)v.key, v.keylen, (const char *)v.origin,
                      v.originlen, v.version);
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
                hz = md_peer_horizon(md, hz);
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
        HS_DEBUG(md->log, "metadata %s failed: %s", f ? "fetch" : "sync",
                 p ? "bad answer" : "no answer");
    }
    if (f) {
        hs_free(rq);
        if (!ok && md_retry_from_origin(md, f))
            return;
        md_fetch_free(md, f);
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
        md_sync_free(md, sy);
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
    md_sync_next(md, sy);
}
