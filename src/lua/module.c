/* lua/module.c: the `hearsay.core` Lua module: the C core for busted specs
 * and users' own tests, put together from lua/mod_*.c (codec, protocol
 * math, configuration, simulation); and its in-process nodes,
 * hearsay.node{...} on real loopback sockets and a libuv loop of the
 * module's own, driven by hearsay.run and run_until. They are here, not
 * in a lua/mod_*.c of their own, because this file alone is linked with
 * the libuv transport, agent/join.c and agent/setup.c (the start-up
 * in-process nodes share with the agent; the Makefile's MODULE_RT_OBJ);
 * the rest of lua/ also goes into the agent and the fuzz targets. */
#include "lua/module.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "agent/join.h"
#include "agent/setup.h"
#include "core/node.h"
#include "lua/mod_int.h"
#include "lua/sandbox.h"

static int fail(lua_State *L, int rc, const char *why)
{
    return lnode_fail(L, rc, why);
}

/* ===== In-process nodes on real sockets =====
 * hearsay.node{...} starts a node in the calling process on a loop of the
 * module's own; hearsay.run / run_until drive that loop. Hooks run on the
 * Lua thread that called run. */

struct inproc {
    struct lnode ln;
    struct agent_setup set; /* the transport, the node, the joins */
    struct hs_logger log;
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
    return join_start(&in->set.joiner, addrs, n, cb, ud, &j);
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
    in->ln.nd = NULL;
    bool done = false;
    agent_setup_close(&in->set, tp_closed, &done);
    while (!done && !in_run)
        uv_run(&mloop, UV_RUN_ONCE);
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
    lmod_check_config(L, 1, &cfg);
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
    lmod_add_hook_tables(L, 1, arr);

    struct inproc *in = hs_calloc(1, sizeof *in);
    if (in == NULL) {
        config_free(&cfg);
        return fail(L, HS_ENOMEM, NULL);
    }
    in->log = (struct hs_logger){cfg.log_level, hs_log_stderr_sink, NULL};
    in->next = inprocs;
    if (inprocs)
        inprocs->prev = in;
    inprocs = in;
    lnode_init(&in->ln, L, cfg.script_budget, &in->log, &inproc_ops, in);
    int rc = agent_setup_open(&in->set, &cfg, &mloop, &in->log, NULL, err,
                              sizeof err);
    if (rc) {
        /* The transport's sentence; a node that could not be made says
         * only its code. */
        const char *why = in->set.tp ? NULL : err;
        inproc_close(in);
        config_free(&cfg);
        return fail(L, rc, why);
    }
    in->ln.nd = in->set.node;
    lnode_register(&in->ln);
    lnode_push(L, &in->ln); /* the node object, before scripts use it */
    int self = lua_gettop(L);
    /* The scripts' sandbox, as an agent's */
    lsandbox_push(L, (const char *const *)cfg.scripts.v, cfg.scripts.n,
                  LUA_NOREF);
    in->ln.mem_cap = cfg.script_memory;
    for (size_t i = 0; i < cfg.scripts.n; i++) {
        if (lnode_load_script(&in->ln, L, cfg.scripts.v[i], -1, err,
                              sizeof err)) {
            inproc_close(in);
            config_free(&cfg);
            return luaL_error(L, "%s", err);
        }
        lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
    }
    lua_pop(L, 1); /* the sandbox */
    lnode_set_scripts(&in->ln, arr);
    self--; /* the array below it is gone */
    struct hooks hooks = lnode_hooks(&in->ln);
    node_set_hooks(in->set.node, &hooks);
    if ((rc = agent_setup_start(&in->set, &cfg, NULL, NULL, err, sizeof err))) {
        inproc_close(in);
        config_free(&cfg);
        return fail(L, rc, err);
    }
    /* A failed join is logged; a retry_join that gives up (retry_max)
     * stops quietly: there is no agent to exit. */
    struct agent_setup_joins joins = {on_inproc_joined, NULL, in};
    agent_setup_join(&in->set, &cfg, &joins);
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
    const struct member *me = node_self(in->set.node);
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
static const luaL_Reg node_funcs[] = {{"node", l_node_new},
                                      {"run", l_run},
                                      {"run_until", l_run_until},
                                      {NULL, NULL}};

static void open_node(lua_State *L)
{
    luaL_setfuncs(L, node_funcs, 0);
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
}

int luaopen_hearsay_core(lua_State *L)
{
    /* Scripts of simulated and in-process nodes call the library
     * functions with loops in C under their budget, as in the agent
     * (string methods find the global string table). Outside a script's
     * call they cost nothing and behave as Lua's own. */
    llib_install_globals(L, &lnode_library_charge);
    lua_newtable(L);
    lmod_open_codec(L);
    lmod_open_proto(L);
    lmod_open_sim(L);
    lua_pushstring(L, HS_VERSION);
    lua_setfield(L, -2, "version");
    lnode_open_api(L); /* self, members, ... on the module */
    open_node(L);
    return 1;
}
