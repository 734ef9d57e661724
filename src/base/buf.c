/* buf.c: growable byte buffer with a sticky error. */
#include "base/buf.h"

#include <string.h>

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void buf_free(struct buf *b)
{
    hs_free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
    return buf_reserve_max(b, extra, SIZE_MAX / 2);
}

int buf_reserve_max(struct buf *b, size_t extra, size_t max)
{
    if (b->err)
        return b->err;
    if (extra > SIZE_MAX / 2 - b->len)
        return b->err = HS_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need && cap <= max / 2)
        cap *= 2;
    if (cap > max || cap < need)
        cap = need > max ? need : max;
    uint8_t *p = hs_realloc(b->data, cap);
    if (p == NULL)
        return b->err = HS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append_grow(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return b->err;
    if (buf_reserve(b, n))
        return b->err;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_put_be16(struct buf *b, uint16_t v)
{
    uint8_t p[2];
    hs_put_be16(p, v);
    return buf_append(b, p, 2);
}

int buf_put_be32(struct buf *b, uint32_t v)
{
    uint8_t p[4];
    hs_put_be32(p, v);
    return buf_append(b, p, 4);
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

uint8_t *buf_steal(struct buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    buf_init(b);
    return p;
}
