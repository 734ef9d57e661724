/* sim_net.c: the simulation's network model: link models per pair of
 * nodes (latency, bandwidth, loss, retransmissions), partitions and
 * blocked links, and the nodes' addresses. */
#include "io/sim_int.h"

#include <math.h>

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

const struct sim_link *net_link_of(const struct sim *s, uint32_t a, uint32_t b)
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

uint64_t net_latency(struct sim *s, const struct sim_link *l)
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
uint64_t net_arrival(struct sim *s, uint32_t a, uint32_t b,
                     const struct sim_link *l, size_t n)
{
    uint64_t at = s->now;
    if (l->bandwidth) {
        struct pair *p = pair_get(s, a, b);
        uint64_t now_us = s->now * 1000;
        uint64_t start = p && p->busy_until > now_us ? p->busy_until : now_us;
        uint64_t done = start + (uint64_t)n * 1000000u / l->bandwidth;
        if (p)
            p->busy_until = done;
        at = done / 1000;
    }
    return at + net_latency(s, l);
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
uint64_t net_stream_arrival(struct sim *s, uint32_t a, uint32_t b, size_t n)
{
    if (a >= s->nnodes || b >= s->nnodes)
        return s->now + net_latency(s, &s->link);
    const struct sim_link *l = net_link_of(s, a, b);
    return net_arrival(s, a, b, l, n) + tcp_retransmits(s, l) +
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
bool net_reachable(const struct sim *s, const struct snode *a,
                   const struct snode *b, bool stream)
{
    if (a->group != b->group)
        return false;
    int w = s->nblocks ? blocked(s, a, b) : SIM_BLOCK_NONE;
    return w == SIM_BLOCK_NONE || (stream && w == SIM_BLOCK_UDP);
}

struct snode *net_by_addr(struct sim *s, const struct hs_addr *a)
{
    struct hs_addr u = addr_unmap(a);
    if (u.len != 4 || u.ip[0] != 10 || u.port != 7946)
        return NULL;
    size_t idx = ((size_t)u.ip[1] << 16 | (size_t)u.ip[2] << 8 | u.ip[3]);
    if (idx == 0 || idx > s->nnodes)
        return NULL;
    return s->nodes[idx - 1];
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
    struct block *nb = hs_realloc(s->blocks, (s->nblocks + 1) * sizeof *nb);
    if (nb == NULL)
        return HS_ENOMEM;
    s->blocks = nb;
    s->blocks[s->nblocks++] = (struct block){(uint32_t)a, (uint32_t)b, what};
    return 0;
}
