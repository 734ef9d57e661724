/* transport.c: the libuv implementation of io.h (real sockets, real time).
 *
 * One UDP socket and one TCP listener share an address and port. Every
 * TCP connection, whoever opened it, is a struct io_stream on one list:
 *
 *   CONN_STREAM   a memberlist stream the core names (dialled by
 *                 stream_open, or accepted and handed to the node);
 *   CONN_NEW      accepted, first byte not read yet;
 *   CONN_PKT_IN   accepted, first byte 0xE7: packet frames from a peer in
 *                 tcp mode (frames.c reads them);
 *   CONN_PKT_OUT  dialled by send_packet in tcp mode, cached per
 *                 destination and reused until idle.
 *
 * A packet connection starts with FRAMES_MAGIC (0xE7: memberlist types
 * are 0-13 and 244, so one listener tells the two apart), then carries
 * frames `len:u32 big-endian | packet`, 1 <= len <= 65536.
 *
 * An accepted connection must bring its first whole message (a stream's
 * request, a packet connection's first frame) within tcp_timeout, and one
 * address holds at most max_inbound_streams_per_ip connections that are
 * not packet connections, so a few slow or silent clients cannot take
 * every slot from the others.
 *
 * Memory of a connection is freed only in its close callback, so the
 * struct stays valid across any callback into the node, even one that
 * closes the stream or the whole transport. A connection the core named
 * is closed only by stream_close (or transport_close): the core may name
 * it until then. Closing is graceful: queued writes, then a FIN
 * (uv_shutdown), then reading on until the peer's FIN so that unread
 * bytes do not turn our close into a reset; a linger deadline bounds it. */
#include "io/transport.h"

#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/frames.h"
#include "core/node.h"

#define UDP_BUF 65536
#define PKT_QUEUE_MAX (1u << 20)    /* bytes queued per packet connection */
#define UDP_QUEUE_MAX (4u << 20)    /* bytes queued behind a full socket */
#define PKT_OUT_IDLE 60000          /* ms: close an unused cached conn */
#define PKT_IN_IDLE 120000          /* ms: longer, so the sender closes */
#define NEW_MAX 256                 /* accepted, first byte not read yet */
#define PKT_IN_MAX 1024             /* inbound packet connections */
#define SOCK_BUF (2 << 20)          /* memberlist asks for 2 MiB */
#define BIND_TRIES 10
#define SWEEP_MS 1000
#define BACKLOG 511

enum { CONN_STREAM, CONN_NEW, CONN_PKT_IN, CONN_PKT_OUT };
enum { ST_CONNECTING, ST_OPEN, ST_DRAINING };

struct io_stream {
    struct io_stream *next, *prev;
    struct transport *t;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    int kind, state;
    bool core;          /* the core names it (until stream_close) */
    bool ended;         /* node_io_stream_end or a failed connect sent */
    bool failed;        /* a read or write error: no graceful close */
    bool reading, rdone, wdone;
    bool per_ip;        /* counted in the transport's per-address table */
    void *owner;
    struct hs_addr peer;
    /* ms: opened, last packet sent or received, last write done, end
     * of the linger while draining. */
    uint64_t since, last, progress, deadline;
    /* Bytes written before the connection is up. */
    uint8_t *pend;
    size_t npend, cappend;
    unsigned pend_frames;
    size_t queued;      /* bytes handed to uv_write, not yet written */
    struct frames fr;   /* the frame being read (CONN_PKT_IN) */
};

/* A write in flight, with a copy of its bytes after it. */
struct wreq {
    uv_write_t req;
    struct io_stream *c;
    size_t n;
    unsigned frames;
};

/* A datagram queued behind a busy socket, its bytes after it. */
struct sreq {
    uv_udp_send_t req;
    struct transport *t;
};

/* Inbound connections by source address: a slot per address with any
 * (open addressing, linear probing, backward-shift deletion). */
struct ipcount {
    uint8_t ip[16];
    uint8_t len;
    uint32_t n;         /* 0: an empty slot */
};

struct transport {
    uv_loop_t *loop;
    const struct hs_logger *log;
    struct node *nd;
    struct io io;
    int mode;
    int family;
    uint64_t tcp_timeout;
    uint64_t linger;
    struct hs_addr bound;
    uv_udp_t udp;
    uv_tcp_t listener;
    uv_timer_t wake;
    uv_timer_t sweep;
    struct io_stream *conns;
    int handles;        /* open uv handles, the transport's included */
    int nnew, npkt_in;  /* connections of those kinds */
    struct ipcount *ips;
    size_t nips, capips;
    uint32_t max_per_ip;
    uint64_t warned_per_ip; /* when the last per-address refusal was a
                             * WARN */
    bool closing;
    void (*close_cb)(void *ud);
    void *close_ud;
    struct transport_stats stats;
    uint64_t warned;    /* when the last send failure was a WARN */
    uint8_t rbuf[FRAMES_MAX];  /* TCP reads: each is consumed at once */
    uint8_t ubuf[UDP_BUF];
};

static const uint8_t v4prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* ===== Helpers ===== */

static int xerr(int uverr)
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

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The sockaddr for `a` on a socket of `family` (0: the address's own).
 * An IPv4 socket takes IPv4-mapped addresses as IPv4; an IPv6 one takes
 * IPv4 as mapped. */
static int to_sockaddr(const struct hs_addr *a, int family,
                       struct sockaddr_storage *ss)
{
    struct hs_addr u = addr_unmap(a);
    memset(ss, 0, sizeof *ss);
    if (u.len != 4 && u.len != 16)
        return HS_EADDR;
    if (family == 0)
        family = u.len == 4 ? AF_INET : AF_INET6;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (void *)ss;
        if (u.len != 4)
            return HS_EADDR;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(u.port);
        memcpy(&s4->sin_addr, u.ip, 4);
        return 0;
    }
    struct sockaddr_in6 *s6 = (void *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(u.port);
    if (u.len == 4) {
        memcpy(s6->sin6_addr.s6_addr, v4prefix, 12);
        memcpy(s6->sin6_addr.s6_addr + 12, u.ip, 4);
    } else {
        memcpy(s6->sin6_addr.s6_addr, u.ip, 16);
    }
    return 0;
}

/* IPv4-mapped peers come out as plain IPv4. */
static int from_sockaddr(const struct sockaddr *sa, struct hs_addr *out)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)sa;
        addr_from_raw((const uint8_t *)&s4->sin_addr, 4, ntohs(s4->sin_port),
                      out);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        struct hs_addr a;
        addr_from_raw(s6->sin6_addr.s6_addr, 16, ntohs(s6->sin6_port), &a);
        *out = addr_unmap(&a);
        return 0;
    }
    return HS_EADDR;
}

static socklen_t salen(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6);
}

/* One monotonic clock for now() and the wake timer: the loop's. */
static uint64_t tnow(struct transport *t)
{
    uv_update_time(t->loop);
    return uv_now(t->loop);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The node may be called: attached, and the transport not closing. */
static struct node *live_node(const struct transport *t)
{
    return t->closing ? NULL : t->nd;
}

static void maybe_done(struct transport *t);

/* ===== Inbound connections per address ===== */

static size_t ip_hash(const struct hs_addr *a)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < a->len; i++) {
        h ^= a->ip[i];
        h *= 16777619u;
    }
    return h;
}

/* The slot of a's address: its own, or the empty one where it goes. */
static struct ipcount *ip_slot(struct transport *t, const struct hs_addr *a)
{
    size_t mask = t->capips - 1;
    for (size_t i = ip_hash(a) & mask;; i = (i + 1) & mask) {
        struct ipcount *e = &t->ips[i];
        if (e->n == 0 ||
            (e->len == a->len && memcmp(e->ip, a->ip, a->len) == 0))
            return e;
    }
}

/* Count one more connection from a's address, unless it has max_per_ip
 * already (HS_EBUSY). The table is at most half full. */
static int ip_take(struct transport *t, const struct hs_addr *a)
{
    if (t->capips == 0 || (t->nips + 1) * 2 > t->capips) {
        size_t cap = t->capips ? t->capips * 2 : 64;
        struct ipcount *ips = hs_calloc(cap, sizeof *ips), *old = t->ips;
        if (ips == NULL)
            return HS_ENOMEM;
        size_t oldcap = t->capips;
        t->ips = ips;
        t->capips = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].n) {
                struct hs_addr k = {old[i].len, {0}, 0};
                memcpy(k.ip, old[i].ip, old[i].len);
                *ip_slot(t, &k) = old[i];
            }
        hs_free(old);
    }
    struct ipcount *e = ip_slot(t, a);
    if (e->n >= t->max_per_ip)
        return HS_EBUSY;
    if (e->n == 0) {
        memcpy(e->ip, a->ip, a->len);
        e->len = a->len;
        t->nips++;
    }
    e->n++;
    return 0;
}

static void ip_give(struct transport *t, const struct hs_addr *a)
{
    struct ipcount *e = ip_slot(t, a);
    if (e->n == 0 || --e->n > 0)
        return;
    /* Emptied: shift back the entries after it that may probe past. */
    t->nips--;
    size_t mask = t->capips - 1, i = (size_t)(e - t->ips);
    for (size_t j = (i + 1) & mask; t->ips[j].n; j = (j + 1) & mask) {
        struct ipcount x = t->ips[j];
        t->ips[j].n = 0;
        struct hs_addr k = {x.len, {0}, 0};
        memcpy(k.ip, x.ip, x.len);
        *ip_slot(t, &k) = x;
    }
}

/* The connection no longer counts against its address. */
static void ip_release(struct io_stream *c)
{
    if (c->per_ip) {
        c->per_ip = false;
        ip_give(c->t, &c->peer);
    }
}

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
    ip_release(c);
    hs_free(c->pend);
    frames_free(&c->fr);
    hs_free(c);
    t->handles--;
    maybe_done(t);
}

static void conn_close(struct io_stream *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static struct io_stream *conn_new(struct transport *t, int kind)
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

static void read_start(struct io_stream *c)
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
static void conn_release(struct io_stream *c)
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
    read_start(c);
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
        if (status != UV_ECANCELED &&
            !uv_is_closing((uv_handle_t *)&c->tcp)) {
            char ab[HS_ADDRSTRLEN];
            HS_DEBUG(t->log, "tcp write failed: peer=%s error=%s",
                     addr_format(&c->peer, ab, sizeof ab),
                     uv_strerror(status));
            c->failed = true;
            struct node *nd = live_node(t);
            if (c->kind == CONN_STREAM && c->core && !c->ended) {
                c->ended = true;
                if (nd)
                    node_io_stream_end(nd, c->owner, xerr(status));
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
        return xerr(r);
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
        return xerr(r);
    }
    c->queued += left;
    return 0;
}

static int pend_append(struct io_stream *c, const void *p, size_t n)
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
static int conn_write(struct io_stream *c, const void *a, size_t an,
                      const void *b, size_t bn, unsigned frames)
{
    if (c->state == ST_CONNECTING) {
        size_t was = c->npend;
        int rc = pend_append(c, a, an);
        if (rc == 0 && bn)
            rc = pend_append(c, b, bn);
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
            node_io_stream_connected(nd, c->owner, xerr(status));
        else if (!c->core)
            conn_close(c);
        return;
    }
    HS_DEBUG(t->log, "tcp connected: peer=%s kind=%s", ab,
             c->kind == CONN_PKT_OUT ? "packets" : "stream");
    c->state = ST_OPEN;
    c->progress = tnow(t);
    uv_tcp_nodelay(&c->tcp, 1);
    read_start(c);
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

static struct io_stream *conn_dial(struct transport *t,
                                   const struct hs_addr *to, int kind,
                                   int *rc)
{
    struct sockaddr_storage ss;
    struct hs_addr u = addr_unmap(to);
    *rc = to_sockaddr(&u, 0, &ss);
    if (*rc)
        return NULL;
    struct io_stream *c = conn_new(t, kind);
    if (c == NULL) {
        *rc = HS_ENOMEM;
        return NULL;
    }
    c->peer = u;
    c->state = ST_CONNECTING;
    int r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss,
                           on_connect);
    if (r != 0) {
        char ab[HS_ADDRSTRLEN];
        HS_DEBUG(t->log, "tcp connect failed: peer=%s error=%s",
                 addr_format(&u, ab, sizeof ab), uv_strerror(r));
        conn_close(c);
        *rc = xerr(r);
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

static void frame_error(struct io_stream *c, const char *why)
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
static void frames(struct io_stream *c, const uint8_t *p, size_t n)
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
        frame_error(c, why);
    }
}

/* The first bytes of an accepted connection say what it is. */
static void classify(struct io_stream *c, const uint8_t *p, size_t n)
{
    struct transport *t = c->t;
    char ab[HS_ADDRSTRLEN];
    addr_format(&c->peer, ab, sizeof ab);
    t->nnew--;
    if (frames_classify(p[0]) == FRAMES_PACKETS) {
        c->kind = CONN_PKT_IN;
        t->npkt_in++;
        /* A peer in tcp mode keeps one such connection to us: they are
         * bounded by PKT_IN_MAX and by their first frame's deadline,
         * not per address (a cluster on one host shares its address). */
        ip_release(c);
        if (t->npkt_in > PKT_IN_MAX) {
            t->stats.tcp_refused++;
            HS_DEBUG(t->log, "tcp connection refused: peer=%s reason=too "
                     "many packet connections", ab);
            c->failed = true;
            conn_close(c);
            return;
        }
        HS_DEBUG(t->log, "packet connection accepted: peer=%s", ab);
        frames(c, p + 1, n - 1);
        return;
    }
    c->kind = CONN_STREAM;
    struct node *nd = live_node(t);
    if (nd == NULL) {
        conn_close(c);
        return;
    }
    HS_DEBUG(t->log, "stream accepted: peer=%s", ab);
    c->core = true;
    uint64_t now = tnow(t);
    void *owner = node_io_stream_accepted(nd, c, &c->peer, now - c->since);
    if (owner == NULL) {
        if (c->core) /* the core should have closed it */
            conn_release(c);
        return;
    }
    if (!c->core)
        return;
    c->owner = owner;
    nd = live_node(t);
    if (nd)
        node_io_stream_data(nd, owner, p, n);
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
            node_io_stream_end(nd, c->owner, err == UV_EOF ? 0 : xerr(err));
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
        classify(c, p, n);
        return;
    case CONN_PKT_IN:
        frames(c, p, n);
        return;
    case CONN_PKT_OUT:
        frame_error(c, "data on an outbound packet connection");
        return;
    default: {
        struct node *nd = live_node(t);
        if (c->core && !c->ended && nd)
            node_io_stream_data(nd, c->owner, p, n);
        return;
    }
    }
}

static void reject_closed(uv_handle_t *h)
{
    struct transport *t = h->data;
    hs_free(h);
    t->handles--;
    maybe_done(t);
}

/* Take a connection off the backlog and close it: libuv stops listening
 * until a pending connection is accepted. */
static void reject(struct transport *t, uv_stream_t *server)
{
    uv_tcp_t *h = hs_malloc(sizeof *h);
    if (h == NULL || uv_tcp_init(t->loop, h) != 0) {
        hs_free(h);
        return;
    }
    h->data = t;
    t->handles++;
    uv_accept(server, (uv_stream_t *)h);
    uv_close((uv_handle_t *)h, reject_closed);
}

/* Refused for its address's count (or memory for the count): counted,
 * and a WARN at most every 10 s. */
static void refuse_per_ip(struct transport *t, struct io_stream *c, int rc)
{
    char ab[HS_ADDRSTRLEN];
    uint64_t now = tnow(t);
    t->stats.tcp_refused++;
    addr_ip_format(&c->peer, ab, sizeof ab);
    if (rc == HS_EBUSY) {
        t->stats.tcp_refused_per_ip++;
        if (t->warned_per_ip == 0 || now - t->warned_per_ip >= 10000) {
            t->warned_per_ip = now;
            HS_WARN(t->log, "tcp connection refused: peer=%s reason=%u "
                    "connections from this address already "
                    "(max_inbound_streams_per_ip); more are counted in "
                    "stats (tcp_refused_per_ip), not logged for 10 s", ab,
                    t->max_per_ip);
        } else {
            HS_DEBUG(t->log, "tcp connection refused: peer=%s reason=%s", ab,
                     "max_inbound_streams_per_ip");
        }
    } else {
        HS_WARN(t->log, "out of memory accepting a tcp connection");
    }
    c->failed = true;
    conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    if (status < 0) {
        HS_WARN(t->log, "tcp accept failed: %s", uv_strerror(status));
        return;
    }
    struct io_stream *c = conn_new(t, CONN_NEW);
    if (c == NULL) {
        HS_WARN(t->log, "out of memory accepting a tcp connection");
        reject(t, server);
        return;
    }
    c->state = ST_OPEN;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    t->stats.tcp_accepts++;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
        from_sockaddr((struct sockaddr *)&ss, &c->peer) != 0) {
        conn_close(c);
        return;
    }
    if (t->nnew > NEW_MAX) {
        char ab[HS_ADDRSTRLEN];
        t->stats.tcp_refused++;
        HS_DEBUG(t->log, "tcp connection refused: peer=%s reason=%s",
                 addr_format(&c->peer, ab, sizeof ab),
                 "too many connections waiting");
        c->failed = true;
        conn_close(c);
        return;
    }
    int rc = ip_take(t, &c->peer);
    if (rc) {
        refuse_per_ip(t, c, rc);
        return;
    }
    c->per_ip = true;
    uv_tcp_nodelay(&c->tcp, 1);
    read_start(c);
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
                HS_DEBUG(t->log, "tcp connection dropped: peer=%s "
                         "reason=silent", addr_format(&c->peer, ab, sizeof ab));
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
                HS_DEBUG(t->log, "packet connection dropped: peer=%s "
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

/* ===== UDP ===== */

static void on_udp_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct transport *t = h->data;
    (void)size;
    *buf = uv_buf_init((char *)t->ubuf, sizeof t->ubuf);
}

static void on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
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
    if (sa == NULL || from_sockaddr(sa, &from) != 0)
        return;
    char ab[HS_ADDRSTRLEN];
    if (flags & UV_UDP_PARTIAL) {
        t->stats.udp_recv_errors++;
        HS_DEBUG(t->log, "dropped packet: from=%s reason=larger than %d "
                 "bytes", addr_format(&from, ab, sizeof ab), UDP_BUF);
        return;
    }
    if (nread == 0)
        return;
    struct node *nd = live_node(t);
    if (nd)
        node_io_packet(nd, &from, (const uint8_t *)buf->base,
                       (size_t)nread);
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
        HS_WARN(t->log, "udp send failed: to=%s error=%s", ab,
                uv_strerror(r));
    } else {
        HS_DEBUG(t->log, "udp send failed: to=%s error=%s", ab,
                 uv_strerror(r));
    }
    return xerr(r);
}

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    struct sreq *s = req->data;
    if (status < 0 && status != UV_ECANCELED)
        send_failed(s->t, NULL, status);
    hs_free(s);
}

static int udp_send(struct transport *t, const struct hs_addr *to,
                    const void *p, size_t n)
{
    struct sockaddr_storage ss;
    if (n > 65507 || to_sockaddr(to, t->family, &ss) != 0) {
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

/* ===== Packets over TCP (transport = tcp) ===== */

static struct io_stream *pkt_conn(struct transport *t,
                                  const struct hs_addr *to)
{
    for (struct io_stream *c = t->conns; c; c = c->next)
        if (c->kind == CONN_PKT_OUT && c->state != ST_DRAINING &&
            !c->failed && !uv_is_closing((uv_handle_t *)&c->tcp) &&
            addr_eq(&c->peer, to))
            return c;
    return NULL;
}

static int pkt_send(struct transport *t, const struct hs_addr *to,
                    const void *p, size_t n)
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
        rc = pend_append(c, &magic, 1);
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

static int io_send_packet(void *ctx, const struct hs_addr *to,
                          const void *p, size_t n)
{
    struct transport *t = ctx;
    if (t->closing)
        return HS_ECLOSED;
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
    to_sockaddr(a, family, &ss);
    addr_format(a, ab, sizeof ab);
    for (int i = 0; i < BIND_TRIES; i++) {
        struct hs_addr at = *a;
        int e;
        *ufd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (*ufd < 0)
            return fail(err, errlen, HS_EIO, "cannot create a UDP socket: %s",
                        uv_strerror(-errno));
        if (bind(*ufd, (struct sockaddr *)&ss, salen(&ss)) != 0) {
            e = errno;
            close_fd(ufd);
            return fail(err, errlen,
                        e == EADDRNOTAVAIL ? HS_EADDR : HS_EIO,
                        "cannot bind UDP %s: %s", ab, uv_strerror(-e));
        }
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        struct hs_addr g;
        if (getsockname(*ufd, (struct sockaddr *)&got, &gl) != 0 ||
            from_sockaddr((struct sockaddr *)&got, &g) != 0) {
            e = errno;
            close_fd(ufd);
            return fail(err, errlen, HS_EIO,
                        "cannot read the bound UDP address: %s",
                        uv_strerror(-e));
        }
        at.port = g.port;
        struct sockaddr_storage ts;
        to_sockaddr(&at, family, &ts);
        *tfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (*tfd < 0) {
            e = errno;
            close_fd(ufd);
            return fail(err, errlen, HS_EIO,
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
        return fail(err, errlen, e == EADDRNOTAVAIL ? HS_EADDR : HS_EIO,
                    "cannot bind TCP %s: %s", ab, uv_strerror(-e));
    }
    return fail(err, errlen, HS_EIO,
                "cannot find a port free for both UDP and TCP on %s after "
                "%d tries", ab, BIND_TRIES);
}

/* ===== Lifecycle ===== */

static void maybe_done(struct transport *t)
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
    maybe_done(t);
}

static void close_all(struct transport *t)
{
    t->closing = true;
    t->nd = NULL;
    uv_handle_t *own[] = {(uv_handle_t *)&t->udp,
                          (uv_handle_t *)&t->listener,
                          (uv_handle_t *)&t->wake,
                          (uv_handle_t *)&t->sweep};
    for (size_t i = 0; i < HS_ARRAY_LEN(own); i++)
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
        return fail(err, errlen, HS_EADDR,
                    "bind: \"%s\" is not an ip:port address", cfg->bind);
    want = addr_unmap(&want);
    int ufd = -1, tfd = -1;
    uint16_t port = 0;
    int rc = bind_pair(&want, &ufd, &tfd, &port, err, errlen);
    if (rc)
        return rc;
    /* Best-effort: Linux caps it at net.core.[rw]mem_max silently. */
    int size = SOCK_BUF;
    setsockopt(ufd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(ufd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);

    struct transport *t = hs_calloc(1, sizeof *t);
    if (t == NULL) {
        close_fd(&ufd);
        close_fd(&tfd);
        return fail(err, errlen, HS_ENOMEM, "out of memory");
    }
    t->loop = loop;
    t->log = log;
    t->mode = cfg->transport;
    t->family = want.len == 4 ? AF_INET : AF_INET6;
    t->tcp_timeout = cfg->tcp_timeout ? cfg->tcp_timeout : 10000;
    t->max_per_ip = cfg->max_inbound_streams_per_ip > 0
                        ? (uint32_t)cfg->max_inbound_streams_per_ip
                        : 32;
    t->linger = HS_MAX(t->tcp_timeout, 1000);
    t->bound = want;
    t->bound.port = port;
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
     * close asynchronously, and so does a failure. */
    uv_udp_init(loop, &t->udp);
    uv_tcp_init(loop, &t->listener);
    uv_timer_init(loop, &t->wake);
    uv_timer_init(loop, &t->sweep);
    t->udp.data = t->listener.data = t->wake.data = t->sweep.data = t;
    t->handles = 4;

    char ab[HS_ADDRSTRLEN];
    addr_format(&t->bound, ab, sizeof ab);
    int r = uv_udp_open(&t->udp, ufd);
    if (r == 0)
        ufd = -1;
    if (r == 0 && (r = uv_tcp_open(&t->listener, tfd)) == 0)
        tfd = -1;
    if (r == 0)
        r = uv_listen((uv_stream_t *)&t->listener, BACKLOG, on_connection);
    if (r == 0)
        r = uv_udp_recv_start(&t->udp, on_udp_alloc, on_udp_recv);
    if (r == 0)
        r = uv_timer_start(&t->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    if (r != 0) {
        close_fd(&ufd);
        close_fd(&tfd);
        close_all(t);
        return fail(err, errlen, xerr(r), "cannot listen on %s: %s", ab,
                    uv_strerror(r));
    }
    /* Maintenance alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&t->sweep);
    HS_INFO(log, "transport bound: addr=%s mode=%s", ab,
            t->mode == TRANSPORT_TCP ? "tcp" : "udp");
    *out = t;
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

/* ===== Addresses ===== */

static bool link_local6(const uint8_t *ip)
{
    return ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80;
}

/* The first non-loopback address of the host: IPv4, or IPv6 when bound
 * to ::. */
static int host_address(const struct transport *t, struct hs_addr *out)
{
    uv_interface_address_t *ifs;
    int count;
    if (uv_interface_addresses(&ifs, &count) != 0)
        return HS_ENOTFOUND;
    int rc = HS_ENOTFOUND;
    for (int pass = 0; pass < 2 && rc; pass++) {
        int want = pass == 0 ? AF_INET : AF_INET6;
        if (want == AF_INET6 && t->family != AF_INET6)
            break;
        for (int i = 0; i < count && rc; i++) {
            const struct sockaddr *sa =
                (const struct sockaddr *)&ifs[i].address;
            if (ifs[i].is_internal || sa->sa_family != want)
                continue;
            struct hs_addr a;
            if (from_sockaddr(sa, &a) || addr_is_loopback(&a) ||
                addr_is_unspecified(&a) ||
                (a.len == 16 && link_local6(a.ip)))
                continue;
            *out = a;
            rc = 0;
        }
    }
    uv_free_interface_addresses(ifs, count);
    return rc;
}

int transport_advertise(struct transport *t, const struct config *cfg,
                        struct hs_addr *out, char *err, size_t errlen)
{
    uint16_t port = t->bound.port;
    char ab[HS_ADDRSTRLEN];
    if (cfg->advertise[0]) {
        struct hs_addr a;
        if (addr_parse(cfg->advertise, port, &a) == 0) {
            if (addr_is_unspecified(&a))
                return fail(err, errlen, HS_EADDR,
                            "advertise: \"%s\" is not an address others "
                            "can reach", cfg->advertise);
            *out = addr_unmap(&a);
            return 0;
        }
        char host[CONFIG_STR_MAX];
        uint16_t p;
        if (addr_split(cfg->advertise, host, sizeof host, &p, port) != 0)
            return fail(err, errlen, HS_EADDR,
                        "advertise: \"%s\" is not host:port",
                        cfg->advertise);
        /* Start-up only: blocking here is fine. */
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(host, NULL, &hints, &res);
        if (g != 0)
            return fail(err, errlen, HS_ENOTFOUND,
                        "cannot resolve advertise host \"%s\": %s", host,
                        gai_strerror(g));
        int rc = HS_ENOTFOUND;
        for (int pass = 0; pass < 2 && rc; pass++)
            for (struct addrinfo *ai = res; ai && rc; ai = ai->ai_next)
                if ((pass == 0) == (ai->ai_family == AF_INET) &&
                    from_sockaddr(ai->ai_addr, out) == 0) {
                    out->port = p;
                    rc = 0;
                }
        freeaddrinfo(res);
        if (rc)
            return fail(err, errlen, rc,
                        "advertise host \"%s\" has no IP address", host);
        return 0;
    }
    if (!addr_is_unspecified(&t->bound)) {
        *out = t->bound;
        return 0;
    }
    if (host_address(t, out) != 0)
        return fail(err, errlen, HS_ENOTFOUND,
                    "bound to %s and no non-loopback address was found: "
                    "set advertise",
                    addr_format(&t->bound, ab, sizeof ab));
    out->port = port;
    return 0;
}

struct resolve {
    uv_getaddrinfo_t req;
    transport_resolve_cb cb;
    void *ud;
    uint16_t port;
};

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res)
{
    struct resolve *r = req->data;
    struct hs_addr *addrs = NULL;
    size_t n = 0, cap = 0;
    int rc = xerr(status);
    if (status == UV_EAI_NONAME || status == UV_EAI_NODATA)
        rc = HS_ENOTFOUND;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        cap++;
    if (rc == 0 && cap) {
        addrs = hs_calloc(cap, sizeof *addrs);
        if (addrs == NULL)
            rc = HS_ENOMEM;
    }
    /* IPv4 first, then IPv6; each address once. */
    for (int pass = 0; pass < 2 && addrs; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            struct hs_addr a;
            if ((pass == 0) != (ai->ai_family == AF_INET) ||
                from_sockaddr(ai->ai_addr, &a) != 0)
                continue;
            a.port = r->port;
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = addr_eq(&addrs[i], &a);
            if (!dup)
                addrs[n++] = a;
        }
    }
    if (rc == 0 && n == 0)
        rc = HS_ENOTFOUND;
    if (res)
        uv_freeaddrinfo(res);
    transport_resolve_cb cb = r->cb;
    void *ud = r->ud;
    hs_free(r);
    cb(ud, rc, rc ? NULL : addrs, rc ? 0 : n);
    hs_free(addrs);
}

int transport_resolve(uv_loop_t *loop, const char *hostport,
                      uint16_t default_port, transport_resolve_cb cb,
                      void *ud)
{
    char host[CONFIG_STR_MAX];
    uint16_t port;
    struct hs_addr a;
    if (hostport == NULL || cb == NULL ||
        addr_split(hostport, host, sizeof host, &port, default_port) != 0)
        return HS_EADDR;
    struct resolve *r = hs_calloc(1, sizeof *r);
    if (r == NULL)
        return HS_ENOMEM;
    r->cb = cb;
    r->ud = ud;
    r->port = port;
    r->req.data = r;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* A numeric address never asks DNS; the callback still comes from
     * the loop, as for names. */
    if (addr_parse(hostport, default_port, &a) == 0)
        hints.ai_flags = AI_NUMERICHOST;
    int rc = uv_getaddrinfo(loop, &r->req, on_resolved, host, NULL, &hints);
    if (rc != 0) {
        hs_free(r);
        return xerr(rc);
    }
    return 0;
}
