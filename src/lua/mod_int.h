/* lua/mod_int.h: what the parts of the hearsay.core module (lua/mod_*.c,
 * lua/module.c) share, private to lua/. */
#ifndef HS_LUA_MOD_INT_H
#define HS_LUA_MOD_INT_H

#include <lua.h>

#include "core/config.h"
#include "lua/lnode.h"

/* Each puts its functions into the module table on top of the stack. */
void lmod_open_codec(lua_State *L); /* mod_codec.c: decode, encode ... */
void lmod_open_proto(lua_State *L); /* mod_proto.c: math, config */
void lmod_open_sim(lua_State *L);   /* mod_sim.c: sim, mem_live */

/* Build a config from a profile and a table of key = value overrides at
 * idx. Raises with the config's own sentence on a bad key or value. */
void lmod_check_config(lua_State *L, int idx, struct config *c);

/* Hook tables from opts.hooks (the table at opts): one table of hook
 * functions, or a list of them. Appends them to the array at `arr`. */
void lmod_add_hook_tables(lua_State *L, int opts, int arr);

#endif
