/* lua/call.c: every call into a script: the instruction budget and CPU
 * time bound (a count hook, as redis's script_lua.c), the sandbox's
 * coroutines, setmetatable and xpcall that keep them, the charge of the
 * library's loops in C, the watchdog's observer, and lnode_pcall with its
 * traceback (lua.c's msghandler) and counters. */
#include "lua/lnode_int.h"
#include "lua/sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ===== Which node the module functions act on ===== */

#define MAX_REGISTERED 4096
static struct lnode *registered[MAX_REGISTERED];
static size_t nregistered;
static struct lnode *current;

void lnode_register(struct lnode *ln)
{
    if (nregistered < MAX_REGISTERED)
        registered[nregistered++] = ln;
}

void lnode_unregister(struct lnode *ln)
{
    for (size_t i = 0; i < nregistered; i++) {
        if (registered[i] == ln) {
            registered[i] = registered[--nregistered];
            break;
        }
    }
    if (current == ln)
        current = ln->prev_current;
}

struct lnode *lnode_acting(size_t *nreg)
{
    *nreg = nregistered;
    if (current == NULL && nregistered == 1)
        return registered[0];
    return current;
}

/* ===== Protected calls with a budget =====
 * A call runs in a coroutine of its own, under a budget of VM
 * instructions that every thread it runs shares. The coroutines a script
 * creates inherit the count hook (lua_newthread copies it), so the hook
 * fires in whichever thread runs, and each time it pays for the next
 * stretch of that thread (PERIOD instructions) out of the call's total.
 * When the total is spent the call is stopped:
 *  - where the running thread can yield, the hook yields it: the call's
 *    own coroutine goes back to run_protected, past any pcall of the
 *    script, and is dropped; a coroutine the script resumed goes back to
 *    its resumer;
 *  - where it cannot (a table.sort comparator, a message handler, a
 *    metamethod called from C) the hook raises an error;
 *  - from then on the hook fires at every instruction of that thread and
 *    of the call's coroutine, so no pcall can hold the stop for more than
 *    an instruction, and the call's coroutine yields at its first
 *    instruction where it can.
 * The sandbox's coroutine.create and wrap pay for a new coroutine's first
 * stretch up front (it may end before the hook first fires), and they and
 * resume refuse to run anything once the call is out of budget.
 * Lua runs some code with hooks off, where nothing would stop it:
 * finalizers (__gc), which the sandbox lets no script set
 * (lnode_setmetatable); and, after an error raised in a hook, the
 * message handler of an xpcall and, when the thread dies of the error,
 * its pending to-be-closed variables, which the sandbox's xpcall,
 * coroutine.close and wrap then skip.
 *
 * Counting instructions misses the work of C functions: one instruction
 * may compare two long strings, sort a table or write a file. Outside a
 * simulation the budget therefore also bounds CPU time: a call may use
 * BUDGET_NS nanoseconds per instruction of its budget (half a second by
 * default), checked by the same hook, whose stretches shrink when they
 * take long so that it looks at the clock about every GAP_NS. The
 * library functions whose loops in C have no bound in the size of the
 * state (string.rep, the table functions, the pattern matcher) pay for
 * them through lnode_charge (lua/lib.c). Only a single C call that never
 * returns (a blocking read or write) escapes both; the agent's watchdog
 * reports it. */

#define BUDGET_MSG "instruction budget exceeded (script_budget)"
/* Instructions between two calls of the count hook, at most. (A count
 * hook makes the VM count every instruction; calling it every 100 rather
 * than every 1000 costs a few percent more.) */
#define PERIOD 100
#define NO_BUDGET INT64_MAX
/* CPU time a call may take per instruction of its budget, and how often
 * the hook wants to see the clock. */
#define BUDGET_NS 50
#define GAP_NS 1000000

/* A call running now. Calls nest (a hook that a script's API call fires
 * runs inside that script's call): an inner call pays out of its own
 * budget and out of each outer one, and ends by the earliest deadline. */
struct frame {
    lua_State *co;      /* the call's own coroutine */
    int64_t left;       /* instructions not paid for yet, or NO_BUDGET */
    uint64_t cpu;       /* CPU time (ns) the call may take; 0: no limit */
    uint64_t cpu_start; /* the thread's CPU clock when it began; 0: not
                           * read yet */
    uint64_t start;     /* monotonic ns when it began */
    uint64_t deadline;  /* monotonic ns before which `cpu` cannot be
                           * spent: the CPU clock is read only after it */
    uint64_t last;      /* monotonic ns of the hook's last look */
    bool timed;         /* this call or an outer one has a time limit */
    bool stopped;       /* out of budget */
    bool timed_out;     /* ... of its time */
    struct frame *outer;
};

static struct frame *frame; /* the innermost call running, if any */
/* In a thread's extra space: the hook raised the stop in it. */
static const char budget_mark;

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The wall clock, cheap (vDSO), and the loop thread's CPU time (a system
 * call, read once a call has run GAP_NS and then only near its end): time
 * the process waited for a CPU, on a busy machine, is not the script's. */
static uint64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* Has call f used its CPU time? Asks the CPU clock only once the wall
 * clock says it may have; if the thread was waiting meanwhile, the next
 * look is when the rest could be spent. */
static bool out_of_time(struct frame *f, uint64_t now)
{
    if (f->cpu == 0)
        return false;
    if (f->cpu_start == 0) { /* most calls end before this */
        if (now - f->start < GAP_NS)
            return false;
        /* it used at most the wall-clock time gone by */
        uint64_t cpu = cpu_ns(), gone = now - f->start;
        f->cpu_start = cpu > gone ? cpu - gone : 1;
    }
    if (now < f->deadline)
        return false;
    uint64_t used = cpu_ns() - f->cpu_start;
    if (used >= f->cpu)
        return true;
    f->deadline = now + (f->cpu - used);
    return false;
}

/* The thread to push a call's function and arguments on: a hook fired
 * from inside a script (update_private_data calls private_data) runs on
 * top of that script's call. */
lua_State *lnode_state(const struct lnode *ln)
{
    return frame ? frame->co : ln->L;
}

/* Pay for up to `want` more instructions of the running call: returns
 * how many every budget it runs under allows (0: one is spent). */
static int64_t pay(int64_t want)
{
    int64_t can = want;
    for (struct frame *f = frame; f; f = f->outer)
        can = HS_MIN(can, f->left);
    if (can <= 0)
        return 0;
    for (struct frame *f = frame; f; f = f->outer)
        if (f->left != NO_BUDGET)
            f->left -= can;
    return can;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* The outermost call, from f out, that has used its CPU time, if any. */
static struct frame *late_call(struct frame *f, uint64_t now)
{
    struct frame *late = NULL;
    for (struct frame *g = f; g; g = g->outer)
        if (out_of_time(g, now))
            late = g;
    return late;
}

/* The running call is out of budget (of its time, when `late` is the
 * outermost call out of time): stop it, and every call it runs inside up
 * to the outermost one whose budget is spent. Their coroutines then stop
 * at their next instruction. lua_sethook is safe on a thread that is not
 * running (Lua's own lua.c sets it from a signal handler). */
static void stop(struct frame *late)
{
    struct frame *last = late ? late : frame;
    for (struct frame *f = frame; f && !late; f = f->outer)
        if (f->left <= 0)
            last = f;
    for (struct frame *f = frame; f; f = f->outer) {
        f->stopped = true;
        f->timed_out = late != NULL;
        lua_sethook(f->co, budget_hook, LUA_MASKCOUNT, 1);
        if (f == last)
            break;
    }
}

/* How many instructions the next stretch of L should be: PERIOD, fewer
 * when the last one took longer than GAP_NS (instructions that work in
 * C), growing back when they are quick again. */
static int64_t stretch(lua_State *L, uint64_t gap)
{
    int64_t cur = HS_MAX(lua_gethookcount(L), 1);
    if (gap > GAP_NS)
        return HS_MAX(1, (int64_t)((uint64_t)cur * GAP_NS / gap));
    if (cur < PERIOD && gap < GAP_NS / 4)
        return HS_MIN(PERIOD, cur * 2);
    return HS_MIN(PERIOD, cur);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct frame *f = frame;
    if (f == NULL)
        return; /* a coroutine resumed outside any call (a test's own) */
    if (!f->stopped) {
        struct frame *late = NULL;
        uint64_t gap = 0;
        if (f->timed) {
            uint64_t now = now_ns();
            gap = now - f->last;
            f->last = now;
            late = late_call(f, now);
        }
        int64_t got = late ? 0 : pay(stretch(L, gap));
        if (got > 0) {
            if (got != lua_gethookcount(L))
                lua_sethook(L, budget_hook, LUA_MASKCOUNT, (int)got);
            return;
        }
        stop(late);
    }
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    if (lua_isyieldable(L)) {
        lua_yield(L, 0);
        return;
    }
    /* An error raised in a hook leaves hooks off in this thread until a
     * pcall catches it: see guarded_handler and killed_by_budget. (New
     * threads copy the main thread's extra space: never mark that.) */
    if (!lua_pushthread(L))
        *(const void **)lua_getextraspace(L) = &budget_mark;
    lua_pop(L, 1);
    luaL_error(L, "%s",
               f->timed_out ? "time budget exceeded "
                              "(script_budget)"
                            : BUDGET_MSG);
}

/* Run the function below the nargs arguments on top of L in a new
 * coroutine, with a budget of `budget` instructions (0: none). On success
 * leaves exactly nresults values on L; on failure the message, with a
 * traceback. *stopped tells a budget stop. */
static int run_protected(lua_State *L, int nargs, int nresults, uint64_t budget,
                         bool timed, uint64_t mem_cap, bool *stopped,
                         struct lnode *ln)
{
    /* A coroutine that ended well can run the next call: keeping one
     * saves its creation on every hook call. */
    lua_State *co;
    bool reuse = ln && !ln->co_busy && ln->co_ref != LUA_NOREF;
    if (reuse) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ln->co_ref);
        co = lua_tothread(L, -1);
    } else {
        co = lua_newthread(L);
    }
    if (ln && !ln->co_busy) {
        if (!reuse) {
            lua_pushvalue(L, -1);
            ln->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        ln->co_busy = true;
    } else {
        ln = NULL; /* a nested call: this coroutine is not kept */
    }
    lua_insert(L, -(nargs + 2)); /* thread below the function */
    lua_xmove(L, co, nargs + 1); /* function and arguments */
    struct frame fr = {.co = co,
                       .left = NO_BUDGET,
                       .deadline = UINT64_MAX,
                       .timed = frame && frame->timed,
                       .outer = frame};
    if (budget)
        fr.left = (int64_t)HS_MIN(budget, (uint64_t)NO_BUDGET - 1);
    if (budget && timed) {
        fr.cpu = HS_MIN(budget, UINT64_MAX / 2 / BUDGET_NS) * BUDGET_NS;
        fr.timed = true;
    }
    if (fr.timed) {
        fr.start = fr.last = now_ns();
        if (fr.cpu)
            fr.deadline = fr.start + fr.cpu;
    }
    frame = &fr;
    /* The hook is on even without a budget: an outer call may have one,
     * and the coroutines this call creates inherit it. */
    int64_t first = pay(PERIOD);
    if (first > 0)
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, (int)first);
    else
        stop(NULL); /* an outer call is out of budget: stop at once */
    int nres = 0;
    int64_t mem = lsandbox_mem_begin(L, mem_cap);
    int status = lua_resume(co, L, nargs, &nres);
    lsandbox_mem_end(L, mem);
    frame = fr.outer;
    *stopped = fr.stopped;
    if (ln)
        ln->co_busy = false;
    if (status == LUA_OK) {
        if (nres > nresults) {
            lua_pop(co, nres - nresults);
            nres = nresults;
        }
        lua_xmove(co, L, nres);
        for (; nres < nresults; nres++)
            lua_pushnil(L);
        lua_remove(L, -(nresults + 1)); /* the thread */
        return LUA_OK;
    }
    if (ln) { /* dead or stuck: the next call makes a new one */
        luaL_unref(L, LUA_REGISTRYINDEX, ln->co_ref);
        ln->co_ref = LUA_NOREF;
    }
    if (status == LUA_YIELD) {
        if (!*stopped)
            lua_pushliteral(L, "a hook must not yield");
        else if (fr.timed_out && fr.cpu_start)
            lua_pushfstring(L,
                            "time budget exceeded (script_budget): %d "
                            "ms of CPU",
                            (int)((cpu_ns() - fr.cpu_start) / 1000000));
        else if (fr.timed_out)
            lua_pushliteral(L, "time budget exceeded (script_budget)");
        else
            lua_pushliteral(L, BUDGET_MSG);
        luaL_traceback(L, co, lua_tostring(L, -1), 0);
        lua_remove(L, -2);
        status = LUA_ERRRUN;
    } else if (status == LUA_ERRMEM) {
        /* The dead thread still holds what filled the state: let the
         * collector take it before building any message. */
        lua_pop(L, 1);
        lua_gc(L, LUA_GCCOLLECT);
        lua_pushliteral(L, "not enough memory");
        return status;
    } else {
        const char *msg = lua_tostring(co, -1);
        if (msg == NULL)
            msg = "(error object is not a string)";
        luaL_traceback(L, co, msg, 0);
    }
    lua_remove(L, -2); /* the thread: the collector takes it */
    return status;
}

/* ===== The sandbox's coroutines and metatables =====
 * coroutine.create, wrap and resume as Lua's own (lcorolib.c), with the
 * budget: a coroutine made inside a call pays its first stretch and
 * carries the hook, and none is made or resumed once the call is out of
 * budget. */

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, from) lua_closethread(co, from)
#else
#define close_thread(co, from) ((void)(from), lua_resetthread(co))
#endif

static void check_budget(lua_State *L)
{
    if (frame && frame->stopped)
        luaL_error(L, BUDGET_MSG);
}

/* A new coroutine running the function at index 1, pushed on L. */
static lua_State *new_thread(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    check_budget(L);
    int64_t got = frame ? pay(PERIOD) : 0;
    if (frame && got == 0) {
        stop(NULL);
        luaL_error(L, BUDGET_MSG);
    }
    lua_State *co = lua_newthread(L);
    if (frame)
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, (int)got);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    return co;
}

static int co_create(lua_State *L)
{
    new_thread(L);
    return 1;
}

/* lcorolib's auxresume: the number of results, or -1 with the error. */
static int resume(lua_State *L, lua_State *co, int narg)
{
    int nres;
    check_budget(L);
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    int status = lua_resume(co, L, narg, &nres);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "thread");
    int r = resume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

/* The budget hook raised an error in co, which died of it: its pending
 * to-be-closed variables would run with hooks off, so they never run. */
static bool killed_by_budget(lua_State *co)
{
    return *(const void **)lua_getextraspace(co) == &budget_mark;
}

static int co_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = resume(L, co, lua_gettop(L));
    if (r >= 0)
        return r;
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD && !killed_by_budget(co)) {
        stat = close_thread(co, L); /* its tbc variables */
        lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int co_wrap(lua_State *L)
{
    new_thread(L);
    lua_pushcclosure(L, co_wrapped, 1);
    return 1;
}

/* coroutine.close(co): lcorolib's, but see killed_by_budget. */
static int co_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "thread");
    int st = lua_status(co);
    lua_Debug ar;
    bool dead = st != LUA_OK && st != LUA_YIELD;
    bool idle = st == LUA_YIELD ||
                (st == LUA_OK && co != L && !lua_getstack(co, 0, &ar));
    if (!dead && !idle)
        return luaL_error(L, "cannot close a %s coroutine",
                          co == L ? "running" : "normal");
    check_budget(L);
    if (dead && killed_by_budget(co)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, BUDGET_MSG);
        return 2;
    }
    if (close_thread(co, L) == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

/* ===== Work done in C =====
 * The library functions of lua/lib.c pay here for the loops they run in
 * C, where the count hook never fires: out of every budget the call runs
 * under, at a unit of work per instruction, and against its CPU time.
 * Past either the call is stopped as by the hook (which then stops the
 * script at its next instruction, whatever pcall it runs in) and the
 * library function raises the budget's error instead of looping. */
void lnode_charge(lua_State *L, lua_Unsigned work)
{
    struct frame *f = frame;
    if (f == NULL)
        return; /* a test's own code, outside any call */
    check_budget(L);
    int64_t want =
        work > (lua_Unsigned)NO_BUDGET - 1 ? NO_BUDGET - 1 : (int64_t)work;
    struct frame *late = f->timed ? late_call(f, now_ns()) : NULL;
    if (late == NULL && pay(want) == want)
        return;
    stop(late);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s",
               late ? "time budget exceeded (script_budget)" : BUDGET_MSG);
}

const struct llib_charge lnode_library_charge = {lnode_charge};

void lnode_guard_coroutines(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {{"create", co_create},
                                   {"resume", co_resume},
                                   {"wrap", co_wrap},
                                   {"close", co_close},
                                   {NULL, NULL}};
    idx = lua_absindex(L, idx);
    for (int i = 0; fns[i].name; i++) {
        lua_pushcfunction(L, fns[i].func);
        lua_setfield(L, idx, fns[i].name);
    }
}

/* The message handler of the sandbox's xpcall: the script's handler,
 * unless the call is out of budget (the error may come from the budget
 * hook, which leaves hooks off while the handler runs). */
static int guarded_handler(lua_State *L)
{
    if (frame && frame->stopped)
        return 1; /* the error as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int finish_xpcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

int lnode_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_xpcall);
    return finish_xpcall(L, status, 2);
}

/* setmetatable, as the base library's, but a metatable with a __gc field
 * is refused: Lua runs finalizers with hooks off, outside any budget. A
 * __gc added to the metatable later marks nothing (Lua checks for it
 * when the metatable is set). */
int lnode_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: a metatable with __gc is "
                                 "not allowed (finalizers would run outside "
                                 "the instruction budget)");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* A hook failing over and over would flood the log: log its first
 * failure, then at most one line per QUIET_MS with the count left out. */
#define QUIET_MS 10000

static bool should_log(struct lnode *ln, const char *what, uint64_t *skipped)
{
    uint64_t now = ln->nd ? node_time(ln->nd) : 0;
    size_t free_slot = HS_ARRAY_LEN(ln->quiet);
    for (size_t i = 0; i < HS_ARRAY_LEN(ln->quiet); i++) {
        if (ln->quiet[i].what == what) {
            if (now - ln->quiet[i].last < QUIET_MS) {
                ln->quiet[i].suppressed++;
                return false;
            }
            *skipped = ln->quiet[i].suppressed;
            ln->quiet[i].suppressed = 0;
            ln->quiet[i].last = now;
            return true;
        }
        if (ln->quiet[i].what == NULL && free_slot == HS_ARRAY_LEN(ln->quiet))
            free_slot = i;
    }
    if (free_slot < HS_ARRAY_LEN(ln->quiet)) {
        ln->quiet[free_slot].what = what;
        ln->quiet[free_slot].last = now;
    }
    *skipped = 0;
    return true;
}

/* ===== Who is running: the watchdog's view ===== */

static const struct lnode_observer *observer;
static int observed; /* calls running, nested ones included */

void lnode_set_observer(const struct lnode_observer *obs)
{
    observer = obs;
}

/* The function at idx is about to be called as `what`. */
static void observe_begin(lua_State *L, int idx, const char *what)
{
    if (observer == NULL || observed++ > 0)
        return;
    char where[LUA_IDSIZE + 24] = "?";
    lua_Debug ar;
    lua_pushvalue(L, idx);
    if (lua_getinfo(L, ">S", &ar))
        snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.linedefined);
    observer->begin(observer->ud, what, where);
}

static void observe_end(void)
{
    if (observer && --observed == 0)
        observer->end(observer->ud);
}

int lnode_pcall(struct lnode *ln, int nargs, int nresults, const char *what)
{
    lua_State *L = lnode_state(ln);
    bool stopped;
    HS_INVARIANT(lnode_refs_ok(ln));
    ln->prev_current = current;
    current = ln;
    observe_begin(L, -(nargs + 1), what);
    int status = run_protected(L, nargs, nresults, ln->budget, ln->real_time,
                               ln->mem_cap, &stopped, ln);
    observe_end();
    current = ln->prev_current;
    ln->stats.calls++;
    if (status != LUA_OK) {
        ln->stats.errors++;
        const char *kind = "failed";
        if (status == LUA_ERRMEM) {
            ln->stats.memory_errors++;
            kind = "ran out of memory (script_memory)";
        } else if (stopped) {
            ln->stats.budget_stops++;
            kind = "was stopped";
        }
        uint64_t skipped;
        if (should_log(ln, what, &skipped)) {
            char more[64] = "";
            if (skipped)
                snprintf(more, sizeof more, "\n(and %llu more failures)",
                         (unsigned long long)skipped);
            HS_ERROR(ln->log, "script %s %s: %s%s", what, kind,
                     lua_tostring(L, -1) ? lua_tostring(L, -1) : "?", more);
        }
        lua_pop(L, 1);
        /* Give back what the failed call left behind. */
        lua_gc(L, LUA_GCCOLLECT);
    }
    return status;
}

int lnode_run_top(struct lnode *ln, lua_State *L, uint64_t budget,
                  bool *stopped)
{
    /* The script's top level acts on ln (its timers, say). */
    struct lnode *outer = current;
    current = ln;
    observe_begin(L, -1, "load");
    int status = run_protected(L, 0, 1, budget, ln->real_time, ln->mem_cap,
                               stopped, NULL);
    observe_end();
    current = outer;
    return status;
}
