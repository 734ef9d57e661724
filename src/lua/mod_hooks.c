/* lua/mod_hooks.c: the hook tables given to simulated and in-process
 * nodes (their scripts' environment is lua/sandbox.c's). */
#include "lua/mod_int.h"

#include <lauxlib.h>
#include <stdio.h>

/* Hook tables from opts.hooks: one table of hook functions, or a list of
 * them. Appends them to the array at `arr`. */
void lmod_add_hook_tables(lua_State *L, int opts, int arr)
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
            luaL_error(L, "%s",
                       lua_istable(L, -1) ? err : "hooks: not a table");
        lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
    }
    lua_pop(L, 1);
}

/* The hook tables given to add, then the scripts loaded afresh. */
