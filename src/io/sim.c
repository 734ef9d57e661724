/* sim.c: simulated network and virtual clock for the protocol core. */
#include "io/sim.h"

#include "base/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ===== Events ===== */

enum ev_type { EV_WAKE, EV_PACKET, EV_CONNECT, EV_CONNECTED, EV_DATA,
               EV_END };

struct half;

struct event {
    uint64_t at, seq;
    int type;
    uint32_t node;     /* receiving node */
    uint32_t epoch;    /* the node's epoch when the event was made */
    uint64_t gen;      /* EV_WAKE: the request it belongs to */
    struct hs_addr from;
    struct half *h;    /* stream half the event is for */
    int status;        /* EV_CONNECTED: the result; EV_CONNECT: how many
                        * times its SYN was sent again */
    size_t len;
    uint8_t data[];
};

/* One side of a simulated TCP connection. */
struct half {
    struct half *peer;
    struct sim *sim;
    uint32_t node, epoch;
    void *owner;
    bool closed;       /* the core called stream_close */
    bool ended;        /* the core was told the stream ended */
    uint64_t last;     /* time of the last data sent to the peer */
    int refs;          /* events and the core pointing here */
};

struct snode {
    struct sim *sim;
    uint32_t idx;
    uint32_t epoch;
    struct node *nd;    /* NULL while killed */
    struct config cfg;
    struct hooks hooks;
    struct hs_addr addr;
    struct io io;
    struct hs_logger log;
    uint64_t wake_gen;
    uint64_t paused_until;
    int group;
    int64_t clock_offset; /* ms added to this node's wall clock */
    uint64_t slow_ms;     /* added to everything it receives */
    uint64_t raised;      /* its own suspicions, as of the last event */
    struct sim_stats stats;
    /* Connections waiting for the node to take them (the listen
     * backlog): EV_CONNECT events, oldest at backlog[head]. */
    struct event **backlog;
    size_t head, nbacklog, capbacklog;
};

struct block {
    uint32_t a, b;
    int what;
};

/* What a directed pair of nodes has of its own: a link model other than
 * the default, and when its bandwidth is free again. */
struct pair {
    uint64_t key;          /* (a + 1) << 32 | (b + 1); 0: empty slot */
    bool own;              /* link below overrides the default */
    struct sim_link link;
    uint64_t busy_until;   /* microseconds */
};

/* Most connections waiting to be taken by one node unless set otherwise:
 * Linux's somaxconn. */
#define BACKLOG_DEFAULT 4096

struct sim {
    uint64_t now, seq;
    struct block *blocks;
    size_t nblocks;
    struct hs_rng rng;
    struct event **heap;
    size_t n, cap;
    struct snode **nodes;
    size_t nnodes, capnodes;
    struct sim_link link;
    struct pair *pairs;    /* open addressing, linear probing */
    size_t npairs, cappairs;
    size_t nown;           /* pairs with a link of their own */
    struct sim_stats stats;
    int log_level;
    void (*sink)(void *ud, const char *node, uint64_t now, int level,
                 const char *msg);
    void *sink_ud;
    sim_event_fn event_fn;
    void *event_ud;
    sim_life_fn life_fn;
    void *life_ud;
    size_t backlog;        /* connections waiting per node, at most */
};

static uint64_t rnd(struct sim *s)
{
    return hs_rng_next(&s->rng);
}

static double rnd01(struct sim *s)
{
    return (double)(rnd(s) >> 11) * (1.0 / 9007199254740992.0);
}

static bool ev_before(const struct event *a, const struct event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(struct sim *s, struct event *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct event **h = hs_realloc(s->heap, cap * sizeof *h);
        if (h == NULL) {
            hs_free(e);
            return;
        }
        s->heap = h;
        s->cap = cap;
    }
    e->seq = s->seq++;
    size_t i = s->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(e, s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static struct event *pop(struct sim *s)
{
    struct event *top = s->heap[0];
    struct event *last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct event *best = last;
        if (l < s->n && ev_before(s->heap[l], best)) {
            m = l;
            best = s->heap[l];
        }
        if (r < s->n && ev_before(s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n)
        s->heap[i] = last;
    return top;
}

static struct event *event_new(int type, uint64_t at, const struct snode *to,
                               const void *data, size_t len)
{
    struct event *e = hs_calloc(1, sizeof *e + len);
    if (e == NULL)
        return NULL;
    e->type = type;
    e->at = at;
    e->node = to->idx;
    e->epoch = to->epoch;
    e->len = len;
    if (len)
        memcpy(e->data, data, len);
    return e;
}

/* ===== Links ===== */

struct sim_link sim_link_default(void)
{
    return (struct sim_link){.latency_dist = SIM_LATENCY_FIXED,
                             .latency_ms = 1};
}

static uint64_t pair_key(uint32_t a, uint32_t b)
{
    return ((uint64_t)a + 1) << 32 | ((uint64_t)b + 1);
}

static size_t pair_slot(uint64_t key, size_t cap)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static struct pair *pair_find(const struct sim *s, uint32_t a, uint32_t b)
{
    if (s->cappairs == 0)
        return NULL;
    uint64_t key = pair_key(a, b);
    for (size_t i = pair_slot(key, s->cappairs);;
         i = (i + 1) & (s->cappairs - 1)) {
        if (s->pairs[i].key == key)
            return &s->pairs[i];
        if (s->pairs[i].key == 0)
            return NULL;
    }
}

/* The pair's entry, made if missing; NULL without memory. */
static struct pair *pair_get(struct sim *s, uint32_t a, uint32_t b)
{
    struct pair *p = pair_find(s, a, b);
    if (p)
        return p;
    if ((s->npairs + 1) * 2 > s->cappairs) {
        size_t cap = s->cappairs ? s->cappairs * 2 : 64;
        struct pair *np = hs_calloc(cap, sizeof *np);
        if (np == NULL)
            return NULL;
        for (size_t i = 0; i < s->cappairs; i++) {
            if (s->pairs[i].key == 0)
                continue;
            size_t j = pair_slot(s->pairs[i].key, cap);
            while (np[j].key)
                j = (j + 1) & (cap - 1);
            np[j] = s->pairs[i];
        }
        hs_free(s->pairs);
        s->pairs = np;
        s->cappairs = cap;
    }
    uint64_t key = pair_key(a, b);
    size_t i = pair_slot(key, s->cappairs);
    while (s->pairs[i].key)
        i = (i + 1) & (s->cappairs - 1);
    s->pairs[i] = (struct pair){.key = key};
    s->npairs++;
    return &s->pairs[i];
}

static const struct sim_link *link_of(const struct sim *s, uint32_t a,
                                      uint32_t b)
{
    if (s->nown) {
        const struct pair *p = pair_find(s, a, b);
        if (p && p->own)
            return &p->link;
    }
    return &s->link;
}

/* A standard normal draw (Box-Muller), from the simulation's generator. */
static double gauss(struct sim *s)
{
    double u = rnd01(s), v = rnd01(s);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * 3.14159265358979323846 * v);
}

static uint64_t latency(struct sim *s, const struct sim_link *l)
{
    double d = l->latency_ms;
    if (l->latency_dist == SIM_LATENCY_UNIFORM && l->latency2_ms > d)
        d += rnd01(s) * (l->latency2_ms - d);
    else if (l->latency_dist == SIM_LATENCY_NORMAL && l->latency2_ms > 0)
        d += gauss(s) * l->latency2_ms;
    return d <= 0 ? 0 : (uint64_t)(d + 0.5);
}

/* When something of n bytes sent now from a to b arrives: it waits for
 * the link to be free, takes its time on the wire, then the latency. */
static uint64_t arrival(struct sim *s, uint32_t a, uint32_t b,
                        const struct sim_link *l, size_t n)
{
    uint64_t at = s->now;
    if (l->bandwidth) {
        struct pair *p = pair_get(s, a, b);
        uint64_t now_us = s->now * 1000;
        uint64_t start = p && p->busy_until > now_us ? p->busy_until
                                                      : now_us;
        uint64_t done = start + (uint64_t)n * 1000000u / l->bandwidth;
        if (p)
            p->busy_until = done;
        at = done / 1000;
    }
    return at + latency(s, l);
}

/* TCP on a lossy link: each lost segment is sent again after a
 * retransmission timeout that starts at 200 ms and doubles (RFC 6298's
 * minimum and backoff), so stream data arrives late but whole. */
#define TCP_RTO_MIN_MS 200
#define TCP_RTO_MAX_MS 60000

static uint64_t tcp_retransmits(struct sim *s, const struct sim_link *l)
{
    uint64_t extra = 0, rto = TCP_RTO_MIN_MS;
    while (l->loss > 0 && rnd01(s) < l->loss && rto <= TCP_RTO_MAX_MS) {
        extra += rto;
        rto *= 2;
    }
    return extra;
}

/* When stream bytes (n of them) sent now from node a reach node b; a
 * fake peer (an index past the nodes) uses the default link. */
static uint64_t stream_arrival(struct sim *s, uint32_t a, uint32_t b,
                               size_t n)
{
    if (a >= s->nnodes || b >= s->nnodes)
        return s->now + latency(s, &s->link);
    const struct sim_link *l = link_of(s, a, b);
    return arrival(s, a, b, l, n) + tcp_retransmits(s, l) +
           s->nodes[b]->slow_ms;
}

static int blocked(const struct sim *s, const struct snode *a,
                   const struct snode *b)
{
    for (size_t i = 0; i < s->nblocks; i++)
        if (s->blocks[i].a == a->idx && s->blocks[i].b == b->idx)
            return s->blocks[i].what;
    return SIM_BLOCK_NONE;
}

/* Can a packet (stream: a connection) get from a to b? */
static bool reachable(const struct sim *s, const struct snode *a,
                      const struct snode *b, bool stream)
{
    if (a->group != b->group)
        return false;
    int w = s->nblocks ? blocked(s, a, b) : SIM_BLOCK_NONE;
    return w == SIM_BLOCK_NONE || (stream && w == SIM_BLOCK_UDP);
}

static struct snode *by_addr(struct sim *s, const struct hs_addr *a)
{
    struct hs_addr u = addr_unmap(a);
    if (u.len != 4 || u.ip[0] != 10 || u.port != 7946)
        return NULL;
    size_t idx = ((size_t)u.ip[1] << 16 | (size_t)u.ip[2] << 8 | u.ip[3]);
    if (idx == 0 || idx > s->nnodes)
        return NULL;
    return s->nodes[idx - 1];
}

/* ===== Streams ===== */

static void half_unref(struct half *h)
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
    struct event *e = event_new(type, at, to, data, len);
    if (e == NULL)
        return;
    e->epoch = h->epoch;
    e->h = h;
    e->status = status;
    h->refs++;
    push(s, e);
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
    push(s, e); /* delivered in turn, as if it had just arrived */
}

static void drop_event(struct event *e);

/* The node went away: the waiting connections are reset. */
static void backlog_reset(struct sim *s, struct snode *sn)
{
    for (size_t i = 0; i < sn->nbacklog; i++) {
        struct event *e = sn->backlog[sn->head + i];
        if (!e->h->closed)
            half_event(s, e->h, EV_CONNECTED, s->now + 1, HS_EREFUSED, NULL,
                       0);
        drop_event(e);
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
    struct event *e = event_new(EV_WAKE, at < s->now ? s->now : at, sn,
                                NULL, 0);
    if (e) {
        e->gen = sn->wake_gen;
        push(s, e);
    }
}

static void io_random(void *ctx, void *p, size_t n)
{
    struct sim *s = ((struct snode *)ctx)->sim;
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(rnd(s) >> 32);
}

#define COUNT(sn, field) ((sn)->sim->stats.field++, (sn)->stats.field++)

static void send_copy(struct sim *s, struct snode *sn, struct snode *dst,
                      const struct sim_link *l, const void *p, size_t n)
{
    uint64_t at = arrival(s, sn->idx, dst->idx, l, n) + dst->slow_ms;
    if (l->reorder > 0 && rnd01(s) < l->reorder) {
        at += (uint64_t)(l->reorder_ms > 0 ? l->reorder_ms + 0.5 : 0);
        COUNT(sn, reordered);
    }
    struct event *e = event_new(EV_PACKET, at, dst, p, n);
    if (e) {
        e->from = sn->addr;
        push(s, e);
    }
}

static int io_send(void *ctx, const struct hs_addr *to, const void *p,
                   size_t n)
{
    struct snode *sn = ctx;
    struct sim *s = sn->sim;
    COUNT(sn, packets);
    s->stats.bytes += n;
    sn->stats.bytes += n;
    struct snode *dst = by_addr(s, to);
    if (dst == NULL)
        return 0; /* nobody there: UDP does not tell */
    if (!reachable(s, sn, dst, false)) {
        COUNT(sn, blocked);
        return 0;
    }
    const struct sim_link *l = link_of(s, sn->idx, dst->idx);
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
    struct snode *dst = by_addr(s, to);
    uint64_t at = dst ? stream_arrival(s, sn->idx, dst->idx, 0)
                      : s->now + latency(s, &s->link);
    if (dst == NULL || dst->nd == NULL) {
        /* Nobody listens: the connection is refused. */
        half_event(s, h, EV_CONNECTED, at, HS_EREFUSED, NULL, 0);
    } else if (reachable(s, sn, dst, true) &&
               reachable(s, dst, sn, true)) {
        struct event *e = event_new(EV_CONNECT, at, dst, NULL, 0);
        if (e) {
            e->from = sn->addr;
            e->h = h;
            h->refs++;
            push(s, e);
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
    uint64_t at = stream_arrival(s, h->node, h->peer->node, n);
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
        uint64_t at = stream_arrival(s, h->node, h->peer->node, 0);
        if (at < h->last)
            at = h->last;
        half_event(s, h->peer, EV_END, at, 0, NULL, 0);
    }
    half_unref(h);
    backlog_next(s, sn);
}

/* ===== Logging ===== */

static void log_sink(void *ud, int level, const char *msg)
{
    struct snode *sn = ud;
    struct sim *s = sn->sim;
    if (s->sink)
        s->sink(s->sink_ud, sn->cfg.name, s->now, level, msg);
}

/* ===== Nodes ===== */

void sim_set_backlog(struct sim *s, size_t n)
{
    s->backlog = n;
}

int sim_new(uint64_t seed, struct sim **out)
{
    struct sim *s = hs_calloc(1, sizeof *s);
    if (s == NULL)
        return HS_ENOMEM;
    hs_rng_seed(&s->rng, seed);
    s->link = sim_link_default();
    s->log_level = HS_LOG_OFF;
    s->backlog = BACKLOG_DEFAULT;
    *out = s;
    return 0;
}

static void drop_event(struct event *e)
{
    if (e->h)
        half_unref(e->h);
    hs_free(e);
}

void sim_free(struct sim *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        struct snode *sn = s->nodes[i];
        if (sn->nd && s->life_fn)
            s->life_fn(s->life_ud, i, sn->nd, false);
        node_close(sn->nd);
        sn->nd = NULL;
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        struct snode *sn = s->nodes[i];
        for (size_t j = 0; j < sn->nbacklog; j++)
            drop_event(sn->backlog[sn->head + j]);
        hs_free(sn->backlog);
        config_free(&sn->cfg);
        hs_free(sn);
    }
    while (s->n)
        drop_event(pop(s));
    hs_free(s->pairs);
    hs_free(s->blocks);
    hs_free(s->heap);
    hs_free(s->nodes);
    hs_free(s);
}

void sim_set_link(struct sim *s, const struct sim_link *l)
{
    s->link = *l;
}

int sim_set_link_between(struct sim *s, size_t a, size_t b,
                         const struct sim_link *l)
{
    if (a >= s->nnodes || b >= s->nnodes)
        return HS_EINVAL;
    struct pair *p = l ? pair_get(s, (uint32_t)a, (uint32_t)b)
                       : pair_find(s, (uint32_t)a, (uint32_t)b);
    if (p == NULL)
        return l ? HS_ENOMEM : 0;
    if (l) {
        s->nown += !p->own;
        p->own = true;
        p->link = *l;
    } else if (p->own) {
        s->nown--;
        p->own = false;
    }
    return 0;
}

void sim_set_event_sink(struct sim *s, sim_event_fn fn, void *ud)
{
    s->event_fn = fn;
    s->event_ud = ud;
}

void sim_set_lifecycle(struct sim *s, sim_life_fn fn, void *ud)
{
    s->life_fn = fn;
    s->life_ud = ud;
}

bool sim_paused(const struct sim *s, size_t idx)
{
    return idx < s->nnodes && s->nodes[idx]->paused_until > s->now;
}

void sim_set_log(struct sim *s, int level,
                 void (*sink)(void *ud, const char *node, uint64_t now,
                              int level, const char *msg),
                 void *ud)
{
    s->log_level = level;
    s->sink = sink;
    s->sink_ud = ud;
    for (size_t i = 0; i < s->nnodes; i++)
        s->nodes[i]->log.level = sink ? level : HS_LOG_OFF;
}

/* Ground truth for the counters: was the member running, and not
 * frozen, when it was suspected or declared dead? */
static void observe(void *ud, int event, const struct member *m)
{
    struct snode *sn = ud;
    struct sim *s = sn->sim;
    if (event == HOOK_SUSPECT || event == HOOK_DEAD) {
        const struct snode *t = by_addr(s, &m->addr);
        bool running = t && t->nd && t->paused_until <= s->now;
        if (event == HOOK_SUSPECT) {
            /* Raised by its own failed probe (the core counts those just
             * before it suspects), or heard from another node? */
            uint64_t raised = node_stats(sn->nd)->suspicions;
            bool own = raised != sn->raised;
            sn->raised = raised;
            COUNT(sn, suspicions);
            if (running)
                COUNT(sn, false_suspicions);
            if (own)
                COUNT(sn, raised);
            if (own && running)
                COUNT(sn, false_raised);
        } else {
            COUNT(sn, deaths);
            if (running)
                COUNT(sn, false_deaths);
        }
    }
    if (s->event_fn)
        s->event_fn(s->event_ud, sn->idx, event, m);
}

static int boot(struct snode *sn)
{
    struct sim *s = sn->sim;
    struct node *nd;
    int rc = node_new(&sn->cfg, &sn->io, &sn->hooks, &sn->log, &nd);
    if (rc)
        return rc;
    sn->nd = nd;
    sn->raised = 0;
    node_set_observer(nd, observe, sn);
    if (s->life_fn)
        s->life_fn(s->life_ud, sn->idx, nd, true);
    rc = node_start(nd, &sn->addr);
    if (rc) {
        if (s->life_fn)
            s->life_fn(s->life_ud, sn->idx, nd, false);
        node_close(nd);
        sn->nd = NULL;
    }
    return rc;
}

int sim_add(struct sim *s, const struct config *cfg,
            const struct hooks *hooks, size_t *idx)
{
    if (s->nnodes >= (1u << 24) - 2 || sim_find(s, cfg->name) >= 0)
        return HS_EINVAL;
    if (s->nnodes == s->capnodes) {
        size_t cap = s->capnodes ? s->capnodes * 2 : 16;
        struct snode **nn = hs_realloc(s->nodes, cap * sizeof *nn);
        if (nn == NULL)
            return HS_ENOMEM;
        s->nodes = nn;
        s->capnodes = cap;
    }
    struct snode *sn = hs_calloc(1, sizeof *sn);
    if (sn == NULL || config_copy(&sn->cfg, cfg)) {
        hs_free(sn);
        return HS_ENOMEM;
    }
    sn->sim = s;
    sn->idx = (uint32_t)s->nnodes;
    size_t id = s->nnodes + 1;
    uint8_t ip[4] = {10, (uint8_t)(id >> 16), (uint8_t)(id >> 8),
                     (uint8_t)id};
    addr_from_raw(ip, 4, 7946, &sn->addr);
    if (hooks)
        sn->hooks = *hooks;
    sn->io = (struct io){sn, io_now, io_wall, io_wakeup, io_random, io_send,
                         io_stream_open, io_stream_write, io_stream_close};
    sn->log = (struct hs_logger){s->sink ? s->log_level : HS_LOG_OFF,
                                 log_sink, sn};
    s->nodes[s->nnodes++] = sn;
    int rc = boot(sn);
    if (rc)
        return rc;
    *idx = sn->idx;
    return 0;
}

size_t sim_count(const struct sim *s)
{
    return s->nnodes;
}

struct node *sim_node(struct sim *s, size_t idx)
{
    return idx < s->nnodes ? s->nodes[idx]->nd : NULL;
}

const char *sim_name(const struct sim *s, size_t idx)
{
    return idx < s->nnodes ? s->nodes[idx]->cfg.name : NULL;
}

struct hs_addr sim_addr(const struct sim *s, size_t idx)
{
    return s->nodes[idx]->addr;
}

long sim_find(const struct sim *s, const char *name)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (!strcmp(s->nodes[i]->cfg.name, name))
            return (long)i;
    return -1;
}

bool sim_alive(const struct sim *s, size_t idx)
{
    return idx < s->nnodes && s->nodes[idx]->nd != NULL;
}

void sim_kill(struct sim *s, size_t idx)
{
    if (idx >= s->nnodes || s->nodes[idx]->nd == NULL)
        return;
    struct snode *sn = s->nodes[idx];
    /* A crash: the core never hears about its streams again; the peers
     * see their connections reset. */
    struct node *nd = sn->nd;
    if (s->life_fn)
        s->life_fn(s->life_ud, idx, nd, false);
    sn->nd = NULL;
    sn->epoch++;
    sn->wake_gen++;
    sn->paused_until = 0;
    node_close(nd); /* closes its streams through io_stream_close */
    backlog_reset(s, sn);
}

int sim_restart(struct sim *s, size_t idx)
{
    if (idx >= s->nnodes)
        return HS_EINVAL;
    sim_kill(s, idx);
    return boot(s->nodes[idx]);
}

void sim_pause(struct sim *s, size_t idx, uint64_t ms)
{
    if (idx < s->nnodes)
        s->nodes[idx]->paused_until = s->now + ms;
}

void sim_set_slow(struct sim *s, size_t idx, uint64_t ms)
{
    if (idx < s->nnodes)
        s->nodes[idx]->slow_ms = ms;
}

void sim_set_clock_offset(struct sim *s, size_t idx, int64_t ms)
{
    if (idx < s->nnodes)
        s->nodes[idx]->clock_offset = ms;
}

void sim_set_group(struct sim *s, size_t idx, int group)
{
    if (idx < s->nnodes)
        s->nodes[idx]->group = group;
}

void sim_heal(struct sim *s)
{
    for (size_t i = 0; i < s->nnodes; i++)
        s->nodes[i]->group = 0;
    hs_free(s->blocks);
    s->blocks = NULL;
    s->nblocks = 0;
}

int sim_block(struct sim *s, size_t a, size_t b, int what)
{
    if (a >= s->nnodes || b >= s->nnodes)
        return HS_EINVAL;
    for (size_t i = 0; i < s->nblocks; i++) {
        if (s->blocks[i].a == a && s->blocks[i].b == b) {
            s->blocks[i].what = what;
            return 0;
        }
    }
    struct block *nb = hs_realloc(s->blocks,
                                  (s->nblocks + 1) * sizeof *nb);
    if (nb == NULL)
        return HS_ENOMEM;
    s->blocks = nb;
    s->blocks[s->nblocks++] = (struct block){(uint32_t)a, (uint32_t)b, what};
    return 0;
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
    b->owner = node_io_stream_accepted(dst->nd, (struct io_stream *)b,
                                       &from, 0);
    uint64_t at = s->now + latency(s, &s->link);
    if (b->owner && n)
        half_event(s, b, EV_DATA, at, 0, p, n);
    if (b->owner && close_after)
        half_event(s, b, EV_END, at, 0, NULL, 0);
    half_unref(b);
    a->closed = true;
    half_unref(a);
    return 0;
}

const struct hs_logger *sim_logger(const struct sim *s, size_t idx)
{
    return idx < s->nnodes ? &s->nodes[idx]->log : NULL;
}

uint64_t sim_now(const struct sim *s)
{
    return s->now;
}

const struct sim_stats *sim_stats(const struct sim *s)
{
    return &s->stats;
}

bool sim_converged(struct sim *s)
{
    size_t live = 0;
    for (size_t i = 0; i < s->nnodes; i++)
        live += s->nodes[i]->nd != NULL;
    /* Counts first: until they agree, nothing else needs a look. */
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *nd = s->nodes[i]->nd;
        if (nd && node_members(nd)->count[MEMBER_ALIVE] != live)
            return false;
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *nd = s->nodes[i]->nd;
        if (nd == NULL)
            continue;
        const struct members *t = node_members(nd);
        for (size_t j = 0; j < t->n; j++) {
            const struct member *m = t->order[j];
            if (m->state != MEMBER_ALIVE)
                continue;
            const struct snode *o = by_addr(s, &m->addr);
            if (o == NULL || o->nd == NULL ||
                strcmp(o->cfg.name, m->name) != 0)
                return false;
        }
    }
    return true;
}

size_t sim_queued(struct sim *s)
{
    size_t q = 0;
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->nd)
            q += node_broadcast_queue_len(s->nodes[i]->nd);
    return q;
}

size_t sim_count_seeing(struct sim *s, const char *name, int state)
{
    size_t c = 0, len = strlen(name);
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *nd = s->nodes[i]->nd;
        if (nd == NULL)
            continue;
        const struct member *m = members_find(node_members(nd), name, len);
        if (m && m->state == state)
            c++;
    }
    return c;
}

const struct sim_stats *sim_node_stats(const struct sim *s, size_t idx)
{
    return idx < s->nnodes ? &s->nodes[idx]->stats : NULL;
}

/* ===== Running ===== */

/* Returns true when the event was kept (put in a backlog). */
static bool deliver(struct sim *s, struct event *e)
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
                       stream_arrival(s, sn->idx, a->node, 0), HS_EREFUSED,
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
            push(s, e);
            return true;
        }
        struct half *b = half_new(s, sn, NULL);
        if (b == NULL)
            break;
        a->peer = b;
        b->peer = a;
        b->refs++; /* hold it: a refusing core closes it in the call */
        b->owner = node_io_stream_accepted(nd, (struct io_stream *)b,
                                           &from->addr, 0);
        if (b->owner != NULL)
            half_event(s, a, EV_CONNECTED,
                       stream_arrival(s, sn->idx, a->node, 0), 0, NULL, 0);
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

bool sim_step(struct sim *s, uint64_t until)
{
    while (s->n > 0 && s->heap[0]->at <= until) {
        struct event *e = pop(s);
        struct snode *sn = s->nodes[e->node];
        if (e->at > s->now)
            s->now = e->at;
        /* A frozen process handles nothing until it thaws. */
        if (sn->paused_until > s->now && sn->nd && e->epoch == sn->epoch) {
            e->at = sn->paused_until;
            push(s, e);
            continue;
        }
        if (!deliver(s, e))
            drop_event(e);
        return true;
    }
    return false;
}

void sim_run(struct sim *s, uint64_t ms)
{
    uint64_t until = s->now + ms;
    while (sim_step(s, until))
        ;
    s->now = until;
}
