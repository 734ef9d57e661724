/* hs.c: error strings, counted allocation and the always-on assertion. */
#include "base/hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hs_strerror(int err)
{
    switch (err) {
    case HS_OK:
        return "ok";
#define HS_ERR_CASE(name, code, text) \
    case name:                        \
        return text;
        HS_ERRORS(HS_ERR_CASE)
#undef HS_ERR_CASE
    default:
        return "unknown error";
    }
}

const char *hs_errname(int err)
{
    switch (err) {
#define HS_ERR_NAME(name, code, text) \
    case name:                        \
        return &(#name)[3]; /* "HS_EIO" -> "EIO" */
        HS_ERRORS(HS_ERR_NAME)
#undef HS_ERR_NAME
    default:
        return "EFAIL";
    }
}

/* The event loop is single-threaded; the counters need no atomics. */
static long live;
static long fail_after = -1;

static bool should_fail(void)
{
    if (fail_after < 0)
        return false;
    if (fail_after == 0)
        return true;
    fail_after--;
    return false;
}

void *hs_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        live++;
    return p;
}

void *hs_calloc(size_t count, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p)
        live++;
    return p;
}

void *hs_realloc(void *p, size_t n)
{
    if (p == NULL)
        return hs_malloc(n);
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void hs_free(void *p)
{
    if (p == NULL)
        return;
    live--;
    free(p);
}

char *hs_strndup(const char *s, size_t n)
{
    char *d = hs_malloc(n + 1);
    if (d == NULL)
        return NULL;
    if (n) /* s may be NULL when n is 0 (an absent field) */
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

long hs_mem_live(void)
{
    return live;
}

void hs_mem_fail_after(long n)
{
    fail_after = n;
}

void hs_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "hearsay: assertion failed: %s (%s:%d)\n", expr, file,
            line);
    abort();
}
