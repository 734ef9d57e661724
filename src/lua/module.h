/* lua/module.h: the Lua modules built from the C runtime. */
#ifndef HS_LUA_MODULE_H
#define HS_LUA_MODULE_H

#include <lua.h>

/* `hearsay.core` for busted and plain lua5.4: codec, protocol math,
 * configuration, simulation, in-process nodes and the node API. */
int luaopen_hearsay_core(lua_State *L);

#endif
