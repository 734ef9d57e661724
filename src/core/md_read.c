/* md_read.c: reading the store: one key, the keys under a prefix
 * and a scan, in key order (the skip list), and the counts. */
#include "core/metadata_int.h"

int metadata_each(const struct metadata *md, const char *prefix,
                  size_t prefixlen, bool deleted, meta_visit_fn fn, void *ud)
{
    if (prefixlen == 0)
        prefix = "";
    for (const struct meta_entry *e = md_sl_seek(md, prefix, prefixlen, false);
         e && e->keylen >= prefixlen && memcmp(e->key, prefix, prefixlen) == 0;
         e = e->fwd[0])
        if (deleted || !e->deleted)
            fn(ud, e);
    return 0;
}

size_t metadata_scan(const struct metadata *md, const char *after,
                     size_t afterlen, size_t max, meta_visit_fn fn, void *ud,
                     bool *more)
{
    const struct meta_entry *e =
        after ? md_sl_seek(md, after, afterlen, true) : md->head[0];
    size_t n = 0;
    for (; e && n < max; e = e->fwd[0], n++)
        fn(ud, e);
    if (more)
        *more = e != NULL;
    return n;
}

size_t metadata_count(const struct metadata *md, bool deleted)
{
    return deleted ? md->n : md->n - md->ndeleted;
}

const struct meta_entry *metadata_get(const struct metadata *md,
                                      const char *key, size_t keylen)
{
    const struct meta_entry *e = md_find(md, key, keylen);
    return e && !e->deleted ? e : NULL;
}
