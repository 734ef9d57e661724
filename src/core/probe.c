/* probe.c: the failure detector (SWIM section 3 with Lifeguard).
 *
 * Every probe_interval we ping the next member in the shuffled round-robin
 * order (SWIM 4.3). With no ack after probe_timeout we ask indirect_checks
 * other members to ping it for us (SWIM 3.1, ping-req) and, if it speaks
 * protocol 3+, try a TCP ping too. With no ack by the end of the probe
 * interval, scaled by our health score (Lifeguard IV-A), we suspect it.
 * Relays answer indirect probes and send a nack when the target stays
 * silent (Lifeguard IV-A, so the prober can tell its own trouble from the
 * target's). */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

static void probe_indirect(struct timer *t);
static void probe_expire(struct timer *t);
static void tcp_ping_done(struct stream *s, int err, const char *why,
                          const uint8_t *p, size_t n);

void probe_init(struct node *nd)
{
    memset(&nd->probe, 0, sizeof nd->probe);
    timer_init(&nd->probe.indirect, probe_indirect);
    timer_init(&nd->probe.expire, probe_expire);
}

static void relay_free(struct node *nd, struct relay *r)
{
    node_disarm(nd, &r->timeout);
    hs_free(r->reply_name);
    hs_free(r);
}

void probe_close(struct node *nd)
{
    struct probe *p = &nd->probe;
    node_disarm(nd, &p->indirect);
    node_disarm(nd, &p->expire);
    if (p->tcp) {
        stream_finish(p->tcp); /* its answer no longer matters */
        p->tcp = NULL;
    }
    p->active = false;
    while (nd->relays) {
        struct relay *r = nd->relays;
        nd->relays = r->next;
        relay_free(nd, r);
    }
}

void probe_forget(struct node *nd, struct member *m)
{
    if (nd->probe.active && nd->probe.target == m) {
        node_disarm(nd, &nd->probe.indirect);
        node_disarm(nd, &nd->probe.expire);
        nd->probe.active = false;
        nd->probe.target = NULL;
    }
}

static void self_source(struct node *nd, struct wire_raw *addr, uint16_t *port,
                        struct wire_raw *name)
{
    *addr = wire_raw(nd->advertise.ip, nd->advertise.len);
    *port = nd->advertise.port;
    *name = wire_raw(nd->cfg.name, nd->self_name_len);
}

/* ===== Our probe ===== */

static bool probe_candidate(const struct node *nd, const struct member *m)
{
    return m != nd->self && !member_dead_or_left(m);
}

static struct member *next_target(struct node *nd)
{
    struct members *t = &nd->members;
    size_t checked = 0;
    for (;;) {
        if (checked >= t->n)
            return NULL;
        if (nd->probe_index >= t->n) {
            members_reset(nd); /* reap and shuffle at each wrap */
            nd->probe_index = 0;
            checked++;
            continue;
        }
        struct member *m = t->order[nd->probe_index++];
        if (probe_candidate(nd, m))
            return m;
        checked++;
    }
}

static void send_ping(struct node *nd, struct member *m, uint32_t seq)
{
    struct wire_ping ping = {.seq = seq,
                             .node = wire_raw(m->name, m->name_len)};
    self_source(nd, &ping.source_addr, &ping.source_port, &ping.source_node);
    struct buf b = BUF_INIT;
    wire_put_ping(&b, &ping);
    if (b.err) {
        buf_free(&b);
        return;
    }
    if (m->state == MEMBER_ALIVE) {
        node_send_msg(nd, &m->addr, b.data, b.len);
    } else {
        /* A suspect gets the accusation with the ping, so that it can
         * refute at once; no piggyback, CRC by its version. */
        struct buf s = BUF_INIT, c = BUF_INIT;
        struct wire_suspect sus = {m->incarnation,
                                   wire_raw(m->name, m->name_len),
                                   wire_raw(nd->cfg.name, nd->self_name_len)};
        wire_put_suspect(&s, &sus);
        struct wire_part parts[2] = {{b.data, b.len}, {s.data, s.len}};
        if (!s.err && wire_put_compound(&c, parts, 2) == 0)
            node_send_raw(nd, &m->addr, m, c.data, c.len);
        buf_free(&s);
        buf_free(&c);
    }
    buf_free(&b);
}

static void start_probe(struct node *nd, struct member *m)
{
    struct probe *p = &nd->probe;
    uint64_t now = node_now(nd);
    p->active = true;
    p->seq = ++nd->seq;
    p->target = m;
    p->sent = now;
    p->interval = nd->cfg.probe_interval * (uint64_t)(nd->awareness + 1);
    p->expected_nacks = p->nacks = 0;
    p->tcp_ok = false;
    nd->stats.probes++;
    HS_DEBUG(nd->log, "probe: member=%s seq=%u state=%s", m->name, p->seq,
             member_state_name(m->state));
    node_arm(nd, &p->indirect, now + nd->cfg.probe_timeout);
    node_arm(nd, &p->expire, now + p->interval);
    send_ping(nd, m, p->seq);
}

void probe_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, probe_tick);
    node_arm(nd, t, t->at + nd->cfg.probe_interval);
    if (nd->paused || nd->phase == PHASE_NEW)
        return;
    if (nd->probe.active) {
        /* Like Go's ticker: the probe overran, run the next one as soon
         * as it ends. */
        nd->probe_missed_tick = true;
        return;
    }
    struct member *m = next_target(nd);
    if (m)
        start_probe(nd, m);
}

static void probe_end(struct node *nd, int awareness_delta)
{
    struct probe *p = &nd->probe;
    node_disarm(nd, &p->indirect);
    node_disarm(nd, &p->expire);
    p->active = false;
    p->target = NULL;
    if (p->tcp) {
        p->tcp->seq = 0; /* detach: its answer comes too late */
        p->tcp = NULL;
    }
    node_awareness(nd, awareness_delta);
    if (nd->probe_missed_tick && !nd->paused) {
        nd->probe_missed_tick = false;
        struct member *m = next_target(nd);
        if (m)
            start_probe(nd, m);
    }
}

static bool relay_candidate(const struct node *nd, const struct member *m)
{
    return m->state == MEMBER_ALIVE && m != nd->probe.target;
}

/* The TCP fallback ping (protocol 3+), unless turned off for all or for
 * this member (disable_tcp_pings_for_node). */
static bool tcp_ping_wanted(const struct node *nd, const struct member *m)
{
    if (nd->cfg.disable_tcp_pings || m->vsn[1] < 3)
        return false;
    const struct config_list *off = &nd->cfg.disable_tcp_pings_for_node;
    for (size_t i = 0; i < off->n; i++)
        if (strlen(off->v[i]) == m->name_len &&
            memcmp(off->v[i], m->name, m->name_len) == 0)
            return false;
    return true;
}

static void probe_indirect(struct timer *t)
{
    struct probe *p = HS_CONTAINER_OF(t, struct probe, indirect);
    struct node *nd = HS_CONTAINER_OF(p, struct node, probe);
    struct member *m = p->target;
    HS_DEBUG(nd->log, "probe timed out, going indirect: member=%s seq=%u",
             m->name, p->seq);
    struct member *peers[64];
    size_t k = node_pick(nd, peers, HS_MIN((size_t)nd->cfg.indirect_checks, 64),
                         relay_candidate);
    struct wire_indirect_ping ind = {
        .seq = p->seq,
        .target = wire_raw(m->addr.ip, m->addr.len),
        .port = m->addr.port,
        .node = wire_raw(m->name, m->name_len),
    };
    self_source(nd, &ind.source_addr, &ind.source_port, &ind.source_node);
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < k; i++) {
        ind.nack = peers[i]->vsn[1] >= 4;
        if (ind.nack)
            p->expected_nacks++;
        buf_reset(&b);
        wire_put_indirect_ping(&b, &ind);
        if (!b.err) {
            node_send_msg(nd, &peers[i]->addr, b.data, b.len);
            nd->stats.indirect_probes++;
        }
    }
    buf_free(&b);
    /* The TCP fallback (protocol 3+), with the probe's deadline. */
    if (p->tcp == NULL && tcp_ping_wanted(nd, m)) {
        struct wire_ping ping = {.seq = p->seq,
                                 .node = wire_raw(m->name, m->name_len)};
        self_source(nd, &ping.source_addr, &ping.source_port,
                    &ping.source_node);
        struct buf pb = BUF_INIT;
        wire_put_ping(&pb, &ping);
        uint64_t end = p->sent + p->interval, now = node_now(nd);
        uint64_t left = end > now ? end - now : 1;
        struct stream *s =
            pb.err ? NULL
                   : stream_dial(nd, STREAM_PING, &m->addr, left ? left : 1,
                                 tcp_ping_done, NULL);
        if (s && stream_set_request(s, pb.data, pb.len) == 0) {
            s->seq = p->seq;
            p->tcp = s;
            nd->stats.tcp_pings++;
        }
        buf_free(&pb);
    }
}

static void probe_expire(struct timer *t)
{
    struct probe *p = HS_CONTAINER_OF(t, struct probe, expire);
    struct node *nd = HS_CONTAINER_OF(p, struct node, probe);
    struct member *m = p->target;
    if (p->tcp_ok) {
        HS_WARN(nd->log,
                "member %s answered over TCP but not UDP: the "
                "network may block UDP",
                m->name);
        nd->stats.tcp_ping_rescues++;
        probe_end(nd, -1);
        return;
    }
    /* Lifeguard: missing nacks mean our own network is in trouble. */
    int delta = 1;
    if (p->expected_nacks > 0)
        delta = p->nacks < p->expected_nacks ? p->expected_nacks - p->nacks : 0;
    nd->stats.probes_failed++;
    if (member_dead_or_left(m)) {
        /* Declared dead (or gone) while we waited: nothing to suspect.
         * The missed ack still says what it says about our health. */
        HS_DEBUG(nd->log,
                 "probe failed, member %s meanwhile: member=%s seq=%u "
                 "nacks=%d/%d",
                 member_state_name(m->state), m->name, p->seq, p->nacks,
                 p->expected_nacks);
        probe_end(nd, delta);
        return;
    }
    HS_INFO(nd->log,
            "probe failed, suspecting member: member=%s seq=%u "
            "nacks=%d/%d",
            m->name, p->seq, p->nacks, p->expected_nacks);
    struct wire_suspect s = {m->incarnation, wire_raw(m->name, m->name_len),
                             wire_raw(nd->cfg.name, nd->self_name_len)};
    /* Suspect first: a probe started by probe_end (for a missed tick)
     * must already see the new state. */
    nd->stats.suspicions++;
    members_on_suspect(nd, &s);
    probe_end(nd, delta);
}

/* The TCP fallback ping finished (ok: acked). */
static void probe_tcp_done(struct node *nd, struct stream *s, bool ok)
{
    struct probe *p = &nd->probe;
    if (p->tcp != s)
        return;
    p->tcp = NULL;
    if (ok && p->active && s->seq == p->seq)
        p->tcp_ok = true;
}

/* The fallback ping's stream ended: acked if its answer is our ack. */
static void tcp_ping_done(struct stream *s, int err, const char *why,
                          const uint8_t *p, size_t n)
{
    (void)why;
    if (err) {
        probe_tcp_done(s->nd, s, false);
        return;
    }
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *w = NULL;
    struct wire_ack ack;
    mp_reader_init(&r, p + 1, n - 1);
    bool ok = p[0] == WIRE_ACK && wire_get_ack(&r, &ack, &sc, &w) == 0 &&
              ack.seq == s->seq;
    probe_tcp_done(s->nd, s, ok);
}

static void probe_acked(struct node *nd, const struct wire_ack *ack)
{
    struct probe *p = &nd->probe;
    struct member *m = p->target;
    uint64_t rtt = node_now(nd) - p->sent;
    HS_DEBUG(nd->log, "probe acked: member=%s seq=%u rtt=%llums", m->name,
             p->seq, (unsigned long long)rtt);
    if (nd->hooks.on_ping)
        nd->hooks.on_ping(nd->hooks.ud, m, rtt, ack->payload.p, ack->payload.n);
    probe_end(nd, -1);
}

/* ===== Answering ===== */

/* Where to answer: the message's source fields, else the UDP source. */
static struct hs_addr reply_addr(const struct hs_addr *from,
                                 struct wire_raw addr, uint16_t port)
{
    struct hs_addr a;
    if (addr.n > 0 && port > 0 && addr_from_raw(addr.p, addr.n, port, &a) == 0)
        return a;
    return *from;
}

void probe_on_ping(struct node *nd, const struct hs_addr *from,
                   const struct wire_ping *msg)
{
    struct wire_ping ping = *msg;
    if (ping.node.n && !wire_raw_eq(ping.node, nd->cfg.name)) {
        char qb[160];
        HS_WARN(nd->log, "got a ping for another node: node=%s",
                hs_log_quote(ping.node.p, ping.node.n, qb, sizeof qb));
        nd->stats.dropped[NODE_DROP_WRONG_NODE]++;
        return;
    }
    if (nd->cfg.require_node_names && ping.source_node.n == 0) {
        node_count_drop(nd, NODE_DROP_REFUSED, from, "ping",
                        "no source node name (require_node_names)");
        return;
    }
    struct wire_ack ack = {ping.seq, {0}};
    struct buf payload = BUF_INIT, b = BUF_INIT;
    if (nd->hooks.ack_payload &&
        nd->hooks.ack_payload(nd->hooks.ud, &payload) == 0 && !payload.err)
        ack.payload = wire_raw(payload.data, payload.len);
    wire_put_ack(&b, &ack);
    struct hs_addr to = reply_addr(from, ping.source_addr, ping.source_port);
    if (!b.err)
        node_send_msg(nd, &to, b.data, b.len);
    buf_free(&b);
    buf_free(&payload);
}

static void relay_timeout(struct timer *t)
{
    struct relay *r = HS_CONTAINER_OF(t, struct relay, timeout);
    struct node *nd = r->nd;
    struct relay **pp = &nd->relays;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    if (r->want_nack && !r->acked) {
        struct wire_nack nack = {r->their_seq};
        struct buf b = BUF_INIT;
        wire_put_nack(&b, &nack);
        if (!b.err)
            node_send_msg(nd, &r->reply_to, b.data, b.len);
        buf_free(&b);
    }
    relay_free(nd, r);
}

void probe_on_indirect(struct node *nd, const struct hs_addr *from,
                       const struct wire_indirect_ping *msg)
{
    struct wire_indirect_ping ind = *msg;
    if (nd->cfg.protocol_version < 2 || ind.port == 0)
        ind.port = nd->advertise.port;
    struct hs_addr target;
    if (addr_from_raw(ind.target.p, ind.target.n, ind.port, &target)) {
        node_count_drop(nd, NODE_DROP_MALFORMED, from, "indirect ping",
                        "bad target address");
        return;
    }
    struct relay *rl = hs_calloc(1, sizeof *rl);
    if (rl == NULL)
        return;
    rl->nd = nd;
    rl->seq = ++nd->seq;
    rl->their_seq = ind.seq;
    rl->want_nack = ind.nack;
    rl->reply_to = reply_addr(from, ind.source_addr, ind.source_port);
    timer_init(&rl->timeout, relay_timeout);
    rl->next = nd->relays;
    nd->relays = rl;
    node_arm(nd, &rl->timeout, node_now(nd) + nd->cfg.probe_timeout);

    struct wire_ping ping = {.seq = rl->seq, .node = ind.node};
    self_source(nd, &ping.source_addr, &ping.source_port, &ping.source_node);
    struct buf b = BUF_INIT;
    wire_put_ping(&b, &ping);
    if (!b.err)
        node_send_msg(nd, &target, b.data, b.len);
    buf_free(&b);
}

void probe_on_ack(struct node *nd, const struct hs_addr *from,
                  const struct wire_ack *msg)
{
    struct wire_ack ack = *msg;
    (void)from;
    if (nd->probe.active && ack.seq == nd->probe.seq) {
        probe_acked(nd, &ack);
        return;
    }
    for (struct relay *rl = nd->relays; rl; rl = rl->next) {
        if (rl->seq != ack.seq || rl->acked)
            continue;
        rl->acked = true; /* the timer stays armed to free it */
        struct wire_ack fwd = {rl->their_seq, {0}};
        struct buf b = BUF_INIT;
        wire_put_ack(&b, &fwd);
        if (!b.err)
            node_send_msg(nd, &rl->reply_to, b.data, b.len);
        buf_free(&b);
        return;
    }
}

void probe_on_nack(struct node *nd, const struct hs_addr *from,
                   const struct wire_nack *msg)
{
    struct wire_nack nack = *msg;
    (void)from;
    if (nd->probe.active && nack.seq == nd->probe.seq) {
        nd->probe.nacks++;
        nd->stats.nacks_received++;
    }
}
