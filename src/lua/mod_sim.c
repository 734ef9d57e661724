/* lua/mod_sim.c: hearsay.core's simulation: core.sim{...} and its
 * methods, over io/sim.c, with every simulated node's hooks run as
 * scripts in the calling Lua state. */
#include "lua/mod_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "core/metadata.h"
#include "core/node.h"
#include "io/sim.h"
#include "lua/sandbox.h"

static int fail(lua_State *L, int rc, const char *why)
{
    return lnode_fail(L, rc, why);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
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
    snprintf(line, sizeof line, "%10.3f %s [%s] %s", (double)now / 1000.0, node,
             hs_log_level_name(level), msg);
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
    /* The scripts' sandbox, as an agent's */
    lsandbox_push(L, (const char *const *)cfg->scripts.v, cfg->scripts.n,
                  sn->env_ref);
    for (size_t i = 0; i < cfg->scripts.n; i++) {
        if (lnode_load_script(&sn->ln, L, cfg->scripts.v[i], -1, sn->err,
                              sizeof sn->err) == 0)
            lua_rawseti(L, arr, (lua_Integer)lua_rawlen(L, arr) + 1);
        if (sn->err[0]) {
            HS_ERROR(sn->ln.log, "script not loaded: %s", sn->err);
            break;
        }
    }
    lua_pop(L, 1); /* the sandbox */
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
    sn->ln.mem_cap = node_config(nd)->script_memory;
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
    lmod_add_hook_tables(L, 2, arr);
    struct config c;
    lmod_check_config(L, 2, &c);
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
    sim_set_group(ls->sim, check_index(L, ls, 2), (int)luaL_checkinteger(L, 3));
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

static const luaL_Reg sim_methods[] = {{"add", l_sim_add},
                                       {"run", l_sim_run},
                                       {"now", l_sim_now},
                                       {"count", l_sim_count},
                                       {"name", l_sim_name},
                                       {"addr", l_sim_addr},
                                       {"alive", l_sim_alive},
                                       {"kill", l_sim_kill},
                                       {"restart", l_sim_restart},
                                       {"pause", l_sim_pause},
                                       {"group", l_sim_group},
                                       {"heal", l_sim_heal},
                                       {"link", l_sim_link},
                                       {"link_between", l_sim_link_between},
                                       {"node", l_sim_node},
                                       {"paused", l_sim_paused},
                                       {"slow", l_sim_slow},
                                       {"log_level", l_sim_log_level},
                                       {"converged", l_sim_converged},
                                       {"queued", l_sim_queued},
                                       {"count_seeing", l_sim_count_seeing},
                                       {"join", l_sim_join},
                                       {"leave", l_sim_leave},
                                       {"member", l_sim_member},
                                       {"stats", l_sim_stats},
                                       {"inject", l_sim_inject},
                                       {"trace", l_sim_trace},
                                       {"close", l_sim_gc},
                                       {"block", l_sim_block},
                                       {"inject_stream", l_sim_inject_stream},
                                       {"events", l_sim_events},
                                       {"keys", l_sim_keys},
                                       {"clock", l_sim_clock},
                                       {NULL, NULL}};

void lmod_open_sim(lua_State *L)
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
    lua_pushcfunction(L, l_sim_new);
    lua_setfield(L, -2, "sim");
    lua_pushcfunction(L, l_mem_live);
    lua_setfield(L, -2, "mem_live");
}
