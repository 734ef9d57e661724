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
        md_sync_free(md, md->syncs);
    while (md->fetches)
        md_fetch_free(md, md->fetches);
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
