/* user.c: user messages: the hearsay envelope, rumor dedup, and the
 * send and broadcast calls. */
#include "core/node_int.h"

#include <string.h>

#define RUMOR_KEEP 4096              /* rumor ids remembered */
#define RUMOR_SLOTS (2 * RUMOR_KEEP) /* hash slots for them */

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
        HS_INFO(nd->log,
                "foreign members in the cluster: metadata and "
                "rumors skip them: first=%s",
                m->name);
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

void user_msg_decode(struct user_msg *u, const uint8_t *p, size_t n)
{
    u->p = p;
    u->n = n;
    u->env_rc = wire_get_envelope(p, n, &u->env);
}

void node_user_message(struct node *nd, const struct user_msg *u,
                       const struct hs_addr *from)
{
    const uint8_t *p = u->p;
    size_t n = u->n;
    const struct wire_envelope e = u->env;
    int rc = u->env_rc;
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
        if (!b.err &&
            bqueue_push(&nd->user_queue, NULL, b.data, b.len, false) == 0)
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
                                 : stream_dial(nd, STREAM_USER, &m->addr,
                                               nd->cfg.tcp_timeout, NULL, NULL);
        rc = b.err ? b.err : s ? stream_set_request(s, b.data, b.len) : HS_EIO;
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
