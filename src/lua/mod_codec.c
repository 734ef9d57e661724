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

/* ===== Codec: wire structs <-> Lua tables ===== */

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

static void push_body(lua_State *L, uint8_t type, const uint8_t *p,
                      size_t n, bool stream);

/* Decode one message (type byte first) into a new table on the stack. */
static void push_message(lua_State *L, const uint8_t *p, size_t n,
                         bool stream)
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

static void push_body(lua_State *L, uint8_t type, const uint8_t *p,
                      size_t n, bool stream)
{
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *why = NULL;
    int rc = 0;
    mp_reader_init(&r, p, n);
    lua_newtable(L);
    lua_pushstring(L, wire_type_name(type));
    lua_setfield(L, -2, "type");
    switch (type) {
    case WIRE_PING: {
        struct wire_ping m;
        if ((rc = wire_get_ping(&r, &m, &sc, &why)))
            break;
        set_raw(L, "Node", m.node);
        set_int(L, "SeqNo", m.seq);
        set_raw(L, "SourceAddr", m.source_addr);
        set_raw(L, "SourceNode", m.source_node);
        set_int(L, "SourcePort", m.source_port);
        break;
    }
    case WIRE_INDIRECT_PING: {
        struct wire_indirect_ping m;
        if ((rc = wire_get_indirect_ping(&r, &m, &sc, &why)))
            break;
        set_bool(L, "Nack", m.nack);
        set_raw(L, "Node", m.node);
        set_int(L, "Port", m.port);
        set_int(L, "SeqNo", m.seq);
        set_raw(L, "SourceAddr", m.source_addr);
        set_raw(L, "SourceNode", m.source_node);
        set_int(L, "SourcePort", m.source_port);
        set_raw(L, "Target", m.target);
        break;
    }
    case WIRE_ACK: {
        struct wire_ack m;
        if ((rc = wire_get_ack(&r, &m, &sc, &why)))
            break;
        set_raw(L, "Payload", m.payload);
        set_int(L, "SeqNo", m.seq);
        break;
    }
    case WIRE_NACK: {
        struct wire_nack m;
        if ((rc = wire_get_nack(&r, &m, &sc, &why)))
            break;
        set_int(L, "SeqNo", m.seq);
        break;
    }
    case WIRE_ERR: {
        struct wire_err m;
        if ((rc = wire_get_err(&r, &m, &sc, &why)))
            break;
        set_raw(L, "Error", m.error);
        break;
    }
    case WIRE_SUSPECT:
    case WIRE_DEAD: {
        struct wire_suspect m;
        if ((rc = wire_get_suspect(&r, &m, &sc, &why)))
            break;
        set_raw(L, "From", m.from);
        set_int(L, "Incarnation", m.incarnation);
        set_raw(L, "Node", m.node);
        break;
    }
    case WIRE_ALIVE: {
        struct wire_alive m;
        if ((rc = wire_get_alive(&r, &m, &sc, &why)))
            break;
        set_raw(L, "Addr", m.addr);
        set_int(L, "Incarnation", m.incarnation);
        set_raw(L, "Meta", m.meta);
        set_raw(L, "Node", m.node);
        set_int(L, "Port", m.port);
        set_raw(L, "Vsn", m.vsn);
        break;
    }
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
        struct wire_compress c;
        if ((rc = wire_get_compress(&r, &c, &sc, &why)) == 0)
            set_int(L, "Algo", c.algo);
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
            struct wire_user_header h;
            if ((rc = wire_get_user_header(&r, &h, &sc, &why)))
                break;
            set_int(L, "UserMsgLen", h.len);
            lua_pushlstring(L, (const char *)p + r.off, n - r.off);
        } else {
            lua_pushlstring(L, (const char *)p, n);
        }
        lua_setfield(L, -2, "payload");
        break;
    case WIRE_PUSHPULL: {
        struct wire_pushpull_header h;
        if ((rc = wire_get_pushpull_header(&r, &h, &sc, &why)))
            break;
        set_bool(L, "Join", h.join);
        set_int(L, "Nodes", h.nodes);
        set_int(L, "UserStateLen", h.user_state_len);
        if (h.nodes < 0 || (uint64_t)h.nodes > mp_left(&r)) {
            rc = HS_ETOOBIG;
            why = "node count larger than the message";
            break;
        }
        lua_createtable(L, (int)h.nodes, 0);
        for (int64_t i = 0; i < h.nodes; i++) {
            struct wire_node_state ns;
            if ((rc = wire_get_node_state(&r, &ns, &sc, &why)))
                break;
            lua_newtable(L);
            set_raw(L, "Addr", ns.addr);
            set_int(L, "Incarnation", ns.incarnation);
            set_raw(L, "Meta", ns.meta);
            set_raw(L, "Name", ns.name);
            set_int(L, "Port", ns.port);
            set_int(L, "State", ns.state);
            set_raw(L, "Vsn", ns.vsn);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "states");
        if (rc)
            break;
        if (h.user_state_len < 0 ||
            (uint64_t)h.user_state_len > mp_left(&r)) {
            rc = HS_ETRUNC;
            why = "user state cut short";
            break;
        }
        lua_pushlstring(L, (const char *)p + r.off,
                        (size_t)h.user_state_len);
        lua_setfield(L, -2, "user_state");
        r.off += (size_t)h.user_state_len;
        break;
    }
    default:
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
    case WIRE_PING: {
        struct wire_ping m = {(uint32_t)get_int(L, t, "SeqNo"),
                              get_raw(L, t, "Node"),
                              get_raw(L, t, "SourceAddr"),
                              (uint16_t)get_int(L, t, "SourcePort"),
                              get_raw(L, t, "SourceNode")};
        wire_put_ping(b, &m);
        break;
    }
    case WIRE_INDIRECT_PING: {
        struct wire_indirect_ping m = {
            (uint32_t)get_int(L, t, "SeqNo"), get_raw(L, t, "Target"),
            (uint16_t)get_int(L, t, "Port"), get_raw(L, t, "Node"),
            get_bool(L, t, "Nack"), get_raw(L, t, "SourceAddr"),
            (uint16_t)get_int(L, t, "SourcePort"),
            get_raw(L, t, "SourceNode")};
        wire_put_indirect_ping(b, &m);
        break;
    }
    case WIRE_ACK: {
        struct wire_ack m = {(uint32_t)get_int(L, t, "SeqNo"),
                             get_raw(L, t, "Payload")};
        wire_put_ack(b, &m);
        break;
    }
    case WIRE_NACK: {
        struct wire_nack m = {(uint32_t)get_int(L, t, "SeqNo")};
        wire_put_nack(b, &m);
        break;
    }
    case WIRE_ERR: {
        struct wire_err m = {get_raw(L, t, "Error")};
        wire_put_err(b, &m);
        break;
    }
    case WIRE_SUSPECT:
    case WIRE_DEAD: {
        struct wire_suspect m = {(uint32_t)get_int(L, t, "Incarnation"),
                                 get_raw(L, t, "Node"),
                                 get_raw(L, t, "From")};
        if (type == WIRE_SUSPECT)
            wire_put_suspect(b, &m);
        else
            wire_put_dead(b, &m);
        break;
    }
    case WIRE_ALIVE: {
        struct wire_alive m = {(uint32_t)get_int(L, t, "Incarnation"),
                               get_raw(L, t, "Node"), get_raw(L, t, "Addr"),
                               (uint16_t)get_int(L, t, "Port"),
                               get_raw(L, t, "Meta"), get_raw(L, t, "Vsn")};
        wire_put_alive(b, &m);
        break;
    }
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
        struct wire_pushpull_header h = {(int64_t)ns, (int64_t)user.n,
                                         get_bool(L, t, "Join")};
        wire_put_pushpull_header(b, &h);
        for (size_t i = 0; i < ns; i++) {
            lua_rawgeti(L, st, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            struct wire_node_state s = {
                get_raw(L, e, "Name"), get_raw(L, e, "Addr"),
                (uint16_t)get_int(L, e, "Port"), get_raw(L, e, "Meta"),
                (uint32_t)get_int(L, e, "Incarnation"),
                get_int(L, e, "State"), get_raw(L, e, "Vsn")};
            wire_put_node_state(b, &s);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        buf_append(b, user.p, user.n);
        break;
    }
    default:
        return luaL_error(L, "cannot encode a %s message",
                          wire_type_name(type));
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

static const luaL_Reg codec_funcs[] = {
    {"decode", l_decode},
    {"encode", l_encode},
    {"lzw_compress", l_lzw_compress},
    {"lzw_decompress", l_lzw_decompress},
    {"crc32", l_crc32},
    {NULL, NULL}};

void lmod_open_codec(lua_State *L)
{
    luaL_setfuncs(L, codec_funcs, 0);
}
