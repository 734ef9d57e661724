/* lua/host.h: the agent's Lua state, which runs its hook scripts.
 *
 * A lua_host owns one lua_State (memory capped at script_memory), the
 * scripts loaded into it and the lnode that calls them as the node's
 * hooks. A reload builds a new host beside the old one and swaps only if
 * every script loads, so a broken script never replaces working ones. */
#ifndef HS_LUA_HOST_H
#define HS_LUA_HOST_H

#include "lua/lnode.h"

struct lua_host;

/* Load cfg->scripts into a new state, bound to nd (created, perhaps not
 * started: a script's top level may already set timers). On error returns
 * HS_EINVAL with "file:line: message" in err. ops/owner are the agent's
 * (join, leave). */
int lua_host_new(const struct config *cfg, const struct hs_logger *log,
                 const struct lnode_ops *ops, void *owner, struct node *nd,
                 struct lua_host **out, char *err, size_t errlen);
/* The hooks for node_set_hooks: they call the scripts. */
struct hooks lua_host_hooks(struct lua_host *h);
size_t lua_host_count(const struct lua_host *h);
struct lnode *lua_host_lnode(struct lua_host *h);
/* Drop the scripts (their timers first), then the state. */
void lua_host_free(struct lua_host *h);

#endif
