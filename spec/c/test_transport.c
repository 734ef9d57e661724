/* test_transport.c: the libuv transport on loopback sockets, with nodes.
 *
 * Every test owns a loop and ends with uv_loop_close() == 0 (no handle
 * left) and, through RUN, no hs_malloc block left. Waits are "run the
 * loop until a condition holds or a generous limit passes", never sleeps.
 * HS_TEST_LOG=debug prints the nodes' logs. */
#include <uv.h>

#include "test.h"

#include "../../src/codec/wire.h"
#include "../../src/core/members.h"
#include "../../src/core/node.h"
#include "../../src/io/transport.h"

#define LIMIT_MS 30000 /* generous: most conditions hold in < 2 s */

static int log_level = HS_LOG_OFF;

static void log_sink(void *ud, int level, const char *msg)
{
    fprintf(stderr, "    [%s %s] %s\n", (const char *)ud,
            hs_log_level_name(level), msg);
}

/* ===== A loop, and nodes on it ===== */

struct peer {
    char name[16];
    struct hs_logger log;
    struct transport *t;
    struct node *nd;
    struct hs_addr adv;
    int joins, joined, join_err;
    bool join_returned, join_sync;
    int user_msgs;
    char last_msg[64];
    bool gone;
};

struct world {
    uv_loop_t loop;
    uv_timer_t tick;
    struct peer p[3];
    int n;
    int closed;
};

static void tick_cb(uv_timer_t *h)
{
    (void)h; /* only makes UV_RUN_ONCE return regularly */
}

static void world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    CHECK_EQ(uv_loop_init(&w->loop), 0);
    uv_timer_init(&w->loop, &w->tick);
    uv_timer_start(&w->tick, tick_cb, 10, 10);
}

static void on_message(void *ud, const char *from, size_t fromlen,
                       const uint8_t *p, size_t n)
{
    struct peer *pe = ud;
    (void)from;
    (void)fromlen;
    pe->user_msgs++;
    snprintf(pe->last_msg, sizeof pe->last_msg, "%.*s", (int)n,
             (const char *)p);
}

/* A node on `bind` (port 0: any), the local profile but for a
 * tcp_timeout (0: the profile's). */
static int peer_start_on(struct world *w, const char *name, int mode,
                         const char *bind, uint64_t tcp_timeout)
{
    struct peer *pe = &w->p[w->n];
    struct config cfg;
    char err[200] = "";
    snprintf(pe->name, sizeof pe->name, "%s", name);
    pe->log = (struct hs_logger){log_level, log_sink, pe->name};
    config_defaults(&cfg, "local");
    snprintf(cfg.name, sizeof cfg.name, "%s", name);
    snprintf(cfg.bind, sizeof cfg.bind, "%s", bind);
    if (tcp_timeout)
        cfg.tcp_timeout = tcp_timeout;
    cfg.transport = mode;
    int rc = transport_new(&w->loop, &cfg, &pe->log, &pe->t, err, sizeof err);
    if (rc == 0 && (rc = transport_listen(pe->t, err, sizeof err)))
        transport_close(pe->t, NULL, NULL);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "    transport_new: %s\n", err);
        config_free(&cfg);
        return rc;
    }
    w->n++;
    struct hooks hooks = {.ud = pe, .on_message = on_message};
    rc = node_new(&cfg, transport_io(pe->t), &hooks, &pe->log, &pe->nd);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        transport_attach(pe->t, pe->nd);
        rc = transport_advertise(pe->t, &cfg, &pe->adv, err, sizeof err);
        CHECK_EQ(rc, 0);
        struct hs_addr b = transport_bound(pe->t);
        CHECK(b.port != 0);
        CHECK(addr_eq(&pe->adv, &b));
        if (rc == 0)
            rc = node_start(pe->nd, &pe->adv);
        CHECK_EQ(rc, 0);
    }
    config_free(&cfg);
    return rc;
}

static int peer_start(struct world *w, const char *name, int mode)
{
    return peer_start_on(w, name, mode, "127.0.0.1:0", 0);
}

static void join_cb(void *ud, int joined, int err, const char *why)
{
    struct peer *pe = ud;
    (void)why;
    pe->joins++;
    pe->joined = joined;
    pe->join_err = err;
    pe->join_sync = !pe->join_returned;
}

static void join(struct peer *pe, const struct hs_addr *to)
{
    pe->join_returned = false;
    CHECK_EQ(node_join(pe->nd, to, NULL, 1, join_cb, pe), 0);
    pe->join_returned = true;
}

typedef bool (*cond_fn)(struct world *w);

static bool run_until(struct world *w, cond_fn cond)
{
    uv_update_time(&w->loop);
    uint64_t deadline = uv_now(&w->loop) + LIMIT_MS;
    while (!cond(w)) {
        if (uv_now(&w->loop) >= deadline)
            return false;
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    return true;
}

static void on_transport_closed(void *ud)
{
    struct world *w = ud;
    w->closed++;
}

/* Close a node and its transport: the node first, for it closes its
 * streams through the io. */
static void vanish(struct world *w, struct peer *pe)
{
    node_close(pe->nd);
    transport_close(pe->t, on_transport_closed, w);
    pe->gone = true;
}

static void world_close(struct world *w)
{
    for (int i = 0; i < w->n; i++)
        if (!w->p[i].gone)
            vanish(w, &w->p[i]);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    CHECK_EQ(w->closed, w->n);
    CHECK_EQ(uv_loop_close(&w->loop), 0);
}

/* ===== Conditions ===== */

static bool sees_alive(const struct peer *a, const struct peer *b)
{
    const struct member *m =
        members_find(node_members(a->nd), b->name, strlen(b->name));
    return m && m->state == MEMBER_ALIVE;
}

static bool all_alive(struct world *w)
{
    for (int i = 0; i < w->n; i++)
        for (int j = 0; j < w->n; j++)
            if (!sees_alive(&w->p[i], &w->p[j]))
                return false;
    return true;
}

/* Every node has had an ack: probes go out and answers come back. */
static bool all_acked(struct world *w)
{
    for (int i = 0; i < w->n; i++)
        if (node_stats(w->p[i].nd)->msgs_in[WIRE_ACK] == 0)
            return false;
    return true;
}

static bool joins_done(struct world *w)
{
    for (int i = 1; i < w->n; i++)
        if (w->p[i].joins == 0)
            return false;
    return true;
}

static bool b_and_c_got_messages(struct world *w)
{
    return w->p[1].user_msgs >= 1 && w->p[2].user_msgs >= 1;
}

/* ===== 1. UDP ===== */

static void cluster(struct world *w, int mode)
{
    world_init(w);
    peer_start(w, "a", mode);
    peer_start(w, "b", mode);
    peer_start(w, "c", mode);
    if (w->n < 3)
        return;
    join(&w->p[1], &w->p[0].adv);
    join(&w->p[2], &w->p[0].adv);
    CHECK(run_until(w, joins_done));
    for (int i = 1; i < 3; i++) {
        CHECK_EQ(w->p[i].joins, 1);
        CHECK_EQ(w->p[i].joined, 1);
        CHECK_EQ(w->p[i].join_err, 0);
        CHECK(!w->p[i].join_sync);
    }
    CHECK(run_until(w, all_alive));
    CHECK(run_until(w, all_acked));
    /* A user message over a stream (written, then closed at once: the
     * close must flush it), and one as a packet. */
    CHECK_EQ(node_send(w->p[0].nd, "b", "over tcp", 8, true), 0);
    CHECK_EQ(node_send(w->p[0].nd, "c", "by packet", 9, false), 0);
    CHECK(run_until(w, b_and_c_got_messages));
    CHECK(strcmp(w->p[1].last_msg, "over tcp") == 0);
    CHECK(strcmp(w->p[2].last_msg, "by packet") == 0);
}

static uint64_t drops_before;

static bool b_dropped_one(struct world *w)
{
    return node_stats(w->p[1].nd)->dropped[NODE_DROP_UNKNOWN_TYPE] >
           drops_before;
}

static void test_udp_cluster(void)
{
    struct world w;
    cluster(&w, TRANSPORT_UDP);
    if (w.n == 3) {
        /* An IPv4-mapped destination leaves the IPv4 socket as IPv4. */
        const struct io *io = transport_io(w.p[0].t);
        struct hs_addr b = w.p[1].adv, mapped = {16, {0}, b.port};
        mapped.ip[10] = mapped.ip[11] = 0xff;
        memcpy(mapped.ip + 12, b.ip, 4);
        drops_before = node_stats(w.p[1].nd)->dropped[NODE_DROP_UNKNOWN_TYPE];
        CHECK_EQ(io->send_packet(io->ctx, &mapped, "\xff", 1), 0);
        CHECK(run_until(&w, b_dropped_one));
    }
    for (int i = 0; i < w.n; i++) {
        const struct transport_stats *ts = transport_stats(w.p[i].t);
        CHECK_EQ(ts->frames_out, 0);
        CHECK_EQ(ts->frames_in, 0);
        CHECK_EQ(ts->udp_send_errors, 0);
        CHECK(node_stats(w.p[i].nd)->packets_in > 0);
        CHECK(ts->tcp_accepts > 0 || i > 0); /* a served the joins */
    }
    world_close(&w);
}

/* ===== 2. transport = tcp ===== */

static void test_tcp_cluster(void)
{
    struct world w;
    cluster(&w, TRANSPORT_TCP);
    for (int i = 0; i < w.n; i++) {
        const struct transport_stats *ts = transport_stats(w.p[i].t);
        const struct node_stats *ns = node_stats(w.p[i].nd);
        CHECK(ts->frames_out > 0);
        CHECK(ts->frames_in > 0);
        /* Every packet the node sent went out as a frame, and every one
         * it got came in as a frame: the UDP socket saw nothing. */
        CHECK_EQ(ns->packets_out, ts->frames_out);
        CHECK_EQ(ns->packets_in, ts->frames_in);
        CHECK_EQ(ts->udp_send_errors, 0);
        CHECK_EQ(ts->frame_errors, 0);
    }
    world_close(&w);
}

/* ===== Failure detection on real time ===== */

/* A node that vanishes without leaving is found out: probes by UDP and
 * the TCP fallback fail, the others suspect it, then declare it dead. */
static bool c_dead(struct world *w)
{
    for (int i = 0; i < 2; i++) {
        const struct member *m = members_find(node_members(w->p[i].nd), "c", 1);
        if (m == NULL || m->state != MEMBER_DEAD)
            return false;
    }
    return true;
}

static void test_failure_detected(void)
{
    struct world w;
    cluster(&w, TRANSPORT_UDP);
    if (w.n == 3) {
        vanish(&w, &w.p[2]);
        CHECK(run_until(&w, c_dead));
        CHECK(sees_alive(&w.p[0], &w.p[1]));
        CHECK(sees_alive(&w.p[1], &w.p[0]));
        CHECK(node_stats(w.p[0].nd)->tcp_pings +
                  node_stats(w.p[1].nd)->tcp_pings >
              0);
    }
    world_close(&w);
}

/* ===== 3. Garbage from the network ===== */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uint8_t data[64];
    size_t n;
    bool shut;
    bool eof, closed;
};

static void raw_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char b[4096];
    (void)h;
    (void)size;
    *buf = uv_buf_init(b, sizeof b);
}

static void raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;
    r->closed = true;
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (nread < 0) {
        r->eof = true;
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
    }
}

static void raw_written(uv_write_t *req, int status)
{
    struct raw *r = req->data;
    (void)status;
    if (r->shut)
        uv_shutdown(&r->sreq, (uv_stream_t *)&r->tcp, NULL);
}

static void raw_connected(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    if (status < 0) {
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)r->n);
    if (r->n)
        uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

/* Connect to `to`, write the bytes (then FIN if `shut`), read until the
 * other side closes. */
static void raw_start(uv_loop_t *loop, struct raw *r, const struct hs_addr *to,
                      const void *p, size_t n, bool shut)
{
    struct sockaddr_in sa;
    char ip[64];
    memset(r, 0, sizeof *r);
    memcpy(r->data, p, n);
    r->n = n;
    r->shut = shut;
    r->tcp.data = r->creq.data = r->wreq.data = r->sreq.data = r;
    addr_ip_format(to, ip, sizeof ip);
    uv_ip4_addr(ip, to->port, &sa);
    uv_tcp_init(loop, &r->tcp);
    uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&sa, raw_connected);
}

static struct raw raws[5];

static bool raws_closed(struct world *w)
{
    (void)w;
    for (size_t i = 0; i < HS_ARRAY_LEN(raws); i++)
        if (!raws[i].closed)
            return false;
    return true;
}

static uint64_t acks_before;

static bool b_got_more_acks(struct world *w)
{
    return node_stats(w->p[1].nd)->msgs_in[WIRE_ACK] >= acks_before + 2 &&
           node_stats(w->p[0].nd)->dropped[NODE_DROP_MALFORMED] +
                   node_stats(w->p[0].nd)->dropped[NODE_DROP_UNKNOWN_TYPE] +
                   node_stats(w->p[0].nd)->dropped[NODE_DROP_TRUNCATED] >=
               2;
}

static bool two_alive(struct world *w)
{
    return sees_alive(&w->p[0], &w->p[1]) && sees_alive(&w->p[1], &w->p[0]);
}

static void test_garbage(void)
{
    struct world w;
    world_init(&w);
    peer_start(&w, "a", TRANSPORT_TCP);
    peer_start(&w, "b", TRANSPORT_TCP);
    if (w.n < 2) {
        world_close(&w);
        return;
    }
    join(&w.p[1], &w.p[0].adv);
    CHECK(run_until(&w, two_alive));

    static const uint8_t http[] = "GET / HTTP/1.0\r\n\r\n";
    static const uint8_t huge[] = {0xE7, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t junk[] = {0xE7, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    const struct transport_stats *ts = transport_stats(w.p[0].t);
    uint64_t frames_before = ts->frames_in;
    uint64_t streams_before = node_stats(w.p[0].nd)->streams_in;
    /* A memberlist stream of nonsense: the node answers an error and
     * closes. A huge frame length: the transport drops the connection.
     * A well-framed packet of nonsense: the node drops the packet; the
     * connection closes when we do. Silence: dropped after tcp_timeout
     * (1 s in the local profile). */
    raw_start(&w.loop, &raws[0], &w.p[0].adv, http, sizeof http - 1, false);
    raw_start(&w.loop, &raws[1], &w.p[0].adv, huge, sizeof huge, false);
    raw_start(&w.loop, &raws[2], &w.p[0].adv, junk, sizeof junk, true);
    raw_start(&w.loop, &raws[3], &w.p[0].adv, "", 0, false);
    /* Half a push/pull, then FIN: the node hears the stream end. */
    raw_start(&w.loop, &raws[4], &w.p[0].adv, "\x06\x83", 2, true);
    CHECK(run_until(&w, raws_closed));
    for (size_t i = 0; i < HS_ARRAY_LEN(raws); i++)
        CHECK(raws[i].eof);
    CHECK_EQ(ts->frame_errors, 1);
    CHECK_EQ(ts->tcp_timeouts, 1); /* the silent one */
    CHECK_EQ(ts->tcp_refused, 0);
    CHECK(ts->frames_in >= frames_before + 1);
    /* The nonsense and the half push/pull reached the node; the frames
     * and the silence did not. (b may have opened a push/pull of its own
     * meanwhile, hence at least.) */
    CHECK(node_stats(w.p[0].nd)->streams_in >= streams_before + 2);
    CHECK(node_stats(w.p[0].nd)->dropped[NODE_DROP_UNKNOWN_TYPE] >= 1);

    /* A UDP datagram of nonsense too. */
    uv_udp_t u;
    uv_udp_send_t sr;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", w.p[0].adv.port, &sa);
    uv_udp_init(&w.loop, &u);
    uv_buf_t b = uv_buf_init((char *)"\xff\xfe garbage", 10);
    CHECK_EQ(uv_udp_send(&sr, &u, &b, 1, (struct sockaddr *)&sa, NULL), 0);

    /* a keeps answering b's probes. */
    acks_before = node_stats(w.p[1].nd)->msgs_in[WIRE_ACK];
    CHECK(run_until(&w, b_got_more_acks));
    CHECK(two_alive(&w));
    uv_close((uv_handle_t *)&u, NULL);
    world_close(&w);
}

/* ===== 4. A refused connection is reported, later ===== */

static bool a_join_done(struct world *w)
{
    return w->p[0].joins > 0;
}

static void test_join_refused(void)
{
    struct world w;
    world_init(&w);
    peer_start(&w, "a", TRANSPORT_UDP);
    /* A bound, not listening, port: connections to it are refused and
     * nobody else can take it meanwhile. */
    uv_tcp_t blocker;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_init(&w.loop, &blocker);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    CHECK_EQ(uv_tcp_bind(&blocker, (struct sockaddr *)&sa, 0), 0);
    CHECK_EQ(uv_tcp_getsockname(&blocker, (struct sockaddr *)&ss, &len), 0);
    struct hs_addr to;
    addr_parse("127.0.0.1", ntohs(((struct sockaddr_in *)&ss)->sin_port), &to);
    if (w.n == 1) {
        join(&w.p[0], &to);
        CHECK_EQ(w.p[0].joins, 0); /* not from inside node_join */
        CHECK(run_until(&w, a_join_done));
        CHECK_EQ(w.p[0].joins, 1);
        CHECK_EQ(w.p[0].joined, 0);
        CHECK_EQ(w.p[0].join_err, HS_EREFUSED);
        CHECK(!w.p[0].join_sync);
    }
    uv_close((uv_handle_t *)&blocker, NULL);
    world_close(&w);
}

/* ===== 5. The transport alone: binding, addresses, tcp-mode queues ===== */

static struct transport *open_bare(uv_loop_t *loop, const char *bind, int mode,
                                   int *rc, char *err, size_t errlen)
{
    struct config cfg;
    struct transport *t = NULL;
    config_defaults(&cfg, "local");
    snprintf(cfg.bind, sizeof cfg.bind, "%s", bind);
    cfg.transport = mode;
    *rc = transport_new(loop, &cfg, NULL, &t, err, errlen);
    if (*rc == 0 && (*rc = transport_listen(t, err, errlen)))
        transport_close(t, NULL, NULL); /* closes once the loop runs */
    config_free(&cfg);
    return *rc ? NULL : t;
}

static void count_closed(void *ud)
{
    (*(int *)ud)++;
}

static void test_bind_errors(void)
{
    uv_loop_t loop;
    char err[200], want[200], ab[HS_ADDRSTRLEN];
    int rc, closed = 0;
    uv_loop_init(&loop);
    struct transport *t1 =
        open_bare(&loop, "127.0.0.1:0", TRANSPORT_UDP, &rc, err, sizeof err);
    CHECK(t1 != NULL);
    if (t1) {
        struct hs_addr b = transport_bound(t1);
        /* Both sockets taken: UDP fails first, with a sentence. */
        addr_format(&b, ab, sizeof ab);
        struct transport *t2 =
            open_bare(&loop, ab, TRANSPORT_UDP, &rc, err, sizeof err);
        CHECK(t2 == NULL);
        CHECK(rc != 0);
        snprintf(want, sizeof want,
                 "cannot bind UDP %s: address already in use", ab);
        CHECK(strcmp(err, want) == 0);
        transport_close(t1, count_closed, &closed);
    }
    /* Only TCP taken. */
    uv_tcp_t l;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_init(&loop, &l);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&l, (struct sockaddr *)&sa, 0);
    CHECK_EQ(uv_listen((uv_stream_t *)&l, 8, NULL), 0);
    uv_tcp_getsockname(&l, (struct sockaddr *)&ss, &len);
    snprintf(ab, sizeof ab, "127.0.0.1:%u",
             (unsigned)ntohs(((struct sockaddr_in *)&ss)->sin_port));
    struct transport *t3 =
        open_bare(&loop, ab, TRANSPORT_UDP, &rc, err, sizeof err);
    CHECK(t3 == NULL);
    snprintf(want, sizeof want, "cannot bind TCP %s: address already in use",
             ab);
    CHECK(strcmp(err, want) == 0);
    if (t3)
        transport_close(t3, NULL, NULL);
    uv_close((uv_handle_t *)&l, NULL);

    CHECK(open_bare(&loop, "nonsense", TRANSPORT_UDP, &rc, err, sizeof err) ==
          NULL);
    CHECK_EQ(rc, HS_EADDR);
    CHECK(strstr(err, "nonsense") != NULL);

    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(closed, 1);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

static void test_advertise(void)
{
    uv_loop_t loop;
    char err[200] = "";
    int rc, closed = 0;
    uv_loop_init(&loop);
    struct transport *t =
        open_bare(&loop, "127.0.0.1:0", TRANSPORT_UDP, &rc, err, sizeof err);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    struct hs_addr b = transport_bound(t), a, want;
    struct config cfg;
    config_defaults(&cfg, "local");

    CHECK_EQ(transport_advertise(t, &cfg, &a, err, sizeof err), 0);
    CHECK(addr_eq(&a, &b));

    snprintf(cfg.advertise, sizeof cfg.advertise, "127.0.0.2");
    CHECK_EQ(transport_advertise(t, &cfg, &a, err, sizeof err), 0);
    addr_parse("127.0.0.2", b.port, &want);
    CHECK(addr_eq(&a, &want));

    /* IPv4-mapped comes out as IPv4, as memberlist does (To4). */
    snprintf(cfg.advertise, sizeof cfg.advertise, "::ffff:10.1.2.3");
    CHECK_EQ(transport_advertise(t, &cfg, &a, err, sizeof err), 0);
    addr_parse("10.1.2.3", b.port, &want);
    CHECK(addr_eq(&a, &want));

    snprintf(cfg.advertise, sizeof cfg.advertise, "[::1]:99");
    CHECK_EQ(transport_advertise(t, &cfg, &a, err, sizeof err), 0);
    addr_parse("[::1]:99", 0, &want);
    CHECK(addr_eq(&a, &want));

    snprintf(cfg.advertise, sizeof cfg.advertise, "localhost:1234");
    CHECK_EQ(transport_advertise(t, &cfg, &a, err, sizeof err), 0);
    addr_parse("127.0.0.1:1234", 0, &want);
    CHECK(addr_eq(&a, &want)); /* IPv4 preferred */

    snprintf(cfg.advertise, sizeof cfg.advertise, "0.0.0.0");
    CHECK(transport_advertise(t, &cfg, &a, err, sizeof err) != 0);
    CHECK(strstr(err, "0.0.0.0") != NULL);

    config_free(&cfg);
    transport_close(t, count_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(closed, 1);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

struct resolved {
    int calls, err;
    size_t n;
    struct hs_addr a[8];
};

static void on_resolved(void *ud, int err, const struct hs_addr *addrs,
                        size_t n)
{
    struct resolved *r = ud;
    r->calls++;
    r->err = err;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        r->a[i] = addrs[i];
}

static void test_resolve(void)
{
    uv_loop_t loop;
    struct resolved r1 = {0}, r2 = {0}, r3 = {0};
    struct hs_addr want;
    uv_loop_init(&loop);
    CHECK_EQ(transport_resolve(&loop, "127.0.0.1:99", 7946, on_resolved, &r1),
             0);
    CHECK_EQ(transport_resolve(&loop, "[::1]:5", 7946, on_resolved, &r2), 0);
    CHECK_EQ(transport_resolve(&loop, "localhost", 7946, on_resolved, &r3), 0);
    CHECK_EQ(r1.calls + r2.calls + r3.calls, 0); /* from the loop only */
    CHECK_EQ(transport_resolve(&loop, "[::1", 7946, on_resolved, &r1),
             HS_EADDR);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(r1.calls, 1);
    CHECK_EQ(r1.err, 0);
    CHECK_EQ(r1.n, 1);
    addr_parse("127.0.0.1:99", 0, &want);
    CHECK(addr_eq(&r1.a[0], &want));
    CHECK_EQ(r2.calls, 1);
    CHECK_EQ(r2.n, 1);
    addr_parse("[::1]:5", 0, &want);
    CHECK(addr_eq(&r2.a[0], &want));
    CHECK_EQ(r3.calls, 1);
    CHECK_EQ(r3.err, 0);
    CHECK(r3.n >= 1);
    addr_parse("127.0.0.1:7946", 0, &want);
    CHECK(addr_eq(&r3.a[0], &want)); /* IPv4 first, once */
    for (size_t i = 1; i < r3.n && i < 8; i++)
        CHECK(!addr_eq(&r3.a[i], &want));
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* tcp mode without a node: frames flow between two transports; a
 * refused connection drops what was queued; the queue is bounded. */
static struct transport *bare[3];

static bool frames_arrived(struct world *w)
{
    (void)w;
    return transport_stats(bare[0])->frames_in >= 5;
}

static bool refused_counted(struct world *w)
{
    (void)w;
    return transport_stats(bare[1])->udp_send_errors >= 20;
}

static void test_tcp_frames_bare(void)
{
    struct world w;
    char err[200];
    int rc;
    world_init(&w);
    bare[0] =
        open_bare(&w.loop, "127.0.0.1:0", TRANSPORT_TCP, &rc, err, sizeof err);
    bare[1] =
        open_bare(&w.loop, "127.0.0.1:0", TRANSPORT_TCP, &rc, err, sizeof err);
    CHECK(bare[0] && bare[1]);
    if (!bare[0] || !bare[1])
        return;
    const struct io *io = transport_io(bare[1]);
    struct hs_addr to = transport_bound(bare[0]);
    /* IPv4-mapped destinations use the same connection. */
    struct hs_addr mapped = {16, {0}, to.port};
    mapped.ip[10] = mapped.ip[11] = 0xff;
    memcpy(mapped.ip + 12, to.ip, 4);
    CHECK_EQ(io->send_packet(io->ctx, &to, "one", 3), 0);
    CHECK_EQ(io->send_packet(io->ctx, &mapped, "two", 3), 0);
    CHECK_EQ(io->send_packet(io->ctx, &to, "three", 5), 0);
    /* Largest frames: they cannot fit one 64 KiB read, so they are
     * gathered across reads. Misread, the 0x01 bytes would make a
     * length over the limit: a frame error. */
    static uint8_t big[65537];
    memset(big, 1, sizeof big);
    CHECK_EQ(io->send_packet(io->ctx, &to, big, 65536), 0);
    CHECK_EQ(io->send_packet(io->ctx, &to, big, 65536), 0);
    CHECK(run_until(&w, frames_arrived));
    CHECK_EQ(transport_stats(bare[0])->frames_in, 5);
    CHECK_EQ(transport_stats(bare[0])->frame_errors, 0);
    CHECK_EQ(transport_stats(bare[0])->tcp_accepts, 1);
    CHECK_EQ(transport_stats(bare[1])->frames_out, 5);

    /* A refused destination: 1 MiB queues while connecting, the rest is
     * refused at once; the queued part is dropped when connect fails. */
    uv_tcp_t blocker;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_init(&w.loop, &blocker);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&blocker, (struct sockaddr *)&sa, 0);
    uv_tcp_getsockname(&blocker, (struct sockaddr *)&ss, &len);
    struct hs_addr closed_to;
    addr_parse("127.0.0.1", ntohs(((struct sockaddr_in *)&ss)->sin_port),
               &closed_to);
    int ok = 0, busy = 0;
    for (int i = 0; i < 20; i++) {
        rc = io->send_packet(io->ctx, &closed_to, big, 65536);
        ok += rc == 0;
        busy += rc == HS_EBUSY;
    }
    CHECK_EQ(ok, 15);
    CHECK_EQ(busy, 5);
    CHECK_EQ(io->send_packet(io->ctx, &closed_to, big, sizeof big), HS_ETOOBIG);
    CHECK(run_until(&w, refused_counted));
    CHECK_EQ(transport_stats(bare[1])->udp_send_errors, 21);

    /* A stream opened and closed before it connects: nothing leaks, no
     * callback (no node is attached to call anyway). */
    struct io_stream *s = NULL;
    int owner;
    CHECK_EQ(io->stream_open(io->ctx, &to, &owner, &s), 0);
    CHECK(s != NULL);
    CHECK_EQ(io->stream_write(io->ctx, s, "x", 1), 0);
    io->stream_close(io->ctx, s);

    uv_close((uv_handle_t *)&blocker, NULL);
    transport_close(bare[0], on_transport_closed, &w);
    transport_close(bare[1], on_transport_closed, &w);
    uv_close((uv_handle_t *)&w.tick, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    CHECK_EQ(w.closed, 2);
    CHECK_EQ(uv_loop_close(&w.loop), 0);
}

/* A peer that stops reading: the per-destination queue fills and further
 * packets are refused at once (HS_EBUSY). When it then resets the
 * connection, what was queued is dropped and counted, and the next
 * packet dials again. */
struct sink {
    uv_tcp_t listener;
    uv_tcp_t conns[4];
    int accepted;
};

static struct sink sink;

static void sink_conn(uv_stream_t *l, int status)
{
    if (status < 0 || sink.accepted >= 4)
        return;
    uv_tcp_t *c = &sink.conns[sink.accepted];
    uv_tcp_init(l->loop, c);
    if (uv_accept(l, (uv_stream_t *)c) == 0)
        sink.accepted++;
    else
        uv_close((uv_handle_t *)c, NULL);
}

static const struct io *tx_io;
static struct hs_addr sink_addr;

static bool redialled(struct world *w)
{
    (void)w;
    tx_io->send_packet(tx_io->ctx, &sink_addr, "again", 5);
    return sink.accepted >= 2;
}

static void test_tcp_backpressure(void)
{
    struct world w;
    char err[200];
    int rc;
    world_init(&w);
    memset(&sink, 0, sizeof sink);
    struct transport *tx =
        open_bare(&w.loop, "127.0.0.1:0", TRANSPORT_TCP, &rc, err, sizeof err);
    CHECK(tx != NULL);
    if (tx == NULL)
        return;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_init(&w.loop, &sink.listener);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&sink.listener, (struct sockaddr *)&sa, 0);
    CHECK_EQ(uv_listen((uv_stream_t *)&sink.listener, 8, sink_conn), 0);
    uv_tcp_getsockname(&sink.listener, (struct sockaddr *)&ss, &len);
    addr_parse("127.0.0.1", ntohs(((struct sockaddr_in *)&ss)->sin_port),
               &sink_addr);
    tx_io = transport_io(tx);

    static uint8_t big[65536];
    int sent = 0, busy = 0;
    for (int i = 0; i < 4000 && busy == 0; i++) {
        rc = tx_io->send_packet(tx_io->ctx, &sink_addr, big, sizeof big);
        sent += rc == 0;
        busy += rc == HS_EBUSY;
        /* Half a MiB waits for the connect; then connect, write what
         * fits, send more. */
        if (i >= 8)
            uv_run(&w.loop, UV_RUN_NOWAIT);
    }
    CHECK_EQ(busy, 1);
    CHECK(sent > 16); /* more than the queue: the kernel took some */
    CHECK_EQ(sink.accepted, 1);
    const struct transport_stats *ts = transport_stats(tx);
    CHECK_EQ(ts->udp_send_errors, 1);
    CHECK_EQ(ts->frames_out, sent);

    if (sink.accepted == 1)
        uv_tcp_close_reset(&sink.conns[0], NULL);
    CHECK(run_until(&w, redialled));
    CHECK(ts->udp_send_errors > 1); /* the queued frames were dropped */

    for (int i = 1; i < sink.accepted; i++)
        uv_close((uv_handle_t *)&sink.conns[i], NULL);
    uv_close((uv_handle_t *)&sink.listener, NULL);
    transport_close(tx, on_transport_closed, &w);
    uv_close((uv_handle_t *)&w.tick, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    CHECK_EQ(w.closed, 1);
    CHECK_EQ(uv_loop_close(&w.loop), 0);
}

/* ===== 6. Slow clients from one address ===== */

/* 140 connections from 127.0.24.200 that start a push/pull and then send
 * one byte a second, and 40 that send nothing: more than
 * max_inbound_streams (128). Node a holds only
 * max_inbound_streams_per_ip (32) of them and closes the rest at once;
 * b, from another address, joins a and syncs again while they hang; the
 * 32 are closed tcp_timeout after their accept. */
#define LORIS_TRICKLE 140
#define LORIS_SILENT 40
#define LORIS_N (LORIS_TRICKLE + LORIS_SILENT)
#define LORIS_TIMEOUT 5000 /* a's tcp_timeout, ms */

struct loris {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    bool connected, writing, eof, closed;
    uint64_t eof_at;
};

static struct loris loris[LORIS_N];
static uv_timer_t loris_timer;
static int loris_connected;

static void loris_closed(uv_handle_t *h)
{
    ((struct loris *)h->data)->closed = true;
}

static void loris_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct loris *l = s->data;
    (void)buf;
    if (nread < 0 && !l->eof) {
        l->eof = true;
        l->eof_at = uv_now(s->loop);
        uv_close((uv_handle_t *)&l->tcp, loris_closed);
    }
}

static void loris_written(uv_write_t *req, int status)
{
    (void)status;
    ((struct loris *)req->data)->writing = false;
}

/* The next byte of a push/pull whose first field is a 64 KiB string: a
 * message that stays incomplete at a byte a second. */
static void loris_send(struct loris *l, size_t *at)
{
    static const uint8_t head[] = {0x06, 0x83, 0xdb, 0, 1, 0, 0};
    static uint8_t x = 'x';
    if (l->eof || l->writing || uv_is_closing((uv_handle_t *)&l->tcp))
        return;
    const uint8_t *b = *at < sizeof head ? &head[*at] : &x;
    uv_buf_t ub = uv_buf_init((char *)b, 1);
    l->writing = true;
    if (uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &ub, 1, loris_written) == 0)
        (*at)++;
    else
        l->writing = false;
}

static size_t loris_pos[LORIS_TRICKLE];

static void loris_tick(uv_timer_t *h)
{
    (void)h;
    for (size_t i = 0; i < LORIS_TRICKLE; i++)
        if (loris[i].connected)
            loris_send(&loris[i], &loris_pos[i]);
}

static void loris_conn(uv_connect_t *req, int status)
{
    struct loris *l = req->data;
    if (status < 0) {
        l->eof = true; /* refused outright counts as closed */
        uv_close((uv_handle_t *)&l->tcp, loris_closed);
        return;
    }
    l->connected = true;
    loris_connected++;
    uv_read_start((uv_stream_t *)&l->tcp, raw_alloc, loris_read);
    size_t i = (size_t)(l - loris);
    if (i < LORIS_TRICKLE)
        loris_send(l, &loris_pos[i]);
}

static bool loris_all_connected(struct world *w)
{
    const struct transport_stats *ts = transport_stats(w->p[0].t);
    /* Every connection got its answer: held, or closed at accept. */
    return loris_connected == LORIS_N && ts->tcp_accepts >= LORIS_N;
}

static bool loris_held(struct world *w)
{
    const struct transport_stats *ts = transport_stats(w->p[0].t);
    return ts->tcp_refused_per_ip == LORIS_N - 32;
}

static bool b_joined(struct world *w)
{
    return w->p[1].joins > 0;
}

static bool loris_all_closed(struct world *w)
{
    (void)w;
    for (size_t i = 0; i < LORIS_N; i++)
        if (!loris[i].closed)
            return false;
    return true;
}

static void test_slowloris(void)
{
    struct world w;
    world_init(&w);
    memset(loris, 0, sizeof loris);
    memset(loris_pos, 0, sizeof loris_pos);
    loris_connected = 0;
    peer_start_on(&w, "a", TRANSPORT_UDP, "127.0.24.1:0", LORIS_TIMEOUT);
    peer_start_on(&w, "b", TRANSPORT_UDP, "127.0.24.2:0", 0);
    if (w.n < 2) {
        world_close(&w);
        return;
    }
    struct sockaddr_in from, to;
    char ip[64];
    uv_ip4_addr("127.0.24.200", 0, &from);
    addr_ip_format(&w.p[0].adv, ip, sizeof ip);
    uv_ip4_addr(ip, w.p[0].adv.port, &to);
    for (size_t i = 0; i < LORIS_N; i++) {
        struct loris *l = &loris[i];
        uv_tcp_init(&w.loop, &l->tcp);
        l->tcp.data = l->creq.data = l->wreq.data = l;
        CHECK_EQ(uv_tcp_bind(&l->tcp, (struct sockaddr *)&from, 0), 0);
        CHECK_EQ(uv_tcp_connect(&l->creq, &l->tcp, (struct sockaddr *)&to,
                                loris_conn),
                 0);
    }
    uv_timer_init(&w.loop, &loris_timer);
    uv_timer_start(&loris_timer, loris_tick, 1000, 1000);
    CHECK(run_until(&w, loris_all_connected));
    CHECK(run_until(&w, loris_held));
    uv_update_time(&w.loop);
    uint64_t t0 = uv_now(&w.loop);
    const struct transport_stats *ts = transport_stats(w.p[0].t);
    CHECK_EQ(ts->tcp_refused_per_ip, LORIS_N - 32);
    CHECK_EQ(ts->tcp_refused, LORIS_N - 32);

    /* b joins from its own address while the 32 hang, and syncs again. */
    join(&w.p[1], &w.p[0].adv);
    CHECK(run_until(&w, b_joined));
    CHECK_EQ(w.p[1].joined, 1);
    CHECK_EQ(w.p[1].join_err, 0);
    w.p[1].joins = 0;
    join(&w.p[1], &w.p[0].adv);
    CHECK(run_until(&w, b_joined));
    CHECK_EQ(w.p[1].joined, 1);
    CHECK_EQ(w.p[1].join_err, 0);
    uv_update_time(&w.loop);
    /* Before the slow ones' deadline: they were still holding. */
    CHECK(uv_now(&w.loop) - t0 < LORIS_TIMEOUT / 2);
    CHECK(sees_alive(&w.p[0], &w.p[1]) && sees_alive(&w.p[1], &w.p[0]));

    /* The 32 are closed by the deadline, not before (a second of sweep
     * and scheduling allowed after it). */
    size_t early = 0;
    for (size_t i = 0; i < LORIS_N; i++)
        early += loris[i].eof;
    CHECK_EQ(early, LORIS_N - 32);
    CHECK(run_until(&w, loris_all_closed));
    for (size_t i = 0; i < LORIS_N; i++)
        CHECK(loris[i].eof_at <= t0 + LORIS_TIMEOUT + 3000);
    CHECK_EQ(node_stats(w.p[0].nd)->dropped[NODE_DROP_STREAM_TIMEOUT] +
                 ts->tcp_timeouts,
             32);
    CHECK_EQ(node_stats(w.p[0].nd)->dropped[NODE_DROP_STREAM_LIMIT], 0);

    uv_close((uv_handle_t *)&loris_timer, NULL);
    world_close(&w);
}

int main(void)
{
    const char *lv = getenv("HS_TEST_LOG");
    if (lv && hs_log_level_parse(lv) >= 0)
        log_level = hs_log_level_parse(lv);
    RUN(test_bind_errors);
    RUN(test_advertise);
    RUN(test_resolve);
    RUN(test_tcp_frames_bare);
    RUN(test_tcp_backpressure);
    RUN(test_join_refused);
    RUN(test_udp_cluster);
    RUN(test_tcp_cluster);
    RUN(test_garbage);
    RUN(test_failure_detected);
    RUN(test_slowloris);
    return test_report("test_transport");
}
