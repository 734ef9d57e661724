/* lzw.c: LZW as Go's compress/lzw writes and reads it (LSB, litWidth 8). */
#include "codec/lzw.h"

#include <string.h>

enum {
    LZW_CLEAR = 256,    /* resets the dictionary and the code width */
    LZW_END = 257,      /* end of data, mandatory */
    LZW_FIRST = 258,    /* first dictionary code */
    LZW_MIN_WIDTH = 9,  /* code width after a clear */
    LZW_MAX_WIDTH = 12, /* codes never get wider */
    LZW_CODES = 1 << LZW_MAX_WIDTH,
    /* The writer emits a clear as soon as its next free code reaches this
     * value, so the largest code it ever assigns is LZW_CODES - 2. */
    LZW_ENC_LIMIT = LZW_CODES - 1,
    LZW_NONE = 0xffff /* "no previous code" in the decoder */
};

/* ===== Encoder ===== */

/* Codes are packed LSB first into `acc` and staged in a small array that
 * is appended to the output buffer when nearly full. */
struct lzw_enc {
    struct buf *out;
    uint64_t acc;
    unsigned nbits;
    unsigned width;
    unsigned next; /* the code the next written data code implies */
    size_t staged;
    /* Hash table of dictionary entries: prefix code << 20 | byte << 12 |
     * code. Zero marks a free slot (a valid entry's code is >= 258). */
    uint32_t *table;
    size_t mask;
    unsigned shift;
    uint8_t stage[512];
};

static void enc_flush(struct lzw_enc *e)
{
    buf_append(e->out, e->stage, e->staged);
    e->staged = 0;
}

static void enc_put(struct lzw_enc *e, unsigned code)
{
    e->acc |= (uint64_t)code << e->nbits;
    e->nbits += e->width;
    while (e->nbits >= 8) {
        e->stage[e->staged++] = (uint8_t)e->acc;
        e->acc >>= 8;
        e->nbits -= 8;
    }
    if (e->staged > sizeof e->stage - 4)
        enc_flush(e);
}

/* Account for a data code just written: widen the codes when `next`
 * crosses a power of two, and when the dictionary is full write a clear
 * code and start over. Returns true if the dictionary was reset. */
static bool enc_advance(struct lzw_enc *e)
{
    e->next++;
    if (e->next == 1u << e->width)
        e->width++;
    if (e->next < LZW_ENC_LIMIT)
        return false;
    enc_put(e, LZW_CLEAR);
    e->width = LZW_MIN_WIDTH;
    e->next = LZW_END;
    memset(e->table, 0, (e->mask + 1) * sizeof e->table[0]);
    return true;
}

static size_t enc_slot(const struct lzw_enc *e, uint32_t key)
{
    return (size_t)((key * UINT32_C(0x9e3779b1)) >> e->shift);
}

int lzw_encode(const uint8_t *in, size_t len, struct buf *out)
{
    if (out->err)
        return out->err;
    struct lzw_enc e;
    e.out = out;
    e.acc = 0;
    e.nbits = 0;
    e.width = LZW_MIN_WIDTH;
    e.next = LZW_END;
    e.staged = 0;
    e.table = NULL;

    if (len > 0) {
        /* At most one entry per input byte and LZW_ENC_LIMIT - LZW_FIRST
         * per generation; keep the table at most half full. */
        size_t entries = HS_MIN(len, (size_t)(LZW_ENC_LIMIT - LZW_FIRST));
        size_t size = 64;
        e.shift = 32 - 6;
        while (size < 2 * entries) {
            size *= 2;
            e.shift--;
        }
        e.table = hs_calloc(size, sizeof e.table[0]);
        if (e.table == NULL)
            return HS_ENOMEM;
        e.mask = size - 1;
    }

    enc_put(&e, LZW_CLEAR);
    if (len > 0) {
        uint32_t code = in[0];
        for (size_t i = 1; i < len; i++) {
            uint32_t key = code << 8 | in[i];
            size_t slot = enc_slot(&e, key);
            uint32_t t;
            while ((t = e.table[slot]) != 0 && t >> 12 != key)
                slot = (slot + 1) & e.mask;
            if (t != 0) {
                code = t & (LZW_CODES - 1);
                continue;
            }
            enc_put(&e, code);
            code = in[i];
            if (!enc_advance(&e))
                e.table[slot] = key << 12 | e.next;
        }
        enc_put(&e, code);
        enc_advance(&e);
        hs_free(e.table);
    }
    enc_put(&e, LZW_END);
    if (e.nbits > 0)
        e.stage[e.staged++] = (uint8_t)e.acc;
    enc_flush(&e);
    return out->err;
}

/* ===== Decoder ===== */

/* The dictionary: code c >= 258 expands to the expansion of prefix[c]
 * followed by suffix[c]; length[c] and first[c] are the length and first
 * byte of that expansion (kept for literals too, so no chain walks are
 * needed to size or start a string). */
struct lzw_dict {
    uint16_t prefix[LZW_CODES];
    uint16_t length[LZW_CODES];
    uint8_t suffix[LZW_CODES];
    uint8_t first[LZW_CODES];
};

int lzw_decode(const uint8_t *in, size_t len, size_t max_out, struct buf *out)
{
    if (out->err)
        return out->err;
    struct lzw_dict d;
    for (unsigned c = 0; c < LZW_CLEAR; c++) {
        d.length[c] = 1;
        d.first[c] = (uint8_t)c;
    }
    size_t limit =
        max_out > SIZE_MAX - out->len ? SIZE_MAX : out->len + max_out;
    unsigned width = LZW_MIN_WIDTH;
    unsigned next = LZW_END; /* the code the next data code defines */
    unsigned last = LZW_NONE;
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t pos = 0;

    for (;;) {
        while (nbits < width) {
            if (pos == len)
                return HS_ETRUNC;
            acc |= (uint32_t)in[pos++] << nbits;
            nbits += 8;
        }
        unsigned code = acc & ((1u << width) - 1);
        acc >>= width;
        nbits -= width;

        if (code == LZW_CLEAR) {
            width = LZW_MIN_WIDTH;
            next = LZW_END;
            last = LZW_NONE;
            continue;
        }
        if (code == LZW_END)
            return 0;
        if (code > next)
            return HS_EBADMSG;

        /* code == next with a previous code is the one not yet in the
         * dictionary: the previous string plus its own first byte. (With
         * no previous code, next is 4095 of a full dictionary and is
         * defined: after a clear next is 257, the end code.) */
        bool pending = code == next && last != LZW_NONE;
        unsigned base = pending ? last : code;
        size_t n = (size_t)d.length[base] + pending;
        uint8_t head = d.first[base];
        if (n > limit - out->len)
            return HS_ETOOBIG;
        if (out->cap - out->len < n && buf_reserve_max(out, n, limit))
            return HS_ENOMEM;
        uint8_t *p = out->data + out->len + n;
        if (pending)
            *--p = head;
        unsigned c = base;
        while (c >= LZW_FIRST) {
            *--p = d.suffix[c];
            c = d.prefix[c];
        }
        *--p = (uint8_t)c;
        out->len += n;

        if (last != LZW_NONE) {
            d.prefix[next] = (uint16_t)last;
            d.suffix[next] = head;
            d.length[next] = (uint16_t)(d.length[last] + 1);
            d.first[next] = d.first[last];
        }
        last = code;
        next++;
        if (next == 1u << width) {
            if (width < LZW_MAX_WIDTH) {
                width++;
            } else {
                /* Full: stop adding entries until a clear code. */
                next--;
                last = LZW_NONE;
            }
        }
    }
}
