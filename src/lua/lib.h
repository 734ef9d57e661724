/* lua/lib.h: the standard library's functions whose work in C is not
 * bounded by the size of the state (string.rep("", 2^50), table.insert
 * on a length of 2^40, a pattern that backtracks), replaced by versions
 * that pay for their loops before and while they run. A count hook sees
 * none of that work: one VM instruction can call them. */
#ifndef HS_LUA_LIB_H
#define HS_LUA_LIB_H

#include <lua.h>

/* Who pays: `charge(L, work)` is called before (and, for long work,
 * during) a loop in C of about `work` VM instructions' worth. It may
 * raise a Lua error (the budget is spent) and then never returns; it
 * must not yield, and leaves the Lua stack as it found it (a caller may
 * have a luaL_Buffer on it). */
struct llib_charge {
    void (*charge)(lua_State *L, lua_Unsigned work);
};

/* Replace, in the tables at string_idx and table_idx (the string and
 * table libraries, or copies of them), the functions with unbounded
 * loops by charged versions: string.rep, find, match, gmatch, gsub
 * (a budgeted matcher, see lua/pattern.h), table.insert, remove, move,
 * concat, sort, unpack. `c` must outlive the state. An index of 0 leaves
 * that library alone. */
void llib_install(lua_State *L, int string_idx, int table_idx,
                  const struct llib_charge *c);

/* The same on the state's global string and table libraries (which
 * string methods, ("x"):rep(3), find through the string metatable). */
void llib_install_globals(lua_State *L, const struct llib_charge *c);

#endif
