/* lua/lib.c: the standard library under a budget. The functions below
 * take the arguments of Lua 5.4's and give its results and errors, but
 * pay (struct llib_charge) for their loops in C before they run them, or
 * as they go: a count hook fires between VM instructions, never inside
 * one call of a library function, and these calls loop for as long as
 * their arguments say, whatever the size of the state:
 *   string.rep("", 2^50)                        2^50 turns, no memory
 *   table.insert(t, 1, x), #t == 2^40           (a __len, or t[2^40])
 *   table.remove, concat, unpack, move, sort    likewise
 *   string.find/match/gmatch/gsub               backtracking patterns
 * The table functions read a length once and pay for it before looping,
 * so a __len that answers differently each time cannot lie about the
 * work; element access still honours __index and __newindex, as Lua's. */
#include "lua/lib.h"

#include <lauxlib.h>
#include <limits.h>
#include <string.h>

#include "base/hs.h"
#include "lua/pattern.h"

/* Bytes copied per unit of work: a VM instruction moves a value, memcpy
 * moves a cache line in about that time. */
#define BYTES_PER_WORK 64
/* Turns of string.rep's loop per unit (a turn, a memcpy of a short piece,
 * takes about 2 ns, half an instruction's time). */
#define TURNS_PER_WORK 4
/* (A step of the pattern matcher costs about one instruction:
 * LPAT_STEPS_PER_WORK, BENCHMARKS.md "Lua patterns".) */

static void pay(lua_State *L, lua_Unsigned work)
{
    const struct llib_charge *c = lua_touserdata(L, lua_upvalueindex(1));
    if (work > 0)
        c->charge(L, work);
}

/* Call upvalue 2 (the library's own function) with the arguments. */
static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* ===== string ===== */

/* string.rep(s, n [, sep]): n turns of the copy loop, even when nothing
 * is copied. */
static int rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0)
        return call_original(L);
    if (l + lsep == 0) { /* Lua's own would loop n times for nothing */
        lua_pushliteral(L, "");
        return 1;
    }
    lua_Unsigned un = (lua_Unsigned)n;
    lua_Unsigned piece = (lua_Unsigned)l + lsep;
    lua_Unsigned bytes =
        piece != 0 && un > LUA_MAXINTEGER / piece ? LUA_MAXINTEGER : un * piece;
    /* The result Lua refuses as too large (or the allocator as more than
     * the state may hold) costs nothing: it fails before the loop. */
    if (bytes < (lua_Unsigned)LUA_MAXINTEGER)
        pay(L, un / TURNS_PER_WORK + bytes / BYTES_PER_WORK);
    return call_original(L);
}

/* ===== table ===== */

/* lua's checktab: a table, or anything whose metatable has the fields
 * that the function needs. */
#define NEED_R 1
#define NEED_W 2
#define NEED_L 4

static void check_table(lua_State *L, int arg, int need)
{
    if (lua_type(L, arg) == LUA_TTABLE)
        return;
    int n = 1;
    if (lua_getmetatable(L, arg) &&
        (!(need & NEED_R) ||
         (n++, lua_getfield(L, -n, "__index") != LUA_TNIL)) &&
        (!(need & NEED_W) ||
         (n++, lua_getfield(L, -n, "__newindex") != LUA_TNIL)) &&
        (!(need & NEED_L) || (n++, lua_getfield(L, -n, "__len") != LUA_TNIL))) {
        lua_pop(L, n);
        return;
    }
    luaL_checktype(L, arg, LUA_TTABLE); /* raises the usual message */
}

static lua_Integer length(lua_State *L, int arg, int need)
{
    check_table(L, arg, need | NEED_L);
    return luaL_len(L, arg);
}

/* table.insert(t, [pos,] v) */
static int insert(lua_State *L)
{
    lua_Integer e = length(L, 1, NEED_R | NEED_W);
    e = (lua_Integer)((lua_Unsigned)e + 1u); /* first empty slot */
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2,
                      "position out of bounds");
        pay(L, (lua_Unsigned)e - (lua_Unsigned)pos);
        for (lua_Integer i = e; i > pos; i--) {
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

/* table.remove(t [, pos]) */
static int remove_(lua_State *L)
{
    lua_Integer size = length(L, 1, NEED_R | NEED_W);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2,
                      "position out of bounds");
    if (pos < size)
        pay(L, (lua_Unsigned)size - (lua_Unsigned)pos);
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.move(a1, f, e, t [, a2]): reads no length; its bounds are its
 * arguments, checked by Lua's own function, which then copies e-f+1. */
static int move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    luaL_checkinteger(L, 4);
    if (e >= f)
        pay(L, (lua_Unsigned)e - (lua_Unsigned)f + 1u);
    return call_original(L);
}

/* Lua's own function with the bounds i and j, read here, as its
 * arguments at `at` and at + 1: it then reads no length of its own. */
static int call_with_bounds(lua_State *L, int at, lua_Integer i, lua_Integer j)
{
    lua_settop(L, at + 1);
    lua_pushinteger(L, i);
    lua_replace(L, at);
    lua_pushinteger(L, j);
    lua_replace(L, at + 1);
    return call_original(L);
}

/* Elements from i to j, or 0 when there are none. */
static lua_Unsigned span(lua_Integer i, lua_Integer j)
{
    if (i > j)
        return 0;
    lua_Unsigned d = (lua_Unsigned)j - (lua_Unsigned)i;
    return d == LUA_MAXUNSIGNED ? d : d + 1u; /* minint..maxint */
}

/* table.concat(t [, sep [, i [, j]]]) */
static int concat(lua_State *L)
{
    size_t lsep;
    luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    check_table(L, 1, NEED_R);
    lua_Integer j =
        lua_isnoneornil(L, 4) ? length(L, 1, NEED_R) : luaL_checkinteger(L, 4);
    lua_Unsigned n = span(i, j);
    lua_Unsigned seps =
        lsep && n > LUA_MAXINTEGER / lsep ? LUA_MAXINTEGER : n * lsep;
    pay(L, n + seps / BYTES_PER_WORK);
    return call_with_bounds(L, 3, i, j);
}

/* table.unpack(t [, i [, j]]) */
static int unpack(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j =
        lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
    lua_Unsigned n = span(i, j);
    /* Lua refuses more than the stack can take before looping. */
    if (n <= INT_MAX)
        pay(L, n);
    return call_with_bounds(L, 2, i, j);
}

static int fixed_len(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

/* table.sort(t [, comp]): about n log2 n comparisons and moves. Lua's
 * own reads the length once more: the same table, asked twice in a row,
 * by a __len that lies, answers Lua's function what it likes, so sort
 * sees a proxy whose __len is the one length paid for. */
static int sort(lua_State *L)
{
    lua_Integer n = length(L, 1, NEED_R | NEED_W);
    if (n > 1 && n < INT_MAX) { /* else Lua's sorts nothing, or refuses */
        lua_Unsigned cost = 0;
        for (lua_Integer k = n; k > 1; k >>= 1)
            cost += (lua_Unsigned)n;
        pay(L, cost);
    }
    if (luaL_getmetafield(L, 1, "__len") == LUA_TNIL)
        return call_original(L);
    lua_pop(L, 1);
    /* A proxy: reads and writes go to t, the length is n. */
    lua_settop(L, 2);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushinteger(L, n);
    lua_pushcclosure(L, fixed_len, 1);
    lua_setfield(L, -2, "__len");
    lua_setmetatable(L, -2);
    lua_replace(L, 1);
    return call_original(L);
}

static const luaL_Reg table_fns[] = {
    {"insert", insert}, {"remove", remove_}, {"move", move}, {"concat", concat},
    {"unpack", unpack}, {"sort", sort},      {NULL, NULL}};

/* Replace t[name] by fn, a closure over c and t's old function. */
static void wrap(lua_State *L, int t, const char *name, lua_CFunction fn,
                 const struct llib_charge *c)
{
    if (lua_getfield(L, t, name) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    lua_pushlightuserdata(L, (void *)c);
    lua_insert(L, -2);
    lua_pushcclosure(L, fn, 2);
    lua_setfield(L, t, name);
}

void llib_install(lua_State *L, int string_idx, int table_idx,
                  const struct llib_charge *c)
{
    if (string_idx) {
        int s = lua_absindex(L, string_idx);
        wrap(L, s, "rep", rep, c);
        static const char *const pats[] = {"find", "match", "gmatch", "gsub",
                                           NULL};
        for (int i = 0; pats[i]; i++) {
            lpat_push(L, pats[i], c);
            lua_setfield(L, s, pats[i]);
        }
    }
    if (table_idx) {
        int t = lua_absindex(L, table_idx);
        for (const luaL_Reg *r = table_fns; r->name; r++)
            wrap(L, t, r->name, r->func, c);
    }
}

void llib_install_globals(lua_State *L, const struct llib_charge *c)
{
    lua_getglobal(L, "string");
    lua_getglobal(L, "table");
    if (lua_istable(L, -2) && lua_istable(L, -1))
        llib_install(L, -2, -1, c);
    lua_pop(L, 2);
}
