/* lua/api.c: the `hearsay` API that scripts call (self, members, join,
 * broadcast, timers, metadata, the keyring ...), on the module table and
 * as methods of a hearsay.node. */
#include "lua/lnode_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "core/members.h"
#include "core/metadata.h"

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* ===== The API ===== */

/* luv's convention: nil, "ECODE: message", "ECODE". */
int lnode_fail(lua_State *L, int rc, const char *why)
{
    const char *code = hs_errname(rc);
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", code, why ? why : hs_strerror(rc));
    lua_pushstring(L, code);
    return 3;
}

static int fail(lua_State *L, int rc, const char *why)
{
    return lnode_fail(L, rc, why);
}

/* The node an API call acts on, and the index of its first argument. */
static struct lnode *target(lua_State *L, int *arg)
{
    struct lnode **p = luaL_testudata(L, 1, NODE_MT);
    struct lnode *ln;
    if (p) {
        *arg = 2;
        ln = *p;
        if (ln == NULL)
            luaL_error(L, "the node is closed");
    } else {
        *arg = 1;
        size_t nregistered;
        ln = lnode_acting(&nregistered);
        if (ln == NULL)
            luaL_error(L, nregistered ? "several nodes run here: call the "
                                        "method on one (node:members())"
                                      : "no node is "
                                        "running");
    }
    if (ln->nd == NULL)
        luaL_error(L, "the node is not running");
    return ln;
}

static int api_self(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    const struct member *me = node_self(ln->nd);
    struct member early;
    if (me == NULL) {
        /* Starting: private_data runs before we are a member. */
        if (!node_self_view(ln->nd, &early))
            return 0; /* a script's top level, before the node starts */
        me = &early;
    }
    lnode_push_member(L, me);
    return 1;
}

/* members([filter]): filter is a state name, a list of them, or a
 * function(member) -> boolean. */
static int api_members(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    int ft = lua_type(L, a);
    bool want[4] = {true, true, true, true};
    if (ft == LUA_TSTRING || ft == LUA_TTABLE) {
        memset(want, 0, sizeof want);
        int n = ft == LUA_TTABLE ? (int)lua_rawlen(L, a) : 1;
        for (int i = 1; i <= n; i++) {
            if (ft == LUA_TTABLE)
                lua_rawgeti(L, a, i);
            else
                lua_pushvalue(L, a);
            int st = member_state_parse(luaL_checkstring(L, -1));
            if (st < 0)
                return luaL_argerror(L, a,
                                     "states are alive, suspect, "
                                     "dead (or failed), left");
            want[st] = true;
            lua_pop(L, 1);
        }
    } else if (ft != LUA_TNONE && ft != LUA_TNIL && ft != LUA_TFUNCTION) {
        return luaL_typeerror(L, a, "state, list of states or function");
    }
    const struct members *t = node_members(ln->nd);
    lua_createtable(L, (int)t->n, 0);
    lua_Integer k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        if (!want[m->state])
            continue;
        if (i % 64 == 0) /* a member's table: a dozen fields */
            lnode_charge(L, 64 * 16);
        lnode_push_member(L, m);
        if (ft == LUA_TFUNCTION) {
            lua_pushvalue(L, a);
            lua_pushvalue(L, -2);
            lua_call(L, 1, 1);
            bool keep = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (!keep) {
                lua_pop(L, 1);
                continue;
            }
        }
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

static int api_member(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    size_t n;
    const char *name = luaL_checklstring(L, a, &n);
    const struct member *m = members_find(node_members(ln->nd), name, n);
    if (m == NULL)
        return 0;
    lnode_push_member(L, m);
    return 1;
}

/* A Lua callback waiting for a join. */
struct ljoin {
    struct lnode *ln;
    int fn_ref;
};

void lnode_joined_body(lua_State *L, struct ljoin *j, int n, int err,
                       const char *why)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->fn_ref);
    lua_pushinteger(L, n);
    if (err)
        lua_pushstring(L, why ? why : hs_strerror(err));
    else
        lua_pushnil(L);
    lnode_pcall(j->ln, 2, 0, "join callback");
}

static void joined(void *ud, int n, int err, const char *why)
{
    struct ljoin *j = ud;
    struct lnode *ln = j->ln;
    if (j->fn_ref != LUA_NOREF && ln->nd) {
        struct hook_call c = {.kind = K_JOINED,
                              .obj = j,
                              .n = (size_t)n,
                              .rc = err,
                              .why = (char *)(uintptr_t)why};
        lnode_guard(ln, &c);
    }
    if (j->fn_ref != LUA_NOREF)
        luaL_unref(ln->L, LUA_REGISTRYINDEX, j->fn_ref);
    hs_free(j);
}

/* join(addr | {addrs} [, function(joined, err)]) */
static int api_join(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    const char *addrs[64];
    size_t n = 0;
    if (lua_type(L, a) == LUA_TSTRING) {
        addrs[n++] = lua_tostring(L, a);
    } else {
        luaL_checktype(L, a, LUA_TTABLE);
        size_t len = lua_rawlen(L, a);
        luaL_argcheck(L, len >= 1 && len <= 64, a, "1 to 64 addresses");
        for (size_t i = 1; i <= len; i++) {
            lua_rawgeti(L, a, (lua_Integer)i);
            addrs[n++] = luaL_checkstring(L, -1);
            lua_pop(L, 1); /* the string stays in the table */
        }
    }
    if (!lua_isnoneornil(L, a + 1))
        luaL_checktype(L, a + 1, LUA_TFUNCTION);
    struct ljoin *j = hs_calloc(1, sizeof *j);
    if (j == NULL)
        return fail(L, HS_ENOMEM, NULL);
    j->ln = ln;
    j->fn_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, a + 1)) {
        lua_pushvalue(L, a + 1);
        j->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    int rc;
    if (ln->ops && ln->ops->join) {
        rc = ln->ops->join(ln, addrs, n, joined, j);
    } else {
        struct hs_addr hs[64];
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = addr_parse(addrs[i], 7946, &hs[i]);
        if (rc == 0)
            rc = node_join(ln->nd, hs, NULL, n, joined, j);
    }
    if (rc) {
        luaL_unref(L, LUA_REGISTRYINDEX, j->fn_ref);
        hs_free(j);
        return fail(L, rc, rc == HS_EADDR ? "not an ip:port address" : NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int api_leave(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    lua_Integer ms =
        luaL_optinteger(L, a, (lua_Integer)node_config(ln->nd)->leave_timeout);
    luaL_argcheck(L, ms >= 0, a, "must not be negative");
    int rc = ln->ops && ln->ops->leave
                 ? ln->ops->leave(ln, (uint64_t)ms)
                 : node_leave(ln->nd, (uint64_t)ms, NULL, NULL);
    if (rc)
        return fail(L, rc, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int api_stop(lua_State *L)
{
    int a;
    node_pause(target(L, &a)->nd);
    lua_pushboolean(L, 1);
    return 1;
}

static int api_start(lua_State *L)
{
    int a;
    node_resume(target(L, &a)->nd);
    lua_pushboolean(L, 1);
    return 1;
}

static int api_broadcast(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    size_t n;
    const char *p = luaL_checklstring(L, a, &n);
    int rc = node_broadcast(ln->nd, p, n);
    if (rc)
        return fail(L, rc,
                    rc == HS_ETOOBIG
                        ? "message too large for a "
                          "packet (udp_buffer_size); use send with reliable = "
                          "true"
                        : NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* send(name, payload [, {reliable = bool}]) */
static int api_send(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    const char *name = luaL_checkstring(L, a);
    size_t n;
    const char *p = luaL_checklstring(L, a + 1, &n);
    bool reliable = false;
    if (!lua_isnoneornil(L, a + 2)) {
        luaL_checktype(L, a + 2, LUA_TTABLE);
        lua_getfield(L, a + 2, "reliable");
        reliable = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    int rc = node_send(ln->nd, name, p, n, reliable);
    if (rc)
        return fail(L, rc, rc == HS_ENOTFOUND ? "no such member" : NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int api_update_private_data(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    int rc = node_update_meta(ln->nd);
    if (rc)
        return fail(L, rc,
                    rc == HS_ENOTFOUND ? "no script defines "
                                         "private_data"
                                       : "private_data failed or returned too "
                                         "much: the previous value stays");
    lua_pushboolean(L, 1);
    return 1;
}

static void timer_fired(void *ud)
{
    struct ltimer *t = ud;
    if (!t->repeat)
        t->ut = NULL; /* the node has freed its half */
    struct hook_call c = {.kind = K_TIMER, .obj = t};
    lnode_guard(t->ln, &c);
    /* Body not finished (no memory): t is still held; end a one-off. */
    if (c.rc == 0 && !t->repeat && t->fn_ref != LUA_NOREF)
        lnode_timer_done(t);
}

/* Sets c->rc (through the caller) to 1 once it has run to the end. */
void lnode_timer_body(lua_State *L, struct ltimer *t)
{
    /* Keep the userdata (and so t) alive through the callback, which may
     * cancel the timer and drop the last reference. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    int hold = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
    lnode_pcall(t->ln, 0, 0, t->repeat ? "every" : "after");
    if (!t->repeat && t->fn_ref != LUA_NOREF)
        lnode_timer_done(t);
    luaL_unref(L, LUA_REGISTRYINDEX, hold); /* t may be gone after this */
}

static int start_timer(lua_State *L, bool repeat)
{
    int a;
    struct lnode *ln = target(L, &a);
    lua_Integer ms = luaL_checkinteger(L, a);
    luaL_argcheck(L, ms >= (repeat ? 1 : 0), a,
                  repeat ? "must be at least 1" : "must not be negative");
    luaL_checktype(L, a + 1, LUA_TFUNCTION);
    struct ltimer *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, TIMER_MT);
    t->ln = ln;
    t->repeat = repeat;
    lua_pushvalue(L, a + 1);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int rc = node_timer_start(ln->nd, (uint64_t)ms, repeat ? (uint64_t)ms : 0,
                              timer_fired, t, &t->ut);
    if (rc) {
        t->ln = ln;
        lnode_timer_done(t);
        return fail(L, rc, NULL);
    }
    t->next = ln->timers;
    if (ln->timers)
        ln->timers->prev = t;
    ln->timers = t;
    return 1;
}

static int api_every(lua_State *L)
{
    return start_timer(L, true);
}

static int api_after(lua_State *L)
{
    return start_timer(L, false);
}

static int timer_cancel(lua_State *L)
{
    struct ltimer *t = luaL_checkudata(L, 1, TIMER_MT);
    bool active = t->fn_ref != LUA_NOREF;
    if (active) {
        if (t->ut && t->ln->nd)
            node_timer_cancel(t->ln->nd, t->ut);
        lnode_timer_done(t);
    }
    lua_pushboolean(L, active);
    return 1;
}

static int timer_active(lua_State *L)
{
    struct ltimer *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushboolean(L, t->fn_ref != LUA_NOREF);
    return 1;
}

/* log(level, ...): the values joined by spaces, like print. */
static int api_log(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    int level = hs_log_level_parse(luaL_checkstring(L, a));
    luaL_argcheck(L, level >= 0 && level < HS_LOG_OFF, a,
                  "levels are debug, info, warn, error");
    int top = lua_gettop(L); /* before the buffer takes a slot */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = a + 1; i <= top; i++) {
        if (i > a + 1)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    HS_LOG(ln->log, level, "script: %s", lua_tostring(L, -1));
    return 0;
}

static int api_health(lua_State *L)
{
    int a;
    lua_pushinteger(L, node_health(target(L, &a)->nd));
    return 1;
}

static int api_stats(lua_State *L)
{
    int a;
    lnode_push_stats(L, target(L, &a));
    return 1;
}

/* time() -> the wall clock in milliseconds since 1970 */
static int api_time(lua_State *L)
{
    int a;
    lua_pushinteger(L, (lua_Integer)node_wall(target(L, &a)->nd));
    return 1;
}

static int api_now(lua_State *L)
{
    int a;
    lua_pushinteger(L, (lua_Integer)node_time(target(L, &a)->nd));
    return 1;
}

/* ===== Cluster metadata ===== */

/* publish(key, value) or publish(value) (pekonode's single blob: key "") */
static int api_publish(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    size_t kl = 0, vl;
    const char *k = "", *v;
    if (lua_gettop(L) >= a + 1) {
        k = luaL_checklstring(L, a, &kl);
        v = luaL_checklstring(L, a + 1, &vl);
    } else {
        v = luaL_checklstring(L, a, &vl);
    }
    char why[256] = "";
    int rc = metadata_put(node_metadata(ln->nd), k, kl, v, vl, false, why,
                          sizeof why, NULL);
    if (rc)
        return fail(L, rc, why[0] ? why : NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* read([key]) -> value, {version=, origin=} | nil */
static int api_read(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    size_t kl = 0;
    const char *k = luaL_optlstring(L, a, "", &kl);
    const struct meta_entry *e = metadata_get(node_metadata(ln->nd), k, kl);
    if (e == NULL)
        return 0;
    lua_pushlstring(L, e->value ? (const char *)e->value : "", e->len);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)e->version);
    lua_setfield(L, -2, "version");
    lua_pushlstring(L, e->origin, e->originlen);
    lua_setfield(L, -2, "origin");
    return 2;
}

static int api_delete(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    size_t kl;
    const char *k = luaL_checklstring(L, a, &kl);
    char why[256] = "";
    int rc = metadata_put(node_metadata(ln->nd), k, kl, NULL, 0, true, why,
                          sizeof why, NULL);
    if (rc)
        return fail(L, rc, why[0] ? why : NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static void add_key(void *ud, const struct meta_entry *e)
{
    lua_State *L = ud;
    /* A listing of a million keys is a loop in C: it pays as it goes
     * (metadata_each holds nothing an error would leak). */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n % 256 == 0)
        lnode_charge(L, 256 * 4);
    lua_pushlstring(L, e->key, e->keylen);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* keys([prefix]) -> sorted array of the live keys */
static int api_keys(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    size_t pl = 0;
    const char *prefix = luaL_optlstring(L, a, "", &pl);
    lua_newtable(L);
    metadata_each(node_metadata(ln->nd), prefix, pl, false, add_key, L);
    return 1;
}

/* ===== Encryption keys ===== */

/* A Lua callback waiting for a keyring operation; all of them, of every
 * lnode, on one list. */
struct lkeys {
    struct lkeys *next;
    struct lnode *ln;
    int fn_ref;
};

static struct lkeys *keys_waiting;

static void keys_unlink(struct lkeys *k)
{
    for (struct lkeys **pp = &keys_waiting; *pp; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            return;
        }
    }
}

static void push_key(lua_State *L, const uint8_t *key, size_t len)
{
    char b64[45];
    keyring_format(key, len, b64);
    lua_pushstring(L, b64);
    keyring_wipe(b64, sizeof b64);
}

/* {nodes=, responses=, errors=, failures={[name]=message},
 *  keys={[key]={installed=, primary=}}} (keys for a list only) */
static void push_keys_result(lua_State *L, const struct node_keys_result *r)
{
    lua_createtable(L, 0, 5);
    set_int(L, "nodes", (lua_Integer)r->nodes);
    set_int(L, "responses", (lua_Integer)r->responses);
    set_int(L, "errors", (lua_Integer)r->errors);
    lua_createtable(L, 0, (int)r->nfailures);
    for (size_t i = 0; i < r->nfailures; i++) {
        lua_pushstring(L, r->failures[i].message);
        lua_setfield(L, -2, r->failures[i].name);
    }
    lua_setfield(L, -2, "failures");
    if (r->op == NODE_KEYS_LIST) {
        lua_createtable(L, 0, (int)r->nkeys);
        for (size_t i = 0; i < r->nkeys; i++) {
            push_key(L, r->keys[i].key, r->keys[i].len);
            lua_createtable(L, 0, 2);
            set_int(L, "installed", (lua_Integer)r->keys[i].installed);
            set_int(L, "primary", (lua_Integer)r->keys[i].primary);
            lua_settable(L, -3);
        }
        lua_setfield(L, -2, "keys");
    }
}

void lnode_keys_body(lua_State *L, struct lkeys *k,
                     const struct node_keys_result *r)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->fn_ref);
    push_keys_result(L, r);
    lnode_pcall(k->ln, 1, 0, "keyring callback");
}

static void keys_done(void *ud, const struct node_keys_result *r)
{
    struct lkeys *k = ud;
    struct lnode *ln = k->ln;
    keys_unlink(k);
    if (ln->nd) {
        struct hook_call c = {.kind = K_KEYS, .obj = k, .keys = r};
        lnode_guard(ln, &c);
    }
    luaL_unref(ln->L, LUA_REGISTRYINDEX, k->fn_ref);
    hs_free(k);
}

void lnode_cancel_keys(struct lnode *ln)
{
    for (struct lkeys **pp = &keys_waiting; *pp;) {
        struct lkeys *k = *pp;
        if (k->ln != ln) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        if (ln->nd)
            node_keys_cancel(ln->nd, keys_done, k);
        luaL_unref(ln->L, LUA_REGISTRYINDEX, k->fn_ref);
        hs_free(k);
    }
}

/* Start op across the cluster; key at index a (unless a list), the
 * optional callback after it. */
static int keys_op(lua_State *L, struct lnode *ln, int op, int a)
{
    uint8_t key[KEYRING_KEY_MAX];
    size_t len = 0;
    int fn = op == NODE_KEYS_LIST ? a : a + 1;
    if (op != NODE_KEYS_LIST &&
        keyring_parse(luaL_checkstring(L, a), key, &len))
        return luaL_argerror(L, a,
                             "expected a base64-encoded key of 16, "
                             "24 or 32 bytes");
    if (!lua_isnoneornil(L, fn))
        luaL_checktype(L, fn, LUA_TFUNCTION);
    struct lkeys *k = hs_calloc(1, sizeof *k);
    if (k == NULL)
        return fail(L, HS_ENOMEM, NULL);
    k->ln = ln;
    k->fn_ref = LUA_NOREF;
    bool cb = !lua_isnoneornil(L, fn);
    if (cb) {
        lua_pushvalue(L, fn);
        k->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        k->next = keys_waiting;
        keys_waiting = k;
    }
    /* Without a callback nobody waits for the answer. */
    int rc =
        node_keys(ln->nd, op, key, len, cb ? keys_done : NULL, cb ? k : NULL);
    keyring_wipe(key, sizeof key);
    if (!cb)
        hs_free(k);
    if (rc) {
        if (cb) {
            keys_unlink(k);
            luaL_unref(L, LUA_REGISTRYINDEX, k->fn_ref);
            hs_free(k);
        }
        return fail(L, rc, node_keys_strerror(op, rc));
    }
    return 0;
}

/* keyring_list([fn]) -> this node's keys, primary first; fn(result) once
 * every member told its keys */
static int api_keyring_list(lua_State *L)
{
    int a;
    struct lnode *ln = target(L, &a);
    const struct keyring *kr = node_keyring(ln->nd);
    if (!lua_isnoneornil(L, a)) {
        int rc = keys_op(L, ln, NODE_KEYS_LIST, a);
        if (rc)
            return rc;
    }
    lua_createtable(L, (int)kr->n, 0);
    for (size_t i = 0; i < kr->n; i++) {
        push_key(L, kr->key[i], kr->len[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* keyring_install(key [, fn]) and the others: here at once, then on
 * every member; fn(result) once they all answered */
static int keyring_change(lua_State *L, int op)
{
    int a;
    struct lnode *ln = target(L, &a);
    int rc = keys_op(L, ln, op, a);
    if (rc)
        return rc;
    lua_pushboolean(L, 1);
    return 1;
}

static int api_keyring_install(lua_State *L)
{
    return keyring_change(L, NODE_KEYS_INSTALL);
}

static int api_keyring_use(lua_State *L)
{
    return keyring_change(L, NODE_KEYS_USE);
}

static int api_keyring_remove(lua_State *L)
{
    return keyring_change(L, NODE_KEYS_REMOVE);
}

static int node_tostring(lua_State *L)
{
    struct lnode **p = luaL_checkudata(L, 1, NODE_MT);
    if (*p && (*p)->nd)
        lua_pushfstring(L, "hearsay.node %s", node_config((*p)->nd)->name);
    else
        lua_pushliteral(L, "hearsay.node (closed)");
    return 1;
}

static const luaL_Reg api[] = {{"self", api_self},
                               {"members", api_members},
                               {"member", api_member},
                               {"join", api_join},
                               {"leave", api_leave},
                               {"stop", api_stop},
                               {"start", api_start},
                               {"broadcast", api_broadcast},
                               {"send", api_send},
                               {"update_private_data", api_update_private_data},
                               {"every", api_every},
                               {"after", api_after},
                               {"log", api_log},
                               {"health", api_health},
                               {"stats", api_stats},
                               {"now", api_now},
                               {"time", api_time},
                               {"publish", api_publish},
                               {"read", api_read},
                               {"delete", api_delete},
                               {"keys", api_keys},
                               {"keyring_list", api_keyring_list},
                               {"keyring_install", api_keyring_install},
                               {"keyring_use", api_keyring_use},
                               {"keyring_remove", api_keyring_remove},
                               {NULL, NULL}};

static const luaL_Reg timer_methods[] = {
    {"cancel", timer_cancel}, {"active", timer_active}, {NULL, NULL}};

void lnode_push(lua_State *L, struct lnode *ln)
{
    if (ln->udata_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ln->udata_ref);
        return;
    }
    struct lnode **p = lua_newuserdatauv(L, sizeof *p, 1);
    *p = ln;
    luaL_setmetatable(L, NODE_MT);
    lua_pushvalue(L, -1);
    ln->udata_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void lnode_open_api(lua_State *L)
{
    luaL_setfuncs(L, api, 0);
    if (luaL_newmetatable(L, NODE_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, api, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, node_tostring);
        lua_setfield(L, -2, "__tostring");
        lnode_protect_metatable(L);
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TIMER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, timer_methods, 0);
        lua_setfield(L, -2, "__index");
        lnode_protect_metatable(L);
    }
    lua_pop(L, 1);
}
