/* metrics.h: the agent's Prometheus endpoint: `GET /metrics` over HTTP
 * answers with the numbers of `hearsay stats` (stats.h) in the text
 * exposition format, version 0.0.4.
 *
 * A small HTTP/1.0 responder on the agent's loop: one request and one
 * answer per connection, then the connection closes. Every byte a client
 * sends is untrusted: the request line and headers may take at most
 * METRICS_REQUEST_MAX bytes and METRICS_TIMEOUT_MS to arrive, at most
 * METRICS_CONN_MAX connections are served at once, and whatever is wrong
 * gets a 4xx answer (another path 404, another method 405, a malformed
 * request 400, too long 431, too slow 408) while the agent goes on.
 * There is no authentication: keep it on loopback, or behind a proxy. */
#ifndef HS_METRICS_H
#define HS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/stats.h"

#define METRICS_REQUEST_MAX 8192 /* request line and headers, in bytes */
#define METRICS_TIMEOUT_MS 5000  /* to send the whole request */
#define METRICS_LINGER_MS 2000   /* to take the answer, after it */
#define METRICS_CONN_MAX 16      /* connections served at once */

struct agent;
struct metrics;

/* The answers given, by status code (hearsay stats, and the endpoint's
 * own metrics). */
#define METRICS_CODES(X)                      \
    X(200, "OK")                              \
    X(400, "Bad Request")                     \
    X(404, "Not Found")                       \
    X(405, "Method Not Allowed")              \
    X(408, "Request Timeout")                 \
    X(431, "Request Header Fields Too Large") \
    X(503, "Service Unavailable")

enum {
#define METRICS_CODE_ENUM(code, text) METRICS_##code,
    METRICS_CODES(METRICS_CODE_ENUM)
#undef METRICS_CODE_ENUM
    METRICS_CODE_COUNT
};

/* Listen on a->cfg.metrics when it is set (a numeric ip:port), and set
 * a->met; with it empty, do nothing. Returns 0, or an HS_E* code with a
 * sentence in err (a->met stays NULL; what was opened closes as the loop
 * runs). */
int metrics_start(struct agent *a, char *err, size_t errlen);

/* Stop listening and close every connection; cb(ud) runs once all
 * handles are closed and the struct is freed (a->met is NULL by then). */
void metrics_close(struct metrics *m, void (*cb)(void *ud), void *ud);

/* The endpoint's own numbers (its answers by status code, none when it
 * is off), for stats_collect. */
void metrics_samples(const struct agent *a, stats_fn fn, void *ud);

/* ===== The request parser (pure; the fuzz target calls it) ===== */
/* The end of the request head in p[0..len) (just past the empty line
 * that ends the headers; CRLF or bare LF line ends), or 0 while it has
 * not come. *scan (0 at first) remembers how far earlier calls looked,
 * so that a head arriving in pieces is scanned once. */
size_t metrics_head_end(const char *p, size_t len, size_t *scan);
/* Judge the request line "METHOD SP TARGET SP HTTP/1.x" of the head in
 * p[0..n): a METRICS_<code> index, and *head for HEAD. The target is
 * origin-form ("/metrics?query") or absolute-form
 * ("http://host:port/metrics", RFC 9112 section 3.2.2). */
int metrics_judge(const char *p, size_t n, bool *head);

#endif
