/* md_heap.c: the heap of tombstones, oldest version first
 * (collection takes from its top). */
#include "core/metadata_int.h"

#include <string.h>

static void heap_set(struct metadata *md, size_t i, struct meta_entry *e)
{
    md->heap[i] = e;
    e->heap = i + 1;
}

/* Slot i holds its entry in order with its parent and its children
 * (HS_INVARIANT). */
static bool heap_ok_at(const struct metadata *md, size_t i)
{
    const struct meta_entry *e = md->heap[i];
    size_t c = 2 * i + 1;
    return e->heap == i + 1 &&
           (i == 0 || md->heap[(i - 1) / 2]->version <= e->version) &&
           (c >= md->nheap || md->heap[c]->version >= e->version) &&
           (c + 1 >= md->nheap || md->heap[c + 1]->version >= e->version);
}

static void heap_up(struct metadata *md, size_t i)
{
    struct meta_entry *e = md->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (md->heap[p]->version <= e->version)
            break;
        heap_set(md, i, md->heap[p]);
        i = p;
    }
    heap_set(md, i, e);
}

static void heap_down(struct metadata *md, size_t i)
{
    struct meta_entry *e = md->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= md->nheap)
            break;
        if (c + 1 < md->nheap &&
            md->heap[c + 1]->version < md->heap[c]->version)
            c++;
        if (md->heap[c]->version >= e->version)
            break;
        heap_set(md, i, md->heap[c]);
        i = c;
    }
    heap_set(md, i, e);
}

int md_heap_reserve(struct metadata *md)
{
    if (md->nheap < md->heapcap)
        return 0;
    size_t c = md->heapcap ? md->heapcap * 2 : 64;
    struct meta_entry **h = hs_realloc(md->heap, c * sizeof *h);
    if (h == NULL)
        return HS_ENOMEM;
    md->heap = h;
    md->heapcap = c;
    return 0;
}

void md_heap_push(struct metadata *md, struct meta_entry *e)
{
    HS_ASSERT(md->nheap < md->heapcap);
    md->heap[md->nheap++] = e;
    heap_up(md, md->nheap - 1);
    HS_INVARIANT(heap_ok_at(md, e->heap - 1));
}

void md_heap_remove(struct metadata *md, struct meta_entry *e)
{
    size_t i = e->heap - 1;
    e->heap = 0;
    struct meta_entry *last = md->heap[--md->nheap];
    if (i == md->nheap)
        return;
    heap_set(md, i, last);
    heap_up(md, i);
    heap_down(md, last->heap - 1);
    HS_INVARIANT(heap_ok_at(md, last->heap - 1));
}

bool md_heap_ordered(const struct metadata *md)
{
    for (size_t i = 0; i < md->nheap; i++)
        if (!heap_ok_at(md, i))
            return false;
    return true;
}
