/* md_serve.c: serving a peer's sync or fetch request: what it
 * pushes applied, what it asks for answered (entries, tree nodes,
 * ranges), what it says is gone dropped. */
#include "core/metadata_int.h"

#include "codec/mp.h"

/* One tree node, as the answer describes it. */
static void answer_node(const struct metadata *md, const struct pfx *p,
                        struct buf *out)
{
    struct tview v;
    md_tree_view(md, p, &v);
    mp_write_array(out, v.count <= LIST_MAX || p->depth >= TREE_DEPTH ? 2 : 3);
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
        for (; e && e->path <= hi && rn < RANGE_BATCH && rb.len < RANGE_BYTES;
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
        if (mp_read_array(r, &three) || three != 3 || mp_read_raw(r, &k, &kl) ||
            mp_read_uint(r, &ver) || mp_read_raw(r, &o, &ol))
            return;
        if (kl > META_KEY_MAX)
            continue;
        struct meta_entry *e = md_find(md, (const char *)k, kl);
        if (e && !e->deleted && e->version <= hz &&
            newer(e->version, e->origin, e->originlen, ver, (const char *)o,
                  ol) <= 0)
            dropped += md_drop(md, e);
    }
    if (dropped)
        HS_INFO(md->log,
                "metadata keys dropped: keys=%zu (a peer lacks "
                "them and its tombstone horizon is past them: deleted "
                "there)",
                dropped);
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
                if (mp_read_array(&r, &na) || na != 2 ||
                    md_read_pfx(&r, na, &q))
                    return HS_EBADMSG;
            }
        } else if (kl == 6 && !memcmp(k, "ranges", 6)) {
            if (mp_read_array(&r, &nranges) || nranges > RANGES_BATCH)
                return HS_EBADMSG;
            for (uint32_t j = 0; j < nranges; j++) {
                /* The first may go on after a key. */
                if (mp_read_array(&r, &na) || na > 2u + (j == 0) ||
                    md_read_pfx(&r, na, &rp[j]) ||
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
            hz = md_peer_horizon(md, hz);
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
            md_read_pfx(&tr, na, &q);
            answer_node(md, &q, reply);
        }
    }
    if (nranges)
        answer_ranges(md, rp, nranges, rkey, rkeylen, reply);
    md->stats.sync_bytes_out += reply->len;
    return reply->err;
}
