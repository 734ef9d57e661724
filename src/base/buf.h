/* buf.h: a growable byte buffer for building messages in memory.
 *
 * Errors are sticky: after an allocation failure every append is a no-op
 * and b->err holds HS_ENOMEM, so an encoder can append freely and check
 * once at the end. The buffer owns `data`; buf_free() releases it. */
#ifndef HS_BUF_H
#define HS_BUF_H

#include "base/hs.h"

#include <string.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err;
};

#define BUF_INIT      \
    {                 \
        NULL, 0, 0, 0 \
    }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Forget the contents and any sticky error; keep the memory. */
void buf_reset(struct buf *b);
/* Make room for `extra` more bytes. Returns 0 or HS_ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
/* The same, but the capacity never grows past `max` bytes (the caller
 * checks that len + extra <= max): for output bounded by a limit. */
int buf_reserve_max(struct buf *b, size_t extra, size_t max);
/* buf_append's way when the bytes do not fit the capacity. */
int buf_append_grow(struct buf *b, const void *p, size_t n);
/* Encoders append a few bytes at a time: the common case stays inline. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n <= b->cap - b->len && b->err == 0 && n > 0) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return buf_append_grow(b, p, n);
}
static inline int buf_putc(struct buf *b, uint8_t c)
{
    return buf_append(b, &c, 1);
}
int buf_put_be16(struct buf *b, uint16_t v);
int buf_put_be32(struct buf *b, uint32_t v);
/* Remove the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Hand the bytes to the caller (who must hs_free them); b is emptied. */
uint8_t *buf_steal(struct buf *b, size_t *len);

static inline uint16_t hs_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t hs_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline void hs_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void hs_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
