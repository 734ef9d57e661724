/* md_entry.c: entries in the store: one made from a write, linked
 * into every index, or unlinked from them all and freed. */
#include "core/metadata_int.h"

void md_entry_free(struct metadata *md, struct meta_entry *e)
{
    bqueue_disown(&md->queue, &e->bcast);
    hs_free(e->value);
    hs_free(e);
}

void md_link_entry(struct metadata *md, struct meta_entry *e)
{
    md_ht_insert(md, e);
    md_sl_insert(md, e);
    md_tree_add(md, e);
    if (e->deleted) {
        md_heap_push(md, e);
        md->ndeleted++;
    }
    md->n++;
    HS_INVARIANT(md->ht[0].used + md->ht[1].used == md->n &&
                 md->nheap == md->ndeleted && md->ndeleted <= md->n);
}

void md_unlink_entry(struct metadata *md, struct meta_entry *e)
{
    md_ht_remove(md, e);
    md_sl_remove(md, e);
    md_tree_remove(md, e);
    if (e->heap)
        md_heap_remove(md, e);
    if (e->deleted)
        md->ndeleted--;
    md->n--;
    HS_INVARIANT(md->ht[0].used + md->ht[1].used == md->n &&
                 md->nheap == md->ndeleted && md->ndeleted <= md->n);
}

/* Store a write (the entry replaces any older one). Every index makes
 * room first, so that nothing can fail half-way through. */
int md_store(struct metadata *md, const char *k, size_t klen, const uint8_t *v,
             size_t vlen, bool del, uint64_t version, const char *origin,
             size_t olen, struct meta_entry **out)
{
    int level = md_random_level(md);
    olen = HS_MIN(olen, (size_t)255);
    struct meta_entry *e = hs_calloc(
        1, sizeof *e + (size_t)level * sizeof e->fwd[0] + klen + 1 + olen + 1);
    if (e == NULL)
        return HS_ENOMEM;
    char *key = (char *)(e->fwd + level), *org = key + klen + 1;
    memcpy(key, k, klen);
    key[klen] = '\0';
    memcpy(org, origin, olen);
    org[olen] = '\0';
    e->key = key;
    e->keylen = (uint16_t)klen;
    e->origin = org;
    e->originlen = (uint8_t)olen;
    e->level = (uint8_t)level;
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
    e->changed = md_now(md);
    e->path = key_path(k, klen);
    e->digest = digest_of(k, klen, org, olen, version, del);
    struct meta_entry *old = md->n ? md_find_path(md, k, klen, e->path) : NULL;
    if (md_ht_reserve(md) || md_tree_reserve(md, e->path) ||
        (del && md_heap_reserve(md))) {
        md_entry_free(md, e);
        return HS_ENOMEM;
    }
    if (old) {
        /* keep the queued gossip slot with the new entry */
        e->bcast = old->bcast;
        if (e->bcast)
            e->bcast->slot = &e->bcast;
        old->bcast = NULL;
        md_unlink_entry(md, old);
        md_entry_free(md, old);
    }
    md_link_entry(md, e);
    md->dirty = true;
    *out = e;
    return 0;
}
