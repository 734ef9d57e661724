/* lua/pattern.c: string.find, match, gmatch and gsub on a matcher that
 * counts its steps and pays for them (see lua/pattern.h).
 *
 * The semantics are those of the Lua 5.4 reference manual, sections 6.4
 * and 6.4.1: a pattern is a sequence of items (a character class, maybe
 * followed by '*', '+', '-' or '?', a capture, a back-reference %1-%9,
 * %b and %f), tried left to right with backtracking. Where the manual is
 * silent (which errors come first, how deep the matcher may nest before
 * "pattern too complex", what a back-reference to a position capture
 * does) the behaviour is the stock library's, found by experiment.
 *
 * The matcher recurses only where an item has alternatives left to try
 * (captures, '?', '*', '+', '-'); plain items loop. Each recursion takes
 * one level of a fixed depth (MAXDEPTH, the stock library's), so the C
 * stack stays small and the same patterns are "too complex" as in stock
 * Lua.
 *
 * Every step (an item tried at a subject position, a subject byte a
 * repetition or %b examines, a byte a back-reference compares, a start
 * position tried) is counted in the match state; every STEP_CHUNK steps
 * the count is handed to the charge, which may raise an error and never
 * return. So nothing here holds memory of its own across a step: the
 * state lives on the C stack, results on the Lua stack and in a
 * luaL_Buffer.
 *
 * Subjects and patterns are Lua strings, which always have a '\0' after
 * their last byte: reading one byte past the end (the stock library's
 * "no character here") is safe and reads '\0'. */
#include "lua/pattern.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/hs.h"

#define MAXCAPTURES 32     /* captures in one pattern */
#define MAXDEPTH 200       /* nested alternatives before "too complex" */
#define STEP_CHUNK 1024    /* steps counted between two charges */
#define SCAN_BLOCK 4096    /* bytes a repetition counts before it pays */
#define PLAIN_WINDOW 65536 /* bytes a plain find searches per payment */
#define PLAIN_BYTES 16     /* bytes of a plain search per step */
#define COPY_BYTES 32      /* bytes copied into a gsub result per step */

#define CAP_OPEN (-1)     /* a capture whose ')' is still to come */
#define CAP_POSITION (-2) /* a "()" capture: a position, no text */

/* Where an item is: p at its first byte, e just past its class (at the
 * suffix if it has one). */
struct mstate {
    lua_State *L;
    const struct llib_charge *payer;
    const char *s0, *s_end; /* the subject */
    const char *p_end;      /* the end of the pattern */
    size_t steps;           /* counted and not yet paid */
    int depth;              /* nesting levels still allowed */
    int ncap;               /* captures opened */
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
    } cap[MAXCAPTURES];
};

/* ===== Paying ===== */

static void pay(struct mstate *m)
{
    lua_Unsigned work = m->steps / LPAT_STEPS_PER_WORK;
    m->steps %= LPAT_STEPS_PER_WORK;
    m->payer->charge(m->L, work);
}

static inline void step(struct mstate *m, size_t n)
{
    m->steps += n;
    if (m->steps >= STEP_CHUNK)
        pay(m);
}

/* Pay what is left, rounded up: even a short call costs one unit. */
static void settle(struct mstate *m)
{
    if (m->steps > 0) {
        lua_Unsigned work =
            (m->steps + LPAT_STEPS_PER_WORK - 1) / LPAT_STEPS_PER_WORK;
        m->steps = 0;
        m->payer->charge(m->L, work);
    }
}

static void mstate_init(struct mstate *m, lua_State *L, const char *s,
                        size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->payer = lua_touserdata(L, lua_upvalueindex(1));
    m->s0 = s;
    m->s_end = s + ls;
    m->p_end = p + lp;
    m->steps = 0;
    m->depth = MAXDEPTH;
    m->ncap = 0;
}

/* Before each start position: no captures, the whole depth. */
static void restart(struct mstate *m)
{
    m->depth = MAXDEPTH;
    m->ncap = 0;
}

/* ===== Character classes ===== */

/* Does byte c belong to class %cl (cl a letter of 6.4.1, in either case;
 * any other cl stands for itself)? */
static bool in_class(int c, int cl)
{
    bool yes;
    switch (tolower(cl)) {
    case 'a':
        yes = isalpha(c);
        break;
    case 'c':
        yes = iscntrl(c);
        break;
    case 'd':
        yes = isdigit(c);
        break;
    case 'g':
        yes = isgraph(c);
        break;
    case 'l':
        yes = islower(c);
        break;
    case 'p':
        yes = ispunct(c);
        break;
    case 's':
        yes = isspace(c);
        break;
    case 'u':
        yes = isupper(c);
        break;
    case 'w':
        yes = isalnum(c);
        break;
    case 'x':
        yes = isxdigit(c);
        break;
    case 'z':
        yes = c == 0;
        break; /* 5.1's %z, still understood */
    default:
        return cl == c;
    }
    return isupper(cl) ? !yes : yes;
}

/* Does byte c belong to the set [...] from `open` (its '[') to `close`
 * (its ']')? */
static bool in_set(int c, const char *open, const char *close)
{
    const unsigned char *q = (const unsigned char *)open + 1;
    const unsigned char *end = (const unsigned char *)close;
    bool negated = *q == '^';
    if (negated)
        q++;
    for (; q < end; q++) {
        if (*q == '%') {
            q++;
            if (in_class(c, *q))
                return !negated;
        } else if (q + 2 < end && q[1] == '-') {
            if (q[0] <= c && c <= q[2])
                return !negated;
            q += 2;
        } else if (*q == c) {
            return !negated;
        }
    }
    return negated;
}

/* The end of the class starting at p (past "%x", "[...]" or one byte);
 * raises on a malformed one. */
static const char *class_end(struct mstate *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p == m->p_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c != '[')
        return p;
    if (*p == '^')
        p++;
    /* The first byte of a set is a member even if it is ']'. */
    for (;;) {
        if (p == m->p_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        if (*p++ == '%') {
            if (p == m->p_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            p++;
        }
        if (p < m->p_end && *p == ']')
            return p + 1;
    }
}

/* Steps one test of the class [p, e) costs: a long set is scanned at
 * every test. */
static size_t class_cost(const char *p, const char *e)
{
    return 1 + (size_t)(e - p) / 16;
}

/* Does the subject byte at s (if any) belong to the class [p, e)? */
static bool class_at(const struct mstate *m, const char *s, const char *p,
                     const char *e)
{
    if (s >= m->s_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case '%':
        return in_class(c, (unsigned char)p[1]);
    case '[':
        return in_set(c, p, e - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ===== The matcher ===== */

static const char *match(struct mstate *m, const char *s, const char *p);

/* Rest of the pattern at p after the longest run of class [cp, ce) from
 * s, giving back one byte at a time. */
static const char *longest(struct mstate *m, const char *s, const char *cp,
                           const char *ce, const char *p)
{
    size_t cost = class_cost(cp, ce);
    size_t n = 0, unpaid = 0;
    while (class_at(m, s + n, cp, ce)) {
        n++;
        if (++unpaid == SCAN_BLOCK) {
            step(m, unpaid * cost);
            unpaid = 0;
        }
    }
    step(m, unpaid * cost);
    for (;;) {
        const char *r = match(m, s + n, p);
        if (r != NULL || n == 0)
            return r;
        n--;
    }
}

/* Rest of the pattern at p after the shortest run of class [cp, ce)
 * from s that lets it match. */
static const char *shortest(struct mstate *m, const char *s, const char *cp,
                            const char *ce, const char *p)
{
    size_t cost = class_cost(cp, ce);
    for (;;) {
        const char *r = match(m, s, p);
        if (r != NULL)
            return r;
        if (!class_at(m, s, cp, ce))
            return NULL;
        s++;
        step(m, cost);
    }
}

/* %bxy at s: the end of a balanced x...y, or NULL. */
static const char *balanced(struct mstate *m, const char *s, char open,
                            char close)
{
    if (s >= m->s_end || *s != open)
        return NULL;
    size_t level = 1, unpaid = 0;
    const char *r = NULL;
    for (const char *q = s + 1; q < m->s_end; q++) {
        if (++unpaid == SCAN_BLOCK) {
            step(m, unpaid);
            unpaid = 0;
        }
        if (*q == close) {
            if (--level == 0) {
                r = q + 1;
                break;
            }
        } else if (*q == open) {
            level++;
        }
    }
    step(m, unpaid);
    return r;
}

/* Open capture number m->ncap at s (len CAP_OPEN or CAP_POSITION) and
 * match the rest at p; undone if that fails. */
static const char *open_capture(struct mstate *m, const char *s, const char *p,
                                ptrdiff_t len)
{
    if (m->ncap >= MAXCAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = len;
    m->ncap++;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->ncap--;
    return r;
}

/* Close the innermost open capture at s and match the rest at p. */
static const char *close_capture(struct mstate *m, const char *s, const char *p)
{
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->cap[i].len = CAP_OPEN;
    return r;
}

/* %1-%9 at s: the end of a copy of that capture's text, or NULL. A
 * position capture has no text and never matches. */
static const char *back_reference(struct mstate *m, const char *s, int d)
{
    int i = d - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    ptrdiff_t len = m->cap[i].len;
    if (len < 0 || m->s_end - s < len)
        return NULL;
    step(m, (size_t)len);
    return memcmp(m->cap[i].at, s, (size_t)len) == 0 ? s + len : NULL;
}

/* %f[set] at s: does the subject go from outside the set to inside it
 * between s - 1 and s (the subject's edges count as '\0')? p is at the
 * '['; *next is set past the set. */
static bool frontier(struct mstate *m, const char *s, const char *p,
                     const char **next)
{
    if (*p != '[')
        luaL_error(m->L, "missing '[' after '%%f' in pattern");
    const char *e = class_end(m, p);
    *next = e;
    step(m, 2 * class_cost(p, e));
    int before = s == m->s0 ? 0 : (unsigned char)s[-1];
    int here = (unsigned char)*s; /* '\0' at the end */
    return !in_set(before, p, e - 1) && in_set(here, p, e - 1);
}

/* Match the pattern from p against the subject from s: the end of the
 * match, or NULL. Recursion (one level of m->depth) only where an item
 * leaves alternatives; the other items advance in the loop. */
static const char *match(struct mstate *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    const char *r;
    for (;;) {
        if (p == m->p_end) {
            r = s;
            break;
        }
        step(m, 1);
        if (*p == '(') {
            if (p[1] == ')')
                r = open_capture(m, s, p + 2, CAP_POSITION);
            else
                r = open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            r = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->p_end) {
            r = s == m->s_end ? s : NULL;
            break;
        }
        if (*p == '%') {
            int x = (unsigned char)p[1];
            if (x == 'b') {
                if (p + 3 >= m->p_end)
                    luaL_error(m->L, "malformed pattern (missing "
                                     "arguments to '%%b')");
                s = balanced(m, s, p[2], p[3]);
                if (s == NULL) {
                    r = NULL;
                    break;
                }
                p += 4;
                continue;
            }
            if (x == 'f') {
                const char *next;
                if (!frontier(m, s, p + 2, &next)) {
                    r = NULL;
                    break;
                }
                p = next;
                continue;
            }
            if (isdigit(x)) {
                s = back_reference(m, s, x);
                if (s == NULL) {
                    r = NULL;
                    break;
                }
                p += 2;
                continue;
            }
        }
        /* A single-byte class, maybe with a suffix. */
        const char *e = class_end(m, p);
        char suffix = e < m->p_end ? *e : '\0';
        if (!class_at(m, s, p, e)) {
            if (suffix == '*' || suffix == '?' || suffix == '-') {
                p = e + 1; /* zero of them */
                continue;
            }
            r = NULL;
            break;
        }
        if (suffix == '?') {
            const char *t = match(m, s + 1, e + 1);
            if (t != NULL) {
                r = t;
                break;
            }
            p = e + 1;
            continue;
        }
        if (suffix == '+') {
            r = longest(m, s + 1, p, e, e + 1);
            break;
        }
        if (suffix == '*') {
            r = longest(m, s, p, e, e + 1);
            break;
        }
        if (suffix == '-') {
            r = shortest(m, s, p, e, e + 1);
            break;
        }
        s++;
        p = e;
    }
    m->depth++;
    return r;
}

/* ===== Results ===== */

/* Push capture i of a match [s, e); with no captures, %1 (i = 0) is the
 * whole match. */
static void push_capture(struct mstate *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (m->cap[i].at - m->s0) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

/* Push the captures of a match [s, e), or (with `whole` and no
 * captures) the match itself; returns how many. */
static int push_captures(struct mstate *m, const char *s, const char *e,
                         bool whole)
{
    int n = m->ncap == 0 && whole ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ===== find and match ===== */

/* Argument `arg` (default 1) as a 1-based start in a string of len
 * bytes: negative counts from the end, and too far back means 1. */
static size_t start_at(lua_State *L, int arg, size_t len)
{
    lua_Integer i = luaL_optinteger(L, arg, 1);
    if (i > 0)
        return (size_t)i;
    if (i == 0 || i < -(lua_Integer)len)
        return 1;
    return len - (size_t)-i + 1;
}

/* Does the pattern use any magic character? Without, find is plain. */
static bool has_specials(const char *p, size_t lp)
{
    static const char specials[] = "^$*+?.([%-";
    for (size_t i = 0; i < lp; i++)
        if (memchr(specials, p[i], sizeof specials - 1) != NULL)
            return true;
    return false;
}

/* The first copy of needle [nd, nd + nn) in [h, h + hn), or NULL. One
 * window of the subject at a time, each paid for before it is searched:
 * memchr to the first candidate (fast when the needle's first byte is
 * rare), then memmem (linear in glibc) over the rest of the window. */
static const char *plain_find(struct mstate *m, const char *h, size_t hn,
                              const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    size_t window = HS_MAX((size_t)PLAIN_WINDOW, 4 * nn);
    size_t last = hn - nn; /* the last start */
    for (size_t at = 0; at <= last; at += window) {
        size_t starts = HS_MIN(window, last - at + 1);
        step(m, (starts + nn) / PLAIN_BYTES);
        const char *w = memchr(h + at, (unsigned char)nd[0], starts);
        if (w == NULL)
            continue;
        size_t left = (size_t)(h + at + starts - w); /* starts from w */
        const char *r = memmem(w, left + nn - 1, nd, nn);
        if (r != NULL)
            return r;
    }
    return NULL;
}

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_at(L, 3, ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    struct mstate m;
    mstate_init(&m, L, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *at = plain_find(&m, s + init, ls - init, p, lp);
        settle(&m);
        if (at == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (at - s) + 1);
        lua_pushinteger(L, (lua_Integer)((size_t)(at - s) + lp));
        return 2;
    }
    bool anchor = *p == '^';
    if (anchor)
        p++;
    for (const char *from = s + init;; from++) {
        restart(&m);
        const char *e = match(&m, from, p);
        if (e != NULL) {
            settle(&m);
            if (!find)
                return push_captures(&m, from, e, true);
            lua_pushinteger(L, (from - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL, false) + 2;
        }
        if (anchor || from == m.s_end)
            break;
    }
    settle(&m);
    luaL_pushfail(L);
    return 1;
}

int lpat_find(lua_State *L)
{
    return find_aux(L, true);
}

int lpat_match(lua_State *L)
{
    return find_aux(L, false);
}

/* ===== gmatch ===== */

/* Where the iterator is: the next start, and the end of the last match
 * (a match may not end there again: an empty match right after a match
 * is skipped). Offsets into the subject. */
struct gmatch_state {
    size_t next;
    size_t last;
    bool matched;
};

/* The iterator. Upvalues: the charge, the subject, the pattern, the
 * gmatch_state. */
static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(3), &lp);
    struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(4));
    struct mstate m;
    mstate_init(&m, L, s, ls, p, lp);
    for (size_t at = g->next; at <= ls; at++) {
        restart(&m);
        const char *e = match(&m, s + at, p);
        if (e != NULL && !(g->matched && (size_t)(e - s) == g->last)) {
            g->next = g->last = (size_t)(e - s);
            g->matched = true;
            settle(&m);
            return push_captures(&m, s + at, e, true);
        }
    }
    settle(&m);
    return 0;
}

int lpat_gmatch(lua_State *L)
{
    size_t ls, lp;
    luaL_checklstring(L, 1, &ls);
    luaL_checklstring(L, 2, &lp);
    size_t init = start_at(L, 3, ls) - 1;
    if (init > ls)
        init = ls + 1;
    lua_settop(L, 2);
    struct gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->next = init;
    g->last = 0;
    g->matched = false;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

/* ===== gsub ===== */

/* Append the replacement string (argument 3) for the match [s, e):
 * "%0" is the match, "%1"-"%9" a capture, "%%" a '%'. */
static void add_string(struct mstate *m, luaL_Buffer *b, const char *s,
                       const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *end = r + l;
    const char *pc;
    while ((pc = memchr(r, '%', (size_t)(end - r))) != NULL) {
        luaL_addlstring(b, r, (size_t)(pc - r));
        int d = (unsigned char)pc[1]; /* '\0' after a final '%' */
        if (d == '%') {
            luaL_addchar(b, '%');
        } else if (d == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(d)) {
            int i = d - '1';
            if (i < m->ncap && m->cap[i].len >= 0) {
                luaL_addlstring(b, m->cap[i].at, (size_t)m->cap[i].len);
            } else { /* the match, a position, or an error */
                push_capture(m, i, s, e);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", '%');
        }
        r = pc + 2;
    }
    luaL_addlstring(b, r, (size_t)(end - r));
}

/* Append the replacement for the match [s, e) as argument 3 (of Lua
 * type `tr`) says; false when it keeps the match (a function or table
 * gave false or nil). */
static bool add_replacement(struct mstate *m, luaL_Buffer *b, const char *s,
                            const char *e, int tr)
{
    lua_State *L = m->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e, true);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string(m, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

int lpat_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     tr == LUA_TNUMBER || tr == LUA_TSTRING ||
                         tr == LUA_TFUNCTION || tr == LUA_TTABLE,
                     3, "string/function/table");
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    struct mstate m;
    mstate_init(&m, L, s, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *last = NULL;
    lua_Integer n = 0;
    bool changed = false;
    while (n < max) {
        restart(&m);
        const char *e = match(&m, s, p);
        if (e != NULL && e != last) {
            size_t before = luaL_bufflen(&b);
            n++;
            changed = add_replacement(&m, &b, s, e, tr) || changed;
            step(&m, (luaL_bufflen(&b) - before) / COPY_BYTES);
            s = last = e;
        } else if (s < m.s_end) {
            luaL_addchar(&b, *s++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    settle(&m);
    if (changed) {
        luaL_addlstring(&b, s, (size_t)(m.s_end - s));
        luaL_pushresult(&b);
    } else {
        lua_pushvalue(L, 1);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ===== Registration ===== */

void lpat_push(lua_State *L, const char *name, const struct llib_charge *c)
{
    static const luaL_Reg fns[] = {
        {"find", lpat_find},
        {"match", lpat_match},
        {"gmatch", lpat_gmatch},
        {"gsub", lpat_gsub},
    };
    for (size_t i = 0; i < HS_ARRAY_LEN(fns); i++) {
        if (strcmp(fns[i].name, name) == 0) {
            lua_pushlightuserdata(L, (void *)c);
            lua_pushcclosure(L, fns[i].func, 1);
            return;
        }
    }
    luaL_error(L, "lpat_push: no pattern function '%s'", name);
}
