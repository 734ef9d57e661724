/* transport_udp.c: the transport's UDP packets: receiving, and sending
 * (queued behind a busy socket). */
#include "io/transport_int.h"

#include <string.h>

void tr_on_udp_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct transport *t = h->data;
    (void)size;
    *buf = uv_buf_init((char *)t->ubuf, sizeof t->ubuf);
}

void tr_on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *sa, unsigned flags)
{
    struct transport *t = h->data;
    if (nread == 0 && sa == NULL)
        return; /* nothing more to read */
    if (nread < 0) {
        t->stats.udp_recv_errors++;
        HS_WARN(t->log, "udp receive failed: %s", uv_strerror((int)nread));
        return;
    }
    struct hs_addr from;
    if (sa == NULL || tr_from_sockaddr(sa, &from) != 0)
        return;
    char ab[HS_ADDRSTRLEN];
    if (flags & UV_UDP_PARTIAL) {
        t->stats.udp_recv_errors++;
        HS_DEBUG(t->log,
                 "dropped packet: from=%s reason=larger than %d "
                 "bytes",
                 addr_format(&from, ab, sizeof ab), UDP_BUF);
        return;
    }
    if (nread == 0)
        return;
    struct node *nd = live_node(t);
    if (nd)
        node_io_packet(nd, &from, (const uint8_t *)buf->base, (size_t)nread);
}

/* Count a failed send. Unreachable destinations are traffic (DEBUG);
 * anything else is our own trouble (WARN, at most every 10 s). */
static int send_failed(struct transport *t, const struct hs_addr *to, int r)
{
    char ab[HS_ADDRSTRLEN] = "-";
    t->stats.udp_send_errors++;
    if (to)
        addr_format(to, ab, sizeof ab);
    bool remote = r == UV_EHOSTUNREACH || r == UV_ENETUNREACH ||
                  r == UV_ECONNREFUSED || r == UV_EHOSTDOWN;
    uint64_t now = tnow(t);
    if (!remote && (t->warned == 0 || now - t->warned >= 10000)) {
        t->warned = now;
        HS_WARN(t->log, "udp send failed: to=%s error=%s", ab, uv_strerror(r));
    } else {
        HS_DEBUG(t->log, "udp send failed: to=%s error=%s", ab, uv_strerror(r));
    }
    return tr_err(r);
}

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    struct sreq *s = req->data;
    if (status < 0 && status != UV_ECANCELED)
        send_failed(s->t, NULL, status);
    hs_free(s);
}

int udp_send(struct transport *t, const struct hs_addr *to, const void *p,
             size_t n)
{
    struct sockaddr_storage ss;
    if (n > 65507 || tr_to_sockaddr(to, t->family, &ss) != 0) {
        t->stats.udp_send_errors++;
        return n > 65507 ? HS_ETOOBIG : HS_EADDR;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_udp_try_send(&t->udp, &b, 1, (struct sockaddr *)&ss);
    if (r >= 0)
        return 0;
    if (r != UV_EAGAIN && r != UV_ENOSYS)
        return send_failed(t, to, r);
    /* The socket is busy: queue a copy (io.h: bytes are copied). */
    if (t->udp.send_queue_size + n > UDP_QUEUE_MAX) {
        t->stats.udp_send_errors++;
        return HS_EBUSY;
    }
    struct sreq *s = hs_malloc(sizeof *s + n);
    if (s == NULL)
        return send_failed(t, to, UV_ENOMEM);
    s->t = t;
    s->req.data = s;
    memcpy(s + 1, p, n);
    b = uv_buf_init((char *)(s + 1), (unsigned)n);
    r = uv_udp_send(&s->req, &t->udp, &b, 1, (struct sockaddr *)&ss,
                    on_udp_sent);
    if (r != 0) {
        hs_free(s);
        return send_failed(t, to, r);
    }
    return 0;
}
