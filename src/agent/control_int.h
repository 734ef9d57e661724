/* control_int.h: the control endpoint's parts, shared by its files:
 * control.c (connections and the server), control_req.c (a request:
 * checks and the command table), control_node.c and control_kv.c (the
 * commands). Private to src/agent. */
#ifndef HS_CONTROL_INT_H
#define HS_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <uv.h>

#include "agent/control.h"
#include "agent/wal.h"
#include "base/buf.h"
#include "core/metadata.h"

/* Stop reading a connection whose answers pile up unread beyond this. */
#define WRITE_BACKLOG_MAX (1u << 20)

struct conn {
    uv_tcp_t tcp;
    uv_shutdown_t shut;
    struct control *ctl;
    struct conn *prev, *next;
    char *buf;
    size_t len, cap;
    struct join_req *join; /* our join in flight, or NULL */
    size_t scan;           /* buf[0..scan) holds no '\n' */
    bool busy;             /* an answer is pending: later lines wait */
    bool wants_leave;      /* answered by control_left() */
    bool eof;              /* the client sent everything it will send */
    bool closing;
    bool in_pump;
    bool discard; /* a line was too long: drop input up to its end */
    bool keys;    /* a keyring operation answers later */
    /* A connection holds one of the CONTROL_CONN_MAX slots only once a
     * request passed the token check; until then it waits among the
     * CONTROL_PENDING_MAX newest, with a deadline. */
    bool authed;
    bool pending;     /* counted in ctl->npending */
    bool reading;     /* reads are on (uv_read_start) */
    uint64_t since;   /* uv_now when accepted */
    uint64_t active;  /* uv_now when it last completed a request or
                         had one under way: the idle timeout runs from
                         here */
    struct buf *sink; /* no socket: answers are appended here */
    /* kv_list under way: the keys to list (each a 16-bit length and its
     * bytes), as they were when asked; values are read as written. */
    bool listing;
    bool list_values;
    struct buf list;
    size_t list_pos, list_count;
    /* kv_put or kv_delete taken, answered once on disk (wal.h). */
    struct wal_wait saving;
    bool saving_put;
    uint16_t saving_keylen;
    char saving_key[META_KEY_MAX + 1];
    uint64_t saving_version;
    /* kv_watch: the connection only receives events from now on. */
    bool watching;
    struct conn *wprev, *wnext;
    char *prefix;
    size_t prefixlen;
    /* monitor: the connection only receives log lines from now on, those
     * at mon_level or above, from line number mon_next on (control_log.c);
     * mon_dropped lines were lost before it read them. */
    bool monitoring;
    int mon_level;
    uint64_t mon_next, mon_dropped;
    struct conn *mprev, *mnext;
};

struct control {
    struct agent *a;
    uv_tcp_t server;
    uv_timer_t grace; /* force-closes stragglers at shutdown */
    struct conn *conns;
    size_t npending;       /* connections yet to pass the token check */
    size_t nauthed;        /* connections that hold a slot */
    uv_timer_t sweep;      /* checks the deadlines while any connection is
                           open */
    uint64_t idle_ms;      /* control_idle_timeout */
    struct conn *watchers; /* the connections in kv_watch */
    struct conn *monitors; /* the connections in monitor */
    uv_async_t log_async;  /* the log has new lines for the monitors */
    size_t line_max;       /* longest request line (a kv_put) */
    uint64_t max_value;    /* metadata_max_value, for messages */
    int handles;           /* open handles of our own (server, grace,
                              sweep, log_async) */
    bool stopping;         /* the agent left or is closing: serve no more */
    bool closing;
    void (*close_cb)(void *ud);
    void *close_ud;
};

/* ===== Connections (control.c) ===== */

/* Queue n bytes, and a '\n' to end the line if nl. */
void ctl_send_bytes(struct conn *c, const char *s, size_t n, bool nl);
/* Send obj (an answer; NULL is out of memory) and free it. */
void ctl_reply(struct conn *c, cJSON *obj);
/* {"ok":true}, to add the answer's fields to; NULL when out of memory. */
cJSON *ctl_ok_answer(void);
/* {"ok":false,"error":"..."} */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void ctl_reply_error(struct conn *c, const char *fmt, ...);
/* The bytes written to c and not yet sent. */
size_t ctl_backlog(const struct conn *c);
/* Close once the answers already written are sent. */
void ctl_finish(struct conn *c);
/* Serve the complete lines in the buffer, in order, while nothing keeps
 * us waiting (an answer in flight, a write backlog). Commands that
 * answer later clear c->busy, answer, then pump. */
void ctl_pump(struct conn *c);
/* A request of c passed the token check: take a slot for c if it has
 * none. False when none is free (then answered, and closing). */
bool ctl_admit(struct conn *c);

/* ===== Requests (control_req.c) ===== */

/* Answer one request line (without its '\n'). */
void ctl_handle_line(struct conn *c, const char *line, size_t n);
/* Bytes of the network made valid UTF-8 text (hs_free it), or NULL. */
char *ctl_utf8(const uint8_t *p, size_t n);
/* A JSON string from bytes of the network, made valid UTF-8. */
cJSON *ctl_add_bytes(cJSON *obj, const char *key, const uint8_t *p, size_t n);
/* {"min":min,"max":max,"version":cur} as obj's key. */
void ctl_add_vsn(cJSON *obj, const char *key, int min, int max, int cur);

/* ===== The log (control_log.c) ===== */

/* Put the tap on the agent's logger (once a process) and wake ctl for
 * its new lines; control_new does. */
void ctl_log_attach(struct control *ctl);
/* Stop waking ctl (the tap stays, passing lines on to the agent's sink)
 * and give the logger back its level; then close ctl->log_async. */
void ctl_log_detach(struct control *ctl);
/* Send a monitor the lines it has not had, while it keeps up. */
void ctl_monitor_more(struct conn *c);
/* The connection stops monitoring (if it did). */
void ctl_unmonitor(struct conn *c);

/* ===== Commands (control_node.c, control_kv.c, control_log.c) =====
 * Each answers c's request req, at once or later (then it sets c->busy). */
typedef void ctl_cmd_fn(struct conn *c, const cJSON *req);
ctl_cmd_fn ctl_cmd_members, ctl_cmd_join, ctl_cmd_leave, ctl_cmd_pause,
    ctl_cmd_resume, ctl_cmd_reload, ctl_cmd_version, ctl_cmd_stats,
    ctl_cmd_keys, ctl_cmd_force_leave, ctl_cmd_tags, ctl_cmd_monitor;
ctl_cmd_fn ctl_cmd_kv_put, ctl_cmd_kv_get, ctl_cmd_kv_delete, ctl_cmd_kv_list,
    ctl_cmd_kv_watch;

/* The connection goes away: its keyring operation must not answer. */
void ctl_forget_keys(struct conn *c);
/* Write the next entries of a kv_list while the client keeps up. */
void ctl_list_more(struct conn *c);
/* The connection stops watching (if it did). */
void ctl_unwatch(struct conn *c);
/* The store's observer (ud is the struct control): sends each change to
 * the watchers of a prefix of its key. */
void ctl_on_meta_change(void *ud, const struct meta_change *ch);

#endif
