/* metadata.c: the cluster metadata store itself: made and freed, its
 * clocks (the HLC, the horizon), its upkeep (tombstones collected, the
 * hash table moved along), its stats, observer and journal. The rest is
 * in md_*.c, one job a file (metadata_int.h lists them). */
#include "core/metadata_int.h"

#include <string.h>

void metadata_set_observer(struct metadata *md, meta_observer_fn fn, void *ud)
{
    md->observer = fn;
    md->observer_ud = ud;
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
        HS_INVARIANT(md_heap_ordered(md));
    }
    return md->nheap && md_expired(md, md->heap[0]->version, now);
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

/* ===== The data dir's log ===== */

void metadata_set_journal(struct metadata *md, const struct meta_journal *j)
{
    if (j)
        md->journal = *j;
    else
        memset(&md->journal, 0, sizeof md->journal);
}
