/* agent.h: the state of a running `hearsay agent`, shared by main.c (which
 * owns it: start-up, signals, leave, shutdown) and control*.c (which serve
 * the control endpoint from it).
 *
 * The control endpoint reaches main.c only through the `leave` and
 * `reload` pointers, never by a symbol, so that the fuzz target of the
 * endpoint links it without main.o. */
#ifndef HS_AGENT_H
#define HS_AGENT_H

#include <uv.h>

#include "agent/setup.h"
#include "base/log.h"
#include "core/config.h"

struct control;
struct metrics;
struct wal;
struct lua_host;
struct join_req;
struct watchdog;

struct agent {
    uv_loop_t loop;
    struct config cfg;        /* owned; config_free at exit */
    struct hs_logger log;     /* every log line of the node goes here */
    struct agent_setup setup; /* owned: the transport, the node (NULL
                               * once closed) and the joins (setup.h) */
    struct control *ctl;      /* owned; NULL once closed */
    struct metrics *met;      /* owned; NULL when off, or once closed */
    struct wal *wal;          /* owned: the data dir; NULL when none, or
                              * once closed */
    /* Start the graceful leave (the path SIGTERM takes): 0 if it started
     * or is already under way, else an HS_E* code. control_left() is
     * called when it completes; the agent then shuts down and exits 0. */
    int (*leave)(struct agent *a);
    /* Reload the hook scripts (SIGHUP, `hearsay reload`): 0 with the
     * number of scripts in *count, or an error with the sentence in err;
     * the old scripts stay on error. */
    int (*reload)(struct agent *a, size_t *count, char *err, size_t errlen);
    struct lua_host *lua; /* owned; NULL when no scripts */
    struct watchdog *wd;  /* owned; NULL outside an agent, or closed */
    bool leaving;         /* a leave started: refuse join/pause/resume */
};

#endif
