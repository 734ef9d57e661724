/* members.c: the member table: members by name, the probe order, the
 * counts per state and the growth limits per source address. It knows
 * nothing of the node: the rules that change members (rules.c) pass in
 * the time, random numbers and limits it needs. */
#include "core/members.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"

const char *member_state_name(int state)
{
    static const char *names[] = {"alive", "suspect", "dead", "left"};
    return state >= 0 && state < 4 ? names[state] : "unknown";
}

int member_state_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, member_state_name(i)))
            return i;
    if (!strcmp(s, "failed")) /* Serf's word for dead */
        return MEMBER_DEAD;
    return -1;
}

/* ===== Table ===== */

static uint32_t hash_name(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

/* Could this name be an IP address (digits and dots, or a colon)? Only
 * such members are ever looked up by address text (see node_send_msg). */
static bool ip_like(const char *p, size_t n)
{
    bool colon = memchr(p, ':', n) != NULL;
    for (size_t i = 0; !colon && i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == '.'))
            return false;
    return n > 0;
}

void members_init(struct members *t)
{
    memset(t, 0, sizeof *t);
}

static void free_member(struct member *m)
{
    hs_free(m->meta);
    hs_free(m);
}

void members_close(struct members *t)
{
    for (size_t i = 0; i < t->n; i++)
        free_member(t->order[i]);
    hs_free(t->order);
    hs_free(t->slots);
    hs_free(t->sources);
    members_init(t);
}

struct member *members_find(const struct members *t, const char *name,
                            size_t len)
{
    if (t->nslots == 0)
        return NULL;
    uint32_t h = hash_name(name, len);
    size_t mask = t->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct mslot *s = &t->slots[i];
        if (s->idx == 0)
            return NULL;
        if (s->hash != h)
            continue;
        struct member *m = t->order[s->idx - 1];
        if (m->name_len == len && memcmp(m->name, name, len) == 0)
            return m;
    }
}

static void slot_insert(struct mslot *slots, size_t nslots, uint32_t hash,
                        uint32_t idx)
{
    size_t mask = nslots - 1;
    size_t i = hash & mask;
    while (slots[i].idx)
        i = (i + 1) & mask;
    slots[i] = (struct mslot){idx + 1, hash};
}

/* The slot that points to m. */
static struct mslot *slot_of(const struct members *t, const struct member *m)
{
    size_t mask = t->nslots - 1;
    size_t i = hash_name(m->name, m->name_len) & mask;
    while (t->slots[i].idx != m->index + 1)
        i = (i + 1) & mask;
    return &t->slots[i];
}

/* The table's invariant: each member knows its place in the order, its
 * name's slot points back to it, and the counts per state and of
 * IP-like names match the members. */
static bool table_ok(const struct members *t)
{
    size_t count[4] = {0}, ip_named = 0, used = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        if (m->index != i || m->state > MEMBER_LEFT)
            return false;
        if (members_find(t, m->name, m->name_len) != m)
            return false;
        count[m->state]++;
        ip_named += ip_like(m->name, m->name_len);
    }
    for (size_t i = 0; i < t->nslots; i++)
        used += t->slots[i].idx != 0;
    return used == t->n && ip_named == t->ip_named && t->n <= t->cap &&
           memcmp(count, t->count, sizeof count) == 0;
}

/* Swap two places of the probe order, and their slots with them. */
static void order_swap(struct members *t, size_t i, size_t j)
{
    if (i == j)
        return;
    struct member *a = t->order[i], *b = t->order[j];
    struct mslot *sa = slot_of(t, a), *sb = slot_of(t, b);
    sa->idx = (uint32_t)j + 1;
    sb->idx = (uint32_t)i + 1;
    t->order[i] = b;
    t->order[j] = a;
    a->index = (uint32_t)j;
    b->index = (uint32_t)i;
}

static int grow(struct members *t)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct member **o = hs_realloc(t->order, cap * sizeof *o);
        if (o == NULL)
            return HS_ENOMEM;
        t->order = o;
        t->cap = cap;
    }
    /* Keep the hash at most three quarters full: linear probing over
     * eight-byte slots that carry the hash stays within a cache line. */
    if ((t->n + 1) * 4 > t->nslots * 3) {
        size_t ns = t->nslots ? t->nslots * 2 : 16;
        struct mslot *s = hs_calloc(ns, sizeof *s);
        if (s == NULL)
            return HS_ENOMEM;
        for (size_t i = 0; i < t->nslots; i++)
            if (t->slots[i].idx)
                slot_insert(s, ns, t->slots[i].hash, t->slots[i].idx - 1);
        hs_free(t->slots);
        t->slots = s;
        t->nslots = ns;
    }
    return 0;
}

int members_add(struct members *t, const char *name, size_t len,
                const struct hs_addr *addr, uint64_t r, struct member **out)
{
    if (len > MEMBER_NAME_MAX)
        return HS_EINVAL;
    if (grow(t))
        return HS_ENOMEM;
    struct member *m = hs_calloc(1, sizeof *m + len + 1);
    if (m == NULL)
        return HS_ENOMEM;
    char *nm = (char *)(m + 1);
    memcpy(nm, name, len);
    nm[len] = '\0';
    m->name = nm;
    m->name_len = (uint8_t)len;
    m->addr = *addr;
    m->state = MEMBER_DEAD;
    /* Append, then swap with a random position, so that a new member is
     * not always probed last (memberlist aliveNode). */
    size_t n = t->n++;
    t->order[n] = m;
    m->index = (uint32_t)n;
    slot_insert(t->slots, t->nslots, hash_name(name, len), (uint32_t)n);
    order_swap(t, n ? (size_t)(r % (n + 1)) : 0, n);
    t->count[MEMBER_DEAD]++;
    t->ip_named += ip_like(name, len);
    HS_INVARIANT(table_ok(t));
    *out = m;
    return 0;
}

void members_remove(struct members *t, struct member *m)
{
    /* Move it to the end of the order, keeping the order compact. */
    order_swap(t, m->index, t->n - 1);
    /* Remove from the hash: backward-shift deletion for linear probing. */
    size_t mask = t->nslots - 1;
    struct mslot *s = slot_of(t, m);
    size_t i = (size_t)(s - t->slots);
    s->idx = 0;
    for (size_t j = (i + 1) & mask; t->slots[j].idx; j = (j + 1) & mask) {
        struct mslot x = t->slots[j];
        t->slots[j].idx = 0;
        slot_insert(t->slots, t->nslots, x.hash, x.idx - 1);
    }
    t->n--;
    t->count[m->state]--;
    t->ip_named -= ip_like(m->name, m->name_len);
    free_member(m);
    HS_INVARIANT(table_ok(t));
}

void members_set_state(struct members *t, struct member *m, int state,
                       uint64_t now)
{
    t->count[m->state]--;
    t->count[state]++;
    m->state = (uint8_t)state;
    m->state_change = now;
    HS_INVARIANT(table_ok(t));
}

int members_set_meta(struct member *m, const uint8_t *p, size_t n)
{
    uint8_t *meta = NULL;
    if (n > 0) {
        meta = hs_malloc(n);
        if (meta == NULL)
            return HS_ENOMEM;
        memcpy(meta, p, n);
    }
    hs_free(m->meta);
    m->meta = meta;
    m->meta_len = (uint16_t)n;
    return 0;
}

bool member_meta_eq(const struct member *m, const struct wire_raw *r)
{
    return m->meta_len == r->n &&
           (r->n == 0 || memcmp(m->meta, r->p, r->n) == 0);
}

/* ===== Growth limits =====
 * Without encryption, whoever reaches the port can name members: one
 * push/pull listing 20,000 invented names spreads each node's probes over
 * all of them (and Lifeguard, finding its relays silent, slows the probes
 * down too), so a real failure goes unseen for an hour. So a member we
 * do not know is added on the word of one address (a packet's sender, a
 * state sync's peer) at most max_new_members at once, then
 * new_member_rate a second: a token bucket per address. It is per
 * address because a legitimate cluster grows fast, but from many
 * senders: in a 1,000-node bootstrap a node learns some 800 members in a
 * second, yet at most 42 from any one sender over the whole bootstrap,
 * and a gossip packet of 1,400 bytes holds no more than 24 alives; the
 * default 32 leaves gossip alone and clips the big state syncs of a
 * bootstrap, whose members gossip brings a little later. A join asked
 * for here is not limited: the operator named the peer, and a joiner
 * must learn the whole cluster at once. Encryption is the defence; this
 * only bounds what a stranger can do, and what it refuses is counted and
 * logged. */

#define SOURCES 64      /* addresses tracked; a power of two */
#define SOURCE_PROBES 8 /* slots looked at for one address */

static uint32_t hash_ip(const struct hs_addr *a)
{
    return hash_name((const char *)a->ip, a->len);
}

/* The debt left at `now` (thousandths of a member). */
static uint64_t debt_at(const struct msource *s, uint64_t now, int rate)
{
    uint64_t dt = now > s->at ? now - s->at : 0;
    if (rate <= 0)
        return s->debt;
    /* rate members a second is `rate` thousandths a millisecond. */
    if (dt >= s->debt / (uint64_t)rate + 1)
        return 0;
    uint64_t paid = dt * (uint64_t)rate;
    return s->debt > paid ? s->debt - paid : 0;
}

/* May `from` add one more member now? Takes its token if so. An address
 * not tracked has a full bucket; when the slots it may use are all taken,
 * the one with the least debt (the least to remember) gives way. */
bool members_admit(struct members *t, const struct hs_addr *from, uint64_t now,
                   int burst, int rate)
{
    if (from == NULL || burst <= 0)
        return true;
    if (t->sources == NULL) {
        t->sources = hs_calloc(SOURCES, sizeof *t->sources);
        if (t->sources == NULL)
            return false; /* the member would not fit either */
    }
    uint32_t h = hash_ip(from);
    struct msource *s = NULL, *spare = NULL;
    uint64_t spare_debt = UINT64_MAX;
    for (size_t k = 0; k < SOURCE_PROBES; k++) {
        struct msource *e = &t->sources[(h + k) & (SOURCES - 1)];
        if (e->len == from->len && e->len &&
            memcmp(e->ip, from->ip, from->len) == 0) {
            s = e;
            break;
        }
        uint64_t d = e->len ? debt_at(e, now, rate) : 0;
        if (d < spare_debt) {
            spare = e;
            spare_debt = d;
        }
    }
    if (s == NULL) {
        s = spare;
        memcpy(s->ip, from->ip, from->len);
        s->len = from->len;
        s->debt = 0;
        s->at = now;
    }
    s->debt = debt_at(s, now, rate);
    s->at = now;
    if (s->debt + 1000 > (uint64_t)burst * 1000)
        return false;
    s->debt += 1000;
    return true;
}

/* ===== Messages ===== */

void members_write_alive(const struct member *m, struct buf *b)
{
    struct wire_alive a = {
        .incarnation = m->incarnation,
        .node = wire_raw(m->name, m->name_len),
        .addr = wire_raw(m->addr.ip, m->addr.len),
        .port = m->addr.port,
        .meta =
            m->meta_len ? wire_raw(m->meta, m->meta_len) : (struct wire_raw){0},
        .vsn = wire_raw(m->vsn, 6),
    };
    wire_put_alive(b, &a);
}

/* The news is the member as it now is: the queue writes it when it sends
 * it, and any change to the member queues news of its own. */
/* ===== Probe order ===== */

void members_shuffle(struct members *t, size_t (*rand_n)(void *ud, size_t n),
                     void *ud)
{
    /* Fisher-Yates shuffle of the probe order. */
    for (size_t i = t->n; i > 1; i--)
        order_swap(t, i - 1, rand_n(ud, i));
    HS_INVARIANT(table_ok(t));
}

/* ===== Versions ===== */

static int check_versions(const char *name, unsigned pcur, unsigned dcur,
                          unsigned pmin, unsigned pmax, unsigned dmin,
                          unsigned dmax, char *why, size_t whylen)
{
    if (pcur < pmin || pcur > pmax) {
        snprintf(why, whylen,
                 "node %s protocol version %u is "
                 "incompatible: [%u, %u]",
                 name, pcur, pmin, pmax);
        return HS_EVERSION;
    }
    if (dcur < dmin || dcur > dmax) {
        snprintf(why, whylen,
                 "node %s delegate protocol version %u is "
                 "incompatible: [%u, %u]",
                 name, dcur, dmin, dmax);
        return HS_EVERSION;
    }
    return 0;
}

int members_verify_protocol(const struct members *t,
                            const struct wire_node_state *states, size_t n,
                            char *why, size_t whylen)
{
    unsigned maxpmin = 0, minpmax = 255, maxdmin = 0, mindmax = 255;
    for (size_t i = 0; i < n; i++) {
        const struct wire_node_state *r = &states[i];
        if (r->state != WIRE_STATE_ALIVE || r->vsn.n < 5)
            continue;
        maxpmin = HS_MAX(maxpmin, r->vsn.p[0]);
        minpmax = HS_MIN(minpmax, r->vsn.p[1]);
        maxdmin = HS_MAX(maxdmin, r->vsn.p[3]);
        mindmax = HS_MIN(mindmax, r->vsn.p[4]);
    }
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        if (m->state != MEMBER_ALIVE)
            continue;
        maxpmin = HS_MAX(maxpmin, m->vsn[0]);
        minpmax = HS_MIN(minpmax, m->vsn[1]);
        maxdmin = HS_MAX(maxdmin, m->vsn[3]);
        mindmax = HS_MIN(mindmax, m->vsn[4]);
    }
    char qb[160];
    for (size_t i = 0; i < n; i++) {
        const struct wire_node_state *r = &states[i];
        /* A node without a full Vsn counts as speaking version 0. */
        bool full = r->vsn.n >= 6;
        int rc =
            check_versions(hs_log_quote(r->name.p, r->name.n, qb, sizeof qb),
                           full ? r->vsn.p[2] : 0, full ? r->vsn.p[5] : 0,
                           maxpmin, minpmax, maxdmin, mindmax, why, whylen);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        int rc = check_versions(m->name, m->vsn[2], m->vsn[5], maxpmin, minpmax,
                                maxdmin, mindmax, why, whylen);
        if (rc)
            return rc;
    }
    return 0;
}
