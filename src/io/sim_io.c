/* sim_io.c: the simulation's implementation of io.h: each node's packets
 * and streams become events, and events are delivered to the nodes; a
 * node's listen backlog holds connections it cannot take yet. */
#include "io/sim_int.h"

#include <string.h>

/* ===== Streams ===== */

void half_unref(struct half *h)
{
    if (--h->refs == 0) {
        if (h->peer)
            h->peer->peer = NULL;
        hs_free(h);
    }
}

static struct half *half_new(struct sim *s, struct snode *sn, void *owner)
{
    struct half *h = hs_calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->sim = s;
    h->node = sn->idx;
    h->epoch = sn->epoch;
    h->owner = owner;
    h->refs = 1; /* the core's reference, dropped by stream_close */
    return h;
}

/* Queue an event for a half (it keeps the half alive). */
static void half_event(struct sim *s, struct half *h, int type, uint64_t at,
                       int status, const void *data, size_t len)
{
    if (h->node >= s->nnodes)
        return; /* a fake peer: nothing reads it */
    struct snode *to = s->nodes[h->node];
    struct event *e = ev_new(type, at, to, data, len);
    if (e == NULL)
        return;
    e->epoch = h->epoch;
    e->h = h;
    e->status = status;
    h->refs++;
    ev_push(s, e);
}

/* ===== The listen backlog =====
 * A node that handles max_inbound_streams streams already leaves new
 * connections waiting, as a kernel's accept queue does; each stream it
 * closes lets the oldest waiting one in. */

#define SYN_RTO_MS 1000
#define SYN_RETRIES 6

static bool backlog_add(struct snode *sn, struct event *e)
{
    if (sn->nbacklog >= sn->sim->backlog)
        return false;
    if (sn->head + sn->nbacklog == sn->capbacklog) {
        if (sn->head > 0) { /* slide down before growing */
            memmove(sn->backlog, sn->backlog + sn->head,
                    sn->nbacklog * sizeof *sn->backlog);
            sn->head = 0;
        } else {
            size_t cap = sn->capbacklog ? sn->capbacklog * 2 : 16;
            struct event **b = hs_realloc(sn->backlog, cap * sizeof *b);
            if (b == NULL)
                return false;
            sn->backlog = b;
            sn->capbacklog = cap;
        }
    }
    sn->backlog[sn->head + sn->nbacklog++] = e;
    return true;
}

static void backlog_next(struct sim *s, struct snode *sn)
{
    if (sn->nbacklog == 0 || sn->nd == NULL || node_inbound_full(sn->nd))
        return;
    struct event *e = sn->backlog[sn->head++];
    if (--sn->nbacklog == 0)
        sn->head = 0;
    e->at = s->now;
    ev_push(s, e); /* delivered in turn, as if it had just arrived */
}

/* The node went away: the waiting connections are reset. */
void backlog_reset(struct sim *s, struct snode *sn)
{
    for (size_t i = 0; i < sn->nbacklog; i++) {
        struct event *e = sn->backlog[sn->head + i];
        if (!e->h->closed)
            half_event(s, e->h, EV_CONNECTED, s->now + 1, HS_EREFUSED, NULL, 0);
        ev_drop(e);
    }
    sn->head = sn->nbacklog = 0;
}

/* ===== io implementation ===== */

static uint64_t io_now(void *ctx)
{
    return ((struct snode *)ctx)->sim->now;
}

/* Simulated wall clocks start at a fixed date (2026-01-01), plus the
 * node's clock offset. */
#define SIM_EPOCH_MS 1767225600000ull

static uint64_t io_wall(void *ctx)
{
    struct snode *sn = ctx;
    return (uint64_t)((int64_t)(SIM_EPOCH_MS + sn->sim->now) +
                      sn->clock_offset);
}

static void io_wakeup(void *ctx, uint64_t at)
{
    struct snode *sn = ctx;
    sn->wake_gen++;
    if (at == UINT64_MAX)
        return;
    struct sim *s = sn->sim;
    struct event *e = ev_new(EV_WAKE, at < s->now ? s->now : at, sn, NULL, 0);
    if (e) {
        e->gen = sn->wake_gen;
        ev_push(s, e);
    }
}

static void io_random(void *ctx, void *p, size_t n)
{
    struct sim *s = ((struct snode *)ctx)->sim;
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(rnd(s) >> 32);
}

static void send_copy(struct sim *s, struct snode *sn, struct snode *dst,
                      const struct sim_link *l, const void *p, size_t n)
{
    uint64_t at = net_arrival(s, sn->idx, dst->idx, l, n) + dst->slow_ms;
    if (l->reorder > 0 && rnd01(s) < l->reorder) {
        at += (uint64_t)(l->reorder_ms > 0 ? l->reorder_ms + 0.5 : 0);
        COUNT(sn, reordered);
    }
    struct event *e = ev_new(EV_PACKET, at, dst, p, n);
    if (e) {
        e->from = sn->addr;
        ev_push(s, e);
    }
}

static int io_send(void *ctx, const struct hs_addr *to, const void *p, size_t n)
{
    struct snode *sn = ctx;
    struct sim *s = sn->sim;
    COUNT(sn, packets);
    s->stats.bytes += n;
    sn->stats.bytes += n;
    struct snode *dst = net_by_addr(s, to);
    if (dst == NULL)
        return 0; /* nobody there: UDP does not tell */
    if (!net_reachable(s, sn, dst, false)) {
        COUNT(sn, blocked);
        return 0;
    }
    const struct sim_link *l = net_link_of(s, sn->idx, dst->idx);
    if (l->loss > 0 && rnd01(s) < l->loss) {
        COUNT(sn, lost);
        return 0;
    }
    send_copy(s, sn, dst, l, p, n);
    if (l->duplicate > 0 && rnd01(s) < l->duplicate) {
        COUNT(sn, duplicated);
        send_copy(s, sn, dst, l, p, n);
    }
    return 0;
}

static int io_stream_open(void *ctx, const struct hs_addr *to, void *owner,
                          struct io_stream **out)
{
    struct snode *sn = ctx;
    struct sim *s = sn->sim;
    struct half *h = half_new(s, sn, owner);
    if (h == NULL)
        return HS_ENOMEM;
    COUNT(sn, streams);
    struct snode *dst = net_by_addr(s, to);
    uint64_t at = dst ? net_stream_arrival(s, sn->idx, dst->idx, 0)
                      : s->now + net_latency(s, &s->link);
    if (dst == NULL || dst->nd == NULL) {
        /* Nobody listens: the connection is refused. */
        half_event(s, h, EV_CONNECTED, at, HS_EREFUSED, NULL, 0);
    } else if (net_reachable(s, sn, dst, true) &&
               net_reachable(s, dst, sn, true)) {
        struct event *e = ev_new(EV_CONNECT, at, dst, NULL, 0);
        if (e) {
            e->from = sn->addr;
            e->h = h;
            h->refs++;
            ev_push(s, e);
        }
    }
    /* Unreachable: the SYN is lost; the core's deadline fires. */
    *out = (struct io_stream *)h;
    return 0;
}

static int io_stream_write(void *ctx, struct io_stream *st, const void *p,
                           size_t n)
{
    struct half *h = (struct half *)st;
    struct sim *s = ((struct snode *)ctx)->sim;
    if (h->peer == NULL || h->peer->closed)
        return 0;
    uint64_t at = net_stream_arrival(s, h->node, h->peer->node, n);
    if (at < h->last)
        at = h->last; /* TCP keeps order */
    h->last = at;
    half_event(s, h->peer, EV_DATA, at, 0, p, n);
    return 0;
}

static void io_stream_close(void *ctx, struct io_stream *st)
{
    struct snode *sn = ctx;
    struct half *h = (struct half *)st;
    struct sim *s = sn->sim;
    h->closed = true;
    if (h->peer && !h->peer->closed) {
        uint64_t at = net_stream_arrival(s, h->node, h->peer->node, 0);
        if (at < h->last)
            at = h->last;
        half_event(s, h->peer, EV_END, at, 0, NULL, 0);
    }
    half_unref(h);
    backlog_next(s, sn);
}

struct io io_of(struct snode *sn)
{
    return (struct io){
        sn,      io_now,         io_wall,         io_wakeup,      io_random,
        io_send, io_stream_open, io_stream_write, io_stream_close};
}
/* Returns true when the event was kept (put in a backlog). */
bool io_deliver(struct sim *s, struct event *e)
{
    struct snode *sn = s->nodes[e->node];
    struct node *nd = sn->nd;
    bool live = nd != NULL && e->epoch == sn->epoch;
    switch (e->type) {
    case EV_WAKE:
        if (live && e->gen == sn->wake_gen)
            node_io_timers(nd);
        break;
    case EV_PACKET:
        if (live)
            node_io_packet(nd, &e->from, e->data, e->len);
        break;
    case EV_CONNECT: {
        struct half *a = e->h;
        struct snode *from = s->nodes[a->node];
        if (a->closed)
            break;
        if (e->status > SYN_RETRIES) {
            /* No answer to the last SYN either: the client gives up. */
            half_event(s, a, EV_CONNECTED, s->now, HS_ETIMEDOUT, NULL, 0);
            break;
        }
        if (!live) {
            half_event(s, a, EV_CONNECTED,
                       net_stream_arrival(s, sn->idx, a->node, 0), HS_EREFUSED,
                       NULL, 0);
            break;
        }
        if (node_inbound_full(nd)) {
            if (backlog_add(sn, e)) {
                COUNT(sn, backlogged);
                return true;
            }
            /* The accept queue is full too: the SYN is dropped and the
             * client sends it again 1 s later, then 2, 4, ... s, up to
             * SYN_RETRIES times (tcp_syn_retries), and gives up 64 s
             * after the last: 127 s after the first, as Linux does. Its
             * own connect timeout usually closes it first. */
            if (e->status < SYN_RETRIES)
                COUNT(from, syn_retries);
            e->at = s->now + ((uint64_t)SYN_RTO_MS << e->status++);
            ev_push(s, e);
            return true;
        }
        struct half *b = half_new(s, sn, NULL);
        if (b == NULL)
            break;
        a->peer = b;
        b->peer = a;
        b->refs++; /* hold it: a refusing core closes it in the call */
        b->owner =
            node_io_stream_accepted(nd, (struct io_stream *)b, &from->addr, 0);
        if (b->owner != NULL)
            half_event(s, a, EV_CONNECTED,
                       net_stream_arrival(s, sn->idx, a->node, 0), 0, NULL, 0);
        half_unref(b);
        break;
    }
    case EV_CONNECTED:
        if (live && !e->h->closed)
            node_io_stream_connected(nd, e->h->owner, e->status);
        break;
    case EV_DATA:
        if (live && !e->h->closed && !e->h->ended && e->h->owner)
            node_io_stream_data(nd, e->h->owner, e->data, e->len);
        break;
    case EV_END:
        if (live && !e->h->closed && !e->h->ended && e->h->owner) {
            e->h->ended = true;
            node_io_stream_end(nd, e->h->owner, e->status);
        }
        break;
    }
    return false;
}

/* The fake peer's half is never read by a core; events to it are
 * dropped because no node owns it. */
int sim_inject_stream(struct sim *s, size_t idx, const void *p, size_t n,
                      bool close_after)
{
    if (idx >= s->nnodes || s->nodes[idx]->nd == NULL)
        return HS_EINVAL;
    struct snode *dst = s->nodes[idx];
    struct half *a = hs_calloc(1, sizeof *a), *b = hs_calloc(1, sizeof *b);
    if (a == NULL || b == NULL) {
        hs_free(a);
        hs_free(b);
        return HS_ENOMEM;
    }
    a->sim = b->sim = s;
    a->node = UINT32_MAX; /* nobody */
    a->refs = 1;
    b->node = dst->idx;
    b->epoch = dst->epoch;
    b->refs = 2; /* the core's, and ours for the call below */
    a->peer = b;
    b->peer = a;
    struct hs_addr from;
    addr_parse("10.255.255.254:40000", 0, &from);
    b->owner =
        node_io_stream_accepted(dst->nd, (struct io_stream *)b, &from, 0);
    uint64_t at = s->now + net_latency(s, &s->link);
    if (b->owner && n)
        half_event(s, b, EV_DATA, at, 0, p, n);
    if (b->owner && close_after)
        half_event(s, b, EV_END, at, 0, NULL, 0);
    half_unref(b);
    a->closed = true;
    half_unref(a);
    return 0;
}
