/* wire.c: memberlist message codec and packet framing. */
#include "codec/wire.h"

#include <string.h>
#include <zlib.h>

#include "codec/lzw.h"

const char *wire_type_name(int type)
{
    static const char *names[WIRE_TYPE_COUNT] = {
        "ping",    "indirect-ping", "ack",      "suspect", "alive",
        "dead",    "push-pull",     "compound", "user",    "compress",
        "encrypt", "nack",          "has-crc",  "err"};
    if (type >= 0 && type < WIRE_TYPE_COUNT)
        return names[type];
    if (type == WIRE_LABEL)
        return "has-label";
    return "unknown";
}

struct wire_raw wire_str(const char *s)
{
    return wire_raw(s, s ? strlen(s) : 0);
}

bool wire_raw_eq(struct wire_raw r, const char *s)
{
    size_t n = strlen(s);
    return r.n == n && (n == 0 || memcmp(r.p, s, n) == 0);
}

/* ===== Bodies =====
 * The fields are wire_schema.c's: each body is written and read by the
 * table of its type. */

void wire_put_body(struct buf *b, int type, const void *m)
{
    buf_putc(b, (uint8_t)type);
    wire_put_struct(b, wire_schema(type), m);
}

#define CODEC(name, st, type)                                     \
    void wire_put_##name(struct buf *b, const struct st *m)       \
    {                                                             \
        wire_put_body(b, type, m);                                \
    }                                                             \
    int wire_get_##name(struct mp_reader *r, struct st *m,        \
                        struct wire_scratch *s, const char **why) \
    {                                                             \
        return wire_get_struct(r, wire_schema(type), m, s, why);  \
    }

CODEC(ping, wire_ping, WIRE_PING)
CODEC(indirect_ping, wire_indirect_ping, WIRE_INDIRECT_PING)
CODEC(ack, wire_ack, WIRE_ACK)
CODEC(nack, wire_nack, WIRE_NACK)
CODEC(err, wire_err, WIRE_ERR)
CODEC(suspect, wire_suspect, WIRE_SUSPECT)
CODEC(alive, wire_alive, WIRE_ALIVE)
CODEC(pushpull_header, wire_pushpull_header, WIRE_PUSHPULL)

void wire_put_dead(struct buf *b, const struct wire_suspect *m)
{
    wire_put_body(b, WIRE_DEAD, m);
}

void wire_put_node_state(struct buf *b, const struct wire_node_state *m)
{
    wire_put_struct(b, wire_schema(WIRE_SCHEMA_NODE_STATE), m);
}

int wire_get_node_state(struct mp_reader *r, struct wire_node_state *m,
                        struct wire_scratch *s, const char **why)
{
    return wire_get_struct(r, wire_schema(WIRE_SCHEMA_NODE_STATE), m, s, why);
}

void wire_put_user_header(struct buf *b, int64_t len)
{
    struct wire_user_header h = {len};
    wire_put_body(b, WIRE_USER, &h);
}

int wire_get_user_header(struct mp_reader *r, struct wire_user_header *m,
                         struct wire_scratch *s, const char **why)
{
    return wire_get_struct(r, wire_schema(WIRE_USER), m, s, why);
}

void wire_put_compress(struct buf *b, const uint8_t *msg, size_t len)
{
    struct buf z = BUF_INIT;
    if (lzw_encode(msg, len, &z)) {
        b->err = HS_ENOMEM;
    } else {
        struct wire_compress c = {0, wire_raw(z.data, z.len)};
        wire_put_body(b, WIRE_COMPRESS, &c);
    }
    buf_free(&z);
}

int wire_get_compress(struct mp_reader *r, struct wire_compress *m,
                      struct wire_scratch *s, const char **why)
{
    return wire_get_struct(r, wire_schema(WIRE_COMPRESS), m, s, why);
}

/* ===== Framing ===== */

uint32_t wire_crc32(const uint8_t *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > 0x40000000u ? 0x40000000u : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

int wire_put_compound(struct buf *b, const struct wire_part *parts, size_t n)
{
    if (n == 0 || n > WIRE_COMPOUND_MAX)
        return HS_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (parts[i].n > 0xffff)
            return HS_EINVAL;
    buf_putc(b, WIRE_COMPOUND);
    buf_putc(b, (uint8_t)n);
    for (size_t i = 0; i < n; i++)
        buf_put_be16(b, (uint16_t)parts[i].n);
    for (size_t i = 0; i < n; i++)
        buf_append(b, parts[i].p, parts[i].n);
    return b->err;
}

int wire_split_compound(const uint8_t *p, size_t len,
                        struct wire_part parts[WIRE_COMPOUND_MAX], size_t *n,
                        size_t *truncated)
{
    *n = 0;
    *truncated = 0;
    if (len < 1)
        return HS_EBADMSG;
    size_t count = p[0];
    if (len - 1 < count * 2)
        return HS_EBADMSG;
    const uint8_t *lens = p + 1;
    size_t off = 1 + count * 2;
    for (size_t i = 0; i < count; i++) {
        size_t plen = hs_be16(lens + 2 * i);
        if (len - off < plen) {
            *truncated = count - i;
            break;
        }
        parts[*n].p = p + off;
        parts[*n].n = plen;
        (*n)++;
        off += plen;
    }
    return 0;
}

int wire_add_crc(struct buf *b, size_t start)
{
    if (buf_reserve(b, WIRE_CRC_OVERHEAD))
        return b->err;
    size_t n = b->len - start;
    uint32_t crc = wire_crc32(b->data + start, n);
    memmove(b->data + start + WIRE_CRC_OVERHEAD, b->data + start, n);
    b->data[start] = WIRE_HASCRC;
    hs_put_be32(b->data + start + 1, crc);
    b->len += WIRE_CRC_OVERHEAD;
    return 0;
}

int wire_decompress(const uint8_t *body, size_t len, size_t max_out,
                    struct buf *out, const char **why)
{
    struct mp_reader r;
    struct wire_compress c;
    WIRE_SCRATCH(s);
    mp_reader_init(&r, body, len);
    int rc = wire_get_compress(&r, &c, &s, why);
    if (rc)
        return rc == HS_ETRUNC ? HS_EBADMSG : rc;
    if (c.algo != 0) {
        *why = "unknown compression algorithm";
        return HS_EUNSUPP;
    }
    rc = lzw_decode(c.buf.p, c.buf.n, max_out, out);
    if (rc == HS_ETOOBIG)
        *why = "decompressed size over limit";
    else if (rc == HS_ETRUNC || rc == HS_EBADMSG) {
        *why = "bad LZW stream";
        rc = HS_EDECOMPRESS;
    }
    return rc;
}

struct walk {
    const struct wire_limits *lim;
    wire_leaf_fn fn;
    void *ud;
    size_t truncated;
    const char *why;
    int err;
};

static void walk_note(struct walk *w, int rc, const char *why)
{
    if (w->err == 0) {
        w->err = rc;
        w->why = why;
    }
}

static void walk(struct walk *w, const uint8_t *p, size_t len, int depth)
{
    if (len == 0) {
        walk_note(w, HS_EBADMSG, "empty message");
        return;
    }
    uint8_t type = p[0];
    if ((type == WIRE_COMPOUND || type == WIRE_COMPRESS) &&
        depth >= w->lim->max_depth) {
        walk_note(w, HS_ETOOBIG, "messages nested too deep");
        return;
    }
    if (type == WIRE_COMPOUND) {
        struct wire_part parts[WIRE_COMPOUND_MAX];
        size_t n, trunc;
        if (wire_split_compound(p + 1, len - 1, parts, &n, &trunc)) {
            walk_note(w, HS_EBADMSG, "compound length table cut short");
            return;
        }
        w->truncated += trunc;
        for (size_t i = 0; i < n; i++)
            walk(w, parts[i].p, parts[i].n, depth + 1);
        if (trunc)
            walk_note(w, HS_ETRUNC, "compound parts cut short");
    } else if (type == WIRE_COMPRESS) {
        struct buf out = BUF_INIT;
        const char *why = NULL;
        int rc = wire_decompress(p + 1, len - 1, w->lim->max_decompressed, &out,
                                 &why);
        if (rc)
            walk_note(w, rc, why);
        else
            walk(w, out.data, out.len, depth + 1);
        buf_free(&out);
    } else {
        w->fn(w->ud, type, p + 1, len - 1);
    }
}

int wire_walk_packet(const uint8_t *p, size_t len,
                     const struct wire_limits *lim, wire_leaf_fn fn, void *ud,
                     size_t *truncated, const char **why)
{
    struct walk w = {lim, fn, ud, 0, NULL, 0};
    if (len >= WIRE_CRC_OVERHEAD && p[0] == WIRE_HASCRC) {
        uint32_t want = hs_be32(p + 1);
        if (wire_crc32(p + 5, len - 5) != want) {
            if (why)
                *why = "CRC mismatch";
            return HS_ECRC;
        }
        p += WIRE_CRC_OVERHEAD;
        len -= WIRE_CRC_OVERHEAD;
    }
    walk(&w, p, len, 0);
    if (truncated)
        *truncated = w.truncated;
    if (why)
        *why = w.why;
    return w.err;
}

/* ===== Envelope ===== */

static const uint8_t env_magic[3] = {WIRE_ENVELOPE_MAGIC0, 'H', 'S'};

void wire_put_envelope(struct buf *b, uint8_t kind, const char *from,
                       size_t fromlen)
{
    if (fromlen > 255)
        fromlen = 255;
    buf_append(b, env_magic, 3);
    buf_putc(b, 1);
    buf_putc(b, kind);
    buf_putc(b, (uint8_t)fromlen);
    buf_append(b, from, fromlen);
}

int wire_get_envelope(const uint8_t *p, size_t n, struct wire_envelope *e)
{
    if (n < 4 || memcmp(p, env_magic, 3) != 0 || p[3] != 1)
        return HS_ENOTFOUND;
    if (n < 6 || n - 6 < p[5])
        return HS_EBADMSG;
    e->kind = p[4];
    e->fromlen = p[5];
    e->from = (const char *)p + 6;
    e->body = p + 6 + e->fromlen;
    e->len = n - 6 - e->fromlen;
    return 0;
}

/* ===== Stream scanning ===== */

enum {
    SCAN_TYPE,
    SCAN_PP_HEADER,
    SCAN_PP_NODES,
    SCAN_TAIL,
    SCAN_DONE
};

void wire_stream_scan_init(struct wire_stream_scan *s)
{
    memset(s, 0, sizeof *s);
}

int wire_scan_stream(struct wire_stream_scan *s, const uint8_t *p, size_t len,
                     uint64_t max_nodes, uint64_t max_user, size_t *end,
                     size_t *need, const char **why)
{
    struct mp_reader r;
    int rc;
    for (;;) {
        mp_reader_init(&r, p, len);
        r.off = s->off;
        switch (s->phase) {
        case SCAN_TYPE:
            if (len < 1) {
                *need = 1;
                return HS_ETRUNC;
            }
            s->type = p[0];
            s->off = 1;
            r.off = 1;
            switch (s->type) {
            case WIRE_ENCRYPT:
                if (len < 5) {
                    *need = 5;
                    return HS_ETRUNC;
                }
                s->user_len = hs_be32(p + 1);
                if ((uint64_t)s->user_len > max_user) {
                    *why = "encrypted stream over size limit";
                    return HS_ETOOBIG;
                }
                s->off = 5;
                s->phase = SCAN_TAIL;
                break;
            case WIRE_PING:
            case WIRE_ACK:
            case WIRE_ERR:
            case WIRE_COMPRESS:
                rc = mp_skip(&r);
                if (rc == HS_ETRUNC) {
                    *need = r.need;
                    s->off = 0; /* nothing consumed past the type */
                    return rc;
                }
                if (rc) {
                    *why = "malformed stream message";
                    return rc;
                }
                s->off = r.off;
                s->user_len = 0;
                s->phase = SCAN_TAIL;
                break;
            case WIRE_PUSHPULL:
                s->phase = SCAN_PP_HEADER;
                break;
            case WIRE_USER: {
                struct wire_user_header h;
                WIRE_SCRATCH(sc);
                r.off = 1;
                rc = wire_get_user_header(&r, &h, &sc, why);
                if (rc == HS_ETRUNC) {
                    *need = r.need ? r.need : len + 1;
                    return rc;
                }
                if (rc)
                    return rc;
                if (h.len < 0 || (uint64_t)h.len > max_user) {
                    *why = "user message over size limit";
                    return HS_ETOOBIG;
                }
                s->off = r.off;
                s->user_len = h.len;
                s->phase = SCAN_TAIL;
                break;
            }
            default:
                *why = "unexpected stream message type";
                return HS_EUNSUPP;
            }
            break;
        case SCAN_PP_HEADER: {
            struct wire_pushpull_header h;
            WIRE_SCRATCH(sc);
            rc = wire_get_pushpull_header(&r, &h, &sc, why);
            if (rc == HS_ETRUNC) {
                *need = r.need ? r.need : len + 1;
                return rc;
            }
            if (rc)
                return rc;
            if (h.nodes < 0 || (uint64_t)h.nodes > max_nodes) {
                *why = "push/pull node count over limit";
                return HS_ETOOBIG;
            }
            if (h.user_state_len < 0 || (uint64_t)h.user_state_len > max_user) {
                *why = "push/pull user state over size limit";
                return HS_ETOOBIG;
            }
            s->nodes_left = (uint64_t)h.nodes;
            s->user_len = h.user_state_len;
            s->off = r.off;
            s->phase = SCAN_PP_NODES;
            break;
        }
        case SCAN_PP_NODES:
            while (s->nodes_left > 0) {
                rc = mp_skip(&r);
                if (rc == HS_ETRUNC) {
                    *need = r.need;
                    return rc;
                }
                if (rc) {
                    *why = "malformed push/pull node state";
                    return rc;
                }
                s->off = r.off;
                s->nodes_left--;
            }
            s->phase = SCAN_TAIL;
            break;
        case SCAN_TAIL:
            if (len - s->off < (uint64_t)s->user_len) {
                *need = s->off + (size_t)s->user_len;
                return HS_ETRUNC;
            }
            s->off += (size_t)s->user_len;
            s->phase = SCAN_DONE;
            break;
        case SCAN_DONE:
            *end = s->off;
            return 0;
        }
    }
}
