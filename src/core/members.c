/* members.c: the member table and memberlist's state rules.
 *
 * The rules follow memberlist's state.go (aliveNode, suspectNode, deadNode,
 * refute, mergeState), which refines SWIM section 4.2 (suspicion with
 * incarnation numbers): news about a member is applied only if its
 * incarnation is newer (alive) or at least as new (suspect, dead); a node
 * accused itself answers with a higher incarnation. */
#include "core/members.h"

#include <stdio.h>
#include <string.h>

#include "core/node_int.h"

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
    if (len > CONFIG_NAME_MAX)
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
}

void members_set_state(struct members *t, struct member *m, int state,
                       uint64_t now)
{
    t->count[m->state]--;
    t->count[state]++;
    m->state = (uint8_t)state;
    m->state_change = now;
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

static bool meta_eq(const struct member *m, const struct wire_raw *r)
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

#define SOURCES 64        /* addresses tracked; a power of two */
#define SOURCE_PROBES 8   /* slots looked at for one address */

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
static bool admit(struct node *nd, const struct hs_addr *from)
{
    struct members *t = &nd->members;
    int burst = nd->cfg.max_new_members, rate = nd->cfg.new_member_rate;
    if (from == NULL || burst <= 0)
        return true;
    if (t->sources == NULL) {
        t->sources = hs_calloc(SOURCES, sizeof *t->sources);
        if (t->sources == NULL)
            return false; /* the member would not fit either */
    }
    uint64_t now = node_now(nd);
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

/* ===== Rules ===== */

void members_write_alive(const struct member *m, struct buf *b)
{
    struct wire_alive a = {
        .incarnation = m->incarnation,
        .node = wire_raw(m->name, m->name_len),
        .addr = wire_raw(m->addr.ip, m->addr.len),
        .port = m->addr.port,
        .meta = m->meta_len ? wire_raw(m->meta, m->meta_len)
                            : (struct wire_raw){0},
        .vsn = wire_raw(m->vsn, 6),
    };
    wire_put_alive(b, &a);
}

/* The news is the member as it now is: the queue writes it when it sends
 * it, and any change to the member queues news of its own. */
static void broadcast_alive(struct node *nd, struct member *m)
{
    struct buf b = BUF_INIT;
    members_write_alive(m, &b);
    node_queue_alive(nd, m, &b);
    buf_free(&b);
}

void members_refute(struct node *nd, uint32_t accused)
{
    struct member *me = nd->self;
    uint32_t inc = nd->incarnation + 1;
    if (accused >= inc)
        inc = accused + 1;
    nd->incarnation = inc;
    me->incarnation = inc;
    node_awareness(nd, 1);
    nd->stats.refutations++;
    broadcast_alive(nd, me);
}

void members_announce_self(struct node *nd)
{
    struct member *me = nd->self;
    nd->incarnation++;
    me->incarnation = nd->incarnation;
    if (members_set_meta(me, nd->meta.data, nd->meta.len) == 0)
        broadcast_alive(nd, me);
}

static bool bad_versions(const struct wire_raw *vsn)
{
    if (vsn->n < 3)
        return false;
    uint8_t pmin = vsn->p[0], pmax = vsn->p[1];
    return pmin == 0 || pmax == 0 || pmin > pmax;
}

void members_on_alive(struct node *nd, const struct wire_alive *a,
                      bool bootstrap, const struct hs_addr *from)
{
    char ab[HS_ADDRSTRLEN], qb[160];
    const char *name = (const char *)a->node.p;
    size_t nlen = a->node.n;
    bool is_self = nlen == nd->self_name_len &&
                   memcmp(name, nd->cfg.name, nlen) == 0;

    /* During a leave, an alive about us must not bring us back. */
    if (nd->phase >= PHASE_LEAVING && is_self)
        return;
    if (nlen == 0 || memchr(name, 0, nlen) || nlen > CONFIG_NAME_MAX) {
        node_count_drop(nd, NODE_DROP_MALFORMED, NULL, "alive",
                        "bad node name");
        return;
    }
    if (bad_versions(&a->vsn)) {
        HS_WARN(nd->log,
                "ignoring alive for %s: protocol versions %u..%u are wrong",
                hs_log_quote(name, nlen, qb, sizeof qb), a->vsn.p[0],
                a->vsn.p[1]);
        node_count_drop(nd, NODE_DROP_VERSION, NULL, "alive", "versions");
        return;
    }
    struct hs_addr addr;
    if (addr_from_raw(a->addr.p, a->addr.n, a->port, &addr)) {
        node_count_drop(nd, NODE_DROP_MALFORMED, NULL, "alive",
                        "address is not 4 or 16 bytes");
        return;
    }
    if (a->meta.n > WIRE_META_MAX) {
        node_count_drop(nd, NODE_DROP_MALFORMED, NULL, "alive",
                        "meta over 512 bytes");
        return;
    }

    /* AliveDelegate: the hook sees a candidate copy of the member. */
    if (nd->hooks.allow_member && !is_self) {
        if (a->vsn.n < 6) {
            HS_WARN(nd->log, "ignoring alive for %s: no protocol versions",
                    hs_log_quote(name, nlen, qb, sizeof qb));
            return;
        }
        char why[256] = "";
        struct member cand = {0};
        char namebuf[CONFIG_NAME_MAX + 1];
        memcpy(namebuf, name, nlen);
        namebuf[nlen] = '\0';
        cand.name = namebuf;
        cand.name_len = nlen;
        cand.addr = addr;
        cand.meta = (uint8_t *)(uintptr_t)a->meta.p;
        cand.meta_len = (uint16_t)a->meta.n;
        cand.incarnation = a->incarnation;
        cand.state = MEMBER_ALIVE;
        memcpy(cand.vsn, a->vsn.p, 6);
        if (nd->hooks.allow_member(nd->hooks.ud, &cand, why, sizeof why)) {
            nd->stats.members_refused++;
            HS_INFO(nd->log, "member refused: member=%s addr=%s reason=%s",
                    namebuf, addr_format(&addr, ab, sizeof ab),
                    why[0] ? why : "refused by allow_member");
            return;
        }
    }

    struct member *m = members_find(&nd->members, name, nlen);
    bool updates_addr = false;
    if (m == NULL) {
        if (!node_ip_allowed(nd, &addr)) {
            HS_WARN(nd->log, "rejected member %s: %s is outside "
                    "cidrs_allowed", hs_log_quote(name, nlen, qb, sizeof qb),
                    addr_ip_format(&addr, ab, sizeof ab));
            node_count_drop(nd, NODE_DROP_CIDR, &addr, "alive",
                            "address not allowed");
            return;
        }
        if (!is_self && !admit(nd, from)) {
            char detail[96];
            snprintf(detail, sizeof detail,
                     "max_new_members (%d) then new_member_rate (%d/s) "
                     "used", nd->cfg.max_new_members,
                     nd->cfg.new_member_rate);
            node_refuse(nd, NODE_DROP_MEMBER_LIMIT, from, "new member",
                        detail);
            return;
        }
        if (members_add(&nd->members, name, nlen, &addr, node_rand(nd), &m))
            return;
        if (is_self)
            nd->self = m; /* before the join event: its hooks may ask */
        if (a->vsn.n >= 6)
            memcpy(m->vsn, a->vsn.p, 6);
    } else if (!addr_eq(&m->addr, &addr)) {
        if (!node_ip_allowed(nd, &addr)) {
            node_count_drop(nd, NODE_DROP_CIDR, &addr, "alive",
                            "address not allowed");
            return;
        }
        uint64_t now = node_now(nd);
        bool reclaim = nd->cfg.dead_node_reclaim_time > 0 &&
                       now - m->state_change >
                           nd->cfg.dead_node_reclaim_time;
        if (m->state == MEMBER_LEFT ||
            (m->state == MEMBER_DEAD && reclaim)) {
            char ob[HS_ADDRSTRLEN];
            HS_INFO(nd->log, "member address changed: member=%s old=%s "
                    "new=%s", m->name, addr_format(&m->addr, ob, sizeof ob),
                    addr_format(&addr, ab, sizeof ab));
            updates_addr = true;
        } else {
            char ob[HS_ADDRSTRLEN];
            nd->stats.conflicts++;
            HS_ERROR(nd->log, "name conflict: member=%s known=%s claimed=%s "
                     "state=%s", m->name,
                     addr_format(&m->addr, ob, sizeof ob),
                     addr_format(&addr, ab, sizeof ab),
                     member_state_name(m->state));
            if (nd->hooks.on_conflict) {
                struct member other = *m;
                other.addr = addr;
                other.meta = (uint8_t *)(uintptr_t)a->meta.p;
                other.meta_len = (uint16_t)a->meta.n;
                other.incarnation = a->incarnation;
                other.suspicion = NULL;
                other.bcast = NULL;
                if (a->vsn.n >= 6)
                    memcpy(other.vsn, a->vsn.p, 6);
                nd->hooks.on_conflict(nd->hooks.ud, m, &other);
            }
            return;
        }
    }

    if (!is_self && !updates_addr && a->incarnation <= m->incarnation)
        return;
    if (is_self && a->incarnation < m->incarnation)
        return;

    suspicion_cancel(nd, m);
    int old_state = m->state;
    bool meta_changed = !meta_eq(m, &a->meta);

    if (!bootstrap && is_self) {
        uint8_t vsn[6];
        node_vsn(nd, vsn);
        if (a->incarnation == m->incarnation && !meta_changed &&
            a->vsn.n == 6 && memcmp(a->vsn.p, vsn, 6) == 0)
            return;
        members_refute(nd, a->incarnation);
        HS_WARN(nd->log, "refuting an alive message about us: inc=%u "
                "now=%u", a->incarnation, nd->incarnation);
        return;
    }

    if (a->vsn.n >= 6)
        memcpy(m->vsn, a->vsn.p, 6);
    m->incarnation = a->incarnation;
    if (meta_changed && members_set_meta(m, a->meta.p, a->meta.n))
        meta_changed = false;
    m->addr = addr;
    if (m->state != MEMBER_ALIVE)
        members_set_state(&nd->members, m, MEMBER_ALIVE, node_now(nd));
    /* Re-gossip the news (encoded from the updated member). */
    broadcast_alive(nd, m);

    if (old_state == MEMBER_DEAD || old_state == MEMBER_LEFT) {
        if (!is_self)
            node_member_back(nd, m);
        if (!is_self)
            HS_INFO(nd->log, "member joined: member=%s addr=%s inc=%u",
                    m->name, addr_format(&m->addr, ab, sizeof ab),
                    m->incarnation);
        node_event(nd, HOOK_JOIN, m);
    } else {
        if (old_state == MEMBER_SUSPECT) {
            HS_INFO(nd->log, "member alive again: member=%s inc=%u",
                    m->name, m->incarnation);
            node_event(nd, HOOK_ALIVE, m);
        }
        if (meta_changed) {
            HS_INFO(nd->log, "member updated: member=%s inc=%u meta=%u "
                    "bytes", m->name, m->incarnation, m->meta_len);
            node_event(nd, HOOK_UPDATE, m);
        }
    }
}

void members_on_suspect(struct node *nd, const struct wire_suspect *s)
{
    struct member *m = members_find(&nd->members, (const char *)s->node.p,
                                    s->node.n);
    if (m == NULL || s->incarnation < m->incarnation)
        return;
    uint64_t now = node_now(nd);
    if (m->suspicion) {
        if (suspicion_confirm(m->suspicion, (const char *)s->from.p,
                              s->from.n, now)) {
            struct buf b = BUF_INIT;
            wire_put_suspect(&b, s);
            node_queue_broadcast(nd, m, &b, false);
            buf_free(&b);
        }
        return;
    }
    if (m->state != MEMBER_ALIVE)
        return;
    char qb[160];
    if (m == nd->self) {
        members_refute(nd, s->incarnation);
        HS_WARN(nd->log, "refuting a suspicion about us: from=%s inc=%u",
                hs_log_quote(s->from.p, s->from.n, qb, sizeof qb),
                nd->incarnation);
        return;
    }
    struct buf b = BUF_INIT;
    wire_put_suspect(&b, s);
    node_queue_broadcast(nd, m, &b, false);
    buf_free(&b);

    m->incarnation = s->incarnation;
    members_set_state(&nd->members, m, MEMBER_SUSPECT, now);

    /* Lifeguard: expect k independent confirmations, two probe periods
     * short of the suspicion multiplier; none if too few nodes. */
    size_t n = members_count(&nd->members);
    int k = nd->cfg.suspicion_mult - 2;
    if ((long)n - 2 < k)
        k = 0;
    uint64_t min = suspicion_timeout(nd->cfg.suspicion_mult, n,
                                     nd->cfg.probe_interval);
    uint64_t max = (uint64_t)nd->cfg.suspicion_max_timeout_mult * min;
    suspicion_start(nd, m, (const char *)s->from.p, s->from.n, k, min, max,
                    now);
    HS_INFO(nd->log, "member suspect: member=%s inc=%u from=%s", m->name,
            m->incarnation, hs_log_quote(s->from.p, s->from.n, qb, sizeof qb));
    node_event(nd, HOOK_SUSPECT, m);
}

void members_on_dead(struct node *nd, const struct wire_suspect *d)
{
    struct member *m = members_find(&nd->members, (const char *)d->node.p,
                                    d->node.n);
    if (m == NULL || d->incarnation < m->incarnation)
        return;
    suspicion_cancel(nd, m);
    if (member_dead_or_left(m))
        return;
    char qb[160];
    struct buf b = BUF_INIT;
    if (m == nd->self) {
        if (nd->phase < PHASE_LEAVING) {
            members_refute(nd, d->incarnation);
            HS_WARN(nd->log, "refuting a death notice about us: from=%s "
                    "inc=%u", hs_log_quote(d->from.p, d->from.n, qb,
                                           sizeof qb), nd->incarnation);
            return;
        }
        /* Our own leave: gossip it and tell the waiter when done. */
        wire_put_dead(&b, d);
        node_queue_broadcast(nd, m, &b, true);
    } else {
        wire_put_dead(&b, d);
        node_queue_broadcast(nd, m, &b, false);
    }
    buf_free(&b);

    m->incarnation = d->incarnation;
    bool left = d->node.n == d->from.n &&
                memcmp(d->node.p, d->from.p, d->node.n) == 0;
    members_set_state(&nd->members, m, left ? MEMBER_LEFT : MEMBER_DEAD,
                      node_now(nd));
    if (m != nd->self) {
        if (left) {
            HS_INFO(nd->log, "member left: member=%s inc=%u", m->name,
                    m->incarnation);
        } else {
            nd->stats.deaths++;
            node_member_failed(nd, m);
            HS_INFO(nd->log, "member dead: member=%s inc=%u from=%s",
                    m->name, m->incarnation,
                    hs_log_quote(d->from.p, d->from.n, qb, sizeof qb));
        }
    }
    node_event(nd, left ? HOOK_LEFT : HOOK_DEAD, m);
}

void members_merge(struct node *nd, const struct wire_node_state *states,
                   size_t n, const struct hs_addr *from)
{
    for (size_t i = 0; i < n; i++) {
        const struct wire_node_state *r = &states[i];
        switch (r->state) {
        case WIRE_STATE_ALIVE: {
            struct wire_alive a = {r->incarnation, r->name, r->addr,
                                   r->port, r->meta, r->vsn};
            members_on_alive(nd, &a, false, from);
            break;
        }
        case WIRE_STATE_LEFT: {
            struct wire_suspect d = {r->incarnation, r->name, r->name};
            members_on_dead(nd, &d);
            break;
        }
        case WIRE_STATE_DEAD:
        case WIRE_STATE_SUSPECT: {
            /* A remote "dead" never kills directly: suspect instead. */
            struct wire_suspect s = {
                r->incarnation, r->name,
                wire_raw(nd->cfg.name, nd->self_name_len)};
            members_on_suspect(nd, &s);
            break;
        }
        default:
            break;
        }
    }
}

void members_reset(struct node *nd)
{
    struct members *t = &nd->members;
    uint64_t now = node_now(nd);
    for (size_t i = 0; i < t->n;) {
        struct member *m = t->order[i];
        if (m != nd->self && member_dead_or_left(m) &&
            now - m->state_change > nd->cfg.gossip_to_the_dead_time) {
            HS_DEBUG(nd->log, "member removed: member=%s state=%s", m->name,
                     member_state_name(m->state));
            probe_forget(nd, m);
            suspicion_cancel(nd, m);
            bqueue_disown(&nd->queue, &m->bcast);
            members_remove(t, m); /* moves the last member to i */
            continue;
        }
        i++;
    }
    /* Fisher-Yates shuffle of the probe order. */
    for (size_t i = t->n; i > 1; i--)
        order_swap(t, i - 1, node_rand_n(nd, i));
}

/* One node's spoken versions against the cluster's common range. */
static int check_versions(const char *name, unsigned pcur, unsigned dcur,
                          unsigned pmin, unsigned pmax, unsigned dmin,
                          unsigned dmax, char *why, size_t whylen)
{
    if (pcur < pmin || pcur > pmax) {
        snprintf(why, whylen, "node %s protocol version %u is "
                 "incompatible: [%u, %u]", name, pcur, pmin, pmax);
        return HS_EVERSION;
    }
    if (dcur < dmin || dcur > dmax) {
        snprintf(why, whylen, "node %s delegate protocol version %u is "
                 "incompatible: [%u, %u]", name, dcur, dmin, dmax);
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
        int rc = check_versions(hs_log_quote(r->name.p, r->name.n, qb,
                                             sizeof qb),
                                full ? r->vsn.p[2] : 0, full ? r->vsn.p[5] : 0,
                                maxpmin, minpmax, maxdmin, mindmax, why,
                                whylen);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        int rc = check_versions(m->name, m->vsn[2], m->vsn[5], maxpmin,
                                minpmax, maxdmin, mindmax, why, whylen);
        if (rc)
            return rc;
    }
    return 0;
}
