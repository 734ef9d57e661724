/* md_skiplist.c: the skip list that keeps the store in key
 * order (listings, scans, snapshots). */
#include "core/metadata_int.h"

#include <string.h>

int md_random_level(struct metadata *md)
{
    uint64_t r = hs_rng_next(&md->rng);
    int l = 1;
    while (l < SL_MAX && (r & 3) == 0) {
        l++;
        r >>= 2;
    }
    return l;
}

/* For each level, the link that points at the first entry not below
 * key (or, if `after`, above it). */
static void sl_preds(struct metadata *md, const char *k, size_t kl, bool after,
                     struct meta_entry **preds[SL_MAX])
{
    struct meta_entry **fwd = md->head;
    for (int i = SL_MAX - 1; i >= 0; i--) {
        for (;;) {
            const struct meta_entry *x = fwd[i];
            if (x == NULL)
                break;
            int c = key_cmp(x->key, x->keylen, k, kl);
            if (c > 0 || (c == 0 && !after))
                break;
            fwd = fwd[i]->fwd;
        }
        preds[i] = &fwd[i];
    }
}

/* e sorts before every entry it links to (HS_INVARIANT). */
static bool sl_in_order(const struct meta_entry *e)
{
    for (int i = 0; i < e->level; i++)
        if (e->fwd[i] &&
            key_cmp(e->key, e->keylen, e->fwd[i]->key, e->fwd[i]->keylen) >= 0)
            return false;
    return true;
}

void md_sl_insert(struct metadata *md, struct meta_entry *e)
{
    struct meta_entry **preds[SL_MAX];
    sl_preds(md, e->key, e->keylen, false, preds);
    for (int i = 0; i < e->level; i++) {
        e->fwd[i] = *preds[i];
        *preds[i] = e;
    }
    /* found where its key sorts: what comes before it sorts lower */
    HS_INVARIANT(sl_in_order(e) &&
                 md_sl_seek(md, e->key, e->keylen, false) == e);
}

void md_sl_remove(struct metadata *md, struct meta_entry *e)
{
    struct meta_entry **preds[SL_MAX];
    sl_preds(md, e->key, e->keylen, false, preds);
    for (int i = 0; i < e->level; i++) {
        HS_ASSERT(*preds[i] == e);
        *preds[i] = e->fwd[i];
    }
    HS_INVARIANT(md_sl_seek(md, e->key, e->keylen, false) == e->fwd[0]);
}

/* The first entry at or after key (after it, if `after`). */
struct meta_entry *md_sl_seek(const struct metadata *md, const char *k,
                              size_t kl, bool after)
{
    struct meta_entry *const *fwd = md->head;
    for (int i = SL_MAX - 1; i >= 0; i--)
        for (;;) {
            struct meta_entry *x = fwd[i];
            if (x == NULL)
                break;
            int c = key_cmp(x->key, x->keylen, k, kl);
            if (c > 0 || (c == 0 && !after))
                break;
            fwd = x->fwd;
        }
    return fwd[0];
}
