/* metadata.c: the cluster metadata store: versions, validation, gossip,
 * anti-entropy by digest, fetches of large values, snapshots. */
#include "metadata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "node_int.h"

/* Batches of one sync stream: keys asked for, bytes pushed or answered. */
#define WANT_BATCH 1000
#define PUSH_BYTES (4u << 20)
#define ANSWER_BYTES (8u << 20)
#define QUEUE_MAX 4096

struct fetch {
    struct fetch *next;
    uint64_t version;
    uint16_t keylen;
    bool retried;
    char key[META_KEY_MAX];
    char origin[256];
    uint8_t originlen;
};

/* One sync with a peer: the keys we want, the entries we push. */
struct sync {
    struct sync *next;
    struct hs_addr peer;
    char **want;
    size_t nwant, wpos;
    char **push;
    size_t npush, ppos;
};

/* What a stream request of ours is about. */
struct request {
    struct metadata *md;
    struct sync *sync;   /* or NULL */
    struct fetch *fetch; /* or NULL */
    size_t asked;        /* wants in this batch */
};

struct metadata {
    struct node *nd;
    struct meta_entry **slots;
    size_t nslots, n;
    uint64_t buckets[META_BUCKETS];
    uint64_t hlc;
    bool dirty;
    struct fetch *fetches;
    struct sync *syncs;
    struct bqueue queue;
    struct meta_stats stats;
    meta_observer_fn observer;
    void *observer_ud;
    struct meta_journal journal; /* the data dir's log */
    /* Keys whose hooks are running: a hook must not write its own key
     * (the entry it was handed would be freed under it). */
    struct {
        const char *key;
        size_t len;
    } busy[8];
    int nbusy;
};

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

void metadata_set_observer(struct metadata *md, meta_observer_fn fn,
                           void *ud)
{
    md->observer = fn;
    md->observer_ud = ud;
}

/* ===== Hashing and ordering ===== */

static uint64_t fnv64(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint32_t key_hash(const char *k, size_t n)
{
    return (uint32_t)mix64(fnv64(1469598103934665603ull, k, n));
}

static unsigned bucket_of(uint32_t hash)
{
    return hash % META_BUCKETS;
}

static uint64_t entry_digest(const struct meta_entry *e)
{
    uint64_t h = fnv64(1469598103934665603ull, e->key, e->keylen);
    h = fnv64(h, e->origin, e->originlen);
    h ^= mix64(e->version * 2 + (e->deleted ? 1 : 0));
    return mix64(h) | 1; /* never 0 */
}

/* Order of writes: version, then origin. >0 if a wins. */
static int newer(uint64_t av, const char *ao, size_t aol, uint64_t bv,
                 const char *bo, size_t bol)
{
    if (av != bv)
        return av > bv ? 1 : -1;
    int c = memcmp(ao, bo, HS_MIN(aol, bol));
    if (c)
        return c;
    return aol == bol ? 0 : aol > bol ? 1 : -1;
}

static uint64_t version_ms(uint64_t v)
{
    return v >> 16;
}

static uint64_t wall(const struct metadata *md)
{
    return md->nd->io.wall(md->nd->io.ctx);
}

uint64_t metadata_hlc_next(struct metadata *md, uint64_t wall_ms)
{
    uint64_t pt = wall_ms << 16;
    md->hlc = pt > md->hlc ? pt : md->hlc + 1;
    return md->hlc;
}

static void hlc_observe(struct metadata *md, uint64_t v)
{
    if (v > md->hlc)
        md->hlc = v;
}

/* ===== The table ===== */

static struct meta_entry *find(const struct metadata *md, const char *k,
                               size_t n)
{
    if (md->nslots == 0)
        return NULL;
    uint32_t h = key_hash(k, n);
    size_t mask = md->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct meta_entry *e = md->slots[i];
        if (e == NULL)
            return NULL;
        if (e->hash == h && e->keylen == n && memcmp(e->key, k, n) == 0)
            return e;
    }
}

static void slot_put(struct meta_entry **slots, size_t nslots,
                     struct meta_entry *e)
{
    size_t mask = nslots - 1, i = e->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = e;
}

static int grow(struct metadata *md)
{
    if ((md->n + 1) * 2 <= md->nslots)
        return 0;
    size_t ns = md->nslots ? md->nslots * 2 : 64;
    struct meta_entry **s = hs_calloc(ns, sizeof *s);
    if (s == NULL)
        return HS_ENOMEM;
    for (size_t i = 0; i < md->nslots; i++)
        if (md->slots[i])
            slot_put(s, ns, md->slots[i]);
    hs_free(md->slots);
    md->slots = s;
    md->nslots = ns;
    return 0;
}

static void entry_free(struct metadata *md, struct meta_entry *e)
{
    bqueue_disown(&md->queue, &e->bcast);
    hs_free(e->value);
    hs_free(e);
}

static void unlink_entry(struct metadata *md, struct meta_entry *e)
{
    size_t mask = md->nslots - 1, i = e->hash & mask;
    while (md->slots[i] != e)
        i = (i + 1) & mask;
    md->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; md->slots[j]; j = (j + 1) & mask) {
        struct meta_entry *x = md->slots[j];
        md->slots[j] = NULL;
        slot_put(md->slots, md->nslots, x);
    }
    md->buckets[bucket_of(e->hash)] ^= e->digest;
    md->n--;
}

/* Store a write (the entry replaces any older one). */
static int store(struct metadata *md, const char *k, size_t klen,
                 const uint8_t *v, size_t vlen, bool del, uint64_t version,
                 const char *origin, size_t olen, struct meta_entry **out)
{
    struct meta_entry *e = hs_calloc(1, sizeof *e + klen + 1);
    if (e == NULL)
        return HS_ENOMEM;
    char *key = (char *)(e + 1);
    memcpy(key, k, klen);
    key[klen] = '\0';
    e->key = key;
    e->keylen = (uint16_t)klen;
    e->deleted = del;
    if (!del && vlen) {
        e->value = hs_malloc(vlen);
        if (e->value == NULL) {
            hs_free(e);
            return HS_ENOMEM;
        }
        memcpy(e->value, v, vlen);
    }
    e->len = del ? 0 : (uint32_t)vlen;
    e->version = version;
    e->originlen = (uint8_t)HS_MIN(olen, (size_t)255);
    memcpy(e->origin, origin, e->originlen);
    e->origin[e->originlen] = '\0';
    e->changed = node_now(md->nd);
    e->hash = key_hash(k, klen);
    e->digest = entry_digest(e);
    struct meta_entry *old = find(md, k, klen);
    if (old) {
        /* keep the queued gossip slot with the new entry */
        e->bcast = old->bcast;
        if (e->bcast)
            e->bcast->slot = &e->bcast;
        old->bcast = NULL;
        unlink_entry(md, old);
        entry_free(md, old);
    } else if (grow(md)) {
        entry_free(md, e);
        return HS_ENOMEM;
    }
    slot_put(md->slots, md->nslots, e);
    md->n++;
    md->buckets[bucket_of(e->hash)] ^= e->digest;
    md->dirty = true;
    *out = e;
    return 0;
}

/* ===== Entries on the wire =====
 * A msgpack map: k key, v value (absent in a tombstone or an
 * announcement), ver version, o origin, d deleted, big size (an
 * announcement: the value is too large for a packet). */

struct view {
    const uint8_t *key, *value, *origin;
    uint32_t keylen, len, originlen;
    bool has_value, deleted;
    uint64_t version, big;
};

static void put_entry(struct buf *b, const struct meta_entry *e, bool value,
                      bool announce)
{
    mp_write_map(b, 4 + (value && !e->deleted) + announce);
    mp_write_str(b, "k");
    mp_write_raw(b, e->key, e->keylen);
    if (value && !e->deleted) {
        mp_write_str(b, "v");
        mp_write_raw(b, e->value, e->len);
    }
    mp_write_str(b, "ver");
    mp_write_uint(b, e->version);
    mp_write_str(b, "o");
    mp_write_raw(b, e->origin, e->originlen);
    mp_write_str(b, "d");
    mp_write_bool(b, e->deleted);
    if (announce) {
        mp_write_str(b, "big");
        mp_write_uint(b, e->len);
    }
}

static int get_entry(struct mp_reader *r, struct view *v)
{
    uint32_t n;
    int rc = mp_read_map(r, &n);
    if (rc)
        return rc;
    memset(v, 0, sizeof *v);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kl;
        if ((rc = mp_read_raw(r, &k, &kl)))
            return rc;
        if (kl == 1 && k[0] == 'k')
            rc = mp_read_raw(r, &v->key, &v->keylen);
        else if (kl == 1 && k[0] == 'v') {
            rc = mp_read_raw(r, &v->value, &v->len);
            v->has_value = rc == 0;
        } else if (kl == 3 && !memcmp(k, "ver", 3))
            rc = mp_read_uint(r, &v->version);
        else if (kl == 1 && k[0] == 'o')
            rc = mp_read_raw(r, &v->origin, &v->originlen);
        else if (kl == 1 && k[0] == 'd')
            rc = mp_read_bool(r, &v->deleted);
        else if (kl == 3 && !memcmp(k, "big", 3))
            rc = mp_read_uint(r, &v->big);
        else
            rc = mp_skip(r);
        if (rc)
            return rc;
    }
    if (v->key == NULL || v->keylen > META_KEY_MAX ||
        memchr(v->key, 0, v->keylen) || v->origin == NULL ||
        v->originlen == 0 || v->originlen > 255 ||
        memchr(v->origin, 0, v->originlen))
        return HS_EBADMSG;
    return 0;
}

/* ===== Applying writes ===== */

/* The value a write replaces, copied: the hooks see it after the entry
 * that held it was replaced. */
struct old_value {
    uint8_t *p;  /* owned; NULL when there was none or it was empty */
    size_t len;
    bool had;    /* the key had a value (neither absent nor deleted) */
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

static void gossip(struct metadata *md, struct meta_entry *e);

/* After entry e was stored: the on_metadata hook and the observer see the
 * change; then the key is no longer busy and the old value is freed. */
static void applied(struct metadata *md, const struct meta_entry *e,
                    struct old_value *ov, bool local)
{
    struct node *nd = md->nd;
    struct meta_change c;
    if (md->journal.append)
        md->journal.append(md->journal.ud, e);
    fill_change(&c, e->key, e->keylen, e->value, e->len, e->deleted, ov,
                e->origin, e->originlen, e->version, local);
    if (nd->hooks.on_metadata)
        nd->hooks.on_metadata(nd->hooks.ud, &c);
    if (md->observer)
        md->observer(md->observer_ud, &c);
    busy_pop(md);
    hs_free(ov->p);
}

enum { APPLIED, IGNORED, REFUSED };

/* A write from elsewhere: newer than ours and valid? Then store it. */
static int apply(struct metadata *md, const struct view *v)
{
    struct node *nd = md->nd;
    const struct config *cfg = &nd->cfg;
    if (!v->deleted && v->len > cfg->metadata_max_value)
        return REFUSED;
    /* A version from a clock far ahead must not freeze the key: it waits
     * until our clock comes within metadata_max_skew of it. */
    uint64_t now = wall(md);
    if (version_ms(v->version) > now + cfg->metadata_max_skew) {
        md->stats.refused_future++;
        HS_DEBUG(nd->log, "metadata write from the future put off: key=%.*s "
                 "origin=%.*s ahead=%llums", (int)v->keylen,
                 (const char *)v->key, (int)v->originlen,
                 (const char *)v->origin,
                 (unsigned long long)(version_ms(v->version) - now));
        return REFUSED;
    }
    /* A delete older than the tombstone TTL is as good as collected. */
    if (v->deleted &&
        now > version_ms(v->version) + cfg->metadata_tombstone_ttl)
        return IGNORED;
    const char *k = (const char *)v->key;
    struct meta_entry *old = find(md, k, v->keylen);
    if (old && newer(v->version, (const char *)v->origin, v->originlen,
                     old->version, old->origin, old->originlen) <= 0)
        return IGNORED;
    hlc_observe(md, v->version);
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
    if (nd->hooks.validate_metadata &&
        nd->hooks.validate_metadata(nd->hooks.ud, &c, why, sizeof why)) {
        busy_pop(md);
        hs_free(ov.p);
        md->stats.refused_remote++;
        HS_INFO(nd->log, "metadata write refused: key=%.*s origin=%.*s "
                "reason=%s", (int)v->keylen, k, (int)v->originlen,
                (const char *)v->origin, why[0] ? why : "refused");
        return REFUSED;
    }
    /* A validate hook may have written other keys: look again. */
    old = find(md, k, v->keylen);
    if (old && newer(v->version, (const char *)v->origin, v->originlen,
                     old->version, old->origin, old->originlen) <= 0) {
        busy_pop(md);
        hs_free(ov.p);
        return IGNORED;
    }
    struct meta_entry *e;
    if (store(md, k, v->keylen, v->value, v->len, v->deleted, v->version,
              (const char *)v->origin, v->originlen, &e)) {
        busy_pop(md);
        hs_free(ov.p);
        return REFUSED;
    }
    /* the busy mark must name memory that lives while the hooks run */
    md->busy[md->nbusy - 1].key = e->key;
    md->stats.writes_remote++;
    HS_DEBUG(nd->log, "metadata write applied: key=%s origin=%s bytes=%u%s",
             e->key, e->origin, e->len, e->deleted ? " (delete)" : "");
    gossip(md, e);
    applied(md, e, &ov, false);
    return APPLIED;
}

int metadata_put(struct metadata *md, const char *key, size_t keylen,
                 const void *value, size_t len, bool del, char *why,
                 size_t whylen, uint64_t *version_out)
{
    struct node *nd = md->nd;
    why[0] = '\0';
    if (keylen > META_KEY_MAX || memchr(key, 0, keylen)) {
        snprintf(why, whylen, "keys are at most %d bytes, without NUL",
                 META_KEY_MAX);
        return HS_EINVAL;
    }
    if (!del && len > nd->cfg.metadata_max_value) {
        snprintf(why, whylen, "value of %zu bytes is over "
                 "metadata_max_value (%llu)", len,
                 (unsigned long long)nd->cfg.metadata_max_value);
        return HS_ETOOBIG;
    }
    if (key_busy(md, key, keylen)) {
        snprintf(why, whylen, "a metadata hook cannot write the key it was "
                 "called for (write it later, from hearsay.after)");
        return HS_EBUSY;
    }
    if (md->journal.refuse &&
        md->journal.refuse(md->journal.ud, why, whylen))
        return HS_EIO;
    /* A delete is a write like any other, even of a key not seen here
     * yet: its tombstone beats any older put still on its way. */
    struct meta_entry *old = find(md, key, keylen);
    if (!busy_push(md, key, keylen)) {
        snprintf(why, whylen, "metadata hooks nested too deep");
        return HS_EBUSY;
    }
    uint64_t version = metadata_hlc_next(md, wall(md));
    struct old_value ov;
    if (!old_value_take(&ov, old)) {
        busy_pop(md);
        return HS_ENOMEM;
    }
    struct meta_change c;
    fill_change(&c, key, keylen, value, len, del, &ov, nd->cfg.name,
                nd->self_name_len, version, true);
    if (nd->hooks.validate_metadata &&
        nd->hooks.validate_metadata(nd->hooks.ud, &c, why, whylen)) {
        busy_pop(md);
        hs_free(ov.p);
        md->stats.refused_local++;
        if (why[0] == '\0')
            snprintf(why, whylen, "refused by validate_metadata");
        HS_INFO(nd->log, "metadata write refused: key=%.*s origin=%s "
                "reason=%s", (int)keylen, key, nd->cfg.name, why);
        return HS_EREFUSED;
    }
    struct meta_entry *e;
    int rc = store(md, key, keylen, value, len, del, version, nd->cfg.name,
                   nd->self_name_len, &e);
    if (rc) {
        busy_pop(md);
        hs_free(ov.p);
        return rc;
    }
    md->busy[md->nbusy - 1].key = e->key;
    md->stats.writes_local++;
    HS_INFO(nd->log, "metadata %s: key=%s bytes=%u version=%llu",
            del ? "deleted" : "published", e->key, e->len,
            (unsigned long long)version);
    gossip(md, e);
    if (version_out)
        *version_out = version;
    applied(md, e, &ov, true);
    return 0;
}

const struct meta_entry *metadata_get(const struct metadata *md,
                                      const char *key, size_t keylen)
{
    const struct meta_entry *e = find(md, key, keylen);
    return e && !e->deleted ? e : NULL;
}

static int by_key(const void *a, const void *b)
{
    const struct meta_entry *x = *(const struct meta_entry *const *)a;
    const struct meta_entry *y = *(const struct meta_entry *const *)b;
    int c = memcmp(x->key, y->key, HS_MIN(x->keylen, y->keylen));
    return c ? c : (int)x->keylen - (int)y->keylen;
}

int metadata_each(const struct metadata *md, const char *prefix,
                  size_t prefixlen, bool deleted, meta_visit_fn fn, void *ud)
{
    struct meta_entry **v = hs_calloc(md->n ? md->n : 1, sizeof *v);
    if (v == NULL)
        return HS_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < md->nslots; i++) {
        struct meta_entry *e = md->slots[i];
        if (e && (deleted || !e->deleted) && e->keylen >= prefixlen &&
            memcmp(e->key, prefix, prefixlen) == 0)
            v[n++] = e;
    }
    qsort(v, n, sizeof *v, by_key);
    for (size_t i = 0; i < n; i++)
        fn(ud, v[i]);
    hs_free(v);
    return 0;
}

size_t metadata_count(const struct metadata *md, bool deleted)
{
    if (deleted)
        return md->n;
    size_t n = 0;
    for (size_t i = 0; i < md->nslots; i++)
        if (md->slots[i] && !md->slots[i]->deleted)
            n++;
    return n;
}

/* ===== Gossip ===== */

/* Queue a write (or, if too large for a packet, its announcement). */
static void gossip(struct metadata *md, struct meta_entry *e)
{
    struct node *nd = md->nd;
    struct buf b = BUF_INIT;
    buf_putc(&b, WIRE_USER);
    wire_put_envelope(&b, WIRE_ENV_META, nd->cfg.name, nd->self_name_len);
    size_t room = (size_t)nd->cfg.udp_buffer_size - WIRE_COMPOUND_HEADER -
                  WIRE_COMPOUND_OVERHEAD - 64;
    /* The key, origin and field names take some 300 bytes at most: a
     * value that cannot fit is announced without being encoded. */
    bool fits = e->len + e->keylen + e->originlen + 40 <= room;
    size_t head = b.len;
    if (fits)
        put_entry(&b, e, true, false);
    if (!fits || b.len > room) {
        b.len = head;
        put_entry(&b, e, false, true);
    }
    if (b.err == 0 &&
        bqueue_push(&md->queue, &e->bcast, b.data, b.len, false) == 0)
        nd->stats.broadcasts_queued++;
    buf_free(&b);
}

size_t metadata_take(struct metadata *md, size_t overhead, size_t limit,
                     int transmit_limit, struct buf *out, size_t *lens,
                     size_t max);

size_t metadata_take(struct metadata *md, size_t overhead, size_t limit,
                     int transmit_limit, struct buf *out, size_t *lens,
                     size_t max)
{
    size_t n = 0;
    bqueue_take(&md->queue, overhead, limit, transmit_limit, out, lens, max,
                &n);
    return n;
}

static void start_fetch(struct metadata *md, const struct view *v,
                        const struct hs_addr *from);

void metadata_on_gossip(struct metadata *md, const uint8_t *p, size_t n,
                        const struct hs_addr *from)
{
    struct mp_reader r;
    struct view v;
    mp_reader_init(&r, p, n);
    if (get_entry(&r, &v)) {
        node_count_drop(md->nd, NODE_DROP_MALFORMED, from, "metadata",
                        "bad metadata entry");
        return;
    }
    if (v.big && !v.has_value) { /* an announcement */
        const struct meta_entry *e = find(md, (const char *)v.key, v.keylen);
        if (e && newer(v.version, (const char *)v.origin, v.originlen,
                       e->version, e->origin, e->originlen) <= 0)
            return; /* we have it, or newer */
        if (v.big > md->nd->cfg.metadata_max_value)
            return;
        start_fetch(md, &v, from);
        return;
    }
    if (!v.deleted && !v.has_value)
        v.value = (const uint8_t *)"";
    apply(md, &v);
}

/* ===== Streams: sync and fetch =====
 * A request: {push: [entries], want: [keys]}. The answer: {e: [entries],
 * served: n}, the wanted entries we have, in order, within ANSWER_BYTES;
 * `served` says how many of the wanted keys were answered. */

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
    for (size_t i = 0; i < sy->nwant; i++)
        hs_free(sy->want[i]);
    for (size_t i = 0; i < sy->npush; i++)
        hs_free(sy->push[i]);
    hs_free(sy->want);
    hs_free(sy->push);
    hs_free(sy);
}

/* Send the next batch of a sync, or finish it. */
static void sync_next(struct metadata *md, struct sync *sy)
{
    if (sy->wpos >= sy->nwant && sy->ppos >= sy->npush) {
        sync_free(md, sy);
        return;
    }
    struct buf body = BUF_INIT;
    size_t pushes = 0, used = 0, p0 = sy->ppos;
    while (sy->ppos + pushes < sy->npush && used < PUSH_BYTES) {
        const char *k = sy->push[sy->ppos + pushes];
        const struct meta_entry *e = find(md, k, strlen(k));
        used += e ? e->len + e->keylen + 32 : 0;
        pushes++;
    }
    size_t wants = HS_MIN(sy->nwant - sy->wpos, (size_t)WANT_BATCH);
    mp_write_map(&body, 2);
    mp_write_str(&body, "push");
    size_t count_at = body.len;
    mp_write_array(&body, 0xffff); /* patched below: array16 */
    uint32_t npushed = 0;
    for (size_t i = 0; i < pushes && npushed < 0xffff; i++) {
        const char *k = sy->push[p0 + i];
        const struct meta_entry *e = find(md, k, strlen(k));
        if (e) {
            put_entry(&body, e, true, false);
            npushed++;
        }
    }
    if (body.err == 0) { /* dc count16 */
        body.data[count_at] = 0xdc;
        hs_put_be16(body.data + count_at + 1, (uint16_t)npushed);
    }
    mp_write_str(&body, "want");
    mp_write_array(&body, (uint32_t)wants);
    for (size_t i = 0; i < wants; i++)
        mp_write_str(&body, sy->want[sy->wpos + i]);
    struct request *rq = hs_calloc(1, sizeof *rq);
    int rc = rq && !body.err ? 0 : HS_ENOMEM;
    if (rc == 0) {
        rq->md = md;
        rq->sync = sy;
        rq->asked = wants;
        sy->ppos += pushes;
        rc = send_request(md, &sy->peer, &body, rq);
    }
    buf_free(&body);
    if (rc) {
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

static void start_fetch(struct metadata *md, const struct view *v,
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

int metadata_stream_serve(struct metadata *md, const uint8_t *p, size_t n,
                          struct buf *reply)
{
    struct mp_reader r;
    uint32_t nf, na;
    mp_reader_init(&r, p, n);
    md->stats.sync_bytes_in += n;
    if (mp_read_map(&r, &nf))
        return HS_EBADMSG;
    const uint8_t *wants = NULL;
    uint32_t nwant = 0;
    struct mp_reader wr;
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
                if (get_entry(&r, &v))
                    return HS_EBADMSG;
                if (!v.deleted && !v.has_value)
                    v.value = (const uint8_t *)"";
                apply(md, &v);
            }
        } else if (kl == 4 && !memcmp(k, "want", 4)) {
            wr = r;
            if (mp_read_array(&r, &nwant))
                return HS_EBADMSG;
            wants = p;
            for (uint32_t j = 0; j < nwant; j++)
                if (mp_skip(&r))
                    return HS_EBADMSG;
        } else if (mp_skip(&r)) {
            return HS_EBADMSG;
        }
    }
    /* The wanted entries we have, in order, within the budget. */
    struct buf entries = BUF_INIT;
    uint32_t served = 0, count = 0;
    if (wants) {
        mp_read_array(&wr, &na);
        for (; served < nwant && entries.len < ANSWER_BYTES; served++) {
            const uint8_t *k;
            uint32_t kl;
            if (mp_read_raw(&wr, &k, &kl))
                break;
            const struct meta_entry *e = find(md, (const char *)k, kl);
            if (e) {
                put_entry(&entries, e, true, false);
                count++;
            }
        }
    }
    mp_write_map(reply, 2);
    mp_write_str(reply, "e");
    mp_write_array(reply, count);
    buf_append(reply, entries.data, entries.len);
    mp_write_str(reply, "served");
    mp_write_uint(reply, served);
    buf_free(&entries);
    md->stats.sync_bytes_out += reply->len;
    return reply->err;
}

void metadata_stream_answer(struct metadata *md, void *req, const uint8_t *p,
                            size_t n)
{
    struct request *rq = req;
    struct sync *sy = rq->sync;
    struct fetch *f = rq->fetch;
    uint64_t served = 0;
    bool ok = p != NULL;
    if (ok) {
        md->stats.sync_bytes_in += n;
        struct mp_reader r;
        uint32_t nf, ne;
        mp_reader_init(&r, p, n);
        ok = mp_read_map(&r, &nf) == 0;
        for (uint32_t i = 0; ok && i < nf; i++) {
            const uint8_t *k;
            uint32_t kl;
            if (mp_read_raw(&r, &k, &kl)) {
                ok = false;
            } else if (kl == 1 && k[0] == 'e') {
                ok = mp_read_array(&r, &ne) == 0;
                for (uint32_t j = 0; ok && j < ne; j++) {
                    struct view v;
                    ok = get_entry(&r, &v) == 0;
                    if (!ok)
                        break;
                    if (!v.deleted && !v.has_value)
                        v.value = (const uint8_t *)"";
                    apply(md, &v);
                }
            } else if (kl == 6 && !memcmp(k, "served", 6)) {
                ok = mp_read_uint(&r, &served) == 0;
            } else {
                ok = mp_skip(&r) == 0;
            }
        }
    }
    hs_free(rq);
    if (!ok)
        md->stats.fetch_errors++;
    if (f) {
        if (!ok && retry_from_origin(md, f))
            return;
        fetch_free(md, f);
        return;
    }
    if (sy) {
        if (!ok) {
            sync_free(md, sy);
            return;
        }
        /* Whatever was not served comes in the next batch; nothing
         * served at all means the peer cannot help: stop. */
        size_t asked = HS_MIN(sy->nwant - sy->wpos, (size_t)WANT_BATCH);
        if (asked && served == 0) {
            sync_free(md, sy);
            return;
        }
        sy->wpos += HS_MIN((size_t)served, asked);
        sync_next(md, sy);
    }
}

/* ===== Anti-entropy in push/pull =====
 * The section: {b: 256 bucket hashes (8 bytes each), l: [[bucket,
 * [[key, version, origin, deleted], ...]], ...]}; l only in an answer,
 * for the buckets that differ from the asker's. */

static void bucket_bytes(const struct metadata *md, uint8_t *out)
{
    for (int i = 0; i < META_BUCKETS; i++) {
        hs_put_be32(out + 8 * i, (uint32_t)(md->buckets[i] >> 32));
        hs_put_be32(out + 8 * i + 4, (uint32_t)md->buckets[i]);
    }
}

static uint64_t bucket_at(const uint8_t *b, int i)
{
    return (uint64_t)hs_be32(b + 8 * i) << 32 | hs_be32(b + 8 * i + 4);
}

/* Read a section: the peer's bucket hashes (NULL if none) and its lists. */
struct section {
    const uint8_t *buckets;
    const uint8_t *lists; /* the "l" array, as bytes */
    size_t listslen;
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
        if (mp_read_raw(&r, &k, &kl))
            return HS_EBADMSG;
        if (kl == 1 && k[0] == 'b') {
            if (mp_read_raw(&r, &v, &vl) || vl != 8 * META_BUCKETS)
                return HS_EBADMSG;
            s->buckets = v;
        } else if (kl == 1 && k[0] == 'l') {
            size_t at = r.off;
            if (mp_skip(&r))
                return HS_EBADMSG;
            s->lists = p + at;
            s->listslen = r.off - at;
        } else if (mp_skip(&r)) {
            return HS_EBADMSG;
        }
    }
    return 0;
}

struct listing {
    struct buf *out;
    int bucket;
    uint32_t count;
};

int metadata_sync_encode(struct metadata *md, const uint8_t *remote,
                         size_t remotelen, struct buf *out)
{
    struct section rs = {0};
    if (remote && get_section(remote, remotelen, &rs))
        rs.buckets = NULL;
    uint8_t b[8 * META_BUCKETS];
    bucket_bytes(md, b);
    size_t start = out->len;
    bool differ[META_BUCKETS] = {false};
    uint32_t ndiff = 0;
    if (rs.buckets)
        for (int i = 0; i < META_BUCKETS; i++)
            if ((differ[i] = bucket_at(rs.buckets, i) != md->buckets[i]))
                ndiff++;
    mp_write_map(out, ndiff ? 2 : 1);
    mp_write_str(out, "b");
    mp_write_raw(out, b, sizeof b);
    if (ndiff) {
        /* Group the entries by bucket once. */
        mp_write_str(out, "l");
        mp_write_array(out, ndiff);
        uint32_t *counts = hs_calloc(META_BUCKETS, sizeof *counts);
        struct meta_entry **sorted = hs_calloc(md->n ? md->n : 1,
                                               sizeof *sorted);
        if (counts == NULL || sorted == NULL) {
            hs_free(counts);
            hs_free(sorted);
            return out->err = HS_ENOMEM;
        }
        size_t off[META_BUCKETS + 1] = {0};
        for (size_t i = 0; i < md->nslots; i++)
            if (md->slots[i])
                counts[bucket_of(md->slots[i]->hash)]++;
        for (int i = 0; i < META_BUCKETS; i++)
            off[i + 1] = off[i] + counts[i];
        size_t fill[META_BUCKETS];
        memcpy(fill, off, sizeof fill);
        for (size_t i = 0; i < md->nslots; i++)
            if (md->slots[i])
                sorted[fill[bucket_of(md->slots[i]->hash)]++] = md->slots[i];
        for (int i = 0; i < META_BUCKETS; i++) {
            if (!differ[i])
                continue;
            mp_write_array(out, 2);
            mp_write_uint(out, (uint64_t)i);
            mp_write_array(out, counts[i]);
            for (size_t j = off[i]; j < off[i + 1]; j++) {
                const struct meta_entry *e = sorted[j];
                mp_write_array(out, 4);
                mp_write_raw(out, e->key, e->keylen);
                mp_write_uint(out, e->version);
                mp_write_raw(out, e->origin, e->originlen);
                mp_write_bool(out, e->deleted);
            }
        }
        hs_free(counts);
        hs_free(sorted);
    }
    size_t len = out->len - start;
    if (ndiff)
        md->stats.sync_bytes_out += len;
    else
        md->stats.digest_bytes_out += len;
    return out->err;
}

static int add_key(char ***v, size_t *n, size_t *cap, const char *k,
                   size_t kl)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **nv = hs_realloc(*v, c * sizeof *nv);
        if (nv == NULL)
            return HS_ENOMEM;
        *v = nv;
        *cap = c;
    }
    char *d = hs_strndup(k, kl);
    if (d == NULL)
        return HS_ENOMEM;
    (*v)[(*n)++] = d;
    return 0;
}

void metadata_sync_merge(struct metadata *md, const uint8_t *p, size_t n,
                         bool started, const struct hs_addr *peer)
{
    struct section s;
    if (get_section(p, n, &s) || s.buckets == NULL)
        return;
    bool differ = false;
    for (int i = 0; i < META_BUCKETS && !differ; i++)
        differ = bucket_at(s.buckets, i) != md->buckets[i];
    if (!differ || s.lists == NULL)
        md->stats.digest_bytes_in += n;
    else
        md->stats.sync_bytes_in += n;
    /* The one who started the push/pull drives the exchange. */
    if (!started || !differ || s.lists == NULL)
        return;
    struct sync *sy = hs_calloc(1, sizeof *sy);
    if (sy == NULL)
        return;
    sy->peer = *peer;
    size_t wcap = 0, pcap = 0;
    uint64_t now = wall(md), ttl = md->nd->cfg.metadata_tombstone_ttl;
    struct mp_reader r;
    uint32_t nb;
    mp_reader_init(&r, s.lists, s.listslen);
    bool seen_bucket[META_BUCKETS] = {false};
    if (mp_read_array(&r, &nb) == 0) {
        for (uint32_t i = 0; i < nb; i++) {
            uint32_t two, ne;
            uint64_t bucket;
            if (mp_read_array(&r, &two) || two != 2 ||
                mp_read_uint(&r, &bucket) || bucket >= META_BUCKETS ||
                mp_read_array(&r, &ne))
                break;
            seen_bucket[bucket] = true;
            /* Theirs: which do we lack or have older? */
            size_t list_at = r.off;
            for (uint32_t j = 0; j < ne; j++) {
                uint32_t four;
                const uint8_t *k, *o;
                uint32_t kl, ol;
                uint64_t ver;
                bool del;
                if (mp_read_array(&r, &four) || four != 4 ||
                    mp_read_raw(&r, &k, &kl) || mp_read_uint(&r, &ver) ||
                    mp_read_raw(&r, &o, &ol) || mp_read_bool(&r, &del))
                    goto done;
                if (kl > META_KEY_MAX)
                    continue;
                if (del && now > version_ms(ver) + ttl)
                    continue; /* expired tombstone */
                const struct meta_entry *e = find(md, (const char *)k, kl);
                if (e == NULL ||
                    newer(ver, (const char *)o, ol, e->version, e->origin,
                          e->originlen) > 0)
                    add_key(&sy->want, &sy->nwant, &wcap, (const char *)k,
                            kl);
            }
            /* Ours in that bucket: which do they lack or have older? */
            for (size_t x = 0; x < md->nslots; x++) {
                const struct meta_entry *e = md->slots[x];
                if (e == NULL || bucket_of(e->hash) != bucket)
                    continue;
                if (e->deleted && now > version_ms(e->version) + ttl)
                    continue;
                bool theirs_newer_or_same = false;
                struct mp_reader lr;
                mp_reader_init(&lr, s.lists, s.listslen);
                lr.off = list_at;
                for (uint32_t j = 0; j < ne; j++) {
                    uint32_t four;
                    const uint8_t *k, *o;
                    uint32_t kl, ol;
                    uint64_t ver;
                    bool del;
                    mp_read_array(&lr, &four);
                    mp_read_raw(&lr, &k, &kl);
                    mp_read_uint(&lr, &ver);
                    mp_read_raw(&lr, &o, &ol);
                    mp_read_bool(&lr, &del);
                    if (kl == e->keylen && !memcmp(k, e->key, kl)) {
                        theirs_newer_or_same =
                            newer(e->version, e->origin, e->originlen, ver,
                                  (const char *)o, ol) <= 0;
                        break;
                    }
                }
                if (!theirs_newer_or_same)
                    add_key(&sy->push, &sy->npush, &pcap, e->key, e->keylen);
            }
        }
    }
done:
    (void)seen_bucket;
    if (sy->nwant == 0 && sy->npush == 0) {
        sync_free(md, sy);
        return;
    }
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(md->nd->log, "metadata sync: peer=%s want=%zu push=%zu",
             addr_format(peer, ab, sizeof ab), sy->nwant, sy->npush);
    sy->next = md->syncs;
    md->syncs = sy;
    sync_next(md, sy);
}

/* ===== Upkeep ===== */

void metadata_tick(struct metadata *md)
{
    uint64_t now = wall(md), ttl = md->nd->cfg.metadata_tombstone_ttl;
    if (md->nbusy)
        return; /* hooks are running: next time */
    /* Gather first: unlinking moves entries around the table. */
    size_t n = 0;
    for (size_t i = 0; i < md->nslots; i++) {
        struct meta_entry *e = md->slots[i];
        if (e && e->deleted && now > version_ms(e->version) + ttl)
            n++;
    }
    if (n == 0)
        return;
    struct meta_entry **dead = hs_calloc(n, sizeof *dead);
    if (dead == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < md->nslots && k < n; i++) {
        struct meta_entry *e = md->slots[i];
        if (e && e->deleted && now > version_ms(e->version) + ttl)
            dead[k++] = e;
    }
    for (size_t i = 0; i < k; i++) {
        unlink_entry(md, dead[i]);
        entry_free(md, dead[i]);
    }
    hs_free(dead);
    md->stats.tombstones_collected += k;
    md->dirty = true;
}

int metadata_new(struct node *nd, struct metadata **out)
{
    struct metadata *md = hs_calloc(1, sizeof *md);
    if (md == NULL)
        return HS_ENOMEM;
    md->nd = nd;
    bqueue_init(&md->queue, QUEUE_MAX);
    *out = md;
    return 0;
}

void metadata_free(struct metadata *md)
{
    if (md == NULL)
        return;
    while (md->syncs)
        sync_free(md, md->syncs);
    while (md->fetches)
        fetch_free(md, md->fetches);
    bqueue_close(&md->queue);
    for (size_t i = 0; i < md->nslots; i++)
        if (md->slots[i]) {
            md->slots[i]->bcast = NULL;
            hs_free(md->slots[i]->value);
            hs_free(md->slots[i]);
        }
    hs_free(md->slots);
    hs_free(md);
}

void metadata_clear(struct metadata *md)
{
    for (size_t i = 0; i < md->nslots; i++)
        if (md->slots[i]) {
            entry_free(md, md->slots[i]);
            md->slots[i] = NULL;
        }
    md->n = 0;
    memset(md->buckets, 0, sizeof md->buckets);
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

/* ===== Snapshots ===== */

int metadata_snapshot(const struct metadata *md, struct buf *out)
{
    mp_write_map(out, 2);
    mp_write_str(out, "hlc");
    mp_write_uint(out, md->hlc);
    mp_write_str(out, "e");
    mp_write_array(out, (uint32_t)md->n);
    for (size_t i = 0; i < md->nslots; i++)
        if (md->slots[i])
            put_entry(out, md->slots[i], true, false);
    return out->err;
}

int metadata_restore(struct metadata *md, const uint8_t *p, size_t n,
                     const char **why)
{
    struct mp_reader r;
    uint32_t nf, ne;
    uint64_t hlc = 0;
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
        if (kl == 3 && !memcmp(k, "hlc", 3)) {
            if (mp_read_uint(&r, &hlc)) {
                *why = "bad clock";
                return HS_EBADMSG;
            }
        } else if (kl == 1 && k[0] == 'e') {
            if (mp_read_array(&r, &ne)) {
                *why = "bad entry list";
                return HS_EBADMSG;
            }
            for (uint32_t j = 0; j < ne; j++) {
                struct view v;
                struct meta_entry *e;
                if (get_entry(&r, &v)) {
                    *why = "bad entry";
                    return HS_EBADMSG;
                }
                if (store(md, (const char *)v.key, v.keylen, v.value, v.len,
                          v.deleted, v.version, (const char *)v.origin,
                          v.originlen, &e))
                    return HS_ENOMEM;
                hlc_observe(md, v.version);
            }
        } else if (mp_skip(&r)) {
            *why = "bad snapshot field";
            return HS_EBADMSG;
        }
    }
    hlc_observe(md, hlc);
    md->dirty = false;
    return 0;
}

/* ===== The data dir =====
 * Temporary bodies: simple, not indexed (a scan is linear in the store). */

void metadata_set_journal(struct metadata *md, const struct meta_journal *j)
{
    if (j)
        md->journal = *j;
    else
        memset(&md->journal, 0, sizeof md->journal);
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, HS_MIN(al, bl));
    return c ? c : al == bl ? 0 : al < bl ? -1 : 1;
}

static int entry_cmp(const struct meta_entry *x, const struct meta_entry *y)
{
    return key_cmp(x->key, x->keylen, y->key, y->keylen);
}

/* Sift down in a max-heap of entries ordered by key. */
static void heap_down(struct meta_entry **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && entry_cmp(h[l], h[m]) > 0)
            m = l;
        if (r < n && entry_cmp(h[r], h[m]) > 0)
            m = r;
        if (m == i)
            return;
        struct meta_entry *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

size_t metadata_scan(const struct metadata *md, const char *after,
                     size_t afterlen, size_t max, meta_visit_fn fn,
                     void *ud, bool *more)
{
    *more = false;
    if (max == 0)
        return 0;
    size_t cap = HS_MIN(max, md->n ? md->n : 1), n = 0, beyond = 0;
    struct meta_entry **h = hs_calloc(cap, sizeof *h);
    if (h == NULL)
        return 0;
    /* The `max` smallest keys after `after`, in a max-heap. */
    for (size_t i = 0; i < md->nslots; i++) {
        struct meta_entry *e = md->slots[i];
        if (e == NULL ||
            (after && key_cmp(e->key, e->keylen, after, afterlen) <= 0))
            continue;
        if (n < cap) {
            h[n++] = e;
            for (size_t j = n - 1; j > 0 && entry_cmp(h[(j - 1) / 2],
                                                     h[j]) < 0;
                 j = (j - 1) / 2) {
                struct meta_entry *t = h[j];
                h[j] = h[(j - 1) / 2];
                h[(j - 1) / 2] = t;
            }
        } else {
            beyond++;
            if (entry_cmp(e, h[0]) < 0) {
                h[0] = e;
                heap_down(h, n, 0);
            }
        }
    }
    /* Sort ascending: pop the largest to the end. */
    for (size_t k = n; k > 1; k--) {
        struct meta_entry *t = h[0];
        h[0] = h[k - 1];
        h[k - 1] = t;
        heap_down(h, k - 1, 0);
    }
    for (size_t i = 0; i < n; i++)
        fn(ud, h[i]);
    hs_free(h);
    *more = beyond > 0;
    return n;
}

int metadata_state_encode(const struct metadata *md, struct buf *out)
{
    mp_write_map(out, 1);
    mp_write_str(out, "hlc");
    mp_write_uint(out, md->hlc);
    return out->err;
}

int metadata_state_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why)
{
    struct mp_reader r;
    uint32_t nf;
    mp_reader_init(&r, p, n);
    if (mp_read_map(&r, &nf)) {
        *why = "bad store state";
        return HS_EBADMSG;
    }
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k;
        uint32_t kl;
        uint64_t v;
        if (mp_read_raw(&r, &k, &kl)) {
            *why = "bad store state";
            return HS_EBADMSG;
        }
        if (kl == 3 && !memcmp(k, "hlc", 3)) {
            if (mp_read_uint(&r, &v)) {
                *why = "bad clock";
                return HS_EBADMSG;
            }
            hlc_observe(md, v);
        } else if (mp_skip(&r)) {
            *why = "bad store state";
            return HS_EBADMSG;
        }
    }
    return 0;
}

int metadata_entry_encode(const struct meta_entry *e, struct buf *out)
{
    put_entry(out, e, true, false);
    return out->err;
}

int metadata_entry_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why)
{
    struct mp_reader r;
    struct view v;
    mp_reader_init(&r, p, n);
    if (get_entry(&r, &v) || r.off != n) {
        *why = "bad entry";
        return HS_EBADMSG;
    }
    if (!v.deleted && !v.has_value)
        v.value = (const uint8_t *)"";
    const struct meta_entry *old = find(md, (const char *)v.key, v.keylen);
    if (old && newer(v.version, (const char *)v.origin, v.originlen,
                     old->version, old->origin, old->originlen) <= 0)
        return 0;
    struct meta_entry *e;
    if (store(md, (const char *)v.key, v.keylen, v.value, v.len, v.deleted,
              v.version, (const char *)v.origin, v.originlen, &e)) {
        *why = "out of memory";
        return HS_ENOMEM;
    }
    hlc_observe(md, v.version);
    return 0;
}
