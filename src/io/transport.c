/* transport.c: the libuv implementation of io.h (real sockets, real
 * time): the struct io the core calls, the wake and sweep timers, binding
 * the socket pair, and the transport's lifecycle. The connections, the
 * listener, packets and addresses are in transport_*.c (transport_int.h
 * says which piece does what). */
#include "io/transport_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ===== Helpers ===== */

int tr_err(int uverr)
{
    switch (uverr) {
    case 0:
        return 0;
    case UV_ECONNREFUSED:
        return HS_EREFUSED;
    case UV_ETIMEDOUT:
        return HS_ETIMEDOUT;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_ENOTCONN:
    case UV_ECANCELED:
        return HS_ECLOSED;
    case UV_ENOMEM:
        return HS_ENOMEM;
    case UV_EMSGSIZE:
        return HS_ETOOBIG;
    case UV_EADDRNOTAVAIL:
    case UV_EAFNOSUPPORT:
        return HS_EADDR;
    case UV_EAI_NONAME:
    case UV_EAI_NODATA:
        return HS_ENOTFOUND;
    default:
        return HS_EIO;
    }
}

int tr_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static socklen_t salen(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6);
}

/* ===== Timers ===== */

static void on_wake(uv_timer_t *h)
{
    struct transport *t = h->data;
    struct node *nd = live_node(t);
    if (nd)
        node_io_timers(nd);
}

/* Deadlines the core does not keep: silent accepts, packet connections
 * that hang or idle, closes that linger. */
static void on_sweep(uv_timer_t *h)
{
    struct transport *t = h->data;
    uint64_t now = tnow(t);
    char ab[HS_ADDRSTRLEN];
    /* conn_close only starts closing: the list is unlinked later. */
    for (struct io_stream *c = t->conns; c; c = c->next) {
        if (uv_is_closing((uv_handle_t *)&c->tcp))
            continue;
        if (c->state == ST_DRAINING) {
            if (now >= c->deadline)
                conn_close(c);
            continue;
        }
        switch (c->kind) {
        case CONN_NEW:
            if (now - c->since >= t->tcp_timeout) {
                t->stats.tcp_timeouts++;
                HS_DEBUG(t->log,
                         "tcp connection dropped: peer=%s "
                         "reason=silent",
                         addr_format(&c->peer, ab, sizeof ab));
                conn_close(c);
            }
            break;
        case CONN_PKT_OUT:
            if (c->state == ST_CONNECTING && now - c->since >= t->linger) {
                HS_DEBUG(t->log, "packet connection timed out: peer=%s",
                         addr_format(&c->peer, ab, sizeof ab));
                conn_close(c);
            } else if (c->state == ST_OPEN && c->queued &&
                       now - c->progress >= t->linger) {
                HS_DEBUG(t->log, "packet connection stalled: peer=%s",
                         addr_format(&c->peer, ab, sizeof ab));
                c->failed = true;
                conn_close(c);
            } else if (c->state == ST_OPEN && c->queued == 0 &&
                       now - c->last >= PKT_OUT_IDLE) {
                conn_release(c);
            }
            break;
        case CONN_PKT_IN:
            if (c->fr.count == 0 && now - c->since >= t->tcp_timeout) {
                /* The magic byte, then no whole frame in time. */
                t->stats.tcp_timeouts++;
                HS_DEBUG(t->log,
                         "packet connection dropped: peer=%s "
                         "reason=no frame within tcp_timeout",
                         addr_format(&c->peer, ab, sizeof ab));
                c->failed = true;
                conn_close(c);
            } else if (now - c->last >= PKT_IN_IDLE) {
                conn_close(c);
            }
            break;
        default:
            break;
        }
    }
}

/* ===== struct io ===== */

static uint64_t io_now(void *ctx)
{
    return tnow(ctx);
}

static uint64_t io_wall(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void io_wakeup(void *ctx, uint64_t at)
{
    struct transport *t = ctx;
    if (t->closing)
        return;
    if (at == UINT64_MAX) {
        uv_timer_stop(&t->wake);
        return;
    }
    uint64_t now = tnow(t);
    uv_timer_start(&t->wake, on_wake, at > now ? at - now : 0, 0);
}

static void io_random(void *ctx, void *p, size_t n)
{
    (void)ctx;
    if (uv_random(NULL, NULL, p, n, 0, NULL) == 0)
        return;
    /* No entropy source: the clock is better than zeros. */
    uint64_t x = uv_hrtime() ^ (uint64_t)(uintptr_t)p;
    uint8_t *o = p;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        o[i] = (uint8_t)(x >> 56);
    }
}

static int io_send_packet(void *ctx, const struct hs_addr *to, const void *p,
                          size_t n)
{
    struct transport *t = ctx;
    if (t->closing)
        return HS_ECLOSED;
    if (!t->listening)
        return HS_ESTATE;
    if (n == 0)
        return HS_EINVAL;
    if (t->mode == TRANSPORT_TCP)
        return pkt_send(t, to, p, n);
    return udp_send(t, to, p, n);
}

static int io_stream_open(void *ctx, const struct hs_addr *to, void *owner,
                          struct io_stream **out)
{
    struct transport *t = ctx;
    int rc;
    if (t->closing)
        return HS_ECLOSED;
    if (!t->listening)
        return HS_ESTATE;
    struct io_stream *c = conn_dial(t, to, CONN_STREAM, &rc);
    if (c == NULL)
        return rc;
    c->core = true;
    c->owner = owner;
    *out = c;
    return 0;
}

static int io_stream_write(void *ctx, struct io_stream *c, const void *p,
                           size_t n)
{
    (void)ctx;
    if (c == NULL || !c->core)
        return HS_EINVAL;
    if (c->failed || uv_is_closing((uv_handle_t *)&c->tcp))
        return HS_ECLOSED;
    if (n == 0)
        return 0;
    return conn_write(c, p, n, NULL, 0, 0);
}

static void io_stream_close(void *ctx, struct io_stream *c)
{
    (void)ctx;
    if (c && c->core)
        conn_release(c);
}

/* ===== Binding ===== */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Bind a UDP socket and a listening TCP socket to one address and port.
 * Plain sockets so that a failed attempt closes synchronously. */
static int bind_pair(const struct hs_addr *a, int *ufd, int *tfd,
                     uint16_t *port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char ab[HS_ADDRSTRLEN];
    int family = a->len == 4 ? AF_INET : AF_INET6;
    tr_to_sockaddr(a, family, &ss);
    addr_format(a, ab, sizeof ab);
    for (int i = 0; i < BIND_TRIES; i++) {
        struct hs_addr at = *a;
        int e;
        *ufd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (*ufd < 0)
            return tr_fail(err, errlen, HS_EIO,
                           "cannot create a UDP socket: %s",
                           uv_strerror(-errno));
        if (bind(*ufd, (struct sockaddr *)&ss, salen(&ss)) != 0) {
            e = errno;
            close_fd(ufd);
            return tr_fail(err, errlen, e == EADDRNOTAVAIL ? HS_EADDR : HS_EIO,
                           "cannot bind UDP %s: %s", ab, uv_strerror(-e));
        }
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        struct hs_addr g;
        if (getsockname(*ufd, (struct sockaddr *)&got, &gl) != 0 ||
            tr_from_sockaddr((struct sockaddr *)&got, &g) != 0) {
            e = errno;
            close_fd(ufd);
            return tr_fail(err, errlen, HS_EIO,
                           "cannot read the bound UDP address: %s",
                           uv_strerror(-e));
        }
        at.port = g.port;
        struct sockaddr_storage ts;
        tr_to_sockaddr(&at, family, &ts);
        *tfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (*tfd < 0) {
            e = errno;
            close_fd(ufd);
            return tr_fail(err, errlen, HS_EIO,
                           "cannot create a TCP socket: %s", uv_strerror(-e));
        }
        /* Like Go's listeners: a restart is not blocked by TIME_WAIT. */
        int on = 1;
        setsockopt(*tfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(*tfd, (struct sockaddr *)&ts, salen(&ts)) == 0 &&
            listen(*tfd, BACKLOG) == 0) {
            *port = at.port;
            return 0;
        }
        e = errno;
        close_fd(tfd);
        close_fd(ufd);
        if (a->port == 0 && e == EADDRINUSE)
            continue; /* the port UDP got is taken for TCP: try another */
        addr_format(&at, ab, sizeof ab);
        return tr_fail(err, errlen, e == EADDRNOTAVAIL ? HS_EADDR : HS_EIO,
                       "cannot bind TCP %s: %s", ab, uv_strerror(-e));
    }
    return tr_fail(err, errlen, HS_EIO,
                   "cannot find a port free for both UDP and TCP on %s after "
                   "%d tries",
                   ab, BIND_TRIES);
}

/* ===== Lifecycle ===== */

void tr_maybe_done(struct transport *t)
{
    if (!t->closing || t->handles > 0)
        return;
    void (*cb)(void *) = t->close_cb;
    void *ud = t->close_ud;
    hs_free(t->ips);
    hs_free(t);
    if (cb)
        cb(ud);
}

static void handle_closed(uv_handle_t *h)
{
    struct transport *t = h->data;
    t->handles--;
    tr_maybe_done(t);
}

static void close_all(struct transport *t)
{
    t->closing = true;
    t->nd = NULL;
    uv_handle_t *own[] = {(uv_handle_t *)&t->wake, (uv_handle_t *)&t->sweep,
                          (uv_handle_t *)&t->udp, (uv_handle_t *)&t->listener};
    size_t n = t->sockets ? HS_ARRAY_LEN(own) : 2;
    for (size_t i = 0; i < n; i++)
        if (!uv_is_closing(own[i]))
            uv_close(own[i], handle_closed);
    for (struct io_stream *c = t->conns; c; c = c->next)
        conn_close(c);
}

int transport_new(uv_loop_t *loop, const struct config *cfg,
                  const struct hs_logger *log, struct transport **out,
                  char *err, size_t errlen)
{
    struct hs_addr want;
    if (addr_parse(cfg->bind, 7946, &want) != 0)
        return tr_fail(err, errlen, HS_EADDR,
                       "bind: \"%s\" is not an ip:port address", cfg->bind);
    struct transport *t = hs_calloc(1, sizeof *t);
    if (t == NULL)
        return tr_fail(err, errlen, HS_ENOMEM, "out of memory");
    want = addr_unmap(&want);
    t->loop = loop;
    t->log = log;
    t->mode = cfg->transport;
    t->family = want.len == 4 ? AF_INET : AF_INET6;
    t->tcp_timeout = cfg->tcp_timeout ? cfg->tcp_timeout : 10000;
    t->max_per_ip = cfg->max_inbound_streams_per_ip > 0
                        ? (uint32_t)cfg->max_inbound_streams_per_ip
                        : 32;
    t->linger = HS_MAX(t->tcp_timeout, 1000);
    /* The receive buffer is where packets wait for the loop: memberlist's
     * handoff queue, handoff_queue_depth packets of the largest size. */
    uint64_t depth = (uint64_t)cfg->handoff_queue_depth *
                     (uint64_t)HS_MAX(cfg->udp_buffer_size, 1);
    t->rcvbuf = (int)HS_MIN(depth ? depth : SOCK_BUF, (uint64_t)INT_MAX / 2);
    t->bound = want;
    t->io = (struct io){t,
                        io_now,
                        io_wall,
                        io_wakeup,
                        io_random,
                        io_send_packet,
                        io_stream_open,
                        io_stream_write,
                        io_stream_close};
    /* Initialising these cannot fail on Unix; from here on the handles
     * close asynchronously (transport_close). */
    uv_timer_init(loop, &t->wake);
    uv_timer_init(loop, &t->sweep);
    t->wake.data = t->sweep.data = t;
    t->handles = 2;
    *out = t;
    return 0;
}

int transport_listen(struct transport *t, char *err, size_t errlen)
{
    if (t->closing || t->sockets)
        return tr_fail(err, errlen, HS_ESTATE, "the transport is %s",
                       t->closing ? "closing" : "bound already");
    struct hs_addr want = t->bound;
    int ufd = -1, tfd = -1;
    uint16_t port = 0;
    int rc = bind_pair(&want, &ufd, &tfd, &port, err, errlen);
    if (rc)
        return rc;
    /* Best-effort: Linux caps it at net.core.[rw]mem_max silently. */
    int size = SOCK_BUF;
    setsockopt(ufd, SOL_SOCKET, SO_RCVBUF, &t->rcvbuf, sizeof t->rcvbuf);
    setsockopt(ufd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    t->bound.port = port;
    uv_udp_init(t->loop, &t->udp);
    uv_tcp_init(t->loop, &t->listener);
    t->udp.data = t->listener.data = t;
    t->handles += 2;
    t->sockets = true;

    char ab[HS_ADDRSTRLEN];
    addr_format(&t->bound, ab, sizeof ab);
    int r = uv_udp_open(&t->udp, ufd);
    if (r == 0)
        ufd = -1;
    if (r == 0 && (r = uv_tcp_open(&t->listener, tfd)) == 0)
        tfd = -1;
    if (r == 0)
        r = uv_listen((uv_stream_t *)&t->listener, BACKLOG, tr_on_connection);
    if (r == 0)
        r = uv_udp_recv_start(&t->udp, tr_on_udp_alloc, tr_on_udp_recv);
    if (r == 0)
        r = uv_timer_start(&t->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    if (r != 0) {
        close_fd(&ufd);
        close_fd(&tfd);
        return tr_fail(err, errlen, tr_err(r), "cannot listen on %s: %s", ab,
                       uv_strerror(r));
    }
    /* Maintenance alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&t->sweep);
    t->listening = true;
    /* What the kernel granted for handoff_queue_depth (Linux doubles the
     * value asked for, and caps it at net.core.rmem_max first). */
    int granted = 0;
    if (uv_recv_buffer_size((uv_handle_t *)&t->udp, &granted) != 0)
        granted = 0;
    HS_INFO(t->log, "transport bound: addr=%s mode=%s udp_receive_buffer=%d",
            ab, t->mode == TRANSPORT_TCP ? "tcp" : "udp", granted);
    return 0;
}

const struct io *transport_io(struct transport *t)
{
    return &t->io;
}

void transport_attach(struct transport *t, struct node *nd)
{
    if (!t->closing)
        t->nd = nd;
}

struct hs_addr transport_bound(const struct transport *t)
{
    return t->bound;
}

const struct transport_stats *transport_stats(const struct transport *t)
{
    return &t->stats;
}

void transport_close(struct transport *t, void (*cb)(void *ud), void *ud)
{
    if (t == NULL || t->closing)
        return;
    t->close_cb = cb;
    t->close_ud = ud;
    HS_DEBUG(t->log, "transport closing");
    close_all(t);
}
