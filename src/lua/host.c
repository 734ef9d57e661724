/* lua/host.c: the agent's Lua state: a capped allocator, the sandbox the
 * scripts run in, the `hearsay` module, loading and reloading. */
#include "lua/host.h"

#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>


struct lua_host {
    lua_State *L;
    size_t used, limit;   /* bytes held by the state, and the cap */
    struct lnode ln;
    size_t count;         /* scripts loaded */
};

/* ===== Memory ===== */

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_host *h = ud;
    if (ptr == NULL)
        osize = 0; /* osize then names the object's type, not a size */
    if (nsize == 0) {
        hs_free(ptr);
        h->used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > h->limit - HS_MIN(h->used, h->limit))
        return NULL; /* Lua raises "not enough memory" in the hook */
    void *p = hs_realloc(ptr, nsize);
    if (p == NULL)
        return nsize <= osize ? ptr : NULL;
    h->used = h->used - osize + nsize;
    return p;
}

/* ===== The sandbox ===== */

/* `hearsay` inside the agent: the node API, and the version. */
static int open_agent_api(lua_State *L)
{
    lua_newtable(L);
    lnode_open_api(L);
    lua_pushliteral(L, HS_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}

/* print() goes to the log, at INFO. */
static int l_print(lua_State *L)
{
    struct lua_host *h = lua_touserdata(L, lua_upvalueindex(1));
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
    HS_INFO(h->ln.log, "script: %s", lua_tostring(L, -1));
    return 0;
}

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
    case 'r': return mode[1] == '+' ? O_RDWR : O_RDONLY;
    case 'w': return rw | O_CREAT | O_TRUNC;
    default: return rw | O_CREAT | O_APPEND;
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
    int fd = open(path, open_flags(mode) | O_NONBLOCK | O_NOCTTY |
                  O_CLOEXEC, 0666);
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

/* io.lines([path, ...]): with no path, Lua's own (the default input). */
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
    lua_insert(L, 1);              /* file, lines, file, formats... */
    lua_call(L, lua_gettop(L) - 2, 1);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, lines_next, 2);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, 1);           /* to be closed by a generic for */
    return 4;
}

void lua_host_guard_io(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, safe_open);
    lua_setfield(L, idx, "open");
    lua_getfield(L, idx, "lines");
    lua_pushcclosure(L, safe_lines, 1);
    lua_setfield(L, idx, "lines");
}

/* ===== Loading code: text only ===== */

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
        return luaL_error(L, "error loading module '%s' from file '%s':"
                          "\n\t%s", name, file, lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

static const char *const os_ok[] = {"time", "clock", "date", "difftime",
                                    "getenv", "remove", "rename", "tmpname",
                                    NULL};
static const char *const io_ok[] = {"open", "lines", "type", "write", "read",
                                    "stderr", "stdout", NULL};

/* The state exists for the scripts alone, so the standard library itself
 * is cut down, not just what scripts see first: a module a script
 * requires, or require "os" itself, finds the same cut-down tables. No
 * os.execute or os.exit, no io.popen, no debug, no loading of C code or
 * of binary chunks. cjson, a C module, is loaded before the door
 * closes. */
static void harden(lua_State *L)
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
    lua_host_guard_io(L, -1);
    lua_pop(L, 2);
    /* Library functions that loop in C pay for it out of the budget. */
    llib_install_globals(L, &lnode_library_charge);
    /* No finalizers (they run with hooks off), and the coroutines stay
     * under the call's budget. */
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
    static const char *const gone[] = {"debug", "load", "loadfile",
                                       "dofile", NULL};
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

/* The environment every script reads through to: the safe parts of the
 * standard library, `require`, and print to the log. No os.exit,
 * os.execute, io.popen, load of binary chunks, or debug. */
static void push_sandbox(lua_State *L, struct lua_host *h)
{
    static const char *const base[] = {
        "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall",
        "rawequal", "rawget", "rawlen", "rawset", "select",
        "setmetatable", "getmetatable", "tonumber", "tostring", "type",
        "require", "collectgarbage", "_VERSION", NULL};
    static const char *const libs[] = {"string", "table", "math", "utf8",
                                       "coroutine", NULL};
    lua_newtable(L);
    int env = lua_gettop(L);
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    copy_fields(L, g, env, base);
    copy_fields(L, g, env, libs);
    lua_newtable(L);
    lua_getglobal(L, "os");
    copy_fields(L, -1, -2, os_ok);
    lua_pop(L, 1);
    lua_setfield(L, env, "os");
    lua_newtable(L);
    lua_getglobal(L, "io");
    copy_fields(L, -1, -2, io_ok);
    lua_pop(L, 1);
    lua_setfield(L, env, "io");
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, l_print, 1);
    lua_setfield(L, env, "print");
    lua_pop(L, 1); /* the global table */
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
}

/* package.path: each script's directory, then the hearsay Lua modules
 * next to the binary (bin/../lua), then the system's. */
static void set_path(lua_State *L, const struct config *cfg)
{
    char path[8192];
    size_t o = 0;
    for (size_t i = 0; i < cfg->scripts.n && o < sizeof path; i++) {
        const char *s = cfg->scripts.v[i];
        const char *slash = strrchr(s, '/');
        if (slash)
            o += (size_t)snprintf(path + o, sizeof path - o, "%.*s/?.lua;",
                                  (int)(slash - s), s);
        else
            o += (size_t)snprintf(path + o, sizeof path - o, "./?.lua;");
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0 && o < sizeof path) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            o += (size_t)snprintf(path + o, sizeof path - o,
                                  "%s/../lua/?.lua;%s/../lua/?/init.lua;",
                                  exe, exe);
        }
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    if (o < sizeof path)
        snprintf(path + o, sizeof path - o, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

int lua_host_new(const struct config *cfg, const struct hs_logger *log,
                 const struct lnode_ops *ops, void *owner, struct node *nd,
                 struct lua_host **out, char *err, size_t errlen)
{
    struct lua_host *h = hs_calloc(1, sizeof *h);
    if (h == NULL)
        return HS_ENOMEM;
    h->limit = (size_t)cfg->script_memory;
    h->L = lua_newstate(lalloc, h);
    if (h->L == NULL) {
        hs_free(h);
        snprintf(err, errlen, "cannot create the Lua state");
        return HS_ENOMEM;
    }
    lua_State *L = h->L;
    luaL_openlibs(L);
    lnode_init(&h->ln, L, cfg->script_budget, log, ops, owner);
    h->ln.nd = nd;
    lnode_register(&h->ln);
    /* require "hearsay" gives the API, bound to this agent's node. */
    luaL_requiref(L, "hearsay", open_agent_api, 0);
    lua_pop(L, 1);
    harden(L);
    set_path(L, cfg);
    push_sandbox(L, h);
    int env = lua_gettop(L);
    lua_createtable(L, (int)cfg->scripts.n, 0);
    int scripts = lua_gettop(L);
    for (size_t i = 0; i < cfg->scripts.n; i++) {
        if (lnode_load_script(&h->ln, L, cfg->scripts.v[i], env, err,
                              errlen)) {
            lua_host_free(h);
            return HS_EINVAL;
        }
        lua_rawseti(L, scripts, (lua_Integer)i + 1);
    }
    h->count = cfg->scripts.n;
    lnode_set_scripts(&h->ln, scripts);
    lua_pop(L, 1); /* env */
    lua_gc(L, LUA_GCCOLLECT);
    *out = h;
    return 0;
}

struct hooks lua_host_hooks(struct lua_host *h)
{
    return lnode_hooks(&h->ln);
}

size_t lua_host_count(const struct lua_host *h)
{
    return h->count;
}

struct lnode *lua_host_lnode(struct lua_host *h)
{
    return &h->ln;
}

void lua_host_free(struct lua_host *h)
{
    if (h == NULL)
        return;
    lnode_close(&h->ln);
    lua_close(h->L);
    hs_free(h);
}
