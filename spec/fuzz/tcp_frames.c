/* tcp_frames.c: libFuzzer target for the bytes of an accepted TCP
 * connection: what the transport makes of them (frames.h, the code
 * transport_pkt.c reads with) and what node a of a fresh two-node cluster
 * then makes of that.
 *
 * The input is the connection's bytes from the first. A first byte of
 * 0xE7 makes it a packet connection of transport "tcp": its frames are
 * read three ways (all the bytes at once, one byte at a time, and in
 * pieces of sizes drawn from the input), which must give the same
 * frames and the same end; a reader that is stopped after its first
 * frame (the connection closed meanwhile) must read no further. Each
 * frame then reaches node a as a datagram from node b, as
 * transport_pkt.c delivers it. Any other first byte makes it a
 * memberlist stream, which node a gets as an accepted stream. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/codec/frames.h"
#include "../../src/core/node.h"

#define DELIVER_MAX 64 /* frames handed to the node, to keep runs short */

/* The frames a reader produced: each as `len:u32be | bytes`. */
struct seen {
    struct buf all;
    size_t n;
    size_t stop_after; /* 0: never stop */
};

static int collect(void *ud, const uint8_t *p, size_t n)
{
    struct seen *s = ud;
    if (n == 0 || n > FRAMES_MAX) {
        fprintf(stderr, "tcp_frames: a frame of %zu bytes\n", n);
        abort();
    }
    fuzz_touch(p, n);
    buf_put_be32(&s->all, (uint32_t)n);
    buf_append(&s->all, p, n);
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

/* Read p[0..n) in pieces: sizes from `next` (0: all at once). Returns
 * frames_feed's last answer. */
static int read_all(const uint8_t *p, size_t n, struct seen *s,
                    size_t (*next)(void *), void *st)
{
    struct frames f = {0};
    const char *why = NULL;
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0;) {
        size_t k = next ? next(st) : n - off;
        if (k == 0 || k > n - off)
            k = n - off;
        rc = frames_feed(&f, p + off, k, collect, s, &why);
        off += k;
    }
    if (rc < 0 && why == NULL) {
        fprintf(stderr, "tcp_frames: an error without a reason\n");
        abort();
    }
    if (rc == 0 && f.count != s->n) {
        fprintf(stderr, "tcp_frames: count %llu, %zu delivered\n",
                (unsigned long long)f.count, s->n);
        abort();
    }
    frames_free(&f);
    return rc;
}

static size_t one(void *st)
{
    (void)st;
    return 1;
}

/* Piece sizes from a generator seeded by the input: 1 to 4096 bytes. */
static size_t drawn(void *st)
{
    uint64_t *x = st;
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return 1 + (size_t)((*x >> 33) % 4096);
}

static void same(const struct seen *a, int ra, const struct seen *b, int rb,
                 const char *how)
{
    if (ra != rb || a->n != b->n || a->all.len != b->all.len ||
        (a->all.len && memcmp(a->all.data, b->all.data, a->all.len))) {
        fprintf(stderr,
                "tcp_frames: read %s: %d and %zu frames, not %d "
                "and %zu\n",
                how, rb, b->n, ra, a->n);
        abort();
    }
}

static void packets(const uint8_t *p, size_t n)
{
    struct seen whole = {BUF_INIT, 0, 0}, bytes = {BUF_INIT, 0, 0},
                pieces = {BUF_INIT, 0, 0}, first = {BUF_INIT, 0, 1};
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        seed = (seed ^ p[i]) * 1099511628211ull;
    int rw = read_all(p, n, &whole, NULL, NULL);
    int rb = read_all(p, n, &bytes, one, NULL);
    int rp = read_all(p, n, &pieces, drawn, &seed);
    same(&whole, rw, &bytes, rb, "a byte at a time");
    same(&whole, rw, &pieces, rp, "in pieces");
    int rf = read_all(p, n, &first, one, NULL);
    if (whole.n > 0 && (rf != 1 || first.n != 1)) {
        fprintf(stderr, "tcp_frames: read on after being stopped\n");
        abort();
    }
    if (whole.all.err) {
        fprintf(stderr, "tcp_frames: out of memory\n");
        abort();
    }
    struct sim *s = fuzz_cluster();
    struct hs_addr from = sim_addr(s, FUZZ_B);
    size_t off = 0;
    for (size_t i = 0; i < whole.n && i < DELIVER_MAX; i++) {
        size_t len = hs_be32(whole.all.data + off);
        node_io_packet(sim_node(s, FUZZ_A), &from, whole.all.data + off + 4,
                       len);
        off += 4 + len;
    }
    sim_run(s, 1500);
    buf_free(&whole.all);
    buf_free(&bytes.all);
    buf_free(&pieces.all);
    buf_free(&first.all);
    fuzz_free(s); /* and no block of ours may be left */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (frames_classify(data[0]) == FRAMES_PACKETS) {
        packets(data + 1, size - 1);
    } else {
        /* A memberlist stream: node a reads it as transport_accept.c
         * hands it over (the first byte included); left open, so that a message
         * cut short meets the deadline. */
        struct sim *s = fuzz_cluster();
        sim_inject_stream(s, FUZZ_A, data, size, false);
        sim_run(s, 2500);
        fuzz_free(s);
    }
    return 0;
}
