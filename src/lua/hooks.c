/* lua/hooks.c: hook scripts as hearsay's hooks (memberlist's delegates
 * and pekonode's callbacks, in Lua): calling them, the lnode's lifecycle,
 * loading the scripts.
 *
 * Every call into Lua goes through lnode_pcall: a traceback handler under
 * the function (lua.c's msghandler), an instruction budget (a count hook,
 * as redis's script_lua.c), counters. A failing hook never stops the
 * node: notifications are skipped, a veto refuses, a value keeps the old
 * one. */
#include "lua/lnode_int.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/members.h"
#include "core/metadata.h"

/* A script's top level (at load) may run this many times script_budget:
 * it builds the script's tables once. */
#define LOAD_BUDGET_TIMES 10

const char *const lnode_hook_names[] = {
    "on_member",   "private_data", "validate_metadata",
    "on_metadata", "allow_member", "allow_merge",
    "on_conflict", "on_message",   "ack_payload",
    "on_ping",     "local_state",  "merge_remote_state",
    NULL};

/* ===== Calling the scripts' hooks ===== */

/* Push the scripts' functions for hook `name`, one at a time: returns the
 * number of scripts; call fn(i) for each that defines it. */
struct each {
    struct lnode *ln;
    lua_State *L;
    const char *name;
    int scripts; /* stack index of the scripts array */
    int n;
};

static bool each_begin(struct lnode *ln, const char *name, struct each *e)
{
    e->ln = ln;
    e->L = lnode_state(ln);
    e->name = name;
    if (ln->scripts_ref == LUA_NOREF || ln->nd == NULL)
        return false;
    lua_rawgeti(e->L, LUA_REGISTRYINDEX, ln->scripts_ref);
    e->scripts = lua_gettop(e->L);
    e->n = (int)lua_rawlen(e->L, e->scripts);
    return true;
}

/* Push script i's function for the hook, or return false. */
static bool each_get(struct each *e, int i)
{
    lua_State *L = e->L;
    lua_rawgeti(L, e->scripts, i);
    /* Raw: an __index on a script's table would run outside any call. */
    lua_pushstring(L, e->name);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        return true;
    }
    lua_pop(L, 2);
    return false;
}

static void each_end(struct each *e)
{
    lua_settop(e->L, e->scripts - 1);
}

/* Call every script's hook `name` with the nargs values on top of the
 * stack (they are popped). */
static void notify(struct lnode *ln, const char *name, int nargs)
{
    lua_State *L = lnode_state(ln);
    int first = lua_gettop(L) - nargs + 1;
    struct each e;
    if (each_begin(ln, name, &e)) {
        for (int i = 1; i <= e.n; i++) {
            if (!each_get(&e, i))
                continue;
            for (int a = 0; a < nargs; a++)
                lua_pushvalue(L, first + a);
            lnode_pcall(ln, nargs, 0, name);
        }
        each_end(&e);
    }
    lua_settop(L, first - 1);
}

/* A veto hook: every script must return a true value. Returns 0 or
 * HS_EREFUSED with a reason; an error refuses too. */
static int veto(struct lnode *ln, const char *name, int nargs, char *why,
                size_t whylen)
{
    lua_State *L = lnode_state(ln);
    int first = lua_gettop(L) - nargs + 1;
    int rc = 0;
    struct each e;
    if (each_begin(ln, name, &e)) {
        for (int i = 1; i <= e.n && rc == 0; i++) {
            if (!each_get(&e, i))
                continue;
            for (int a = 0; a < nargs; a++)
                lua_pushvalue(L, first + a);
            if (lnode_pcall(ln, nargs, 2, name) != LUA_OK) {
                snprintf(why, whylen, "%s failed (see the log)", name);
                rc = HS_EREFUSED;
                continue;
            }
            if (!lua_toboolean(L, -2)) {
                const char *r = lua_tostring(L, -1);
                snprintf(why, whylen, "%s", r ? r : "refused by a script");
                rc = HS_EREFUSED;
            }
            lua_pop(L, 2);
        }
        each_end(&e);
    }
    lua_settop(L, first - 1);
    return rc;
}

/* The first script whose hook returns a string gives the value: appended
 * to out. Returns 0, HS_ENOTFOUND (no script answered) or an error (a
 * hook failed or returned something else: the caller keeps its value). */
static int first_string(struct lnode *ln, const char *name, int nargs,
                        struct buf *out)
{
    lua_State *L = lnode_state(ln);
    int first = lua_gettop(L) - nargs + 1;
    int rc = HS_ENOTFOUND;
    struct each e;
    if (each_begin(ln, name, &e)) {
        for (int i = 1; i <= e.n && rc == HS_ENOTFOUND; i++) {
            if (!each_get(&e, i))
                continue;
            for (int a = 0; a < nargs; a++)
                lua_pushvalue(L, first + a);
            if (lnode_pcall(ln, nargs, 1, name) != LUA_OK) {
                rc = HS_EINVAL;
                continue;
            }
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t n;
                const char *p = lua_tolstring(L, -1, &n);
                buf_append(out, p, n);
                rc = out->err;
            } else if (!lua_isnil(L, -1)) {
                HS_ERROR(ln->log, "script %s must return a string, not a %s",
                         name, luaL_typename(L, -1));
                ln->stats.errors++;
                rc = HS_EINVAL;
            }
            lua_pop(L, 1);
        }
        each_end(&e);
    }
    lua_settop(L, first - 1);
    return rc;
}

/* Every hook runs inside one more lua_pcall, of hook_body: building the
 * arguments allocates too, and a state at its memory cap must fail that
 * hook, not abort the process (lua_atpanic). */

/* (enum hook_kind and struct hook_call: lua/lnode_int.h) */

/* key, value (nil: deleted), old (nil: none), origin */
static void push_change(lua_State *L, const struct meta_change *mc)
{
    lua_pushlstring(L, mc->key, mc->keylen);
    if (mc->value)
        lua_pushlstring(L, (const char *)mc->value, mc->len);
    else
        lua_pushnil(L);
    if (mc->old)
        lua_pushlstring(L, (const char *)mc->old, mc->oldlen);
    else
        lua_pushnil(L);
    lua_pushlstring(L, mc->origin, mc->originlen);
}

static int hook_body(lua_State *L)
{
    struct hook_call *c = lua_touserdata(L, 1);
    struct lnode *ln = c->ln;
    lua_settop(L, 0);
    switch (c->kind) {
    case K_MEMBER:
        lua_pushstring(L, hook_event_name(c->event));
        lnode_push_member(L, c->m);
        notify(ln, "on_member", 2);
        break;
    case K_META:
        c->rc = first_string(ln, "private_data", 0, c->out);
        break;
    case K_MESSAGE:
        if (c->from)
            lua_pushlstring(L, c->from, c->fromlen);
        else
            lua_pushnil(L);
        lua_pushlstring(L, (const char *)c->p, c->n);
        notify(ln, "on_message", 2);
        break;
    case K_ALLOW:
        lnode_push_member(L, c->m);
        c->rc = veto(ln, "allow_member", 1, c->why, c->whylen);
        break;
    case K_MERGE:
        lua_createtable(L, (int)c->n, 0);
        for (size_t i = 0; i < c->n; i++) {
            lnode_push_member(L, c->ms[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        c->rc = veto(ln, "allow_merge", 1, c->why, c->whylen);
        break;
    case K_CONFLICT:
        lnode_push_member(L, c->m);
        lnode_push_member(L, c->m2);
        notify(ln, "on_conflict", 2);
        break;
    case K_ACK:
        c->rc = first_string(ln, "ack_payload", 0, c->out);
        break;
    case K_PING:
        lnode_push_member(L, c->m);
        lua_pushinteger(L, (lua_Integer)c->rtt);
        lua_pushlstring(L, c->p ? (const char *)c->p : "", c->n);
        notify(ln, "on_ping", 3);
        break;
    case K_LOCAL:
        lua_pushboolean(L, c->join);
        c->rc = first_string(ln, "local_state", 1, c->out);
        break;
    case K_REMOTE:
        lua_pushlstring(L, (const char *)c->p, c->n);
        lua_pushboolean(L, c->join);
        notify(ln, "merge_remote_state", 2);
        break;
    case K_VALIDATE:
        push_change(L, c->mc);
        c->rc = veto(ln, "validate_metadata", 4, c->why, c->whylen);
        break;
    case K_APPLIED:
        push_change(L, c->mc);
        notify(ln, "on_metadata", 4);
        break;
    case K_TIMER:
        lnode_timer_body(L, c->obj);
        c->rc = 1; /* done: the caller must not touch the timer */
        break;
    case K_JOINED:
        lnode_joined_body(L, c->obj, (int)c->n, c->rc, c->why);
        break;
    case K_KEYS:
        lnode_keys_body(L, c->obj, c->keys);
        break;
    }
    return 0;
}

/* Run hook_body for c; on failure (no memory) count it and give the
 * hook's default: rc stays as the caller preset it. */
void lnode_guard(struct lnode *ln, struct hook_call *c)
{
    lua_State *L = lnode_state(ln);
    c->ln = ln;
    bool hook = c->kind != K_TIMER && c->kind != K_JOINED && c->kind != K_KEYS;
    if (hook && (ln->scripts_ref == LUA_NOREF || ln->nd == NULL)) {
        /* no scripts: as if no script defined the hook */
        if (c->kind == K_ALLOW || c->kind == K_MERGE || c->kind == K_VALIDATE)
            c->rc = 0;
        else if (c->kind == K_META || c->kind == K_ACK || c->kind == K_LOCAL)
            c->rc = HS_ENOTFOUND;
        return;
    }
    if (!lua_checkstack(L, 4))
        return;
    lua_pushcfunction(L, hook_body);
    lua_pushlightuserdata(L, c);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        ln->stats.errors++;
        ln->stats.memory_errors++;
        HS_ERROR(ln->log, "script hook could not be called: %s",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_pop(L, 1);
        lua_gc(L, LUA_GCCOLLECT);
    }
}

static void h_on_member(void *ud, int event, const struct member *m)
{
    struct hook_call c = {.kind = K_MEMBER, .event = event, .m = m};
    lnode_guard(ud, &c);
}

static int h_node_meta(void *ud, size_t limit, struct buf *out)
{
    struct lnode *ln = ud;
    struct hook_call c = {.kind = K_META, .out = out, .rc = HS_ENOMEM};
    lnode_guard(ln, &c);
    if (c.rc == 0 && out->len > limit) {
        HS_ERROR(ln->log,
                 "script private_data returned %zu bytes, more "
                 "than %zu: the previous private data stays",
                 out->len, limit);
        ln->stats.errors++;
        c.rc = HS_ETOOBIG;
    }
    return c.rc;
}

static void h_on_message(void *ud, const char *from, size_t fromlen,
                         const uint8_t *p, size_t n)
{
    struct hook_call c = {
        .kind = K_MESSAGE, .from = from, .fromlen = fromlen, .p = p, .n = n};
    lnode_guard(ud, &c);
}

static int h_allow_member(void *ud, const struct member *m, char *why,
                          size_t whylen)
{
    struct hook_call c = {.kind = K_ALLOW,
                          .m = m,
                          .why = why,
                          .whylen = whylen,
                          .rc = HS_EREFUSED};
    snprintf(why, whylen, "allow_member could not be called");
    lnode_guard(ud, &c);
    return c.rc;
}

static int h_allow_merge(void *ud, const struct member *const *ms, size_t n,
                         char *why, size_t whylen)
{
    struct hook_call c = {.kind = K_MERGE,
                          .ms = ms,
                          .n = n,
                          .why = why,
                          .whylen = whylen,
                          .rc = HS_EREFUSED};
    snprintf(why, whylen, "allow_merge could not be called");
    lnode_guard(ud, &c);
    return c.rc;
}

static void h_on_conflict(void *ud, const struct member *existing,
                          const struct member *other)
{
    struct hook_call c = {.kind = K_CONFLICT, .m = existing, .m2 = other};
    lnode_guard(ud, &c);
}

static int h_ack_payload(void *ud, struct buf *out)
{
    struct hook_call c = {.kind = K_ACK, .out = out, .rc = HS_ENOMEM};
    lnode_guard(ud, &c);
    return c.rc;
}

static void h_on_ping(void *ud, const struct member *m, uint64_t rtt_ms,
                      const uint8_t *payload, size_t n)
{
    struct hook_call c = {
        .kind = K_PING, .m = m, .rtt = rtt_ms, .p = payload, .n = n};
    lnode_guard(ud, &c);
}

static int h_local_state(void *ud, bool join, struct buf *out)
{
    struct hook_call c = {
        .kind = K_LOCAL, .join = join, .out = out, .rc = HS_ENOMEM};
    lnode_guard(ud, &c);
    return c.rc;
}

static void h_merge_remote_state(void *ud, const uint8_t *p, size_t n,
                                 bool join)
{
    struct hook_call c = {.kind = K_REMOTE, .p = p, .n = n, .join = join};
    lnode_guard(ud, &c);
}

static int h_validate_metadata(void *ud, const struct meta_change *mc,
                               char *why, size_t whylen)
{
    struct hook_call c = {.kind = K_VALIDATE,
                          .mc = mc,
                          .why = why,
                          .whylen = whylen,
                          .rc = HS_EREFUSED};
    snprintf(why, whylen, "validate_metadata could not be called");
    lnode_guard(ud, &c);
    return c.rc;
}

static void h_on_metadata(void *ud, const struct meta_change *mc)
{
    struct hook_call c = {.kind = K_APPLIED, .mc = mc};
    lnode_guard(ud, &c);
}

struct hooks lnode_hooks(struct lnode *ln)
{
    struct hooks h = {
        .ud = ln,
        .node_meta = h_node_meta,
        .on_member = h_on_member,
        .on_message = h_on_message,
        .allow_member = h_allow_member,
        .allow_merge = h_allow_merge,
        .on_conflict = h_on_conflict,
        .ack_payload = h_ack_payload,
        .on_ping = h_on_ping,
        .local_state = h_local_state,
        .merge_remote_state = h_merge_remote_state,
        .validate_metadata = h_validate_metadata,
        .on_metadata = h_on_metadata,
    };
    return h;
}

/* ===== Lifecycle ===== */

void lnode_timer_done(struct ltimer *t)
{
    struct lnode *ln = t->ln;
    if (t->prev)
        t->prev->next = t->next;
    else if (ln->timers == t)
        ln->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    t->ut = NULL;
    luaL_unref(ln->L, LUA_REGISTRYINDEX, t->fn_ref);
    t->fn_ref = LUA_NOREF;
    /* Last: this may let the collector free t. */
    int self = t->self_ref;
    t->self_ref = LUA_NOREF;
    luaL_unref(ln->L, LUA_REGISTRYINDEX, self);
}

/* Drop what would call back into Lua: timers and keyring operations. */
static void cancel_timers(struct lnode *ln)
{
    lnode_cancel_keys(ln);
    while (ln->timers) {
        struct ltimer *t = ln->timers;
        if (t->ut && ln->nd)
            node_timer_cancel(ln->nd, t->ut);
        lnode_timer_done(t);
    }
}

void lnode_init(struct lnode *ln, lua_State *L, uint64_t budget,
                const struct hs_logger *log, const struct lnode_ops *ops,
                void *owner)
{
    memset(ln, 0, sizeof *ln);
    ln->L = L;
    ln->scripts_ref = ln->udata_ref = ln->co_ref = LUA_NOREF;
    ln->budget = budget;
    ln->real_time = true;
    ln->log = log;
    ln->ops = ops;
    ln->owner = owner;
}

/* A ref is none, or holds a value of its type. */
static bool ref_holds(lua_State *L, int ref, int type)
{
    if (ref == LUA_NOREF)
        return true;
    bool ok = lua_rawgeti(L, LUA_REGISTRYINDEX, ref) == type;
    lua_pop(L, 1);
    return ok;
}

bool lnode_refs_ok(struct lnode *ln)
{
    lua_State *L = ln->L;
    if (L == NULL || !lua_checkstack(L, 1))
        return L == NULL;
    if (!ref_holds(L, ln->scripts_ref, LUA_TTABLE) ||
        !ref_holds(L, ln->co_ref, LUA_TTHREAD) ||
        !ref_holds(L, ln->udata_ref, LUA_TUSERDATA))
        return false;
    if (ln->udata_ref == LUA_NOREF)
        return true;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ln->udata_ref);
    struct lnode **p = lua_touserdata(L, -1);
    bool ok = p != NULL && *p == ln; /* the node object points at us */
    lua_pop(L, 1);
    return ok;
}

void lnode_set_scripts(struct lnode *ln, int idx)
{
    idx = lua_absindex(ln->L, idx);
    luaL_unref(ln->L, LUA_REGISTRYINDEX, ln->scripts_ref);
    lua_pushvalue(ln->L, idx);
    ln->scripts_ref = luaL_ref(ln->L, LUA_REGISTRYINDEX);
    lua_remove(ln->L, idx);
    HS_INVARIANT(lnode_refs_ok(ln));
}

void lnode_detach(struct lnode *ln)
{
    cancel_timers(ln);
    ln->nd = NULL;
}

void lnode_close(struct lnode *ln)
{
    HS_INVARIANT(lnode_refs_ok(ln));
    cancel_timers(ln);
    lnode_unregister(ln);
    luaL_unref(ln->L, LUA_REGISTRYINDEX, ln->scripts_ref);
    ln->scripts_ref = LUA_NOREF;
    luaL_unref(ln->L, LUA_REGISTRYINDEX, ln->co_ref);
    ln->co_ref = LUA_NOREF;
    if (ln->udata_ref != LUA_NOREF) {
        /* The userdata outlives us: point it nowhere. */
        lua_rawgeti(ln->L, LUA_REGISTRYINDEX, ln->udata_ref);
        struct lnode **p = lua_touserdata(ln->L, -1);
        if (p)
            *p = NULL;
        lua_pop(ln->L, 1);
        luaL_unref(ln->L, LUA_REGISTRYINDEX, ln->udata_ref);
        ln->udata_ref = LUA_NOREF;
    }
}

/* ===== Loading scripts ===== */

int lnode_check_hooks(lua_State *L, int idx, const char *where, char *err,
                      size_t errlen)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k =
            lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        bool known = false;
        for (int i = 0; k && lnode_hook_names[i]; i++)
            known |= strcmp(k, lnode_hook_names[i]) == 0;
        if (!known) {
            snprintf(err, errlen,
                     "%s: unknown hook '%s' (hooks are "
                     "on_member, private_data, validate_metadata, "
                     "on_metadata, allow_member, allow_merge, on_conflict, "
                     "on_message, ack_payload, on_ping, local_state, "
                     "merge_remote_state)",
                     where, k ? k : luaL_typename(L, -2));
            lua_pop(L, 2);
            return HS_EINVAL;
        }
        if (!lua_isfunction(L, -1)) {
            snprintf(err, errlen, "%s: hook '%s' is a %s, not a function",
                     where, k, luaL_typename(L, -1));
            lua_pop(L, 2);
            return HS_EINVAL;
        }
        lua_pop(L, 1);
    }
    return 0;
}

int lnode_loadfile(lua_State *L, const char *path, bool regular_only)
{
    struct stat st;
    if (regular_only && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        lua_pushfstring(L, "%s: not a regular file (would block)", path);
        return LUA_ERRFILE;
    }
    int rc = luaL_loadfilex(L, path, "t");
    /* Lua's own words name neither the file nor the rule. */
    if (rc == LUA_ERRSYNTAX &&
        !strcmp(lua_tostring(L, -1), LNODE_BINARY_LUA_MSG)) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s: " LNODE_BINARY_MSG, path);
    }
    return rc;
}

int lnode_load_script(struct lnode *ln, lua_State *L, const char *path,
                      int env_idx, char *err, size_t errlen)
{
    env_idx = lua_absindex(L, env_idx);
    if (lnode_loadfile(L, path, false) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    /* Its own globals, reading through to the shared environment. */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, env_idx);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    bool stopped;
    uint64_t budget = HS_MIN(ln->budget, UINT64_MAX / LOAD_BUDGET_TIMES);
    int status = lnode_run_top(ln, L, budget * LOAD_BUDGET_TIMES, &stopped);
    if (status != LUA_OK) {
        /* the first line: "file:line: message"; a message without the
         * file's name (the budget's, error("x", 0)) gets it in front.
         * Lua shortens a long name to "...tail". */
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL)
            msg = "";
        size_t n = strcspn(msg, "\n"), plen = strlen(path);
        bool named = (!strncmp(msg, path, plen) && msg[plen] == ':') ||
                     !strncmp(msg, "...", 3);
        snprintf(err, errlen, "%s%s%.*s%s", named ? "" : path,
                 named ? "" : ": ", (int)n, msg,
                 stopped ? " (the script's top level never ended)" : "");
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen,
                 "%s: the script must return a table of "
                 "hooks, not a %s",
                 path, luaL_typename(L, -1));
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    if (lnode_check_hooks(L, -1, path, err, errlen)) {
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    return 0;
}
