/* wire.c: memberlist message codec and packet framing. */
#include "codec/wire.h"

#include <stddef.h>
#include <string.h>
#include <zlib.h>

#include "codec/lzw.h"

const char *wire_type_name(int type)
{
    static const char *names[WIRE_TYPE_COUNT] = {
        "ping", "indirect-ping", "ack",  "suspect", "alive",
        "dead", "push-pull",     "compound", "user", "compress",
        "encrypt", "nack",       "has-crc", "err"};
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

/* ===== Table-driven struct codec =====
 * One schema per Go struct: its fields in sorted key order (the order Go
 * encodes them) with the position each has in the Go declaration (the
 * order of the array form). */

enum kind { K_U8, K_U16, K_U32, K_I64, K_BOOL, K_STR, K_RAW };

struct field {
    const char *key;
    uint8_t klen;
    uint8_t kind;
    uint8_t omitempty;
    uint8_t decl;
    uint16_t off;
};

struct schema {
    const char *name;
    const struct field *fields;
    uint8_t n;
    uint16_t size;
};

#define F(st, key, kind, omit, decl, member)                      \
    {key, (uint8_t)(sizeof(key) - 1), kind, omit, decl,           \
     (uint16_t)offsetof(struct st, member)}
#define SCHEMA(var, st, name, arr) \
    static const struct schema var = {name, arr, (uint8_t)HS_ARRAY_LEN(arr), \
                                      (uint16_t)sizeof(struct st)}

static const struct field ping_f[] = {
    F(wire_ping, "Node", K_STR, 0, 1, node),
    F(wire_ping, "SeqNo", K_U32, 0, 0, seq),
    F(wire_ping, "SourceAddr", K_RAW, 1, 2, source_addr),
    F(wire_ping, "SourceNode", K_STR, 1, 4, source_node),
    F(wire_ping, "SourcePort", K_U16, 1, 3, source_port),
};
SCHEMA(ping_s, wire_ping, "ping", ping_f);

static const struct field indirect_f[] = {
    F(wire_indirect_ping, "Nack", K_BOOL, 0, 4, nack),
    F(wire_indirect_ping, "Node", K_STR, 0, 3, node),
    F(wire_indirect_ping, "Port", K_U16, 0, 2, port),
    F(wire_indirect_ping, "SeqNo", K_U32, 0, 0, seq),
    F(wire_indirect_ping, "SourceAddr", K_RAW, 1, 5, source_addr),
    F(wire_indirect_ping, "SourceNode", K_STR, 1, 7, source_node),
    F(wire_indirect_ping, "SourcePort", K_U16, 1, 6, source_port),
    F(wire_indirect_ping, "Target", K_RAW, 0, 1, target),
};
SCHEMA(indirect_s, wire_indirect_ping, "indirect-ping", indirect_f);

static const struct field ack_f[] = {
    F(wire_ack, "Payload", K_RAW, 0, 1, payload),
    F(wire_ack, "SeqNo", K_U32, 0, 0, seq),
};
SCHEMA(ack_s, wire_ack, "ack", ack_f);

static const struct field nack_f[] = {
    F(wire_nack, "SeqNo", K_U32, 0, 0, seq),
};
SCHEMA(nack_s, wire_nack, "nack", nack_f);

static const struct field err_f[] = {
    F(wire_err, "Error", K_STR, 0, 0, error),
};
SCHEMA(err_s, wire_err, "err", err_f);

static const struct field suspect_f[] = {
    F(wire_suspect, "From", K_STR, 0, 2, from),
    F(wire_suspect, "Incarnation", K_U32, 0, 0, incarnation),
    F(wire_suspect, "Node", K_STR, 0, 1, node),
};
SCHEMA(suspect_s, wire_suspect, "suspect", suspect_f);

static const struct field alive_f[] = {
    F(wire_alive, "Addr", K_RAW, 0, 2, addr),
    F(wire_alive, "Incarnation", K_U32, 0, 0, incarnation),
    F(wire_alive, "Meta", K_RAW, 0, 4, meta),
    F(wire_alive, "Node", K_STR, 0, 1, node),
    F(wire_alive, "Port", K_U16, 0, 3, port),
    F(wire_alive, "Vsn", K_RAW, 0, 5, vsn),
};
SCHEMA(alive_s, wire_alive, "alive", alive_f);

static const struct field pph_f[] = {
    F(wire_pushpull_header, "Join", K_BOOL, 0, 2, join),
    F(wire_pushpull_header, "Nodes", K_I64, 0, 0, nodes),
    F(wire_pushpull_header, "UserStateLen", K_I64, 0, 1, user_state_len),
};
SCHEMA(pph_s, wire_pushpull_header, "push-pull header", pph_f);

static const struct field user_f[] = {
    F(wire_user_header, "UserMsgLen", K_I64, 0, 0, len),
};
SCHEMA(user_s, wire_user_header, "user header", user_f);

static const struct field ns_f[] = {
    F(wire_node_state, "Addr", K_RAW, 0, 1, addr),
    F(wire_node_state, "Incarnation", K_U32, 0, 4, incarnation),
    F(wire_node_state, "Meta", K_RAW, 0, 3, meta),
    F(wire_node_state, "Name", K_STR, 0, 0, name),
    F(wire_node_state, "Port", K_U16, 0, 2, port),
    F(wire_node_state, "State", K_I64, 0, 5, state),
    F(wire_node_state, "Vsn", K_RAW, 0, 6, vsn),
};
SCHEMA(ns_s, wire_node_state, "node state", ns_f);

static const struct field compress_f[] = {
    F(wire_compress, "Algo", K_U8, 0, 0, algo),
    F(wire_compress, "Buf", K_RAW, 0, 1, buf),
};
SCHEMA(compress_s, wire_compress, "compress", compress_f);

#define AT(m, f, type) ((type *)(void *)((char *)(m) + (f)->off))
#define CAT(m, f, type) ((const type *)(const void *)((const char *)(m) + (f)->off))

static bool field_empty(const struct field *f, const void *m)
{
    switch (f->kind) {
    case K_U8: return *CAT(m, f, uint8_t) == 0;
    case K_U16: return *CAT(m, f, uint16_t) == 0;
    case K_U32: return *CAT(m, f, uint32_t) == 0;
    case K_I64: return *CAT(m, f, int64_t) == 0;
    case K_BOOL: return !*CAT(m, f, bool);
    default: return CAT(m, f, struct wire_raw)->n == 0;
    }
}

static void put_struct(struct buf *b, const struct schema *s, const void *m)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < s->n; i++)
        if (!s->fields[i].omitempty || !field_empty(&s->fields[i], m))
            n++;
    mp_write_map(b, n);
    for (unsigned i = 0; i < s->n; i++) {
        const struct field *f = &s->fields[i];
        if (f->omitempty && field_empty(f, m))
            continue;
        mp_write_raw(b, f->key, f->klen);
        switch (f->kind) {
        case K_U8: mp_write_uint(b, *CAT(m, f, uint8_t)); break;
        case K_U16: mp_write_uint(b, *CAT(m, f, uint16_t)); break;
        case K_U32: mp_write_uint(b, *CAT(m, f, uint32_t)); break;
        case K_I64: mp_write_int(b, *CAT(m, f, int64_t)); break;
        case K_BOOL: mp_write_bool(b, *CAT(m, f, bool)); break;
        case K_STR: {
            const struct wire_raw *r = CAT(m, f, struct wire_raw);
            mp_write_raw(b, r->p, r->n); /* a Go string is never nil */
            break;
        }
        default: {
            const struct wire_raw *r = CAT(m, f, struct wire_raw);
            if (r->set)
                mp_write_raw(b, r->p, r->n);
            else
                mp_write_nil(b);
        }
        }
    }
}

/* A []byte sent as an array of small integers goes to scratch space. */
static int get_byte_array(struct mp_reader *r, struct wire_raw *out,
                          struct wire_scratch *s)
{
    uint32_t n;
    int rc = mp_read_array(r, &n);
    if (rc)
        return rc;
    if (s == NULL || n > s->cap - s->used)
        return HS_EBADMSG;
    uint8_t *dst = s->p + s->used;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v;
        if ((rc = mp_read_uint(r, &v)))
            return rc;
        if (v > 255)
            return HS_EBADMSG;
        dst[i] = (uint8_t)v;
    }
    s->used += n;
    *out = wire_raw(dst, n);
    return 0;
}

static int get_value(struct mp_reader *r, const struct field *f, void *m,
                     struct wire_scratch *s)
{
    enum mp_type t;
    int rc = mp_peek(r, &t);
    if (rc)
        return rc;
    if (t == MP_NIL) { /* nil leaves the zero value */
        r->off++;
        return 0;
    }
    uint64_t u;
    switch (f->kind) {
    case K_U8:
    case K_U16:
    case K_U32: {
        if ((rc = mp_read_uint(r, &u)))
            return rc;
        uint64_t max = f->kind == K_U8 ? 0xff
                       : f->kind == K_U16 ? 0xffff : 0xffffffffu;
        if (u > max)
            return HS_EBADMSG;
        if (f->kind == K_U8)
            *AT(m, f, uint8_t) = (uint8_t)u;
        else if (f->kind == K_U16)
            *AT(m, f, uint16_t) = (uint16_t)u;
        else
            *AT(m, f, uint32_t) = (uint32_t)u;
        return 0;
    }
    case K_I64:
        return mp_read_int(r, AT(m, f, int64_t));
    case K_BOOL:
        return mp_read_bool(r, AT(m, f, bool));
    case K_STR:
    case K_RAW: {
        struct wire_raw *out = AT(m, f, struct wire_raw);
        if (t == MP_ARRAY && f->kind == K_RAW)
            return get_byte_array(r, out, s);
        const uint8_t *p;
        uint32_t n;
        if ((rc = mp_read_raw(r, &p, &n)))
            return rc;
        *out = wire_raw(p, n);
        return 0;
    }
    }
    return HS_EBADMSG;
}

static bool key_is(const struct field *f, const uint8_t *k, uint32_t n)
{
    return f->klen == n && memcmp(f->key, k, n) == 0;
}

/* The field named k. Go writes the fields in the order of the table, so
 * the i-th key is tried against the i-th field first. */
static const struct field *find_field(const struct schema *s, unsigned hint,
                                      const uint8_t *k, uint32_t n)
{
    if (hint < s->n && key_is(&s->fields[hint], k, n))
        return &s->fields[hint];
    for (unsigned i = 0; i < s->n; i++)
        if (key_is(&s->fields[i], k, n))
            return &s->fields[i];
    return NULL;
}

static int get_struct(struct mp_reader *r, const struct schema *s, void *m,
                      struct wire_scratch *sc, const char **why)
{
    memset(m, 0, s->size);
    enum mp_type t;
    uint32_t n;
    int rc = mp_peek(r, &t);
    if (rc)
        goto fail;
    if (t == MP_NIL) {
        r->off++;
        return 0;
    }
    if (t == MP_ARRAY) {
        if ((rc = mp_read_array(r, &n)))
            goto fail;
        for (uint32_t i = 0; i < n; i++) {
            const struct field *f = NULL;
            for (unsigned j = 0; j < s->n; j++)
                if (s->fields[j].decl == i)
                    f = &s->fields[j];
            rc = f ? get_value(r, f, m, sc) : mp_skip(r);
            if (rc) {
                if (why && f)
                    *why = f->key;
                goto fail;
            }
        }
        return 0;
    }
    if ((rc = mp_read_map(r, &n)))
        goto fail;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        if ((rc = mp_read_raw(r, &k, &kn))) {
            if (rc == HS_EBADMSG) /* a key that is not a string */
                rc = mp_skip(r) ? rc : mp_skip(r);
            if (rc)
                goto fail;
            continue;
        }
        const struct field *f = find_field(s, i, k, kn);
        rc = f ? get_value(r, f, m, sc) : mp_skip(r);
        if (rc) {
            if (why && f)
                *why = f->key;
            goto fail;
        }
    }
    return 0;
fail:
    if (why && (*why == NULL || rc != HS_EBADMSG))
        *why = s->name;
    return rc;
}

#define CODEC(name, st, schema, type)                                     \
    void wire_put_##name(struct buf *b, const struct st *m)               \
    {                                                                     \
        if ((type) >= 0)                                                  \
            buf_putc(b, (uint8_t)(type));                                 \
        put_struct(b, &(schema), m);                                      \
    }                                                                     \
    int wire_get_##name(struct mp_reader *r, struct st *m,                \
                        struct wire_scratch *s, const char **why)         \
    {                                                                     \
        return get_struct(r, &(schema), m, s, why);                       \
    }

CODEC(ping, wire_ping, ping_s, WIRE_PING)
CODEC(indirect_ping, wire_indirect_ping, indirect_s, WIRE_INDIRECT_PING)
CODEC(ack, wire_ack, ack_s, WIRE_ACK)
CODEC(nack, wire_nack, nack_s, WIRE_NACK)
CODEC(err, wire_err, err_s, WIRE_ERR)
CODEC(suspect, wire_suspect, suspect_s, WIRE_SUSPECT)
CODEC(alive, wire_alive, alive_s, WIRE_ALIVE)
CODEC(pushpull_header, wire_pushpull_header, pph_s, WIRE_PUSHPULL)
CODEC(node_state, wire_node_state, ns_s, -1)

int wire_get_compress(struct mp_reader *r, struct wire_compress *m,
                      struct wire_scratch *s, const char **why)
{
    return get_struct(r, &compress_s, m, s, why);
}

void wire_put_dead(struct buf *b, const struct wire_suspect *m)
{
    buf_putc(b, WIRE_DEAD);
    put_struct(b, &suspect_s, m);
}

void wire_put_user_header(struct buf *b, int64_t len)
{
    struct wire_user_header h = {len};
    buf_putc(b, WIRE_USER);
    put_struct(b, &user_s, &h);
}

int wire_get_user_header(struct mp_reader *r, struct wire_user_header *m,
                         struct wire_scratch *s, const char **why)
{
    return get_struct(r, &user_s, m, s, why);
}

void wire_put_compress(struct buf *b, const uint8_t *msg, size_t len)
{
    struct buf z = BUF_INIT;
    if (lzw_encode(msg, len, &z)) {
        b->err = HS_ENOMEM;
    } else {
        struct wire_compress c = {0, wire_raw(z.data, z.len)};
        buf_putc(b, WIRE_COMPRESS);
        put_struct(b, &compress_s, &c);
    }
    buf_free(&z);
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

int wire_put_compound(struct buf *b, const struct wire_part *parts,
                      size_t n)
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
        int rc = wire_decompress(p + 1, len - 1, w->lim->max_decompressed,
                                 &out, &why);
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
                     const struct wire_limits *lim, wire_leaf_fn fn,
                     void *ud, size_t *truncated, const char **why)
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

enum { SCAN_TYPE, SCAN_PP_HEADER, SCAN_PP_NODES, SCAN_TAIL, SCAN_DONE };

void wire_stream_scan_init(struct wire_stream_scan *s)
{
    memset(s, 0, sizeof *s);
}

int wire_scan_stream(struct wire_stream_scan *s, const uint8_t *p,
                     size_t len, uint64_t max_nodes, uint64_t max_user,
                     size_t *end, size_t *need, const char **why)
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
            if (h.user_state_len < 0 ||
                (uint64_t)h.user_state_len > max_user) {
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
