/* lua/mod_codec.c: hearsay.core's codec: wire messages <-> Lua tables,
 * LZW and CRC-32, for specs that build or read packets by hand.
 *
 * Conventions (luv's): a wrong argument type raises; a runtime failure
 * returns nil, message, code. Byte strings are Lua strings. */
#include "lua/mod_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "codec/lzw.h"
#include "codec/wire.h"

static int fail(lua_State *L, int rc, const char *why)
{
    return lnode_fail(L, rc, why);
}

/* ===== Codec: wire structs <-> Lua tables =====
 * A message's fields are its schema's (wire_schema()), under their wire
 * keys; the framing types and what follows a map are handled here. */

static void set_raw(lua_State *L, const char *k, struct wire_raw r)
{
    if (!r.set)
        return;
    lua_pushlstring(L, (const char *)r.p, r.n);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* Read fields from the table at `t`. Strings stay valid while the table
 * is on the stack. */
static struct wire_raw get_raw(lua_State *L, int t, const char *k)
{
    struct wire_raw r = {0};
    if (lua_getfield(L, t, k) == LUA_TSTRING) {
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);
        r = wire_raw(p, n);
    }
    lua_pop(L, 1);
    return r;
}

static lua_Integer get_int(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static bool get_bool(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The fields of the body m as the schema lists them, into the table on
 * top of the stack, under their wire keys (a carried message is shown by
 * the caller instead). */
static void set_fields(lua_State *L, const struct wire_schema *s, const void *m)
{
    for (unsigned i = 0; i < s->n; i++) {
        const struct wire_field *f = &s->fields[i];
        if (f->flags & WIRE_F_INNER)
            continue;
        if (f->kind == WIRE_K_STR || f->kind == WIRE_K_RAW)
            set_raw(L, f->key, wire_field_raw(f, m));
        else if (f->kind == WIRE_K_BOOL)
            set_bool(L, f->key, wire_field_int(f, m) != 0);
        else
            set_int(L, f->key, wire_field_int(f, m));
    }
}

/* The body m (zeroed) from the fields of the table at `t`. Lengths of
 * what follows and carried messages are the caller's. */
static void get_fields(lua_State *L, int t, const struct wire_schema *s,
                       void *m)
{
    memset(m, 0, s->size);
    for (unsigned i = 0; i < s->n; i++) {
        const struct wire_field *f = &s->fields[i];
        if (f->flags & (WIRE_F_LENGTH | WIRE_F_INNER))
            continue;
        if (f->kind == WIRE_K_STR || f->kind == WIRE_K_RAW)
            wire_field_set_raw(f, m, get_raw(L, t, f->key));
        else if (f->kind == WIRE_K_BOOL)
            wire_field_set_int(f, m, get_bool(L, t, f->key));
        else
            wire_field_set_int(f, m, get_int(L, t, f->key));
    }
}

/* Decode a body by its schema; its fields go to the table on top of the
 * stack. */
static int read_fields(lua_State *L, int schema, struct mp_reader *r,
                       union wire_body *m, struct wire_scratch *sc,
                       const char **why)
{
    const struct wire_schema *s = wire_schema(schema);
    int rc = wire_get_struct(r, s, m, sc, why);
    if (rc == 0)
        set_fields(L, s, m);
    return rc;
}

static void push_body(lua_State *L, uint8_t type, const uint8_t *p, size_t n,
                      bool stream);

/* Decode one message (type byte first) into a new table on the stack. */
static void push_message(lua_State *L, const uint8_t *p, size_t n, bool stream)
{
    if (n == 0) {
        lua_newtable(L);
        lua_pushstring(L, "empty");
        lua_setfield(L, -2, "error");
        return;
    }
    push_body(L, p[0], p + 1, n - 1, stream);
}

static void push_error(lua_State *L, int rc, const char *why)
{
    lua_pushstring(L, why ? why : hs_strerror(rc));
    lua_setfield(L, -2, "error");
}

static void push_body(lua_State *L, uint8_t type, const uint8_t *p, size_t n,
                      bool stream)
{
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *why = NULL;
    int rc = 0;
    mp_reader_init(&r, p, n);
    lua_newtable(L);
    lua_pushstring(L, wire_type_name(type));
    lua_setfield(L, -2, "type");
    union wire_body m;
    switch (type) {
    case WIRE_COMPOUND: {
        struct wire_part parts[WIRE_COMPOUND_MAX];
        size_t np, trunc;
        if ((rc = wire_split_compound(p, n, parts, &np, &trunc))) {
            why = "compound length table cut short";
            break;
        }
        lua_createtable(L, (int)np, 0);
        for (size_t i = 0; i < np; i++) {
            push_message(L, parts[i].p, parts[i].n, false);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "parts");
        if (trunc) {
            set_int(L, "truncated", (lua_Integer)trunc);
            rc = HS_ETRUNC;
            why = "compound parts cut short";
        }
        break;
    }
    case WIRE_COMPRESS: {
        struct buf out = BUF_INIT;
        rc = read_fields(L, type, &r, &m, &sc, &why);
        r.off = 0;
        if (rc == 0 &&
            (rc = wire_decompress(p, n, 64u << 20, &out, &why)) == 0) {
            push_message(L, out.data, out.len, stream);
            lua_setfield(L, -2, "message");
        }
        buf_free(&out);
        break;
    }
    case WIRE_HASCRC: {
        if (n < 4) {
            rc = HS_ETRUNC;
            break;
        }
        set_int(L, "crc", hs_be32(p));
        bool ok = wire_crc32(p + 4, n - 4) == hs_be32(p);
        set_bool(L, "crc_ok", ok);
        push_message(L, p + 4, n - 4, false);
        lua_setfield(L, -2, "message");
        break;
    }
    case WIRE_USER:
        if (stream) {
            if ((rc = read_fields(L, type, &r, &m, &sc, &why)))
                break;
            lua_pushlstring(L, (const char *)p + r.off, n - r.off);
        } else {
            lua_pushlstring(L, (const char *)p, n);
        }
        lua_setfield(L, -2, "payload");
        break;
    case WIRE_PUSHPULL: {
        if ((rc = read_fields(L, type, &r, &m, &sc, &why)))
            break;
        struct wire_pushpull_header h = m.pushpull;
        if (h.nodes < 0 || (uint64_t)h.nodes > mp_left(&r)) {
            rc = HS_ETOOBIG;
            why = "node count larger than the message";
            break;
        }
        lua_createtable(L, (int)h.nodes, 0);
        const struct wire_schema *nss = wire_schema(WIRE_SCHEMA_NODE_STATE);
        for (int64_t i = 0; i < h.nodes; i++) {
            if ((rc = wire_get_struct(&r, nss, &m, &sc, &why)))
                break;
            lua_newtable(L);
            set_fields(L, nss, &m);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "states");
        if (rc)
            break;
        if (h.user_state_len < 0 || (uint64_t)h.user_state_len > mp_left(&r)) {
            rc = HS_ETRUNC;
            why = "user state cut short";
            break;
        }
        lua_pushlstring(L, (const char *)p + r.off, (size_t)h.user_state_len);
        lua_setfield(L, -2, "user_state");
        r.off += (size_t)h.user_state_len;
        break;
    }
    default:
        if (wire_schema(type) != NULL) {
            rc = read_fields(L, type, &r, &m, &sc, &why);
            break;
        }
        set_int(L, "code", type);
        lua_pushlstring(L, (const char *)p, n);
        lua_setfield(L, -2, "body");
        return;
    }
    if (rc)
        push_error(L, rc, why);
    else if (type != WIRE_COMPOUND && type != WIRE_HASCRC &&
             type != WIRE_USER && r.off < n && type != WIRE_COMPRESS) {
        lua_pushlstring(L, (const char *)p + r.off, n - r.off);
        lua_setfield(L, -2, "trailing");
    }
}

/* core.decode(bytes [, "packet"|"stream"]) -> table */
static int l_decode(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    static const char *const modes[] = {"packet", "stream", NULL};
    bool stream = luaL_checkoption(L, 2, "packet", modes) == 1;
    push_message(L, p, n, stream);
    return 1;
}

static int encode_table(lua_State *L, int t, struct buf *b, bool stream);

static int encode_type(lua_State *L, int t)
{
    lua_getfield(L, t, "type");
    const char *name = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (name == NULL)
        return luaL_error(L, "message table without a type");
    for (int i = 0; i < WIRE_TYPE_COUNT; i++)
        if (!strcmp(name, wire_type_name(i)))
            return i;
    return luaL_error(L, "unknown message type '%s'", name);
}

static int encode_table(lua_State *L, int t, struct buf *b, bool stream)
{
    t = lua_absindex(L, t);
    luaL_checktype(L, t, LUA_TTABLE);
    int type = encode_type(L, t);
    switch (type) {
    case WIRE_COMPOUND: {
        lua_getfield(L, t, "parts");
        int pt = lua_gettop(L);
        luaL_checktype(L, pt, LUA_TTABLE);
        size_t np = (size_t)luaL_len(L, pt);
        if (np == 0 || np > WIRE_COMPOUND_MAX)
            return luaL_error(L, "a compound needs 1 to 255 parts");
        struct buf all = BUF_INIT;
        size_t lens[WIRE_COMPOUND_MAX];
        for (size_t i = 0; i < np; i++) {
            size_t before = all.len;
            lua_rawgeti(L, pt, (lua_Integer)i + 1);
            encode_table(L, -1, &all, false);
            lua_pop(L, 1);
            lens[i] = all.len - before;
        }
        struct wire_part parts[WIRE_COMPOUND_MAX];
        size_t off = 0;
        for (size_t i = 0; i < np; i++) {
            parts[i].p = all.data + off;
            parts[i].n = lens[i];
            off += lens[i];
        }
        wire_put_compound(b, parts, np);
        buf_free(&all);
        lua_pop(L, 1);
        break;
    }
    case WIRE_COMPRESS:
    case WIRE_HASCRC: {
        struct buf inner = BUF_INIT;
        lua_getfield(L, t, "message");
        encode_table(L, -1, &inner, stream && type == WIRE_COMPRESS);
        lua_pop(L, 1);
        if (type == WIRE_COMPRESS) {
            wire_put_compress(b, inner.data, inner.len);
        } else {
            size_t start = b->len;
            buf_append(b, inner.data, inner.len);
            wire_add_crc(b, start);
        }
        buf_free(&inner);
        break;
    }
    case WIRE_USER: {
        struct wire_raw payload = get_raw(L, t, "payload");
        if (stream)
            wire_put_user_header(b, (int64_t)payload.n);
        else
            buf_putc(b, WIRE_USER);
        buf_append(b, payload.p, payload.n);
        break;
    }
    case WIRE_PUSHPULL: {
        struct wire_raw user = get_raw(L, t, "user_state");
        lua_getfield(L, t, "states");
        int st = lua_gettop(L);
        size_t ns = lua_istable(L, st) ? (size_t)luaL_len(L, st) : 0;
        union wire_body m;
        get_fields(L, t, wire_schema(type), &m);
        m.pushpull.nodes = (int64_t)ns;
        m.pushpull.user_state_len = (int64_t)user.n;
        wire_put_body(b, type, &m);
        const struct wire_schema *nss = wire_schema(WIRE_SCHEMA_NODE_STATE);
        for (size_t i = 0; i < ns; i++) {
            lua_rawgeti(L, st, (lua_Integer)i + 1);
            get_fields(L, lua_gettop(L), nss, &m);
            wire_put_struct(b, nss, &m);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        buf_append(b, user.p, user.n);
        break;
    }
    default: {
        const struct wire_schema *s = wire_schema(type);
        if (s == NULL)
            return luaL_error(L, "cannot encode a %s message",
                              wire_type_name(type));
        union wire_body m;
        get_fields(L, t, s, &m);
        wire_put_body(b, type, &m);
    }
    }
    return 0;
}

/* core.encode(table [, "packet"|"stream"]) -> bytes */
static int l_encode(lua_State *L)
{
    static const char *const modes[] = {"packet", "stream", NULL};
    bool stream = luaL_checkoption(L, 2, "packet", modes) == 1;
    struct buf b = BUF_INIT;
    encode_table(L, 1, &b, stream);
    if (b.err) {
        buf_free(&b);
        return fail(L, HS_ENOMEM, NULL);
    }
    lua_pushlstring(L, (const char *)b.data, b.len);
    buf_free(&b);
    return 1;
}

static int l_lzw_compress(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    struct buf b = BUF_INIT;
    int rc = lzw_encode(p, n, &b);
    if (rc == 0)
        lua_pushlstring(L, (const char *)b.data, b.len);
    buf_free(&b);
    return rc ? fail(L, rc, NULL) : 1;
}

static int l_lzw_decompress(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    lua_Integer max = luaL_optinteger(L, 2, 64 << 20);
    luaL_argcheck(L, max >= 0, 2, "must not be negative");
    struct buf b = BUF_INIT;
    int rc = lzw_decode(p, n, (size_t)max, &b);
    if (rc == 0)
        lua_pushlstring(L, (const char *)b.data, b.len);
    buf_free(&b);
    return rc ? fail(L, rc, NULL) : 1;
}

static int l_crc32(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    lua_pushinteger(L, wire_crc32(p, n));
    return 1;
}

static const luaL_Reg codec_funcs[] = {{"decode", l_decode},
                                       {"encode", l_encode},
                                       {"lzw_compress", l_lzw_compress},
                                       {"lzw_decompress", l_lzw_decompress},
                                       {"crc32", l_crc32},
                                       {NULL, NULL}};

void lmod_open_codec(lua_State *L)
{
    luaL_setfuncs(L, codec_funcs, 0);
}
