/* lua/mod_proto.c: hearsay.core's protocol math (suspicion timeouts,
 * retransmit limits ...) and configuration, for specs that check them
 * against memberlist's. */
#include "lua/mod_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "core/broadcast.h"
#include "core/node.h"
#include "core/suspicion.h"

/* ===== Protocol math ===== */

static int l_suspicion_timeout(lua_State *L)
{
    lua_Integer mult = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
    lua_Integer interval = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0, 2, "must not be negative");
    lua_pushinteger(L, (lua_Integer)suspicion_timeout((int)mult, (size_t)n,
                                                      (uint64_t)interval));
    return 1;
}

static int l_suspicion_remaining(lua_State *L)
{
    lua_pushinteger(L, suspicion_remaining((int)luaL_checkinteger(L, 1),
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
    lua_pushinteger(
        L, (lua_Integer)pushpull_scale((uint64_t)luaL_checkinteger(L, 1),
                                       (size_t)luaL_checkinteger(L, 2)));
    return 1;
}

/* ===== Configuration ===== */

/* Build a config from a profile and a table of key = value overrides.
 * Raises with the config's own sentence on a bad key or value. */
void lmod_check_config(lua_State *L, int idx, struct config *c)
{
    const char *profile = "lan";
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "profile");
        if (lua_isstring(L, -1))
            profile = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    if (config_defaults(c, profile))
        luaL_error(L, "profile: \"%s\" is not one of lan, wan, local", profile);
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
        if (!strcmp(k, "profile") || !strcmp(k, "hooks") || !strcmp(k, "env") ||
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
            rc = config_set(c, k, luaL_tolstring(L, -1, NULL), err, sizeof err);
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
    lmod_check_config(L, 1, &c);
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
    static const char *kinds[] = {"string", "address", "integer", "duration",
                                  "size",   "boolean", "list",    "enum"};
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

static const luaL_Reg proto_funcs[] = {
    {"suspicion_timeout", l_suspicion_timeout},
    {"suspicion_remaining", l_suspicion_remaining},
    {"retransmit_limit", l_retransmit_limit},
    {"pushpull_scale", l_pushpull_scale},
    {"config", l_config},
    {"config_keys", l_config_keys},
    {"hook_names", l_hook_names},
    {NULL, NULL}};

void lmod_open_proto(lua_State *L)
{
    luaL_setfuncs(L, proto_funcs, 0);
}
