/* lua/sandbox.c: the environment of every hook script (lua/sandbox.h):
 * the sandbox table, its require, files that cannot block, the agent's
 * cut-down standard library, and the memory cap of a call in a shared
 * state. */
#include "lua/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lua/lnode_int.h"

static const char *const base_ok[] = {
    "assert",   "error",  "ipairs",         "next",     "pairs",  "pcall",
    "rawequal", "rawget", "rawlen",         "rawset",   "select", "tonumber",
    "tostring", "type",   "collectgarbage", "_VERSION", NULL};
static const char *const libs_ok[] = {"string", "table", "math", "utf8", NULL};
static const char *const os_ok[] = {"time",     "clock",   "date",
                                    "difftime", "getenv",  "remove",
                                    "rename",   "tmpname", NULL};
static const char *const io_ok[] = {"open", "lines",  "type",   "write",
                                    "read", "stderr", "stdout", NULL};

static void copy_fields(lua_State *L, int from, int to,
                        const char *const *names)
{
    from = lua_absindex(L, from);
    to = lua_absindex(L, to);
    for (int i = 0; names[i]; i++) {
        lua_getfield(L, from, names[i]);
        lua_setfield(L, to, names[i]);
    }
}

/* Keep only `keep` in the table at idx (the standard library's own). */
static void keep_only(lua_State *L, int idx, const char *const *keep)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; keep[i] && !ok; i++)
                ok = strcmp(lua_tostring(L, -1), keep[i]) == 0;
        if (!ok) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, idx); /* clearing a field keeps next() valid */
        }
    }
}

void lsandbox_copy_global(lua_State *L, const char *name)
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

/* Push a new table holding the named fields of the global table `lib`. */
static void push_lib_part(lua_State *L, const char *lib,
                          const char *const *names)
{
    lua_newtable(L);
    if (lua_getglobal(L, lib) == LUA_TTABLE)
        copy_fields(L, -1, -2, names);
    lua_pop(L, 1);
}

/* ===== print and getmetatable ===== */

/* print(...) logs at INFO through the node whose call runs (outside any
 * call, with several nodes in the state: Lua's print). */
static int sb_print(lua_State *L)
{
    size_t nreg;
    struct lnode *ln = lnode_acting(&nreg);
    if (ln == NULL) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, 0);
        return 0;
    }
    int n = lua_gettop(L); /* before the buffer takes a slot */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    HS_INFO(ln->log, "script: %s", lua_tostring(L, -1));
    return 0;
}

/* getmetatable as Lua's, but false for a file handle (the state may be
 * shared with a test whose file metatable is its own). */
static int sb_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (!lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    luaL_getmetatable(L, LUA_FILEHANDLE);
    if (lua_rawequal(L, -1, -2)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pop(L, 1);
    luaL_getmetafield(L, 1, "__metatable"); /* pushed only if there */
    return 1;
}

/* os.getenv: the node's own variables (upvalue) first. */
static int sb_getenv(lua_State *L)
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

/* ===== Files that cannot block =====
 * io.open and io.lines as Lua's own, but for regular files only: opening
 * a FIFO blocks until the other end opens it, and reading a FIFO, a
 * socket or a terminal blocks until data comes, all on the loop thread.
 * The file is opened with O_NONBLOCK and checked with fstat before it
 * becomes a Lua file handle (a luaL_Stream, as liolib makes them). */

/* liolib's l_checkmode: [rwa]%+?b* */
static bool mode_ok(const char *mode)
{
    if (*mode == '\0' || strchr("rwa", *mode) == NULL)
        return false;
    mode++;
    if (*mode == '+')
        mode++;
    return strspn(mode, "b") == strlen(mode);
}

static int open_flags(const char *mode)
{
    int rw = mode[1] == '+' ? O_RDWR : O_WRONLY;
    switch (mode[0]) {
    case 'r':
        return mode[1] == '+' ? O_RDWR : O_RDONLY;
    case 'w':
        return rw | O_CREAT | O_TRUNC;
    default:
        return rw | O_CREAT | O_APPEND;
    }
}

static int stream_close(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    return luaL_fileresult(L, fclose(p->f) == 0, NULL);
}

/* 0 for a regular file or one of the memory devices that never block
 * (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom: Linux's
 * major 1), else the errno that refuses it (with the message pushed). */
static int refuse_kind(lua_State *L, const char *path, const struct stat *st)
{
    mode_t m = st->st_mode;
    unsigned mi = minor(st->st_rdev);
    if (S_ISREG(m) || (S_ISCHR(m) && major(st->st_rdev) == 1 &&
                       (mi == 3 || mi == 5 || mi == 7 || mi == 8 || mi == 9)))
        return 0;
    if (S_ISDIR(m)) {
        lua_pushfstring(L, "%s: is a directory", path);
        return EISDIR;
    }
    lua_pushfstring(L, "%s: not a regular file (would block)", path);
    return EWOULDBLOCK;
}

static int sys_error(lua_State *L, const char *path, int e)
{
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    return e;
}

/* Push a file handle on the regular file at path and return 0, or push
 * a message and return an errno. */
static int open_regular(lua_State *L, const char *path, const char *mode)
{
    struct stat st;
    int e;
    /* Look first: opening a device can do things of its own. */
    if (stat(path, &st) == 0 && (e = refuse_kind(L, path, &st)))
        return e;
    int fd =
        open(path, open_flags(mode) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0666);
    if (fd < 0)
        return sys_error(L, path, errno);
    /* Again on what was opened: the path may have changed meanwhile. */
    if (fstat(fd, &st) != 0)
        e = sys_error(L, path, errno);
    else
        e = refuse_kind(L, path, &st);
    if (e) {
        close(fd);
        return e;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->f = NULL;
    p->closef = NULL; /* not a file yet: __gc and __close do nothing */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    p->f = fdopen(fd, mode);
    if (p->f == NULL) {
        e = errno;
        close(fd);
        lua_pop(L, 1);
        return sys_error(L, path, e);
    }
    p->closef = stream_close;
    return 0;
}

/* io.open(path [, mode]) */
static int safe_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    luaL_argcheck(L, mode_ok(mode), 2, "invalid mode");
    int e = open_regular(L, path, mode);
    if (e == 0)
        return 1;
    luaL_pushfail(L);
    lua_insert(L, -2);
    lua_pushinteger(L, e);
    return 3; /* fail, message, errno: as Lua's io.open */
}

/* The iterator of io.lines(path): the file's own lines iterator, which
 * closes the file at the end, as io.lines does. */
static int lines_next(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, LUA_MULTRET);
    if (lua_toboolean(L, 1))
        return lua_gettop(L);
    luaL_Stream *p = lua_touserdata(L, lua_upvalueindex(2));
    if (p->closef) {
        lua_CFunction cf = p->closef;
        p->closef = NULL; /* closed from now on */
        lua_settop(L, 0);
        lua_pushvalue(L, lua_upvalueindex(2));
        cf(L);
    }
    return 0;
}

/* io.lines([path, ...]): with no path, the upvalue's (the default
 * input's lines). */
static int safe_lines(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
        return lua_gettop(L);
    }
    const char *path = luaL_checkstring(L, 1);
    if (open_regular(L, path, "r"))
        return lua_error(L);
    lua_replace(L, 1);
    /* file:lines(...), the formats checked by Lua */
    luaL_getmetafield(L, 1, "__index");
    lua_getfield(L, -1, "lines");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_pushvalue(L, 2);
    lua_insert(L, 1); /* file, lines, file, formats... */
    lua_call(L, lua_gettop(L) - 2, 1);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, lines_next, 2);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, 1); /* to be closed by a generic for */
    return 4;
}

void lsandbox_guard_io(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, safe_open);
    lua_setfield(L, idx, "open");
    lua_pushcclosure(L, safe_lines, 1); /* the `lines` on top */
    lua_setfield(L, idx, "lines");
}

/* file:<method>(...) of the file in upvalue 1, the method named by
 * upvalue 2: the sandbox's io.read and io.lines() read /dev/null. */
static int null_input(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    if (luaL_getmetafield(L, -1, "__index") == LUA_TNIL)
        return luaL_error(L, "no input");
    lua_getfield(L, -1, lua_tostring(L, lua_upvalueindex(2)));
    lua_remove(L, -2);
    lua_insert(L, 1); /* method, args..., file */
    lua_insert(L, 2); /* method, file, args... */
    lua_call(L, n + 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* The sandbox's io: regular files only, input from /dev/null. */
static const char DEVNULL_KEY[] = "hearsay.sandbox.devnull";

static void push_io(lua_State *L)
{
    push_lib_part(L, "io", io_ok);
    /* One /dev/null per state, whatever the number of sandboxes (a
     * simulation of thousands of nodes would hold a descriptor each):
     * scripts reach it only through read and lines, never to close it. */
    if (lua_getfield(L, LUA_REGISTRYINDEX, DEVNULL_KEY) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        if (open_regular(L, "/dev/null", "r")) {
            lua_pop(L, 1); /* none: a closed file, which read refuses */
            luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
            p->f = NULL;
            p->closef = NULL;
            luaL_setmetatable(L, LUA_FILEHANDLE);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, DEVNULL_KEY);
    }
    int in = lua_gettop(L);
    lua_pushvalue(L, in);
    lua_pushliteral(L, "read");
    lua_pushcclosure(L, null_input, 2);
    lua_setfield(L, -3, "read");
    lua_pushvalue(L, in);
    lua_pushliteral(L, "lines");
    lua_pushcclosure(L, null_input, 2);
    lsandbox_guard_io(L, -3);
    lua_pop(L, 1); /* the file: the closures keep it */
}

/* ===== require ===== */

/* The standard libraries by their require names: the sandbox's own. */
static const char *const std_names[] = {"string",    "table", "math", "utf8",
                                        "coroutine", "os",    "io",   NULL};

/* What a script takes from the state as it is: the node API and cjson.
 * hearsay's other modules (the simulation, the test helper, the C
 * module) are the test's tools, not a script's: in a state shared with a
 * test they would hand a script the test's own tables. */
static bool state_module(const char *name)
{
    return !strcmp(name, "hearsay") || !strcmp(name, "cjson");
}

/* require(name): the sandbox's libraries; hearsay and cjson from the
 * state; else a Lua source file found on the scripts'
 * directories, then package.path, loaded once per sandbox, with globals
 * of its own reading through to the sandbox (as a script's). Upvalues:
 * the sandbox, the modules it loaded, the directories' search path. */
static int sb_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    for (int i = 0; std_names[i]; i++)
        if (!strcmp(name, std_names[i])) {
            lua_getfield(L, lua_upvalueindex(1), name);
            return 1;
        }
    if (!strcmp(name, "_G")) {
        lua_pushvalue(L, lua_upvalueindex(1));
        return 1;
    }
    if (lua_getfield(L, lua_upvalueindex(2), name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (state_module(name)) {
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        if (lua_getfield(L, -1, name) != LUA_TNIL)
            return 1;
        lua_pop(L, 2);
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_getfield(L, -1, "require");
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        return 1;
    }
    /* path = the directories, then package.path */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "package");
    if (!lua_istable(L, -1))
        return luaL_error(L, "module '%s' not found: no package table", name);
    int pkg = lua_gettop(L);
    lua_getfield(L, pkg, "searchpath");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, lua_upvalueindex(3));
    if (lua_getfield(L, pkg, "path") == LUA_TSTRING)
        lua_concat(L, 2);
    else
        lua_pop(L, 1);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return luaL_error(L, "module '%s' not found:%s", name,
                          lua_tostring(L, -1));
    lua_pop(L, 1);
    const char *file = lua_tostring(L, -1);
    int fidx = lua_gettop(L);
    if (lnode_loadfile(L, file, true) != LUA_OK)
        return luaL_error(L,
                          "error loading module '%s' from file '%s':"
                          "\n\t%s",
                          name, file, lua_tostring(L, -1));
    lua_newtable(L); /* its globals */
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, fidx);
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (lua_getfield(L, lua_upvalueindex(2), name) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
        }
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, lua_upvalueindex(2), name);
    lua_pushvalue(L, fidx);
    return 2;
}

/* ===== The sandbox ===== */

void lsandbox_push(lua_State *L, const char *const *paths, size_t n,
                   int vars_ref)
{
    lua_newtable(L);
    int env = lua_gettop(L);
    lua_pushglobaltable(L);
    copy_fields(L, -1, env, base_ok);
    copy_fields(L, -1, env, libs_ok);
    lua_pop(L, 1);
    /* What keeps the budget: no finalizers, coroutines under it. */
    lua_pushcfunction(L, lnode_setmetatable);
    lua_setfield(L, env, "setmetatable");
    lua_pushcfunction(L, lnode_xpcall);
    lua_setfield(L, env, "xpcall");
    lua_pushcfunction(L, sb_getmetatable);
    lua_setfield(L, env, "getmetatable");
    lsandbox_copy_global(L, "coroutine");
    lnode_guard_coroutines(L, -1);
    lua_setfield(L, env, "coroutine");
    push_lib_part(L, "os", os_ok);
    if (vars_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vars_ref);
        lua_pushcclosure(L, sb_getenv, 1);
        lua_setfield(L, -2, "getenv");
    }
    lua_setfield(L, env, "os");
    push_io(L);
    lua_setfield(L, env, "io");
    lua_getglobal(L, "print");
    lua_pushcclosure(L, sb_print, 1);
    lua_setfield(L, env, "print");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    /* require: upvalues the sandbox, its modules, the directories */
    lua_pushvalue(L, env);
    lua_newtable(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(paths[i], '/');
        if (slash)
            luaL_addlstring(&b, paths[i], (size_t)(slash - paths[i]));
        else
            luaL_addchar(&b, '.');
        luaL_addstring(&b, "/?.lua;");
    }
    luaL_pushresult(&b);
    lua_pushcclosure(L, sb_require, 3);
    lua_setfield(L, env, "require");
}

/* ===== The agent's state: its standard library cut down ===== */

/* package.searchers[2]: Lua's searcher for Lua modules (package.path,
 * the same messages), loading source text only, from regular files only.
 * Upvalues: the package table, Lua's package.searchpath. */
static int search_lua(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    if (lua_getfield(L, lua_upvalueindex(1), "path") != LUA_TSTRING)
        return luaL_error(L, "'package.path' must be a string");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 1; /* the "no file" lines */
    const char *file = lua_tostring(L, -2);
    if (lnode_loadfile(L, file, true) != LUA_OK)
        return luaL_error(L,
                          "error loading module '%s' from file '%s':"
                          "\n\t%s",
                          name, file, lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

/* The state exists for the scripts alone, so the standard library itself
 * is cut down too, not only the sandbox the scripts see: what reaches the
 * state's own tables (the string metatable's __index, a file's methods,
 * a module hearsay loads) finds them cut down. cjson, a C module, is
 * loaded before the door closes. */
void lsandbox_harden(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        lua_pop(L, 1); /* not installed: scripts just lack it */
    /* io.read and io.lines() read /dev/null, never the agent's stdin. */
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "input");
    lua_pushliteral(L, "/dev/null");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1); /* none: a closed file, which io.read refuses */
        luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
        p->f = NULL;
        p->closef = NULL;
        luaL_setmetatable(L, LUA_FILEHANDLE);
        lua_setfield(L, LUA_REGISTRYINDEX, "_IO_input");
    }
    lua_pop(L, 1);
    lua_getglobal(L, "os");
    keep_only(L, -1, os_ok);
    lua_getglobal(L, "io");
    keep_only(L, -1, io_ok);
    lua_getfield(L, -1, "lines");
    lsandbox_guard_io(L, -2);
    lua_pop(L, 2);
    /* Library functions that loop in C pay for it out of the budget. */
    llib_install_globals(L, &lnode_library_charge);
    lua_pushcfunction(L, lnode_setmetatable);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, lnode_xpcall);
    lua_setglobal(L, "xpcall");
    lua_getglobal(L, "coroutine");
    lnode_guard_coroutines(L, -1);
    lua_pop(L, 1);
    luaL_getmetatable(L, LUA_FILEHANDLE);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    static const char *const gone[] = {"debug", "load", "loadfile", "dofile",
                                       NULL};
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    for (int i = 0; gone[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, gone[i]);
        lua_pushnil(L);
        lua_setfield(L, -2, gone[i]);
    }
    lua_pop(L, 1); /* loaded */
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    /* searchers: preload and Lua source files only */
    lua_getfield(L, -1, "searchers");
    for (lua_Integer i = (lua_Integer)luaL_len(L, -1); i > 2; i--) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -2);
    lua_getfield(L, -1, "searchpath");
    lua_pushcclosure(L, search_lua, 2);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}

/* ===== The memory of one call in a shared state =====
 * The state's allocator is wrapped once, on the first capped call: the
 * wrapper counts the bytes held (net, from then on) and refuses growth
 * past the innermost running call's limit. Lua then collects and tries
 * again, and raises "not enough memory" in the call if that fails. A
 * finalizer anchored in the registry hands the state its own allocator
 * back when the state closes. */

struct memcap {
    lua_Alloc f; /* the state's own allocator */
    void *ud;
    int64_t used;  /* bytes held, net, since the wrapper went in */
    int64_t limit; /* no growth past this; INT64_MAX: none */
};

static const char MEMCAP_KEY[] = "hearsay.memcap";

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct memcap *m = ud;
    int64_t old = ptr ? (int64_t)osize : 0;
    if ((int64_t)nsize > old && m->used + ((int64_t)nsize - old) > m->limit)
        return NULL;
    void *p = m->f(m->ud, ptr, osize, nsize);
    if (nsize == 0)
        m->used -= old;
    else if (p != NULL)
        m->used += (int64_t)nsize - old;
    return p;
}

static int memcap_gc(lua_State *L)
{
    void *ud;
    if (lua_getallocf(L, &ud) == capped_alloc) {
        struct memcap *m = ud;
        lua_setallocf(L, m->f, m->ud);
        free(m);
    }
    return 0;
}

static struct memcap *memcap_of(lua_State *L)
{
    void *ud;
    if (lua_getallocf(L, &ud) == capped_alloc)
        return ud;
    struct memcap *m = malloc(sizeof *m);
    if (m == NULL)
        return NULL;
    m->f = lua_getallocf(L, &m->ud);
    m->used = 0;
    m->limit = INT64_MAX;
    /* The finalizer first, while a failure still leaves things as
     * they were. */
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, memcap_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, MEMCAP_KEY);
    lua_setallocf(L, capped_alloc, m);
    return m;
}

int64_t lsandbox_mem_begin(lua_State *L, uint64_t cap)
{
    if (cap == 0)
        return INT64_MIN;
    struct memcap *m = memcap_of(L);
    if (m == NULL)
        return INT64_MIN;
    int64_t saved = m->limit;
    int64_t lim =
        cap > (uint64_t)INT64_MAX / 2 ? INT64_MAX : m->used + (int64_t)cap;
    if (lim < m->limit)
        m->limit = lim;
    return saved;
}

void lsandbox_mem_end(lua_State *L, int64_t saved)
{
    void *ud;
    if (saved == INT64_MIN || lua_getallocf(L, &ud) != capped_alloc)
        return;
    ((struct memcap *)ud)->limit = saved;
}
