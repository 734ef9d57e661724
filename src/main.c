/* main.c: the hearsay program. `hearsay agent` runs a gossip node (flags,
 * config file, wiring, the uv loop, signals, graceful leave); every other
 * command is a client of a running agent (src/cli/); the agent's flags
 * are agent/flags.c's.
 *
 * Exit status of the agent: 0 after a graceful leave, 1 on a runtime
 * failure (a bind error, a script call stuck past script_watchdog), 2 on
 * a usage or configuration error. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/flags.h"
#include "agent/keyfile.h"
#include "agent/metrics.h"
#include "agent/setup.h"
#include "agent/wal.h"
#include "agent/watchdog.h"
#include "cli/cli.h"
#include "core/metadata.h"
#include "core/node.h"
#include "core/snapshot.h"
#include "io/transport.h"
#include "lua/host.h"

#define EXIT_USAGE AGENT_EXIT_USAGE
/* Beyond leave_timeout the node itself gives up; this net only catches a
 * leave callback that never comes. */
#define LEAVE_BACKSTOP_MS 2000

/* ===== The running agent ===== */

enum {
    PHASE_RUNNING,
    PHASE_LEAVING,
    PHASE_CLOSING
};

/* main.c's side of the agent: what control.c need not see. */
struct runner {
    struct agent a;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t backstop;       /* leave safety net */
    uv_timer_t later;          /* runs the shutdown outside any callback */
    struct config_list rejoin; /* members the data dir knew */
    int phase;
    int pending; /* asynchronous closes still running */
    int exit_code;
    int argc; /* the agent's arguments, for reloads */
    char **argv;
};

static struct runner *runner_of(struct agent *a)
{
    return HS_CONTAINER_OF(a, struct runner, a);
}

static void on_own_closed(uv_handle_t *h)
{
    (void)h; /* the handles live in struct runner; nothing to free */
}

static void close_own(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_own_closed);
}

/* Everything the agent opened is closed: close our own handles, after
 * which uv_run returns. */
static void on_closed(void *ud)
{
    struct runner *r = ud;
    if (--r->pending > 0)
        return;
    close_own((uv_handle_t *)&r->sigint);
    close_own((uv_handle_t *)&r->sigterm);
    close_own((uv_handle_t *)&r->sighup);
    close_own((uv_handle_t *)&r->backstop);
    close_own((uv_handle_t *)&r->later);
}

/* ===== Data dir ===== */

/* Before the node starts: load the data dir, when there is one, into
 * the node's store, then keep it (wal.c). */
static int open_data_dir(void *ud, char *err, size_t errlen)
{
    struct runner *r = ud;
    struct agent *a = &r->a;
    struct snapshot_files files;
    if (a->cfg.data_dir[0] == '\0')
        return 0;
    int rc = snapshot_open(a->cfg.data_dir, a->setup.node, &r->rejoin, &a->log,
                           &files, err, errlen);
    if (rc == 0 && (rc = wal_new(&a->loop, a->cfg.data_dir, a->setup.node,
                                 &a->log, &files, NULL, &a->wal))) {
        a->wal = NULL;
        snprintf(err, errlen, "data_dir %s: %s", a->cfg.data_dir,
                 hs_strerror(rc));
    }
    snapshot_files_free(&files);
    return rc;
}

static void shutdown_agent(struct runner *r)
{
    struct agent *a = &r->a;
    r->phase = PHASE_CLOSING;
    r->pending = 1; /* held until every close below has started */
    if (a->ctl) {
        r->pending++;
        control_close(a->ctl, on_closed, r);
    }
    if (a->met) {
        r->pending++;
        metrics_close(a->met, on_closed, r);
    }
    if (a->wal) { /* the last word, before the node goes */
        struct wal *w = a->wal;
        a->wal = NULL;
        r->pending++;
        wal_close(w, on_closed, r);
    }
    watchdog_close(a->wd);
    a->wd = NULL;
    if (a->lua) { /* its timers live in the node: before node_close */
        lua_host_free(a->lua);
        a->lua = NULL;
    }
    r->pending++; /* the node, then the transport */
    agent_setup_close(&a->setup, on_closed, r);
    on_closed(r);
}

static void on_later(uv_timer_t *t)
{
    shutdown_agent(t->data);
}

/* The leave finished, timed out, or will never finish: answer a waiting
 * `hearsay leave`, then shut down outside of the node's callback. */
static void left(struct runner *r, int err)
{
    if (r->phase != PHASE_LEAVING)
        return;
    r->phase = PHASE_CLOSING;
    uv_timer_stop(&r->backstop);
    if (err)
        HS_WARN(&r->a.log, "graceful leave: %s; shutting down anyway",
                hs_strerror(err));
    else
        HS_INFO(&r->a.log, "graceful leave complete");
    if (r->a.ctl)
        control_left(r->a.ctl, err);
    uv_timer_start(&r->later, on_later, 0, 0);
}

static void on_left(void *ud, int err)
{
    left(ud, err);
}

static void on_backstop(uv_timer_t *t)
{
    struct runner *r = t->data;
    HS_ERROR(&r->a.log, "graceful leave: no word from the node after "
                        "leave_timeout; giving up");
    left(r, HS_ETIMEDOUT);
}

static int agent_leave(struct agent *a)
{
    struct runner *r = runner_of(a);
    if (r->phase != PHASE_RUNNING)
        return r->phase == PHASE_LEAVING ? 0 : HS_ESTATE;
    r->phase = PHASE_LEAVING;
    a->leaving = true;
    HS_INFO(&a->log, "graceful leave: timeout=%llums",
            (unsigned long long)a->cfg.leave_timeout);
    uv_timer_start(&r->backstop, on_backstop,
                   a->cfg.leave_timeout + LEAVE_BACKSTOP_MS, 0);
    int rc = node_leave(a->setup.node, a->cfg.leave_timeout, on_left, r);
    if (rc) {
        HS_ERROR(&a->log, "graceful leave failed: %s", hs_strerror(rc));
        r->exit_code = 1;
        left(r, rc);
    }
    return 0;
}

/* ===== Scripts ===== */

static int lua_join(struct lnode *ln, const char *const *addrs, size_t n,
                    node_join_cb cb, void *ud)
{
    struct join_req *j;
    return control_join(ln->owner, addrs, n, cb, ud, &j);
}

static int lua_leave(struct lnode *ln, uint64_t timeout_ms)
{
    struct agent *a = ln->owner;
    (void)timeout_ms; /* the agent leaves with leave_timeout, then exits */
    return a->leave(a);
}

static const struct lnode_ops agent_lua_ops = {lua_join, lua_leave};

/* Read the flags and the config file again and take the reloadable
 * settings (the security ones and the control token). */
static int reload_config(struct agent *a, char *err, size_t errlen)
{
    struct runner *r = runner_of(a);
    struct config fresh;
    char e[600];
    int rc = agent_configure(&fresh, r->argc, r->argv, e, sizeof e);
    if (rc < 0)
        rc = node_reconfigure_security(a->setup.node, &fresh, e, sizeof e);
    else
        rc = HS_EINVAL;
    if (rc == 0) {
        a->cfg.gossip_verify_incoming = fresh.gossip_verify_incoming;
        a->cfg.gossip_verify_outgoing = fresh.gossip_verify_outgoing;
        a->cfg.skip_inbound_label_check = fresh.skip_inbound_label_check;
        memcpy(a->cfg.label, fresh.label, sizeof a->cfg.label);
        memcpy(a->cfg.control_token, fresh.control_token,
               sizeof a->cfg.control_token);
    } else {
        snprintf(err, errlen, "%s", e);
        HS_ERROR(&a->log, "reload failed, nothing changed: %s", e);
    }
    config_free(&fresh);
    return rc;
}

static int agent_reload(struct agent *a, size_t *count, char *err,
                        size_t errlen)
{
    struct lua_host *h;
    if (a->setup.node == NULL || a->leaving) {
        snprintf(err, errlen, "the agent is leaving");
        return HS_ESTATE;
    }
    int rc = reload_config(a, err, errlen);
    if (rc)
        return rc;
    rc = lua_host_new(&a->cfg, &a->log, &agent_lua_ops, a, a->setup.node, &h,
                      err, errlen);
    if (rc) {
        HS_ERROR(&a->log, "reload failed, the previous scripts stay: %s", err);
        return rc;
    }
    struct hooks hooks = lua_host_hooks(h);
    node_set_hooks(a->setup.node, &hooks);
    lua_host_free(a->lua);
    a->lua = h;
    *count = lua_host_count(h);
    HS_INFO(&a->log, "scripts reloaded: count=%zu", *count);
    /* Announce the private data the new scripts give, if any. */
    node_update_meta(a->setup.node);
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    if (signum == SIGHUP) {
        char err[512];
        size_t count;
        agent_reload(&r->a, &count, err, sizeof err);
        return;
    }
    if (r->phase != PHASE_RUNNING) {
        fprintf(stderr, "==> Caught second signal %s: exiting now\n",
                strsignal(signum));
        exit(1);
    }
    fprintf(stderr,
            "==> Caught signal: %s\n"
            "==> Gracefully shutting down...\n",
            strsignal(signum));
    agent_leave(&r->a);
}

/* ===== Joins at start-up =====
 * As serf's agent: --join (start_join) is tried once, and when no
 * address answers the agent exits 1; --retry-join is tried every
 * retry_interval until a join succeeds, and after retry_max failed
 * retries (when set) the agent exits 1. The members the data dir's
 * snapshot knew are joined apart from both, and failing to reach them
 * is not fatal: after a whole cluster stopped, the first node back finds
 * nobody, and must wait for the others rather than exit. They are tried
 * again every retry_interval until one answers, another node joins this
 * one, or reconnect_timeout passes, so a restarted node is not left
 * alone while its peers come back. */

/* Stop with status 1, outside any callback of the node. */
static void fail_start(struct runner *r, const char *why)
{
    if (r->phase != PHASE_RUNNING)
        return;
    fprintf(stderr, "hearsay: %s\n", why);
    r->phase = PHASE_CLOSING;
    r->exit_code = 1;
    uv_timer_start(&r->later, on_later, 0, 0);
}

static void on_start_joined(void *ud, int joined, int err, const char *why)
{
    struct runner *r = ud;
    char msg[600];
    if (joined > 0) {
        HS_INFO(&r->a.log, "Join completed. Synced with %d initial agents",
                joined);
        return;
    }
    snprintf(msg, sizeof msg,
             "join failed, exiting: %s (a --join that "
             "fails is fatal; --retry-join keeps trying)",
             why ? why : hs_strerror(err));
    HS_ERROR(&r->a.log, "%s", msg);
    fail_start(r, msg);
}

static void on_retry_done(void *ud, int joined, const char *why)
{
    struct runner *r = ud;
    char msg[600];
    if (joined > 0)
        return;
    snprintf(msg, sizeof msg,
             "retry_join: no join succeeded after %d "
             "retries, exiting: %s",
             r->a.cfg.retry_max, why ? why : "failed");
    fail_start(r, msg);
}

static void start_joins(struct runner *r)
{
    struct agent *a = &r->a;
    const struct config *c = &a->cfg;
    if (r->rejoin.n) {
        struct join_retry_opts o = {c->retry_interval, 0, c->reconnect_timeout,
                                    true, "snapshot"};
        join_retry_start(&a->setup.joiner, &r->rejoin, &o, &a->log, NULL, NULL);
    }
    if (c->join.n)
        HS_INFO(&a->log, "Joining cluster...: join=start_join");
    struct agent_setup_joins j = {on_start_joined, on_retry_done, r};
    agent_setup_join(&a->setup, c, &j);
}

static void banner(struct runner *r)
{
    const struct config *c = &r->a.cfg;
    char bound[HS_ADDRSTRLEN], advs[HS_ADDRSTRLEN];
    struct hs_addr b = transport_bound(r->a.setup.tp);
    fprintf(stderr,
            "  Node name: '%s'\n"
            "  Bind addr: %s\n"
            "  Advertise addr: %s\n"
            "  Control addr: %s\n"
            "  Metrics addr: %s\n"
            "  Profile: %s\n"
            "  Transport: %s\n"
            "  Encrypted: %s\n"
            "==> hearsay agent running!\n",
            c->name, addr_format(&b, bound, sizeof bound),
            addr_format(&r->a.setup.adv, advs, sizeof advs), c->control,
            c->metrics[0] ? c->metrics : "off", c->profile,
            c->transport == TRANSPORT_TCP ? "tcp" : "udp",
            keyring_empty(node_keyring(r->a.setup.node)) ? "false" : "true");
}

/* The keyring changed: keep the keyring file up to date. */
static int save_keyring(void *ud, const struct keyring *kr, char *err,
                        size_t errlen)
{
    struct agent *a = ud;
    if (a->cfg.keyring_file[0] == '\0')
        return 0;
    return keyfile_save(a->cfg.keyring_file, kr, err, errlen);
}

/* The keyring file, when one is configured: its keys replace the
 * configured key (as consul does), or, when it does not exist yet, it is
 * created from the configured key. Returns 0, or 2 after printing why. */
static int open_keyring(struct agent *a, struct keyring *kr, bool *loaded)
{
    char err[600];
    *loaded = false;
    if (a->cfg.keyring_file[0] == '\0')
        return 0;
    int rc = keyfile_load(a->cfg.keyring_file, kr, err, sizeof err);
    if (rc == HS_ENOTFOUND)
        return 0;
    if (rc) {
        fprintf(stderr, "hearsay: %s\n", err);
        return EXIT_USAGE;
    }
    *loaded = true;
    if (a->cfg.encrypt[0] || a->cfg.encrypt_passphrase[0])
        HS_WARN(&a->log,
                "keyring file %s exists: using its %zu key(s), "
                "the configured encryption key is ignored",
                a->cfg.keyring_file, kr->n);
    else
        HS_INFO(&a->log, "keyring restored: keys=%zu file=%s", kr->n,
                a->cfg.keyring_file);
    /* The node starts with the file's keys only. */
    keyring_wipe(a->cfg.encrypt, sizeof a->cfg.encrypt);
    keyring_wipe(a->cfg.encrypt_passphrase, sizeof a->cfg.encrypt_passphrase);
    return 0;
}

/* Once the gossip port is bound, before the node starts: the control
 * endpoint and metrics take their ports, then the data dir is loaded.
 * A port taken anywhere stops the agent before it touches the data dir
 * (another agent may be running on it). */
static int before_node_start(void *ud, char *err, size_t errlen)
{
    struct runner *r = ud;
    int rc = control_start(&r->a, err, errlen);
    if (rc == 0)
        rc = metrics_start(&r->a, err, errlen);
    if (rc == 0)
        rc = open_data_dir(r, err, errlen);
    return rc;
}

/* Bring the agent up in setup.h's order, with the agent's own steps
 * between. Everything that can be checked is checked before a port is
 * taken: the keyring file is read, then (the node made, its transport
 * not yet bound) the scripts are loaded, once, the data dir must be
 * writable, and the keyring file is created when missing. Then the
 * gossip port, the control endpoint and metrics, the data dir's
 * contents, the node, the watchdog, the joins. On failure print one
 * line ("hearsay: why") and return 1 (2 for a script, or a keyring file
 * that cannot be read); the caller still runs the loop to close what was
 * opened, silently. */
static int start(struct runner *r)
{
    struct agent *a = &r->a;
    char err[512];
    struct keyring kr;
    bool from_file;
    int rc;
    fprintf(stderr, "==> Starting hearsay agent...\n");
    keyring_init(&kr);
    if ((rc = open_keyring(a, &kr, &from_file)))
        return rc;
    rc = agent_setup_open(&a->setup, &a->cfg, &a->loop, &a->log, &a->leaving,
                          err, sizeof err);
    for (size_t i = 0; rc == 0 && from_file && i < kr.n; i++)
        node_keyring_install(a->setup.node, kr.key[i], kr.len[i]);
    keyring_clear(&kr);
    if (rc) {
        fprintf(stderr, "hearsay: %s\n", err);
        return 1;
    }
    struct node *nd = a->setup.node;
    node_set_keyring_observer(nd, save_keyring, a);
    if (a->cfg.scripts.n) {
        /* The node exists and nothing is bound: a script's top level may
         * set timers, which run once the node has started. */
        if (lua_host_new(&a->cfg, &a->log, &agent_lua_ops, a, nd, &a->lua, err,
                         sizeof err)) {
            a->lua = NULL;
            fprintf(stderr, "hearsay: %s\n", err);
            return EXIT_USAGE;
        }
        struct hooks hooks = lua_host_hooks(a->lua);
        node_set_hooks(nd, &hooks);
    }
    if (a->cfg.data_dir[0] &&
        snapshot_check_dir(a->cfg.data_dir, err, sizeof err)) {
        fprintf(stderr, "hearsay: %s\n", err);
        return 1;
    }
    if (!from_file && a->cfg.keyring_file[0] &&
        !keyring_empty(node_keyring(nd))) {
        /* Create the file from the configured key. */
        if (save_keyring(a, node_keyring(nd), err, sizeof err)) {
            fprintf(stderr, "hearsay: %s\n", err);
            return 1;
        }
        HS_INFO(&a->log, "keyring file created: %s", a->cfg.keyring_file);
    }
    if (agent_setup_start(&a->setup, &a->cfg, before_node_start, r, err,
                          sizeof err)) {
        fprintf(stderr, "hearsay: %s\n", err);
        return 1;
    }
    /* Last: from here on the loop should turn. */
    if ((rc = watchdog_start(&a->loop, &a->log, a->cfg.script_watchdog,
                             &a->wd))) {
        fprintf(stderr, "hearsay: cannot start the watchdog: %s\n",
                hs_strerror(rc));
        return 1;
    }
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_signal_start(&r->sighup, on_signal, SIGHUP);
    banner(r);
    start_joins(r);
    return 0;
}

static void log_open_handle(uv_handle_t *h, void *ud)
{
    struct runner *r = ud;
    HS_ERROR(&r->a.log, "handle still open at exit: type=%s closing=%d",
             uv_handle_type_name(uv_handle_get_type(h)), uv_is_closing(h));
}

static int agent_main(int argc, char **argv)
{
    static struct runner r; /* outlives the loop: handles point into it */
    char err[600];
    int rc = agent_configure(&r.a.cfg, argc, argv, err, sizeof err);
    if (rc >= 0) {
        if (rc)
            fprintf(stderr, "hearsay: %s\n", err);
        config_free(&r.a.cfg);
        return rc;
    }
    r.argc = argc; /* a reload reads the flags and the file again */
    r.argv = argv;
    signal(SIGPIPE, SIG_IGN);
    struct agent *a = &r.a;
    a->log = (struct hs_logger){a->cfg.log_level, hs_log_stderr_sink, NULL};
    a->leave = agent_leave;
    a->reload = agent_reload;
    uv_loop_init(&a->loop);
    uv_signal_init(&a->loop, &r.sigint);
    uv_signal_init(&a->loop, &r.sigterm);
    uv_signal_init(&a->loop, &r.sighup);
    uv_timer_init(&a->loop, &r.backstop);
    uv_timer_init(&a->loop, &r.later);
    r.sigint.data = r.sigterm.data = r.sighup.data = &r;
    r.backstop.data = r.later.data = &r;
    if ((rc = start(&r)) != 0) {
        r.exit_code = rc; /* 2: a script, or the keyring file */
        /* The fatal line was the last word: closing what never ran has
         * nothing to say. */
        a->log.level = HS_LOG_OFF;
        shutdown_agent(&r);
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if ((rc = uv_loop_close(&a->loop)) != 0) {
        HS_ERROR(&a->log, "event loop not closed cleanly: %s", uv_strerror(rc));
        uv_walk(&a->loop, log_open_handle, &r);
    }
    config_free(&a->cfg);
    config_list_truncate(&r.rejoin, 0);
    return r.exit_code;
}

/* ===== main ===== */

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "agent"))
        return agent_main(argc - 1, argv + 1);
    if (argc >= 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "agent")) {
        agent_help(stdout);
        return 0;
    }
    return cli_main(argc - 1, argv + 1);
}
