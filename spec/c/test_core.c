/* test_core.c: unit checks of the broadcast queue, timers, member table,
 * addresses and configuration. */
#include "test.h"

#include "../../src/base/timers.h"
#include "../../src/core/broadcast.h"
#include "../../src/core/config.h"
#include "../../src/core/members.h"

static void take(struct bqueue *q, size_t limit, int tl, char *out,
                 size_t outlen)
{
    struct buf b = BUF_INIT;
    size_t lens[64], n;
    bqueue_take(q, 2, limit, tl, &b, lens, 64, &n);
    size_t o = 0, off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 2 < outlen; i++) {
        o += (size_t)snprintf(out + o, outlen - o, "%s%.*s", i ? "," : "",
                              (int)lens[i], (const char *)b.data + off);
        off += lens[i];
    }
    buf_free(&b);
}

/* memberlist queue.go: fewest transmits first, then larger, then newer;
 * a message is dropped at the transmit limit; news about a member
 * replaces older news about it. */
static void test_queue_order(void)
{
    struct bqueue q;
    bqueue_init(&q, 0);
    char out[256];
    bqueue_push(&q, NULL, "a", 1, false);
    bqueue_push(&q, NULL, "bbb", 3, false);
    bqueue_push(&q, NULL, "cc", 2, false);
    bqueue_push(&q, NULL, "dd", 2, false);
    /* Largest first; equal sizes newest first. */
    take(&q, 1000, 3, out, sizeof out);
    CHECK(!strcmp(out, "bbb,dd,cc,a"));
    /* With 5 bytes, the fresh 4-byte message does not fit (2 bytes of
     * overhead): the largest that fits, from the next tier, goes. */
    bqueue_push(&q, NULL, "eeee", 4, false);
    take(&q, 5, 3, out, sizeof out);
    CHECK(!strcmp(out, "bbb"));
    /* With 6 it fits, and fresh messages go first. */
    take(&q, 6, 3, out, sizeof out);
    CHECK(!strcmp(out, "eeee"));
    /* bbb reaches the limit of 3 transmits here and is dropped. */
    take(&q, 1000, 3, out, sizeof out);
    CHECK(!strcmp(out, "eeee,dd,cc,a,bbb"));
    CHECK_EQ(bqueue_len(&q), 4);
    take(&q, 1000, 3, out, sizeof out);
    CHECK(!strcmp(out, "eeee,dd,cc,a"));
    CHECK_EQ(bqueue_len(&q), 0);
    bqueue_close(&q);
}

static int finished;
static void on_finished(void *ud, struct bcast *b)
{
    (void)ud;
    (void)b;
    finished++;
}

static void test_queue_invalidate(void)
{
    struct bqueue q;
    bqueue_init(&q, 0);
    q.on_finished = on_finished;
    struct member m1 = {0}, m2 = {0};
    char out[256];
    bqueue_push(&q, &m1.bcast, "alive-1", 7, true);
    bqueue_push(&q, &m2.bcast, "other", 5, false);
    finished = 0;
    bqueue_push(&q, &m1.bcast, "dead-1", 6, false);
    CHECK_EQ(finished, 1); /* the replaced one is finished */
    CHECK_EQ(bqueue_len(&q), 2);
    take(&q, 1000, 1, out, sizeof out);
    CHECK(!strcmp(out, "dead-1,other"));
    CHECK(m1.bcast == NULL && m2.bcast == NULL);
    bqueue_close(&q);

    /* The bound keeps the freshest. */
    bqueue_init(&q, 3);
    for (int i = 0; i < 5; i++) {
        char msg[2] = {(char)('a' + i), 0};
        bqueue_push(&q, NULL, msg, 1, false);
    }
    CHECK_EQ(bqueue_len(&q), 3);
    CHECK_EQ(q.dropped, 2);
    bqueue_close(&q);
}

/* Lazy news: the queue keeps no bytes and asks its owner for them at
 * each send; an owner that goes leaves its last words in the queue. */
struct owner {
    struct bcast *bcast;
    char text[16];
};

static void owner_encode(void *ud, struct bcast **slot, struct buf *out)
{
    (void)ud;
    const struct owner *o = (const struct owner *)(const void *)slot;
    buf_append(out, o->text, strlen(o->text));
}

static void test_queue_lazy(void)
{
    struct bqueue q;
    bqueue_init(&q, 0);
    CHECK_EQ(bqueue_push_lazy(&q, NULL, 1, false), HS_EINVAL);
    q.encode = owner_encode;
    struct owner *a = calloc(1, sizeof *a), b = {0};
    char out[256];
    strcpy(a->text, "alive-a");
    strcpy(b.text, "bb");
    CHECK_EQ(bqueue_push_lazy(&q, &a->bcast, 7, false), 0);
    CHECK_EQ(bqueue_push(&q, &b.bcast, "bb", 2, false), 0);
    CHECK(a->bcast != NULL && a->bcast->lazy);
    take(&q, 1000, 3, out, sizeof out);
    CHECK(!strcmp(out, "alive-a,bb"));
    /* New news replaces the old, lazy or not. */
    strcpy(a->text, "alive-A2");
    CHECK_EQ(bqueue_push_lazy(&q, &a->bcast, 8, false), 0);
    CHECK_EQ(bqueue_len(&q), 2);
    /* The owner goes: its message is written out and stays. */
    bqueue_disown(&q, &a->bcast);
    CHECK(a->bcast == NULL);
    memset(a, 0x5a, sizeof *a);
    free(a);
    take(&q, 1000, 3, out, sizeof out);
    CHECK(!strcmp(out, "alive-A2,bb"));
    /* An owner whose news changed length without a push is not sent
     * (never a packet over its limit): the message is dropped. */
    strcpy(b.text, "bbbb");
    CHECK_EQ(bqueue_push_lazy(&q, &b.bcast, 4, false), 0);
    strcpy(b.text, "bbbbbb");
    take(&q, 1000, 3, out, sizeof out);
    CHECK(!strcmp(out, "alive-A2"));
    CHECK(b.bcast == NULL);
    CHECK_EQ(bqueue_len(&q), 1); /* alive-A2, sent twice of three times */
    bqueue_close(&q);
}

/* The queue against a plain model of memberlist's GetBroadcasts, under
 * random pushes, replacements and takes: the same messages, in the same
 * order, in every packet. */
struct model_msg {
    int live, owner;
    unsigned transmits, len;
    uint64_t id;
    char text[16];
};

static uint64_t model_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void queue_model(size_t max_items)
{
    enum {
        OWNERS = 64,
        MAXMSG = 4096,
        TL = 6,
        OVER = 2
    };
    static struct model_msg mm[MAXMSG];
    static struct owner own[OWNERS];
    size_t nmm = 0;
    uint64_t rnd = 0x9e3779b97f4a7c15u, next_id = 0;
    size_t maxlive = 0;
    struct bqueue q;
    bqueue_init(&q, max_items);
    q.encode = owner_encode;
    memset(own, 0, sizeof own);
    int bad = 0;
    for (int step = 0; step < 20000 && nmm < MAXMSG - 4 && !bad; step++) {
        unsigned op = (unsigned)(model_rand(&rnd) % 8);
        if (op < 5) {
            /* Push: sometimes news about an owner, lazy or copied. */
            int o = (int)(model_rand(&rnd) % (OWNERS * 2)) - OWNERS;
            unsigned len = 1 + (unsigned)(model_rand(&rnd) % 9);
            char text[16];
            snprintf(text, sizeof text, "%c%0*u", 'A' + (int)(nmm % 26),
                     (int)len - 1, (unsigned)(nmm % 100000000));
            text[len] = '\0';
            if (o >= 0) {
                for (size_t i = 0; i < nmm; i++)
                    if (mm[i].live && mm[i].owner == o)
                        mm[i].live = 0;
                memcpy(own[o].text, text, len + 1);
                if (model_rand(&rnd) & 1)
                    bqueue_push_lazy(&q, &own[o].bcast, len, false);
                else
                    bqueue_push(&q, &own[o].bcast, text, len, false);
            } else {
                bqueue_push(&q, NULL, text, len, false);
            }
            mm[nmm] = (struct model_msg){1, o, 0, len, ++next_id, ""};
            memcpy(mm[nmm++].text, text, len + 1);
            /* Past the bound the most sent goes: most transmits, then
             * the shortest, then the oldest; never the one just pushed. */
            for (;;) {
                size_t live = 0, worst = SIZE_MAX;
                for (size_t i = 0; i < nmm - 1; i++) {
                    if (!mm[i].live)
                        continue;
                    live++;
                    if (worst == SIZE_MAX) {
                        worst = i;
                        continue;
                    }
                    const struct model_msg *x = &mm[i], *w = &mm[worst];
                    if (x->transmits > w->transmits ||
                        (x->transmits == w->transmits &&
                         (x->len < w->len ||
                          (x->len == w->len && x->id < w->id))))
                        worst = i;
                }
                if (max_items == 0 || live + 1 <= max_items)
                    break;
                mm[worst].live = 0;
            }
            continue;
        }
        /* Take: tiers from the fewest transmits; in a tier the largest
         * message that fits, newest first. */
        size_t limit = 4 + (size_t)(model_rand(&rnd) % 40);
        size_t want[64], nwant = 0, used = 0;
        int taken[MAXMSG] = {0};
        unsigned tier = 0;
        for (;;) {
            if (used + OVER >= limit || nwant == 64)
                break;
            size_t free_bytes = limit - used - OVER;
            size_t best = SIZE_MAX;
            for (size_t i = 0; i < nmm; i++) {
                if (!mm[i].live || taken[i] || mm[i].transmits != tier ||
                    mm[i].len > free_bytes)
                    continue;
                if (best == SIZE_MAX || mm[i].len > mm[best].len ||
                    (mm[i].len == mm[best].len && mm[i].id > mm[best].id))
                    best = i;
            }
            if (best == SIZE_MAX) {
                unsigned nt = UINT32_MAX;
                for (size_t i = 0; i < nmm; i++)
                    if (mm[i].live && !taken[i] && mm[i].transmits > tier &&
                        mm[i].transmits < nt)
                        nt = mm[i].transmits;
                if (nt == UINT32_MAX)
                    break;
                tier = nt;
                continue;
            }
            taken[best] = 1;
            want[nwant++] = best;
            used += OVER + mm[best].len;
        }
        struct buf b = BUF_INIT;
        size_t lens[64], n;
        bqueue_take(&q, OVER, limit, TL, &b, lens, 64, &n);
        if (n != nwant) {
            bad = 1;
            CHECK_EQ(n, nwant);
        }
        size_t off = 0;
        for (size_t i = 0; i < n && !bad; i++) {
            struct model_msg *x = &mm[want[i]];
            if (lens[i] != x->len || off + lens[i] > b.len ||
                memcmp(b.data + off, x->text, x->len) != 0) {
                bad = 1;
                CHECK_MEM(b.data + off, lens[i], x->text, x->len);
            }
            off += lens[i];
            if (++x->transmits >= TL) {
                x->live = 0;
                if (x->owner >= 0)
                    CHECK(own[x->owner].bcast == NULL);
            }
        }
        buf_free(&b);
        size_t live = 0;
        for (size_t i = 0; i < nmm; i++)
            live += (size_t)mm[i].live;
        if (live > maxlive)
            maxlive = live;
        if (live != bqueue_len(&q)) {
            bad = 1;
            CHECK_EQ(bqueue_len(&q), live);
        }
    }
    CHECK(!bad);
    CHECK(nmm > 1000);
    /* Long enough to span several 256-item chunks, and to the bound. */
    CHECK(max_items ? maxlive == max_items && q.dropped > 0 : maxlive > 1000);
    bqueue_close(&q);
}

static void test_queue_model(void)
{
    queue_model(0);
    queue_model(300); /* bounded, across more than one chunk */
}

static int fired[8];
static int nfired;
static struct timers *ts_under_test;
static struct timer tm[8];

static void timer_cb(struct timer *t)
{
    int i = (int)(t - tm);
    fired[nfired++] = i;
    if (i == 2 && nfired < 6) { /* re-arm itself later, stop another */
        timer_start(ts_under_test, t, 100);
        timer_stop(ts_under_test, &tm[4]);
    }
}

static void test_timers(void)
{
    struct timers ts;
    timers_init(&ts);
    ts_under_test = &ts;
    for (int i = 0; i < 8; i++)
        timer_init(&tm[i], timer_cb);
    uint64_t at[8] = {50, 10, 30, 10, 40, 70, 60, 20};
    for (int i = 0; i < 8; i++)
        timer_start(&ts, &tm[i], at[i]);
    CHECK_EQ(timers_next(&ts), 10);
    timer_stop(&ts, &tm[6]);
    nfired = 0;
    CHECK_EQ(timers_run(&ts, 55), 5);
    /* 10 (armed 1st: tm1), 10 (tm3), 20, 30 (tm2 re-arms at 100 and stops
     * tm4), 50 */
    int want[] = {1, 3, 7, 2, 0};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(fired[i], want[i]);
    CHECK(!timer_active(&tm[4]));
    CHECK_EQ(timers_next(&ts), 70);
    CHECK_EQ(timers_run(&ts, 1000), 2);
    CHECK_EQ(timers_next(&ts), UINT64_MAX);
    timers_close(&ts);
}

static void test_member_table(void)
{
    struct members t;
    members_init(&t);
    struct hs_addr a;
    addr_parse("10.0.0.1:7946", 7946, &a);
    char name[32];
    struct member *m;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "node-%d", i);
        CHECK_EQ(
            members_add(&t, name, strlen(name), &a, (uint64_t)i * 7919, &m), 0);
    }
    CHECK_EQ(members_count(&t), 200);
    CHECK_EQ(t.count[MEMBER_DEAD], 200);
    for (int i = 0; i < 200; i += 2) {
        snprintf(name, sizeof name, "node-%d", i);
        m = members_find(&t, name, strlen(name));
        CHECK(m != NULL);
        if (m)
            members_remove(&t, m);
    }
    CHECK_EQ(members_count(&t), 100);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "node-%d", i);
        m = members_find(&t, name, strlen(name));
        CHECK((m != NULL) == (i % 2 == 1));
        if (m)
            CHECK_EQ(t.order[m->index] == m, 1);
    }
    CHECK(members_find(&t, "node-1x", 7) == NULL);
    /* Added back at random places of the order, past a growth of the
     * hash: every member still found, at its place. */
    for (int i = 0; i < 400; i += 2) {
        snprintf(name, sizeof name, "node-%d", i);
        CHECK_EQ(members_add(&t, name, strlen(name), &a,
                             (uint64_t)i * 104729 + 3, &m),
                 0);
    }
    CHECK_EQ(members_count(&t), 300);
    int found = 0;
    for (int i = 0; i < 400; i++) {
        snprintf(name, sizeof name, "node-%d", i);
        m = members_find(&t, name, strlen(name));
        if (m && t.order[m->index] == m && !strcmp(m->name, name))
            found++;
    }
    CHECK_EQ(found, 300);
    /* Names are at most 255 bytes. */
    char longname[300];
    memset(longname, 'x', sizeof longname);
    CHECK_EQ(members_add(&t, longname, 256, &a, 1, &m), HS_EINVAL);
    CHECK_EQ(members_add(&t, longname, 255, &a, 1, &m), 0);
    CHECK(members_find(&t, longname, 255) == m);
    members_close(&t);
}

static void test_addr(void)
{
    struct hs_addr a;
    char b[HS_ADDRSTRLEN];
    CHECK_EQ(addr_parse("127.0.0.1:7946", 1, &a), 0);
    CHECK_EQ(a.len, 4);
    CHECK(!strcmp(addr_format(&a, b, sizeof b), "127.0.0.1:7946"));
    CHECK_EQ(addr_parse("[::1]:80", 1, &a), 0);
    CHECK(!strcmp(addr_format(&a, b, sizeof b), "[::1]:80"));
    CHECK_EQ(addr_parse("10.1.2.3", 7946, &a), 0);
    CHECK_EQ(a.port, 7946);
    CHECK_EQ(addr_parse("10.1.2.3:99999", 1, &a), HS_EADDR);
    CHECK_EQ(addr_parse("host.example:1", 1, &a), HS_EADDR);
    CHECK_EQ(addr_parse("", 1, &a), HS_EADDR);
    /* IPv4-mapped equals IPv4 by IP, not by bytes (Go semantics). */
    uint8_t mapped[16] = {0, 0, 0,    0,    0,  0, 0, 0,
                          0, 0, 0xff, 0xff, 10, 1, 2, 3};
    struct hs_addr m6, v4;
    addr_from_raw(mapped, 16, 7946, &m6);
    addr_parse("10.1.2.3:7946", 1, &v4);
    CHECK(addr_ip_eq(&m6, &v4));
    CHECK(!addr_eq(&m6, &v4));
    struct hs_cidr c;
    CHECK_EQ(cidr_parse("10.0.0.0/8", &c), 0);
    CHECK(cidr_contains(&c, &v4));
    CHECK(cidr_contains(&c, &m6));
    CHECK_EQ(cidr_parse("192.168.1.0/24", &c), 0);
    CHECK(!cidr_contains(&c, &v4));
    CHECK_EQ(cidr_parse("10.0.0.0/33", &c), HS_EADDR);
    CHECK_EQ(cidr_parse("nonsense", &c), HS_EADDR);
}

static void test_config(void)
{
    struct config c;
    char err[256], v[64];
    CHECK_EQ(config_defaults(&c, "lan"), 0);
    CHECK_EQ(c.probe_interval, 1000);
    CHECK_EQ(c.gossip_nodes, 3);
    CHECK_EQ(config_defaults(&c, "wan"), 0);
    CHECK_EQ(c.probe_timeout, 3000);
    CHECK_EQ(c.suspicion_mult, 6);
    CHECK_EQ(config_defaults(&c, "local"), 0);
    CHECK_EQ(c.tcp_timeout, 1000);
    CHECK_EQ(c.indirect_checks, 1);
    CHECK_EQ(config_defaults(&c, "moon"), HS_EINVAL);

    config_defaults(&c, "lan");
    CHECK_EQ(config_set(&c, "probe_interval", "1m30s", err, sizeof err), 0);
    CHECK_EQ(c.probe_interval, 90000);
    CHECK_EQ(config_set(&c, "probe_timeout", "1.5s", err, sizeof err), 0);
    CHECK_EQ(c.probe_timeout, 1500);
    CHECK_EQ(config_set(&c, "fanout", "7", err, sizeof err), 0);
    CHECK_EQ(c.gossip_nodes, 7);
    CHECK_EQ(config_set(&c, "packet_size", "9000", err, sizeof err), 0);
    CHECK_EQ(c.udp_buffer_size, 9000);
    CHECK_EQ(config_set(&c, "protocol", "tcp", err, sizeof err), 0);
    CHECK_EQ(c.transport, TRANSPORT_TCP);
    CHECK_EQ(config_set(&c, "print_events", "false", err, sizeof err), 0);
    CHECK_EQ(c.log_level, 2);
    CHECK_EQ(config_set(&c, "max_stream_size", "1MiB", err, sizeof err), 0);
    CHECK_EQ(c.max_stream_size, 1 << 20);
    CHECK_EQ(config_set(&c, "cidrs_allowed", "10.0.0.0/8", err, sizeof err), 0);
    CHECK_EQ(c.cidrs_allowed.n, 1);

    CHECK_EQ(config_set(&c, "probe_intervall", "1s", err, sizeof err),
             HS_EINVAL);
    CHECK(strstr(err, "unknown configuration key") != NULL);
    CHECK_EQ(config_set(&c, "probe_interval", "fast", err, sizeof err),
             HS_EINVAL);
    CHECK(strstr(err, "not a duration") != NULL);
    CHECK_EQ(config_set(&c, "gossip_nodes", "-1", err, sizeof err), HS_EINVAL);
    CHECK(strstr(err, "out of range") != NULL);
    CHECK_EQ(config_set(&c, "transport", "sctp", err, sizeof err), HS_EINVAL);
    CHECK(strstr(err, "udp, tcp") != NULL);
    CHECK_EQ(config_set(&c, "cidrs_allowed", "10/8/8", err, sizeof err),
             HS_EINVAL);
    CHECK_EQ(config_set(&c, "bind", "nowhere:port", err, sizeof err),
             HS_EINVAL);

    CHECK_EQ(config_get(&c, "probe_interval", v, sizeof v), 0);
    CHECK(!strcmp(v, "90s"));
    /* probe_timeout larger than the interval is refused */
    config_set(&c, "probe_interval", "1s", err, sizeof err);
    config_set(&c, "probe_timeout", "2s", err, sizeof err);
    CHECK_EQ(config_validate(&c, err, sizeof err), HS_EINVAL);
    config_set(&c, "probe_timeout", "500ms", err, sizeof err);
    CHECK_EQ(config_validate(&c, err, sizeof err), 0);
    /* every key has a doc and round-trips through get/set */
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key_info *k = config_key(i);
        CHECK(k->doc && strlen(k->doc) > 10);
        char val[512];
        CHECK_EQ(config_get(&c, k->name, val, sizeof val), 0);
        if (k->kind != CONFIG_LIST)
            CHECK_EQ(config_set(&c, k->name, val, err, sizeof err), 0);
    }
    config_free(&c);
}

int main(void)
{
    RUN(test_queue_order);
    RUN(test_queue_invalidate);
    RUN(test_queue_lazy);
    RUN(test_queue_model);
    RUN(test_timers);
    RUN(test_member_table);
    RUN(test_addr);
    RUN(test_config);
    return test_report("core");
}
