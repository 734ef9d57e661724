/* md_table.c: the store's hash table, grown and shrunk
 * a few buckets at a time (redis's incremental rehash). */
#include "core/metadata_int.h"

#include <string.h>

static size_t ht_slot(const struct metadata *md, uint64_t path)
{
    return (size_t)mix64(path ^ md->seed);
}

struct meta_entry *md_find_path(const struct metadata *md, const char *k,
                                size_t n, uint64_t path)
{
    size_t h = ht_slot(md, path);
    for (int t = 0; t < (md->rehashing ? 2 : 1); t++) {
        const struct htab *ht = &md->ht[t];
        if (ht->b == NULL)
            continue;
        for (struct meta_entry *e = ht->b[h & ht->mask]; e; e = e->hnext)
            if (e->path == path && e->keylen == n && memcmp(e->key, k, n) == 0)
                return e;
    }
    return NULL;
}

struct meta_entry *md_find(const struct metadata *md, const char *k, size_t n)
{
    if (md->n == 0)
        return NULL;
    return md_find_path(md, k, n, key_path(k, n));
}

/* Move up to `steps` buckets of ht[0] to ht[1] (looking at no more than
 * ten times as many empty ones); the table is whole again when ht[0] is
 * empty. */
/* Entries in the chains of one table: its `used` (HS_INVARIANT). */
static size_t ht_chained(const struct htab *ht)
{
    size_t n = 0;
    for (size_t i = 0; ht->b && i <= ht->mask; i++)
        for (const struct meta_entry *e = ht->b[i]; e; e = e->hnext)
            n++;
    return n;
}

void md_rehash_step(struct metadata *md, size_t steps)
{
    size_t empty = steps * 10;
    while (md->rehashing && steps) {
        struct htab *a = &md->ht[0], *b = &md->ht[1];
        if (a->used == 0) {
            hs_free(a->b);
            *a = *b;
            memset(b, 0, sizeof *b);
            md->rehashing = false;
            md->rehash = 0;
            HS_INVARIANT(ht_chained(&md->ht[0]) == md->ht[0].used);
            return;
        }
        while (a->b[md->rehash] == NULL) {
            md->rehash++;
            if (--empty == 0)
                return;
        }
        struct meta_entry *e = a->b[md->rehash], *next;
        for (; e; e = next) {
            next = e->hnext;
            size_t i = ht_slot(md, e->path) & b->mask;
            e->hnext = b->b[i];
            b->b[i] = e;
            a->used--;
            b->used++;
        }
        a->b[md->rehash++] = NULL;
        steps--;
    }
}

/* Start moving to a table of `size` buckets (a power of two); if there is
 * no memory for it, the chains just grow longer. */
static void ht_resize(struct metadata *md, size_t size)
{
    struct meta_entry **b = hs_calloc(size, sizeof *b);
    if (b == NULL)
        return;
    md->ht[1].b = b;
    md->ht[1].mask = size - 1;
    md->ht[1].used = 0;
    md->rehash = 0;
    md->rehashing = true;
}

/* Before an insert: a table to insert into, and the next few buckets
 * moved. */
int md_ht_reserve(struct metadata *md)
{
    if (md->rehashing) {
        md_rehash_step(md, REHASH_STEP);
        return 0;
    }
    struct htab *a = &md->ht[0];
    if (a->b == NULL) {
        a->b = hs_calloc(HT_MIN, sizeof *a->b);
        if (a->b == NULL)
            return HS_ENOMEM;
        a->mask = HT_MIN - 1;
        return 0;
    }
    if (a->used > a->mask) { /* one entry a bucket: double */
        ht_resize(md, (a->mask + 1) * 2);
        md_rehash_step(md, REHASH_STEP);
    }
    return 0;
}

void md_ht_insert(struct metadata *md, struct meta_entry *e)
{
    struct htab *t = &md->ht[md->rehashing ? 1 : 0];
    size_t i = ht_slot(md, e->path) & t->mask;
    e->hnext = t->b[i];
    t->b[i] = e;
    t->used++;
    HS_INVARIANT(md_find_path(md, e->key, e->keylen, e->path) == e);
}

void md_ht_remove(struct metadata *md, struct meta_entry *e)
{
    size_t h = ht_slot(md, e->path);
    for (int t = 0; t < 2; t++) {
        struct htab *ht = &md->ht[t];
        if (ht->b == NULL)
            continue;
        for (struct meta_entry **pp = &ht->b[h & ht->mask]; *pp;
             pp = &(*pp)->hnext)
            if (*pp == e) {
                *pp = e->hnext;
                ht->used--;
                md_rehash_step(md, REHASH_STEP);
                HS_INVARIANT(md_find_path(md, e->key, e->keylen, e->path) ==
                             NULL);
                return;
            }
    }
    HS_ASSERT(!"metadata entry missing from its hash table");
}

/* A table eight times too large for what it holds shrinks (a few buckets
 * at a time, as it grows). */
void md_ht_maybe_shrink(struct metadata *md)
{
    const struct htab *a = &md->ht[0];
    if (md->rehashing || a->b == NULL || a->mask + 1 <= HT_MIN ||
        a->used * 8 > a->mask + 1)
        return;
    size_t size = HT_MIN;
    while (size < a->used * 2)
        size *= 2;
    ht_resize(md, size);
}
