/* core.c: what the protocol core costs per packet, next to what the
 * kernel costs for the same packet. Run by scripts/bench-core; prints a
 * table.
 *
 * The node under test runs on an io of its own that sends nowhere (it
 * counts), so the numbers are the core's alone: decode, checks, state
 * rules, the reply. Allocations are counted by wrapping glibc's malloc,
 * so they include the libraries' (msgpack-c, zlib, OpenSSL). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/codec/keyring.h"
#include "../../src/codec/wire.h"
#include "../../src/core/node.h"

/* ===== Counting allocations ===== */

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t a, size_t n);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static unsigned long long n_allocs, n_bytes;

void *malloc(size_t n)
{
    n_allocs++;
    n_bytes += n;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t n)
{
    n_allocs++;
    n_bytes += a * n;
    return __libc_calloc(a, n);
}

void *realloc(void *p, size_t n)
{
    n_allocs++;
    n_bytes += n;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

/* ===== A node that sends nowhere ===== */

static uint64_t clock_ms = 1000;
static unsigned long long sent;

static uint64_t io_now(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static uint64_t io_wall(void *ctx)
{
    (void)ctx;
    return 1767225600000ull + clock_ms;
}

static void io_wakeup(void *ctx, uint64_t at)
{
    (void)ctx;
    (void)at;
}

static void io_random(void *ctx, void *p, size_t n)
{
    (void)ctx;
    static uint64_t x = 88172645463325252ull;
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

static int io_send(void *ctx, const struct hs_addr *to, const void *p, size_t n)
{
    (void)ctx;
    (void)to;
    (void)p;
    (void)n;
    sent++;
    return 0;
}

static int io_open(void *ctx, const struct hs_addr *to, void *owner,
                   struct io_stream **out)
{
    (void)ctx;
    (void)to;
    (void)owner;
    (void)out;
    return HS_EIO;
}

static int io_write(void *ctx, struct io_stream *s, const void *p, size_t n)
{
    (void)ctx;
    (void)s;
    (void)p;
    (void)n;
    return 0;
}

static void io_close(void *ctx, struct io_stream *s)
{
    (void)ctx;
    (void)s;
}

static struct io io = {NULL,    io_now,  io_wall,  io_wakeup, io_random,
                       io_send, io_open, io_write, io_close};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#define MEMBERS 100
#define PER_PACKET 20 /* alive messages in a full gossip packet */

static struct hs_addr member_addr(int i)
{
    struct hs_addr a;
    uint8_t ip[4] = {10, 1, (uint8_t)(i >> 8), (uint8_t)i};
    addr_from_raw(ip, 4, 7946, &a);
    return a;
}

static void put_alive(struct buf *b, int i, uint32_t inc)
{
    char name[32];
    int n = snprintf(name, sizeof name, "node-%03d", i);
    struct hs_addr a = member_addr(i);
    uint8_t vsn[6] = {1, 5, 2, 2, 5, 5};
    struct wire_alive m = {.incarnation = inc,
                           .node = wire_raw(name, (size_t)n),
                           .addr = wire_raw(a.ip, a.len),
                           .port = a.port,
                           .vsn = wire_raw(vsn, 6)};
    wire_put_alive(b, &m);
}

/* A gossip packet: PER_PACKET alive messages about known members, as a
 * compound with a CRC, optionally compressed. */
static void gossip_packet(struct buf *out, bool compress)
{
    struct buf msgs[PER_PACKET];
    struct wire_part parts[PER_PACKET];
    for (int i = 0; i < PER_PACKET; i++) {
        buf_init(&msgs[i]);
        put_alive(&msgs[i], i * 3 % MEMBERS, 1);
        parts[i] = (struct wire_part){msgs[i].data, msgs[i].len};
    }
    struct buf c = BUF_INIT;
    wire_put_compound(&c, parts, PER_PACKET);
    buf_reset(out);
    if (compress)
        wire_put_compress(out, c.data, c.len);
    else
        buf_append(out, c.data, c.len);
    wire_add_crc(out, 0);
    buf_free(&c);
    for (int i = 0; i < PER_PACKET; i++)
        buf_free(&msgs[i]);
}

static void row(const char *what, size_t bytes, double ns, long n,
                unsigned long long allocs, unsigned long long abytes)
{
    printf("| %-46s | %5zu | %8.0f | %10.0f | %6.1f | %8.0f |\n", what, bytes,
           ns / (double)n, 1e9 / (ns / (double)n), (double)allocs / (double)n,
           (double)abytes / (double)n);
}

/* Feed one datagram n times; prints its row. */
static void feed(struct node *nd, const char *what, const struct buf *pkt,
                 const struct hs_addr *from, long n)
{
    unsigned long long a0 = n_allocs, b0 = n_bytes;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        node_io_packet(nd, from, pkt->data, pkt->len);
    double t = now_ns() - t0;
    row(what, pkt->len, t, n, n_allocs - a0, n_bytes - b0);
}

static struct node *make_node(const char *key)
{
    struct config c;
    config_defaults(&c, "lan");
    snprintf(c.name, sizeof c.name, "bench");
    if (key)
        snprintf(c.encrypt, sizeof c.encrypt, "%s", key);
    static struct hs_logger quiet = {HS_LOG_OFF, NULL, NULL};
    struct node *nd;
    if (node_new(&c, &io, NULL, &quiet, &nd)) {
        fprintf(stderr, "bench: cannot make a node\n");
        exit(1);
    }
    config_free(&c);
    struct hs_addr self;
    addr_parse("10.0.0.1:7946", 7946, &self);
    node_start(nd, &self);
    /* MEMBERS members, each announced once */
    for (int i = 0; i < MEMBERS; i++) {
        struct buf b = BUF_INIT;
        put_alive(&b, i, 1);
        struct hs_addr from = member_addr(i);
        node_io_packet(nd, &from, b.data, b.len);
        buf_free(&b);
    }
    return nd;
}

/* What the kernel costs: a datagram of `len` bytes sent to and read
 * back from a loopback socket. */
static void syscalls(size_t len, long n)
{
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int big = 8 << 20;
    setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(rx, (struct sockaddr *)&sa, &sl)) {
        perror("bench: socket");
        return;
    }
    uint8_t buf[65536];
    memset(buf, 7, sizeof buf);
    double tsend = 0, trecv = 0;
    long done = 0;
    while (done < n) {
        long batch = n - done < 256 ? n - done : 256;
        double t0 = now_ns();
        for (long i = 0; i < batch; i++)
            sendto(tx, buf, len, 0, (struct sockaddr *)&sa, sizeof sa);
        double t1 = now_ns();
        for (long i = 0; i < batch; i++)
            recv(rx, buf, sizeof buf, 0);
        trecv += now_ns() - t1;
        tsend += t1 - t0;
        done += batch;
    }
    char what[64];
    snprintf(what, sizeof what, "kernel: sendto(), loopback");
    row(what, len, tsend, n, 0, 0);
    snprintf(what, sizeof what, "kernel: recv()");
    row(what, len, trecv, n, 0, 0);
    close(rx);
    close(tx);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    struct node *nd = make_node(NULL);
    struct node *enc = make_node(key);

    printf("| %-46s | %5s | %8s | %10s | %6s | %8s |\n", "per packet", "bytes",
           "ns", "packets/s", "allocs", "alloc B");
    printf("|------------------------------------------------|-------|"
           "----------|------------|--------|----------|\n");

    /* A ping: decoded, answered with an ack (sent nowhere). */
    struct buf pkt = BUF_INIT;
    struct hs_addr from = member_addr(1);
    struct wire_ping ping = {.seq = 7, .node = wire_raw("bench", 5)};
    wire_put_ping(&pkt, &ping);
    unsigned long long s0 = sent;
    feed(nd, "ping in, ack out", &pkt, &from, n);
    if (sent - s0 != (unsigned long long)n)
        fprintf(stderr, "bench: %llu acks for %ld pings\n", sent - s0, n);

    gossip_packet(&pkt, false);
    feed(nd, "gossip: 20 alive in a compound, CRC", &pkt, &from, n);
    gossip_packet(&pkt, true);
    feed(nd, "gossip: the same compressed (LZW)", &pkt, &from, n);

    /* The same compressed packet sealed with AES-256-GCM. */
    struct keyring kr;
    keyring_init(&kr);
    uint8_t k[KEYRING_KEY_MAX];
    size_t kl;
    keyring_parse(key, k, &kl);
    keyring_add(&kr, k, kl);
    uint8_t nonce[KEYRING_NONCE] = {0};
    struct buf sealed = BUF_INIT;
    keyring_seal(&kr, 1, nonce, NULL, 0, pkt.data, pkt.len, &sealed);
    feed(enc, "gossip: the same sealed (AES-256-GCM)", &sealed, &from, n);

    /* Encode: a full gossip packet built from messages. */
    unsigned long long a0 = n_allocs, b0 = n_bytes;
    double t0 = now_ns();
    for (long i = 0; i < n / 4; i++)
        gossip_packet(&pkt, true);
    row("encode a gossip packet: 20 alive, LZW, CRC", pkt.len, now_ns() - t0,
        n / 4, n_allocs - a0, n_bytes - b0);
    a0 = n_allocs;
    b0 = n_bytes;
    t0 = now_ns();
    for (long i = 0; i < n / 4; i++) {
        buf_reset(&sealed);
        keyring_seal(&kr, 1, nonce, NULL, 0, pkt.data, pkt.len, &sealed);
    }
    row("seal it (AES-256-GCM)", sealed.len, now_ns() - t0, n / 4,
        n_allocs - a0, n_bytes - b0);

    syscalls(pkt.len, n);
    syscalls(1400, n);

    buf_free(&pkt);
    buf_free(&sealed);
    keyring_clear(&kr);
    node_close(nd);
    node_close(enc);
    return 0;
}
