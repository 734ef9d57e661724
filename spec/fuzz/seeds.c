/* seeds.c: write the seed inputs that hearsay's own encoders make, for
 * the fuzz targets' corpora (scripts/fuzz-corpus.lua runs it).
 *
 *   build/fuzz/seeds DIR
 *
 * writes DIR/<target>/hs-<name> for every seed: memberlist messages as
 * hearsay sends them, hearsay's user messages (the envelope: user
 * messages, rumors, metadata gossip and announcements), push/pull states
 * with the Lua and metadata sections, metadata sync requests and answers,
 * snapshots, LZW streams. The messages come from a cluster built as the
 * targets build theirs (fuzz.c), so they fit the state the targets
 * start from. */
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/codec/lzw.h"
#include "../../src/codec/mp.h"
#include "../../src/codec/wire.h"
#include "../../src/core/metadata.h"
#include "../../src/core/node_int.h"
#include "../../src/core/snapshot.h"

static const char *root;
static int written;

static void save(const char *target, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/hs-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f)) {
        perror(path);
        exit(1);
    }
    written++;
}

static void save_buf(const char *target, const char *name, const struct buf *b)
{
    if (b->err) {
        fprintf(stderr, "seeds: %s/%s: %s\n", target, name,
                hs_strerror(b->err));
        exit(1);
    }
    save(target, name, b->data, b->len);
}

/* A seed for a target whose first byte picks a mode (metadata). */
static void save_mode(const char *target, const char *name, uint8_t mode,
                      const void *p, size_t n)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, mode);
    buf_append(&b, p, n);
    save_buf(target, name, &b);
    buf_free(&b);
}

/* A seed for the reply target: mode, piece size, then the answers. */
static void save_reply(const char *name, uint8_t mode, uint8_t chunk,
                       const struct buf *const *answers, size_t n)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, mode);
    buf_putc(&b, chunk);
    for (size_t i = 0; i < n; i++) {
        buf_put_be16(&b, (uint16_t)answers[i]->len);
        buf_append(&b, answers[i]->data, answers[i]->len);
    }
    save_buf("reply", name, &b);
    buf_free(&b);
}

static void compressed(const struct buf *msg, struct buf *out)
{
    buf_reset(out);
    wire_put_compress(out, msg->data, msg->len);
}

/* ===== Packets ===== */

static const uint8_t vsn[6] = {1, 5, 2, 0, 0, 0};
static const uint8_t ip_a[4] = {10, 0, 0, 1}, ip_b[4] = {10, 0, 0, 2},
                     ip_c[4] = {10, 0, 0, 3};

static void alive(struct buf *b, const char *name, const uint8_t ip[4],
                  uint32_t inc, const char *meta)
{
    struct wire_alive m = {inc,
                           wire_str(name),
                           wire_raw(ip, 4),
                           7946,
                           meta ? wire_str(meta) : (struct wire_raw){0},
                           wire_raw(vsn, 6)};
    wire_put_alive(b, &m);
}

static void packets(struct sim *s)
{
    struct buf m = BUF_INIT, x = BUF_INIT, z = BUF_INIT;
    struct wire_ping ping = {7, wire_str("a"), wire_raw(ip_b, 4), 7946,
                             wire_str("b")};
    wire_put_ping(&m, &ping);
    save_buf("packet", "ping", &m);
    save_buf("stream", "ping", &m);

    struct wire_suspect sus = {1, wire_str("b"), wire_str("a")};
    buf_reset(&x);
    wire_put_suspect(&x, &sus);
    save_buf("packet", "suspect-b", &x);
    struct wire_part parts[3] = {{m.data, m.len}, {x.data, x.len}};
    buf_reset(&z);
    wire_put_compound(&z, parts, 2);
    wire_add_crc(&z, 0);
    save_buf("packet", "crc-ping-suspect", &z);

    struct wire_suspect me = {5, wire_str("a"), wire_str("b")};
    buf_reset(&x);
    wire_put_suspect(&x, &me);
    save_buf("packet", "suspect-a", &x);
    buf_reset(&x);
    wire_put_dead(&x, &me);
    save_buf("packet", "dead-a", &x);
    struct wire_suspect leave = {1, wire_str("b"), wire_str("b")};
    buf_reset(&x);
    wire_put_dead(&x, &leave);
    save_buf("packet", "leave-b", &x);

    struct wire_indirect_ping ind = {
        9,    wire_raw(ip_b, 4), 7946, wire_str("b"),
        true, wire_raw(ip_b, 4), 7946, wire_str("b")};
    buf_reset(&x);
    wire_put_indirect_ping(&x, &ind);
    save_buf("packet", "indirect-ping", &x);
    struct wire_ack ack = {1, wire_raw("\x01\x80", 2)};
    buf_reset(&x);
    wire_put_ack(&x, &ack);
    save_buf("packet", "ack", &x);
    struct wire_nack nack = {1};
    buf_reset(&x);
    wire_put_nack(&x, &nack);
    save_buf("packet", "nack", &x);

    buf_reset(&x);
    alive(&x, "b", ip_b, 2, "\xff\x80");
    save_buf("packet", "alive-b", &x);
    buf_reset(&x);
    alive(&x, "a", ip_a, 3, NULL);
    save_buf("packet", "alive-a", &x);
    buf_reset(&x);
    alive(&x, "b", ip_c, 9, NULL);
    save_buf("packet", "alive-b-moved", &x);
    buf_reset(&x);
    alive(&x, "deny-c", ip_c, 1, NULL);
    save_buf("packet", "alive-denied", &x);

    /* A new member, with news about it in a compressed compound. */
    struct buf c = BUF_INIT, sc = BUF_INIT;
    alive(&c, "c", ip_c, 1, "meta");
    struct wire_suspect sus_c = {1, wire_str("c"), wire_str("b")};
    wire_put_suspect(&sc, &sus_c);
    parts[0] = (struct wire_part){c.data, c.len};
    parts[1] = (struct wire_part){sc.data, sc.len};
    parts[2] = (struct wire_part){m.data, m.len};
    buf_reset(&x);
    wire_put_compound(&x, parts, 3);
    compressed(&x, &z);
    save_buf("packet", "compress-compound", &z);
    buf_free(&c);
    buf_free(&sc);

    /* Three more members, then two independent confirmations of a
     * suspicion about one of them (Lifeguard's k needs n >= 4). */
    struct buf many = BUF_INIT;
    size_t lens3[6];
    static const char *const who[] = {"c", "d", "e"};
    for (int i = 0; i < 3; i++) {
        uint8_t ip[4] = {10, 0, 0, (uint8_t)(3 + i)};
        size_t before = many.len;
        alive(&many, who[i], ip, 1, NULL);
        lens3[i] = many.len - before;
    }
    for (int i = 0; i < 3; i++) {
        struct wire_suspect sx = {1, wire_str("c"),
                                  wire_str(i == 0 ? "b" : who[i])};
        size_t before = many.len;
        wire_put_suspect(&many, &sx);
        lens3[3 + i] = many.len - before;
    }
    struct wire_part six[6];
    for (size_t i = 0, o = 0; i < 6; o += lens3[i], i++)
        six[i] = (struct wire_part){many.data + o, lens3[i]};
    buf_reset(&x);
    wire_put_compound(&x, six, 6);
    save_buf("packet", "suspicion-confirmed", &x);
    buf_free(&many);

    /* What node b gossips: its metadata writes, announcements, rumors and
     * user messages, as they come out of its queues. */
    struct node *nb = sim_node(s, FUZZ_B);
    node_broadcast(nb, "hello", 5);
    char why[64];
    static uint8_t big[4000];
    memset(big, 'y', sizeof big);
    metadata_put(nb->store, "app/huge", 8, big, sizeof big, false, why,
                 sizeof why, NULL);
    metadata_put(nb->store, "app/two", 7, NULL, 0, true, why, sizeof why, NULL);
    metadata_put(nb->store, "app/three", 9, "3", 1, false, why, sizeof why,
                 NULL);
    struct buf all = BUF_INIT;
    size_t lens[16], n = 0;
    n += metadata_take(nb->store, 2, 65536, 10, &all, lens, 16);
    size_t k = 0;
    bqueue_take(&nb->user_queue, 2, 65536, 10, &all, lens + n, 16 - n, &k);
    n += k;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "gossip-b-%zu", i);
        save("packet", name, all.data + off, lens[i]);
        off += lens[i];
    }
    /* A user message from b to a, and one from something else. */
    buf_reset(&x);
    buf_putc(&x, WIRE_USER);
    wire_put_envelope(&x, WIRE_ENV_USER, "b", 1);
    buf_append(&x, "to a", 4);
    save_buf("packet", "user-b", &x);
    static const uint8_t serf_event[] = {
        0x08, 0x03, 0x84, 0xa2, 'C', 'C', 0xc3, 0xa5, 'L',  'T', 'i', 'm', 'e',
        0x01, 0xa4, 'N',  'a',  'm', 'e', 0xa6, 'd',  'e',  'p', 'l', 'o', 'y',
        0xa7, 'P',  'a',  'y',  'l', 'o', 'a',  'd',  0xa2, 'v', '1'};
    save("packet", "user-serf", serf_event, sizeof serf_event);
    buf_free(&all);
    buf_free(&m);
    buf_free(&x);
    buf_free(&z);
}

/* ===== Streams ===== */

/* 08 {UserMsgLen} envelope body: a stream user message. */
static void user_stream(struct buf *out, uint8_t kind, const struct buf *body)
{
    struct buf env = BUF_INIT;
    wire_put_envelope(&env, kind, "b", 1);
    wire_put_user_header(out, (int64_t)(env.len + body->len));
    buf_append(out, env.data, env.len);
    buf_append(out, body->data, body->len);
    buf_free(&env);
}

/* A metadata entry as md_codec.c writes one. */
static void entry(struct buf *b, const char *key, const char *value,
                  uint64_t version, const char *origin)
{
    mp_write_map(b, value ? 5 : 4);
    mp_write_str(b, "k");
    mp_write_str(b, key);
    if (value) {
        mp_write_str(b, "v");
        mp_write_str(b, value);
    }
    mp_write_str(b, "ver");
    mp_write_uint(b, version);
    mp_write_str(b, "o");
    mp_write_str(b, origin);
    mp_write_str(b, "d");
    mp_write_bool(b, value == NULL);
}

static void streams(struct sim *s)
{
    struct node *na = sim_node(s, FUZZ_A), *nb = sim_node(s, FUZZ_B);
    struct buf m = BUF_INIT, z = BUF_INIT, ans = BUF_INIT, req = BUF_INIT;
    uint64_t ver =
        metadata_hlc_next(nb->store, node_now(nb) + 1767225600000ull);

    /* b's push/pull, and a's answer to it (with the key lists). */
    pushpull_encode(nb, true, NULL, NULL, 0, &m);
    save_buf("stream", "pushpull-join", &m);
    compressed(&m, &z);
    save_buf("stream", "pushpull-join-compressed", &z);
    size_t ulen = 0;
    const uint8_t *user = pushpull_user_state(m.data + 1, m.len - 1, &ulen);
    pushpull_encode(na, true, NULL, user, ulen, &ans);
    const struct buf *one[2] = {&ans};
    save_reply("pushpull-join-answer", 0, 0, one, 1);
    buf_reset(&m);
    pushpull_encode(nb, false, NULL, NULL, 0, &m);
    save_buf("stream", "pushpull", &m);

    /* A metadata sync request from b, and a's answer, which the reply
     * target gets after a push/pull answer or for a fetch. */
    struct buf body = BUF_INIT;
    mp_write_map(&body, 2);
    mp_write_str(&body, "push");
    mp_write_array(&body, 2);
    entry(&body, "app/two", "b", ver, "b");
    entry(&body, "app/old", NULL, ver, "b");
    mp_write_str(&body, "want");
    mp_write_array(&body, 3);
    mp_write_str(&body, "app/one");
    mp_write_str(&body, "app/big");
    mp_write_str(&body, "app/none");
    user_stream(&req, WIRE_ENV_META_REQ, &body);
    save_buf("stream", "meta-sync", &req);
    compressed(&req, &z);
    save_buf("stream", "meta-sync-compressed", &z);
    save_mode("metadata", "serve", 4, body.data, body.len);

    struct buf served = BUF_INIT, resp = BUF_INIT;
    metadata_stream_serve(na->store, body.data, body.len, &served);
    user_stream(&resp, WIRE_ENV_META_RESP, &served);
    const struct buf *two[2] = {&ans, &resp};
    save_reply("pushpull-then-sync", 0, 0, two, 2);
    save_reply("pushpull-then-sync-pieces", 0x81, 7, two, 2);

    /* A sync request of the hash tree: nodes asked about, ranges (the
     * first from after a key), a key the asker lacks below its horizon;
     * and a's answer, after the push/pull answer. */
    buf_reset(&body);
    mp_write_map(&body, 4);
    mp_write_str(&body, "hz");
    mp_write_uint(&body, ver - 1);
    mp_write_str(&body, "tree");
    mp_write_array(&body, 3);
    static const uint64_t asks[3][2] = {{1, 0}, {1, 255}, {2, 0x12}};
    for (int i = 0; i < 3; i++) {
        mp_write_array(&body, 2);
        mp_write_uint(&body, asks[i][0]);
        mp_write_uint(&body, asks[i][1]);
    }
    mp_write_str(&body, "ranges");
    mp_write_array(&body, 2);
    mp_write_array(&body, 3);
    mp_write_uint(&body, 1);
    mp_write_uint(&body, 7);
    mp_write_str(&body, "app/one");
    mp_write_array(&body, 2);
    mp_write_uint(&body, 3);
    mp_write_uint(&body, 0xabcd);
    mp_write_str(&body, "gone");
    mp_write_array(&body, 1);
    mp_write_array(&body, 3);
    mp_write_str(&body, "app/two");
    mp_write_uint(&body, ver);
    mp_write_str(&body, "b");
    buf_reset(&req);
    user_stream(&req, WIRE_ENV_META_REQ, &body);
    save_buf("stream", "meta-tree", &req);
    save_mode("metadata", "serve-tree", 4, body.data, body.len);
    buf_reset(&served);
    buf_reset(&resp);
    metadata_stream_serve(na->store, body.data, body.len, &served);
    user_stream(&resp, WIRE_ENV_META_RESP, &served);
    save_reply("pushpull-then-tree", 0, 0, two, 2);

    /* The answer to a fetch of app/far (what reply mode 2 asks for). */
    buf_reset(&body);
    mp_write_map(&body, 2);
    mp_write_str(&body, "e");
    mp_write_array(&body, 1);
    entry(&body, "app/far", "far away", ver, "b");
    mp_write_str(&body, "served");
    mp_write_uint(&body, 1);
    buf_reset(&resp);
    user_stream(&resp, WIRE_ENV_META_RESP, &body);
    one[0] = &resp;
    save_reply("fetch-answer", 2, 0, one, 1);
    compressed(&resp, &z);
    one[0] = &z;
    save_reply("fetch-answer-compressed", 0x82, 0, one, 1);

    /* Acks to the fallback ping, and an errResp. */
    for (uint32_t seq = 1; seq <= 2; seq++) {
        struct wire_ack ack = {seq, {0}};
        char name[32];
        buf_reset(&m);
        wire_put_ack(&m, &ack);
        one[0] = &m;
        snprintf(name, sizeof name, "ping-ack-%u", seq);
        save_reply(name, 3, 0, one, 1);
    }
    struct wire_err err = {wire_str("no thanks")};
    buf_reset(&m);
    wire_put_err(&m, &err);
    one[0] = &m;
    save_reply("err", 0, 0, one, 1);

    /* Keyring operations (hearsay keys): requests from b, and the
     * answers to a's own (the reply target seals them in modes 4, 5). */
    static const uint8_t key16[16] = "0123456789abcdef";
    for (int op = NODE_KEYS_LIST; op <= NODE_KEYS_REMOVE; op++) {
        static const char *const names[] = {"keys-list", "keys-install",
                                            "keys-use", "keys-remove"};
        buf_reset(&body);
        buf_putc(&body, (uint8_t)op);
        buf_putc(&body, op == NODE_KEYS_LIST ? 0 : sizeof key16);
        if (op != NODE_KEYS_LIST)
            buf_append(&body, key16, sizeof key16);
        buf_reset(&m);
        user_stream(&m, WIRE_ENV_KEYS_REQ, &body);
        save_buf("stream", names[op], &m);
    }
    buf_reset(&body);
    buf_append(&body, "\x01\x02ok\x02", 5);
    buf_putc(&body, 32);
    buf_append(&body, "0123456789abcdef0123456789abcdef", 32);
    buf_putc(&body, 16);
    buf_append(&body, key16, sizeof key16);
    buf_reset(&m);
    user_stream(&m, WIRE_ENV_KEYS_RESP, &body);
    one[0] = &m;
    save_reply("keys-list-answer", 4, 0, one, 1);
    buf_reset(&body);
    buf_append(&body, "\x01\x00\x00", 3);
    buf_reset(&m);
    user_stream(&m, WIRE_ENV_KEYS_RESP, &body);
    save_reply("keys-install-answer", 5, 0, one, 1);
    buf_reset(&body);
    buf_append(&body, "\x00\x07refused\x00", 10);
    buf_reset(&m);
    user_stream(&m, WIRE_ENV_KEYS_RESP, &body);
    save_reply("keys-install-refused", 0x85, 3, one, 1);

    /* A user message over a stream. */
    buf_reset(&body);
    buf_append(&body, "reliable", 8);
    buf_reset(&m);
    user_stream(&m, WIRE_ENV_USER, &body);
    save_buf("stream", "user", &m);

    buf_free(&m);
    buf_free(&z);
    buf_free(&ans);
    buf_free(&req);
    buf_free(&body);
    buf_free(&served);
    buf_free(&resp);
}

/* ===== The metadata store ===== */

static void first_entry(void *ud, const struct meta_entry *e)
{
    metadata_entry_encode(e, ud);
}

static void store(struct sim *s)
{
    struct node *na = sim_node(s, FUZZ_A), *nb = sim_node(s, FUZZ_B);
    struct buf snap = BUF_INIT, sa = BUF_INIT, sb = BUF_INIT;
    metadata_snapshot(nb->store, &snap);
    save_mode("metadata", "restore", 0, snap.data, snap.len);

    /* The store-wide fields, then one entry (as a log would hold it). */
    struct buf se = BUF_INIT, st = BUF_INIT;
    metadata_state_encode(nb->store, &st);
    buf_putc(&se, (uint8_t)st.len);
    buf_append(&se, st.data, st.len);
    metadata_scan(nb->store, NULL, 0, 1, first_entry, &se, NULL);
    save_mode("metadata", "state-entry", 8, se.data, se.len);
    buf_free(&se);
    buf_free(&st);

    metadata_sync_encode(na->store, NULL, 0, &sa);
    metadata_sync_encode(nb->store, sa.data, sa.len, &sb);
    save_mode("metadata", "merge-started", 1, sb.data, sb.len);
    save_mode("metadata", "merge", 2, sb.data, sb.len);
    save_mode("metadata", "encode", 3, sa.data, sa.len);

    struct buf all = BUF_INIT;
    size_t lens[8];
    size_t n = metadata_take(nb->store, 2, 65536, 10, &all, lens, 8);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        struct wire_envelope e;
        if (wire_get_envelope(all.data + off + 1, lens[i] - 1, &e) == 0) {
            char name[32];
            snprintf(name, sizeof name, "gossip-%zu", i);
            save_mode("metadata", name, 5, e.body, e.len);
        }
        off += lens[i];
    }

    /* A snapshot file as hearsay 0.1.0 wrote it (hearsay.snapshot, which
     * the data dir still loads): magic, body length, CRC-32, and the
     * body {saved, name, meta, members}, saved at time 0 so that the
     * seed does not change from one run to the next. */
    struct buf body = BUF_INIT, whole = BUF_INIT;
    mp_write_map(&body, 4);
    mp_write_str(&body, "saved");
    mp_write_uint(&body, 0);
    mp_write_str(&body, "name");
    mp_write_str(&body, "b");
    mp_write_str(&body, "meta");
    mp_write_raw(&body, snap.data, snap.len);
    mp_write_str(&body, "members");
    mp_write_array(&body, 1);
    mp_write_array(&body, 2);
    mp_write_str(&body, "a");
    mp_write_str(&body, "10.0.0.1:7946");
    buf_append(&whole, "HEARSAY1", 8);
    buf_put_be32(&whole, (uint32_t)body.len);
    buf_put_be32(&whole, wire_crc32(body.data, body.len));
    buf_append(&whole, body.data, body.len);
    if (whole.err || whole.len < 16) {
        fprintf(stderr, "seeds: snapshot: out of memory\n");
        exit(1);
    }
    const uint8_t *file = whole.data;
    size_t len = whole.len;
    save_mode("metadata", "snapshot-body", 6, file + 16, len - 16);
    save_mode("metadata", "snapshot-file", 7, file, len);
    buf_free(&body);
    buf_free(&whole);
    buf_free(&snap);
    buf_free(&sa);
    buf_free(&sb);
    buf_free(&all);
}

/* ===== LZW ===== */

static void lzw(struct sim *s)
{
    struct buf m = BUF_INIT, z = BUF_INIT;
    pushpull_encode(sim_node(s, FUZZ_A), false, NULL, NULL, 0, &m);
    lzw_encode(m.data, m.len, &z);
    save_buf("lzw", "pushpull", &z);
    buf_reset(&z);
    lzw_encode(NULL, 0, &z);
    save_buf("lzw", "empty", &z);
    /* Enough distinct pairs to fill the dictionary and clear it. */
    static uint8_t noise[9000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 16);
    }
    buf_reset(&z);
    lzw_encode(noise, sizeof noise, &z);
    save_buf("lzw", "full-dictionary", &z);
    static uint8_t same[5000];
    memset(same, 'a', sizeof same);
    buf_reset(&z);
    lzw_encode(same, sizeof same, &z);
    save_buf("lzw", "runs", &z);
    buf_free(&m);
    buf_free(&z);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    struct sim *s = fuzz_cluster();
    packets(s);
    streams(s);
    store(s);
    lzw(s);
    fuzz_free(s);
    printf("seeds: %d files under %s\n", written, root);
    return 0;
}
