/* test_lzw.c: the LZW codec against Go's output, round trips, bad input. */
#include "test.h"

#include <time.h>

#include "../../src/base/buf.h"
#include "../../src/codec/lzw.h"
#include "lzw_vectors.h"

/* ===== Helpers ===== */

static uint64_t rng_state = 0x243f6a8885a308d3u;

static uint32_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng();
    return p;
}

/* Text-ish data: words from a small vocabulary, with some random numbers,
 * roughly what JSON-ish or msgpack-with-keys payloads look like. */
static uint8_t *textish_bytes(size_t n)
{
    static const char *words[] = {
        "the ",  "node ",   "alive ",      "suspect ",    "\"Incarnation\": ",
        "dead ", "gossip ", "memberlist ", "{\"Addr\": ", "127.0.0.1, ",
        "serf ", "event ",  "query ",      "Payload ",    "SeqNo ",
        "\n"};
    uint8_t *p = malloc(n ? n : 1);
    size_t o = 0;
    while (o < n) {
        char tmp[32];
        const char *w = words[rng() % HS_ARRAY_LEN(words)];
        if (rng() % 4 == 0) {
            snprintf(tmp, sizeof tmp, "%u, ", (unsigned)(rng() % 100000));
            w = tmp;
        }
        for (size_t i = 0; w[i] && o < n; i++)
            p[o++] = (uint8_t)w[i];
    }
    return p;
}

/* Pack a code sequence LSB first with the width rule shared by Go's
 * writer and reader (clear resets; each data code advances `next`; the
 * width grows when `next` reaches a power of two; a full 12-bit table
 * stops advancing). Lets tests build streams Go's writer never makes. */
static void pack_codes(const unsigned *codes, size_t n, struct buf *out)
{
    uint64_t acc = 0;
    unsigned nbits = 0, width = 9, next = 257;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint64_t)codes[i] << nbits;
        nbits += width;
        while (nbits >= 8) {
            buf_putc(out, (uint8_t)acc);
            acc >>= 8;
            nbits -= 8;
        }
        if (codes[i] == 256) {
            width = 9;
            next = 257;
        } else if (codes[i] != 257) {
            next++;
            if (next == 1u << width) {
                if (width < 12)
                    width++;
                else
                    next--;
            }
        }
    }
    if (nbits > 0)
        buf_putc(out, (uint8_t)acc);
}

/* Split a stream into codes (same width rule); stops at the end code or
 * the end of input. Returns the number of codes stored in `codes`. */
static size_t scan_codes(const uint8_t *in, size_t len, unsigned *codes,
                         size_t max, unsigned *max_width)
{
    uint64_t acc = 0;
    unsigned nbits = 0, width = 9, next = 257;
    size_t pos = 0, n = 0;
    *max_width = 9;
    while (n < max) {
        while (nbits < width && pos < len) {
            acc |= (uint64_t)in[pos++] << nbits;
            nbits += 8;
        }
        if (nbits < width)
            break;
        unsigned c = (unsigned)(acc & ((1u << width) - 1));
        acc >>= width;
        nbits -= width;
        codes[n++] = c;
        if (width > *max_width)
            *max_width = width;
        if (c == 257)
            break;
        if (c == 256) {
            width = 9;
            next = 257;
        } else {
            next++;
            if (next == 1u << width) {
                if (width < 12)
                    width++;
                else
                    next--;
            }
        }
    }
    return n;
}

/* A deliberately plain reference encoder of Go's writer: a full
 * [code][byte] child table instead of a hash, emitting the code list.
 * Returns the number of codes. */
static size_t ref_encode(const uint8_t *in, size_t len, unsigned *codes)
{
    static uint16_t child[4096][256];
    static uint32_t used[4096];
    size_t nused = 0, n = 0;
    unsigned next = 257;
    codes[n++] = 256;
    if (len > 0) {
        unsigned code = in[0];
        for (size_t i = 1; i < len; i++) {
            if (child[code][in[i]]) {
                code = child[code][in[i]];
                continue;
            }
            codes[n++] = code;
            next++;
            if (next == 4095) {
                codes[n++] = 256;
                next = 257;
                for (size_t k = 0; k < nused; k++)
                    child[used[k] >> 8][used[k] & 0xff] = 0;
                nused = 0;
            } else {
                child[code][in[i]] = (uint16_t)next;
                used[nused++] = code << 8 | in[i];
            }
            code = in[i];
        }
        codes[n++] = code;
        if (++next == 4095)
            codes[n++] = 256;
    }
    codes[n++] = 257;
    for (size_t k = 0; k < nused; k++)
        child[used[k] >> 8][used[k] & 0xff] = 0;
    return n;
}

/* Encode with lzw_encode and with the reference; compare the bytes, then
 * decode and compare with the input. Returns the encoded length. */
static size_t check_roundtrip(const uint8_t *in, size_t len)
{
    struct buf enc = BUF_INIT, ref = BUF_INIT, dec = BUF_INIT;
    CHECK_EQ(lzw_encode(in, len, &enc), 0);
    unsigned *codes = malloc((len + len / 1000 + 8) * sizeof *codes);
    size_t n = ref_encode(in, len, codes);
    pack_codes(codes, n, &ref);
    free(codes);
    CHECK_MEM(enc.data, enc.len, ref.data, ref.len);
    CHECK_EQ(lzw_decode(enc.data, enc.len, len, &dec), 0);
    /* (an empty result allocates nothing; memcmp wants a pointer) */
    CHECK_MEM(dec.data ? dec.data : in, dec.len, in, len);
    size_t out = enc.len;
    buf_free(&enc);
    buf_free(&ref);
    buf_free(&dec);
    return out;
}

static int decode_hex(const char *hex, size_t max_out, struct buf *out)
{
    size_t n;
    uint8_t *in = test_unhex(hex, &n);
    int rc = lzw_decode(in, n, max_out, out);
    free(in);
    return rc;
}

static int decode_codes(const unsigned *codes, size_t n, size_t max_out,
                        struct buf *out)
{
    struct buf in = BUF_INIT;
    pack_codes(codes, n, &in);
    int rc = lzw_decode(in.data, in.len, max_out, out);
    buf_free(&in);
    return rc;
}

/* ===== Known answers ===== */

static void test_worked_examples(void)
{
    static const uint8_t want_ab[] = {0x00, 0x83, 0x08, 0x11, 0x48, 0x30, 0x20};
    static const uint8_t want_empty[] = {0x00, 0x03, 0x02};
    struct buf b = BUF_INIT, d = BUF_INIT;

    CHECK_EQ(lzw_encode((const uint8_t *)"ABABABA", 7, &b), 0);
    CHECK_MEM(b.data, b.len, want_ab, sizeof want_ab);
    CHECK_EQ(lzw_decode(want_ab, sizeof want_ab, 100, &d), 0);
    CHECK_MEM(d.data, d.len, "ABABABA", 7);

    buf_reset(&b);
    buf_reset(&d);
    CHECK_EQ(lzw_encode(NULL, 0, &b), 0);
    CHECK_MEM(b.data, b.len, want_empty, sizeof want_empty);
    CHECK_EQ(lzw_decode(want_empty, sizeof want_empty, 100, &d), 0);
    CHECK_EQ(d.len, 0);

    /* Appends: existing contents stay in front. */
    buf_reset(&b);
    buf_append(&b, "xy", 2);
    CHECK_EQ(lzw_encode((const uint8_t *)"ABABABA", 7, &b), 0);
    CHECK_MEM(b.data, 2, "xy", 2);
    CHECK_MEM(b.data + 2, b.len - 2, want_ab, sizeof want_ab);
    buf_reset(&d);
    buf_append(&d, "xy", 2);
    /* max_out counts only the bytes this call appends */
    CHECK_EQ(lzw_decode(want_ab, sizeof want_ab, 7, &d), 0);
    CHECK_MEM(d.data, d.len, "xyABABABA", 9);
    buf_free(&b);
    buf_free(&d);
}

static void test_go_vectors(void)
{
    for (size_t i = 0; i < HS_ARRAY_LEN(lzw_vectors); i++) {
        const struct lzw_vector *v = &lzw_vectors[i];
        size_t zn, pn;
        uint8_t *z = test_unhex(v->lzw, &zn);
        uint8_t *p = test_unhex(v->plain, &pn);
        struct buf b = BUF_INIT;
        test_current = v->name;
        CHECK_EQ(lzw_decode(z, zn, 1 << 20, &b), 0);
        CHECK_MEM(b.data, b.len, p, pn);
        buf_reset(&b);
        CHECK_EQ(lzw_encode(p, pn, &b), 0);
        CHECK_MEM(b.data, b.len, z, zn);
        /* Every proper prefix of the stream is truncated. */
        for (size_t k = 0; k < zn; k++) {
            buf_reset(&b);
            CHECK_EQ(lzw_decode(z, k, 1 << 20, &b), HS_ETRUNC);
        }
        /* One byte less output than needed is too big. */
        buf_free(&b);
        CHECK_EQ(lzw_decode(z, zn, pn - 1, &b), HS_ETOOBIG);
        CHECK(b.cap <= pn - 1);
        buf_free(&b);
        free(z);
        free(p);
    }
    test_current = "test_go_vectors";
    CHECK(HS_ARRAY_LEN(lzw_vectors) >= 3);
}

/* Shared reference 9.3: Go's compression of compound[ping, alive]; the
 * reference gives only the length and both ends of the 123-byte stream. */
static void test_go_compound(void)
{
    size_t n;
    uint8_t *plain = test_unhex(
        "07020045003e"
        "0085a44e6f6465a66e6f64652d62a55365714e6f07aa536f7572636541646472"
        "a40a000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f"
        "7274cd1f0a"
        "0486a441646472a40a000001ab496e6361726e6174696f6e01a44d657461c0a4"
        "4e6f6465a66e6f64652d61a4506f7274cd1f0aa356736ea6010502000000",
        &n);
    static const uint8_t head[] = {0x00, 0x0f, 0x08, 0x00, 0x50,
                                   0x04, 0x80, 0x0f, 0x00, 0x85};
    static const uint8_t tail[] = {0x0c, 0x44, 0x19, 0x10};
    struct buf b = BUF_INIT;
    CHECK_EQ(n, 137);
    CHECK_EQ(lzw_encode(plain, n, &b), 0);
    CHECK_EQ(b.len, 123);
    if (b.len >= sizeof head + sizeof tail) {
        CHECK_MEM(b.data, sizeof head, head, sizeof head);
        CHECK_MEM(b.data + b.len - sizeof tail, sizeof tail, tail, sizeof tail);
    }
    check_roundtrip(plain, n);
    buf_free(&b);
    free(plain);

    /* 16.2's gossip packet (CRC + compound of two alive): went out plain,
     * so only a round trip. */
    plain = test_unhex(
        "0c352dca4a07020049003b0486a441646472a47f000001ab496e6361726e6174"
        "696f6e01a44d657461b0ff82a4726f6c65a3776562a26463a178a44e6f6465a1"
        "61a4506f7274cd1f0aa356736ea60105020205050486a441646472a47f000001"
        "ab496e6361726e6174696f6e01a44d657461a2ff80a44e6f6465a162a4506f72"
        "74cd1f0ba356736ea6010502020505",
        &n);
    CHECK_EQ(n, 143);
    check_roundtrip(plain, n);
    free(plain);
}

/* ===== Round trips (each also compared with the reference encoder) ===== */

static void test_roundtrip_random(void)
{
    static const size_t sizes[] = {1, 2, 3, 100, 1000, 4000, 10000, 100000};
    for (size_t i = 0; i < HS_ARRAY_LEN(sizes); i++) {
        uint8_t *p = random_bytes(sizes[i]);
        size_t z = check_roundtrip(p, sizes[i]);
        /* Random data expands (about 12 bits per byte at full width). */
        CHECK(z > sizes[i]);
        free(p);
    }
}

static void test_roundtrip_repetitive(void)
{
    /* Long runs of one byte, a short period, text-ish data: each fills
     * the 4096-entry table several times. */
    size_t n = 2u << 20;
    uint8_t *p = malloc(n);

    memset(p, 'z', n);
    size_t z = check_roundtrip(p, n);
    CHECK(z < n / 500);

    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)("abcabcabd"[i % 9]);
    check_roundtrip(p, n);
    free(p);

    n = 1u << 20;
    p = textish_bytes(n);
    struct buf b = BUF_INIT;
    CHECK_EQ(lzw_encode(p, n, &b), 0);
    /* Count the clears and check codes reached 12 bits. */
    unsigned *codes = malloc(n * sizeof *codes);
    unsigned maxw;
    size_t nc = scan_codes(b.data, b.len, codes, n, &maxw);
    size_t clears = 0;
    for (size_t i = 1; i < nc; i++)
        clears += codes[i] == 256;
    CHECK(clears >= 5);
    CHECK_EQ(maxw, 12);
    CHECK_EQ(codes[0], 256);
    CHECK_EQ(codes[nc - 1], 257);
    /* Between clears there are exactly 4095 - 257 data codes: Go's writer
     * assigns 258..4094 and clears instead of ever assigning 4095. */
    size_t since = 0;
    for (size_t i = 1; i + 1 < nc; i++) {
        if (codes[i] == 256) {
            CHECK_EQ(since, 4095 - 257);
            since = 0;
        } else {
            CHECK(codes[i] < 4095);
            since++;
        }
    }
    free(codes);
    buf_free(&b);
    check_roundtrip(p, n);
    free(p);
}

static void test_roundtrip_lengths(void)
{
    uint8_t pat[300];
    for (size_t i = 0; i < sizeof pat; i++)
        pat[i] = (uint8_t)("the quick brown fox "[i % 20] + i / 40);
    for (size_t len = 0; len <= sizeof pat; len++)
        check_roundtrip(pat, len);

    /* Every prefix of random data up to 1200 bytes: passes the 9->10 and
     * 10->11 bit steps right at the final code too. */
    uint8_t *p = random_bytes(1200);
    for (size_t len = 0; len <= 1200; len++)
        check_roundtrip(p, len);
    free(p);
}

/* When the last data code fills the table, Go's Close writes that code, a
 * clear, and then the end code at 9 bits. */
static void test_clear_before_end(void)
{
    uint8_t *p = random_bytes(6000);
    unsigned *codes = malloc(8000 * sizeof *codes);
    size_t found = 0;
    for (size_t len = 3800; len < 6000 && !found; len++) {
        size_t n = ref_encode(p, len, codes);
        if (n >= 3 && codes[n - 2] == 256)
            found = len;
    }
    CHECK(found > 0);
    if (found) {
        struct buf b = BUF_INIT;
        unsigned maxw;
        check_roundtrip(p, found);
        CHECK_EQ(lzw_encode(p, found, &b), 0);
        size_t n = scan_codes(b.data, b.len, codes, 8000, &maxw);
        CHECK(n > 3);
        if (n > 3) {
            CHECK_EQ(codes[n - 2], 256);
            CHECK_EQ(codes[n - 1], 257);
        }
        CHECK_EQ(n, 1 + 3838 + 1 + 1);
        /* one byte less: no clear at the end */
        buf_reset(&b);
        CHECK_EQ(lzw_encode(p, found - 1, &b), 0);
        n = scan_codes(b.data, b.len, codes, 8000, &maxw);
        CHECK(n > 3 && codes[n - 2] != 256);
        buf_free(&b);
    }
    free(codes);
    free(p);
}

/* ===== Decoder: streams Go's writer does not make, and errors ===== */

static void test_decode_variants(void)
{
    struct buf b = BUF_INIT;

    /* No leading clear (Go before 1.17): ABABABA's codes without it. */
    static const unsigned noclear[] = {65, 66, 258, 260, 257};
    CHECK_EQ(decode_codes(noclear, 5, 100, &b), 0);
    CHECK_MEM(b.data, b.len, "ABABABA", 7);

    /* KwKwK: code == next right after its prefix. */
    buf_reset(&b);
    static const unsigned kwk[] = {256, 'A', 258, 259, 257};
    CHECK_EQ(decode_codes(kwk, 5, 100, &b), 0);
    CHECK_MEM(b.data, b.len, "AAAAAA", 6);

    /* Clears anywhere, repeated, and right before the end. */
    buf_reset(&b);
    static const unsigned clears[] = {256, 256, 'x', 'y', 258,
                                      256, 'y', 258, 256, 257};
    CHECK_EQ(decode_codes(clears, HS_ARRAY_LEN(clears), 100, &b), 0);
    CHECK_MEM(b.data, b.len, "xyxyyyy", 7);

    /* Bytes after the end code are ignored. */
    buf_reset(&b);
    CHECK_EQ(decode_hex("008308114830 20 ffffffffdeadbeef", 100, &b), 0);
    CHECK_MEM(b.data, b.len, "ABABABA", 7);

    /* A full 12-bit table without a clear: entries stop at 4095 and the
     * codes stay 12 bits wide; 4095 itself stays usable. */
    size_t nlit = 3839;
    unsigned *codes = malloc((nlit + 8) * sizeof *codes);
    uint8_t *want = malloc(nlit + 16);
    size_t n = 0, w = 0;
    codes[n++] = 256;
    for (size_t i = 0; i < nlit; i++) {
        codes[n++] = (unsigned)(i * 7 % 251);
        want[w++] = (uint8_t)(i * 7 % 251);
    }
    codes[n++] = 4095; /* = lit[3837] lit[3838] */
    want[w++] = want[nlit - 2];
    want[w++] = want[nlit - 1];
    want[w] = want[nlit - 3]; /* 4094 = lit[3836] lit[3837] */
    want[w + 1] = want[nlit - 2];
    w += 2;
    codes[n++] = 4094;
    codes[n++] = 4095; /* still the same entry: nothing was added */
    want[w++] = want[nlit - 2];
    want[w++] = want[nlit - 1];
    codes[n++] = 256;
    codes[n++] = 'Q';
    codes[n++] = 257;
    want[w++] = 'Q';
    buf_reset(&b);
    CHECK_EQ(decode_codes(codes, n, 1 << 20, &b), 0);
    CHECK_MEM(b.data, b.len, want, w);
    free(codes);
    free(want);
    buf_free(&b);
}

static void test_decode_errors(void)
{
    struct buf b = BUF_INIT;

    /* Missing end code: the codes are fine, then the input stops. */
    static const unsigned noend[] = {256, 'A', 'B', 258};
    CHECK_EQ(decode_codes(noend, 4, 100, &b), HS_ETRUNC);
    buf_reset(&b);
    CHECK_EQ(decode_hex("", 100, &b), HS_ETRUNC);
    buf_reset(&b);
    CHECK_EQ(decode_hex("00", 100, &b), HS_ETRUNC); /* half a clear */

    /* Cut inside the end code and inside a data code. */
    static const char *cuts[] = {"0083081148 30", "0083081148", "008308",
                                 "0083"};
    for (size_t i = 0; i < HS_ARRAY_LEN(cuts); i++) {
        buf_reset(&b);
        CHECK_EQ(decode_hex(cuts[i], 100, &b), HS_ETRUNC);
    }

    /* A code above the next free one. */
    static const unsigned bad1[] = {256, 'A', 259, 257};
    buf_reset(&b);
    CHECK_EQ(decode_codes(bad1, 4, 100, &b), HS_EBADMSG);
    /* First code after a clear must be a literal: 258 > next (257). */
    static const unsigned bad2[] = {256, 258, 257};
    buf_reset(&b);
    CHECK_EQ(decode_codes(bad2, 3, 100, &b), HS_EBADMSG);
    static const unsigned bad3[] = {300, 257};
    buf_reset(&b);
    CHECK_EQ(decode_codes(bad3, 2, 100, &b), HS_EBADMSG);
    /* ... and the same stream one code earlier is fine. */
    static const unsigned ok1[] = {256, 'A', 258, 257};
    buf_reset(&b);
    CHECK_EQ(decode_codes(ok1, 4, 100, &b), 0);
    CHECK_MEM(b.data, b.len, "AAA", 3);

    /* Output limits. */
    static const uint8_t ab[] = {0x00, 0x83, 0x08, 0x11, 0x48, 0x30, 0x20};
    buf_reset(&b);
    CHECK_EQ(lzw_decode(ab, sizeof ab, 7, &b), 0);
    buf_free(&b);
    CHECK_EQ(lzw_decode(ab, sizeof ab, 6, &b), HS_ETOOBIG);
    CHECK(b.cap <= 6); /* not even the usual first 64 bytes */
    buf_reset(&b);
    CHECK_EQ(lzw_decode(ab, sizeof ab, 0, &b), HS_ETOOBIG);
    buf_free(&b);
    CHECK_EQ(decode_hex("000302", 0, &b), 0);
    CHECK(b.data == NULL); /* nothing allocated for nothing */
    buf_free(&b);
}

static void test_bomb(void)
{
    size_t n = 8u << 20;
    uint8_t *zeros = calloc(n, 1);
    struct buf z = BUF_INIT, b = BUF_INIT;
    CHECK_EQ(lzw_encode(zeros, n, &z), 0);
    CHECK(z.len < 16384); /* ~1500:1 */

    clock_t t0 = clock();
    CHECK_EQ(lzw_decode(z.data, z.len, 1u << 20, &b), HS_ETOOBIG);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(b.len <= 1u << 20);
    CHECK(b.cap <= 1u << 20); /* memory stays bounded by max_out */
    CHECK(secs < 1.0);

    buf_free(&b);
    CHECK_EQ(lzw_decode(z.data, z.len, n - 1, &b), HS_ETOOBIG);
    CHECK(b.cap <= n - 1);
    buf_free(&b);
    CHECK_EQ(lzw_decode(z.data, z.len, n, &b), 0);
    CHECK_MEM(b.data, b.len, zeros, n);
    CHECK(b.cap <= n);
    buf_free(&b);
    buf_free(&z);
    free(zeros);
}

static void test_garbage(void)
{
    struct buf b = BUF_INIT;
    size_t trunc = 0, bad = 0, big = 0;
    for (int i = 0; i < 4000; i++) {
        size_t n = rng() % 300;
        uint8_t *p = random_bytes(n);
        /* Half of them start with a clear so they get further. */
        if (n >= 2 && i % 2) {
            p[0] = 0x00;
            p[1] = (uint8_t)(p[1] | 1);
        }
        size_t max = rng() % 2 ? 1 << 16 : rng() % 64;
        buf_reset(&b);
        int rc = lzw_decode(p, n, max, &b);
        CHECK(b.len <= max);
        trunc += rc == HS_ETRUNC;
        bad += rc == HS_EBADMSG;
        big += rc == HS_ETOOBIG;
        CHECK(rc == 0 || rc == HS_ETRUNC || rc == HS_EBADMSG ||
              rc == HS_ETOOBIG);
        free(p);
    }
    CHECK(trunc > 0 && bad > 0 && big > 0);

    /* Bit flips in a real stream. */
    size_t zn;
    uint8_t *z = test_unhex(lzw_vectors[1].lzw, &zn);
    for (int i = 0; i < 4000; i++) {
        uint8_t *p = malloc(zn);
        memcpy(p, z, zn);
        for (int k = 0; k < 1 + i % 4; k++)
            p[rng() % zn] ^= (uint8_t)(1u << (rng() % 8));
        buf_reset(&b);
        int rc = lzw_decode(p, zn, 4096, &b);
        CHECK(rc == 0 || rc == HS_ETRUNC || rc == HS_EBADMSG ||
              rc == HS_ETOOBIG);
        CHECK(b.len <= 4096);
        free(p);
    }
    free(z);
    buf_free(&b);
}

static void test_nomem(void)
{
    struct buf b = BUF_INIT;
    uint8_t *p = textish_bytes(5000);
    for (long k = 0; k < 8; k++) {
        hs_mem_fail_after(k);
        int rc = lzw_encode(p, 5000, &b);
        hs_mem_fail_after(-1);
        CHECK(rc == 0 || rc == HS_ENOMEM);
        buf_free(&b);
    }
    hs_mem_fail_after(0);
    CHECK_EQ(lzw_encode(p, 5000, &b), HS_ENOMEM);
    CHECK_EQ(lzw_encode(NULL, 0, &b), HS_ENOMEM);
    hs_mem_fail_after(-1);
    buf_free(&b);

    CHECK_EQ(lzw_encode(p, 5000, &b), 0);
    struct buf d = BUF_INIT;
    hs_mem_fail_after(0);
    CHECK_EQ(lzw_decode(b.data, b.len, 1 << 20, &d), HS_ENOMEM);
    /* the error is sticky */
    CHECK_EQ(lzw_decode(b.data, b.len, 1 << 20, &d), HS_ENOMEM);
    hs_mem_fail_after(-1);
    buf_free(&d);
    for (long k = 0; k < 8; k++) {
        hs_mem_fail_after(k);
        int rc = lzw_decode(b.data, b.len, 1 << 20, &d);
        hs_mem_fail_after(-1);
        CHECK(rc == 0 || rc == HS_ENOMEM);
        buf_free(&d);
    }
    buf_free(&b);
    free(p);
}

int main(void)
{
    RUN(test_worked_examples);
    RUN(test_go_vectors);
    RUN(test_go_compound);
    RUN(test_roundtrip_random);
    RUN(test_roundtrip_repetitive);
    RUN(test_roundtrip_lengths);
    RUN(test_clear_before_end);
    RUN(test_decode_variants);
    RUN(test_decode_errors);
    RUN(test_bomb);
    RUN(test_garbage);
    RUN(test_nomem);
    return test_report("lzw");
}
