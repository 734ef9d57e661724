/* lua/mod_env.c: the environment the scripts of simulated and
 * in-process nodes run in, and the hook tables given to them. */
#include "lua/mod_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "lua/host.h"

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
            luaL_error(L, "%s", lua_istable(L, -1) ? err
                                                 : "hooks: not a table");
        lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
    }
    lua_pop(L, 1);
}

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
void lmod_push_script_env(lua_State *L, const char *path, int env_ref)
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
