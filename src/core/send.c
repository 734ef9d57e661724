/* send.c: the UDP send path: piggybacked broadcasts, compression,
 * CRC, encryption and label; the broadcast queue's entries. */
#include "core/node_int.h"

#include <string.h>

/* ===== Sending ===== */

static void count_out(struct node *nd, const uint8_t *msg, size_t len)
{
    if (len == 0)
        return;
    if (msg[0] == WIRE_COMPOUND && len >= 2) {
        node_count_out(nd, WIRE_COMPOUND, len);
        struct wire_part parts[WIRE_COMPOUND_MAX];
        size_t n, trunc;
        if (wire_split_compound(msg + 1, len - 1, parts, &n, &trunc) == 0) {
            for (size_t i = 0; i < n; i++)
                if (parts[i].n)
                    node_count_out(nd, parts[i].p[0], parts[i].n);
            return;
        }
    }
    node_count_out(nd, msg[0], len);
}

int node_send_raw(struct node *nd, const struct hs_addr *to,
                  const struct member *to_member, const uint8_t *msg,
                  size_t len)
{
    if (nd->paused)
        return 0;
    count_out(nd, msg, len);
    struct buf *b = &nd->scratch;
    buf_reset(b);
    if (nd->cfg.enable_compression) {
        wire_put_compress(b, msg, len);
        if (b->err || b->len >= len) /* only when it is smaller */
            buf_reset(b);
    }
    if (b->len == 0)
        buf_append(b, msg, len);
    if (b->len && b->data[0] == WIRE_COMPRESS)
        node_count_out(nd, WIRE_COMPRESS, b->len);
    if (to_member && to_member->vsn[1] >= 5) {
        wire_add_crc(b, 0);
        node_count_out(nd, WIRE_HASCRC, b->len);
    }
    if (b->err)
        return b->err;
    /* Encryption inside, the label outside (reference section 5.3). */
    size_t labellen = strlen(nd->cfg.label);
    if (node_seals(nd) || labellen) {
        struct buf *sb = &nd->sealed;
        buf_reset(sb);
        if (labellen) {
            buf_putc(sb, WIRE_LABEL);
            buf_putc(sb, (uint8_t)labellen);
            buf_append(sb, nd->cfg.label, labellen);
        }
        if (node_seals(nd)) {
            uint8_t nonce[KEYRING_NONCE];
            node_nonce(nd, nonce);
            int rc = keyring_seal(
                &nd->keyring, keyring_version(nd->cfg.protocol_version), nonce,
                (const uint8_t *)nd->cfg.label, labellen, b->data, b->len, sb);
            if (rc) {
                HS_ERROR(nd->log, "cannot encrypt a packet: %s",
                         hs_strerror(rc));
                return rc;
            }
            node_count_out(nd, WIRE_ENCRYPT,
                           sb->len - (labellen ? 2 + labellen : 0));
        } else {
            buf_append(sb, b->data, b->len);
        }
        if (sb->err)
            return sb->err;
        b = sb;
    }
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "send packet: to=%s type=%s bytes=%zu",
             addr_format(to, ab, sizeof ab), wire_type_name(msg[0]), b->len);
    int rc = nd->io.send_packet(nd->io.ctx, to, b->data, b->len);
    if (rc) {
        nd->stats.send_errors++;
        return rc;
    }
    nd->stats.packets_out++;
    nd->stats.bytes_out += b->len;
    return 0;
}

/* Fill up to `limit` bytes with broadcasts: memberlist's first, then user
 * messages (memberlist getBroadcasts). Our own (metadata and rumors) only
 * if `ours`: the target is not known to run something else. */
size_t node_take_broadcasts(struct node *nd, size_t overhead, size_t limit,
                            struct buf *out, size_t *lens, size_t max,
                            bool ours)
{
    size_t n = 0, m = 0, used = 0;
    size_t members = members_count(&nd->members);
    int tl = retransmit_limit(nd->cfg.retransmit_mult, members);
    bqueue_take(&nd->queue, overhead, limit, tl, out, lens, max, &n);
    for (size_t i = 0; i < n; i++)
        used += lens[i] + overhead;
    if (ours && limit > used && limit - used > overhead + 1 && n < max) {
        /* A metadata write is worth more than a membership rumor: a node
         * that misses it waits for the next push/pull. Let every node
         * tell it to at least a full round of gossip targets, which in a
         * small cluster is everyone. */
        int mtl = tl < nd->cfg.gossip_nodes ? nd->cfg.gossip_nodes : tl;
        m = metadata_take(nd->store, overhead, limit - used, mtl, out, lens + n,
                          max - n);
        for (size_t i = n; i < n + m; i++)
            used += lens[i] + overhead;
        n += m;
        m = 0;
    }
    if (ours && limit > used && limit - used > overhead + 1 && n < max)
        bqueue_take(&nd->user_queue, overhead, limit - used, tl, out, lens + n,
                    max - n, &m);
    return n + m;
}

/* Turn msgs laid end to end in `all` into one message: itself if single,
 * else a compound. The result goes to `out`. */
int node_pack(const struct buf *all, const size_t *lens, size_t n,
              struct buf *out)
{
    if (n == 1)
        return buf_append(out, all->data, all->len);
    struct wire_part parts[WIRE_COMPOUND_MAX];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i].p = all->data + off;
        parts[i].n = lens[i];
        off += lens[i];
    }
    return wire_put_compound(out, parts, n);
}

size_t node_packet_overhead(const struct node *nd)
{
    size_t labellen = strlen(nd->cfg.label);
    size_t o = labellen ? 2 + labellen : 0;
    if (node_seals(nd))
        o += keyring_overhead(keyring_version(nd->cfg.protocol_version));
    return o;
}

int node_send_msg(struct node *nd, const struct hs_addr *to, const uint8_t *msg,
                  size_t len)
{
    size_t limit = (size_t)nd->cfg.udp_buffer_size;
    size_t fixed = len + WIRE_COMPOUND_HEADER + node_packet_overhead(nd);
    struct buf extra = BUF_INIT, pkt = BUF_INIT;
    size_t lens[WIRE_COMPOUND_MAX];
    size_t n = 0;
    if (fixed < limit && !nd->paused)
        /* Probes and acks go to addresses, not members: in a cluster
         * with foreign members, ours ride the gossip rounds only. */
        n = node_take_broadcasts(nd, WIRE_COMPOUND_OVERHEAD, limit - fixed,
                                 &extra, lens + 1, WIRE_COMPOUND_MAX - 1,
                                 !nd->mixed);
    /* Go looks the destination up by its bare IP as a node name, so the
     * generic path gets a CRC only when a node is named by its IP. */
    const struct member *named = NULL;
    if (nd->members.ip_named) {
        char ipname[HS_ADDRSTRLEN];
        addr_ip_format(to, ipname, sizeof ipname);
        named = members_find(&nd->members, ipname, strlen(ipname));
    }
    int rc;
    if (n == 0) {
        rc = node_send_raw(nd, to, named, msg, len);
    } else {
        struct wire_part parts[WIRE_COMPOUND_MAX];
        parts[0].p = msg;
        parts[0].n = len;
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            parts[i + 1].p = extra.data + off;
            parts[i + 1].n = lens[i + 1];
            off += lens[i + 1];
        }
        rc = wire_put_compound(&pkt, parts, n + 1);
        if (rc == 0)
            rc = node_send_raw(nd, to, named, pkt.data, pkt.len);
    }
    buf_free(&extra);
    buf_free(&pkt);
    return rc;
}

void node_queue_alive(struct node *nd, struct member *m, const struct buf *msg)
{
    if (!msg->err &&
        bqueue_push_lazy(&nd->queue, &m->bcast, msg->len, false) == 0)
        nd->stats.broadcasts_queued++;
}

/* The queue's writer of lazy news: an alive about the slot's member. */
void node_queue_encode(void *ud, struct bcast **slot, struct buf *out)
{
    (void)ud;
    const struct member *m =
        (const struct member *)(const void *)((const char *)slot -
                                              offsetof(struct member, bcast));
    members_write_alive(m, out);
}

void node_queue_broadcast(struct node *nd, struct member *about,
                          const struct buf *msg, bool notify)
{
    if (msg->err)
        return;
    if (bqueue_push(&nd->queue, about ? &about->bcast : NULL, msg->data,
                    msg->len, notify) == 0)
        nd->stats.broadcasts_queued++;
}
