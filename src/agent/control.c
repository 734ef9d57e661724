/* control.c: the agent's control endpoint (JSON lines over TCP): the
 * server, its connections (reading, line framing, writing answers,
 * slots, deadlines, closing) and the join operation it shares with the
 * agent's start-up. What a request says is control_req.c's; the commands
 * are in control_node.c and control_kv.c.
 *
 * Everything that arrives on the control socket is untrusted, like the
 * network: lines are bounded, JSON is parsed by cJSON (which bounds its
 * nesting), every field is type-checked, and a bad request gets an error
 * answer, never a crash. */
#include "agent/control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "agent/agent.h"
#include "agent/control_int.h"
#include "agent/wal.h"
#include "base/text.h"
#include "core/node.h"

/* The read buffer holds one whole line and its '\n': CONTROL_LINE_MAX,
 * or for kv_put enough for a value of metadata_max_value in base64 (see
 * line_max). A buffer grown past BUF_KEEP is freed once it is empty. */
#define BUF_KEEP (CONTROL_LINE_MAX + 1)
#define BUF_MIN 4096
/* At shutdown, connections get this long to take their last answers. */
#define CLOSE_GRACE_MS 1000
/* How often the deadlines of connections are checked: a deadline is met
 * within this much. */
#define SWEEP_MS 250

struct wreq {
    uv_write_t req;
    struct conn *c;
    char data[];
};

/* ===== Join (join.c does the work) ===== */

int control_join(struct agent *a, const char *const *specs, size_t n,
                 control_join_cb cb, void *ud, struct join_req **out)
{
    return join_start(&a->setup.joiner, specs, n, cb, ud, out);
}

void control_join_cancel(struct join_req *j)
{
    join_cancel(j);
}

/* ===== Writing answers ===== */

static void close_now(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = HS_CONTAINER_OF(req, struct wreq, req);
    struct conn *c = w->c;
    hs_free(w);
    /* The client is gone. A read error would say so too, but only while
     * we read: not during a long kv_list, nor to a watcher that
     * half-closed. */
    if (status < 0 && status != UV_ECANCELED)
        close_now(c);
    else if (!c->closing)
        ctl_pump(c); /* the backlog may have drained */
}

size_t ctl_backlog(const struct conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* Queue n bytes, and a '\n' to end the line if nl. */
void ctl_send_bytes(struct conn *c, const char *s, size_t n, bool nl)
{
    if (c->closing)
        return;
    if (c->sink) { /* a connection without a socket (the fuzz target) */
        buf_append(c->sink, s, n);
        if (nl)
            buf_putc(c->sink, '\n');
        return;
    }
    struct wreq *w = hs_malloc(sizeof *w + n + 1);
    if (w == NULL) {
        ctl_finish(c);
        return;
    }
    w->c = c;
    memcpy(w->data, s, n);
    w->data[n] = '\n';
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(n + nl));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        hs_free(w);
        ctl_finish(c);
    }
}

static void send_text(struct conn *c, const char *s)
{
    ctl_send_bytes(c, s, strlen(s), true);
}

/* Send obj and free it. */
void ctl_reply(struct conn *c, cJSON *obj)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (s == NULL) {
        send_text(c, "{\"ok\":false,\"error\":\"out of memory\"}");
        return;
    }
    send_text(c, s);
    cJSON_free(s);
}

cJSON *ctl_ok_answer(void)
{
    cJSON *obj = cJSON_CreateObject();
    if (obj)
        cJSON_AddTrueToObject(obj, "ok");
    return obj;
}

void ctl_reply_error(struct conn *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *obj = cJSON_CreateObject();
    if (obj) {
        cJSON_AddFalseToObject(obj, "ok");
        cJSON_AddStringToObject(obj, "error", msg);
    }
    ctl_reply(c, obj);
}

/* ===== Slots =====
 * A connection that has not passed the token check yet holds no slot: it
 * waits among the CONTROL_PENDING_MAX newest such connections, where a
 * newcomer evicts the oldest, and must send a request within
 * CONTROL_FIRST_REQUEST_MS. Silent or slow clients, token or not, thus
 * never keep out a client that sends its request at once. A request that
 * passes the check takes one of the CONTROL_CONN_MAX slots, which an
 * idle connection gives back after control_idle_timeout. */

/* The connection no longer counts where it counted. */
static void release(struct conn *c)
{
    if (c->pending)
        c->ctl->npending--;
    if (c->authed)
        c->ctl->nauthed--;
    c->pending = c->authed = false;
}

/* A request of c passed the token check: take a slot for c if it has
 * none. False when none is free (then answered, and closing). */
bool ctl_admit(struct conn *c)
{
    struct control *ctl = c->ctl;
    if (c->authed)
        return true;
    if (ctl->nauthed >= CONTROL_CONN_MAX) {
        ctl_reply_error(c, "too many control connections (at most %d)",
                        CONTROL_CONN_MAX);
        ctl_finish(c);
        return false;
    }
    release(c);
    c->authed = true;
    ctl->nauthed++;
    return true;
}

/* A new connection waits for its first request; the oldest waiting one
 * makes room if there is none. */
static void pend(struct conn *c)
{
    struct control *ctl = c->ctl;
    if (ctl->npending >= CONTROL_PENDING_MAX) {
        struct conn *old = NULL;
        /* The list is newest first: the last of the earliest wins. */
        for (struct conn *k = ctl->conns; k; k = k->next)
            if (k->pending && !k->closing && (!old || k->since <= old->since))
                old = k;
        if (old) {
            HS_DEBUG(&ctl->a->log,
                     "control: evicted a connection that "
                     "sent no request: waiting=%zu",
                     ctl->npending);
            ctl_reply_error(old,
                            "closed: too many connections waiting to send "
                            "a request (at most %d)",
                            CONTROL_PENDING_MAX);
            ctl_finish(old);
        }
    }
    c->pending = true;
    ctl->npending++;
}

static void on_sweep(uv_timer_t *t)
{
    struct control *ctl = t->data;
    uint64_t now = uv_now(&ctl->a->loop);
    uint64_t first = HS_MIN((uint64_t)CONTROL_FIRST_REQUEST_MS, ctl->idle_ms);
    bool any = false;
    for (struct conn *k = ctl->conns, *next; k; k = next) {
        next = k->next;
        if (k->closing)
            continue;
        any = true;
        if (k->busy) { /* a request under way, or a watch: not idle */
            k->active = now;
        } else if (!k->authed && now - k->since >= first) {
            ctl_reply_error(k, "no request within %llu ms: closed",
                            (unsigned long long)first);
            ctl_finish(k);
        } else if (k->authed && now - k->active >= ctl->idle_ms) {
            HS_DEBUG(&ctl->a->log,
                     "control: closed a connection idle for "
                     "%llu ms",
                     (unsigned long long)(now - k->active));
            ctl_finish(k);
        }
    }
    if (!any)
        uv_timer_stop(t);
}

/* ===== Connections ===== */

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct conn *c = h->data;
    size_t max = c->ctl->line_max + 1;
    (void)hint;
    if (c->cap - c->len < BUF_MIN && c->cap < max) {
        size_t cap = HS_MIN(HS_MAX(c->cap * 2, (size_t)BUF_MIN * 2), max);
        char *nb = hs_realloc(c->buf, cap);
        if (nb) {
            c->buf = nb;
            c->cap = cap;
        }
    }
    /* Zero bytes makes libuv report UV_ENOBUFS, closing the connection. */
    *out = uv_buf_init(c->buf ? c->buf + c->len : NULL,
                       (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void read_start(struct conn *c)
{
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void read_stop(struct conn *c)
{
    c->reading = false;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    (void)b;
    if (nread > 0 && c->discard) {
        /* The rest of a line too long: its end ends the connection. */
        if (memchr(c->buf + c->len, '\n', (size_t)nread))
            ctl_finish(c);
        return;
    } else if (nread > 0) {
        c->len += (size_t)nread;
    } else if (nread == UV_EOF) {
        c->eof = true; /* answer what was asked, then close */
    } else if (nread < 0) {
        c->eof = true;
        c->len = 0;
        ctl_finish(c);
        return;
    }
    ctl_pump(c);
}

/* A line longer than line_max: answer, then read the rest of it and drop
 * it before closing. Closing with unread input would reset the
 * connection, and the client could lose the answer. */
static void line_too_long(struct conn *c)
{
    if (c->ctl->line_max > CONTROL_LINE_MAX)
        ctl_reply_error(c,
                        "request line longer than %zu bytes (a kv_put "
                        "value may be at most %llu bytes: metadata_max_value)",
                        c->ctl->line_max,
                        (unsigned long long)c->ctl->max_value);
    else
        ctl_reply_error(c, "request line longer than %zu bytes",
                        c->ctl->line_max);
    c->discard = true;
    c->len = c->scan = 0;
}

/* Serve the complete lines in the buffer, in order, while nothing keeps
 * us waiting (an answer in flight, a write backlog). */
void ctl_pump(struct conn *c)
{
    if (c->in_pump || c->closing)
        return; /* the outer pump picks up where this one was asked */
    c->in_pump = true;
    if (c->listing)
        ctl_list_more(c);
    if (c->monitoring)
        ctl_monitor_more(c);
    while (!c->closing && !c->busy && !c->ctl->stopping &&
           ctl_backlog(c) <= WRITE_BACKLOG_MAX) {
        /* Lines of a kv_put can be megabytes: look at new bytes only. */
        char *nl = c->len > c->scan
                       ? memchr(c->buf + c->scan, '\n', c->len - c->scan)
                       : NULL;
        size_t n = nl ? (size_t)(nl - c->buf) : c->len;
        if (nl == NULL)
            c->scan = c->len;
        if (nl == NULL && c->len > c->ctl->line_max) {
            line_too_long(c);
            break;
        }
        if (nl == NULL && !(c->eof && c->len > 0))
            break;
        if (!blank(c->buf, n)) {
            c->active = uv_now(&c->ctl->a->loop);
            ctl_handle_line(c, c->buf, n);
        }
        size_t used = nl ? n + 1 : n;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        c->scan = 0;
    }
    if (c->watching || c->monitoring) {
        c->len = c->scan = 0; /* what a watcher sends means nothing */
        /* A watcher that half-closed still watches: it is gone when a
         * write to it fails. */
        if (!c->closing && c->ctl->stopping)
            ctl_finish(c);
        else if (!c->closing && !c->eof)
            read_start(c);
    } else if (!c->closing) {
        bool idle = !c->busy && c->len == 0;
        if ((c->eof && idle) || (c->ctl->stopping && !c->busy))
            ctl_finish(c);
        else if (c->eof || c->busy || ctl_backlog(c) > WRITE_BACKLOG_MAX)
            read_stop(c);
        else
            read_start(c);
    }
    /* Do not keep the memory of a long kv_put line. */
    if (c->len == 0 && c->cap > BUF_KEEP) {
        hs_free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
    c->in_pump = false;
}

static void on_handle_closed(uv_handle_t *h);

/* The last step of control_close: free once every handle has closed. */
static void maybe_closed(struct control *ctl)
{
    if (!ctl->closing || ctl->conns)
        return;
    if (!uv_is_closing((uv_handle_t *)&ctl->grace))
        uv_close((uv_handle_t *)&ctl->grace, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&ctl->sweep))
        uv_close((uv_handle_t *)&ctl->sweep, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&ctl->log_async))
        uv_close((uv_handle_t *)&ctl->log_async, on_handle_closed);
    if (ctl->handles)
        return;
    void (*cb)(void *) = ctl->close_cb;
    void *ud = ctl->close_ud;
    if (ctl->a->ctl == ctl)
        ctl->a->ctl = NULL;
    hs_free(ctl);
    if (cb)
        cb(ud);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct control *ctl = c->ctl;
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    release(c);
    ctl_unwatch(c);
    ctl_unmonitor(c);
    buf_free(&c->list);
    hs_free(c->prefix);
    hs_free(c->buf);
    hs_free(c);
    maybe_closed(ctl);
}

static void close_now(struct conn *c)
{
    c->closing = true;
    release(c);
    ctl_forget_keys(c);
    wal_wait_cancel(&c->saving);
    ctl_unwatch(c);
    ctl_unmonitor(c);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    close_now(req->data);
}

/* Close once the answers already written are sent. */
void ctl_finish(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    release(c);
    ctl_forget_keys(c);
    wal_wait_cancel(&c->saving);
    ctl_unwatch(c);
    ctl_unmonitor(c);
    control_join_cancel(c->join);
    c->join = NULL;
    read_stop(c);
    c->shut.data = c;
    if (ctl_backlog(c) == 0 ||
        uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown))
        close_now(c);
}

/* A new connection, with a socket (tcp accepted into) or without one
 * (sink set). */
static struct conn *conn_new(struct control *ctl, struct buf *sink)
{
    struct conn *c = hs_calloc(1, sizeof *c);
    if (c == NULL || uv_tcp_init(&ctl->a->loop, &c->tcp)) {
        hs_free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->ctl = ctl;
    c->sink = sink;
    c->since = c->active = uv_now(&ctl->a->loop);
    c->next = ctl->conns;
    if (ctl->conns)
        ctl->conns->prev = c;
    ctl->conns = c;
    return c;
}

/* The connection is open: wait for its first request. */
static void conn_open(struct conn *c)
{
    struct control *ctl = c->ctl;
    if (ctl->stopping) {
        ctl_reply_error(c, "the agent is shutting down");
        ctl_finish(c);
        return;
    }
    pend(c);
    if (!uv_is_active((uv_handle_t *)&ctl->sweep))
        uv_timer_start(&ctl->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    read_start(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct control *ctl = server->data;
    if (status < 0) {
        HS_WARN(&ctl->a->log, "control: accept failed: %s",
                uv_strerror(status));
        return;
    }
    struct conn *c = conn_new(ctl, NULL);
    if (c == NULL) {
        /* Refuse by accepting into a throwaway handle is not possible
         * without memory; the pending connection waits in the backlog. */
        HS_WARN(&ctl->a->log, "control: out of memory accepting");
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        close_now(c);
        return;
    }
    conn_open(c);
}

/* ===== Connections without a socket (the fuzz target) ===== */

static struct conn *fake_find(struct control *ctl, const struct buf *sink)
{
    for (struct conn *k = ctl->conns; k; k = k->next)
        if (k->sink == sink && !k->closing)
            return k;
    return NULL;
}

int control_fake_open(struct control *ctl, struct buf *out)
{
    struct conn *c = conn_new(ctl, out);
    if (c == NULL)
        return HS_ENOMEM;
    conn_open(c);
    return 0;
}

size_t control_fake_feed(struct control *ctl, const struct buf *out,
                         const uint8_t *p, size_t n, bool *closed)
{
    struct conn *c = fake_find(ctl, out);
    size_t taken = 0;
    /* What libuv would do: offer the bytes to on_alloc's buffer while
     * reads are on; a full buffer is UV_ENOBUFS. */
    while (c && c->reading && taken < n) {
        uv_buf_t b;
        on_alloc((uv_handle_t *)&c->tcp, 65536, &b);
        if (b.len == 0) {
            on_read((uv_stream_t *)&c->tcp, UV_ENOBUFS, &b);
            break;
        }
        size_t k = HS_MIN((size_t)b.len, n - taken);
        memcpy(b.base, p + taken, k);
        taken += k;
        on_read((uv_stream_t *)&c->tcp, (ssize_t)k, &b);
        c = fake_find(ctl, out);
    }
    if (c && c->reading && n == 0) {
        uv_buf_t b = uv_buf_init(NULL, 0);
        on_read((uv_stream_t *)&c->tcp, UV_EOF, &b);
        c = fake_find(ctl, out);
    }
    *closed = c == NULL;
    return taken;
}

/* ===== Server ===== */

static void on_handle_closed(uv_handle_t *h)
{
    struct control *ctl = h->data;
    ctl->handles--;
    maybe_closed(ctl);
}

struct control *control_new(struct agent *a)
{
    struct control *ctl = hs_calloc(1, sizeof *ctl);
    if (ctl == NULL)
        return NULL;
    ctl->a = a;
    struct node *nd = a->setup.node;
    /* A kv_put line holds its value in base64 at worst (the CLI sends
     * text only when that is shorter), plus room for the rest. */
    ctl->max_value = nd ? node_config(nd)->metadata_max_value : 0;
    ctl->line_max = CONTROL_LINE_MAX + text_base64_len(ctl->max_value);
    ctl->idle_ms = a->cfg.control_idle_timeout;
    uv_tcp_init(&a->loop, &ctl->server);
    uv_timer_init(&a->loop, &ctl->grace);
    uv_timer_init(&a->loop, &ctl->sweep);
    ctl->server.data = ctl->grace.data = ctl->sweep.data = ctl;
    ctl_log_attach(ctl);
    ctl->handles = 4;
    a->ctl = ctl;
    if (nd)
        metadata_set_observer(node_metadata(nd), ctl_on_meta_change, ctl);
    return ctl;
}

int control_start(struct agent *a, char *err, size_t errlen)
{
    char host[CONFIG_STR_MAX], port[8];
    uint16_t p;
    if (addr_split(a->cfg.control, host, sizeof host, &p, 7374)) {
        snprintf(err, errlen, "control: \"%s\" is not host:port",
                 a->cfg.control);
        return HS_EINVAL;
    }
    snprintf(port, sizeof port, "%u", (unsigned)p);
    /* No callback: libuv resolves synchronously, before the loop runs. */
    uv_getaddrinfo_t gai;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    int rc = uv_getaddrinfo(&a->loop, &gai, NULL, host, port, &hints);
    if (rc) {
        snprintf(err, errlen, "control: cannot resolve \"%s\": %s", host,
                 uv_strerror(rc));
        return HS_EADDR;
    }
    struct control *ctl = control_new(a);
    if (ctl == NULL) {
        uv_freeaddrinfo(gai.addrinfo);
        snprintf(err, errlen, "control: out of memory");
        return HS_ENOMEM;
    }
    rc = uv_tcp_bind(&ctl->server, gai.addrinfo->ai_addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->server, 128, on_connection);
    uv_freeaddrinfo(gai.addrinfo);
    if (rc) {
        snprintf(err, errlen, "control: cannot listen on %s: %s",
                 a->cfg.control, uv_strerror(rc));
        control_close(ctl, NULL, NULL); /* frees it once closed */
        a->ctl = NULL;
        return rc == UV_EADDRINUSE ? HS_EBUSY : HS_EIO;
    }
    return 0;
}

void control_left(struct control *c, int err)
{
    (void)err; /* a leave that timed out still left: answer ok */
    c->stopping = true;
    for (struct conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        if (!k->wants_leave)
            continue;
        k->wants_leave = false;
        k->busy = false;
        ctl_reply(k, ctl_ok_answer());
        ctl_pump(k); /* stopping: closes once the answer is sent */
    }
}

static void on_grace(uv_timer_t *t)
{
    struct control *ctl = t->data;
    for (struct conn *k = ctl->conns; k; k = k->next)
        close_now(k);
}

void control_close(struct control *c, void (*cb)(void *ud), void *ud)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->stopping = true;
    c->close_cb = cb;
    c->close_ud = ud;
    ctl_log_detach(c);
    if (c->a->setup.node)
        metadata_set_observer(node_metadata(c->a->setup.node), NULL, NULL);
    uv_close((uv_handle_t *)&c->server, on_handle_closed);
    for (struct conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        ctl_finish(k);
    }
    /* Stragglers that do not read their answers get a bounded wait. */
    if (c->conns)
        uv_timer_start(&c->grace, on_grace, CLOSE_GRACE_MS, 0);
    maybe_closed(c);
}
