/* node.c: node lifecycle (new, start, close), leave and pause, the
 * helpers shared by the protocol core (randomness, timers, drops,
 * member picks) and the accessors. */
#include "core/node_int.h"

#include <string.h>

#define USER_QUEUE_MAX 1024
#define QUEUE_MAX 65536

const char *hook_event_name(int event)
{
    static const char *names[HOOK_EVENT_COUNT] = {"join",  "update", "suspect",
                                                  "alive", "dead",   "left"};
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
             from ? addr_format(from, ab, sizeof ab) : "-", why ? why : "-");
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
    HS_WARN(nd->log,
            "refused %s: from=%s reason=%s detail=%s (further "
            "ones from this address are counted in stats, not logged)",
            what ? what : "packet", ip, node_drop_name(reason),
            why ? why : "-");
}

static uint64_t name_hash(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

bool node_note_name(struct node *nd, int kind, const char *name, size_t len)
{
    uint64_t h = name_hash(name, len);
    for (size_t i = 0; i < nd->nnames_noted; i++) {
        const struct noted_name *k = &nd->names_noted[i];
        if (k->kind == kind && k->hash == h)
            return false;
    }
    if (nd->names_noted == NULL) {
        nd->names_noted = hs_calloc(NODE_NAMES_NOTED, sizeof *nd->names_noted);
        if (nd->names_noted == NULL)
            return true; /* log it, remember nothing */
    }
    /* Remember it, forgetting the oldest when full. */
    struct noted_name *k = &nd->names_noted[nd->names_noted_next];
    nd->names_noted_next = (nd->names_noted_next + 1) % NODE_NAMES_NOTED;
    if (nd->nnames_noted < NODE_NAMES_NOTED)
        nd->nnames_noted++;
    k->hash = h;
    k->kind = (uint8_t)kind;
    return true;
}

void node_unnote_name(struct node *nd, const char *name, size_t len)
{
    if (nd->nnames_noted == 0)
        return;
    uint64_t h = name_hash(name, len);
    for (size_t i = 0; i < nd->nnames_noted; i++)
        if (nd->names_noted[i].hash == h)
            nd->names_noted[i].kind = 0;
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

/* ===== Lifecycle ===== */

static void leave_finished(void *ud, struct bcast *b);

/* Upkeep of the metadata store: collect old tombstones, a batch at a
 * time (again soon while more are due). */
#define META_TICK_MS 10000
#define META_TICK_AGAIN_MS 10

static void meta_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, meta_tick);
    bool more = metadata_tick(nd->store);
    node_arm(nd, t, node_now(nd) + (more ? META_TICK_AGAIN_MS : META_TICK_MS));
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
    nd->queue.encode = node_queue_encode;
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
    hs_free(nd->names_noted);
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

int node_leave(struct node *nd, uint64_t timeout_ms, node_leave_cb cb, void *ud)
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

/* ===== Hooks, private data ===== */

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

int node_set_meta(struct node *nd, const uint8_t *p, size_t n)
{
    if (nd->phase != PHASE_RUNNING)
        return HS_ESTATE;
    if (n > WIRE_META_MAX)
        return HS_ETOOBIG;
    struct buf b = BUF_INIT;
    if (n && buf_append(&b, p, n)) {
        buf_free(&b);
        return HS_ENOMEM;
    }
    buf_free(&nd->meta);
    nd->meta = b;
    members_announce_self(nd);
    HS_INFO(nd->log, "private data set: bytes=%zu inc=%u", nd->meta.len,
            nd->incarnation);
    return 0;
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
