/* mp.c: bounds-checked msgpack reader; writer on msgpack-c's packer. */
#include "codec/mp.h"

#include <msgpack.h>
#include <string.h>

/* ===== Reader ===== */

void mp_reader_init(struct mp_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->need = 0;
}

static int trunc_at(struct mp_reader *r, size_t total)
{
    r->need = total;
    return HS_ETRUNC;
}

/* Make sure n bytes are available at the current offset. */
static int want(struct mp_reader *r, uint64_t n)
{
    if (n > mp_left(r))
        return trunc_at(r,
                        n > SIZE_MAX - r->off ? SIZE_MAX : r->off + (size_t)n);
    return 0;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Byte counts of the length field that follows a type byte. */
struct head {
    enum mp_type type;
    int extra;         /* bytes following the type byte before the payload */
    uint64_t inline_n; /* count/length/value held in the type byte */
};

static struct head classify(uint8_t c)
{
    struct head h = {MP_INVALID, 0, 0};
    if (c <= 0x7f)
        return (struct head){MP_UINT, 0, c};
    if (c >= 0xe0)
        return (struct head){MP_INT, 0, c};
    if (c <= 0x8f)
        return (struct head){MP_MAP, 0, c & 0x0f};
    if (c <= 0x9f)
        return (struct head){MP_ARRAY, 0, c & 0x0f};
    if (c <= 0xbf)
        return (struct head){MP_STR, 0, c & 0x1f};
    switch (c) {
    case 0xc0:
        return (struct head){MP_NIL, 0, 0};
    case 0xc2:
        return (struct head){MP_BOOL, 0, 0};
    case 0xc3:
        return (struct head){MP_BOOL, 0, 1};
    case 0xc4:
        return (struct head){MP_BIN, 1, 0};
    case 0xc5:
        return (struct head){MP_BIN, 2, 0};
    case 0xc6:
        return (struct head){MP_BIN, 4, 0};
    case 0xc7:
        return (struct head){MP_EXT, 1, 0};
    case 0xc8:
        return (struct head){MP_EXT, 2, 0};
    case 0xc9:
        return (struct head){MP_EXT, 4, 0};
    case 0xca:
        return (struct head){MP_FLOAT, 4, 0};
    case 0xcb:
        return (struct head){MP_FLOAT, 8, 0};
    case 0xcc:
        return (struct head){MP_UINT, 1, 0};
    case 0xcd:
        return (struct head){MP_UINT, 2, 0};
    case 0xce:
        return (struct head){MP_UINT, 4, 0};
    case 0xcf:
        return (struct head){MP_UINT, 8, 0};
    case 0xd0:
        return (struct head){MP_INT, 1, 0};
    case 0xd1:
        return (struct head){MP_INT, 2, 0};
    case 0xd2:
        return (struct head){MP_INT, 4, 0};
    case 0xd3:
        return (struct head){MP_INT, 8, 0};
    case 0xd4:
        return (struct head){MP_EXT, 0, 2}; /* fixext 1 */
    case 0xd5:
        return (struct head){MP_EXT, 0, 3};
    case 0xd6:
        return (struct head){MP_EXT, 0, 5};
    case 0xd7:
        return (struct head){MP_EXT, 0, 9};
    case 0xd8:
        return (struct head){MP_EXT, 0, 17};
    case 0xd9:
        return (struct head){MP_STR, 1, 0};
    case 0xda:
        return (struct head){MP_STR, 2, 0};
    case 0xdb:
        return (struct head){MP_STR, 4, 0};
    case 0xdc:
        return (struct head){MP_ARRAY, 2, 0};
    case 0xdd:
        return (struct head){MP_ARRAY, 4, 0};
    case 0xde:
        return (struct head){MP_MAP, 2, 0};
    case 0xdf:
        return (struct head){MP_MAP, 4, 0};
    default:
        return h;
    }
}

int mp_peek(struct mp_reader *r, enum mp_type *t)
{
    int rc = want(r, 1);
    if (rc)
        return rc;
    *t = classify(r->p[r->off]).type;
    return 0;
}

int mp_read_bool(struct mp_reader *r, bool *v)
{
    int rc = want(r, 1);
    if (rc)
        return rc;
    uint8_t c = r->p[r->off];
    if (c != 0xc2 && c != 0xc3)
        return HS_EBADMSG;
    *v = c == 0xc3;
    r->off++;
    return 0;
}

/* Read any integer as a sign flag and magnitude. */
static int read_integer(struct mp_reader *r, bool *neg, uint64_t *mag)
{
    int rc = want(r, 1);
    if (rc)
        return rc;
    uint8_t c = r->p[r->off];
    struct head h = classify(c);
    if (h.type != MP_UINT && h.type != MP_INT)
        return HS_EBADMSG;
    if ((rc = want(r, 1 + (uint64_t)h.extra)))
        return rc;
    const uint8_t *q = r->p + r->off + 1;
    if (h.type == MP_UINT) {
        *neg = false;
        *mag = h.extra ? be(q, h.extra) : h.inline_n;
    } else {
        int64_t s;
        switch (h.extra) {
        case 0:
            s = (int8_t)c;
            break;
        case 1:
            s = (int8_t)q[0];
            break;
        case 2:
            s = (int16_t)be(q, 2);
            break;
        case 4:
            s = (int32_t)be(q, 4);
            break;
        default:
            s = (int64_t)be(q, 8);
            break;
        }
        *neg = s < 0;
        *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    }
    r->off += 1 + (size_t)h.extra;
    return 0;
}

int mp_read_uint(struct mp_reader *r, uint64_t *v)
{
    size_t start = r->off;
    bool neg;
    uint64_t mag;
    int rc = read_integer(r, &neg, &mag);
    if (rc)
        return rc;
    if (neg && mag != 0) {
        r->off = start;
        return HS_EBADMSG;
    }
    *v = mag;
    return 0;
}

int mp_read_int(struct mp_reader *r, int64_t *v)
{
    size_t start = r->off;
    bool neg;
    uint64_t mag;
    int rc = read_integer(r, &neg, &mag);
    if (rc)
        return rc;
    if (!neg && mag > (uint64_t)INT64_MAX) {
        r->off = start;
        return HS_EBADMSG;
    }
    *v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

/* Read the header of a container or raw of the given family; *n is its
 * count or byte length. */
static int read_head(struct mp_reader *r, enum mp_type a, enum mp_type b,
                     uint64_t *n, enum mp_type *got)
{
    int rc = want(r, 1);
    if (rc)
        return rc;
    struct head h = classify(r->p[r->off]);
    if (h.type != a && h.type != b)
        return HS_EBADMSG;
    if ((rc = want(r, 1 + (uint64_t)h.extra)))
        return rc;
    *n = h.extra ? be(r->p + r->off + 1, h.extra) : h.inline_n;
    if (got)
        *got = h.type;
    r->off += 1 + (size_t)h.extra;
    return 0;
}

int mp_read_raw(struct mp_reader *r, const uint8_t **p, uint32_t *n)
{
    size_t start = r->off;
    uint64_t len;
    int rc = read_head(r, MP_STR, MP_BIN, &len, NULL);
    if (rc)
        return rc;
    if ((rc = want(r, len))) {
        r->off = start;
        return rc;
    }
    *p = r->p + r->off;
    *n = (uint32_t)len;
    r->off += (size_t)len;
    return 0;
}

int mp_read_array(struct mp_reader *r, uint32_t *n)
{
    uint64_t v;
    int rc = read_head(r, MP_ARRAY, MP_ARRAY, &v, NULL);
    if (rc == 0)
        *n = (uint32_t)v;
    return rc;
}

int mp_read_map(struct mp_reader *r, uint32_t *n)
{
    uint64_t v;
    int rc = read_head(r, MP_MAP, MP_MAP, &v, NULL);
    if (rc == 0)
        *n = (uint32_t)v;
    return rc;
}

int mp_skip(struct mp_reader *r)
{
    size_t start = r->off;
    /* Items still to skip. Each takes at least one byte, so a count above
     * the bytes left can only be a truncated (or lying) input. */
    uint64_t pending = 1;
    while (pending > 0) {
        if (pending > mp_left(r)) {
            size_t need = r->off + (size_t)HS_MIN(pending, SIZE_MAX / 2);
            r->off = start;
            return trunc_at(r, need);
        }
        int rc = want(r, 1);
        if (rc)
            goto fail;
        struct head h = classify(r->p[r->off]);
        if (h.type == MP_INVALID) {
            r->off = start;
            return HS_EBADMSG;
        }
        if ((rc = want(r, 1 + (uint64_t)h.extra)))
            goto fail;
        uint64_t n = h.extra ? be(r->p + r->off + 1, h.extra) : h.inline_n;
        r->off += 1 + (size_t)h.extra;
        pending--;
        switch (h.type) {
        case MP_STR:
        case MP_BIN:
            if ((rc = want(r, n)))
                goto fail;
            r->off += (size_t)n;
            break;
        case MP_EXT:
            /* ext 8/16/32: length counts the data after the type byte;
             * fixext: inline_n already includes the type byte. */
            if (h.extra)
                n += 1;
            if ((rc = want(r, n)))
                goto fail;
            r->off += (size_t)n;
            break;
        case MP_ARRAY:
            pending += n;
            break;
        case MP_MAP:
            pending += 2 * n;
            break;
        default:
            break;
        }
    }
    return 0;
fail:
    r->off = start;
    return HS_ETRUNC;
}

/* ===== Writer ===== */

static int write_cb(void *data, const char *p, size_t n)
{
    return buf_append(data, p, n) ? -1 : 0;
}

#define PACKER(b)      \
    msgpack_packer pk; \
    msgpack_packer_init(&pk, (b), write_cb)

void mp_write_map(struct buf *b, uint32_t n)
{
    PACKER(b);
    msgpack_pack_map(&pk, n);
}

void mp_write_array(struct buf *b, uint32_t n)
{
    PACKER(b);
    msgpack_pack_array(&pk, n);
}

void mp_write_raw(struct buf *b, const void *p, size_t n)
{
    PACKER(b);
    if (msgpack_pack_v4raw(&pk, n) == 0)
        msgpack_pack_v4raw_body(&pk, p, n);
}

void mp_write_str(struct buf *b, const char *s)
{
    mp_write_raw(b, s, strlen(s));
}

void mp_write_uint(struct buf *b, uint64_t v)
{
    PACKER(b);
    msgpack_pack_uint64(&pk, v);
}

void mp_write_int(struct buf *b, int64_t v)
{
    PACKER(b);
    msgpack_pack_int64(&pk, v);
}

void mp_write_bool(struct buf *b, bool v)
{
    PACKER(b);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

void mp_write_nil(struct buf *b)
{
    PACKER(b);
    msgpack_pack_nil(&pk);
}
