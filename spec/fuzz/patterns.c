/* patterns.c: differential libFuzzer target for the Lua patterns of
 * src/lua/pattern.c against Lua's own string.find, match, gmatch and
 * gsub.
 *
 * The input is a header of four bytes and three fields:
 *
 *   mode  init  extra  sep  pattern sep subject sep replacement
 *
 * `sep` is the byte that separates the fields (a missing field is
 * empty). `mode` picks the call (see `modes` below): find, find plain,
 * find with an odd fourth argument, match, gmatch (every match
 * collected), gsub with a string, a table (with an __index that answers
 * strings, numbers, false, nil or a table), a function (likewise) or a
 * number as replacement, or gsub with a bad replacement. `init` is the
 * start (absent, negative, past the end, a float, a string...), `extra`
 * the fourth argument (gsub's maximum count, find's `plain`).
 *
 * Ours runs first, with a charge that stops it past BUDGET steps: then
 * the input is skipped (Lua's own matcher might run for hours on it).
 * Otherwise Lua's own runs on the same arguments in the same state, and
 * both must give the same values (same count, types and values) or the
 * same error message; else the target prints both and aborts. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../../src/lua/pattern.h"

/* Steps of our matcher per input: a scan of a 4 KiB subject takes a few
 * thousand, so only inputs that backtrack reach it; spending it takes
 * about 20 ms under the sanitizers. */
#define BUDGET 300000

static lua_State *L;
static lua_Unsigned spent; /* work units charged for this input */
static bool over;          /* and the budget ran out */

static void charge(lua_State *l, lua_Unsigned work)
{
    spent += work;
    if (spent > BUDGET / LPAT_STEPS_PER_WORK) {
        over = true;
        luaL_error(l, "fuzz: budget spent");
    }
}

static const struct llib_charge payer = {charge};

/* run(impl, mode, init, extra, pattern, subject, replacement) returns
 * the outcome as a table { n = ..., ... }: pcall's results (gmatch: the
 * count of each step's values, then the values). compare(a, b) returns
 * nil, or a description of the difference. Each function of `impl` is
 * called from the same line for both sides, so that argument errors name
 * it the same way. */
static const char harness[] =
    "local function call(f, ...)\n"
    "  local r = table.pack(f(...))\n"
    "  return table.unpack(r, 1, r.n)\n"
    "end\n"
    "local function gmatch_all(f, ...)\n"
    "  local it = f(...)\n"
    "  local out = { n = 0 }\n"
    "  for _ = 1, 100000 do\n"
    "    local r = table.pack(it())\n"
    "    out.n = out.n + 1\n"
    "    out[out.n] = r.n\n"
    "    for i = 1, r.n do out.n = out.n + 1; out[out.n] = r[i] end\n"
    "    if r[1] == nil then break end\n"
    "  end\n"
    "  local r = table.pack(it())\n" /* once more after the end */
    "  out.n = out.n + 1\n"
    "  out[out.n] = r.n\n"
    "  return table.unpack(out, 1, out.n)\n"
    "end\n"
    "local function init_of(b, s)\n"
    "  if b == 0 then return nil\n"
    "  elseif b == 1 then return math.mininteger\n"
    "  elseif b == 2 then return math.maxinteger\n"
    "  elseif b == 3 then return 1.5\n"
    "  elseif b == 4 then return 2.0\n"
    "  elseif b == 5 then return '3'\n"
    "  elseif b == 6 then return 'x'\n"
    "  elseif b == 7 then return #s + 1\n"
    "  elseif b == 8 then return -#s\n"
    "  end\n"
    "  return b < 128 and b or b - 256\n"
    "end\n"
    "local function max_of(b)\n"
    "  if b == 0 then return nil\n"
    "  elseif b == 1 then return 1.5\n"
    "  elseif b == 2 then return math.maxinteger\n"
    "  elseif b == 3 then return math.mininteger\n"
    "  elseif b == 4 then return '2'\n"
    "  end\n"
    "  return b < 128 and b or b - 256\n"
    "end\n"
    "local plains = { [0] = false, 0, '', {} }\n"
    "local function table_of(r)\n"
    "  local t = setmetatable({}, { __index = function(_, k)\n"
    "    local h = #tostring(k) % 7\n"
    "    if h == 0 then return nil\n"
    "    elseif h == 1 then return false\n"
    "    elseif h == 2 then return #tostring(k) * 10\n"
    "    elseif h == 6 and #r % 2 == 1 then return {}\n"
    "    end\n"
    "    return r .. tostring(k)\n"
    "  end })\n"
    "  if #r > 0 then t[r:sub(1, 1)] = r end\n"
    "  return t\n"
    "end\n"
    "local function function_of(r)\n"
    "  return function(...)\n"
    "    local n, a = select('#', ...), ...\n"
    "    local h = (#tostring(a) + n) % 7\n"
    "    if h == 0 then return nil\n"
    "    elseif h == 1 then return false\n"
    "    elseif h == 2 then return n * 1000 + 0.5\n"
    "    elseif h == 3 and #r % 3 == 2 then return true\n"
    "    end\n"
    "    local t = {}\n"
    "    for i = 1, n do t[i] = tostring((select(i, ...))) end\n"
    "    return r .. table.concat(t, ',')\n"
    "  end\n"
    "end\n"
    "local bad = { true, false, coroutine.create(print) }\n"
    "function run(impl, mode, ib, xb, p, s, r)\n"
    "  local init, max = init_of(ib, s), max_of(xb)\n"
    "  local f\n"
    "  if mode == 0 then\n"
    "    f = function() return call(impl.find, s, p, init) end\n"
    "  elseif mode == 1 then\n"
    "    f = function() return call(impl.find, s, p, init, true) end\n"
    "  elseif mode == 2 then\n"
    "    local pl = plains[xb % 4]\n"
    "    f = function() return call(impl.find, s, p, init, pl) end\n"
    "  elseif mode == 3 then\n"
    "    f = function() return call(impl.match, s, p, init) end\n"
    "  elseif mode == 4 then\n"
    "    f = function() return gmatch_all(impl.gmatch, s, p, init) end\n"
    "  elseif mode == 5 then\n"
    "    f = function() return call(impl.gsub, s, p, r, max) end\n"
    "  elseif mode == 6 then\n"
    "    local t = table_of(r)\n"
    "    f = function() return call(impl.gsub, s, p, t, max) end\n"
    "  elseif mode == 7 then\n"
    "    local fn = function_of(r)\n"
    "    f = function() return call(impl.gsub, s, p, fn, max) end\n"
    "  elseif mode == 8 then\n"
    "    local x = tonumber(r) or #r + 0.25\n"
    "    f = function() return call(impl.gsub, s, p, x, max) end\n"
    "  else\n"
    "    local x = bad[#r % 3 + 1]\n"
    "    if #r % 4 == 3 then x = nil end\n"
    "    f = function() return call(impl.gsub, s, p, x, max) end\n"
    "  end\n"
    "  return table.pack(pcall(f))\n"
    "end\n"
    "local function show(t)\n"
    "  local o = {}\n"
    "  for i = 1, t.n do\n"
    "    local v = t[i]\n"
    "    o[i] = (math.type(v) or type(v)) .. ' ' ..\n"
    "      (type(v) == 'string' and string.format('%q', v) or tostring(v))\n"
    "  end\n"
    "  return '{' .. table.concat(o, ', ') .. '}'\n"
    "end\n"
    "function compare(a, b)\n"
    "  local same = a.n == b.n\n"
    "  for i = 1, a.n do\n"
    "    local x, y = a[i], b[i]\n"
    "    if type(x) ~= type(y) or math.type(x) ~= math.type(y) or\n"
    "        x ~= y then\n"
    "      same = false\n"
    "    end\n"
    "  end\n"
    "  if not same then\n"
    "    return 'ours:  ' .. show(a) .. '\\nstock: ' .. show(b)\n"
    "  end\n"
    "end\n";

#define MODES 10
static const char *const mode_names[MODES] = {
    "find",        "find plain",          "find plain=x", "match",
    "gmatch all",  "gsub string",         "gsub table",   "gsub function",
    "gsub number", "gsub bad replacement"};

static void close_state(void)
{
    lua_close(L);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, harness) != LUA_OK) {
        fprintf(stderr, "fuzz patterns: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* ours = { find = ..., match = ..., gmatch = ..., gsub = ... } */
    static const char *const names[] = {"find", "match", "gmatch", "gsub"};
    lua_createtable(L, 0, 4);
    for (size_t i = 0; i < HS_ARRAY_LEN(names); i++) {
        lpat_push(L, names[i], &payer);
        lua_setfield(L, -2, names[i]);
    }
    lua_setglobal(L, "ours");
    lua_createtable(L, 0, 4);
    lua_getglobal(L, "string");
    for (size_t i = 0; i < HS_ARRAY_LEN(names); i++) {
        lua_getfield(L, -1, names[i]);
        lua_setfield(L, -3, names[i]);
    }
    lua_pop(L, 1);
    lua_setglobal(L, "stock");
    atexit(close_state);
    return 0;
}

/* Field `i` (0: pattern, 1: subject, 2: replacement) of p[0..n),
 * separated by `sep`. */
static void field(const uint8_t *p, size_t n, uint8_t sep, int i,
                  const char **out, size_t *len)
{
    const uint8_t *end = p + n;
    for (; i > 0 && p < end; i--) {
        const uint8_t *q = memchr(p, sep, (size_t)(end - p));
        p = q == NULL ? end : q + 1;
    }
    const uint8_t *q = memchr(p, sep, (size_t)(end - p));
    *out = (const char *)p;
    *len = (size_t)((q == NULL ? end : q) - p);
}

/* Call run(impl, ...) and leave its outcome on the stack. */
static void run(const char *impl, int mode, const uint8_t *data, size_t size)
{
    lua_getglobal(L, "run");
    lua_getglobal(L, impl);
    lua_pushinteger(L, mode);
    lua_pushinteger(L, data[1]);
    lua_pushinteger(L, data[2]);
    for (int i = 0; i < 3; i++) {
        const char *f;
        size_t n;
        field(data + 4, size - 4, data[3], i, &f, &n);
        lua_pushlstring(L, f, n);
    }
    if (lua_pcall(L, 7, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz patterns: harness: %s\n", lua_tostring(L, -1));
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int mode = data[0] % MODES;
    spent = 0;
    over = false;
    run("ours", mode, data, size);
    if (over) { /* stopped by the budget: stock Lua might never end */
        lua_settop(L, 0);
        return 0;
    }
    run("stock", mode, data, size);
    lua_getglobal(L, "compare");
    lua_insert(L, -3);
    lua_call(L, 2, 1);
    if (!lua_isnil(L, -1)) {
        const char *f[3];
        size_t n[3];
        for (int i = 0; i < 3; i++)
            field(data + 4, size - 4, data[3], i, &f[i], &n[i]);
        fprintf(stderr,
                "fuzz patterns: ours and Lua's differ\n"
                "mode %s, init byte %u, extra byte %u\n"
                "pattern (%zu bytes): %.*s\nsubject (%zu bytes): %.*s\n"
                "replacement (%zu bytes): %.*s\n%s\n",
                mode_names[mode], data[1], data[2], n[0], (int)n[0], f[0], n[1],
                (int)n[1], f[1], n[2], (int)n[2], f[2], lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    return 0;
}
