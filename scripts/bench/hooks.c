/* hooks.c: what a hook call costs: the Lua call with its coroutine and
 * budget, and the copy of a member into a Lua table. Run by
 * scripts/bench-hooks; prints a table. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/core/node_int.h"
#include "../../src/io/sim.h"
#include "../../src/lua/lnode.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void use_scripts(lua_State *L, struct lnode *ln, const char *src)
{
    if (luaL_dostring(L, src)) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return;
    }
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lnode_set_scripts(ln, lua_gettop(L));
}

static void row(const char *what, double ns, long n)
{
    printf("| %-44s | %9.0f | %8ld |\n", what, ns / (double)n, n);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    struct sim *s;
    sim_new(1, &s);
    struct config c;
    config_defaults(&c, "lan");
    snprintf(c.name, sizeof c.name, "bench-node");
    size_t idx;
    sim_add(s, &c, NULL, &idx);
    config_free(&c);
    struct node *nd = sim_node(s, idx);
    const struct member *me = node_self(nd);

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    struct lnode ln;
    lnode_init(&ln, L, 10000000, NULL, NULL, NULL);
    ln.nd = nd;
    struct hooks h = lnode_hooks(&ln);

    printf("| %-44s | %9s | %8s |\n", "what", "ns each", "calls");
    printf("|%s|%s|%s|\n", "----------------------------------------------",
           "-----------", "----------");

    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        lnode_push_member(L, me);
        lua_pop(L, 1);
    }
    row("member copy (lnode_push_member)", now_ns() - t0, n);

    use_scripts(L, &ln, "return { on_member = function(e, m) end }");
    t0 = now_ns();
    for (long i = 0; i < n; i++)
        h.on_member(h.ud, HOOK_UPDATE, me);
    row("on_member call, empty hook (with the copy)", now_ns() - t0, n);

    use_scripts(L, &ln,
                "return { on_member = function(e, m) "
                "local x = m.name .. m.state end }");
    t0 = now_ns();
    for (long i = 0; i < n; i++)
        h.on_member(h.ud, HOOK_UPDATE, me);
    row("on_member call reading two fields", now_ns() - t0, n);

    ln.budget = 0;
    use_scripts(L, &ln, "return { on_member = function(e, m) end }");
    t0 = now_ns();
    for (long i = 0; i < n; i++)
        h.on_member(h.ud, HOOK_UPDATE, me);
    row("on_member call, no instruction budget", now_ns() - t0, n);
    ln.budget = 10000000;

    use_scripts(L, &ln, "return { on_message = function(f, p) end }");
    t0 = now_ns();
    for (long i = 0; i < n; i++)
        h.on_message(h.ud, "sender", 6, (const uint8_t *)"payload", 7);
    row("on_message call (no member copy)", now_ns() - t0, n);

    use_scripts(L, &ln,
                "return { allow_member = function(m) "
                "return true end }");
    char why[64];
    t0 = now_ns();
    for (long i = 0; i < n; i++)
        h.allow_member(h.ud, me, why, sizeof why);
    row("allow_member veto call", now_ns() - t0, n);

    /* A hook that works: 10,000 VM instructions, which the budget's hook
     * pays for in stretches. */
    long m = n / 100 > 0 ? n / 100 : 1;
    use_scripts(L, &ln,
                "return { on_message = function(f, p) "
                "local x = 0 for i = 1, 3333 do x = x + i end end }");
    t0 = now_ns();
    for (long i = 0; i < m; i++)
        h.on_message(h.ud, "sender", 6, (const uint8_t *)"payload", 7);
    row("on_message call running 10,000 instructions", now_ns() - t0, m);

    /* The floor: a plain protected call of an empty Lua function. */
    (void)luaL_dostring(L, "return function() end");
    int f = luaL_ref(L, LUA_REGISTRYINDEX);
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, f);
        lua_pcall(L, 0, 0, 0);
    }
    row("reference: lua_pcall of an empty function", now_ns() - t0, n);

    printf("\nhook calls: %llu, errors: %llu\n",
           (unsigned long long)ln.stats.calls,
           (unsigned long long)ln.stats.errors);
    lnode_close(&ln);
    lua_close(L);
    sim_free(s);
    return 0;
}
