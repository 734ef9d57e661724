/* lua/host.c: the agent's Lua state: a capped allocator, the cut-down
 * standard library and sandbox of lua/sandbox.c, the `hearsay` module,
 * loading and reloading. */
#include "lua/host.h"

#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lua/sandbox.h"

struct lua_host {
    lua_State *L;
    size_t used, limit; /* bytes held by the state, and the cap */
    struct lnode ln;
    size_t count; /* scripts loaded */
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

/* `hearsay` inside the agent: the node API, and the version. */
static int open_agent_api(lua_State *L)
{
    lua_newtable(L);
    lnode_open_api(L);
    lua_pushliteral(L, HS_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}

/* package.path: each script's directory, then the hearsay Lua modules
 * next to the binary: bin/../lua in the source tree, PREFIX/share/lua/5.4
 * once installed (make install puts the binary in PREFIX/bin), then the
 * system's. */
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
                                  "%s/../lua/?.lua;%s/../lua/?/init.lua;"
                                  "%s/../share/lua/5.4/?.lua;"
                                  "%s/../share/lua/5.4/?/init.lua;",
                                  exe, exe, exe, exe);
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
    lsandbox_harden(L);
    set_path(L, cfg);
    /* set_path put the scripts' directories first in package.path */
    lsandbox_push(L, NULL, 0, LUA_NOREF);
    int env = lua_gettop(L);
    lua_createtable(L, (int)cfg->scripts.n, 0);
    int scripts = lua_gettop(L);
    for (size_t i = 0; i < cfg->scripts.n; i++) {
        if (lnode_load_script(&h->ln, L, cfg->scripts.v[i], env, err, errlen)) {
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
