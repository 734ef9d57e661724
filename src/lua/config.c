/* lua/config.c: load an agent configuration file (a sandboxed Lua chunk,
 * or JSON decoded by lua-cjson) into a struct config.
 *
 * Both kinds end in the same place: a Lua table of key = value that one
 * walk hands to config_set(), so the two formats cannot drift apart. The
 * whole load runs under one lua_pcall, which turns every Lua error, memory
 * errors included, into a sentence and lets lua_close free everything. */
#include "lua/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/hs.h"
#include "lua/lib.h"
#include "lua/sandbox.h"

/* A configuration file has no business being large or slow; these bounds
 * turn a runaway file into an error instead of a hung or swapping agent.
 * Counting instructions alone does not bound the time: one instruction can
 * compare two 30 MiB strings, and one call of a library function can loop
 * in C for as long as its arguments say (string.rep("", 2^50)). So the
 * run also has a deadline, checked at every call and every HOOK_EVERY
 * instructions; the library functions whose work has no bound in the
 * size of the state are charged for their loops against the instruction
 * budget and meet the deadline as they go (lua/lib.c: string.rep, the
 * pattern functions, the table functions). */
#define MEM_LIMIT (64u << 20) /* bytes held by the Lua state */
#define STEP_LIMIT 20000000L  /* VM instructions */
#define TIME_LIMIT_MS 1000    /* wall-clock time of the whole run */
#define HOOK_EVERY 1000       /* instructions per count hook */
#define JSON_MAX (4u << 20)   /* bytes of a JSON file */

/* The harmless base functions a config file may call besides the string,
 * table and math libraries. */
static const char *const base_names[] = {
    "assert", "error",    "ipairs",   "next", "pairs",
    "select", "tonumber", "tostring", "type", NULL};

/* ===== Bounded allocator, instruction budget and deadline ===== */

struct budget {
    size_t used;       /* bytes currently held by the state */
    size_t limit;      /* and the most it may hold */
    long steps_left;   /* instructions (and charged work) still allowed */
    long steps;        /* the whole budget, for messages */
    int every;         /* instructions per count hook */
    uint64_t deadline; /* monotonic ms */
    uint64_t time_ms;  /* the whole time allowed, for messages */
};

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct budget *b = ud;
    if (ptr == NULL)
        osize = 0; /* then osize names the object's type, not a size */
    if (nsize == 0) {
        hs_free(ptr);
        b->used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > b->limit - b->used)
        return NULL; /* Lua raises "not enough memory" */
    void *p = hs_realloc(ptr, nsize);
    if (p == NULL)
        return nsize <= osize ? ptr : NULL; /* a shrink keeps the block */
    b->used = b->used - osize + nsize;
    return p;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct budget *budget_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* Raise "file:line: configuration file runs too long (...)", with the
 * line of the innermost Lua function running. */
static int too_long(lua_State *L, const struct budget *b, bool steps)
{
    lua_Debug ar;
    /* From now on every instruction and call raises, so no function of
     * the chunk can swallow the error and keep running. */
    lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT | LUA_MASKCALL, 1);
    lua_pushstring(L, "");
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            break;
        }
    }
    if (steps)
        lua_pushfstring(L,
                        "%sconfiguration file runs too long (more than "
                        "%d instructions)",
                        lua_tostring(L, -1), (int)b->steps);
    else
        lua_pushfstring(L,
                        "%sconfiguration file runs too long (more than "
                        "%d ms)",
                        lua_tostring(L, -1), (int)b->time_ms);
    return lua_error(L);
}

/* Count hook: every b->every instructions. Call hook: every call, so
 * that a loop of calls to slow library functions meets the deadline
 * after one of them, not after b->every. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct budget *b = budget_of(L);
    if (ar->event == LUA_HOOKCOUNT)
        b->steps_left -= b->every;
    if (b->steps_left <= 0)
        too_long(L, b, true);
    if (now_ms() >= b->deadline)
        too_long(L, b, false);
}

/* Work a library function is about to do in C, in loop turns, against
 * the instruction budget: a loop in C runs no hook. */
static void charge(lua_State *L, lua_Unsigned n)
{
    struct budget *b = budget_of(L);
    if (n >= (lua_Unsigned)b->steps_left) {
        b->steps_left = 0;
        too_long(L, b, true);
    }
    b->steps_left -= (long)n;
    if (now_ms() >= b->deadline)
        too_long(L, b, false);
}

static const struct llib_charge config_charge = {charge};

/* Functions left out of the chunk's libraries: a config file has no use
 * for bytecode. */
static const char *const left_out[] = {"dump", NULL};

/* Push a copy of the global library `name` for the chunk: without the
 * functions left out, and with the charged ones wrapped. */
static void push_library(lua_State *L, const char *name)
{
    lsandbox_copy_global(L, name);
    for (int i = 0; left_out[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, left_out[i]);
    }
    if (strcmp(name, "string") == 0)
        llib_install(L, -1, 0, &config_charge);
    else if (strcmp(name, "table") == 0)
        llib_install(L, 0, -1, &config_charge);
}

/* ===== Reading the table ===== */

struct job {
    const char *path;
    struct config *cfg;
    bool keep_profile;
    bool json;
    char *text; /* the JSON file's bytes, read before the state exists */
    size_t len;
    int lines; /* stack index of the table key -> line, 0 before it */
};

/* Raise "PATH: message". */
static int fail(lua_State *L, const struct job *j, const char *msg)
{
    lua_pushfstring(L, "%s: %s", j->path, msg);
    return lua_error(L);
}

/* Raise "PATH:LINE: message" for an error about `key`, with the line
 * where the file sets it, or "PATH: message" when that is not known. */
static int fail_at(lua_State *L, const struct job *j, const char *key,
                   const char *msg)
{
    lua_Integer line = 0;
    if (j->lines && key) {
        lua_getfield(L, j->lines, key);
        line = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    if (line > 0)
        lua_pushfstring(L, "%s:%d: %s", j->path, (int)line, msg);
    else
        lua_pushfstring(L, "%s: %s", j->path, msg);
    return lua_error(L);
}

static const struct config_key_info *find_info(const char *name)
{
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key_info *k = config_key(i);
        if (!strcmp(k->name, name) || (k->alias && !strcmp(k->alias, name)))
            return k;
    }
    return NULL;
}

/* The text form config_set() takes of the scalar at idx, or NULL if it is
 * not a string, number or boolean. `num` holds the text of a number. */
static const char *scalar_text(lua_State *L, const struct job *j, int idx,
                               const char *key, char *num, size_t numlen)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (strlen(s) != n) {
            lua_pushfstring(L, "%s: value contains a NUL byte", key);
            fail_at(L, j, key, lua_tostring(L, -1));
        }
        return s;
    }
    case LUA_TNUMBER: {
        int isint;
        lua_Integer i = lua_tointegerx(L, idx, &isint);
        if (isint) /* JSON numbers arrive as floats such as 500.0 */
            snprintf(num, numlen, "%lld", (long long)i);
        else
            snprintf(num, numlen, "%.17g", (double)lua_tonumber(L, idx));
        return num;
    }
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? "true" : "false";
    default:
        return NULL;
    }
}

static void set_key(lua_State *L, const struct job *j, const char *key,
                    const char *value)
{
    char err[256], path[4096];
    const struct config_key_info *info = find_info(key);
    const char *slash = strrchr(j->path, '/');
    /* A script named in a config file is found next to that file. */
    if (info && !strcmp(info->name, "scripts") && value[0] != '/' &&
        value[0] != '\0' && slash) {
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - j->path), j->path,
                 value);
        value = path;
    }
    if (config_set(j->cfg, key, value, err, sizeof err))
        fail_at(L, j, key, err);
}

/* Apply env[key] (the value is on top of the stack). */
static void apply_key(lua_State *L, const struct job *j, const char *key)
{
    char num[64];
    const struct config_key_info *info = find_info(key);
    if (info == NULL) {
        lua_pushfstring(L, "unknown configuration key \"%s\"", key);
        fail_at(L, j, key, lua_tostring(L, -1));
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
        if (info->kind != CONFIG_LIST) {
            lua_pushfstring(L, "%s: expected a single value, not a list", key);
            fail_at(L, j, key, lua_tostring(L, -1));
        }
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1), count = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) { /* a list has keys 1..n and no others */
            lua_pop(L, 1);
            count++;
        }
        if (count != n) {
            lua_pushfstring(L, "%s: expected a list such as {\"a\", \"b\"}",
                            key);
            fail_at(L, j, key, lua_tostring(L, -1));
        }
        if (n == 0)
            set_key(L, j, key, ""); /* an empty list clears */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *v = scalar_text(L, j, -1, key, num, sizeof num);
            if (v == NULL) {
                lua_pushfstring(L, "%s: list entries must be strings", key);
                fail_at(L, j, key, lua_tostring(L, -1));
            }
            set_key(L, j, key, v);
            lua_pop(L, 1);
        }
        return;
    }
    const char *v = scalar_text(L, j, -1, key, num, sizeof num);
    if (v == NULL) {
        lua_pushfstring(L,
                        "%s: expected a string, number, boolean or list, "
                        "got %s",
                        key,
                        lua_islightuserdata(L, -1) ? "null" /* cjson.null */
                                                   : luaL_typename(L, -1));
        fail_at(L, j, key, lua_tostring(L, -1));
    }
    if (!strcmp(info->name, "profile") && j->keep_profile) {
        /* A --profile flag wins; still reject a misspelt profile. */
        struct config scratch;
        memset(&scratch, 0, sizeof scratch);
        char err[256];
        if (config_set(&scratch, key, v, err, sizeof err))
            fail_at(L, j, key, err);
        return;
    }
    set_key(L, j, key, v);
}

/* Walk the table at index t: `profile` first, since it resets the
 * timings, then the other keys in name order so that errors and
 * overrides do not depend on hash order. */
static void apply_table(lua_State *L, const struct job *j, int t)
{
    lua_newtable(L); /* the key names, as a sequence */
    int keys = lua_gettop(L);
    lua_Integer n = 0;
    const char *unknown = NULL; /* the first unknown key, in name order */
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        size_t len;
        const char *key =
            lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (key == NULL || strlen(key) != len)
            fail(L, j,
                 j->json ? "expected a JSON object of configuration "
                           "keys"
                         : "configuration keys must be names");
        /* Known keys are few; unknown ones may be a million, and are
         * refused before anything is sorted. The table keeps the key
         * alive while `unknown` points into it. */
        if (find_info(key) == NULL &&
            (unknown == NULL || strcmp(key, unknown) < 0))
            unknown = key;
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    if (unknown) {
        lua_pushfstring(L, "unknown configuration key \"%s\"", unknown);
        fail_at(L, j, unknown, lua_tostring(L, -1));
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, keys);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    for (int pass = 0; pass < 2; pass++) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, keys, i);
            const char *key = lua_tostring(L, -1);
            const struct config_key_info *info = find_info(key);
            bool first = info && !strcmp(info->name, "profile");
            if (first == (pass == 0)) {
                lua_pushvalue(L, -1);
                lua_rawget(L, t);
                apply_key(L, j, key);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* ===== The two formats ===== */

/* __newindex of the chunk's _ENV (upvalues: the globals assigned, the
 * lines): keep the value, and the line that assigned it last. */
static int assign(lua_State *L)
{
    lua_Debug ar;
    if (lua_type(L, 2) == LUA_TSTRING && lua_getstack(L, 1, &ar) &&
        lua_getinfo(L, "l", &ar) && ar.currentline > 0) {
        lua_pushvalue(L, 2);
        lua_pushinteger(L, ar.currentline);
        lua_rawset(L, lua_upvalueindex(2));
    }
    lua_settop(L, 3);
    lua_rawset(L, lua_upvalueindex(1));
    return 0;
}

/* Push the lines where the chunk assigned each global (key -> line),
 * then the table of those globals. */
static void run_chunk(lua_State *L, const struct job *j)
{
    /* Text only: a crafted binary chunk can crash the VM. */
    if (luaL_loadfilex(L, j->path, "t") != LUA_OK) {
        if (!strcmp(lua_tostring(L, -1),
                    "attempt to load a binary chunk (mode is 't')"))
            fail(L, j, "binary chunks are not allowed (text only)");
        lua_error(L);
    }
    lua_newtable(L); /* the lines */
    lua_insert(L, -2);
    lua_newtable(L); /* the globals assigned */
    lua_insert(L, -2);
    /* The chunk's _ENV stays empty: every assignment goes through
     * __newindex, which notes its line; reads find the globals
     * assigned, then the libraries. */
    lua_newtable(L); /* the chunk's _ENV */
    lua_newtable(L); /* its metatable */
    lua_pushvalue(L, -4);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -6);
    lua_pushcclosure(L, assign, 2);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_newtable(L); /* the metatable of the globals assigned */
    lua_newtable(L); /* what reading an unassigned global finds */
    static const char *const libs[] = {"string", "table", "math", NULL};
    for (int i = 0; libs[i]; i++) {
        push_library(L, libs[i]);
        lua_setfield(L, -2, libs[i]);
    }
    /* Methods of strings, ("x"):rep(3), find the chunk's string table. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_getfield(L, -3, "string");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 2);
    for (int i = 0; base_names[i]; i++) {
        lua_getglobal(L, base_names[i]);
        lua_setfield(L, -2, base_names[i]);
    }
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -4); /* on the globals assigned */
    /* lines, globals, chunk, env */
    if (lua_setupvalue(L, -2, 1) == NULL) /* the main chunk's _ENV */
        lua_pop(L, 1);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKCALL,
                budget_of(L)->every);
    lua_call(L, 0, 0);
    lua_sethook(L, NULL, 0, 0);
}

/* Push the line of each key of the file's top-level object (key ->
 * line; a key written with escapes is left out), read from its bytes:
 * lua-cjson does not tell where a key was. */
static void json_lines(lua_State *L, const struct job *j)
{
    const char *p = j->text;
    size_t n = j->len;
    int line = 1, depth = 0;
    bool object = false, want_key = false;
    lua_newtable(L);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n') {
            line++;
        } else if (c == '"') {
            size_t start = ++i;
            bool escaped = false;
            for (; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    escaped = true;
                    i++;
                } else if (p[i] == '\n') {
                    line++;
                }
            }
            if (object && depth == 1 && want_key && !escaped && i <= n) {
                lua_pushlstring(L, p + start, (i < n ? i : n) - start);
                lua_pushinteger(L, line);
                lua_rawset(L, -3);
            }
            want_key = false;
        } else if (c == '{' || c == '[') {
            if (++depth == 1) {
                object = c == '{';
                want_key = object;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            want_key = object;
        }
    }
}

/* The line of byte `at` (1-based, as lua-cjson counts) of the JSON text. */
static int json_line_of(const struct job *j, size_t at)
{
    int line = 1;
    for (size_t i = 0; i + 1 < at && i < j->len; i++)
        if (j->text[i] == '\n')
            line++;
    return line;
}

/* Push the lines of the keys, then the table lua-cjson decodes from the
 * file's bytes. */
static void decode_json(lua_State *L, const struct job *j)
{
    luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushstring(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pushfstring(L,
                        "a JSON configuration needs the lua-cjson "
                        "module: %s",
                        lua_tostring(L, -1));
        fail(L, j, lua_tostring(L, -1));
    }
    lua_getfield(L, -1, "decode");
    lua_pushlstring(L, j->text, j->len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        const char *at = msg ? strstr(msg, " at character ") : NULL;
        long byte = at ? strtol(at + 14, NULL, 10) : 0;
        if (byte > 0)
            lua_pushfstring(L, "%s:%d: invalid JSON: %s", j->path,
                            json_line_of(j, (size_t)byte), msg);
        else
            lua_pushfstring(L, "%s: invalid JSON: %s", j->path,
                            msg ? msg : "?");
        lua_error(L);
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        fail(L, j, "expected a JSON object of configuration keys");
    lua_remove(L, -2); /* the module */
    json_lines(L, j);
    lua_insert(L, -2);
}

/* The protected body: everything that may raise runs here. */
static int load(lua_State *L)
{
    struct job *j = lua_touserdata(L, 1);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_settop(L, 1);
    if (j->json)
        decode_json(L, j);
    else
        run_chunk(L, j);
    j->lines = lua_gettop(L) - 1;
    apply_table(L, j, lua_gettop(L));
    return 0;
}

/* (message, path) -> the message with the whole path where Lua put its
 * shortened form ("...end/of/path.lua:3: ..."), as Lua names chunks in
 * at most LUA_IDSIZE bytes; a message that is no string gives nil. */
static int full_path(lua_State *L)
{
    const char *path = lua_touserdata(L, 2);
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
        lua_pushnil(L);
        return 1;
    }
    size_t n;
    const char *msg = lua_tolstring(L, 1, &n);
    lua_Debug ar;
    lua_pushfstring(L, "@%s", path);
    if (luaL_loadbuffer(L, "", 0, lua_tostring(L, -1)) != LUA_OK ||
        !lua_getinfo(L, ">S", &ar))
        return lua_error(L);
    size_t k = strlen(ar.short_src), p = strlen(path);
    if (n >= k && memcmp(msg, ar.short_src, k) == 0 && msg[k] == ':')
        lua_pushfstring(L, "%s%s", path, msg + k);
    else if (n > p && memcmp(msg, path, p) == 0 && msg[p] == ':')
        lua_pushvalue(L, 1); /* ours, or Lua's with the whole path */
    else
        lua_pushfstring(L, "%s: %s", path, msg); /* error("x", 0) */
    return 1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int read_file(struct job *j, char *err, size_t errlen)
{
    FILE *f = fopen(j->path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", j->path, strerror(errno));
        return HS_EINVAL;
    }
    j->text = hs_malloc(JSON_MAX + 1);
    if (j->text == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", j->path);
        return HS_ENOMEM;
    }
    j->len = fread(j->text, 1, JSON_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || j->len > JSON_MAX) {
        snprintf(err, errlen, bad ? "%s: cannot read" : "%s: larger than 4 MiB",
                 j->path);
        hs_free(j->text);
        j->text = NULL;
        return HS_EINVAL;
    }
    return 0;
}

int lua_config_load_limited(const char *path, struct config *cfg,
                            bool keep_profile,
                            const struct lua_config_limits *lim, char *err,
                            size_t errlen)
{
    struct job j = {.path = path,
                    .cfg = cfg,
                    .keep_profile = keep_profile,
                    .json = ends_with(path, ".json")};
    /* A reload reads the file on the agent's loop: opening a FIFO would
     * wait for a writer, for good. (/dev/null, an empty file, is fine.) */
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return HS_EINVAL;
    }
    if (S_ISFIFO(st.st_mode)) {
        snprintf(err, errlen,
                 "%s: a FIFO, which could block the agent; "
                 "give a regular file",
                 path);
        return HS_EINVAL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: a directory, not a file", path);
        return HS_EINVAL;
    }
    if (j.json && read_file(&j, err, errlen))
        return HS_EINVAL;
    struct budget b = {0,           lim->memory, lim->steps,
                       lim->steps,  HOOK_EVERY,  now_ms() + lim->time_ms,
                       lim->time_ms};
    lua_State *L = lua_newstate(lalloc, &b);
    if (L == NULL) {
        hs_free(j.text);
        snprintf(err, errlen, "%s: out of memory", path);
        return HS_ENOMEM;
    }
    lua_pushcfunction(L, load);
    lua_pushlightuserdata(L, &j);
    int rc = lua_pcall(L, 1, 0, 0);
    if (rc != LUA_OK && rc != LUA_ERRMEM) {
        lua_sethook(L, NULL, 0, 0); /* a budget error leaves it raising */
        lua_pushcfunction(L, full_path);
        lua_insert(L, -2);
        lua_pushlightuserdata(L, (void *)(uintptr_t)path);
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
            lua_pop(L, 1);
            lua_pushnil(L);
        }
    }
    if (rc != LUA_OK) {
        const char *msg =
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (rc == LUA_ERRMEM)
            snprintf(err, errlen,
                     "%s: out of memory (the limit is %zu "
                     "MiB)",
                     path, lim->memory >> 20);
        else
            snprintf(err, errlen, "%s%s%s", msg ? "" : path, msg ? "" : ": ",
                     msg ? msg
                         : "error object is not a "
                           "string");
    }
    lua_close(L);
    hs_free(j.text);
    return rc == LUA_OK ? 0 : HS_EINVAL;
}

int lua_config_load(const char *path, struct config *cfg, bool keep_profile,
                    char *err, size_t errlen)
{
    static const struct lua_config_limits lim = {MEM_LIMIT, STEP_LIMIT,
                                                 TIME_LIMIT_MS};
    return lua_config_load_limited(path, cfg, keep_profile, &lim, err, errlen);
}
