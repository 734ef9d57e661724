/* lua/member.c: members and node statistics as Lua values. */
#include "lua/lnode_int.h"

#include <lauxlib.h>
#include <string.h>

#include "core/members.h"
#include "core/metadata.h"

/* ===== Members as Lua values =====
 * A member reaches Lua as a read-only view: a userdata holding a copy of
 * the member, which indexes like a table (m.name, m.state ...), iterates
 * with pairs(), and refuses writes. m:totable() gives a plain table (for
 * cjson). One allocation per member, fields made when read. */

#define MEMBER_MT "hearsay.member"

/* Hide the metatable on top of the stack from getmetatable: a script
 * that could reach it could add a __gc for the next object made with it
 * (see lnode_setmetatable), or change how every script sees members. */
void lnode_protect_metatable(lua_State *L)
{
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
}

struct lmember {
    uint32_t incarnation;
    uint16_t port, name_len, meta_len;
    uint8_t state, addr_len;
    uint8_t ip[16];
    uint8_t vsn[6];
    char data[]; /* name, then private data */
};

static const char *const member_keys[] = {
    "name",         "addr",     "port",     "state", "incarnation",
    "private_data", "protocol", "delegate", NULL};

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void push_versions(lua_State *L, const uint8_t *v)
{
    lua_createtable(L, 0, 3);
    set_int(L, "min", v[0]);
    set_int(L, "max", v[1]);
    set_int(L, "cur", v[2]);
}

/* Push field `key` of m; false if there is no such field. */
static bool member_field(lua_State *L, const struct lmember *m, const char *key)
{
    char ip[HS_ADDRSTRLEN];
    struct hs_addr a;
    switch (key[0]) {
    case 'n':
        if (strcmp(key, "name"))
            return false;
        lua_pushlstring(L, m->data, m->name_len);
        return true;
    case 'a':
        if (strcmp(key, "addr"))
            return false;
        addr_from_raw(m->ip, m->addr_len, m->port, &a);
        lua_pushstring(L, addr_ip_format(&a, ip, sizeof ip));
        return true;
    case 'p':
        if (!strcmp(key, "port"))
            lua_pushinteger(L, m->port);
        else if (!strcmp(key, "private_data"))
            lua_pushlstring(L, m->data + m->name_len, m->meta_len);
        else if (!strcmp(key, "protocol"))
            push_versions(L, m->vsn);
        else
            return false;
        return true;
    case 's':
        if (strcmp(key, "state"))
            return false;
        lua_pushstring(L, member_state_name(m->state));
        return true;
    case 'i':
        if (strcmp(key, "incarnation"))
            return false;
        lua_pushinteger(L, m->incarnation);
        return true;
    case 'd':
        if (strcmp(key, "delegate"))
            return false;
        push_versions(L, m->vsn + 3);
        return true;
    default:
        return false;
    }
}

static int member_totable(lua_State *L)
{
    const struct lmember *m = luaL_checkudata(L, 1, MEMBER_MT);
    lua_createtable(L, 0, 8);
    for (int i = 0; member_keys[i]; i++) {
        member_field(L, m, member_keys[i]);
        lua_setfield(L, -2, member_keys[i]);
    }
    return 1;
}

static int member_index(lua_State *L)
{
    const struct lmember *m = lua_touserdata(L, 1);
    const char *key = lua_tostring(L, 2);
    if (key && member_field(L, m, key))
        return 1;
    if (key && !strcmp(key, "totable")) {
        lua_pushcfunction(L, member_totable);
        return 1;
    }
    return 0; /* nil, like a table */
}

static int member_newindex(lua_State *L)
{
    return luaL_error(L,
                      "members are read-only (field '%s'); "
                      "m:totable() gives a copy you can change",
                      luaL_optstring(L, 2, "?"));
}

static int member_next(lua_State *L)
{
    const struct lmember *m = luaL_checkudata(L, 1, MEMBER_MT);
    int i = 0;
    if (!lua_isnil(L, 2)) {
        const char *k = luaL_checkstring(L, 2);
        while (member_keys[i] && strcmp(member_keys[i], k))
            i++;
        if (member_keys[i])
            i++;
    }
    if (member_keys[i] == NULL)
        return 0;
    lua_pushstring(L, member_keys[i]);
    member_field(L, m, member_keys[i]);
    return 2;
}

static int member_pairs(lua_State *L)
{
    lua_pushcfunction(L, member_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int member_tostring(lua_State *L)
{
    const struct lmember *m = luaL_checkudata(L, 1, MEMBER_MT);
    lua_pushfstring(L, "member %s (%s)",
                    lua_pushlstring(L, m->data, m->name_len),
                    member_state_name(m->state));
    return 1;
}

void lnode_push_member(lua_State *L, const struct member *src)
{
    struct lmember *m =
        lua_newuserdatauv(L, sizeof *m + src->name_len + src->meta_len, 0);
    m->incarnation = src->incarnation;
    m->port = src->addr.port;
    m->name_len = (uint16_t)src->name_len;
    m->meta_len = src->meta_len;
    m->state = src->state;
    m->addr_len = src->addr.len;
    memcpy(m->ip, src->addr.ip, sizeof m->ip);
    memcpy(m->vsn, src->vsn, sizeof m->vsn);
    memcpy(m->data, src->name, src->name_len);
    if (src->meta_len)
        memcpy(m->data + src->name_len, src->meta, src->meta_len);
    if (luaL_newmetatable(L, MEMBER_MT)) {
        static const luaL_Reg mm[] = {{"__index", member_index},
                                      {"__newindex", member_newindex},
                                      {"__pairs", member_pairs},
                                      {"__tostring", member_tostring},
                                      {NULL, NULL}};
        luaL_setfuncs(L, mm, 0);
        lnode_protect_metatable(L);
    }
    lua_setmetatable(L, -2);
}

void lnode_push_stats(lua_State *L, struct lnode *ln)
{
    const struct node *nd = ln->nd;
    const struct node_stats *s = node_stats(nd);
    lua_newtable(L);
#define S(f) set_int(L, #f, (lua_Integer)s->f)
    S(packets_in);
    S(packets_out);
    S(bytes_in);
    S(bytes_out);
    S(send_errors);
    S(probes);
    S(probes_failed);
    S(indirect_probes);
    S(tcp_pings);
    S(tcp_ping_rescues);
    S(nacks_received);
    S(suspicions);
    S(refutations);
    S(deaths);
    S(conflicts);
    S(push_pulls_out);
    S(push_pulls_in);
    S(push_pull_errors);
    S(streams_in);
    S(streams_out);
    S(broadcasts_queued);
    S(user_messages_in);
    S(user_messages_out);
    S(members_refused);
    S(rumors_duplicate);
#undef S
    lua_newtable(L);
    for (int i = 0; i < NODE_DROP_COUNT; i++)
        set_int(L, node_drop_name(i), (lua_Integer)s->dropped[i]);
    lua_setfield(L, -2, "dropped");
    lua_newtable(L);
    for (int i = 0; i < WIRE_TYPE_COUNT; i++)
        set_int(L, wire_type_name(i), (lua_Integer)s->msgs_in[i]);
    lua_setfield(L, -2, "msgs_in");
    lua_newtable(L);
    for (int i = 0; i < WIRE_TYPE_COUNT; i++)
        set_int(L, wire_type_name(i), (lua_Integer)s->msgs_out[i]);
    lua_setfield(L, -2, "msgs_out");
    set_int(L, "health", node_health(nd));
    set_int(L, "queue", (lua_Integer)node_broadcast_queue_len(nd));
    const struct members *t = node_members(nd);
    lua_newtable(L);
    for (int i = 0; i < 4; i++)
        set_int(L, member_state_name(i), (lua_Integer)t->count[i]);
    lua_setfield(L, -2, "members");
    lua_createtable(L, 0, 4);
    set_int(L, "calls", (lua_Integer)ln->stats.calls);
    set_int(L, "errors", (lua_Integer)ln->stats.errors);
    set_int(L, "budget_stops", (lua_Integer)ln->stats.budget_stops);
    set_int(L, "memory_errors", (lua_Integer)ln->stats.memory_errors);
    lua_setfield(L, -2, "hooks");
    const struct metadata *md = node_metadata(nd);
    const struct meta_stats *ms = metadata_stats(md);
    lua_createtable(L, 0, 19);
#define M(f) set_int(L, #f, (lua_Integer)ms->f)
    M(writes_local);
    M(writes_remote);
    M(refused_local);
    M(refused_remote);
    M(refused_future);
    M(fetches);
    M(fetch_errors);
    M(sync_streams);
    M(sync_bytes_out);
    M(sync_bytes_in);
    M(digest_bytes_out);
    M(digest_bytes_in);
    M(tombstones_collected);
    M(refused_horizon);
    M(dropped_horizon);
#undef M
    set_int(L, "horizon", (lua_Integer)metadata_horizon(md));
    set_int(L, "keys", (lua_Integer)metadata_count(md, false));
    set_int(
        L, "tombstones",
        (lua_Integer)(metadata_count(md, true) - metadata_count(md, false)));
    lua_setfield(L, -2, "metadata");
}
