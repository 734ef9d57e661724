/* lua/lnode.h: a node seen from Lua: hook scripts called as hearsay's hooks,
 * and the `hearsay` API the scripts call.
 *
 * One struct lnode binds one struct node to one Lua state: the agent's
 * own state (lua/host.c), or the state of a busted run for nodes started
 * in-process or in a simulation (lua/module.c, lua/mod_sim.c). It owns
 * the registry refs of its scripts and timers, and drops them all in
 * lnode_close. Every call into Lua runs under lua_pcall with a traceback
 * and an instruction budget; a hook that fails is logged and counted, and
 * the documented default applies.
 *
 * The files behind it: lua/call.c (calls under a budget), lua/hooks.c
 * (the hooks, lifecycle, loading scripts), lua/member.c (members as Lua
 * values), lua/api.c (the `hearsay` API); lua/lnode_int.h is what they
 * share. */
#ifndef HS_LUA_NODE_H
#define HS_LUA_NODE_H

#include <lua.h>

#include "core/node.h"
#include "lua/lib.h"

/* Hook names, in the order the docs list them. */
extern const char *const lnode_hook_names[];

struct lnode_stats {
    uint64_t calls, errors, budget_stops, memory_errors;
};

struct lnode;

/* What differs between an agent, an in-process node and a simulated one. */
struct lnode_ops {
    /* Join these addresses (host names allowed where the owner can
     * resolve them); cb as node_join's. NULL: numeric addresses only. */
    int (*join)(struct lnode *ln, const char *const *addrs, size_t n,
                node_join_cb cb, void *ud);
    /* Leave the cluster (the agent also shuts down). NULL: node_leave. */
    int (*leave)(struct lnode *ln, uint64_t timeout_ms);
};

struct ltimer;

struct lnode {
    lua_State *L;     /* the state whose registry holds our refs */
    struct node *nd;  /* NULL until bound, and once closed */
    int scripts_ref;  /* array of hook tables, or LUA_NOREF */
    int udata_ref;    /* the hearsay.node userdata, or LUA_NOREF */
    uint64_t budget;  /* VM instructions per call; 0 = none */
    bool real_time;   /* the budget bounds wall-clock time too
                              * (not in a simulation: it has its own) */
    uint64_t mem_cap; /* bytes one call may allocate (net) in a
                              * state shared with a test; 0: none (the
                              * agent's state caps itself) */
    const struct hs_logger *log;
    const struct lnode_ops *ops;
    void *owner;
    struct ltimer *timers;
    struct lnode_stats stats;
    struct lnode *prev_current; /* the node current before us */
    struct {                    /* error log rate limit, per hook */
        const char *what;
        uint64_t last;
        uint64_t suppressed;
    } quiet[16];
    int co_ref;   /* an idle coroutine kept for the next call */
    bool co_busy; /* it is running (a nested call makes one) */
};

/* Prepare ln for a state; no scripts yet. */
void lnode_init(struct lnode *ln, lua_State *L, uint64_t budget,
                const struct hs_logger *log, const struct lnode_ops *ops,
                void *owner);
/* The hooks for node_new / node_set_hooks: ud is ln. */
struct hooks lnode_hooks(struct lnode *ln);
/* Use the array of hook tables at stack index idx (popped) as the
 * scripts; the previous ones and their timers are dropped. */
void lnode_set_scripts(struct lnode *ln, int idx);
/* Cancel the timers and drop every ref; the node itself is not touched. */
void lnode_close(struct lnode *ln);
/* The node is about to go (a crash in a simulation): cancel the timers
 * and unbind it, keeping the scripts and the Lua object, so that the same
 * lnode can be bound to the node that replaces it. */
void lnode_detach(struct lnode *ln);

/* Why a binary chunk is refused, and Lua's own message for it (a load
 * in mode "t"). */
#define LNODE_BINARY_MSG "binary chunks are not allowed (text only)"
#define LNODE_BINARY_LUA_MSG "attempt to load a binary chunk (mode is 't')"

/* Load the Lua source file at path as a function (luaL_loadfilex in mode
 * "t": never bytecode, which a crafted file turns into memory errors in
 * the VM). On error pushes "path: message" (a binary chunk: "path:
 * binary chunks are not allowed (text only)") and returns the status.
 * regular_only refuses what is not a regular file (a FIFO or a device
 * would block the loop on open or read). */
int lnode_loadfile(lua_State *L, const char *path, bool regular_only);

/* Load a hook script for ln: run the file in a fresh environment (globals
 * of its own, reading through to `env_idx`) and check that it returns a
 * table of known hooks. Pushes the table and returns 0, or pushes nothing
 * and writes "file:line: message" into err. */
int lnode_load_script(struct lnode *ln, lua_State *L, const char *path,
                      int env_idx, char *err, size_t errlen);
/* Check a table of hooks (unknown names, non-functions). */
int lnode_check_hooks(lua_State *L, int idx, const char *where, char *err,
                      size_t errlen);

/* The hearsay.node userdata for ln (created on first use). */
void lnode_push(lua_State *L, struct lnode *ln);
/* Register the API functions (self, members, ...) into the table on top
 * of the stack, and the node metatable. */
void lnode_open_api(lua_State *L);
/* The node the module-level functions act on: the one whose hook or timer
 * is running, else the only one registered. */
void lnode_register(struct lnode *ln);
void lnode_unregister(struct lnode *ln);

/* A runtime failure as the API returns it (luv's convention): nil,
 * "ECODE: message", "ECODE". */
int lnode_fail(lua_State *L, int rc, const char *why);

/* Push the Lua view of a member (a read-only copy). */
void lnode_push_member(lua_State *L, const struct member *m);
void lnode_push_stats(lua_State *L, struct lnode *ln);

/* Put the sandbox's coroutine.create, resume, wrap and close, which keep
 * a call's coroutines under its budget, into the table at idx. */
void lnode_guard_coroutines(lua_State *L, int idx);
/* Pay for `work` instructions' worth of a loop in C (lua/lib.c) out of
 * the running call's budget and time: raises the budget's error, and
 * stops the call, when they are spent. Nothing outside a call. */
void lnode_charge(lua_State *L, lua_Unsigned work);
/* That charge, for llib_install. */
extern const struct llib_charge lnode_library_charge;
/* The sandbox's setmetatable: refuses a metatable with __gc (Lua runs
 * finalizers with hooks off, outside any budget). */
int lnode_setmetatable(lua_State *L);
/* The sandbox's xpcall: the message handler does not run once the call
 * is out of budget (it would run with hooks off). */
int lnode_xpcall(lua_State *L);

/* Told when a script call starts and when it ends (the agent's
 * watchdog): `what` is the hook ("on_member"), the timer ("every",
 * "after"), "load" (a script's top level), ...; `where` is "FILE:LINE"
 * of the function called. A call made inside another is part of it:
 * only the outermost is told. */
struct lnode_observer {
    void (*begin)(void *ud, const char *what, const char *where);
    void (*end)(void *ud);
    void *ud;
};
/* One observer for the process (NULL: none); it must outlive its use. */
void lnode_set_observer(const struct lnode_observer *obs);

/* Run fn (on the stack top, with nargs below it... see lnode_pcall) as a
 * hook call of ln: traceback, budget, counters. Returns the lua_pcall
 * status; on error the message is logged and popped. */
int lnode_pcall(struct lnode *ln, int nargs, int nresults, const char *what);

#endif
