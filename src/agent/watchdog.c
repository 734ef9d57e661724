/* watchdog.c: a thread that watches the agent's event loop, and the
 * loop's step times (see watchdog.h). */
#include "agent/watchdog.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lua/lnode.h"

#define TICK_MS 50   /* how often the watchdog looks */
#define TEXT_MAX 160 /* "script=FILE:LINE hook=NAME" */

struct watchdog {
    uv_loop_t *loop;
    const struct hs_logger *log;
    uint64_t exit_ms;
    uv_timer_t beat;
    uv_prepare_t step;
    int handles; /* still open; wd is freed at 0 */
    struct lnode_observer obs;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool quit; /* under mu */
    bool thread_on;
    /* Written by the loop thread, read by the watchdog's. The call is
     * a seqlock: call_seq is odd while it is being written. */
    _Atomic uint64_t beat_ms; /* uv_hrtime, in ms, of the last beat */
    _Atomic uint64_t call_seq;
    _Atomic uint64_t call_start_ms; /* 0: no script call running */
    _Atomic char call_text[TEXT_MAX];
    /* Written by the watchdog's thread. */
    _Atomic uint64_t stalls;
    /* The loop thread's own. */
    uint64_t step_ns, step_idle; /* at the last step's start */
    _Atomic uint64_t longest_us, slow;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* ===== The loop thread's side ===== */

static void on_beat(uv_timer_t *t)
{
    struct watchdog *wd = t->data;
    atomic_store_explicit(&wd->beat_ms, now_ms(), memory_order_release);
}

/* Before each poll for I/O: the step that just ended took the time since
 * the previous one, less what the loop spent waiting in the poll. */
static void on_step(uv_prepare_t *p)
{
    struct watchdog *wd = p->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(wd->loop);
    if (wd->step_ns) {
        uint64_t wall = now - wd->step_ns, waited = idle - wd->step_idle;
        uint64_t busy_us = (wall > waited ? wall - waited : 0) / 1000u;
        if (busy_us > atomic_load(&wd->longest_us))
            atomic_store(&wd->longest_us, busy_us);
        if (busy_us >= WATCHDOG_SLOW_MS * 1000u)
            atomic_fetch_add(&wd->slow, 1);
    }
    wd->step_ns = now;
    wd->step_idle = idle;
}

static void call_begin(void *ud, const char *what, const char *where)
{
    struct watchdog *wd = ud;
    char text[TEXT_MAX];
    snprintf(text, sizeof text, "script=%s hook=%s", where, what);
    uint64_t seq = atomic_load_explicit(&wd->call_seq, memory_order_relaxed);
    atomic_store_explicit(&wd->call_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < TEXT_MAX; i++) {
        atomic_store_explicit(&wd->call_text[i], text[i], memory_order_relaxed);
        if (text[i] == '\0')
            break;
    }
    atomic_store_explicit(&wd->call_start_ms, now_ms(), memory_order_relaxed);
    atomic_store_explicit(&wd->call_seq, seq + 2, memory_order_release);
}

static void call_end(void *ud)
{
    struct watchdog *wd = ud;
    atomic_store_explicit(&wd->call_start_ms, 0, memory_order_release);
}

/* ===== The watchdog's thread ===== */

/* The script call running, if any: its start (0: none) and text. */
static uint64_t read_call(struct watchdog *wd, char *text)
{
    for (;;) {
        uint64_t s1 = atomic_load_explicit(&wd->call_seq, memory_order_acquire);
        if (s1 & 1)
            continue; /* the loop thread is writing it: a moment */
        uint64_t start =
            atomic_load_explicit(&wd->call_start_ms, memory_order_relaxed);
        for (size_t i = 0; i < TEXT_MAX; i++) {
            text[i] =
                atomic_load_explicit(&wd->call_text[i], memory_order_relaxed);
            if (text[i] == '\0')
                break;
        }
        text[TEXT_MAX - 1] = '\0';
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&wd->call_seq, memory_order_relaxed) == s1)
            return start;
    }
}

static void watch(void *arg)
{
    struct watchdog *wd = arg;
    uint64_t stalled_at = 0; /* the last beat before a stall warned of */
    char text[TEXT_MAX], held[TEXT_MAX] = "";
    uv_mutex_lock(&wd->mu);
    while (!wd->quit) {
        uv_cond_timedwait(&wd->cond, &wd->mu, TICK_MS * 1000000u);
        if (wd->quit)
            break;
        uint64_t now = now_ms();
        uint64_t beat =
            atomic_load_explicit(&wd->beat_ms, memory_order_acquire);
        uint64_t start = read_call(wd, text);
        if (stalled_at == 0 && beat && now - beat >= WATCHDOG_STALL_MS) {
            snprintf(held, sizeof held, "%s", start ? text : "");
            HS_WARN(wd->log, "event loop stalled: for=%.1fs %s",
                    (double)(now - beat) / 1000.0,
                    start ? text : "(not in a script)");
            stalled_at = beat;
            atomic_fetch_add(&wd->stalls, 1);
        } else if (stalled_at && beat != stalled_at) {
            HS_WARN(wd->log, "event loop stall ended: lasted=%.1fs %s",
                    (double)(beat - stalled_at) / 1000.0,
                    held[0] ? held : "(not in a script)");
            stalled_at = 0;
        }
        if (wd->exit_ms && start && now - start >= wd->exit_ms) {
            HS_ERROR(wd->log,
                     "a script call has held the event loop for "
                     "%.1fs: %s; exiting (script_watchdog=%llums) so "
                     "that a supervisor restarts the agent",
                     (double)(now - start) / 1000.0, text,
                     (unsigned long long)wd->exit_ms);
            _exit(1); /* the loop thread is stuck: no clean way out */
        }
    }
    uv_mutex_unlock(&wd->mu);
}

/* ===== Start and close ===== */

int watchdog_start(uv_loop_t *loop, const struct hs_logger *log,
                   uint64_t exit_ms, struct watchdog **out)
{
    struct watchdog *wd = hs_calloc(1, sizeof *wd);
    if (wd == NULL)
        return HS_ENOMEM;
    wd->loop = loop;
    wd->log = log;
    wd->exit_ms = exit_ms;
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    uv_timer_init(loop, &wd->beat);
    uv_prepare_init(loop, &wd->step);
    wd->beat.data = wd->step.data = wd;
    wd->handles = 2;
    /* Neither keeps the loop alive on its own. */
    uv_timer_start(&wd->beat, on_beat, WATCHDOG_BEAT_MS, WATCHDOG_BEAT_MS);
    uv_unref((uv_handle_t *)&wd->beat);
    uv_prepare_start(&wd->step, on_step);
    uv_unref((uv_handle_t *)&wd->step);
    atomic_store(&wd->beat_ms, now_ms());
    if (uv_mutex_init(&wd->mu) == 0) {
        if (uv_cond_init(&wd->cond) == 0) {
            if (uv_thread_create(&wd->thread, watch, wd) == 0)
                wd->thread_on = true;
            else
                uv_cond_destroy(&wd->cond);
        }
        if (!wd->thread_on)
            uv_mutex_destroy(&wd->mu);
    }
    if (!wd->thread_on)
        HS_WARN(log, "watchdog thread not started: stalls of the event "
                     "loop will not be reported");
    wd->obs = (struct lnode_observer){call_begin, call_end, wd};
    lnode_set_observer(&wd->obs);
    *out = wd;
    return 0;
}

struct watchdog_stats watchdog_stats(const struct watchdog *wd)
{
    struct watchdog *w = (struct watchdog *)(uintptr_t)wd;
    return (struct watchdog_stats){atomic_load(&w->longest_us),
                                   atomic_load(&w->slow),
                                   atomic_load(&w->stalls)};
}

static void on_handle_closed(uv_handle_t *h)
{
    struct watchdog *wd = h->data;
    if (--wd->handles == 0)
        hs_free(wd);
}

void watchdog_close(struct watchdog *wd)
{
    if (wd == NULL)
        return;
    lnode_set_observer(NULL);
    if (wd->thread_on) {
        uv_mutex_lock(&wd->mu);
        wd->quit = true;
        uv_cond_signal(&wd->cond);
        uv_mutex_unlock(&wd->mu);
        uv_thread_join(&wd->thread);
        uv_cond_destroy(&wd->cond);
        uv_mutex_destroy(&wd->mu);
        wd->thread_on = false;
    }
    uv_close((uv_handle_t *)&wd->beat, on_handle_closed);
    uv_close((uv_handle_t *)&wd->step, on_handle_closed);
}
