/* node.c: node lifecycle, the UDP send and receive paths, gossip rounds,
 * leave and pause. */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

/* Bounds for one datagram (the stream bounds are configuration keys). */
#define PACKET_MAX_DECOMPRESSED (1u << 20)
#define PACKET_MAX_DEPTH 4
#define USER_QUEUE_MAX 1024
#define QUEUE_MAX 65536
#define RUMOR_KEEP 4096             /* rumor ids remembered */
#define RUMOR_SLOTS (2 * RUMOR_KEEP) /* hash slots for them */

const char *hook_event_name(int event)
{
    static const char *names[HOOK_EVENT_COUNT] = {
        "join", "update", "suspect", "alive", "dead", "left"};
    return event >= 0 && event < HOOK_EVENT_COUNT ? names[event] : "?";
}

const char *node_drop_name(int reason)
{
    static const char *names[NODE_DROP_COUNT] = {
#define NODE_DROP_NAME(name, text) text,
        NODE_DROPS(NODE_DROP_NAME)
#undef NODE_DROP_NAME
    };
    return reason >= 0 && reason < NODE_DROP_COUNT ? names[reason] : "?";
}

/* ===== Randomness ===== */

uint64_t node_rand(struct node *nd)
{
    return hs_rng_next(&nd->rng);
}

size_t node_rand_n(struct node *nd, size_t n)
{
    return n ? (size_t)(node_rand(nd) % n) : 0;
}

/* ===== Timers ===== */

static void reschedule(struct node *nd)
{
    if (nd->in_timers)
        return;
    uint64_t next = timers_next(&nd->timers);
    if (next != nd->wakeup_at) {
        nd->wakeup_at = next;
        nd->io.wakeup(nd->io.ctx, next);
    }
}

void node_arm(struct node *nd, struct timer *t, uint64_t at)
{
    if (timer_start(&nd->timers, t, at)) {
        HS_ERROR(nd->log, "out of memory arming a timer");
        return;
    }
    reschedule(nd);
}

void node_disarm(struct node *nd, struct timer *t)
{
    timer_stop(&nd->timers, t);
    reschedule(nd);
}

void node_io_timers(struct node *nd)
{
    nd->in_timers = true;
    timers_run(&nd->timers, node_now(nd));
    nd->in_timers = false;
    nd->wakeup_at = 0; /* force a fresh request */
    reschedule(nd);
}

/* ===== Helpers ===== */

void node_vsn(const struct node *nd, uint8_t vsn[6])
{
    vsn[0] = WIRE_PROTO_MIN;
    vsn[1] = WIRE_PROTO_MAX;
    vsn[2] = (uint8_t)nd->cfg.protocol_version;
    vsn[3] = (uint8_t)nd->cfg.delegate_protocol_min;
    vsn[4] = (uint8_t)nd->cfg.delegate_protocol_max;
    vsn[5] = (uint8_t)nd->cfg.delegate_protocol_version;
}

bool node_ip_allowed(const struct node *nd, const struct hs_addr *a)
{
    if (nd->ncidrs == 0)
        return true;
    for (size_t i = 0; i < nd->ncidrs; i++)
        if (cidr_contains(&nd->cidrs[i], a))
            return true;
    return false;
}

void node_event(struct node *nd, int event, const struct member *m)
{
    if (nd->observer)
        nd->observer(nd->observer_ud, event, m);
    if (nd->hooks.on_member)
        nd->hooks.on_member(nd->hooks.ud, event, m);
}

void node_count_drop(struct node *nd, int reason, const struct hs_addr *from,
                     const char *what, const char *why)
{
    char ab[HS_ADDRSTRLEN];
    nd->stats.dropped[reason]++;
    HS_DEBUG(nd->log, "dropped %s: reason=%s from=%s detail=%s",
             what ? what : "packet", node_drop_name(reason),
             from ? addr_format(from, ab, sizeof ab) : "-",
             why ? why : "-");
}

void node_refuse(struct node *nd, int reason, const struct hs_addr *from,
                 const char *what, const char *why)
{
    node_count_drop(nd, reason, from, what, why);
    if (from == NULL)
        return;
    for (size_t i = 0; i < nd->nnoted; i++) {
        const struct noted *k = &nd->noted[i];
        if (k->reason == reason && k->len == from->len &&
            memcmp(k->ip, from->ip, from->len) == 0)
            return;
    }
    /* Remember it, forgetting the oldest when full. */
    struct noted *k = &nd->noted[nd->noted_next];
    nd->noted_next = (nd->noted_next + 1) % NODE_NOTED_MAX;
    if (nd->nnoted < NODE_NOTED_MAX)
        nd->nnoted++;
    memcpy(k->ip, from->ip, from->len);
    k->len = from->len;
    k->reason = (uint8_t)reason;
    char ip[HS_ADDRSTRLEN];
    addr_ip_format(from, ip, sizeof ip);
    HS_WARN(nd->log, "refused %s: from=%s reason=%s detail=%s (further "
            "ones from this address are counted in stats, not logged)",
            what ? what : "packet", ip, node_drop_name(reason),
            why ? why : "-");
}

/* Append m to out[0..*got) unless it is self, fails ok, or is there. */
static void pick_one(struct node *nd, struct member **out, size_t *got,
                     struct member *m,
                     bool (*ok)(const struct node *, const struct member *))
{
    if (m == nd->self || !ok(nd, m))
        return;
    for (size_t j = 0; j < *got; j++)
        if (out[j] == m)
            return;
    out[(*got)++] = m;
}

size_t node_pick(struct node *nd, struct member **out, size_t k,
                 bool (*ok)(const struct node *, const struct member *))
{
    const struct members *t = &nd->members;
    size_t got = 0, n = t->n;
    if (n <= 256) {
        /* Small tables: a partial Fisher-Yates shuffle, so no candidate
         * is missed by bad luck (memberlist's latest kRandomNodes). */
        uint16_t idx[256];
        for (size_t i = 0; i < n; i++)
            idx[i] = (uint16_t)i;
        for (size_t i = 0; i < n && got < k; i++) {
            size_t j = i + node_rand_n(nd, n - i);
            uint16_t x = idx[j];
            idx[j] = idx[i];
            idx[i] = x;
            pick_one(nd, out, &got, t->order[x], ok);
        }
        return got;
    }
    /* Large tables: random tries (memberlist 0.2.2), then a scan from a
     * random place if the candidates are scarce. */
    for (size_t tries = 0; tries < 3 * k + 32 && got < k; tries++)
        pick_one(nd, out, &got, t->order[node_rand_n(nd, n)], ok);
    size_t start = node_rand_n(nd, n);
    for (size_t i = 0; i < n && got < k; i++)
        pick_one(nd, out, &got, t->order[(start + i) % n], ok);
    return got;
}

/* ===== Sending ===== */

static void count_out(struct node *nd, const uint8_t *msg, size_t len)
{
    if (len == 0)
        return;
    if (msg[0] == WIRE_COMPOUND && len >= 2) {
        node_count_out(nd, WIRE_COMPOUND, len);
        struct wire_part parts[WIRE_COMPOUND_MAX];
        size_t n, trunc;
        if (wire_split_compound(msg + 1, len - 1, parts, &n, &trunc) == 0) {
            for (size_t i = 0; i < n; i++)
                if (parts[i].n)
                    node_count_out(nd, parts[i].p[0], parts[i].n);
            return;
        }
    }
    node_count_out(nd, msg[0], len);
}

int node_send_raw(struct node *nd, const struct hs_addr *to,
                  const struct member *to_member, const uint8_t *msg,
                  size_t len)
{
    if (nd->paused)
        return 0;
    count_out(nd, msg, len);
    struct buf *b = &nd->scratch;
    buf_reset(b);
    if (nd->cfg.enable_compression) {
        wire_put_compress(b, msg, len);
        if (b->err || b->len >= len) /* only when it is smaller */
            buf_reset(b);
    }
    if (b->len == 0)
        buf_append(b, msg, len);
    if (b->len && b->data[0] == WIRE_COMPRESS)
        node_count_out(nd, WIRE_COMPRESS, b->len);
    if (to_member && to_member->vsn[1] >= 5) {
        wire_add_crc(b, 0);
        node_count_out(nd, WIRE_HASCRC, b->len);
    }
    if (b->err)
        return b->err;
    /* Encryption inside, the label outside (reference section 5.3). */
    size_t labellen = strlen(nd->cfg.label);
    if (node_seals(nd) || labellen) {
        struct buf *sb = &nd->sealed;
        buf_reset(sb);
        if (labellen) {
            buf_putc(sb, WIRE_LABEL);
            buf_putc(sb, (uint8_t)labellen);
            buf_append(sb, nd->cfg.label, labellen);
        }
        if (node_seals(nd)) {
            uint8_t nonce[KEYRING_NONCE];
            node_nonce(nd, nonce);
            int rc = keyring_seal(&nd->keyring,
                                  keyring_version(nd->cfg.protocol_version),
                                  nonce, (const uint8_t *)nd->cfg.label,
                                  labellen, b->data, b->len, sb);
            if (rc) {
                HS_ERROR(nd->log, "cannot encrypt a packet: %s",
                         hs_strerror(rc));
                return rc;
            }
            node_count_out(nd, WIRE_ENCRYPT,
                           sb->len - (labellen ? 2 + labellen : 0));
        } else {
            buf_append(sb, b->data, b->len);
        }
        if (sb->err)
            return sb->err;
        b = sb;
    }
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "send packet: to=%s type=%s bytes=%zu",
             addr_format(to, ab, sizeof ab), wire_type_name(msg[0]), b->len);
    int rc = nd->io.send_packet(nd->io.ctx, to, b->data, b->len);
    if (rc) {
        nd->stats.send_errors++;
        return rc;
    }
    nd->stats.packets_out++;
    nd->stats.bytes_out += b->len;
    return 0;
}

/* Fill up to `limit` bytes with broadcasts: memberlist's first, then user
 * messages (memberlist getBroadcasts). Our own (metadata and rumors) only
 * if `ours`: the target is not known to run something else. */
static size_t take_broadcasts(struct node *nd, size_t overhead, size_t limit,
                              struct buf *out, size_t *lens, size_t max,
                              bool ours)
{
    size_t n = 0, m = 0, used = 0;
    size_t members = members_count(&nd->members);
    int tl = retransmit_limit(nd->cfg.retransmit_mult, members);
    bqueue_take(&nd->queue, overhead, limit, tl, out, lens, max, &n);
    for (size_t i = 0; i < n; i++)
        used += lens[i] + overhead;
    if (ours && limit > used && limit - used > overhead + 1 && n < max) {
        /* A metadata write is worth more than a membership rumor: a node
         * that misses it waits for the next push/pull. Let every node
         * tell it to at least a full round of gossip targets, which in a
         * small cluster is everyone. */
        int mtl = tl < nd->cfg.gossip_nodes ? nd->cfg.gossip_nodes : tl;
        m = metadata_take(nd->store, overhead, limit - used, mtl, out,
                          lens + n, max - n);
        for (size_t i = n; i < n + m; i++)
            used += lens[i] + overhead;
        n += m;
        m = 0;
    }
    if (ours && limit > used && limit - used > overhead + 1 && n < max)
        bqueue_take(&nd->user_queue, overhead, limit - used, tl, out,
                    lens + n, max - n, &m);
    return n + m;
}

/* Turn msgs laid end to end in `all` into one message: itself if single,
 * else a compound. The result goes to `out`. */
static int pack(const struct buf *all, const size_t *lens, size_t n,
                struct buf *out)
{
    if (n == 1)
        return buf_append(out, all->data, all->len);
    struct wire_part parts[WIRE_COMPOUND_MAX];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i].p = all->data + off;
        parts[i].n = lens[i];
        off += lens[i];
    }
    return wire_put_compound(out, parts, n);
}

size_t node_packet_overhead(const struct node *nd)
{
    size_t labellen = strlen(nd->cfg.label);
    size_t o = labellen ? 2 + labellen : 0;
    if (node_seals(nd))
        o += keyring_overhead(keyring_version(nd->cfg.protocol_version));
    return o;
}

int node_send_msg(struct node *nd, const struct hs_addr *to,
                  const uint8_t *msg, size_t len)
{
    size_t limit = (size_t)nd->cfg.udp_buffer_size;
    size_t fixed = len + WIRE_COMPOUND_HEADER + node_packet_overhead(nd);
    struct buf extra = BUF_INIT, pkt = BUF_INIT;
    size_t lens[WIRE_COMPOUND_MAX];
    size_t n = 0;
    if (fixed < limit && !nd->paused)
        /* Probes and acks go to addresses, not members: in a cluster
         * with foreign members, ours ride the gossip rounds only. */
        n = take_broadcasts(nd, WIRE_COMPOUND_OVERHEAD, limit - fixed, &extra,
                            lens + 1, WIRE_COMPOUND_MAX - 1, !nd->mixed);
    /* Go looks the destination up by its bare IP as a node name, so the
     * generic path gets a CRC only when a node is named by its IP. */
    const struct member *named = NULL;
    if (nd->members.ip_named) {
        char ipname[HS_ADDRSTRLEN];
        addr_ip_format(to, ipname, sizeof ipname);
        named = members_find(&nd->members, ipname, strlen(ipname));
    }
    int rc;
    if (n == 0) {
        rc = node_send_raw(nd, to, named, msg, len);
    } else {
        struct wire_part parts[WIRE_COMPOUND_MAX];
        parts[0].p = msg;
        parts[0].n = len;
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            parts[i + 1].p = extra.data + off;
            parts[i + 1].n = lens[i + 1];
            off += lens[i + 1];
        }
        rc = wire_put_compound(&pkt, parts, n + 1);
        if (rc == 0)
            rc = node_send_raw(nd, to, named, pkt.data, pkt.len);
    }
    buf_free(&extra);
    buf_free(&pkt);
    return rc;
}

void node_queue_alive(struct node *nd, struct member *m,
                      const struct buf *msg)
{
    if (!msg->err && bqueue_push_lazy(&nd->queue, &m->bcast, msg->len,
                                      false) == 0)
        nd->stats.broadcasts_queued++;
}

/* The queue's writer of lazy news: an alive about the slot's member. */
static void queue_encode(void *ud, struct bcast **slot, struct buf *out)
{
    (void)ud;
    const struct member *m = (const struct member *)(const void *)(
        (const char *)slot - offsetof(struct member, bcast));
    members_write_alive(m, out);
}

void node_queue_broadcast(struct node *nd, struct member *about,
                          const struct buf *msg, bool notify)
{
    if (msg->err)
        return;
    if (bqueue_push(&nd->queue, about ? &about->bcast : NULL, msg->data,
                    msg->len, notify) == 0)
        nd->stats.broadcasts_queued++;
}

/* ===== Gossip (SWIM's dissemination component, piggyback-free round) */

static bool gossip_target(const struct node *nd, const struct member *m)
{
    switch (m->state) {
    case MEMBER_ALIVE:
    case MEMBER_SUSPECT:
        return true;
    case MEMBER_DEAD:
        return node_now(nd) - m->state_change <=
               nd->cfg.gossip_to_the_dead_time;
    default:
        return false;
    }
}

static void gossip_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, gossip_tick);
    node_arm(nd, t, node_now(nd) + nd->cfg.gossip_interval);
    if (nd->paused || nd->cfg.gossip_nodes <= 0)
        return;
    struct member *peers[1024];
    size_t k = node_pick(nd, peers,
                         HS_MIN((size_t)nd->cfg.gossip_nodes, 1024),
                         gossip_target);
    size_t limit = (size_t)nd->cfg.udp_buffer_size - WIRE_COMPOUND_HEADER -
                   node_packet_overhead(nd);
    struct buf all = BUF_INIT, pkt = BUF_INIT;
    size_t lens[WIRE_COMPOUND_MAX];
    for (size_t i = 0; i < k; i++) {
        buf_reset(&all);
        buf_reset(&pkt);
        size_t n = take_broadcasts(nd, WIRE_COMPOUND_OVERHEAD, limit, &all,
                                   lens, WIRE_COMPOUND_MAX,
                                   peers[i]->peer != PEER_FOREIGN);
        if (n == 0)
            continue;
        if (pack(&all, lens, n, &pkt) == 0)
            node_send_raw(nd, &peers[i]->addr, peers[i], pkt.data, pkt.len);
    }
    buf_free(&all);
    buf_free(&pkt);
}

/* ===== User messages ===== */

static uint64_t rumor_id(const char *from, size_t n, uint64_t seq)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then mixed with seq */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)from[i];
        h *= 1099511628211ull;
    }
    h ^= seq * 0x9e3779b97f4a7c15ull;
    h ^= h >> 31;
    return h ? h : 1; /* 0 marks an empty slot */
}

static void seen_erase(struct node *nd, uint64_t id)
{
    size_t mask = RUMOR_SLOTS - 1, i = id & mask;
    while (nd->seen[i] != id) {
        if (nd->seen[i] == 0)
            return;
        i = (i + 1) & mask;
    }
    nd->seen[i] = 0;
    /* Backward shift keeps linear probing intact. */
    for (size_t j = (i + 1) & mask; nd->seen[j]; j = (j + 1) & mask) {
        uint64_t x = nd->seen[j];
        nd->seen[j] = 0;
        size_t k = x & mask;
        while (nd->seen[k])
            k = (k + 1) & mask;
        nd->seen[k] = x;
    }
}

/* True if the rumor is new (and remember it). */
static bool rumor_new(struct node *nd, uint64_t id)
{
    if (nd->seen == NULL) {
        nd->seen = hs_calloc(RUMOR_SLOTS, sizeof *nd->seen);
        nd->seen_ring = hs_calloc(RUMOR_KEEP, sizeof *nd->seen_ring);
        if (nd->seen == NULL || nd->seen_ring == NULL) {
            hs_free(nd->seen);
            hs_free(nd->seen_ring);
            nd->seen = nd->seen_ring = NULL;
            return true; /* cannot tell: deliver */
        }
    }
    size_t mask = RUMOR_SLOTS - 1, i = id & mask;
    for (; nd->seen[i]; i = (i + 1) & mask)
        if (nd->seen[i] == id)
            return false;
    if (nd->seen_n == RUMOR_KEEP) { /* forget the oldest */
        seen_erase(nd, nd->seen_ring[nd->seen_pos]);
        nd->seen_n--;
        i = id & mask;
        while (nd->seen[i])
            i = (i + 1) & mask;
    }
    nd->seen[i] = id;
    nd->seen_ring[nd->seen_pos] = id;
    nd->seen_pos = (nd->seen_pos + 1) % RUMOR_KEEP;
    nd->seen_n++;
    return true;
}

void node_peer_hearsay(struct node *nd, const char *name, size_t len)
{
    struct member *m = members_find(&nd->members, name, len);
    if (m)
        m->peer = PEER_HEARSAY;
}

static struct member *member_at(const struct node *nd,
                                const struct hs_addr *addr)
{
    for (size_t i = 0; i < nd->members.n; i++)
        if (addr_eq(&nd->members.order[i]->addr, addr))
            return nd->members.order[i];
    return NULL;
}

void node_peer_foreign(struct node *nd, const struct hs_addr *addr)
{
    struct member *m = member_at(nd, addr);
    if (m == NULL || m == nd->self || m->peer == PEER_FOREIGN)
        return;
    m->peer = PEER_FOREIGN;
    if (!nd->mixed)
        HS_INFO(nd->log, "foreign members in the cluster: metadata and "
                "rumors skip them: first=%s", m->name);
    else
        HS_DEBUG(nd->log, "foreign member: member=%s", m->name);
    nd->mixed = true;
}

bool node_peer_is_foreign(const struct node *nd, const struct hs_addr *addr)
{
    if (!nd->mixed)
        return false;
    const struct member *m = member_at(nd, addr);
    return m && m->peer == PEER_FOREIGN;
}

void node_user_message(struct node *nd, const uint8_t *p, size_t n,
                       const struct hs_addr *from)
{
    struct wire_envelope e;
    int rc = wire_get_envelope(p, n, &e);
    nd->stats.user_messages_in++;
    if (rc == 0)
        node_peer_hearsay(nd, e.from, e.fromlen);
    if (rc == HS_ENOTFOUND) {
        node_peer_foreign(nd, from);
        if (nd->hooks.on_message)
            nd->hooks.on_message(nd->hooks.ud, NULL, 0, p, n);
        return;
    }
    if (rc == 0 && e.kind == WIRE_ENV_RUMOR && e.len >= 8) {
        uint64_t seq = (uint64_t)hs_be32(e.body) << 32 | hs_be32(e.body + 4);
        if (!rumor_new(nd, rumor_id(e.from, e.fromlen, seq))) {
            nd->stats.rumors_duplicate++;
            return;
        }
        /* Pass it on, as received, then deliver it. */
        struct buf b = BUF_INIT;
        buf_putc(&b, WIRE_USER);
        buf_append(&b, p, n);
        if (!b.err && bqueue_push(&nd->user_queue, NULL, b.data, b.len,
                                  false) == 0)
            nd->stats.broadcasts_queued++;
        buf_free(&b);
        if (nd->hooks.on_message)
            nd->hooks.on_message(nd->hooks.ud, e.from, e.fromlen, e.body + 8,
                                 e.len - 8);
        return;
    }
    if (rc == 0 && e.kind == WIRE_ENV_META) {
        metadata_on_gossip(nd->store, e.body, e.len, from);
        return;
    }
    if (rc || e.kind != WIRE_ENV_USER) {
        node_count_drop(nd, rc ? NODE_DROP_MALFORMED : NODE_DROP_UNKNOWN_TYPE,
                        from, "user message", "bad hearsay envelope");
        return;
    }
    if (nd->hooks.on_message)
        nd->hooks.on_message(nd->hooks.ud, e.from, e.fromlen, e.body, e.len);
}

/* ===== Receiving ===== */

static void walk_packet(struct node *nd, const struct hs_addr *from,
                        const uint8_t *p, size_t n);

struct rx {
    struct node *nd;
    const struct hs_addr *from;
};

static void on_leaf(void *ud, uint8_t type, const uint8_t *body, size_t n)
{
    struct rx *rx = ud;
    struct node *nd = rx->nd;
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *why = NULL;
    node_count_in(nd, type, n + 1); /* the type byte and the body */
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "recv message: from=%s type=%s bytes=%zu",
             addr_format(rx->from, ab, sizeof ab), wire_type_name(type), n);
    switch (type) {
    case WIRE_PING:
        probe_on_ping(nd, rx->from, body, n);
        return;
    case WIRE_INDIRECT_PING:
        probe_on_indirect(nd, rx->from, body, n);
        return;
    case WIRE_ACK:
        probe_on_ack(nd, rx->from, body, n);
        return;
    case WIRE_NACK:
        probe_on_nack(nd, rx->from, body, n);
        return;
    case WIRE_ALIVE: {
        struct wire_alive a;
        if (!node_ip_allowed(nd, rx->from)) {
            node_count_drop(nd, NODE_DROP_CIDR, rx->from, "alive",
                            "source not in cidrs_allowed");
            return;
        }
        mp_reader_init(&r, body, n);
        int rc = wire_get_alive(&r, &a, &sc, &why);
        if (rc) {
            node_count_drop(nd, rc == HS_ETRUNC ? NODE_DROP_TRUNCATED
                                                : NODE_DROP_MALFORMED,
                            rx->from, "alive", why);
            return;
        }
        if (a.port == 0 || nd->cfg.protocol_version < 2)
            a.port = nd->advertise.port;
        members_on_alive(nd, &a, false, rx->from);
        return;
    }
    case WIRE_SUSPECT:
    case WIRE_DEAD: {
        struct wire_suspect s;
        mp_reader_init(&r, body, n);
        int rc = wire_get_suspect(&r, &s, &sc, &why);
        if (rc) {
            node_count_drop(nd, rc == HS_ETRUNC ? NODE_DROP_TRUNCATED
                                                : NODE_DROP_MALFORMED,
                            rx->from, wire_type_name(type), why);
            return;
        }
        if (type == WIRE_SUSPECT)
            members_on_suspect(nd, &s);
        else
            members_on_dead(nd, &s);
        return;
    }
    case WIRE_USER:
        node_user_message(nd, body, n, rx->from);
        return;
    default:
        node_count_drop(nd, NODE_DROP_UNKNOWN_TYPE, rx->from, "packet",
                        wire_type_name(type));
        return;
    }
}

/* Without a key, a datagram starting 00 or 01 that is no ping or indirect
 * ping is most likely encrypted: say so rather than "malformed". */
static bool looks_encrypted(const uint8_t *p, size_t n)
{
    if (n < KEYRING_OVERHEAD_V1 || p[0] > 1)
        return false;
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *why = NULL;
    mp_reader_init(&r, p + 1, n - 1);
    if (p[0] == WIRE_PING) {
        struct wire_ping m;
        return wire_get_ping(&r, &m, &sc, &why) != 0;
    }
    struct wire_indirect_ping m;
    return wire_get_indirect_ping(&r, &m, &sc, &why) != 0;
}

/* Strip the label and open the encryption (reference section 5.4). The
 * plaintext goes to *pp, *pn (in `out` when decrypted); false when the
 * packet is refused. */
static bool unwrap(struct node *nd, const struct hs_addr *from,
                   const uint8_t **pp, size_t *pn, struct buf *out)
{
    const uint8_t *p = *pp, *label = NULL;
    size_t n = *pn, labellen = 0, want = strlen(nd->cfg.label);
    bool skip = nd->cfg.skip_inbound_label_check;
    if (n >= 1 && p[0] == WIRE_LABEL) {
        if (n < 2 || p[1] == 0 || n - 2 < p[1]) {
            node_refuse(nd, NODE_DROP_LABEL, from, "packet",
                        n >= 2 && p[1] == 0 ? "empty label header"
                                            : "label header cut short");
            return false;
        }
        label = p + 2;
        labellen = p[1];
        p += 2 + labellen;
        n -= 2 + labellen;
        if (skip) {
            node_refuse(nd, NODE_DROP_LABEL, from, "packet",
                        "labelled, and skip_inbound_label_check is set");
            return false;
        }
    }
    /* skip_inbound_label_check: unlabelled traffic carries our label. */
    if (!skip &&
        (labellen != want || (want && memcmp(label, nd->cfg.label, want)))) {
        node_refuse(nd, NODE_DROP_LABEL, from, "packet",
                    labellen ? "another label" : "no label");
        return false;
    }
    if (keyring_empty(&nd->keyring)) {
        if (looks_encrypted(p, n)) {
            node_refuse(nd, NODE_DROP_ENCRYPTED, from, "packet",
                        "looks encrypted, and no key is installed");
            return false;
        }
    } else {
        const char *why = "not encrypted";
        int rc = keyring_open(&nd->keyring, (const uint8_t *)nd->cfg.label,
                              want, p, n, out, NULL, &why);
        if (rc == 0) {
            node_count_in(nd, WIRE_ENCRYPT, n);
            p = out->data;
            n = out->len;
        } else if (nd->cfg.gossip_verify_incoming) {
            /* A blob starts with its version, 0 or 1; other first bytes
             * are plaintext messages. */
            node_refuse(nd, n && p[0] > 1 ? NODE_DROP_PLAINTEXT
                                          : NODE_DROP_DECRYPT,
                        from, "packet",
                        n && p[0] > 1 ? "not encrypted, and "
                                        "gossip_verify_incoming is set"
                                      : why);
            return false;
        } /* else taken as plaintext (gossip_verify_incoming false) */
    }
    if (n == 0) {
        node_count_drop(nd, NODE_DROP_MALFORMED, from, "packet", "empty");
        return false;
    }
    *pp = p;
    *pn = n;
    return true;
}

void node_io_packet(struct node *nd, const struct hs_addr *from,
                    const uint8_t *p, size_t n)
{
    nd->stats.packets_in++;
    nd->stats.bytes_in += n;
    if (nd->paused) {
        nd->stats.dropped[NODE_DROP_PAUSED]++;
        return;
    }
    if (nd->phase == PHASE_NEW)
        return;
    /* The decrypted packet lives in nd->rx, or in a buffer of its own
     * should a handler ever feed the node another packet meanwhile. */
    struct buf own = BUF_INIT, *out = nd->rx_busy ? &own : &nd->rx;
    bool mine = out == &nd->rx;
    buf_reset(out);
    if (mine)
        nd->rx_busy = true;
    if (unwrap(nd, from, &p, &n, out))
        walk_packet(nd, from, p, n);
    if (mine)
        nd->rx_busy = false;
    buf_free(&own);
}

static void walk_packet(struct node *nd, const struct hs_addr *from,
                        const uint8_t *p, size_t n)
{
    struct wire_limits lim = {PACKET_MAX_DECOMPRESSED, PACKET_MAX_DEPTH};
    struct rx rx = {nd, from};
    /* Wrappers are not leaves: count the outermost ones here. */
    size_t o = n >= WIRE_CRC_OVERHEAD && p[0] == WIRE_HASCRC
                   ? WIRE_CRC_OVERHEAD : 0;
    if (o)
        node_count_in(nd, WIRE_HASCRC, n);
    if (n > o && (p[o] == WIRE_COMPRESS || p[o] == WIRE_COMPOUND))
        node_count_in(nd, p[o], n - o);
    size_t trunc = 0;
    const char *why = NULL;
    int rc = wire_walk_packet(p, n, &lim, on_leaf, &rx, &trunc, &why);
    if (rc) {
        int reason = rc == HS_ECRC       ? NODE_DROP_CRC
                     : rc == HS_ETRUNC   ? NODE_DROP_TRUNCATED
                     : rc == HS_ETOOBIG  ? NODE_DROP_TOO_BIG
                     : rc == HS_EUNSUPP || rc == HS_EDECOMPRESS
                                         ? NODE_DROP_DECOMPRESS
                                         : NODE_DROP_MALFORMED;
        node_count_drop(nd, reason, from, "packet", why);
    }
}

/* ===== Lifecycle ===== */

static void leave_finished(void *ud, struct bcast *b);

/* ===== Reconnect (Serf's reconnect_interval) ===== */

#define FAILED_MAX 1024

void node_member_failed(struct node *nd, const struct member *m)
{
    if (nd->cfg.reconnect_interval == 0)
        return;
    size_t i = 0;
    while (i < nd->nfailed && strcmp(nd->failed[i].name, m->name))
        i++;
    if (i == nd->nfailed) {
        if (nd->failed == NULL)
            nd->failed = hs_calloc(FAILED_MAX, sizeof *nd->failed);
        if (nd->failed == NULL)
            return;
        if (nd->nfailed == FAILED_MAX) { /* forget the oldest */
            memmove(nd->failed, nd->failed + 1,
                    (FAILED_MAX - 1) * sizeof *nd->failed);
            nd->nfailed--;
        }
        i = nd->nfailed++;
    }
    snprintf(nd->failed[i].name, sizeof nd->failed[i].name, "%s", m->name);
    nd->failed[i].addr = m->addr;
    nd->failed[i].since = node_now(nd);
}

void node_member_back(struct node *nd, const struct member *m)
{
    for (size_t i = 0; i < nd->nfailed; i++) {
        if (strcmp(nd->failed[i].name, m->name) == 0) {
            nd->failed[i] = nd->failed[--nd->nfailed];
            return;
        }
    }
}

static void reconnect_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, reconnect_tick);
    node_arm(nd, t, node_now(nd) + nd->cfg.reconnect_interval);
    if (nd->paused || nd->phase != PHASE_RUNNING)
        return;
    uint64_t now = node_now(nd);
    for (size_t i = 0; i < nd->nfailed;) {
        const struct member *m = members_find(&nd->members,
                                              nd->failed[i].name,
                                              strlen(nd->failed[i].name));
        if (now - nd->failed[i].since > nd->cfg.reconnect_timeout ||
            (m && m->state == MEMBER_ALIVE))
            nd->failed[i] = nd->failed[--nd->nfailed];
        else
            i++;
    }
    if (nd->nfailed == 0)
        return;
    struct failed *f = &nd->failed[node_rand_n(nd, nd->nfailed)];
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "reconnecting: member=%s addr=%s", f->name,
             addr_format(&f->addr, ab, sizeof ab));
    pushpull_start(nd, &f->addr, true, NULL);
}

/* Upkeep of the metadata store: collect old tombstones, a batch at a
 * time (again soon while more are due). */
#define META_TICK_MS 10000
#define META_TICK_AGAIN_MS 10

static void meta_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, meta_tick);
    bool more = metadata_tick(nd->store);
    node_arm(nd, t,
             node_now(nd) + (more ? META_TICK_AGAIN_MS : META_TICK_MS));
}

int node_new(const struct config *cfg, const struct io *io,
             const struct hooks *hooks, const struct hs_logger *log,
             struct node **out)
{
    struct node *nd = hs_calloc(1, sizeof *nd);
    if (nd == NULL)
        return HS_ENOMEM;
    if (config_copy(&nd->cfg, cfg)) {
        hs_free(nd);
        return HS_ENOMEM;
    }
    nd->io = *io;
    if (hooks)
        nd->hooks = *hooks;
    nd->log = log;
    nd->self_name_len = strlen(nd->cfg.name);
    uint64_t seed;
    io->random(io->ctx, &seed, sizeof seed);
    hs_rng_seed(&nd->rng, seed);
    /* A restarted node must not reuse the ids of its earlier life. */
    nd->rumor_seq = node_rand(nd) >> 1;
    timers_init(&nd->timers);
    nd->wakeup_at = UINT64_MAX;
    members_init(&nd->members);
    bqueue_init(&nd->queue, QUEUE_MAX);
    nd->queue.on_finished = leave_finished;
    nd->queue.encode = queue_encode;
    nd->queue.ud = nd;
    bqueue_init(&nd->user_queue, USER_QUEUE_MAX);
    timer_init(&nd->probe_tick, probe_tick);
    timer_init(&nd->gossip_tick, gossip_tick);
    timer_init(&nd->pushpull_tick, pushpull_tick);
    timer_init(&nd->leave_timer, NULL);
    timer_init(&nd->meta_tick, meta_tick);
    timer_init(&nd->reconnect_tick, reconnect_tick);
    probe_init(nd);
    keyring_init(&nd->keyring);
    uint8_t key[KEYRING_KEY_MAX];
    size_t keylen = 0;
    if (config_secret_key(&nd->cfg, key, &keylen)) {
        node_close(nd);
        return HS_EINVAL;
    }
    if (keylen)
        keyring_add(&nd->keyring, key, keylen);
    keyring_wipe(key, sizeof key);
    if (metadata_new(nd, &nd->store)) {
        node_close(nd);
        return HS_ENOMEM;
    }
    if (nd->cfg.cidrs_allowed.n) {
        nd->cidrs = hs_calloc(nd->cfg.cidrs_allowed.n, sizeof *nd->cidrs);
        if (nd->cidrs == NULL) {
            node_close(nd);
            return HS_ENOMEM;
        }
        for (size_t i = 0; i < nd->cfg.cidrs_allowed.n; i++)
            if (cidr_parse(nd->cfg.cidrs_allowed.v[i], &nd->cidrs[i]) == 0)
                nd->ncidrs++;
    }
    *out = nd;
    return 0;
}

static int fetch_meta(struct node *nd, struct buf *out)
{
    if (nd->hooks.node_meta == NULL)
        return HS_ENOTFOUND;
    struct buf b = BUF_INIT;
    int rc = nd->hooks.node_meta(nd->hooks.ud, WIRE_META_MAX, &b);
    if (rc == 0 && b.len > WIRE_META_MAX)
        rc = HS_ETOOBIG;
    if (rc == 0 && b.err)
        rc = b.err;
    if (rc == 0) {
        buf_reset(out);
        buf_append(out, b.data, b.len);
    }
    buf_free(&b);
    return rc;
}

int node_start(struct node *nd, const struct hs_addr *advertise)
{
    if (nd->phase != PHASE_NEW)
        return HS_ESTATE;
    nd->advertise = *advertise;
    fetch_meta(nd, &nd->meta);
    uint8_t vsn[6];
    node_vsn(nd, vsn);
    nd->incarnation = 1;
    struct wire_alive a = {
        .incarnation = 1,
        .node = wire_raw(nd->cfg.name, nd->self_name_len),
        .addr = wire_raw(advertise->ip, advertise->len),
        .port = advertise->port,
        .meta = nd->meta.len ? wire_raw(nd->meta.data, nd->meta.len)
                             : (struct wire_raw){0},
        .vsn = wire_raw(vsn, 6),
    };
    members_on_alive(nd, &a, true, NULL);
    nd->self = members_find(&nd->members, nd->cfg.name, nd->self_name_len);
    if (nd->self == NULL)
        return HS_ENOMEM;
    nd->phase = PHASE_RUNNING;
    uint64_t now = node_now(nd);
    /* Random stagger so that nodes started together do not tick
     * together (memberlist triggerFunc). */
    node_arm(nd, &nd->probe_tick,
             now + node_rand_n(nd, nd->cfg.probe_interval));
    node_arm(nd, &nd->gossip_tick,
             now + node_rand_n(nd, nd->cfg.gossip_interval));
    if (nd->cfg.push_pull_interval > 0)
        node_arm(nd, &nd->pushpull_tick,
                 now + node_rand_n(nd, nd->cfg.push_pull_interval));
    node_arm(nd, &nd->meta_tick, now + META_TICK_MS);
    if (nd->cfg.reconnect_interval > 0)
        node_arm(nd, &nd->reconnect_tick,
                 now + node_rand_n(nd, nd->cfg.reconnect_interval) + 1);
    char ab[HS_ADDRSTRLEN];
    HS_INFO(nd->log, "node started: name=%s addr=%s", nd->cfg.name,
            addr_format(advertise, ab, sizeof ab));
    return 0;
}

void node_close(struct node *nd)
{
    if (nd == NULL)
        return;
    keyops_close(nd); /* before the streams: no callbacks */
    stream_close_all(nd);
    probe_close(nd);
    while (nd->utimers)
        node_timer_cancel(nd, nd->utimers);
    for (size_t i = 0; i < nd->members.n; i++)
        suspicion_cancel(nd, nd->members.order[i]);
    nd->queue.on_finished = NULL;
    metadata_free(nd->store); /* its streams are closed already */
    bqueue_close(&nd->queue);
    bqueue_close(&nd->user_queue);
    members_close(&nd->members);
    timers_close(&nd->timers);
    buf_free(&nd->meta);
    buf_free(&nd->scratch);
    buf_free(&nd->sealed);
    buf_free(&nd->rx);
    keyring_clear(&nd->keyring);
    hs_free(nd->seen);
    hs_free(nd->seen_ring);
    hs_free(nd->failed);
    hs_free(nd->cidrs);
    config_free(&nd->cfg);
    hs_free(nd);
}

/* ===== Leave, pause ===== */

static void leave_done(struct node *nd, int err)
{
    node_disarm(nd, &nd->leave_timer);
    nd->phase = PHASE_LEFT;
    node_leave_cb cb = nd->leave_cb;
    nd->leave_cb = NULL;
    HS_INFO(nd->log, "left the cluster%s",
            err ? " (timed out waiting for the leave to spread)" : "");
    if (cb)
        cb(nd->leave_ud, err);
}

static void leave_finished(void *ud, struct bcast *b)
{
    struct node *nd = ud;
    (void)b;
    if (nd->phase == PHASE_LEAVING)
        leave_done(nd, 0);
}

static void leave_timeout(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, leave_timer);
    if (nd->phase == PHASE_LEAVING)
        leave_done(nd, HS_ETIMEDOUT);
}

static bool is_alive(const struct node *nd, const struct member *m)
{
    (void)nd;
    return m->state == MEMBER_ALIVE;
}

int node_leave(struct node *nd, uint64_t timeout_ms, node_leave_cb cb,
               void *ud)
{
    if (nd->phase != PHASE_RUNNING)
        return HS_ESTATE;
    if (nd->paused)
        node_resume(nd);
    nd->phase = PHASE_LEAVING;
    nd->leave_cb = cb;
    nd->leave_ud = ud;
    HS_INFO(nd->log, "leaving the cluster: inc=%u", nd->incarnation);
    struct wire_suspect d = {nd->incarnation,
                             wire_raw(nd->cfg.name, nd->self_name_len),
                             wire_raw(nd->cfg.name, nd->self_name_len)};
    members_on_dead(nd, &d);
    struct member *any;
    if (nd->phase == PHASE_LEAVING && node_pick(nd, &any, 1, is_alive) == 0) {
        leave_done(nd, 0); /* nobody to tell */
        return 0;
    }
    if (nd->phase == PHASE_LEAVING && timeout_ms > 0) {
        timer_init(&nd->leave_timer, leave_timeout);
        node_arm(nd, &nd->leave_timer, node_now(nd) + timeout_ms);
    }
    return 0;
}

void node_pause(struct node *nd)
{
    if (nd->paused || nd->phase != PHASE_RUNNING)
        return;
    nd->paused = true;
    probe_close(nd);
    probe_init(nd);
    HS_INFO(nd->log, "heartbeat stopped: name=%s", nd->cfg.name);
}

void node_resume(struct node *nd)
{
    if (!nd->paused)
        return;
    nd->paused = false;
    HS_INFO(nd->log, "heartbeat started: name=%s", nd->cfg.name);
    /* Announce ourselves afresh; a state sync tells us what the cluster
     * thinks of us, and anything it says against us is refuted. */
    members_announce_self(nd);
    struct member *peer;
    if (node_pick(nd, &peer, 1, is_alive) == 1)
        pushpull_start(nd, &peer->addr, false, NULL);
}

bool node_paused(const struct node *nd)
{
    return nd->paused;
}

/* ===== Private data, user messages ===== */

void node_set_observer(struct node *nd, node_observer_fn fn, void *ud)
{
    nd->observer = fn;
    nd->observer_ud = ud;
}

void node_set_hooks(struct node *nd, const struct hooks *hooks)
{
    if (hooks)
        nd->hooks = *hooks;
    else
        memset(&nd->hooks, 0, sizeof nd->hooks);
}

int node_update_meta(struct node *nd)
{
    if (nd->phase != PHASE_RUNNING)
        return HS_ESTATE;
    int rc = fetch_meta(nd, &nd->meta);
    if (rc)
        return rc;
    members_announce_self(nd);
    HS_INFO(nd->log, "private data updated: bytes=%zu inc=%u", nd->meta.len,
            nd->incarnation);
    return 0;
}

/* Envelope overhead of our user messages: magic, version, kind, name. */
static size_t envelope_len(const struct node *nd)
{
    return 6 + HS_MIN(nd->self_name_len, (size_t)255);
}

int node_broadcast(struct node *nd, const void *p, size_t n)
{
    if (n + 1 + envelope_len(nd) + 8 >
        (size_t)nd->cfg.udp_buffer_size - WIRE_COMPOUND_HEADER -
            WIRE_COMPOUND_OVERHEAD - node_packet_overhead(nd))
        return HS_ETOOBIG;
    uint64_t seq = ++nd->rumor_seq;
    rumor_new(nd, rumor_id(nd->cfg.name, nd->self_name_len, seq));
    struct buf b = BUF_INIT;
    buf_putc(&b, WIRE_USER);
    wire_put_envelope(&b, WIRE_ENV_RUMOR, nd->cfg.name, nd->self_name_len);
    buf_put_be32(&b, (uint32_t)(seq >> 32));
    buf_put_be32(&b, (uint32_t)seq);
    buf_append(&b, p, n);
    int rc = b.err ? b.err
                   : bqueue_push(&nd->user_queue, NULL, b.data, b.len, false);
    buf_free(&b);
    if (rc == 0)
        nd->stats.user_messages_out++;
    return rc;
}

int node_send(struct node *nd, const char *name, const void *p, size_t n,
              bool reliable)
{
    const struct member *m = members_find(&nd->members, name, strlen(name));
    if (m == NULL)
        return HS_ENOTFOUND;
    struct buf b = BUF_INIT;
    int rc;
    struct buf env = BUF_INIT;
    wire_put_envelope(&env, WIRE_ENV_USER, nd->cfg.name, nd->self_name_len);
    if (env.err) {
        buf_free(&env);
        return HS_ENOMEM;
    }
    if (reliable) {
        wire_put_user_header(&b, (int64_t)(n + env.len));
        buf_append(&b, env.data, env.len);
        buf_append(&b, p, n);
        struct stream *s = b.err ? NULL
                                 : stream_open(nd, STREAM_USER, &m->addr,
                                               nd->cfg.tcp_timeout);
        rc = b.err ? b.err : s ? stream_set_request(s, b.data, b.len)
                               : HS_EIO;
    } else {
        if (n + 1 + env.len + node_packet_overhead(nd) >
            (size_t)nd->cfg.udp_buffer_size) {
            buf_free(&b);
            buf_free(&env);
            return HS_ETOOBIG;
        }
        buf_putc(&b, WIRE_USER);
        buf_append(&b, env.data, env.len);
        buf_append(&b, p, n);
        rc = b.err ? b.err : node_send_raw(nd, &m->addr, m, b.data, b.len);
    }
    buf_free(&b);
    buf_free(&env);
    if (rc == 0)
        nd->stats.user_messages_out++;
    return rc;
}

/* ===== Timers for user code ===== */

static void utimer_unlink(struct node *nd, struct node_utimer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        nd->utimers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void utimer_fire(struct timer *tm)
{
    struct node_utimer *t = HS_CONTAINER_OF(tm, struct node_utimer, timer);
    struct node *nd = t->nd;
    node_utimer_fn fn = t->fn;
    void *ud = t->ud;
    if (t->repeat) {
        node_arm(nd, tm, node_now(nd) + t->repeat); /* before: fn may cancel */
    } else {
        utimer_unlink(nd, t);
        hs_free(t);
    }
    fn(ud); /* t may be gone now */
}

int node_timer_start(struct node *nd, uint64_t delay, uint64_t repeat,
                     node_utimer_fn fn, void *ud, struct node_utimer **out)
{
    struct node_utimer *t = hs_calloc(1, sizeof *t);
    if (t == NULL)
        return HS_ENOMEM;
    t->nd = nd;
    t->repeat = repeat;
    t->fn = fn;
    t->ud = ud;
    timer_init(&t->timer, utimer_fire);
    t->next = nd->utimers;
    if (nd->utimers)
        nd->utimers->prev = t;
    nd->utimers = t;
    node_arm(nd, &t->timer, node_now(nd) + delay);
    if (out)
        *out = t;
    return 0;
}

void node_timer_cancel(struct node *nd, struct node_utimer *t)
{
    node_disarm(nd, &t->timer);
    utimer_unlink(nd, t);
    hs_free(t);
}

uint64_t node_time(const struct node *nd)
{
    return node_now(nd);
}

/* ===== Encryption and labels ===== */

void node_nonce(struct node *nd, uint8_t nonce[KEYRING_NONCE])
{
    nd->io.random(nd->io.ctx, nonce, KEYRING_NONCE);
}

const struct keyring *node_keyring(const struct node *nd)
{
    return &nd->keyring;
}

void node_set_keyring_observer(struct node *nd, node_keyring_fn fn,
                               void *ud)
{
    nd->keyring_fn = fn;
    nd->keyring_ud = ud;
}

int node_keyring_changed(struct node *nd, char *err, size_t errlen)
{
    if (nd->keyring_fn == NULL)
        return 0;
    return nd->keyring_fn(nd->keyring_ud, &nd->keyring, err, errlen);
}

/* Log a change without naming the key: its position is enough. */
static void keyring_changed(struct node *nd, const char *what)
{
    HS_INFO(nd->log, "keyring: %s: keys=%zu", what, nd->keyring.n);
    char err[256] = "";
    if (node_keyring_changed(nd, err, sizeof err))
        HS_ERROR(nd->log, "keyring: %s", err);
}

int node_keyring_install(struct node *nd, const uint8_t *key, size_t len)
{
    bool had = keyring_find(&nd->keyring, key, len) >= 0;
    int rc = keyring_add(&nd->keyring, key, len);
    if (rc == 0 && !had)
        keyring_changed(nd, nd->keyring.n == 1 ? "key installed as primary "
                        "(encryption on)" : "key installed");
    return rc;
}

int node_reconfigure_security(struct node *nd, const struct config *cfg,
                              char *err, size_t errlen)
{
    struct config c;
    /* Check the settings as they would be, on a copy. */
    if (config_copy(&c, &nd->cfg)) {
        snprintf(err, errlen, "out of memory");
        return HS_ENOMEM;
    }
    c.gossip_verify_incoming = cfg->gossip_verify_incoming;
    c.gossip_verify_outgoing = cfg->gossip_verify_outgoing;
    c.skip_inbound_label_check = cfg->skip_inbound_label_check;
    memcpy(c.label, cfg->label, sizeof c.label);
    memcpy(c.encrypt, cfg->encrypt, sizeof c.encrypt);
    memcpy(c.encrypt_passphrase, cfg->encrypt_passphrase,
           sizeof c.encrypt_passphrase);
    uint8_t key[KEYRING_KEY_MAX];
    size_t keylen = 0;
    int rc = config_validate(&c, err, errlen);
    if (rc == 0)
        rc = config_secret_key(&c, key, &keylen);
    if (rc) {
        config_free(&c);
        return HS_EINVAL;
    }
    bool changed =
        nd->cfg.gossip_verify_incoming != c.gossip_verify_incoming ||
        nd->cfg.gossip_verify_outgoing != c.gossip_verify_outgoing ||
        nd->cfg.skip_inbound_label_check != c.skip_inbound_label_check ||
        strcmp(nd->cfg.label, c.label);
    nd->cfg.gossip_verify_incoming = c.gossip_verify_incoming;
    nd->cfg.gossip_verify_outgoing = c.gossip_verify_outgoing;
    nd->cfg.skip_inbound_label_check = c.skip_inbound_label_check;
    memcpy(nd->cfg.label, c.label, sizeof nd->cfg.label);
    memcpy(nd->cfg.encrypt, c.encrypt, sizeof c.encrypt);
    memcpy(nd->cfg.encrypt_passphrase, c.encrypt_passphrase,
           sizeof c.encrypt_passphrase);
    config_free(&c);
    if (changed) {
        char lb[CONFIG_LABEL_MAX * 4 + 1];
        HS_INFO(nd->log, "security settings: gossip_verify_incoming=%s "
                "gossip_verify_outgoing=%s label=\"%s\" "
                "skip_inbound_label_check=%s",
                nd->cfg.gossip_verify_incoming ? "true" : "false",
                nd->cfg.gossip_verify_outgoing ? "true" : "false",
                hs_log_quote(nd->cfg.label, strlen(nd->cfg.label), lb,
                             sizeof lb),
                nd->cfg.skip_inbound_label_check ? "true" : "false");
    }
    /* A configured key starts encryption on a node without one; once
     * there is a keyring, hearsay keys manages it. */
    if (keylen && keyring_empty(&nd->keyring))
        rc = node_keyring_install(nd, key, keylen);
    else if (keylen && keyring_find(&nd->keyring, key, keylen) < 0)
        HS_INFO(nd->log, "keyring: the configured key is not installed; "
                "the keyring is managed with hearsay keys once it has a "
                "key");
    keyring_wipe(key, sizeof key);
    return rc;
}

/* ===== Queries ===== */

struct metadata *node_metadata(const struct node *nd)
{
    return nd->store;
}

uint64_t node_wall(const struct node *nd)
{
    return nd->io.wall(nd->io.ctx);
}

bool node_self_view(const struct node *nd, struct member *out)
{
    if (nd->phase == PHASE_NEW && nd->advertise.len == 0)
        return false;
    memset(out, 0, sizeof *out);
    out->name = nd->cfg.name;
    out->name_len = nd->self_name_len;
    out->addr = nd->advertise;
    out->state = MEMBER_ALIVE;
    out->incarnation = nd->incarnation ? nd->incarnation : 1;
    node_vsn(nd, out->vsn);
    return true;
}

const struct member *node_self(const struct node *nd)
{
    return nd->self;
}

const struct members *node_members(const struct node *nd)
{
    return &nd->members;
}

const struct node_stats *node_stats(const struct node *nd)
{
    return &nd->stats;
}

const struct config *node_config(const struct node *nd)
{
    return &nd->cfg;
}

int node_health(const struct node *nd)
{
    return nd->awareness;
}

size_t node_broadcast_queue_len(const struct node *nd)
{
    return bqueue_len(&nd->queue) + bqueue_len(&nd->user_queue) +
           metadata_queued(nd->store);
}
