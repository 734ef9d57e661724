/* test.h: a minimal harness for the C unit checks under spec/c.
 *
 * Each test_*.c file is one program: static test functions, and a main()
 * that calls RUN(fn) for each and returns test_report(). Failed checks
 * print both values and the location, and the test continues. */
#ifndef HS_TEST_H
#define HS_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/hs.h"

static int test_failures;
static int test_checks;
static const char *test_current;

#define CHECK(cond)                                                            \
    do {                                                                       \
        test_checks++;                                                         \
        if (!(cond)) {                                                         \
            test_failures++;                                                   \
            fprintf(stderr, "  FAIL %s (%s:%d): %s\n", test_current, __FILE__, \
                    __LINE__, #cond);                                          \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);              \
        test_checks++;                                                     \
        if (va_ != vb_) {                                                  \
            test_failures++;                                               \
            fprintf(stderr, "  FAIL %s (%s:%d): %s == %s: %lld != %lld\n", \
                    test_current, __FILE__, __LINE__, #a, #b, va_, vb_);   \
        }                                                                  \
    } while (0)

#define CHECK_MEM(a, alen, b, blen)                                      \
    do {                                                                 \
        size_t la_ = (size_t)(alen), lb_ = (size_t)(blen);               \
        test_checks++;                                                   \
        if (la_ != lb_ || memcmp((a), (b), la_) != 0) {                  \
            test_failures++;                                             \
            fprintf(stderr,                                              \
                    "  FAIL %s (%s:%d): %s (%zu bytes) != %s "           \
                    "(%zu bytes)\n",                                     \
                    test_current, __FILE__, __LINE__, #a, la_, #b, lb_); \
            test_hexdump("    got ", (const uint8_t *)(a), la_);         \
            test_hexdump("    want", (const uint8_t *)(b), lb_);         \
        }                                                                \
    } while (0)

#define RUN(fn)                                                    \
    do {                                                           \
        long live_ = hs_mem_live();                                \
        test_current = #fn;                                        \
        fn();                                                      \
        if (hs_mem_live() != live_) {                              \
            test_failures++;                                       \
            fprintf(stderr, "  FAIL %s: %ld blocks leaked\n", #fn, \
                    hs_mem_live() - live_);                        \
        }                                                          \
    } while (0)

static inline void test_hexdump(const char *label, const uint8_t *p, size_t n)
{
    fprintf(stderr, "%s ", label);
    for (size_t i = 0; i < n && i < 256; i++)
        fprintf(stderr, "%02x", p[i]);
    fprintf(stderr, n > 256 ? "...\n" : "\n");
}

/* Decode a hex string (spaces ignored) into a malloc'd buffer. */
static inline uint8_t *test_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *out = malloc(n / 2 + 1);
    size_t o = 0;
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
        char c = hex[i];
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[o++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    *len = o;
    return out;
}

static inline int test_report(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, test_failures,
                test_checks);
        return 1;
    }
    printf("%s: %d checks passed\n", name, test_checks);
    return 0;
}

#endif
