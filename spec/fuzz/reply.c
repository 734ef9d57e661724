/* reply.c: libFuzzer target for what a peer answers on the streams a node
 * opens: push/pull answers (members, user state, the metadata section
 * with the lists of keys that differ), metadata sync and fetch answers,
 * acks to fallback pings, errResp.
 *
 * The simulated network cannot speak for a peer, so this target gives the
 * node an io of its own (io.h): a virtual clock, packets dropped, and
 * streams whose far side is the input. The node knows one peer, b, and
 * holds some metadata. Input:
 *   byte 0   what the node does first (low three bits): 0 join b
 *            (push/pull, Join=true), 1 a periodic push/pull with b, 2
 *            fetch a large metadata value b announced, 3 probe b until the
 *            TCP fallback ping, 4 list the cluster's keys, 5 install a key
 *            across the cluster (6 and 7 as 3); bit 6 set, and always for
 *            4 and 5: the node has a keyring and the target seals each
 *            answer with its key; bit 7 set: the peer closes each stream
 *            after its answer
 *   byte 1   the answer arrives in pieces of this many bytes (0: at once)
 *   then     segments, each a 16-bit big-endian length and that many
 *            bytes: the answer on the first stream the node opens, on the
 *            second (a metadata sync after a push/pull, say), and so on.
 *            A stream left without a segment is refused at connect. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/codec/mp.h"
#include "../../src/codec/wire.h"
#include "../../src/core/metadata.h"
#include "../../src/core/node_int.h"

#define MAX_STREAMS 64
#define ROUNDS 12
#define ROUND_MS 500
#define WALL_EPOCH 1767225600000ull /* 2026-01-01, as the simulation */

struct fstream {
    void *owner;
    bool closed;  /* the node closed it: no more callbacks */
    bool handled; /* answered (or refused) already */
};

struct fio {
    uint64_t now, wake, rng;
    struct fstream streams[MAX_STREAMS];
    size_t n;
};

static uint64_t f_now(void *ctx)
{
    return ((struct fio *)ctx)->now;
}

static uint64_t f_wall(void *ctx)
{
    return WALL_EPOCH + ((struct fio *)ctx)->now;
}

static void f_wakeup(void *ctx, uint64_t at)
{
    ((struct fio *)ctx)->wake = at;
}

static void f_random(void *ctx, void *p, size_t n)
{
    struct fio *f = ctx;
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        f->rng ^= f->rng << 13; /* xorshift64 */
        f->rng ^= f->rng >> 7;
        f->rng ^= f->rng << 17;
        b[i] = (uint8_t)f->rng;
    }
}

static int f_send(void *ctx, const struct hs_addr *to, const void *p, size_t n)
{
    (void)ctx;
    (void)to;
    fuzz_touch(p, n);
    return 0;
}

static int f_open(void *ctx, const struct hs_addr *to, void *owner,
                  struct io_stream **out)
{
    struct fio *f = ctx;
    (void)to;
    if (f->n == MAX_STREAMS)
        return HS_EBUSY;
    struct fstream *s = &f->streams[f->n++];
    s->owner = owner;
    *out = (struct io_stream *)s;
    return 0;
}

static int f_write(void *ctx, struct io_stream *s, const void *p, size_t n)
{
    (void)ctx;
    if (((struct fstream *)s)->closed)
        abort(); /* io.h: no use after stream_close */
    fuzz_touch(p, n);
    return 0;
}

static void f_close(void *ctx, struct io_stream *s)
{
    (void)ctx;
    struct fstream *fs = (struct fstream *)s;
    if (fs->closed)
        abort(); /* closed twice */
    fs->closed = true;
}

/* Run the node's timers due up to `until`. */
static void advance(struct fio *f, struct node *nd, uint64_t until)
{
    for (int i = 0; i < 100000 && f->wake <= until; i++) {
        if (f->wake > f->now)
            f->now = f->wake;
        f->wake = UINT64_MAX;
        node_io_timers(nd);
    }
    if (until > f->now)
        f->now = until;
}

/* A datagram from b, sealed when the node has a keyring. */
static void from_b(struct node *nd, const struct hs_addr *b,
                   const struct buf *m, bool sealed)
{
    struct buf w = BUF_INIT;
    fuzz_wrap(sealed ? FUZZ_SEAL : 0, false, m->data, m->len, &w);
    node_io_packet(nd, b, w.data, w.len);
    buf_free(&w);
}

/* Tell the node that b at 10.0.0.2:7946 is alive, as b would. */
static void learn_peer(struct node *nd, const struct hs_addr *b, bool sealed)
{
    static const uint8_t vsn[6] = {1, 5, 2, 2, 5, 5};
    struct buf m = BUF_INIT;
    struct wire_alive a = {1,       wire_str("b"), wire_raw(b->ip, b->len),
                           b->port, {0},           wire_raw(vsn, 6)};
    wire_put_alive(&m, &a);
    from_b(nd, b, &m, sealed);
    buf_free(&m);
}

/* b announces a value too large for a packet: the node fetches it. */
static void announce(struct node *nd, const struct hs_addr *b, uint64_t now,
                     bool sealed)
{
    struct buf m = BUF_INIT;
    buf_putc(&m, WIRE_USER);
    wire_put_envelope(&m, WIRE_ENV_META, "b", 1);
    mp_write_map(&m, 5);
    mp_write_str(&m, "k");
    mp_write_str(&m, "app/far");
    mp_write_str(&m, "ver");
    mp_write_uint(&m, (WALL_EPOCH + now) << 16);
    mp_write_str(&m, "o");
    mp_write_str(&m, "b");
    mp_write_str(&m, "d");
    mp_write_bool(&m, false);
    mp_write_str(&m, "big");
    mp_write_uint(&m, 5000);
    from_b(nd, b, &m, sealed);
    buf_free(&m);
}

static void put(struct node *nd, const char *key, const char *value, bool del)
{
    char why[128];
    metadata_put(node_metadata(nd), key, strlen(key), value,
                 value ? strlen(value) : 0, del, why, sizeof why, NULL);
}

static const uint8_t new_key[16] = {'f', 'u', 'z', 'z', 'k', 'e', 'y', '0',
                                    '1', '2', '3', '4', '5', '6', '7', '8'};

static void keys_done(void *ud, const struct node_keys_result *r)
{
    (void)ud;
    for (size_t i = 0; i < r->nfailures; i++) {
        fuzz_touch(r->failures[i].name, strlen(r->failures[i].name));
        fuzz_touch(r->failures[i].message, strlen(r->failures[i].message));
    }
    for (size_t i = 0; i < r->nkeys; i++)
        fuzz_touch(r->keys[i].key, r->keys[i].len);
}

/* Answer stream s with `seg`, in pieces of `chunk` bytes. */
static void answer(struct node *nd, struct fstream *s, const uint8_t *seg,
                   size_t len, size_t chunk, bool close)
{
    s->handled = true;
    node_io_stream_connected(nd, s->owner, 0);
    for (size_t off = 0; off < len && !s->closed;) {
        size_t k = chunk && chunk < len - off ? chunk : len - off;
        node_io_stream_data(nd, s->owner, seg + off, k);
        off += k;
    }
    if (close && !s->closed)
        node_io_stream_end(nd, s->owner, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0] & 7;
    bool close = data[0] & 0x80;
    bool sealed = (data[0] & 0x40) || mode == 4 || mode == 5;
    size_t chunk = data[1];
    const uint8_t *p = data + 2, *end = data + size;

    static struct fio f;
    memset(&f, 0, sizeof f);
    f.rng = 0x9e3779b97f4a7c15ull;
    f.wake = UINT64_MAX;
    f.now = 1000;
    struct io io = {&f,     f_now,  f_wall,  f_wakeup, f_random,
                    f_send, f_open, f_write, f_close};
    struct config c;
    fuzz_config(&c, "a");
    c.push_pull_interval = 0; /* only the push/pull the input asks for */
    c.reconnect_interval = 0;
    if (sealed)
        fuzz_secure_config(&c, 0);
    struct node *nd;
    if (node_new(&c, &io, &fuzz_hooks, &fuzz_logger, &nd))
        abort();
    config_free(&c);
    struct hs_addr self, b;
    addr_parse("10.0.0.1:7946", 7946, &self);
    addr_parse("10.0.0.2:7946", 7946, &b);
    if (node_start(nd, &self))
        abort();
    learn_peer(nd, &b, sealed);
    put(nd, "app/one", "1", false);
    put(nd, "app/gone", "g", false);
    put(nd, "app/gone", NULL, true);
    put(nd, "ro/x", "refused", false);

    static const char *const names[] = {"b"};
    switch (mode) {
    case 0:
        node_join(nd, &b, names, 1, NULL, NULL);
        break;
    case 1:
        pushpull_start(nd, &b, false, NULL);
        break;
    case 2:
        announce(nd, &b, f.now, sealed);
        break;
    case 4:
        node_keys(nd, NODE_KEYS_LIST, NULL, 0, keys_done, NULL);
        break;
    case 5:
        node_keys(nd, NODE_KEYS_INSTALL, new_key, sizeof new_key, keys_done,
                  NULL);
        break;
    default:
        break; /* the probe schedule opens the fallback ping */
    }

    size_t next = 0; /* the next stream to answer */
    for (int round = 0; round < ROUNDS; round++) {
        while (next < f.n) {
            struct fstream *s = &f.streams[next++];
            if (s->closed || s->handled)
                continue;
            if (end - p < 2) {
                s->handled = true;
                node_io_stream_connected(nd, s->owner, HS_EREFUSED);
                continue;
            }
            size_t len = hs_be16(p);
            p += 2;
            if (len > (size_t)(end - p))
                len = (size_t)(end - p);
            if (sealed) {
                struct buf w = BUF_INIT;
                fuzz_wrap(FUZZ_SEAL, true, p, len, &w);
                answer(nd, s, w.data, w.len, chunk, close);
                buf_free(&w);
            } else {
                answer(nd, s, p, len, chunk, close);
            }
            p += len;
        }
        advance(&f, nd, f.now + ROUND_MS);
    }
    node_close(nd);
    for (size_t i = 0; i < f.n; i++)
        if (!f.streams[i].closed)
            abort(); /* node_close must close every stream */
    fuzz_check_leaks("node_close");
    return 0;
}
