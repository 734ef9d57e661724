/* wire_schema.c: the fields of memberlist's message bodies, and the
 * table-driven codec that reads and writes a body by its schema. */
#include "codec/wire.h"

#include <stddef.h>
#include <string.h>

/* ===== The schemas =====
 * One per Go struct: its fields in sorted key order (the order Go encodes
 * them) with the position each has in the Go declaration (the order of
 * the array form). */

#define K_U8 WIRE_K_U8
#define K_U16 WIRE_K_U16
#define K_U32 WIRE_K_U32
#define K_I64 WIRE_K_I64
#define K_BOOL WIRE_K_BOOL
#define K_STR WIRE_K_STR
#define K_RAW WIRE_K_RAW
#define OMIT WIRE_F_OMITEMPTY
#define LEN WIRE_F_LENGTH
#define INNER WIRE_F_INNER

#define F(st, key, kind, flags, decl, member)               \
    {                                                       \
        key, (uint8_t)(sizeof(key) - 1), kind, flags, decl, \
            (uint16_t)offsetof(struct st, member)           \
    }
#define SCHEMA(var, st, name, arr)          \
    static const struct wire_schema var = { \
        name, arr, (uint8_t)HS_ARRAY_LEN(arr), (uint16_t)sizeof(struct st)}

static const struct wire_field ping_f[] = {
    F(wire_ping, "Node", K_STR, 0, 1, node),
    F(wire_ping, "SeqNo", K_U32, 0, 0, seq),
    F(wire_ping, "SourceAddr", K_RAW, OMIT, 2, source_addr),
    F(wire_ping, "SourceNode", K_STR, OMIT, 4, source_node),
    F(wire_ping, "SourcePort", K_U16, OMIT, 3, source_port),
};
SCHEMA(ping_s, wire_ping, "ping", ping_f);

static const struct wire_field indirect_f[] = {
    F(wire_indirect_ping, "Nack", K_BOOL, 0, 4, nack),
    F(wire_indirect_ping, "Node", K_STR, 0, 3, node),
    F(wire_indirect_ping, "Port", K_U16, 0, 2, port),
    F(wire_indirect_ping, "SeqNo", K_U32, 0, 0, seq),
    F(wire_indirect_ping, "SourceAddr", K_RAW, OMIT, 5, source_addr),
    F(wire_indirect_ping, "SourceNode", K_STR, OMIT, 7, source_node),
    F(wire_indirect_ping, "SourcePort", K_U16, OMIT, 6, source_port),
    F(wire_indirect_ping, "Target", K_RAW, 0, 1, target),
};
SCHEMA(indirect_s, wire_indirect_ping, "indirect-ping", indirect_f);

static const struct wire_field ack_f[] = {
    F(wire_ack, "Payload", K_RAW, 0, 1, payload),
    F(wire_ack, "SeqNo", K_U32, 0, 0, seq),
};
SCHEMA(ack_s, wire_ack, "ack", ack_f);

static const struct wire_field nack_f[] = {
    F(wire_nack, "SeqNo", K_U32, 0, 0, seq),
};
SCHEMA(nack_s, wire_nack, "nack", nack_f);

static const struct wire_field err_f[] = {
    F(wire_err, "Error", K_STR, 0, 0, error),
};
SCHEMA(err_s, wire_err, "err", err_f);

static const struct wire_field suspect_f[] = {
    F(wire_suspect, "From", K_STR, 0, 2, from),
    F(wire_suspect, "Incarnation", K_U32, 0, 0, incarnation),
    F(wire_suspect, "Node", K_STR, 0, 1, node),
};
SCHEMA(suspect_s, wire_suspect, "suspect", suspect_f);

static const struct wire_field alive_f[] = {
    F(wire_alive, "Addr", K_RAW, 0, 2, addr),
    F(wire_alive, "Incarnation", K_U32, 0, 0, incarnation),
    F(wire_alive, "Meta", K_RAW, 0, 4, meta),
    F(wire_alive, "Node", K_STR, 0, 1, node),
    F(wire_alive, "Port", K_U16, 0, 3, port),
    F(wire_alive, "Vsn", K_RAW, 0, 5, vsn),
};
SCHEMA(alive_s, wire_alive, "alive", alive_f);

static const struct wire_field pph_f[] = {
    F(wire_pushpull_header, "Join", K_BOOL, 0, 2, join),
    F(wire_pushpull_header, "Nodes", K_I64, LEN, 0, nodes),
    F(wire_pushpull_header, "UserStateLen", K_I64, LEN, 1, user_state_len),
};
SCHEMA(pph_s, wire_pushpull_header, "push-pull header", pph_f);

static const struct wire_field user_f[] = {
    F(wire_user_header, "UserMsgLen", K_I64, LEN, 0, len),
};
SCHEMA(user_s, wire_user_header, "user header", user_f);

static const struct wire_field ns_f[] = {
    F(wire_node_state, "Addr", K_RAW, 0, 1, addr),
    F(wire_node_state, "Incarnation", K_U32, 0, 4, incarnation),
    F(wire_node_state, "Meta", K_RAW, 0, 3, meta),
    F(wire_node_state, "Name", K_STR, 0, 0, name),
    F(wire_node_state, "Port", K_U16, 0, 2, port),
    F(wire_node_state, "State", K_I64, 0, 5, state),
    F(wire_node_state, "Vsn", K_RAW, 0, 6, vsn),
};
SCHEMA(ns_s, wire_node_state, "node state", ns_f);

static const struct wire_field compress_f[] = {
    F(wire_compress, "Algo", K_U8, 0, 0, algo),
    F(wire_compress, "Buf", K_RAW, INNER, 1, buf),
};
SCHEMA(compress_s, wire_compress, "compress", compress_f);

const struct wire_schema *wire_schema(int type)
{
    switch (type) {
    case WIRE_PING:
        return &ping_s;
    case WIRE_INDIRECT_PING:
        return &indirect_s;
    case WIRE_ACK:
        return &ack_s;
    case WIRE_SUSPECT:
    case WIRE_DEAD:
        return &suspect_s;
    case WIRE_ALIVE:
        return &alive_s;
    case WIRE_PUSHPULL:
        return &pph_s;
    case WIRE_USER:
        return &user_s;
    case WIRE_COMPRESS:
        return &compress_s;
    case WIRE_NACK:
        return &nack_s;
    case WIRE_ERR:
        return &err_s;
    case WIRE_SCHEMA_NODE_STATE:
        return &ns_s;
    default:
        return NULL;
    }
}

/* ===== Field values ===== */

#define AT(m, f, type) ((type *)(void *)((char *)(m) + (f)->off))
#define CAT(m, f, type) \
    ((const type *)(const void *)((const char *)(m) + (f)->off))

int64_t wire_field_int(const struct wire_field *f, const void *m)
{
    switch (f->kind) {
    case K_U8:
        return *CAT(m, f, uint8_t);
    case K_U16:
        return *CAT(m, f, uint16_t);
    case K_U32:
        return *CAT(m, f, uint32_t);
    case K_I64:
        return *CAT(m, f, int64_t);
    case K_BOOL:
        return *CAT(m, f, bool);
    default:
        return 0;
    }
}

struct wire_raw wire_field_raw(const struct wire_field *f, const void *m)
{
    if (f->kind == K_STR || f->kind == K_RAW)
        return *CAT(m, f, struct wire_raw);
    return (struct wire_raw){0};
}

void wire_field_set_int(const struct wire_field *f, void *m, int64_t v)
{
    switch (f->kind) {
    case K_U8:
        *AT(m, f, uint8_t) = (uint8_t)v;
        break;
    case K_U16:
        *AT(m, f, uint16_t) = (uint16_t)v;
        break;
    case K_U32:
        *AT(m, f, uint32_t) = (uint32_t)v;
        break;
    case K_I64:
        *AT(m, f, int64_t) = v;
        break;
    case K_BOOL:
        *AT(m, f, bool) = v != 0;
        break;
    default:
        break;
    }
}

void wire_field_set_raw(const struct wire_field *f, void *m, struct wire_raw v)
{
    if (f->kind == K_STR || f->kind == K_RAW)
        *AT(m, f, struct wire_raw) = v;
}

/* ===== The struct codec ===== */

static bool field_empty(const struct wire_field *f, const void *m)
{
    switch (f->kind) {
    case K_U8:
        return *CAT(m, f, uint8_t) == 0;
    case K_U16:
        return *CAT(m, f, uint16_t) == 0;
    case K_U32:
        return *CAT(m, f, uint32_t) == 0;
    case K_I64:
        return *CAT(m, f, int64_t) == 0;
    case K_BOOL:
        return !*CAT(m, f, bool);
    default:
        return CAT(m, f, struct wire_raw)->n == 0;
    }
}

void wire_put_struct(struct buf *b, const struct wire_schema *s, const void *m)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < s->n; i++)
        if (!(s->fields[i].flags & OMIT) || !field_empty(&s->fields[i], m))
            n++;
    mp_write_map(b, n);
    for (unsigned i = 0; i < s->n; i++) {
        const struct wire_field *f = &s->fields[i];
        if ((f->flags & OMIT) && field_empty(f, m))
            continue;
        mp_write_raw(b, f->key, f->klen);
        switch (f->kind) {
        case K_U8:
            mp_write_uint(b, *CAT(m, f, uint8_t));
            break;
        case K_U16:
            mp_write_uint(b, *CAT(m, f, uint16_t));
            break;
        case K_U32:
            mp_write_uint(b, *CAT(m, f, uint32_t));
            break;
        case K_I64:
            mp_write_int(b, *CAT(m, f, int64_t));
            break;
        case K_BOOL:
            mp_write_bool(b, *CAT(m, f, bool));
            break;
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

static int get_value(struct mp_reader *r, const struct wire_field *f, void *m,
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
        uint64_t max = f->kind == K_U8    ? 0xff
                       : f->kind == K_U16 ? 0xffff
                                          : 0xffffffffu;
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

static bool key_is(const struct wire_field *f, const uint8_t *k, uint32_t n)
{
    return f->klen == n && memcmp(f->key, k, n) == 0;
}

/* The field named k. Go writes the fields in the order of the table, so
 * the i-th key is tried against the i-th field first. */
static const struct wire_field *find_field(const struct wire_schema *s,
                                           unsigned hint, const uint8_t *k,
                                           uint32_t n)
{
    if (hint < s->n && key_is(&s->fields[hint], k, n))
        return &s->fields[hint];
    for (unsigned i = 0; i < s->n; i++)
        if (key_is(&s->fields[i], k, n))
            return &s->fields[i];
    return NULL;
}

int wire_get_struct(struct mp_reader *r, const struct wire_schema *s, void *m,
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
            const struct wire_field *f = NULL;
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
        const struct wire_field *f = find_field(s, i, k, kn);
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
