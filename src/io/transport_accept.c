/* transport_accept.c: the transport's TCP listener: accepting a
 * connection, counting them per source address, and telling a stream
 * from a packet connection by its first byte. */
#include "io/transport_int.h"

#include <string.h>

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
void tr_ip_release(struct io_stream *c)
{
    if (c->per_ip) {
        c->per_ip = false;
        ip_give(c->t, &c->peer);
    }
}

/* The first bytes of an accepted connection say what it is. */
void tr_classify(struct io_stream *c, const uint8_t *p, size_t n)
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
        tr_ip_release(c);
        if (t->npkt_in > PKT_IN_MAX) {
            t->stats.tcp_refused++;
            HS_DEBUG(t->log,
                     "tcp connection refused: peer=%s reason=too "
                     "many packet connections",
                     ab);
            c->failed = true;
            conn_close(c);
            return;
        }
        HS_DEBUG(t->log, "packet connection accepted: peer=%s", ab);
        pkt_feed(c, p + 1, n - 1);
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

static void reject_closed(uv_handle_t *h)
{
    struct transport *t = h->data;
    hs_free(h);
    t->handles--;
    tr_maybe_done(t);
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
            HS_WARN(t->log,
                    "tcp connection refused: peer=%s reason=%u "
                    "connections from this address already "
                    "(max_inbound_streams_per_ip); more are counted in "
                    "stats (tcp_refused_per_ip), not logged for 10 s",
                    ab, t->max_per_ip);
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

void tr_on_connection(uv_stream_t *server, int status)
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
        tr_from_sockaddr((struct sockaddr *)&ss, &c->peer) != 0) {
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
    conn_read_start(c);
}
