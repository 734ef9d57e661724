/* transport_conn.c: the transport's TCP connections (struct io_stream):
 * their lifetime and graceful close, writing, dialling and reading. */
#include "io/transport_int.h"

#include <string.h>

/* ===== Connections: lifetime ===== */

static void conn_closed(uv_handle_t *h)
{
    struct io_stream *c = h->data;
    struct transport *t = c->t;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->kind == CONN_NEW)
        t->nnew--;
    else if (c->kind == CONN_PKT_IN)
        t->npkt_in--;
    if (c->kind == CONN_PKT_OUT && c->pend_frames)
        t->stats.udp_send_errors += c->pend_frames;
    tr_ip_release(c);
    hs_free(c->pend);
    frames_free(&c->fr);
    hs_free(c);
    t->handles--;
    tr_maybe_done(t);
}

void conn_close(struct io_stream *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

struct io_stream *conn_new(struct transport *t, int kind)
{
    struct io_stream *c = hs_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (uv_tcp_init(t->loop, &c->tcp) != 0) {
        hs_free(c);
        return NULL;
    }
    c->t = t;
    c->kind = kind;
    c->tcp.data = c;
    c->creq.data = c;
    c->sreq.data = c;
    c->since = c->last = c->progress = tnow(t);
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->handles++;
    if (kind == CONN_NEW)
        t->nnew++;
    return c;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct io_stream *c = req->data;
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->wdone = true;
    if (status < 0 || c->rdone || c->failed)
        conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf);

void conn_read_start(struct io_stream *c)
{
    if (c->reading || c->rdone)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void read_stop(struct io_stream *c)
{
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Nobody needs the connection any more: flush, FIN, wait for the peer's
 * FIN (bounded by the linger deadline), close. */
void conn_release(struct io_stream *c)
{
    struct transport *t = c->t;
    c->core = false;
    c->owner = NULL;
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->state == ST_DRAINING)
        return;
    if (c->state == ST_CONNECTING || c->failed || t->closing) {
        conn_close(c);
        return;
    }
    c->state = ST_DRAINING;
    c->deadline = tnow(t) + t->linger;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    conn_read_start(c);
}

/* ===== Connections: writing ===== */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct io_stream *c = w->c;
    struct transport *t = c->t;
    c->queued -= w->n;
    c->progress = tnow(t);
    if (status < 0) {
        if (c->kind == CONN_PKT_OUT)
            t->stats.udp_send_errors += w->frames; /* dropped */
        if (status != UV_ECANCELED && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            char ab[HS_ADDRSTRLEN];
            HS_DEBUG(t->log, "tcp write failed: peer=%s error=%s",
                     addr_format(&c->peer, ab, sizeof ab), uv_strerror(status));
            c->failed = true;
            struct node *nd = live_node(t);
            if (c->kind == CONN_STREAM && c->core && !c->ended) {
                c->ended = true;
                if (nd)
                    node_io_stream_end(nd, c->owner, tr_err(status));
            } else if (!c->core) {
                conn_close(c);
            }
        }
    }
    hs_free(w);
}

/* Hand a and b to libuv: try_write first, the rest copied. */
static int conn_send(struct io_stream *c, const uint8_t *a, size_t an,
                     const uint8_t *b, size_t bn, unsigned frames)
{
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)an),
                        uv_buf_init((char *)b, (unsigned)bn)};
    size_t done = 0;
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, bn ? 2 : 1);
    if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS)
        return tr_err(r);
    if (r > 0)
        done = (size_t)r;
    if (done == an + bn)
        return 0;
    size_t left = an + bn - done;
    struct wreq *w = hs_malloc(sizeof *w + left);
    if (w == NULL)
        return HS_ENOMEM;
    uint8_t *o = (uint8_t *)(w + 1);
    if (done < an) {
        memcpy(o, a + done, an - done);
        if (bn)
            memcpy(o + an - done, b, bn);
    } else {
        memcpy(o, b + (done - an), left);
    }
    w->c = c;
    w->n = left;
    w->frames = frames;
    w->req.data = w;
    uv_buf_t wb = uv_buf_init((char *)o, (unsigned)left);
    r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &wb, 1, on_write);
    if (r != 0) {
        hs_free(w);
        return tr_err(r);
    }
    c->queued += left;
    return 0;
}

int conn_pend_append(struct io_stream *c, const void *p, size_t n)
{
    if (c->npend + n > c->cappend) {
        size_t cap = c->cappend ? c->cappend : 256;
        while (cap < c->npend + n)
            cap *= 2;
        uint8_t *np = hs_malloc(cap);
        if (np == NULL)
            return HS_ENOMEM;
        if (c->npend)
            memcpy(np, c->pend, c->npend);
        hs_free(c->pend);
        c->pend = np;
        c->cappend = cap;
    }
    memcpy(c->pend + c->npend, p, n);
    c->npend += n;
    return 0;
}

/* Write a (and b): queued until the connection is up. */
int conn_write(struct io_stream *c, const void *a, size_t an, const void *b,
               size_t bn, unsigned frames)
{
    if (c->state == ST_CONNECTING) {
        size_t was = c->npend;
        int rc = conn_pend_append(c, a, an);
        if (rc == 0 && bn)
            rc = conn_pend_append(c, b, bn);
        if (rc) {
            c->npend = was;
            return rc;
        }
        c->pend_frames += frames;
        return 0;
    }
    return conn_send(c, a, an, b, bn, frames);
}

/* Connected: send what queued up meanwhile. */
static int flush_pending(struct io_stream *c)
{
    if (c->npend == 0)
        return 0;
    uint8_t *p = c->pend;
    size_t n = c->npend;
    unsigned frames = c->pend_frames;
    c->pend = NULL;
    c->npend = c->cappend = 0;
    c->pend_frames = 0;
    int rc = conn_send(c, p, n, NULL, 0, frames);
    hs_free(p);
    if (rc && c->kind == CONN_PKT_OUT)
        c->t->stats.udp_send_errors += frames;
    return rc;
}

/* ===== Connections: dialling ===== */

static void on_connect(uv_connect_t *req, int status)
{
    struct io_stream *c = req->data;
    struct transport *t = c->t;
    char ab[HS_ADDRSTRLEN];
    if (status == UV_ECANCELED || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    addr_format(&c->peer, ab, sizeof ab);
    if (status < 0) {
        HS_DEBUG(t->log, "tcp connect failed: peer=%s kind=%s error=%s", ab,
                 c->kind == CONN_PKT_OUT ? "packets" : "stream",
                 uv_strerror(status));
        c->failed = true;
        if (c->kind == CONN_PKT_OUT) {
            conn_close(c); /* its queued packets are counted as dropped */
            return;
        }
        c->ended = true; /* the core hears the failure here, not as end */
        struct node *nd = live_node(t);
        if (c->core && nd)
            node_io_stream_connected(nd, c->owner, tr_err(status));
        else if (!c->core)
            conn_close(c);
        return;
    }
    HS_DEBUG(t->log, "tcp connected: peer=%s kind=%s", ab,
             c->kind == CONN_PKT_OUT ? "packets" : "stream");
    c->state = ST_OPEN;
    c->progress = tnow(t);
    uv_tcp_nodelay(&c->tcp, 1);
    conn_read_start(c);
    int rc = flush_pending(c);
    if (c->kind == CONN_PKT_OUT) {
        if (rc)
            conn_close(c);
        return;
    }
    struct node *nd = live_node(t);
    if (c->core && nd)
        node_io_stream_connected(nd, c->owner, rc);
}

struct io_stream *conn_dial(struct transport *t, const struct hs_addr *to,
                            int kind, int *rc)
{
    struct sockaddr_storage ss;
    struct hs_addr u = addr_unmap(to);
    *rc = tr_to_sockaddr(&u, 0, &ss);
    if (*rc)
        return NULL;
    struct io_stream *c = conn_new(t, kind);
    if (c == NULL) {
        *rc = HS_ENOMEM;
        return NULL;
    }
    c->peer = u;
    c->state = ST_CONNECTING;
    int r =
        uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect);
    if (r != 0) {
        char ab[HS_ADDRSTRLEN];
        HS_DEBUG(t->log, "tcp connect failed: peer=%s error=%s",
                 addr_format(&u, ab, sizeof ab), uv_strerror(r));
        conn_close(c);
        *rc = tr_err(r);
        return NULL;
    }
    return c;
}
/* ===== Connections: reading ===== */

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct io_stream *c = h->data;
    (void)size;
    /* One buffer serves every connection: libuv hands it to read_cb at
     * once, and each callback consumes (or copies) the bytes. */
    *buf = uv_buf_init((char *)c->t->rbuf, sizeof c->t->rbuf);
}

static void read_end(struct io_stream *c, int err)
{
    struct transport *t = c->t;
    char ab[HS_ADDRSTRLEN];
    read_stop(c);
    c->rdone = true;
    if (err != UV_EOF)
        c->failed = true;
    if (c->state == ST_DRAINING) {
        if (c->wdone || c->failed)
            conn_close(c);
        return;
    }
    switch (c->kind) {
    case CONN_NEW:
    case CONN_PKT_OUT:
        conn_close(c);
        return;
    case CONN_PKT_IN:
        if (frames_partial(&c->fr))
            t->stats.frame_errors++; /* cut in the middle of a frame */
        HS_DEBUG(t->log, "packet connection closed: peer=%s error=%s",
                 addr_format(&c->peer, ab, sizeof ab),
                 err == UV_EOF ? "-" : uv_strerror(err));
        conn_close(c);
        return;
    default:
        break;
    }
    if (c->core && !c->ended) {
        c->ended = true;
        struct node *nd = live_node(t);
        if (nd)
            node_io_stream_end(nd, c->owner, err == UV_EOF ? 0 : tr_err(err));
    } else if (!c->core) {
        conn_close(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct io_stream *c = s->data;
    struct transport *t = c->t;
    if (nread == 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (nread < 0) {
        read_end(c, (int)nread);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if (c->state == ST_DRAINING)
        return; /* nobody listens any more */
    switch (c->kind) {
    case CONN_NEW:
        tr_classify(c, p, n);
        return;
    case CONN_PKT_IN:
        pkt_feed(c, p, n);
        return;
    case CONN_PKT_OUT:
        pkt_frame_error(c, "data on an outbound packet connection");
        return;
    default: {
        struct node *nd = live_node(t);
        if (c->core && !c->ended && nd)
            node_io_stream_data(nd, c->owner, p, n);
        return;
    }
    }
}
