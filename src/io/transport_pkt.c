/* transport_pkt.c: packets over TCP (transport = tcp): reading the frames
 * of an inbound packet connection, and sending on a cached outbound one. */
#include "io/transport_int.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void pkt_frame_error(struct io_stream *c, const char *why)
{
    char ab[HS_ADDRSTRLEN];
    c->t->stats.frame_errors++;
    HS_DEBUG(c->t->log, "dropped packet connection: peer=%s reason=%s",
             addr_format(&c->peer, ab, sizeof ab), why);
    c->failed = true;
    conn_close(c);
}

/* A whole frame for the node; stops the reading once the connection or
 * the transport is closing (the node may close either). */
static int deliver(void *ud, const uint8_t *p, size_t n)
{
    struct io_stream *c = ud;
    struct transport *t = c->t;
    if (uv_is_closing((uv_handle_t *)&c->tcp) || t->closing)
        return 1;
    t->stats.frames_in++;
    struct node *nd = live_node(t);
    if (nd)
        node_io_packet(nd, &c->peer, p, n);
    return 0;
}

/* Bytes of a packet connection (frames.c splits them into frames). */
void pkt_feed(struct io_stream *c, const uint8_t *p, size_t n)
{
    struct transport *t = c->t;
    const char *why = NULL;
    c->last = tnow(t);
    int rc = frames_feed(&c->fr, p, n, deliver, c, &why);
    if (rc == HS_ENOMEM) {
        HS_WARN(t->log, "%s", why);
        c->failed = true;
        conn_close(c);
    } else if (rc < 0) {
        pkt_frame_error(c, why);
    }
}

static struct io_stream *pkt_conn(struct transport *t, const struct hs_addr *to)
{
    for (struct io_stream *c = t->conns; c; c = c->next)
        if (c->kind == CONN_PKT_OUT && c->state != ST_DRAINING && !c->failed &&
            !uv_is_closing((uv_handle_t *)&c->tcp) && addr_eq(&c->peer, to))
            return c;
    return NULL;
}

int pkt_send(struct transport *t, const struct hs_addr *to, const void *p,
             size_t n)
{
    struct hs_addr u = addr_unmap(to);
    int rc = 0;
    if (n > FRAMES_MAX) {
        t->stats.udp_send_errors++;
        return HS_ETOOBIG;
    }
    struct io_stream *c = pkt_conn(t, &u);
    if (c == NULL) {
        c = conn_dial(t, &u, CONN_PKT_OUT, &rc);
        if (c == NULL) {
            t->stats.udp_send_errors++;
            return rc;
        }
        uint8_t magic = FRAMES_MAGIC;
        rc = conn_pend_append(c, &magic, 1);
        if (rc) {
            conn_close(c);
            t->stats.udp_send_errors++;
            return rc;
        }
    }
    if (c->npend + c->queued + 4 + n > PKT_QUEUE_MAX) {
        t->stats.udp_send_errors++;
        return HS_EBUSY; /* best-effort: the peer is not keeping up */
    }
    uint8_t hdr[4];
    put_be32(hdr, (uint32_t)n);
    rc = conn_write(c, hdr, 4, p, n, 1);
    if (rc) {
        t->stats.udp_send_errors++;
        c->failed = true;
        conn_close(c);
        return rc;
    }
    c->last = tnow(t);
    t->stats.frames_out++;
    return 0;
}
