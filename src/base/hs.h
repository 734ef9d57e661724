/* hs.h: project-wide definitions: error codes, allocation, assertions. */
#ifndef HS_H
#define HS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The release, as `hearsay version` prints it. */
#define HS_VERSION "0.1.0"

/* ===== Error codes =====
 * Every fallible function returns 0 or a negative HS_E* code (as libuv
 * does). hs_strerror() gives the sentence for people. */
#define HS_ERRORS(X)                                      \
    X(HS_ENOMEM, -1, "out of memory")                     \
    X(HS_EINVAL, -2, "invalid argument")                  \
    X(HS_ETRUNC, -3, "truncated input")                   \
    X(HS_EBADMSG, -4, "malformed message")                \
    X(HS_ETOOBIG, -5, "size limit exceeded")              \
    X(HS_ECRC, -6, "checksum mismatch")                   \
    X(HS_EUNSUPP, -7, "unsupported message or feature")   \
    X(HS_ENOTFOUND, -8, "not found")                      \
    X(HS_EIO, -9, "i/o error")                            \
    X(HS_ETIMEDOUT, -10, "timed out")                     \
    X(HS_ESTATE, -11, "not allowed in the current state") \
    X(HS_EREFUSED, -12, "refused")                        \
    X(HS_EVERSION, -13, "incompatible protocol version")  \
    X(HS_ECLOSED, -14, "connection closed")               \
    X(HS_EBUSY, -15, "too many operations in progress")   \
    X(HS_ECONFLICT, -16, "name conflict")                 \
    X(HS_EADDR, -17, "bad address")                       \
    X(HS_EDECOMPRESS, -18, "cannot decompress")

enum {
    HS_OK = 0,
#define HS_ERR_ENUM(name, code, text) name = code,
    HS_ERRORS(HS_ERR_ENUM)
#undef HS_ERR_ENUM
};

const char *hs_strerror(int err);
/* The code's name without the prefix ("ENOMEM"), or "EFAIL". */
const char *hs_errname(int err);

/* ===== Memory =====
 * All allocations of the runtime go through these so that tests can count
 * live blocks and inject failures. hs_free(NULL) does nothing. */
void *hs_malloc(size_t n);
void *hs_calloc(size_t count, size_t n);
void *hs_realloc(void *p, size_t n);
void hs_free(void *p);
char *hs_strndup(const char *s, size_t n);

/* Number of live blocks handed out and not yet freed. */
long hs_mem_live(void);
/* Make the allocation after `n` more succeed calls fail (n < 0: never). */
void hs_mem_fail_after(long n);

/* ===== Assertions =====
 * HS_ASSERT stays on in release builds: it is for "state is corrupt,
 * abort". Never assert on network or Lua input. */
void hs_assert_fail(const char *expr, const char *file, int line);
#define HS_ASSERT(e) ((e) ? (void)0 : hs_assert_fail(#e, __FILE__, __LINE__))

/* HS_INVARIANT checks a whole structure (a heap's order, a table's
 * counts): too slow for every build, so it is compiled in only with
 * -DHS_INVARIANTS (make asan and the fuzz targets). Elsewhere the
 * expression is not evaluated. */
#ifdef HS_INVARIANTS
#define HS_INVARIANT(e) HS_ASSERT(e)
#else
#define HS_INVARIANT(e) ((void)sizeof(!(e)))
#endif

#define HS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define HS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define HS_MAX(a, b) ((a) > (b) ? (a) : (b))

#define HS_CONTAINER_OF(ptr, type, field) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

#endif
