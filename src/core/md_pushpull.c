/* md_pushpull.c: the store's section of a push/pull: the top
 * of the hash tree, compared to start a sync where it differs. */
#include "core/metadata_int.h"

#include "codec/mp.h"

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
    const uint8_t *buckets; /* NULL if none */
    const uint8_t *lists;   /* the "l" array, as bytes */
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
        md_hlc_observe(md, md_peer_horizon(md, rs.hz));
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
                (listed == 0 || listed + md->top[i].count <= LEGACY_LIST_MAX)) {
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
static void read_lists(struct metadata *md, struct sync *sy, const uint8_t *p,
                       size_t n)
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
        if (work > 2 * LEGACY_LIST_MAX || mp_read_array(&r, &two) || two != 2 ||
            mp_read_uint(&r, &bucket) || bucket >= TREE_TOP ||
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
    uint64_t hz = md_peer_horizon(md, s.hz);
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
                md_q_push_range(sy, &pr); /* it has nothing there */
            } else if (md->top[i].count == 0) {
                md_q_want_range(sy, &b);
            } else {
                md_q_ask(sy, &b);
            }
        }
    } else {
        read_lists(md, sy, s.lists, s.listslen);
    }
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(md->log,
             "metadata sync: peer=%s tree=%s asks=%zu "
             "fetch=%zu push=%zu want=%zu",
             addr_format(peer, ab, sizeof ab), s.tree ? "true" : "false",
             sy->asks.n, sy->wranges.n, sy->pranges.n + sy->push.n, sy->want.n);
    sy->next = md->syncs;
    md->syncs = sy;
    md_sync_next(md, sy);
}
