/* tags.c: Serf's tags in node meta (see tags.h). */
#include "codec/tags.h"

#include <stdlib.h>
#include <string.h>

#include "codec/mp.h"

/* A string of the map: str or bin family, as old and new Go codecs
 * wrote them. */
static int read_string(struct mp_reader *r, const uint8_t **p, uint32_t *n)
{
    enum mp_type t;
    int rc = mp_peek(r, &t);
    if (rc)
        return rc;
    if (t != MP_STR && t != MP_BIN)
        return HS_EBADMSG;
    return mp_read_raw(r, p, n);
}

static bool same_key(const struct tag *a, const uint8_t *k, uint32_t kl)
{
    return a->keylen == kl && (kl == 0 || memcmp(a->key, k, kl) == 0);
}

int tags_decode(const uint8_t *p, size_t len, struct tag *out, size_t *n)
{
    struct mp_reader r;
    uint32_t count;
    *n = 0;
    if (len == 0 || p[0] != TAGS_MAGIC)
        return HS_ENOTFOUND;
    mp_reader_init(&r, p + 1, len - 1);
    if (mp_read_map(&r, &count) || count > TAGS_MAX)
        return HS_EBADMSG;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *k, *v;
        uint32_t kl, vl;
        if (read_string(&r, &k, &kl) || read_string(&r, &v, &vl))
            return HS_EBADMSG;
        size_t at = 0;
        while (at < *n && !same_key(&out[at], k, kl))
            at++;
        out[at] = (struct tag){k, v, kl, vl};
        if (at == *n)
            (*n)++;
    }
    if (mp_left(&r) != 0) /* bytes after the map: not Serf's */
        return HS_EBADMSG;
    return 0;
}

static int by_key(const void *x, const void *y)
{
    const struct tag *a = x, *b = y;
    uint32_t n = HS_MIN(a->keylen, b->keylen);
    int d = n ? memcmp(a->key, b->key, n) : 0;
    if (d)
        return d;
    return (a->keylen > b->keylen) - (a->keylen < b->keylen);
}

void tags_sort(struct tag *t, size_t n)
{
    if (n > 1)
        qsort(t, n, sizeof *t, by_key);
}

void tags_encode(const struct tag *t, size_t n, struct buf *out)
{
    buf_putc(out, TAGS_MAGIC);
    mp_write_map(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        mp_write_raw(out, t[i].key, t[i].keylen);
        mp_write_raw(out, t[i].value, t[i].valuelen);
    }
}
