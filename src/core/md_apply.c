/* md_apply.c: writes applied to the store, local or from a peer:
 * the versions compared, the validate hook asked, the entry stored, the
 * on_metadata hook and the observer told; and keys dropped by a peer's
 * horizon. */
#include "core/metadata_int.h"

#include <stdio.h>

static bool key_busy(const struct metadata *md, const char *k, size_t n)
{
    for (int i = 0; i < md->nbusy; i++)
        if (md->busy[i].len == n && memcmp(md->busy[i].key, k, n) == 0)
            return true;
    return false;
}

/* Mark a key busy for the hooks about to run; false when hooks are
 * nested too deep already. */
static bool busy_push(struct metadata *md, const char *k, size_t n)
{
    if (md->nbusy == (int)HS_ARRAY_LEN(md->busy))
        return false;
    md->busy[md->nbusy].key = k;
    md->busy[md->nbusy].len = n;
    md->nbusy++;
    return true;
}

static void busy_pop(struct metadata *md)
{
    md->nbusy--;
}

/* The value a write replaces, copied: the hooks see it after the entry
 * that held it was replaced. */
struct old_value {
    uint8_t *p; /* owned; NULL when there was none or it was empty */
    size_t len;
    bool had; /* the key had a value (neither absent nor deleted) */
};

static bool old_value_take(struct old_value *o, const struct meta_entry *e)
{
    o->had = e && !e->deleted;
    o->len = o->had ? e->len : 0;
    o->p = o->len ? hs_malloc(o->len) : NULL;
    if (o->len && o->p == NULL)
        return false;
    if (o->len)
        memcpy(o->p, e->value, o->len);
    return true;
}

static void fill_change(struct meta_change *c, const char *k, size_t klen,
                        const uint8_t *v, size_t vlen, bool del,
                        const struct old_value *old, const char *origin,
                        size_t olen, uint64_t version, bool local)
{
    c->key = k;
    c->keylen = klen;
    c->value = del ? NULL : (v ? v : (const uint8_t *)"");
    c->len = del ? 0 : vlen;
    c->old = old->had ? (old->p ? old->p : (const uint8_t *)"") : NULL;
    c->oldlen = old->len;
    c->origin = origin;
    c->originlen = olen;
    c->version = version;
    c->local = local;
}

/* After entry e was stored: the on_metadata hook and the observer see the
 * change; then the key is no longer busy and the old value is freed. */
static void applied(struct metadata *md, const struct meta_entry *e,
                    struct old_value *ov, bool local)
{
    struct meta_change c;
    if (md->journal.append)
        md->journal.append(md->journal.ud, e);
    fill_change(&c, e->key, e->keylen, e->value, e->len, e->deleted, ov,
                e->origin, e->originlen, e->version, local);
    if (md->hooks->on_metadata)
        md->hooks->on_metadata(md->hooks->ud, &c);
    if (md->observer)
        md->observer(md->observer_ud, &c);
    busy_pop(md);
    hs_free(ov->p);
}

/* A write refused by the horizon: counted, and logged once a minute at
 * most (a node back from a long absence may carry thousands). */
void md_note_horizon(struct metadata *md, const struct view *v)
{
    md->stats.refused_horizon++;
    uint64_t now = md_now(md);
    if (md->hz_logged && now < md->hz_logged_at + 60000) {
        md->hz_quiet++;
        return;
    }
    HS_INFO(md->log,
            "metadata write older than the tombstone horizon "
            "refused: key=%.*s origin=%.*s version=%llu horizon=%llu "
            "refused_since_last=%llu",
            (int)v->keylen, (const char *)v->key, (int)v->originlen,
            (const char *)v->origin, (unsigned long long)v->version,
            (unsigned long long)metadata_horizon(md),
            (unsigned long long)md->hz_quiet);
    md->hz_logged = true;
    md->hz_logged_at = now;
    md->hz_quiet = 0;
}

/* A write from elsewhere: newer than ours and valid? Then store it. */
int md_apply(struct metadata *md, const struct view *v)
{
    const struct config *cfg = md->cfg;
    if (!v->deleted && v->len > cfg->metadata_max_value)
        return REFUSED;
    /* A version from a clock far ahead must not freeze the key: it waits
     * until our clock comes within metadata_max_skew of it. */
    uint64_t now = md_wall(md);
    if (version_ms(v->version) > now + cfg->metadata_max_skew) {
        md->stats.refused_future++;
        HS_DEBUG(md->log,
                 "metadata write from the future put off: key=%.*s "
                 "origin=%.*s ahead=%llums",
                 (int)v->keylen, (const char *)v->key, (int)v->originlen,
                 (const char *)v->origin,
                 (unsigned long long)(version_ms(v->version) - now));
        return REFUSED;
    }
    /* A delete older than the tombstone TTL is as good as collected. */
    if (v->deleted &&
        now > version_ms(v->version) + cfg->metadata_tombstone_ttl)
        return IGNORED;
    const char *k = (const char *)v->key;
    struct meta_entry *old = md_find(md, k, v->keylen);
    if (old && newer(v->version, (const char *)v->origin, v->originlen,
                     old->version, old->origin, old->originlen) <= 0)
        return IGNORED;
    /* A key we do not hold, no newer than a tombstone we collected: it
     * was deleted, and this is a copy from before (a node or a backup
     * older than the horizon). */
    if (old == NULL && v->version <= metadata_horizon(md)) {
        if (v->deleted)
            return IGNORED;
        md_note_horizon(md, v);
        return HORIZON;
    }
    md_hlc_observe(md, v->version);
    if (!busy_push(md, k, v->keylen))
        return REFUSED;
    struct old_value ov;
    if (!old_value_take(&ov, old)) {
        busy_pop(md);
        return REFUSED;
    }
    struct meta_change c;
    fill_change(&c, k, v->keylen, v->value, v->len, v->deleted, &ov,
                (const char *)v->origin, v->originlen, v->version, false);
    char why[256] = "";
    if (md->hooks->validate_metadata &&
        md->hooks->validate_metadata(md->hooks->ud, &c, why, sizeof why)) {
        busy_pop(md);
        hs_free(ov.p);
        md->stats.refused_remote++;
        HS_INFO(md->log,
                "metadata write refused: key=%.*s origin=%.*s "
                "reason=%s",
                (int)v->keylen, k, (int)v->originlen, (const char *)v->origin,
                why[0] ? why : "refused");
        return REFUSED;
    }
    /* A validate hook may have written other keys: look again. */
    old = md_find(md, k, v->keylen);
    if (old && newer(v->version, (const char *)v->origin, v->originlen,
                     old->version, old->origin, old->originlen) <= 0) {
        busy_pop(md);
        hs_free(ov.p);
        return IGNORED;
    }
    struct meta_entry *e;
    if (md_store(md, k, v->keylen, v->value, v->len, v->deleted, v->version,
                 (const char *)v->origin, v->originlen, &e)) {
        busy_pop(md);
        hs_free(ov.p);
        return REFUSED;
    }
    /* the busy mark must name memory that lives while the hooks run */
    md->busy[md->nbusy - 1].key = e->key;
    md->stats.writes_remote++;
    HS_DEBUG(md->log, "metadata write applied: key=%s origin=%s bytes=%u%s",
             e->key, e->origin, e->len, e->deleted ? " (delete)" : "");
    md_gossip(md, e);
    applied(md, e, &ov, false);
    return APPLIED;
}

/* Forget a live key because a peer whose horizon covers its version
 * lacks it: the key was deleted and its tombstone collected there, and
 * pushing it would bring it back. The hooks and the observer see a
 * delete. False (kept) while hooks run for the key. */
bool md_drop(struct metadata *md, struct meta_entry *e)
{
    if (e->deleted || key_busy(md, e->key, e->keylen) ||
        md->nbusy == (int)HS_ARRAY_LEN(md->busy))
        return false;
    char key[META_KEY_MAX + 1], origin[256];
    size_t kl = e->keylen, ol = e->originlen;
    uint64_t version = e->version;
    memcpy(key, e->key, kl + 1);
    memcpy(origin, e->origin, ol + 1);
    struct old_value ov;
    if (!old_value_take(&ov, e))
        return false;
    busy_push(md, key, kl);
    HS_DEBUG(md->log,
             "metadata key dropped: key=%s origin=%s version=%llu "
             "(deleted where the horizon is past it)",
             key, origin, (unsigned long long)version);
    md_unlink_entry(md, e);
    md_entry_free(md, e);
    md->stats.dropped_horizon++;
    md->dirty = true;
    struct meta_change c;
    fill_change(&c, key, kl, NULL, 0, true, &ov, origin, ol, version, false);
    if (md->hooks->on_metadata)
        md->hooks->on_metadata(md->hooks->ud, &c);
    if (md->observer)
        md->observer(md->observer_ud, &c);
    busy_pop(md);
    hs_free(ov.p);
    return true;
}

int metadata_put(struct metadata *md, const char *key, size_t keylen,
                 const void *value, size_t len, bool del, char *why,
                 size_t whylen, uint64_t *version_out)
{
    why[0] = '\0';
    if (keylen > META_KEY_MAX || memchr(key, 0, keylen)) {
        snprintf(why, whylen, "keys are at most %d bytes, without NUL",
                 META_KEY_MAX);
        return HS_EINVAL;
    }
    if (!del && len > md->cfg->metadata_max_value) {
        snprintf(why, whylen,
                 "value of %zu bytes is over "
                 "metadata_max_value (%llu)",
                 len, (unsigned long long)md->cfg->metadata_max_value);
        return HS_ETOOBIG;
    }
    if (key_busy(md, key, keylen)) {
        snprintf(why, whylen,
                 "a metadata hook cannot write the key it was "
                 "called for (write it later, from hearsay.after)");
        return HS_EBUSY;
    }
    if (md->journal.refuse && md->journal.refuse(md->journal.ud, why, whylen))
        return HS_EIO;
    /* A delete is a write like any other, even of a key not seen here
     * yet: its tombstone beats any older put still on its way. */
    struct meta_entry *old = md_find(md, key, keylen);
    if (!busy_push(md, key, keylen)) {
        snprintf(why, whylen, "metadata hooks nested too deep");
        return HS_EBUSY;
    }
    uint64_t version = metadata_hlc_next(md, md_wall(md));
    struct old_value ov;
    if (!old_value_take(&ov, old)) {
        busy_pop(md);
        return HS_ENOMEM;
    }
    struct meta_change c;
    fill_change(&c, key, keylen, value, len, del, &ov, md->cfg->name,
                md->namelen, version, true);
    if (md->hooks->validate_metadata &&
        md->hooks->validate_metadata(md->hooks->ud, &c, why, whylen)) {
        busy_pop(md);
        hs_free(ov.p);
        md->stats.refused_local++;
        if (why[0] == '\0')
            snprintf(why, whylen, "refused by validate_metadata");
        HS_INFO(md->log,
                "metadata write refused: key=%.*s origin=%s "
                "reason=%s",
                (int)keylen, key, md->cfg->name, why);
        return HS_EREFUSED;
    }
    struct meta_entry *e;
    int rc = md_store(md, key, keylen, value, len, del, version, md->cfg->name,
                      md->namelen, &e);
    if (rc) {
        busy_pop(md);
        hs_free(ov.p);
        return rc;
    }
    md->busy[md->nbusy - 1].key = e->key;
    md->stats.writes_local++;
    HS_INFO(md->log, "metadata %s: key=%s bytes=%u version=%llu",
            del ? "deleted" : "published", e->key, e->len,
            (unsigned long long)version);
    md_gossip(md, e);
    if (version_out)
        *version_out = version;
    applied(md, e, &ov, true);
    return 0;
}
