/* lua/sandbox.h: the one environment hook scripts run in, whether an
 * agent, a simulated node or an in-process node loads them.
 *
 * Every script reads through to a sandbox table built here: the safe
 * parts of the standard library, a require that loads Lua source text
 * only (the scripts' directories first, then package.path) and keeps its
 * own modules, print to the node's log, io that cannot block and reads
 * /dev/null, and the budget's coroutine, xpcall and setmetatable. An
 * agent's state exists for its scripts alone and caps its memory as a
 * whole; the simulation and in-process nodes share the test's state, so
 * there each call is capped instead (lsandbox_mem_begin). */
#ifndef HS_LUA_SANDBOX_H
#define HS_LUA_SANDBOX_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Cut the standard library of a state that runs scripts alone (the
 * agent's): no os.execute or os.exit, no io.popen, no debug, load or C
 * modules, finalizers and coroutines under the budget. */
void lsandbox_harden(lua_State *L);

/* Push a new sandbox for the scripts of one node. Their directories
 * (`paths`, n of them) go before package.path in require's search;
 * vars_ref: a registry ref of a table os.getenv answers from first, or
 * LUA_NOREF. */
void lsandbox_push(lua_State *L, const char *const *paths, size_t n,
                   int vars_ref);

/* Push a shallow copy of the global table `name` (empty if none). */
void lsandbox_copy_global(lua_State *L, const char *name);

/* io.open and io.lines that open regular files only (a FIFO, socket or
 * device would block the loop), into the io table at idx; `lines`
 * (below idx's own, at the top of the stack, popped) serves io.lines()
 * without a file. */
void lsandbox_guard_io(lua_State *L, int idx);

/* Cap what one call may allocate (net) in a state it shares: at most
 * `cap` bytes more than when it began (0: no cap). Returns what
 * lsandbox_mem_end restores; calls nest. */
int64_t lsandbox_mem_begin(lua_State *L, uint64_t cap);
void lsandbox_mem_end(lua_State *L, int64_t saved);

#endif
