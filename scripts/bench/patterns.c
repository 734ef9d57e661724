/* patterns.c: our Lua patterns (src/lua/pattern.c) against Lua's own
 * string.find, match, gmatch and gsub on typical workloads, and on a
 * pattern that backtracks without end. Run by scripts/bench-patterns;
 * prints a table.
 *
 * Each workload is a Lua function of `P` (a table holding find, match,
 * gmatch and gsub: ours or stock), run RUNS times for each side in turn
 * (the same data: 1 MiB of words, 100,000 short lines, 1 MiB of "ab");
 * the table gives the median and the worst run of each side and their
 * ratios, and the work ours charged per run (and what one unit of it
 * cost, next to what one VM instruction costs). */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/lua/pattern.h"

#define MAX_RUNS 101
#define BUDGET 10000000 /* work units the pathological case may charge */

static lua_Unsigned charged;
static lua_Unsigned limit; /* 0: none */

static void charge(lua_State *L, lua_Unsigned work)
{
    charged += work;
    if (limit != 0 && charged > limit)
        luaL_error(L, "budget spent");
}

static const struct llib_charge payer = {charge};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The data and the workloads. Text: 1 MiB of words (letters, digits,
 * underscores) separated by runs of spaces, tabs and newlines; lines:
 * 100,000 lines "key_N=value ...". */
static const char setup[] =
    "local rnd = 12345\n"
    "local function r(n) rnd = (rnd * 1103515245 + 12345) % 2147483648;"
    " return rnd % n end\n"
    "local letters = 'abcdefghijklmnopqrstuvwxyz_0123456789'\n"
    "local seps = { ' ', ' ', ' ', '  ', '\\t', '\\n', ' \\n ' }\n"
    "local parts, size = {}, 0\n"
    "while size < 1048576 do\n"
    "  local w = {}\n"
    "  for i = 1, 2 + r(8) do local k = r(#letters) + 1;"
    " w[i] = letters:sub(k, k) end\n"
    "  local s = table.concat(w) .. seps[r(#seps) + 1]\n"
    "  parts[#parts + 1] = s; size = size + #s\n"
    "end\n"
    "text = table.concat(parts):sub(1, 1048576)\n"
    "periodic = ('ab'):rep(524288)\n"
    "lines = {}\n"
    "for i = 1, 100000 do\n"
    "  lines[i] = 'key_' .. i .. '=value ' .. r(1000000) .. ' x'\n"
    "end\n"
    "lines[50000] = 'not a key line'\n"
    "work = {\n"
    "  { 'find plain, 1 MiB, no match (x10)', function(P)\n"
    "      for _ = 1, 10 do P.find(text, 'needle!', 1, true) end end },\n"
    "  { 'find plain, 1 MiB of \"ab\", (ab)*20 c', function(P)\n"
    "      P.find(periodic, ('ab'):rep(20) .. 'c', 1, true) end },\n"
    "  { 'find \"^([%w_]+)=(.*)$\", 100k lines', function(P)\n"
    "      local f, n = P.find, 0\n"
    "      for i = 1, #lines do\n"
    "        if f(lines[i], '^([%w_]+)=(.*)$') then n = n + 1 end\n"
    "      end end },\n"
    "  { 'match \"^([%w_]+)=(.*)$\", 100k lines', function(P)\n"
    "      local m = P.match\n"
    "      for i = 1, #lines do m(lines[i], '^([%w_]+)=(.*)$') end end },\n"
    "  { 'match \" (%d+)\", 100k lines (scans)', function(P)\n"
    "      local m = P.match\n"
    "      for i = 1, #lines do m(lines[i], ' (%d+)') end end },\n"
    "  { 'gsub \"%s+\" -> \" \", 1 MiB', function(P)\n"
    "      P.gsub(text, '%s+', ' ') end },\n"
    "  { 'gmatch \"%a+\", 1 MiB', function(P)\n"
    "      local n = 0\n"
    "      for _ in P.gmatch(text, '%a+') do n = n + 1 end end },\n"
    "  { 'find \"[!?]%a\", 1 MiB, no match', function(P)\n"
    "      P.find(text, '[!?]%a') end },\n"
    "  { 'backtracking: a*40, (a-)*6 b', function(P)\n"
    "      P.find(('a'):rep(40), ('a-'):rep(6) .. 'b') end },\n"
    "}\n"
    "patho = function(P)\n"
    "  return pcall(P.find, ('a'):rep(40), ('a-'):rep(12) .. 'b')\n"
    "end\n"
    "vm = function()\n"
    "  local t, s = {}, 0\n"
    "  for i = 1, 64 do t[i] = 0 end\n"
    "  for i = 1, 3000000 do t[i % 64 + 1] = i; s = s + t[(i * 7) % 64 + 1]"
    " end\n"
    "  return s\n"
    "end\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Run the function on top with `impl` (a global) as its argument; the
 * time in ms. The function stays on the stack. A full collection first,
 * so that neither side pays for the other's garbage. */
static double run_once(lua_State *L, const char *impl)
{
    lua_gc(L, LUA_GCCOLLECT);
    lua_pushvalue(L, -1);
    lua_getglobal(L, impl);
    double t0 = now_ms();
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "bench: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    return now_ms() - t0;
}

static long instructions;

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)L;
    (void)ar;
    instructions += 1000;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_patterns [RUNS]  (1..%d)\n", MAX_RUNS);
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    static const char *const names[] = {"find", "match", "gmatch", "gsub"};
    lua_createtable(L, 0, 4);
    for (size_t i = 0; i < 4; i++) {
        lpat_push(L, names[i], &payer);
        lua_setfield(L, -2, names[i]);
    }
    lua_setglobal(L, "ours");
    lua_getglobal(L, "string");
    lua_setglobal(L, "stock");
    if (luaL_dostring(L, setup) != LUA_OK) {
        fprintf(stderr, "bench: %s\n", lua_tostring(L, -1));
        return 1;
    }

    /* What one VM instruction costs, for the cost of a unit of work. */
    lua_getglobal(L, "vm");
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1000);
    double t0 = now_ms();
    lua_call(L, 0, 0);
    double vm_ns = (now_ms() - t0) * 1e6 / (double)instructions;
    lua_sethook(L, NULL, 0, 0);

    printf("| %-40s | %7s | %7s | %5s | %7s | %7s | %5s | %9s | %5s |\n",
           "workload", "stock", "ours", "ratio", "stock", "ours", "ratio",
           "work", "ns/wk");
    printf("| %-40s | %7s | %7s | %5s | %7s | %7s | %5s | %9s | %5s |\n", "",
           "median", "median", "", "worst", "worst", "", "per run", "");
    printf("|------------------------------------------|---------|"
           "---------|-------|---------|---------|-------|-----------|"
           "-------|\n");
    lua_getglobal(L, "work");
    int nwork = (int)luaL_len(L, -1);
    for (int w = 1; w <= nwork; w++) {
        lua_geti(L, -1, w);
        lua_geti(L, -1, 1);
        const char *what = lua_tostring(L, -1);
        lua_geti(L, -2, 2);
        double ours[MAX_RUNS], stock[MAX_RUNS];
        charged = 0;
        for (int i = 0; i < runs; i++) {
            stock[i] = run_once(L, "stock");
            ours[i] = run_once(L, "ours");
        }
        lua_Unsigned work = charged / (lua_Unsigned)runs;
        qsort(ours, (size_t)runs, sizeof ours[0], cmp_double);
        qsort(stock, (size_t)runs, sizeof stock[0], cmp_double);
        double om = ours[runs / 2], sm = stock[runs / 2];
        double ow = ours[runs - 1], sw = stock[runs - 1];
        printf("| %-40s | %7.2f | %7.2f | %5.2f | %7.2f | %7.2f | %5.2f |"
               " %9llu | %5.2f |\n",
               what, sm, om, om / sm, sw, ow, ow / sw, (unsigned long long)work,
               work ? om * 1e6 / (double)work : 0.0);
        lua_pop(L, 3);
    }
    lua_pop(L, 1);

    /* Lua's own would run for hours: ours alone, with a budget. */
    lua_getglobal(L, "patho");
    lua_getglobal(L, "ours");
    limit = BUDGET;
    charged = 0;
    t0 = now_ms();
    lua_call(L, 1, 2);
    double patho_ms = now_ms() - t0;
    printf("| %-40s | %7s | %7.2f | %5s | %7s | %7s | %5s | %9llu | %5.2f |"
           "\n",
           "backtracking: a*40, (a-)*12 b (budget)", "hours", patho_ms, "-",
           "-", "-", "-", (unsigned long long)charged,
           patho_ms * 1e6 / (double)charged);
    printf("\nours stopped by the budget: %s (%s)\n",
           lua_toboolean(L, -2) ? "no" : "yes", lua_tostring(L, -1));
    printf("one VM instruction: %.2f ns; LPAT_STEPS_PER_WORK = %d\n", vm_ns,
           LPAT_STEPS_PER_WORK);
    lua_close(L);
    return 0;
}
