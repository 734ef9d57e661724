/* recv.c: the UDP receive path: label, decryption, the packet walk and
 * then each message to the message table (dispatch.c). */
#include "core/node_int.h"

#include <string.h>

/* Bounds for one datagram (the stream bounds are configuration keys). */
#define PACKET_MAX_DECOMPRESSED (1u << 20)
#define PACKET_MAX_DEPTH 4

/* ===== Receiving ===== */

static void walk_packet(struct node *nd, const struct hs_addr *from,
                        const uint8_t *p, size_t n);

struct rx {
    struct node *nd;
    const struct hs_addr *from;
};

static void on_leaf(void *ud, uint8_t type, const uint8_t *body, size_t n)
{
    struct rx *rx = ud;
    struct node *nd = rx->nd;
    node_count_in(nd, type, n + 1); /* the type byte and the body */
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "recv message: from=%s type=%s bytes=%zu",
             addr_format(rx->from, ab, sizeof ab), wire_type_name(type), n);
    dispatch_message(nd, rx->from, type, body, n);
}

/* Without a key, a datagram starting 00 or 01 that is no ping or indirect
 * ping is most likely encrypted: say so rather than "malformed". */
static bool looks_encrypted(const uint8_t *p, size_t n)
{
    if (n < KEYRING_OVERHEAD_V1 || p[0] > 1)
        return false;
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *why = NULL;
    mp_reader_init(&r, p + 1, n - 1);
    if (p[0] == WIRE_PING) {
        struct wire_ping m;
        return wire_get_ping(&r, &m, &sc, &why) != 0;
    }
    struct wire_indirect_ping m;
    return wire_get_indirect_ping(&r, &m, &sc, &why) != 0;
}

/* Strip the label and open the encryption (reference section 5.4). The
 * plaintext goes to *pp, *pn (in `out` when decrypted); false when the
 * packet is refused. */
static bool unwrap(struct node *nd, const struct hs_addr *from,
                   const uint8_t **pp, size_t *pn, struct buf *out)
{
    const uint8_t *p = *pp, *label = NULL;
    size_t n = *pn, labellen = 0, want = strlen(nd->cfg.label);
    bool skip = nd->cfg.skip_inbound_label_check;
    if (n >= 1 && p[0] == WIRE_LABEL) {
        if (n < 2 || p[1] == 0 || n - 2 < p[1]) {
            node_refuse(nd, NODE_DROP_LABEL, from, "packet",
                        n >= 2 && p[1] == 0 ? "empty label header"
                                            : "label header cut short");
            return false;
        }
        label = p + 2;
        labellen = p[1];
        p += 2 + labellen;
        n -= 2 + labellen;
        if (skip) {
            node_refuse(nd, NODE_DROP_LABEL, from, "packet",
                        "labelled, and skip_inbound_label_check is set");
            return false;
        }
    }
    /* skip_inbound_label_check: unlabelled traffic carries our label. */
    if (!skip &&
        (labellen != want || (want && memcmp(label, nd->cfg.label, want)))) {
        node_refuse(nd, NODE_DROP_LABEL, from, "packet",
                    labellen ? "another label" : "no label");
        return false;
    }
    if (keyring_empty(&nd->keyring)) {
        if (looks_encrypted(p, n)) {
            node_refuse(nd, NODE_DROP_ENCRYPTED, from, "packet",
                        "looks encrypted, and no key is installed");
            return false;
        }
    } else {
        const char *why = "not encrypted";
        int rc = keyring_open(&nd->keyring, (const uint8_t *)nd->cfg.label,
                              want, p, n, out, NULL, &why);
        if (rc == 0) {
            node_count_in(nd, WIRE_ENCRYPT, n);
            p = out->data;
            n = out->len;
        } else if (nd->cfg.gossip_verify_incoming) {
            /* A blob starts with its version, 0 or 1; other first bytes
             * are plaintext messages. */
            node_refuse(nd,
                        n && p[0] > 1 ? NODE_DROP_PLAINTEXT : NODE_DROP_DECRYPT,
                        from, "packet",
                        n && p[0] > 1 ? "not encrypted, and "
                                        "gossip_verify_incoming is set"
                                      : why);
            return false;
        } /* else taken as plaintext (gossip_verify_incoming false) */
    }
    if (n == 0) {
        node_count_drop(nd, NODE_DROP_MALFORMED, from, "packet", "empty");
        return false;
    }
    *pp = p;
    *pn = n;
    return true;
}

void node_io_packet(struct node *nd, const struct hs_addr *from,
                    const uint8_t *p, size_t n)
{
    nd->stats.packets_in++;
    nd->stats.bytes_in += n;
    if (nd->paused) {
        nd->stats.dropped[NODE_DROP_PAUSED]++;
        return;
    }
    if (nd->phase == PHASE_NEW)
        return;
    /* The decrypted packet lives in nd->rx, or in a buffer of its own
     * should a handler ever feed the node another packet meanwhile. */
    struct buf own = BUF_INIT, *out = nd->rx_busy ? &own : &nd->rx;
    bool mine = out == &nd->rx;
    buf_reset(out);
    if (mine)
        nd->rx_busy = true;
    if (unwrap(nd, from, &p, &n, out))
        walk_packet(nd, from, p, n);
    if (mine)
        nd->rx_busy = false;
    buf_free(&own);
}

static void walk_packet(struct node *nd, const struct hs_addr *from,
                        const uint8_t *p, size_t n)
{
    struct wire_limits lim = {PACKET_MAX_DECOMPRESSED, PACKET_MAX_DEPTH};
    struct rx rx = {nd, from};
    /* Wrappers are not leaves: count the outermost ones here. */
    size_t o =
        n >= WIRE_CRC_OVERHEAD && p[0] == WIRE_HASCRC ? WIRE_CRC_OVERHEAD : 0;
    if (o)
        node_count_in(nd, WIRE_HASCRC, n);
    if (n > o && (p[o] == WIRE_COMPRESS || p[o] == WIRE_COMPOUND))
        node_count_in(nd, p[o], n - o);
    size_t trunc = 0;
    const char *why = NULL;
    int rc = wire_walk_packet(p, n, &lim, on_leaf, &rx, &trunc, &why);
    if (rc) {
        int reason = rc == HS_ECRC      ? NODE_DROP_CRC
                     : rc == HS_ETRUNC  ? NODE_DROP_TRUNCATED
                     : rc == HS_ETOOBIG ? NODE_DROP_TOO_BIG
                     : rc == HS_EUNSUPP || rc == HS_EDECOMPRESS
                         ? NODE_DROP_DECOMPRESS
                         : NODE_DROP_MALFORMED;
        node_count_drop(nd, reason, from, "packet", why);
    }
}
