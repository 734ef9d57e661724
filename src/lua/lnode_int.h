/* lua/lnode_int.h: what the files of the node binding share (call.c,
 * member.c, hooks.c, api.c), private to lua/. lua/lnode.h is the
 * binding's interface. */
#ifndef HS_LUA_LNODE_INT_H
#define HS_LUA_LNODE_INT_H

#include "lua/lnode.h"

#define NODE_MT "hearsay.node"
#define TIMER_MT "hearsay.timer"

/* ===== hooks.c ===== */

/* The registry refs of ln hold what they should: the scripts a table,
 * the idle coroutine a thread, the node object a userdata pointing back
 * at ln (HS_INVARIANT). */
bool lnode_refs_ok(struct lnode *ln);

/* ===== call.c ===== */

/* The thread to push a call's function and arguments on: a hook fired
 * from inside a script (update_private_data calls private_data) runs on
 * top of that script's call. */
lua_State *lnode_state(const struct lnode *ln);
/* The node module functions act on: the one whose call is running, else
 * the only one registered; NULL otherwise, with *nreg the number
 * registered. */
struct lnode *lnode_acting(size_t *nreg);
/* Run the function on top of L as ln's script top level ("load"), under
 * `budget` instructions, acting on ln: on success leaves its one result;
 * on failure the message. *stopped tells a budget stop. */
int lnode_run_top(struct lnode *ln, lua_State *L, uint64_t budget,
                  bool *stopped);

/* ===== member.c ===== */

/* Hide the metatable on top of the stack from getmetatable: a script
 * that could reach it could add a __gc for the next object made with it
 * (see lnode_setmetatable), or change how every script sees members. */
void lnode_protect_metatable(lua_State *L);

/* ===== hooks.c: calling the hooks ===== */

/* Every hook runs inside one more lua_pcall, of hook_body: building the
 * arguments allocates too, and a state at its memory cap must fail that
 * hook, not abort the process (lua_atpanic). */

enum hook_kind {
    K_MEMBER,
    K_META,
    K_MESSAGE,
    K_ALLOW,
    K_MERGE,
    K_CONFLICT,
    K_ACK,
    K_PING,
    K_LOCAL,
    K_REMOTE,
    K_TIMER,
    K_JOINED,
    K_VALIDATE,
    K_APPLIED,
    K_KEYS
};

struct hook_call {
    struct lnode *ln;
    int kind;
    int event;
    const struct member *m, *m2;
    const struct member *const *ms;
    size_t n;
    const char *from;
    size_t fromlen;
    const uint8_t *p;
    uint64_t rtt;
    bool join;
    struct buf *out;
    char *why;
    size_t whylen;
    int rc;
    void *obj; /* the timer, join or keyring operation */
    const struct meta_change *mc;
    const struct node_keys_result *keys;
};

/* Run the hook call c for ln (lua_pcall of hook_body). */
void lnode_guard(struct lnode *ln, struct hook_call *c);

struct ltimer {
    struct ltimer *next, *prev;
    struct lnode *ln;
    struct node_utimer *ut; /* NULL once done */
    int fn_ref, self_ref;
    bool repeat;
};

/* The timer ended (fired once, cancelled): unlink it, drop its refs. */
void lnode_timer_done(struct ltimer *t);

/* ===== api.c: the bodies of calls the API started ===== */

struct ljoin;
struct lkeys;
void lnode_timer_body(lua_State *L, struct ltimer *t);
void lnode_joined_body(lua_State *L, struct ljoin *j, int n, int err,
                       const char *why);
void lnode_keys_body(lua_State *L, struct lkeys *k,
                     const struct node_keys_result *r);
/* Drop ln's keyring operations still waiting (they would call back). */
void lnode_cancel_keys(struct lnode *ln);

#endif
