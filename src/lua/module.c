/* lua/module.c: the `hearsay.core` Lua module: the C core for busted specs
 * and users' own tests (codec, protocol math, configuration, simulation).
 *
 * Conventions (luv's): a wrong argument type raises; a runtime failure
 * returns nil, message, code. Byte strings are Lua strings. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/broadcast.h"
#include "agent/join.h"
#include "lua/host.h"
#include "lua/module.h"
#include "lua/lnode.h"
#include "codec/lzw.h"
#include "core/metadata.h"
#include "core/node.h"
#include "io/sim.h"
#include "core/suspicion.h"
#include "io/transport.h"
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

/* ===== Protocol math ===== */

static int l_suspicion_timeout(lua_State *L)
{
    lua_Integer mult = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
    lua_Integer interval = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0, 2, "must not be negative");
    lua_pushinteger(L, (lua_Integer)suspicion_timeout(
                           (int)mult, (size_t)n, (uint64_t)interval));
    return 1;
}

static int l_suspicion_remaining(lua_State *L)
{
    lua_pushinteger(L, suspicion_remaining(
                           (int)luaL_checkinteger(L, 1),
                           (int)luaL_checkinteger(L, 2),
                           (uint64_t)luaL_checkinteger(L, 3),
                           (uint64_t)luaL_checkinteger(L, 4),
                           (uint64_t)luaL_checkinteger(L, 5)));
    return 1;
}

static int l_retransmit_limit(lua_State *L)
{
    lua_pushinteger(L, retransmit_limit((int)luaL_checkinteger(L, 1),
                                        (size_t)luaL_checkinteger(L, 2)));
    return 1;
}

static int l_pushpull_scale(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)pushpull_scale(
                           (uint64_t)luaL_checkinteger(L, 1),
                           (size_t)luaL_checkinteger(L, 2)));
    return 1;
}

/* ===== Configuration ===== */

/* Build a config from a profile and a table of key = value overrides.
 * Raises with the config's own sentence on a bad key or value. */
static void check_config(lua_State *L, int idx, struct config *c)
{
    const char *profile = "lan";
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "profile");
        if (lua_isstring(L, -1))
            profile = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    if (config_defaults(c, profile))
        luaL_error(L, "profile: \"%s\" is not one of lan, wan, local",
                   profile);
    if (!lua_istable(L, idx))
        return;
    char err[256];
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 1);
            continue;
        }
        const char *k = lua_tostring(L, -2);
        if (!strcmp(k, "profile") || !strcmp(k, "hooks") ||
            !strcmp(k, "env") ||
            !strcmp(k, "seed")) {
            lua_pop(L, 1);
            continue;
        }
        int rc = 0;
        if (lua_istable(L, -1)) {
            config_set(c, k, "", err, sizeof err);
            lua_Integer len = luaL_len(L, -1);
            for (lua_Integer i = 1; i <= len && rc == 0; i++) {
                lua_rawgeti(L, -1, i);
                rc = config_set(c, k, luaL_tolstring(L, -1, NULL), err,
                                sizeof err);
                lua_pop(L, 2);
            }
        } else {
            rc = config_set(c, k, luaL_tolstring(L, -1, NULL), err,
                            sizeof err);
            lua_pop(L, 1);
        }
        if (rc) {
            config_free(c);
            luaL_error(L, "%s", err);
        }
        lua_pop(L, 1);
    }
}

/* core.config([overrides]) -> table of every key in text form */
static int l_config(lua_State *L)
{
    struct config c;
    check_config(L, 1, &c);
    lua_newtable(L);
    char v[1024];
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key_info *k = config_key(i);
        config_get(&c, k->name, v, sizeof v);
        lua_pushstring(L, v);
        lua_setfield(L, -2, k->name);
    }
    config_free(&c);
    return 1;
}

/* core.config_keys() -> array of {name, alias, memberlist, kind, doc} */
static int l_config_keys(lua_State *L)
{
    static const char *kinds[] = {"string", "address", "integer",
                                  "duration", "size", "boolean", "list",
                                  "enum"};
    lua_createtable(L, (int)config_key_count(), 0);
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key_info *k = config_key(i);
        lua_createtable(L, 0, 5);
        lua_pushstring(L, k->name);
        lua_setfield(L, -2, "name");
        if (k->alias) {
            lua_pushstring(L, k->alias);
            lua_setfield(L, -2, "alias");
        }
        if (k->memberlist) {
            lua_pushstring(L, k->memberlist);
            lua_setfield(L, -2, "memberlist");
        }
        lua_pushstring(L, kinds[k->kind]);
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, k->doc);
        lua_setfield(L, -2, "doc");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* core.hook_names() -> the names a hook table may use, in the docs' order */
static int l_hook_names(lua_State *L)
{
    lua_newtable(L);
    for (int i = 0; lnode_hook_names[i]; i++) {
        lua_pushstring(L, lnode_hook_names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* A hook script may require modules beside it, as in an agent; here the
 * process is the test's, so rather than change package.path for
 * everyone, the script gets a require of its own that looks in its
 * directory first (modules stay shared through package.loaded). */
static const char SCOPED_REQUIRE[] =
    "local dir, base, loadtext = ...\n"
    "return function(name)\n"
    "  local got = package.loaded[name]\n"
    "  if got ~= nil then return got end\n"
    "  local path = package.searchpath(name, dir .. '/?.lua')\n"
    "  if not path and not package.preload[name] then\n"
    "    path = package.searchpath(name, package.path)\n"
    "  end\n"
    "  if not path then return base(name) end\n"
    "  local f, err = loadtext(path)\n"
    "  if not f then\n"
    "    error(string.format(\"error loading module '%s' from file \"\n"
    "      .. \"'%s':\\n\\t%s\", name, path, err), 2)\n"
    "  end\n"
    "  local r = f(name, path)\n"
    "  if r == nil then r = package.loaded[name] or true end\n"
    "  package.loaded[name] = r\n"
    "  return r, path\n"
    "end\n";

/* loadtext(path) -> the chunk, or nil and "path: message": source text
 * only, from regular files only (lnode_loadfile). */
static int l_loadtext(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (lnode_loadfile(L, path, true) == LUA_OK)
        return 1;
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

/* Push the require a script at `path` gets (or the global one): Lua
 * modules load as text, like an agent's; C modules and preloads through
 * the test's own require. */
static void push_scoped_require(lua_State *L, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (luaL_loadstring(L, SCOPED_REQUIRE) != LUA_OK) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        return;
    }
    if (slash)
        lua_pushlstring(L, path, (size_t)(slash - path));
    else
        lua_pushliteral(L, ".");
    lua_getglobal(L, "require");
    lua_pushcfunction(L, l_loadtext);
    lua_call(L, 3, 1);
}

/* E[name] = a copy of the global table `name`, for the sandbox's own
 * functions to go in. */
static void copy_global_table(lua_State *L, const char *name)
{
    lua_newtable(L);
    if (lua_getglobal(L, name) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        }
    }
    lua_pop(L, 1);
}

/* Hook tables from opts.hooks: one table of hook functions, or a list of
 * them. Appends them to the array at `arr`. */
static void add_hook_tables(lua_State *L, int opts, int arr)
{
    char err[512];
    lua_getfield(L, opts, "hooks");
    int h = lua_gettop(L);
    if (lua_isnil(L, h)) {
        lua_pop(L, 1);
        return;
    }
    luaL_argcheck(L, lua_istable(L, h), 1, "hooks must be a table");
    lua_rawgeti(L, h, 1);
    bool list = lua_istable(L, -1);
    lua_pop(L, 1);
    lua_Integer n = list ? (lua_Integer)lua_rawlen(L, h) : 1;
    for (lua_Integer i = 1; i <= n; i++) {
        if (list)
            lua_rawgeti(L, h, i);
        else
            lua_pushvalue(L, h);
        if (!lua_istable(L, -1) ||
            lnode_check_hooks(L, -1, "hooks", err, sizeof err))
            luaL_error(L, "%s", lua_istable(L, -1) ? err
                                                 : "hooks: not a table");
        lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
    }
    lua_pop(L, 1);
}

/* ===== Simulation =====
 * core.sim{...} wraps a struct sim. Every simulated node has an lnode on
 * the Lua state that drives the simulation, so hook scripts run in it as
 * in an agent, and sim:node(i) is a hearsay.node with the same API. */

#define SIM_MT "hearsay.sim"

struct lsim;

/* A simulated node as Lua sees it. */
struct simnode {
    struct lnode ln;
    struct lsim *ls;
    size_t idx;
    int hooks_ref; /* array of hook tables given to add, or LUA_NOREF */
    int env_ref;   /* the node's environment variables, or LUA_NOREF */
    char err[512]; /* why a script did not load at the last boot */
};

struct lsim {
    struct sim *sim;
    lua_State *L;   /* the thread that called into the simulation last */
    int trace_ref;  /* table collecting log lines, or LUA_NOREF */
    int events_ref; /* table collecting membership events, or LUA_NOREF */
    bool print;     /* print log lines to stderr */
    struct simnode **nodes; /* by index, as the simulation's */
    size_t nnodes, cap;
};

/* Record {t, node, event, member, incarnation}. */
static void sim_event(void *ud, size_t idx, int event, const struct member *m)
{
    struct lsim *ls = ud;
    if (ls->events_ref == LUA_NOREF)
        return;
    lua_State *L = ls->L;
    if (!lua_checkstack(L, 4))
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->events_ref);
    lua_createtable(L, 0, 5);
    set_int(L, "t", (lua_Integer)sim_now(ls->sim));
    lua_pushstring(L, sim_name(ls->sim, idx));
    lua_setfield(L, -2, "node");
    lua_pushstring(L, hook_event_name(event));
    lua_setfield(L, -2, "event");
    lua_pushlstring(L, m->name, m->name_len);
    lua_setfield(L, -2, "member");
    set_int(L, "incarnation", m->incarnation);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 1);
}

static void sim_sink(void *ud, const char *node, uint64_t now, int level,
                     const char *msg)
{
    struct lsim *ls = ud;
    char line[1200];
    snprintf(line, sizeof line, "%10.3f %s [%s] %s", (double)now / 1000.0,
             node, hs_log_level_name(level), msg);
    if (ls->print)
        fprintf(stderr, "%s\n", line);
    if (ls->trace_ref != LUA_NOREF) {
        lua_State *L = ls->L;
        if (!lua_checkstack(L, 2))
            return;
        lua_rawgeti(L, LUA_REGISTRYINDEX, ls->trace_ref);
        lua_pushstring(L, line);
        lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
        lua_pop(L, 1);
    }
}

/* hearsay.join from a simulated node: node names or ip:port. */
static int simnode_join(struct lnode *ln, const char *const *addrs, size_t n,
                        node_join_cb cb, void *ud)
{
    struct simnode *sn = ln->owner;
    struct sim *sim = sn->ls->sim;
    struct hs_addr hs[64];
    if (n > 64)
        return HS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        long idx = sim_find(sim, addrs[i]);
        if (idx >= 0)
            hs[i] = sim_addr(sim, (size_t)idx);
        else if (addr_parse(addrs[i], 7946, &hs[i]))
            return HS_EADDR;
    }
    return node_join(ln->nd, hs, NULL, n, cb, ud);
}

static const struct lnode_ops simnode_ops = {simnode_join, NULL};

/* os.getenv for a simulated node's scripts: its own variables first. */
static int sim_getenv(lua_State *L)
{
    const char *k = luaL_checkstring(L, 1);
    lua_getfield(L, lua_upvalueindex(1), k);
    if (lua_isstring(L, -1))
        return 1;
    const char *v = getenv(k);
    if (v == NULL)
        luaL_pushfail(L);
    else
        lua_pushstring(L, v);
    return 1;
}

/* The globals a script at `path` sees: the test's, with a require of its
 * own (see push_scoped_require) and, for a simulated node with env vars
 * (env_ref), an os whose getenv answers from them first. */
static void push_script_env(lua_State *L, const char *path, int env_ref)
{
    lua_newtable(L);                      /* E */
    lua_createtable(L, 0, 1);             /* E's metatable */
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    push_scoped_require(L, path);
    lua_setfield(L, -2, "require");
    /* What the agent's sandbox has too: no finalizers, coroutines under
     * the call's budget, files that cannot block. */
    lua_pushcfunction(L, lnode_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, lnode_xpcall);
    lua_setfield(L, -2, "xpcall");
    copy_global_table(L, "coroutine");
    lnode_guard_coroutines(L, -1);
    lua_setfield(L, -2, "coroutine");
    copy_global_table(L, "io");
    lua_host_guard_io(L, -1);
    lua_setfield(L, -2, "io");
    if (env_ref == LUA_NOREF)
        return;
    lua_createtable(L, 0, 1);             /* E.os */
    lua_rawgeti(L, LUA_REGISTRYINDEX, env_ref);
    lua_pushcclosure(L, sim_getenv, 1);
    lua_setfield(L, -2, "getenv");
    lua_createtable(L, 0, 1);
    lua_getglobal(L, "os");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "os");
}

/* The hook tables given to add, then the scripts loaded afresh. */
static void simnode_scripts(struct simnode *sn, struct node *nd)
{
    lua_State *L = sn->ls->L;
    const struct config *cfg = node_config(nd);
    sn->err[0] = '\0';
    if (sn->hooks_ref == LUA_NOREF && cfg->scripts.n == 0)
        return;
    if (!lua_checkstack(L, 8)) {
        snprintf(sn->err, sizeof sn->err, "out of Lua stack");
        return;
    }
    lua_newtable(L);
    int arr = lua_gettop(L);
    if (sn->hooks_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, sn->hooks_ref);
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            lua_rawseti(L, arr, i);
        }
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < cfg->scripts.n; i++) {
        push_script_env(L, cfg->scripts.v[i], sn->env_ref);
        if (lnode_load_script(&sn->ln, L, cfg->scripts.v[i], -1, sn->err,
                              sizeof sn->err) == 0)
            lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
        lua_pop(L, 1); /* the environment */
        if (sn->err[0]) {
            HS_ERROR(sn->ln.log, "script not loaded: %s", sn->err);
            break;
        }
    }
    lnode_set_scripts(&sn->ln, arr);
    struct hooks h = lnode_hooks(&sn->ln);
    node_set_hooks(nd, &h);
}

/* A node comes up (add, restart) or goes (kill, restart, close). */
static void sim_life(void *ud, size_t idx, struct node *nd, bool up)
{
    struct lsim *ls = ud;
    if (idx >= ls->nnodes || ls->nodes[idx] == NULL)
        return;
    struct simnode *sn = ls->nodes[idx];
    if (!up) {
        lnode_detach(&sn->ln);
        return;
    }
    sn->ln.L = ls->L;
    sn->ln.nd = nd;
    sn->ln.log = sim_logger(ls->sim, idx);
    sn->ln.budget = node_config(nd)->script_budget;
    simnode_scripts(sn, nd);
}

/* Every call into the simulation may run hooks: they run on the calling
 * thread (a coroutine that called before may be dead by now). */
static struct lsim *check_sim(lua_State *L, int i)
{
    struct lsim *ls = luaL_checkudata(L, i, SIM_MT);
    luaL_argcheck(L, ls->sim != NULL, i, "simulation is closed");
    if (ls->L != L) {
        ls->L = L;
        for (size_t k = 0; k < ls->nnodes; k++)
            if (ls->nodes[k])
                ls->nodes[k]->ln.L = L;
    }
    return ls;
}

/* core.sim{seed=, log="info", print=false, trace=false, events=false,
 *          backlog=4096} */
static int l_sim_new(lua_State *L)
{
    lua_Integer seed = 1, backlog = -1;
    int level = HS_LOG_INFO;
    bool print = false, trace = false, events = false;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "seed");
        seed = luaL_optinteger(L, -1, 1);
        lua_getfield(L, 1, "log");
        if (lua_isstring(L, -1)) {
            level = hs_log_level_parse(lua_tostring(L, -1));
            luaL_argcheck(L, level >= 0, 1, "log: unknown level");
        }
        lua_getfield(L, 1, "print");
        print = lua_toboolean(L, -1);
        lua_getfield(L, 1, "trace");
        trace = lua_toboolean(L, -1);
        lua_getfield(L, 1, "events");
        events = lua_toboolean(L, -1);
        lua_getfield(L, 1, "backlog");
        if (!lua_isnil(L, -1)) {
            backlog = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
            luaL_argcheck(L, backlog >= 0 && backlog <= 1 << 20, 1,
                          "backlog: an integer, 0 to 1048576 connections");
        }
        lua_pop(L, 6);
    }
    struct lsim *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->trace_ref = ls->events_ref = LUA_NOREF;
    luaL_setmetatable(L, SIM_MT);
    int rc = sim_new((uint64_t)seed, &ls->sim);
    if (rc)
        return fail(L, rc, NULL);
    if (backlog >= 0)
        sim_set_backlog(ls->sim, (size_t)backlog);
    ls->L = L;
    ls->print = print;
    if (trace) {
        lua_newtable(L);
        ls->trace_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (events) {
        lua_newtable(L);
        ls->events_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (print || trace)
        sim_set_log(ls->sim, level, sim_sink, ls);
    sim_set_event_sink(ls->sim, sim_event, ls);
    sim_set_lifecycle(ls->sim, sim_life, ls);
    return 1;
}

static int l_sim_gc(lua_State *L)
{
    struct lsim *ls = luaL_checkudata(L, 1, SIM_MT);
    if (ls->sim) {
        ls->L = L;
        for (size_t k = 0; k < ls->nnodes; k++)
            if (ls->nodes[k])
                ls->nodes[k]->ln.L = L;
    }
    sim_free(ls->sim); /* detaches every lnode first */
    ls->sim = NULL;
    for (size_t k = 0; k < ls->nnodes; k++) {
        struct simnode *sn = ls->nodes[k];
        if (sn == NULL)
            continue;
        lnode_close(&sn->ln);
        luaL_unref(L, LUA_REGISTRYINDEX, sn->hooks_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, sn->env_ref);
        hs_free(sn);
    }
    hs_free(ls->nodes);
    ls->nodes = NULL;
    ls->nnodes = ls->cap = 0;
    luaL_unref(L, LUA_REGISTRYINDEX, ls->trace_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->events_ref);
    ls->trace_ref = ls->events_ref = LUA_NOREF;
    return 0;
}

/* sim:add(config_table) -> index (1-based). The table may hold hooks (a
 * table of hooks, or a list of them) and scripts (files), as
 * hearsay.node's; every other key is a configuration key. */
static int l_sim_add(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "env");
    luaL_argcheck(L, lua_isnil(L, -1) || lua_istable(L, -1), 2,
                  "env must be a table of strings");
    lua_pop(L, 1);
    lua_newtable(L);
    int arr = lua_gettop(L);
    add_hook_tables(L, 2, arr);
    struct config c;
    check_config(L, 2, &c);
    size_t idx = sim_count(ls->sim);
    if (ls->nnodes == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 16;
        struct simnode **nn = hs_realloc(ls->nodes, cap * sizeof *nn);
        if (nn == NULL) {
            config_free(&c);
            return fail(L, HS_ENOMEM, NULL);
        }
        ls->nodes = nn;
        ls->cap = cap;
    }
    struct simnode *sn = hs_calloc(1, sizeof *sn);
    if (sn == NULL) {
        config_free(&c);
        return fail(L, HS_ENOMEM, NULL);
    }
    sn->ls = ls;
    sn->idx = idx;
    sn->hooks_ref = sn->env_ref = LUA_NOREF;
    lua_getfield(L, 2, "env");
    if (lua_istable(L, -1))
        sn->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    if (lua_rawlen(L, arr) > 0) {
        lua_pushvalue(L, arr);
        sn->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    ls->nodes[ls->nnodes++] = sn;
    lnode_init(&sn->ln, L, c.script_budget, NULL, &simnode_ops, sn);
    sn->ln.real_time = false; /* budgets in instructions alone: exact */
    size_t got;
    int rc = sim_add(ls->sim, &c, NULL, &got);
    config_free(&c);
    if (sim_count(ls->sim) == idx) { /* never made it into the sim */
        ls->nnodes--;
        luaL_unref(L, LUA_REGISTRYINDEX, sn->hooks_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, sn->env_ref);
        hs_free(sn);
        return fail(L, rc, rc == HS_EINVAL ? "name already in use" : NULL);
    }
    if (rc)
        return fail(L, rc, NULL);
    if (sn->err[0])
        return luaL_error(L, "%s", sn->err);
    lua_pushinteger(L, (lua_Integer)idx + 1);
    return 1;
}

static size_t check_index(lua_State *L, struct lsim *ls, int i)
{
    if (lua_type(L, i) == LUA_TSTRING) {
        long idx = sim_find(ls->sim, lua_tostring(L, i));
        luaL_argcheck(L, idx >= 0, i, "no such node");
        return (size_t)idx;
    }
    lua_Integer idx = luaL_checkinteger(L, i);
    luaL_argcheck(L, idx >= 1 && (size_t)idx <= sim_count(ls->sim), i,
                  "no such node");
    return (size_t)idx - 1;
}

static struct node *check_live(lua_State *L, struct lsim *ls, int i)
{
    struct node *nd = sim_node(ls->sim, check_index(L, ls, i));
    if (nd == NULL)
        luaL_error(L, "node is not running");
    return nd;
}

static int l_sim_run(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    lua_Integer ms = luaL_checkinteger(L, 2);
    luaL_argcheck(L, ms >= 0, 2, "must not be negative");
    sim_run(ls->sim, (uint64_t)ms);
    return 0;
}

static int l_sim_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sim_now(check_sim(L, 1)->sim));
    return 1;
}

static int l_sim_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sim_count(check_sim(L, 1)->sim));
    return 1;
}

static int l_sim_name(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    lua_pushstring(L, sim_name(ls->sim, check_index(L, ls, 2)));
    return 1;
}

static int l_sim_addr(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct hs_addr a = sim_addr(ls->sim, check_index(L, ls, 2));
    char b[HS_ADDRSTRLEN];
    lua_pushstring(L, addr_format(&a, b, sizeof b));
    return 1;
}

static int l_sim_alive(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    lua_pushboolean(L, sim_alive(ls->sim, check_index(L, ls, 2)));
    return 1;
}

static int l_sim_kill(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    sim_kill(ls->sim, check_index(L, ls, 2));
    return 0;
}

static int l_sim_restart(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    size_t idx = check_index(L, ls, 2);
    int rc = sim_restart(ls->sim, idx);
    if (rc)
        return fail(L, rc, NULL);
    if (ls->nodes[idx]->err[0])
        return fail(L, HS_EINVAL, ls->nodes[idx]->err);
    lua_pushboolean(L, 1);
    return 1;
}

/* sim:<method>(i, ms) for the calls that set a duration on a node. */
static int node_ms(lua_State *L, void (*set)(struct sim *, size_t, uint64_t))
{
    struct lsim *ls = check_sim(L, 1);
    size_t idx = check_index(L, ls, 2);
    lua_Integer ms = luaL_checkinteger(L, 3);
    luaL_argcheck(L, ms >= 0, 3, "must not be negative");
    set(ls->sim, idx, (uint64_t)ms);
    return 0;
}

/* sim:pause(i, ms): node i is frozen for ms */
static int l_sim_pause(lua_State *L)
{
    return node_ms(L, sim_pause);
}

static int l_sim_group(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    sim_set_group(ls->sim, check_index(L, ls, 2),
                  (int)luaL_checkinteger(L, 3));
    return 0;
}

static int l_sim_heal(lua_State *L)
{
    sim_heal(check_sim(L, 1)->sim);
    return 0;
}


/* sim:join(i, j...) node i joins nodes j... (push/pull at join) */
static int l_sim_join(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct node *nd = check_live(L, ls, 2);
    int top = lua_gettop(L);
    luaL_argcheck(L, top >= 3 && top - 2 <= 64, 3, "1 to 64 seeds");
    struct hs_addr addrs[64];
    for (int i = 3; i <= top; i++)
        addrs[i - 3] = sim_addr(ls->sim, check_index(L, ls, i));
    int rc = node_join(nd, addrs, NULL, (size_t)(top - 2), NULL, NULL);
    if (rc)
        return fail(L, rc, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* sim:leave(i [, timeout_ms]) */
static int l_sim_leave(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct node *nd = check_live(L, ls, 2);
    lua_Integer timeout = luaL_optinteger(L, 3, 5000);
    int rc = node_leave(nd, (uint64_t)timeout, NULL, NULL);
    if (rc)
        return fail(L, rc, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* sim:member(i, name) -> member table or nil */
static int l_sim_member(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct node *nd = check_live(L, ls, 2);
    size_t n;
    const char *name = luaL_checklstring(L, 3, &n);
    const struct member *m = members_find(node_members(nd), name, n);
    if (m == NULL)
        return 0;
    lnode_push_member(L, m);
    return 1;
}


/* sim:inject(i, bytes [, from "ip:port"]): deliver a datagram to node i
 * at once, as if it came from the network. */
static int l_sim_inject(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct node *nd = check_live(L, ls, 2);
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 3, &n);
    struct hs_addr from;
    if (addr_parse(luaL_optstring(L, 4, "10.255.255.254:7946"), 7946, &from))
        return luaL_argerror(L, 4, "not ip:port");
    node_io_packet(nd, &from, p, n);
    return 0;
}

/* sim:block(a, b [, "udp"|"all"|"none"]): one-way link block a -> b */
static int l_sim_block(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    size_t a = check_index(L, ls, 2), b = check_index(L, ls, 3);
    static const char *const what[] = {"none", "udp", "all", NULL};
    int w = luaL_checkoption(L, 4, "all", what);
    sim_block(ls->sim, a, b, w);
    return 0;
}

/* sim:inject_stream(i, bytes [, close]) */
static int l_sim_inject_stream(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    size_t idx = check_index(L, ls, 2);
    size_t n;
    const char *p = luaL_checklstring(L, 3, &n);
    int rc = sim_inject_stream(ls->sim, idx, p, n, lua_toboolean(L, 4));
    if (rc)
        return fail(L, rc, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_sim_events(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    if (ls->events_ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->events_ref);
    return 1;
}

static int l_mem_live(lua_State *L)
{
    lua_pushinteger(L, hs_mem_live());
    return 1;
}

static void count_key(void *ud, const struct meta_entry *e)
{
    (void)e;
    (*(lua_Integer *)ud)++;
}

/* sim:keys(i [, prefix]) -> number of live keys */
static int l_sim_keys(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct node *nd = check_live(L, ls, 2);
    size_t pl = 0;
    const char *p = luaL_optlstring(L, 3, "", &pl);
    lua_Integer n = 0;
    metadata_each(node_metadata(nd), p, pl, false, count_key, &n);
    lua_pushinteger(L, n);
    return 1;
}

/* sim:clock(i, offset_ms): shift node i's wall clock */
static int l_sim_clock(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    sim_set_clock_offset(ls->sim, check_index(L, ls, 2),
                         luaL_checkinteger(L, 3));
    return 0;
}

static int l_sim_trace(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    if (ls->trace_ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->trace_ref);
    return 1;
}

/* A link model from a table: latency = ms | {min, max} (uniform) |
 * {mean = ms, sd = ms} (normal); jitter = ms (with a number latency:
 * uniform in [latency, latency + jitter]); loss, duplicate, reorder
 * (probabilities); reorder_ms; bandwidth (bytes per second). */
static struct sim_link check_link(lua_State *L, int t)
{
    struct sim_link l = sim_link_default();
    luaL_checktype(L, t, LUA_TTABLE);
    lua_getfield(L, t, "latency");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "mean");
        if (!lua_isnil(L, -1)) {
            l.latency_dist = SIM_LATENCY_NORMAL;
            l.latency_ms = luaL_checknumber(L, -1);
            lua_getfield(L, -2, "sd");
            l.latency2_ms = luaL_optnumber(L, -1, 0);
            lua_pop(L, 1);
        } else {
            l.latency_dist = SIM_LATENCY_UNIFORM;
            lua_rawgeti(L, -2, 1);
            lua_rawgeti(L, -3, 2);
            l.latency_ms = luaL_checknumber(L, -2);
            l.latency2_ms = luaL_checknumber(L, -1);
            lua_pop(L, 2);
            luaL_argcheck(L, l.latency2_ms >= l.latency_ms, t,
                          "latency: {min, max} with min <= max");
        }
        lua_pop(L, 1);
    } else if (!lua_isnil(L, -1)) {
        l.latency_ms = luaL_checknumber(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "jitter");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, l.latency_dist == SIM_LATENCY_FIXED, t,
                      "jitter goes with a number latency");
        l.latency_dist = SIM_LATENCY_UNIFORM;
        l.latency2_ms = l.latency_ms + luaL_checknumber(L, -1);
    }
    lua_pop(L, 1);
    luaL_argcheck(L, l.latency_ms >= 0 && l.latency2_ms >= 0, t,
                  "latency must not be negative");
    static const char *const probs[] = {"loss", "duplicate", "reorder"};
    double *dst[] = {&l.loss, &l.duplicate, &l.reorder};
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, t, probs[i]);
        *dst[i] = luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
        if (!(*dst[i] >= 0 && *dst[i] <= 1))
            luaL_error(L, "%s must be a probability (0 to 1)", probs[i]);
    }
    lua_getfield(L, t, "reorder_ms");
    l.reorder_ms = luaL_optnumber(L, -1, l.reorder > 0 ? 10 : 0);
    lua_getfield(L, t, "bandwidth");
    lua_Integer bw = luaL_optinteger(L, -1, 0);
    lua_pop(L, 2);
    luaL_argcheck(L, bw >= 0 && l.reorder_ms >= 0, t,
                  "bandwidth and reorder_ms must not be negative");
    l.bandwidth = (uint64_t)bw;
    return l;
}

/* sim:link(tbl): the default link of every pair */
static int l_sim_link(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    struct sim_link l = check_link(L, 2);
    sim_set_link(ls->sim, &l);
    return 0;
}

/* sim:link_between(a, b, tbl | nil): the link from a to b only */
static int l_sim_link_between(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    size_t a = check_index(L, ls, 2), b = check_index(L, ls, 3);
    struct sim_link l;
    bool reset = lua_isnoneornil(L, 4);
    if (!reset)
        l = check_link(L, 4);
    int rc = sim_set_link_between(ls->sim, a, b, reset ? NULL : &l);
    if (rc)
        return fail(L, rc, NULL);
    return 0;
}

static void push_sim_stats(lua_State *L, const struct sim_stats *s)
{
#define F(name) set_int(L, #name, (lua_Integer)s->name)
    F(packets);
    F(bytes);
    F(lost);
    F(blocked);
    F(duplicated);
    F(reordered);
    F(streams);
    F(backlogged);
    F(syn_retries);
    F(suspicions);
    F(false_suspicions);
    F(raised);
    F(false_raised);
    F(deaths);
    F(false_deaths);
#undef F
}

/* sim:stats() -> the network's totals; sim:stats(i) -> node i's counters
 * (hearsay.stats()) with what the network saw of it under "sim". */
static int l_sim_stats(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_newtable(L);
        push_sim_stats(L, sim_stats(ls->sim));
        return 1;
    }
    size_t idx = check_index(L, ls, 2);
    struct simnode *sn = ls->nodes[idx];
    if (sn->ln.nd == NULL)
        lua_newtable(L);
    else
        lnode_push_stats(L, &sn->ln);
    lua_newtable(L);
    push_sim_stats(L, sim_node_stats(ls->sim, idx));
    lua_setfield(L, -2, "sim");
    return 1;
}

/* sim:node(i) -> the hearsay.node of simulated node i (the same object
 * across restarts; its methods fail while the node is down) */
static int l_sim_node(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    lnode_push(L, &ls->nodes[check_index(L, ls, 2)]->ln);
    return 1;
}

/* sim:log_level(level): what trace/print keep from now on */
static int l_sim_log_level(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    int level = hs_log_level_parse(luaL_checkstring(L, 2));
    luaL_argcheck(L, level >= 0, 2, "unknown level");
    if (ls->print || ls->trace_ref != LUA_NOREF)
        sim_set_log(ls->sim, level, sim_sink, ls);
    return 0;
}

/* sim:slow(i, ms): node i reads everything ms late */
static int l_sim_slow(lua_State *L)
{
    return node_ms(L, sim_set_slow);
}

static int l_sim_converged(lua_State *L)
{
    lua_pushboolean(L, sim_converged(check_sim(L, 1)->sim));
    return 1;
}

static int l_sim_queued(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sim_queued(check_sim(L, 1)->sim));
    return 1;
}

/* sim:count_seeing(name, state) -> how many running nodes see it so */
static int l_sim_count_seeing(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int state = member_state_parse(luaL_checkstring(L, 3));
    luaL_argcheck(L, state >= 0, 3, "alive, suspect, dead or left");
    lua_pushinteger(L, (lua_Integer)sim_count_seeing(ls->sim, name, state));
    return 1;
}

static int l_sim_paused(lua_State *L)
{
    struct lsim *ls = check_sim(L, 1);
    lua_pushboolean(L, sim_paused(ls->sim, check_index(L, ls, 2)));
    return 1;
}

static const luaL_Reg sim_methods[] = {
    {"add", l_sim_add},         {"run", l_sim_run},
    {"now", l_sim_now},
    {"count", l_sim_count},     {"name", l_sim_name},
    {"addr", l_sim_addr},       {"alive", l_sim_alive},
    {"kill", l_sim_kill},       {"restart", l_sim_restart},
    {"pause", l_sim_pause},     {"group", l_sim_group},
    {"heal", l_sim_heal},       {"link", l_sim_link},
    {"link_between", l_sim_link_between},
    {"node", l_sim_node},       {"paused", l_sim_paused},
    {"slow", l_sim_slow},       {"log_level", l_sim_log_level},
    {"converged", l_sim_converged},  {"queued", l_sim_queued},
    {"count_seeing", l_sim_count_seeing},
    {"join", l_sim_join},       {"leave", l_sim_leave},
    {"member", l_sim_member},
    {"stats", l_sim_stats},     {"inject", l_sim_inject},
    {"trace", l_sim_trace},     {"close", l_sim_gc},
    {"block", l_sim_block},     {"inject_stream", l_sim_inject_stream},
    {"events", l_sim_events},
    {"keys", l_sim_keys},       {"clock", l_sim_clock},
    {NULL, NULL}};

/* ===== In-process nodes on real sockets =====
 * hearsay.node{...} starts a node in the calling process on a loop of the
 * module's own; hearsay.run / run_until drive that loop. Hooks run on the
 * Lua thread that called run. */

struct inproc {
    struct lnode ln;
    struct node *nd;
    struct transport *tp;
    struct hs_logger log;
    struct joiner joiner;
    struct inproc *next, *prev;
    bool closing;
};

static uv_loop_t mloop;
static uv_timer_t mstop;
static bool mloop_ready, in_run;
static struct inproc *inprocs;

static void loop_ready(void)
{
    if (mloop_ready)
        return;
    uv_loop_init(&mloop);
    uv_timer_init(&mloop, &mstop);
    uv_unref((uv_handle_t *)&mstop);
    mloop_ready = true;
}

static int inproc_join(struct lnode *ln, const char *const *addrs, size_t n,
                       node_join_cb cb, void *ud)
{
    struct inproc *in = ln->owner;
    struct join_req *j;
    return join_start(&in->joiner, addrs, n, cb, ud, &j);
}

static const struct lnode_ops inproc_ops = {inproc_join, NULL};

static void on_inproc_joined(void *ud, int joined, int err, const char *why)
{
    struct inproc *in = ud;
    if (joined == 0)
        HS_WARN(&in->log, "join failed: %s", why ? why : hs_strerror(err));
}

static void tp_closed(void *ud)
{
    *(bool *)ud = true;
}

static void inproc_close(struct inproc *in)
{
    if (in->closing)
        return;
    in->closing = true;
    lnode_close(&in->ln); /* timers first: they live in the node */
    if (in->nd) {
        struct node *nd = in->nd;
        in->nd = NULL;
        in->ln.nd = NULL;
        node_close(nd);
        join_node_closed(&in->joiner);
    }
    if (in->tp) {
        bool done = false;
        transport_close(in->tp, tp_closed, &done);
        in->tp = NULL;
        while (!done && !in_run)
            uv_run(&mloop, UV_RUN_ONCE);
    }
    if (in->prev)
        in->prev->next = in->next;
    else if (inprocs == in)
        inprocs = in->next;
    if (in->next)
        in->next->prev = in->prev;
    hs_free(in);
}

/* hearsay.node{ name=, bind=, join=, hooks=, scripts=, profile=, any
 * configuration key } -> node, or nil, message, code */
static int l_node_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    loop_ready();
    struct config cfg;
    check_config(L, 1, &cfg);
    char err[512];
    lua_getfield(L, 1, "bind");
    if (lua_isnil(L, -1)) /* loopback, any free port */
        snprintf(cfg.bind, sizeof cfg.bind, "127.0.0.1:0");
    lua_getfield(L, 1, "log_level");
    if (lua_isnil(L, -1))
        cfg.log_level = HS_LOG_WARN;
    lua_pop(L, 2);
    if (config_validate(&cfg, err, sizeof err)) {
        config_free(&cfg);
        return luaL_error(L, "%s", err);
    }
    /* The hook tables, checked before anything starts. */
    lua_newtable(L);
    int arr = lua_gettop(L);
    add_hook_tables(L, 1, arr);

    struct inproc *in = hs_calloc(1, sizeof *in);
    if (in == NULL) {
        config_free(&cfg);
        return fail(L, HS_ENOMEM, NULL);
    }
    in->log = (struct hs_logger){cfg.log_level, hs_log_stderr_sink, NULL};
    int rc = transport_new(&mloop, &cfg, &in->log, &in->tp, err,
                           sizeof err);
    if (rc) {
        hs_free(in);
        config_free(&cfg);
        return fail(L, rc, err);
    }
    in->next = inprocs;
    if (inprocs)
        inprocs->prev = in;
    inprocs = in;
    lnode_init(&in->ln, L, cfg.script_budget, &in->log, &inproc_ops, in);
    in->joiner = (struct joiner){.loop = &mloop, .nodep = &in->nd};
    rc = node_new(&cfg, transport_io(in->tp), NULL, &in->log, &in->nd);
    if (rc) {
        inproc_close(in);
        config_free(&cfg);
        return fail(L, rc, NULL);
    }
    transport_attach(in->tp, in->nd);
    in->ln.nd = in->nd;
    lnode_register(&in->ln);
    lnode_push(L, &in->ln); /* the node object, before scripts use it */
    int self = lua_gettop(L);
    for (size_t i = 0; i < cfg.scripts.n; i++) {
        push_script_env(L, cfg.scripts.v[i], LUA_NOREF);
        if (lnode_load_script(&in->ln, L, cfg.scripts.v[i], -1, err,
                              sizeof err)) {
            inproc_close(in);
            config_free(&cfg);
            return luaL_error(L, "%s", err);
        }
        lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
        lua_pop(L, 1); /* the environment */
    }
    lnode_set_scripts(&in->ln, arr);
    self--; /* the array below it is gone */
    struct hooks hooks = lnode_hooks(&in->ln);
    node_set_hooks(in->nd, &hooks);
    struct hs_addr adv;
    if ((rc = transport_advertise(in->tp, &cfg, &adv, err, sizeof err)) ||
        (rc = node_start(in->nd, &adv))) {
        inproc_close(in);
        config_free(&cfg);
        return fail(L, rc, err);
    }
    if (cfg.join.n) {
        struct join_req *j;
        join_start(&in->joiner, (const char *const *)cfg.join.v, cfg.join.n,
                   on_inproc_joined, in, &j);
    }
    if (cfg.retry_join.n) { /* serf's retry_join; never exits */
        struct join_retry_opts o = {cfg.retry_interval,
                                    (unsigned)cfg.retry_max, 0, false,
                                    "retry_join"};
        join_retry_start(&in->joiner, &cfg.retry_join, &o, &in->log, NULL,
                         NULL);
    }
    config_free(&cfg);
    lua_pushvalue(L, self);
    return 1;
}

static struct inproc *check_inproc(lua_State *L, int i)
{
    struct lnode **p = luaL_checkudata(L, i, "hearsay.node");
    if (*p == NULL)
        luaL_error(L, "the node is closed");
    if ((*p)->ops != &inproc_ops)
        luaL_error(L, "not a node of this process");
    return (*p)->owner;
}

static int l_node_close(lua_State *L)
{
    struct lnode **p = luaL_checkudata(L, 1, "hearsay.node");
    if (*p && (*p)->ops == &inproc_ops) {
        if (in_run)
            return luaL_error(L, "close a node outside hearsay.run");
        inproc_close((*p)->owner);
    }
    return 0;
}

static int l_node_address(lua_State *L)
{
    struct inproc *in = check_inproc(L, 1);
    const struct member *me = node_self(in->nd);
    char b[HS_ADDRSTRLEN];
    lua_pushstring(L, me ? addr_format(&me->addr, b, sizeof b) : "");
    return 1;
}

static void on_stop(uv_timer_t *t)
{
    (void)t;
    uv_stop(&mloop);
}

/* Run the loop for ms milliseconds of real time. */
static void run_for(lua_State *L, uint64_t ms)
{
    for (struct inproc *in = inprocs; in; in = in->next)
        in->ln.L = L;
    in_run = true;
    uv_timer_start(&mstop, on_stop, ms, 0);
    uv_ref((uv_handle_t *)&mstop);
    uv_run(&mloop, UV_RUN_DEFAULT);
    uv_unref((uv_handle_t *)&mstop);
    uv_timer_stop(&mstop);
    in_run = false;
}

/* hearsay.run(ms) */
static int l_run(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, ms >= 0, 1, "must not be negative");
    if (in_run)
        return luaL_error(L, "hearsay.run cannot run inside a hook");
    loop_ready();
    run_for(L, (uint64_t)ms);
    return 0;
}

/* hearsay.run_until(predicate, timeout_ms [, step_ms]) -> true, elapsed
 * | false, timeout: runs the loop until predicate() is true. */
static int l_run_until(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Integer timeout = luaL_checkinteger(L, 2);
    lua_Integer step = luaL_optinteger(L, 3, 10);
    luaL_argcheck(L, timeout >= 0, 2, "must not be negative");
    luaL_argcheck(L, step >= 1, 3, "must be at least 1");
    if (in_run)
        return luaL_error(L, "hearsay.run_until cannot run inside a hook");
    loop_ready();
    uint64_t start = uv_hrtime() / 1000000;
    for (;;) {
        lua_pushvalue(L, 1);
        lua_call(L, 0, 1);
        bool ok = lua_toboolean(L, -1);
        lua_pop(L, 1);
        uint64_t elapsed = uv_hrtime() / 1000000 - start;
        if (ok || elapsed >= (uint64_t)timeout) {
            lua_pushboolean(L, ok);
            lua_pushinteger(L, (lua_Integer)elapsed);
            return 2;
        }
        run_for(L, HS_MIN((uint64_t)step, (uint64_t)timeout - elapsed));
    }
}

/* At lua_close: close what is still open, then the loop. */
static int module_gc(lua_State *L)
{
    (void)L;
    while (inprocs)
        inproc_close(inprocs);
    if (mloop_ready) {
        uv_close((uv_handle_t *)&mstop, NULL);
        uv_run(&mloop, UV_RUN_DEFAULT);
        uv_loop_close(&mloop);
        mloop_ready = false;
    }
    return 0;
}

static const luaL_Reg funcs[] = {
    {"decode", l_decode},
    {"encode", l_encode},
    {"lzw_compress", l_lzw_compress},
    {"lzw_decompress", l_lzw_decompress},
    {"crc32", l_crc32},
    {"suspicion_timeout", l_suspicion_timeout},
    {"suspicion_remaining", l_suspicion_remaining},
    {"retransmit_limit", l_retransmit_limit},
    {"pushpull_scale", l_pushpull_scale},
    {"config", l_config},
    {"config_keys", l_config_keys},
    {"hook_names", l_hook_names},
    {"sim", l_sim_new},
    {"mem_live", l_mem_live},
    {"node", l_node_new},
    {"run", l_run},
    {"run_until", l_run_until},
    {NULL, NULL}};

int luaopen_hearsay_core(lua_State *L)
{
    if (luaL_newmetatable(L, SIM_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, sim_methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_sim_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_sim_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    /* Scripts of simulated and in-process nodes call the library
     * functions with loops in C under their budget, as in the agent
     * (string methods find the global string table). Outside a script's
     * call they cost nothing and behave as Lua's own. */
    llib_install_globals(L, &lnode_library_charge);
    luaL_newlib(L, funcs);
    lua_pushstring(L, HS_VERSION);
    lua_setfield(L, -2, "version");
    lnode_open_api(L); /* self, members, ... on the module */
    /* Methods only in-process nodes have. */
    luaL_getmetatable(L, "hearsay.node");
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, l_node_close);
    lua_setfield(L, -2, "close");
    lua_pushcfunction(L, l_node_address);
    lua_setfield(L, -2, "address");
    lua_pop(L, 2);
    /* A sentinel whose collection (at lua_close) shuts the loop. */
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, module_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "_loop");
    return 1;
}
