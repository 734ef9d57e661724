/* md_persist.c: the store's bytes for the data dir: the store-wide
 * fields, single entries and whole snapshots, written and merged back. */
#include "core/metadata_int.h"

#include "codec/mp.h"

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
    const struct meta_entry *old = md_find(md, (const char *)v->key, v->keylen);
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
