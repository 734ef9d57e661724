/* md_gossip.c: writes spread as rumors: queued for the gossip
 * packets (or announced, when too large for one), and applied or
 * fetched when they arrive. */
#include "core/metadata_int.h"

#include "codec/mp.h"

/* Queue a write (or, if too large for a packet, its announcement). */
void md_gossip(struct metadata *md, struct meta_entry *e)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, WIRE_USER);
    wire_put_envelope(&b, WIRE_ENV_META, md->cfg->name, md->namelen);
    size_t room = (size_t)md->cfg->udp_buffer_size - WIRE_COMPOUND_HEADER -
                  WIRE_COMPOUND_OVERHEAD - 64;
    /* The key, origin and field names take some 300 bytes at most: a
     * value that cannot fit is announced without being encoded. */
    bool fits = e->len + e->keylen + e->originlen + 40 <= room;
    size_t head = b.len;
    if (fits)
        md_put_entry(&b, e, true, false);
    if (!fits || b.len > room) {
        b.len = head;
        md_put_entry(&b, e, false, true);
    }
    if (b.err == 0 &&
        bqueue_push(&md->queue, &e->bcast, b.data, b.len, false) == 0)
        md->nstats->broadcasts_queued++;
    buf_free(&b);
}

size_t metadata_take(struct metadata *md, size_t overhead, size_t limit,
                     int transmit_limit, struct buf *out, size_t *lens,
                     size_t max)
{
    size_t n = 0;
    bqueue_take(&md->queue, overhead, limit, transmit_limit, out, lens, max,
                &n);
    return n;
}

void metadata_on_gossip(struct metadata *md, const uint8_t *p, size_t n,
                        const struct hs_addr *from)
{
    struct mp_reader r;
    struct view v;
    mp_reader_init(&r, p, n);
    if (md_get_entry(&r, &v)) {
        md_count_drop(md, NODE_DROP_MALFORMED, from, "metadata",
                      "bad metadata entry");
        return;
    }
    if (v.big && !v.has_value) { /* an announcement */
        const struct meta_entry *e = md_find(md, (const char *)v.key, v.keylen);
        if (e && newer(v.version, (const char *)v.origin, v.originlen,
                       e->version, e->origin, e->originlen) <= 0)
            return; /* we have it, or newer */
        if (e == NULL && v.version <= metadata_horizon(md)) {
            md_note_horizon(md, &v);
            return; /* deleted, and collected here */
        }
        if (v.big > md->cfg->metadata_max_value)
            return;
        md_start_fetch(md, &v, from);
        return;
    }
    if (!v.deleted && !v.has_value)
        v.value = (const uint8_t *)"";
    md_apply(md, &v);
}
