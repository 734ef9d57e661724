/* lua/lnode.c: hook scripts as hearsay's hooks, and the `hearsay` API that
 * scripts call (memberlist's delegates and pekonode's callbacks, in Lua).
 *
 * Every call into Lua goes through lnode_pcall: a traceback handler under
 * the function (lua.c's msghandler), an instruction budget (a count hook,
 * as redis's script_lua.c), counters. A failing hook never stops the
 * node: notifications are skipped, a veto refuses, a value keeps the old
 * one. */
#include "lua/lnode.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/members.h"
#include "core/metadata.h"

#define NODE_MT "hearsay.node"
#define TIMER_MT "hearsay.timer"
/* A script's top level (at load) may run this many times script_budget:
 * it builds the script's tables once. */
#define LOAD_BUDGET_TIMES 10

const char *const lnode_hook_names[] = {
    "on_member",         "private_data", "validate_metadata",
    "on_metadata",       "allow_member", "allow_merge",
    "on_conflict",       "on_message",   "ack_payload",
    "on_ping",           "local_state",  "merge_remote_state",
    NULL};

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
    lua_State *co;        /* the call's own coroutine */
    int64_t left;         /* instructions not paid for yet, or NO_BUDGET */
    uint64_t cpu;         /* CPU time (ns) the call may take; 0: no limit */
    uint64_t cpu_start;   /* the thread's CPU clock when it began; 0: not
                           * read yet */
    uint64_t start;       /* monotonic ns when it began */
    uint64_t deadline;    /* monotonic ns before which `cpu` cannot be
                           * spent: the CPU clock is read only after it */
    uint64_t last;        /* monotonic ns of the hook's last look */
    bool timed;           /* this call or an outer one has a time limit */
    bool stopped;         /* out of budget */
    bool timed_out;       /* ... of its time */
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
static lua_State *lstate(const struct lnode *ln)
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
    luaL_error(L, "%s", f->timed_out ? "time budget exceeded "
               "(script_budget)" : BUDGET_MSG);
}

/* Run the function below the nargs arguments on top of L in a new
 * coroutine, with a budget of `budget` instructions (0: none). On success
 * leaves exactly nresults values on L; on failure the message, with a
 * traceback. *stopped tells a budget stop. */
static int run_protected(lua_State *L, int nargs, int nresults,
                         uint64_t budget, bool timed, bool *stopped,
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
    lua_insert(L, -(nargs + 2));      /* thread below the function */
    lua_xmove(L, co, nargs + 1);      /* function and arguments */
    struct frame fr = {.co = co, .left = NO_BUDGET, .deadline = UINT64_MAX,
                       .timed = frame && frame->timed, .outer = frame};
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
    int status = lua_resume(co, L, nargs, &nres);
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
            lua_pushfstring(L, "time budget exceeded (script_budget): %d "
                            "ms of CPU", (int)((cpu_ns() - fr.cpu_start) /
                                               1000000));
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
        stat = close_thread(co, L);             /* its tbc variables */
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
    int64_t want = work > (lua_Unsigned)NO_BUDGET - 1 ? NO_BUDGET - 1
                                                       : (int64_t)work;
    struct frame *late = f->timed ? late_call(f, now_ns()) : NULL;
    if (late == NULL && pay(want) == want)
        return;
    stop(late);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s", late ? "time budget exceeded (script_budget)"
                             : BUDGET_MSG);
}

const struct llib_charge lnode_library_charge = {lnode_charge};

void lnode_guard_coroutines(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"create", co_create}, {"resume", co_resume}, {"wrap", co_wrap},
        {"close", co_close},   {NULL, NULL}};
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
        snprintf(where, sizeof where, "%s:%d", ar.short_src,
                 ar.linedefined);
    observer->begin(observer->ud, what, where);
}

static void observe_end(void)
{
    if (observer && --observed == 0)
        observer->end(observer->ud);
}

int lnode_pcall(struct lnode *ln, int nargs, int nresults, const char *what)
{
    lua_State *L = lstate(ln);
    bool stopped;
    ln->prev_current = current;
    current = ln;
    observe_begin(L, -(nargs + 1), what);
    int status = run_protected(L, nargs, nresults, ln->budget,
                               ln->real_time, &stopped, ln);
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

/* ===== Members as Lua values =====
 * A member reaches Lua as a read-only view: a userdata holding a copy of
 * the member, which indexes like a table (m.name, m.state ...), iterates
 * with pairs(), and refuses writes. m:totable() gives a plain table (for
 * cjson). One allocation per member, fields made when read. */

#define MEMBER_MT "hearsay.member"

/* Hide the metatable on top of the stack from getmetatable: a script
 * that could reach it could add a __gc for the next object made with it
 * (see lnode_setmetatable), or change how every script sees members. */
static void protect_metatable(lua_State *L)
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
    "name", "addr", "port", "state", "incarnation", "private_data",
    "protocol", "delegate", NULL};

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
static bool member_field(lua_State *L, const struct lmember *m,
                         const char *key)
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
    return luaL_error(L, "members are read-only (field '%s'); "
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
    struct lmember *m = lua_newuserdatauv(
        L, sizeof *m + src->name_len + src->meta_len, 0);
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
        static const luaL_Reg mm[] = {
            {"__index", member_index},   {"__newindex", member_newindex},
            {"__pairs", member_pairs},   {"__tostring", member_tostring},
            {NULL, NULL}};
        luaL_setfuncs(L, mm, 0);
        protect_metatable(L);
    }
    lua_setmetatable(L, -2);
}

void lnode_push_stats(lua_State *L, struct lnode *ln)
{
    const struct node *nd = ln->nd;
    const struct node_stats *s = node_stats(nd);
    lua_newtable(L);
#define S(f) set_int(L, #f, (lua_Integer)s->f)
    S(packets_in); S(packets_out); S(bytes_in); S(bytes_out);
    S(send_errors); S(probes); S(probes_failed); S(indirect_probes);
    S(tcp_pings); S(tcp_ping_rescues); S(nacks_received); S(suspicions);
    S(refutations); S(deaths); S(conflicts); S(push_pulls_out);
    S(push_pulls_in); S(push_pull_errors); S(streams_in); S(streams_out);
    S(broadcasts_queued); S(user_messages_in); S(user_messages_out);
    S(members_refused); S(rumors_duplicate);
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
    M(writes_local); M(writes_remote); M(refused_local); M(refused_remote);
    M(refused_future); M(fetches); M(fetch_errors); M(sync_streams);
    M(sync_bytes_out); M(sync_bytes_in); M(digest_bytes_out);
    M(digest_bytes_in); M(tombstones_collected); M(refused_horizon);
    M(dropped_horizon);
#undef M
    set_int(L, "horizon", (lua_Integer)metadata_horizon(md));
    set_int(L, "keys", (lua_Integer)metadata_count(md, false));
    set_int(L, "tombstones",
            (lua_Integer)(metadata_count(md, true) -
                          metadata_count(md, false)));
    lua_setfield(L, -2, "metadata");
}

/* ===== Calling the scripts' hooks ===== */

/* Push the scripts' functions for hook `name`, one at a time: returns the
 * number of scripts; call fn(i) for each that defines it. */
struct each {
    struct lnode *ln;
    lua_State *L;
    const char *name;
    int scripts;  /* stack index of the scripts array */
    int n;
};

static bool each_begin(struct lnode *ln, const char *name, struct each *e)
{
    e->ln = ln;
    e->L = lstate(ln);
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
    lua_State *L = lstate(ln);
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
    lua_State *L = lstate(ln);
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
    lua_State *L = lstate(ln);
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

enum hook_kind { K_MEMBER, K_META, K_MESSAGE, K_ALLOW, K_MERGE, K_CONFLICT,
                 K_ACK, K_PING, K_LOCAL, K_REMOTE, K_TIMER, K_JOINED,
                 K_VALIDATE, K_APPLIED, K_KEYS };

struct ltimer;
struct ljoin;
struct lkeys;
static void timer_body(lua_State *L, struct ltimer *t);
static void joined_body(lua_State *L, struct ljoin *j, int n, int err,
                        const char *why);
static void keys_body(lua_State *L, struct lkeys *k,
                      const struct node_keys_result *r);

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
        timer_body(L, c->obj);
        c->rc = 1; /* done: the caller must not touch the timer */
        break;
    case K_JOINED:
        joined_body(L, c->obj, (int)c->n, c->rc, c->why);
        break;
    case K_KEYS:
        keys_body(L, c->obj, c->keys);
        break;
    }
    return 0;
}

/* Run hook_body for c; on failure (no memory) count it and give the
 * hook's default: rc stays as the caller preset it. */
static void guard(struct lnode *ln, struct hook_call *c)
{
    lua_State *L = lstate(ln);
    c->ln = ln;
    bool hook = c->kind != K_TIMER && c->kind != K_JOINED &&
                c->kind != K_KEYS;
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
    guard(ud, &c);
}

static int h_node_meta(void *ud, size_t limit, struct buf *out)
{
    struct lnode *ln = ud;
    struct hook_call c = {.kind = K_META, .out = out, .rc = HS_ENOMEM};
    guard(ln, &c);
    if (c.rc == 0 && out->len > limit) {
        HS_ERROR(ln->log, "script private_data returned %zu bytes, more "
                 "than %zu: the previous private data stays", out->len,
                 limit);
        ln->stats.errors++;
        c.rc = HS_ETOOBIG;
    }
    return c.rc;
}

static void h_on_message(void *ud, const char *from, size_t fromlen,
                         const uint8_t *p, size_t n)
{
    struct hook_call c = {.kind = K_MESSAGE, .from = from,
                          .fromlen = fromlen, .p = p, .n = n};
    guard(ud, &c);
}

static int h_allow_member(void *ud, const struct member *m, char *why,
                          size_t whylen)
{
    struct hook_call c = {.kind = K_ALLOW, .m = m, .why = why,
                          .whylen = whylen, .rc = HS_EREFUSED};
    snprintf(why, whylen, "allow_member could not be called");
    guard(ud, &c);
    return c.rc;
}

static int h_allow_merge(void *ud, const struct member *const *ms, size_t n,
                         char *why, size_t whylen)
{
    struct hook_call c = {.kind = K_MERGE, .ms = ms, .n = n, .why = why,
                          .whylen = whylen, .rc = HS_EREFUSED};
    snprintf(why, whylen, "allow_merge could not be called");
    guard(ud, &c);
    return c.rc;
}

static void h_on_conflict(void *ud, const struct member *existing,
                          const struct member *other)
{
    struct hook_call c = {.kind = K_CONFLICT, .m = existing, .m2 = other};
    guard(ud, &c);
}

static int h_ack_payload(void *ud, struct buf *out)
{
    struct hook_call c = {.kind = K_ACK, .out = out, .rc = HS_ENOMEM};
    guard(ud, &c);
    return c.rc;
}

static void h_on_ping(void *ud, const struct member *m, uint64_t rtt_ms,
                      const uint8_t *payload, size_t n)
{
    struct hook_call c = {.kind = K_PING, .m = m, .rtt = rtt_ms,
                          .p = payload, .n = n};
    guard(ud, &c);
}

static int h_local_state(void *ud, bool join, struct buf *out)
{
    struct hook_call c = {.kind = K_LOCAL, .join = join, .out = out,
                          .rc = HS_ENOMEM};
    guard(ud, &c);
    return c.rc;
}

static void h_merge_remote_state(void *ud, const uint8_t *p, size_t n,
                                 bool join)
{
    struct hook_call c = {.kind = K_REMOTE, .p = p, .n = n, .join = join};
    guard(ud, &c);
}

static int h_validate_metadata(void *ud, const struct meta_change *mc,
                               char *why, size_t whylen)
{
    struct hook_call c = {.kind = K_VALIDATE, .mc = mc, .why = why,
                          .whylen = whylen, .rc = HS_EREFUSED};
    snprintf(why, whylen, "validate_metadata could not be called");
    guard(ud, &c);
    return c.rc;
}

static void h_on_metadata(void *ud, const struct meta_change *mc)
{
    struct hook_call c = {.kind = K_APPLIED, .mc = mc};
    guard(ud, &c);
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

struct ltimer {
    struct ltimer *next, *prev;
    struct lnode *ln;
    struct node_utimer *ut; /* NULL once done */
    int fn_ref, self_ref;
    bool repeat;
};

static void timer_done(struct ltimer *t)
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

static void cancel_keys(struct lnode *ln);

/* Drop what would call back into Lua: timers and keyring operations. */
static void cancel_timers(struct lnode *ln)
{
    cancel_keys(ln);
    while (ln->timers) {
        struct ltimer *t = ln->timers;
        if (t->ut && ln->nd)
            node_timer_cancel(ln->nd, t->ut);
        timer_done(t);
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

void lnode_set_scripts(struct lnode *ln, int idx)
{
    idx = lua_absindex(ln->L, idx);
    luaL_unref(ln->L, LUA_REGISTRYINDEX, ln->scripts_ref);
    lua_pushvalue(ln->L, idx);
    ln->scripts_ref = luaL_ref(ln->L, LUA_REGISTRYINDEX);
    lua_remove(ln->L, idx);
}

void lnode_detach(struct lnode *ln)
{
    cancel_timers(ln);
    ln->nd = NULL;
}

void lnode_close(struct lnode *ln)
{
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
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                         : NULL;
        bool known = false;
        for (int i = 0; k && lnode_hook_names[i]; i++)
            known |= strcmp(k, lnode_hook_names[i]) == 0;
        if (!known) {
            snprintf(err, errlen, "%s: unknown hook '%s' (hooks are "
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
    /* The script's top level acts on ln (its timers, say). */
    struct lnode *outer = current;
    current = ln;
    uint64_t budget = HS_MIN(ln->budget, UINT64_MAX / LOAD_BUDGET_TIMES);
    observe_begin(L, -1, "load");
    int status = run_protected(L, 0, 1, budget * LOAD_BUDGET_TIMES,
                               ln->real_time, &stopped, NULL);
    observe_end();
    current = outer;
    if (status != LUA_OK) {
        /* the first line: "file:line: message" */
        const char *msg = lua_tostring(L, -1);
        size_t n = msg ? strcspn(msg, "\n") : 0;
        snprintf(err, errlen, "%.*s%s", (int)n, msg ? msg : "",
                 stopped ? " (the script's top level never ended)" : "");
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: the script must return a table of "
                 "hooks, not a %s", path, luaL_typename(L, -1));
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    if (lnode_check_hooks(L, -1, path, err, errlen)) {
        lua_pop(L, 1);
        return HS_EINVAL;
    }
    return 0;
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
        ln = current;
        if (ln == NULL && nregistered == 1)
            ln = registered[0];
        if (ln == NULL)
            luaL_error(L, nregistered ? "several nodes run here: call the "
                       "method on one (node:members())" : "no node is "
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
                return luaL_argerror(L, a, "states are alive, suspect, "
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

static void joined_body(lua_State *L, struct ljoin *j, int n, int err,
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
        struct hook_call c = {.kind = K_JOINED, .obj = j, .n = (size_t)n,
                              .rc = err, .why = (char *)(uintptr_t)why};
        guard(ln, &c);
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
    lua_Integer ms = luaL_optinteger(L, a,
        (lua_Integer)node_config(ln->nd)->leave_timeout);
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
        return fail(L, rc, rc == HS_ETOOBIG ? "message too large for a "
                    "packet (udp_buffer_size); use send with reliable = "
                    "true" : NULL);
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
        return fail(L, rc, rc == HS_ENOTFOUND ? "no script defines "
                    "private_data" : "private_data failed or returned too "
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
    guard(t->ln, &c);
    /* Body not finished (no memory): t is still held; end a one-off. */
    if (c.rc == 0 && !t->repeat && t->fn_ref != LUA_NOREF)
        timer_done(t);
}

/* Sets c->rc (through the caller) to 1 once it has run to the end. */
static void timer_body(lua_State *L, struct ltimer *t)
{
    /* Keep the userdata (and so t) alive through the callback, which may
     * cancel the timer and drop the last reference. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    int hold = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
    lnode_pcall(t->ln, 0, 0, t->repeat ? "every" : "after");
    if (!t->repeat && t->fn_ref != LUA_NOREF)
        timer_done(t);
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
    int rc = node_timer_start(ln->nd, (uint64_t)ms,
                              repeat ? (uint64_t)ms : 0, timer_fired, t,
                              &t->ut);
    if (rc) {
        t->ln = ln;
        timer_done(t);
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
        timer_done(t);
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

static void keys_body(lua_State *L, struct lkeys *k,
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
        guard(ln, &c);
    }
    luaL_unref(ln->L, LUA_REGISTRYINDEX, k->fn_ref);
    hs_free(k);
}

static void cancel_keys(struct lnode *ln)
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
        return luaL_argerror(L, a, "expected a base64-encoded key of 16, "
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
    int rc = node_keys(ln->nd, op, key, len, cb ? keys_done : NULL,
                       cb ? k : NULL);
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

static const luaL_Reg api[] = {
    {"self", api_self},
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
    {"cancel", timer_cancel},
    {"active", timer_active},
    {NULL, NULL}};

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
        protect_metatable(L);
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TIMER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, timer_methods, 0);
        lua_setfield(L, -2, "__index");
        protect_metatable(L);
    }
    lua_pop(L, 1);
}
