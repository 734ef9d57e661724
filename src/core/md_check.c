/* md_check.c: every index of the store checked against the
 * others (for tests). */
#include "core/metadata_int.h"

#include <stdio.h>

#define FAULT(...)                          \
    do {                                    \
        snprintf(why, whylen, __VA_ARGS__); \
        return -1;                          \
    } while (0)

static int check_node(const struct tnode *t, int d, uint64_t lo, size_t *seen,
                      char *why, size_t whylen)
{
    uint64_t h = 0;
    uint64_t hi =
        d == 0 ? UINT64_MAX
               : lo | (pfx_bits(d) >= 64 ? 0 : UINT64_MAX >> pfx_bits(d));
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
            if (check_node(kid, d + 1, lo | (uint64_t)k << (56 - 4 * d), seen,
                           why, whylen))
                return -1;
            h ^= kid->hash;
            c += kid->count;
        }
        if (c != t->count)
            FAULT("inner node at depth %d counts %u, children %u", d, t->count,
                  c);
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
        if (e->fwd[0] &&
            key_cmp(e->key, e->keylen, e->fwd[0]->key, e->fwd[0]->keylen) >= 0)
            FAULT("skip list out of order at %s", e->key);
        if (md_find(md, e->key, e->keylen) != e)
            FAULT("key %s not found by its hash", e->key);
        if (e->path != key_path(e->key, e->keylen) ||
            e->digest != digest_of(e->key, e->keylen, e->origin, e->originlen,
                                   e->version, e->deleted))
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
        FAULT("counts: %zu entries, %zu deleted listed; %zu, %zu, heap %zu", n,
              deleted, md->n, md->ndeleted, md->nheap);
    if (md->ht[0].used + (md->rehashing ? md->ht[1].used : 0) != n)
        FAULT("hash table holds %zu, not %zu", md->ht[0].used + md->ht[1].used,
              n);
    for (size_t i = 1; i < md->nheap; i++)
        if (md->heap[(i - 1) / 2]->version > md->heap[i]->version)
            FAULT("tombstone heap out of order");
    size_t seen = 0;
    for (int b = 0; b < TREE_TOP; b++)
        if (check_node(&md->top[b], 1, (uint64_t)b << 56, &seen, why, whylen))
            return -1;
    if (seen != n)
        FAULT("hash tree holds %zu, not %zu", seen, n);
    return 0;
}

bool metadata_rehashing(const struct metadata *md)
{
    return md->rehashing;
}
