/* mp.h: msgpack for the wire: a bounds-checked, allocation-free reader and
 * a writer on msgpack-c that emits what Go's memberlist 0.2.2 emits.
 *
 * Reader: every function checks the remaining length before reading and
 * returns 0, HS_ETRUNC (input ends early; r->need says how many bytes the
 * whole input would need at least) or HS_EBADMSG (wrong type or value out
 * of range). Strings and bytes are returned as views into the input, never
 * copied; the input must outlive them.
 *
 * Writer: strings and []byte both use the old-spec raw family (fixstr,
 * str16, str32 - never str8 or bin), integers their smallest unsigned form,
 * as go-msgpack 0.5 does (shared reference section 2.1). */
#ifndef HS_MP_H
#define HS_MP_H

#include "base/buf.h"

struct mp_reader {
    const uint8_t *p;
    size_t len;
    size_t off;
    size_t need; /* after HS_ETRUNC: lower bound on the total input length */
};

/* Types as seen by mp_peek(). */
enum mp_type {
    MP_NIL,
    MP_BOOL,
    MP_UINT,  /* positive fixint, uint 8..64 */
    MP_INT,   /* negative fixint, int 8..64 */
    MP_FLOAT, /* float 32/64 */
    MP_STR,   /* fixstr, str 8/16/32 */
    MP_BIN,   /* bin 8/16/32 */
    MP_ARRAY,
    MP_MAP,
    MP_EXT,
    MP_INVALID /* 0xc1 */
};

void mp_reader_init(struct mp_reader *r, const void *p, size_t len);
static inline size_t mp_left(const struct mp_reader *r)
{
    return r->len - r->off;
}
/* Type of the next item without consuming it. */
int mp_peek(struct mp_reader *r, enum mp_type *t);
int mp_read_bool(struct mp_reader *r, bool *v);
/* Any integer encoding whose value is >= 0 and fits in 64 bits. */
int mp_read_uint(struct mp_reader *r, uint64_t *v);
/* Any integer encoding whose value fits in int64. */
int mp_read_int(struct mp_reader *r, int64_t *v);
/* str or bin family; *p points into the input. */
int mp_read_raw(struct mp_reader *r, const uint8_t **p, uint32_t *n);
int mp_read_array(struct mp_reader *r, uint32_t *n);
int mp_read_map(struct mp_reader *r, uint32_t *n);
/* Skip one complete item, however nested, without recursion. A declared
 * count larger than the bytes left is HS_ETRUNC at once. */
int mp_skip(struct mp_reader *r);

/* ===== Writer (appends to a struct buf; errors stick in the buf) ===== */
void mp_write_map(struct buf *b, uint32_t n);
void mp_write_array(struct buf *b, uint32_t n);
void mp_write_raw(struct buf *b, const void *p, size_t n);
void mp_write_str(struct buf *b, const char *s);
void mp_write_uint(struct buf *b, uint64_t v);
void mp_write_int(struct buf *b, int64_t v);
void mp_write_bool(struct buf *b, bool v);
void mp_write_nil(struct buf *b);

#endif
