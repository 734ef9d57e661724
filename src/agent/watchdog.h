/* watchdog.h: the agent's watch on its own event loop.
 *
 * A script call can hold the loop in ways no instruction budget sees: a
 * single C function that runs on (a pattern that backtracks without end)
 * or a system call that blocks (a write to a full pipe, a file on a hung
 * disk). The watchdog is a small thread of its own. The loop thread tells
 * it, through atomics only, which script call is running since when, and
 * beats a heartbeat every WATCHDOG_BEAT_MS. When the loop has not beaten
 * for WATCHDOG_STALL_MS the watchdog logs a WARN naming the script call
 * holding it (once per stall); when the loop runs again it logs how long
 * the stall lasted. When a script call has held the loop for
 * script_watchdog (config), the watchdog logs an ERROR and ends the
 * process with exit status 1, so that a supervisor (systemd's
 * Restart=on-failure) starts it again.
 *
 * On the loop thread it also measures every step of the loop (the time
 * from one poll for I/O to the next, less the time spent waiting in it):
 * the longest, and how many took WATCHDOG_SLOW_MS or more.
 *
 * One watchdog per process: it observes every script call (lnode). */
#ifndef HS_WATCHDOG_H
#define HS_WATCHDOG_H

#include <stdint.h>

#include <uv.h>

#include "base/log.h"

#define WATCHDOG_BEAT_MS 100   /* the loop's heartbeat */
#define WATCHDOG_STALL_MS 1000 /* no beat for this long: a stall */
#define WATCHDOG_SLOW_MS 100   /* a loop step this long counts as slow */

struct watchdog;

struct watchdog_stats {
    uint64_t longest_step_us; /* the longest step of the loop so far */
    uint64_t slow_steps;      /* steps of WATCHDOG_SLOW_MS or more */
    uint64_t stalls;          /* stalls the watchdog warned about */
};

/* Watch `loop` (before uv_run: it turns on the loop's idle time
 * metric). exit_ms is script_watchdog (0: warn only). `log` must outlive
 * the watchdog. Returns 0 or an HS_E* code. */
int watchdog_start(uv_loop_t *loop, const struct hs_logger *log,
                   uint64_t exit_ms, struct watchdog **out);
struct watchdog_stats watchdog_stats(const struct watchdog *wd);
/* Stop the thread and close the loop's handles; wd is freed once they
 * are closed (the loop must run on). NULL does nothing. */
void watchdog_close(struct watchdog *wd);

#endif
