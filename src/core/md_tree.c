/* md_tree.c: the hash tree over the store (anti-entropy):
 * node hashes and counts kept up to date with every write, leaves split
 * and merged as they grow and shrink. */
#include "core/metadata_int.h"

#include <string.h>

/* Index of the first entry of leaf t after (path, key) (at it too, if
 * incl). */
static size_t leaf_lower(const struct tnode *t, uint64_t path, const char *k,
                         size_t kl, bool incl)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pk_cmp(path, k, kl, t->v[mid]);
        if (c > 0 || (c == 0 && !incl))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index of the first entry of leaf t whose path is above `path`. */
static size_t leaf_above(const struct tnode *t, uint64_t path)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid]->path <= path)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct tnode *tree_leaf(struct metadata *md, uint64_t path, int *d)
{
    struct tnode *t = &md->top[path >> 56];
    int depth = 1;
    while (t->kids)
        t = &t->kids[nib(path, depth++)];
    if (d)
        *d = depth;
    return t;
}

static int leaf_grow(struct tnode *t, uint32_t want)
{
    if (want <= t->cap)
        return 0;
    uint32_t c = t->cap ? t->cap * 2 : 4;
    while (c < want)
        c *= 2;
    struct meta_entry **v = hs_realloc(t->v, c * sizeof *v);
    if (v == NULL)
        return HS_ENOMEM;
    t->v = v;
    t->cap = c;
    return 0;
}

/* Before an insert: room in the leaf the path falls in. */
int md_tree_reserve(struct metadata *md, uint64_t path)
{
    struct tnode *t = tree_leaf(md, path, NULL);
    return leaf_grow(t, t->n + 1);
}

/* Split a leaf at depth d into 16 (its children split further if all
 * fell into one). Without memory, it stays a large leaf. */
static void split(struct tnode *t, int d)
{
    struct tnode *k = hs_calloc(16, sizeof *k);
    if (k == NULL)
        return;
    uint32_t cnt[16] = {0};
    for (uint32_t i = 0; i < t->n; i++)
        cnt[nib(t->v[i]->path, d)]++;
    for (int c = 0; c < 16; c++)
        if (cnt[c] && leaf_grow(&k[c], cnt[c] + cnt[c] / 2 + 2)) {
            for (int j = 0; j < 16; j++)
                hs_free(k[j].v);
            hs_free(k);
            return;
        }
    for (uint32_t i = 0; i < t->n; i++) { /* in order: children stay so */
        struct meta_entry *e = t->v[i];
        struct tnode *kid = &k[nib(e->path, d)];
        kid->v[kid->n++] = e;
        kid->hash ^= e->digest;
        kid->count++;
    }
    hs_free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
    t->kids = k;
    for (int c = 0; c < 16; c++)
        if (k[c].n > LEAF_MAX && d + 1 < TREE_DEPTH)
            split(&k[c], d + 1);
}

void md_tree_add(struct metadata *md, struct meta_entry *e)
{
    struct tnode *t = &md->top[e->path >> 56];
    int d = 1;
    for (;;) {
        t->hash ^= e->digest;
        t->count++;
        if (t->kids == NULL)
            break;
        t = &t->kids[nib(e->path, d++)];
    }
    size_t i = leaf_lower(t, e->path, e->key, e->keylen, true);
    HS_ASSERT(t->n < t->cap);
    memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof *t->v);
    t->v[i] = e;
    t->n++;
    if (t->n > LEAF_MAX && d < TREE_DEPTH)
        split(t, d);
}

void md_free_kids(struct tnode *t)
{
    if (t->kids) {
        for (int c = 0; c < 16; c++)
            md_free_kids(&t->kids[c]);
        hs_free(t->kids);
        t->kids = NULL;
    }
    hs_free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

/* Append the entries under t, in order, to v. */
static void gather(const struct tnode *t, struct meta_entry **v, uint32_t *n)
{
    if (t->kids == NULL) {
        if (t->n)
            memcpy(v + *n, t->v, t->n * sizeof *v);
        *n += t->n;
        return;
    }
    for (int c = 0; c < 16; c++)
        gather(&t->kids[c], v, n);
}

/* An inner node with few entries left becomes a leaf. */
static void collapse(struct tnode *t)
{
    struct meta_entry **v = hs_malloc((t->count + 4) * sizeof *v);
    if (v == NULL)
        return; /* it stays inner: correct, if larger */
    uint32_t n = 0;
    gather(t, v, &n);
    HS_ASSERT(n == t->count);
    md_free_kids(t);
    t->v = v;
    t->n = n;
    t->cap = t->count + 4;
}

void md_tree_remove(struct metadata *md, struct meta_entry *e)
{
    struct tnode *stack[TREE_DEPTH];
    int depth = 0, d = 1;
    struct tnode *t = &md->top[e->path >> 56];
    for (;;) {
        stack[depth++] = t;
        t->hash ^= e->digest;
        t->count--;
        if (t->kids == NULL)
            break;
        t = &t->kids[nib(e->path, d++)];
    }
    size_t i = leaf_lower(t, e->path, e->key, e->keylen, true);
    HS_ASSERT(i < t->n && t->v[i] == e);
    memmove(t->v + i, t->v + i + 1, (t->n - i - 1) * sizeof *t->v);
    t->n--;
    for (int j = 0; j < depth - 1; j++)
        if (stack[j]->count <= LEAF_MERGE) {
            collapse(stack[j]);
            break;
        }
}

static struct meta_entry *node_first(const struct tnode *t)
{
    for (;;) {
        if (t->count == 0)
            return NULL;
        if (t->kids == NULL)
            return t->n ? t->v[0] : NULL;
        int c = 0;
        while (t->kids[c].count == 0)
            c++;
        t = &t->kids[c];
    }
}

static struct meta_entry *node_after(const struct tnode *t, int d,
                                     uint64_t path, const char *k, size_t kl,
                                     bool incl)
{
    if (t->count == 0)
        return NULL;
    if (t->kids == NULL) {
        size_t i = leaf_lower(t, path, k, kl, incl);
        return i < t->n ? t->v[i] : NULL;
    }
    unsigned c = nib(path, d);
    struct meta_entry *e = node_after(&t->kids[c], d + 1, path, k, kl, incl);
    for (c++; e == NULL && c < 16; c++)
        e = node_first(&t->kids[c]);
    return e;
}

/* The first entry after (path, key) in tree order (at it too, if incl),
 * or NULL. */
struct meta_entry *md_tree_after(const struct metadata *md, uint64_t path,
                                 const char *k, size_t kl, bool incl)
{
    unsigned b = (unsigned)(path >> 56);
    struct meta_entry *e = node_after(&md->top[b], 1, path, k, kl, incl);
    for (b++; e == NULL && b < TREE_TOP; b++)
        e = node_first(&md->top[b]);
    return e;
}

void md_tree_view(const struct metadata *md, const struct pfx *p,
                  struct tview *v)
{
    const struct tnode *t = &md->top[p->lo >> 56];
    int d = 1;
    while (d < p->depth && t->kids)
        t = &t->kids[nib(p->lo, d++)];
    v->t = t;
    if (d == p->depth || t->count == 0) {
        v->from = 0;
        v->to = t->kids ? 0 : t->n;
        v->count = t->count;
        v->hash = t->hash;
        return;
    }
    /* A leaf above the prefix: its entries in the prefix are together. */
    v->from = p->lo ? (uint32_t)leaf_above(t, p->lo - 1) : 0;
    v->to = (uint32_t)leaf_above(t, pfx_hi(p));
    v->count = v->to - v->from;
    v->hash = 0;
    for (uint32_t i = v->from; i < v->to; i++)
        v->hash ^= t->v[i]->digest;
}

/* The 16 children of a prefix (its depth below TREE_DEPTH). */
void md_tree_kids(const struct pfx *p, const struct tview *v, uint64_t hash[16],
                  uint32_t count[16])
{
    memset(hash, 0, 16 * sizeof *hash);
    memset(count, 0, 16 * sizeof *count);
    if (v->t->kids) { /* the whole node */
        for (int c = 0; c < 16; c++) {
            hash[c] = v->t->kids[c].hash;
            count[c] = v->t->kids[c].count;
        }
        return;
    }
    for (uint32_t i = v->from; i < v->to; i++) {
        const struct meta_entry *e = v->t->v[i];
        unsigned c = nib(e->path, p->depth);
        hash[c] ^= e->digest;
        count[c]++;
    }
}
