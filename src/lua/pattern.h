/* lua/pattern.h: Lua patterns (string.find, match, gmatch, gsub) with a
 * matcher that pays for its work as it goes. Lua's own matcher backtracks
 * in C without any bound (("a"):rep(40):find(("a-"):rep(12) .. "b")),
 * where no count hook can stop it. These functions take the same
 * arguments and give the same results and errors as Lua 5.4's, and call
 * the charge of lua/lib.h every so many steps of matching. */
#ifndef HS_LUA_PATTERN_H
#define HS_LUA_PATTERN_H

#include <lua.h>

#include "lua/lib.h"

/* C closures: upvalue 1 is a light userdata, the const struct
 * llib_charge * that pays (lpat_push pushes them so). */
int lpat_find(lua_State *L);
int lpat_match(lua_State *L);
int lpat_gmatch(lua_State *L);
int lpat_gsub(lua_State *L);

/* Push lpat_<name> ("find", "match", "gmatch", "gsub") as a closure
 * charging c (c must outlive the closure); raises for any other name. */
void lpat_push(lua_State *L, const char *name, const struct llib_charge *c);

/* Steps of matching (one pattern item tried at one subject position, or
 * a byte compared) per unit of work charged. A step costs about what a
 * VM instruction does (3.5 ns against 3.8 ns on the machine of
 * BENCHMARKS.md, "Lua patterns"), so one step is one unit. */
#define LPAT_STEPS_PER_WORK 1

#endif
