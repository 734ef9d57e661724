/* control.h: the agent's control endpoint, and the join operation shared
 * by the endpoint and the agent's start-up.
 *
 * The endpoint is a TCP server (loopback by default) speaking JSON lines:
 * each request is one JSON object on one line, each answer one JSON object
 * on one line, in order; the connection stays open for more requests.
 *
 *   {"cmd":"members","status":"alive"}  status optional: alive, suspect,
 *                                       dead (or failed), left
 *   {"cmd":"join","addrs":["host:port", "name/host:port", ...]}
 *   {"cmd":"leave"}      answered once the graceful leave completed
 *   {"cmd":"pause"}  {"cmd":"resume"}
 *   {"cmd":"version"}  {"cmd":"stats"}  {"cmd":"reload"}
 *   {"cmd":"kv_put","key":"k","value":"text"}   or "value_base64"
 *   {"cmd":"kv_get","key":"k"}  {"cmd":"kv_delete","key":"k"}
 *   {"cmd":"kv_list","prefix":"p","values":true}
 *   {"cmd":"kv_watch","prefix":"p"}    then one line per change applied
 *   {"cmd":"keys","op":"list|install|use|remove","key":"base64"}
 *                        answered once every member answered or failed
 *   {"cmd":"force_leave","name":"n"}   a failed member marked left
 *   {"cmd":"tags","set":{"k":"v"},"delete":["k"]}  this node's Serf tags
 *   {"cmd":"monitor","log_level":"debug"}  then one line per log line
 *
 * With control_token set, every request carries "token":"..."; without
 * the right one the answer is an error.
 *
 * Answers are {"ok":true, ...} or {"ok":false,"error":"sentence"}. A line
 * longer than CONTROL_LINE_MAX bytes is answered with an error and the
 * connection closed. */
#ifndef HS_CONTROL_H
#define HS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The one place the version lives (agent banner, CLI, control answers). */

/* Where the CLI and the agent meet unless told otherwise: the default
 * address, overridden by the environment variable, overridden by the
 * --control flag. */
#define CONTROL_DEFAULT_ADDR "127.0.0.1:7374"
#define CONTROL_ENV "HEARSAY_CONTROL"
/* The CLI's control token, as consul's CONSUL_HTTP_TOKEN (or --token). */
#define CONTROL_TOKEN_ENV "HEARSAY_CONTROL_TOKEN"

#define CONTROL_LINE_MAX (64 * 1024) /* longest request line */
/* Connections that passed the token check (with no token: sent a JSON
 * object) hold one of CONTROL_CONN_MAX slots; one idle (no request under
 * way, not watching) for control_idle_timeout is closed. Until then a
 * connection waits among the CONTROL_PENDING_MAX newest: a newcomer
 * evicts the oldest waiting one, and one that sends no request within
 * CONTROL_FIRST_REQUEST_MS (or control_idle_timeout, if shorter) is
 * closed. Silent clients cannot keep out one that has the token. */
#define CONTROL_CONN_MAX 64
#define CONTROL_PENDING_MAX 16
#define CONTROL_FIRST_REQUEST_MS 10000

struct agent;
struct control;
struct join_req;

/* Listen on a->cfg.control (host names resolved synchronously: this runs
 * before the loop does). Sets a->ctl. Returns 0, or an HS_E* code with a
 * sentence in err; then a->ctl stays NULL and the handles opened close as
 * the loop runs. */
int control_start(struct agent *a, char *err, size_t errlen);

/* The control state without a listening socket: control_start's first
 * half (sets a->ctl), for connections without a socket below. NULL when
 * out of memory. */
struct control *control_new(struct agent *a);

/* A connection without a socket, for the fuzz target: the real parsing,
 * token check, dispatch and connection state, with the answers appended
 * to *out instead of sent. control_fake_feed gives it bytes as a read
 * would, while it reads (none while a request is under way: run the
 * loop and the node, then feed the rest), and returns how many it took;
 * n == 0 is the client's end of stream. *closed once the connection is
 * closing or gone. */
struct buf;
int control_fake_open(struct control *ctl, struct buf *out);
size_t control_fake_feed(struct control *ctl, const struct buf *out,
                         const uint8_t *p, size_t n, bool *closed);

/* The graceful leave finished (err is 0 or HS_ETIMEDOUT): answer every
 * connection waiting on a leave request. */
void control_left(struct control *c, int err);

/* Stop accepting, stop serving requests, flush the answers already
 * written and close every connection; cb(ud) runs once all handles are
 * closed and the struct is freed. Requests still waiting (join) are
 * dropped unanswered. */
void control_close(struct control *c, void (*cb)(void *ud), void *ud);

/* ===== Join =====
 * Resolve each address ("host:port", "[v6]:port", "host", or
 * "name/host:port" to give the node name for require_node_names) without
 * blocking, then push/pull with every address found in one node_join.
 * cb(ud, joined, 0, NULL) when at least one succeeded, else
 * cb(ud, 0, err, sentence). *out is set before cb can run, and cb may run
 * before control_join returns (when every step finishes at once). An
 * error return means cb never runs. */
typedef void (*control_join_cb)(void *ud, int joined, int err,
                                const char *why); /* as join_cb */
int control_join(struct agent *a, const char *const *specs, size_t n,
                 control_join_cb cb, void *ud, struct join_req **out);
/* The caller no longer wants the answer (its connection went away). */
void control_join_cancel(struct join_req *j);

#endif
