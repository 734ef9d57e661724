/* control.c: the agent's control endpoint (JSON lines over TCP) and the
 * join operation it shares with the agent's start-up.
 *
 * Everything that arrives on the control socket is untrusted, like the
 * network: lines are bounded, JSON is parsed by cJSON (which bounds its
 * nesting), every field is type-checked, and a bad request gets an error
 * answer, never a crash. */
#include "control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "agent.h"
#include "lua_host.h"
#include "node.h"
#include "transport.h"

/* Stop reading a connection whose answers pile up unread beyond this. */
#define WRITE_BACKLOG_MAX (1u << 20)
/* The read buffer holds one whole line and its '\n'. */
#define BUF_MAX (CONTROL_LINE_MAX + 1)
#define BUF_MIN 4096
/* At shutdown, connections get this long to take their last answers. */
#define CLOSE_GRACE_MS 1000
#define JOIN_ADDRS_MAX 64

struct conn {
    uv_tcp_t tcp;
    uv_shutdown_t shut;
    struct control *ctl;
    struct conn *prev, *next;
    char *buf;
    size_t len, cap;
    struct join_req *join; /* our join in flight, or NULL */
    bool busy;        /* an answer is pending: later lines wait */
    bool wants_leave; /* answered by control_left() */
    bool eof;         /* the client sent everything it will send */
    bool closing;
    bool in_pump;
};

struct control {
    struct agent *a;
    uv_tcp_t server;
    uv_timer_t grace;   /* force-closes stragglers at shutdown */
    struct conn *conns;
    size_t nconns;
    int handles;        /* open handles of our own (server, grace) */
    bool stopping;      /* the agent left or is closing: serve no more */
    bool closing;
    void (*close_cb)(void *ud);
    void *close_ud;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    char data[];
};

static void pump(struct conn *c);
static void finish(struct conn *c);

/* ===== Join (join.c does the work) ===== */

int control_join(struct agent *a, const char *const *specs, size_t n,
                 control_join_cb cb, void *ud, struct join_req **out)
{
    return join_start(&a->joiner, specs, n, cb, ud, out);
}

void control_join_cancel(struct join_req *j)
{
    join_cancel(j);
}

void control_join_node_closed(struct agent *a)
{
    join_node_closed(&a->joiner);
}

/* ===== JSON helpers ===== */

/* Length of the valid UTF-8 sequence at p (no NUL, no overlong form, no
 * surrogate, at most U+10FFFF), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    if (p[0] >= 0x01 && p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return len;
}

static bool utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_seq(p + i, n - i)) == 0)
            return false;
    return true;
}

/* A JSON string from bytes of the network: cJSON copies bytes as they
 * are, so anything not valid UTF-8 (or a NUL) becomes U+FFFD first to
 * keep every answer valid JSON. */
static cJSON *add_bytes(cJSON *obj, const char *key, const uint8_t *p,
                        size_t n)
{
    char *s = hs_malloc(n * 3 + 1);
    if (s == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_seq(p + i, n - i);
        if (k) {
            memcpy(s + o, p + i, k);
            o += k;
        } else {
            memcpy(s + o, "\xef\xbf\xbd", 3);
            o += 3;
            k = 1;
        }
    }
    s[o] = '\0';
    cJSON *item = cJSON_AddStringToObject(obj, key, s);
    hs_free(s);
    return item;
}

static void add_vsn(cJSON *obj, const char *key, int min, int max, int cur)
{
    cJSON *v = cJSON_AddObjectToObject(obj, key);
    if (v == NULL)
        return;
    cJSON_AddNumberToObject(v, "min", min);
    cJSON_AddNumberToObject(v, "max", max);
    cJSON_AddNumberToObject(v, "cur", cur);
}

/* ===== Writing answers ===== */

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = HS_CONTAINER_OF(req, struct wreq, req);
    struct conn *c = w->c;
    (void)status; /* a failed write shows up as a read error too */
    hs_free(w);
    if (!c->closing)
        pump(c); /* the backlog may have drained */
}

static size_t backlog(const struct conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static void send_text(struct conn *c, const char *s)
{
    if (c->closing)
        return;
    size_t n = strlen(s);
    struct wreq *w = hs_malloc(sizeof *w + n + 1);
    if (w == NULL) {
        finish(c);
        return;
    }
    w->c = c;
    memcpy(w->data, s, n);
    w->data[n] = '\n';
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(n + 1));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        hs_free(w);
        finish(c);
    }
}

/* Send obj and free it. */
static void reply(struct conn *c, cJSON *obj)
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

static cJSON *ok_answer(void)
{
    cJSON *obj = cJSON_CreateObject();
    if (obj)
        cJSON_AddTrueToObject(obj, "ok");
    return obj;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void reply_error(struct conn *c, const char *fmt, ...)
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
    reply(c, obj);
}

/* ===== Requests ===== */

static int by_name(const void *x, const void *y)
{
    const struct member *a = *(const struct member *const *)x;
    const struct member *b = *(const struct member *const *)y;
    int d = memcmp(a->name, b->name, HS_MIN(a->name_len, b->name_len));
    if (d)
        return d;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static void add_member(cJSON *arr, const struct member *m)
{
    static const char hex[] = "0123456789abcdef";
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return;
    }
    char ab[HS_ADDRSTRLEN];
    add_bytes(o, "name", (const uint8_t *)m->name, m->name_len);
    /* "ip:port" as serf's members -format=json writes it */
    cJSON_AddStringToObject(o, "addr", addr_format(&m->addr, ab, sizeof ab));
    cJSON_AddNumberToObject(o, "port", m->addr.port);
    cJSON_AddStringToObject(o, "status", member_state_name(m->state));
    cJSON_AddNumberToObject(o, "incarnation", m->incarnation);
    if (utf8_valid(m->meta, m->meta_len))
        add_bytes(o, "private_data", m->meta, m->meta_len);
    else
        cJSON_AddNullToObject(o, "private_data");
    if (m->meta_len) {
        char h[2 * WIRE_META_MAX + 1];
        size_t n = HS_MIN((size_t)m->meta_len, (size_t)WIRE_META_MAX);
        for (size_t i = 0; i < n; i++) {
            h[2 * i] = hex[m->meta[i] >> 4];
            h[2 * i + 1] = hex[m->meta[i] & 15];
        }
        h[2 * n] = '\0';
        cJSON_AddStringToObject(o, "private_data_hex", h);
    }
    add_vsn(o, "protocol", m->vsn[0], m->vsn[1], m->vsn[2]);
    add_vsn(o, "delegate", m->vsn[3], m->vsn[4], m->vsn[5]);
}

static void cmd_members(struct conn *c, const cJSON *req)
{
    struct node *nd = c->ctl->a->node;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(req, "status");
    int want = -1;
    if (st && !cJSON_IsNull(st)) {
        if (!cJSON_IsString(st)) {
            reply_error(c, "status: expected a string");
            return;
        }
        want = member_state_parse(st->valuestring);
        if (want < 0) {
            reply_error(c, "unknown status \"%.64s\": use alive, suspect, "
                        "dead (or failed) or left", st->valuestring);
            return;
        }
    }
    const struct members *t = node_members(nd);
    const struct member **ms = hs_calloc(t->n, sizeof *ms);
    if (ms == NULL && t->n) {
        reply_error(c, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (want < 0 || t->order[i]->state == want)
            ms[n++] = t->order[i];
    qsort(ms, n, sizeof *ms, by_name);
    cJSON *obj = ok_answer();
    cJSON *arr = obj ? cJSON_AddArrayToObject(obj, "members") : NULL;
    for (size_t i = 0; arr && i < n; i++)
        add_member(arr, ms[i]);
    hs_free(ms);
    reply(c, obj);
}

static void on_conn_joined(void *ud, int joined, int err, const char *why)
{
    struct conn *c = ud;
    c->join = NULL;
    c->busy = false;
    if (joined > 0) {
        cJSON *obj = ok_answer();
        if (obj)
            cJSON_AddNumberToObject(obj, "joined", joined);
        reply(c, obj);
    } else {
        reply_error(c, "%s", why ? why : hs_strerror(err));
    }
    pump(c);
}

static void cmd_join(struct conn *c, const cJSON *req)
{
    struct agent *a = c->ctl->a;
    const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(req, "addrs");
    const char *specs[JOIN_ADDRS_MAX];
    size_t n = 0;
    const cJSON *it;
    if (!cJSON_IsArray(addrs)) {
        reply_error(c, "addrs: expected an array of \"host:port\" strings");
        return;
    }
    cJSON_ArrayForEach(it, addrs) {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
            reply_error(c, "addrs: expected an array of \"host:port\" "
                        "strings");
            return;
        }
        if (n == JOIN_ADDRS_MAX) {
            reply_error(c, "addrs: at most %d addresses", JOIN_ADDRS_MAX);
            return;
        }
        specs[n++] = it->valuestring;
    }
    if (n == 0) {
        reply_error(c, "addrs: give at least one address");
        return;
    }
    c->busy = true;
    int rc = control_join(a, specs, n, on_conn_joined, c, &c->join);
    if (rc) {
        c->busy = false;
        c->join = NULL;
        reply_error(c, "%s", a->leaving ? "the agent is leaving"
                                        : hs_strerror(rc));
    }
}

static void cmd_leave(struct conn *c)
{
    struct agent *a = c->ctl->a;
    /* Mark first: the leave may complete before a->leave returns. */
    c->busy = true;
    c->wants_leave = true;
    int rc = a->leave(a);
    if (rc && c->wants_leave) {
        c->busy = false;
        c->wants_leave = false;
        reply_error(c, "cannot leave: %s", hs_strerror(rc));
    }
}

static void cmd_pause(struct conn *c, bool pause)
{
    struct agent *a = c->ctl->a;
    if (a->leaving) {
        reply_error(c, "the agent is leaving");
        return;
    }
    if (pause)
        node_pause(a->node);
    else
        node_resume(a->node);
    cJSON *obj = ok_answer();
    if (obj)
        cJSON_AddBoolToObject(obj, "paused", node_paused(a->node));
    reply(c, obj);
}

static void cmd_reload(struct conn *c)
{
    struct agent *a = c->ctl->a;
    char err[512];
    size_t count = 0;
    if (a->reload == NULL || a->reload(a, &count, err, sizeof err)) {
        reply_error(c, "%s", a->reload ? err : "reload is not available");
        return;
    }
    cJSON *obj = ok_answer();
    if (obj)
        cJSON_AddNumberToObject(obj, "scripts", (double)count);
    reply(c, obj);
}

static void cmd_version(struct conn *c)
{
    const struct config *cfg = node_config(c->ctl->a->node);
    cJSON *obj = ok_answer();
    if (obj) {
        cJSON_AddStringToObject(obj, "version", HS_VERSION);
        add_bytes(obj, "name", (const uint8_t *)cfg->name,
                  strlen(cfg->name));
        add_vsn(obj, "protocol", WIRE_PROTO_MIN, WIRE_PROTO_MAX,
                cfg->protocol_version);
        add_vsn(obj, "delegate", cfg->delegate_protocol_min,
                cfg->delegate_protocol_max, cfg->delegate_protocol_version);
    }
    reply(c, obj);
}

static void cmd_stats(struct conn *c)
{
    struct agent *a = c->ctl->a;
    const struct node_stats *s = node_stats(a->node);
    cJSON *obj = ok_answer(), *o;
    if (obj == NULL) {
        reply(c, NULL);
        return;
    }
#define NUM(name) cJSON_AddNumberToObject(obj, #name, (double)s->name)
    NUM(packets_in);
    NUM(packets_out);
    NUM(bytes_in);
    NUM(bytes_out);
    if ((o = cJSON_AddObjectToObject(obj, "msgs_in")))
        for (int i = 0; i < WIRE_TYPE_COUNT; i++)
            cJSON_AddNumberToObject(o, wire_type_name(i),
                                    (double)s->msgs_in[i]);
    if ((o = cJSON_AddObjectToObject(obj, "msgs_out")))
        for (int i = 0; i < WIRE_TYPE_COUNT; i++)
            cJSON_AddNumberToObject(o, wire_type_name(i),
                                    (double)s->msgs_out[i]);
    if ((o = cJSON_AddObjectToObject(obj, "dropped")))
        for (int i = 0; i < NODE_DROP_COUNT; i++)
            cJSON_AddNumberToObject(o, node_drop_name(i),
                                    (double)s->dropped[i]);
    NUM(send_errors);
    NUM(probes);
    NUM(probes_failed);
    NUM(indirect_probes);
    NUM(tcp_pings);
    NUM(tcp_ping_rescues);
    NUM(nacks_received);
    NUM(suspicions);
    NUM(refutations);
    NUM(deaths);
    NUM(conflicts);
    NUM(push_pulls_out);
    NUM(push_pulls_in);
    NUM(push_pull_errors);
    NUM(streams_in);
    NUM(streams_out);
    NUM(broadcasts_queued);
    NUM(user_messages_in);
    NUM(user_messages_out);
    NUM(members_refused);
    NUM(rumors_duplicate);
#undef NUM
    const struct members *t = node_members(a->node);
    if ((o = cJSON_AddObjectToObject(obj, "members"))) {
        for (int i = 0; i < 4; i++)
            cJSON_AddNumberToObject(o, member_state_name(i),
                                    (double)t->count[i]);
        cJSON_AddNumberToObject(o, "total", (double)t->n);
    }
    cJSON_AddNumberToObject(obj, "health", node_health(a->node));
    cJSON_AddNumberToObject(obj, "broadcast_queue",
                            (double)node_broadcast_queue_len(a->node));
    cJSON_AddBoolToObject(obj, "paused", node_paused(a->node));
    if ((o = cJSON_AddObjectToObject(obj, "hooks"))) {
        struct lnode_stats hs = {0, 0, 0, 0};
        if (a->lua)
            hs = lua_host_lnode(a->lua)->stats;
        cJSON_AddNumberToObject(o, "scripts",
                                a->lua ? (double)lua_host_count(a->lua) : 0);
        cJSON_AddNumberToObject(o, "calls", (double)hs.calls);
        cJSON_AddNumberToObject(o, "errors", (double)hs.errors);
        cJSON_AddNumberToObject(o, "budget_stops", (double)hs.budget_stops);
        cJSON_AddNumberToObject(o, "memory_errors",
                                (double)hs.memory_errors);
    }
    const struct transport_stats *ts =
        a->tp ? transport_stats(a->tp) : NULL;
    if (ts && (o = cJSON_AddObjectToObject(obj, "transport"))) {
#define TNUM(name) cJSON_AddNumberToObject(o, #name, (double)ts->name)
        TNUM(udp_recv_errors);
        TNUM(udp_send_errors);
        TNUM(tcp_accepts);
        TNUM(tcp_refused);
        TNUM(frames_in);
        TNUM(frames_out);
        TNUM(frame_errors);
#undef TNUM
    }
    reply(c, obj);
}

static void handle_line(struct conn *c, const char *line, size_t n)
{
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (req == NULL) {
        reply_error(c, "invalid JSON: expected one object per line");
        return;
    }
    while (end < line + n && (*end == ' ' || *end == '\t' || *end == '\r'))
        end++;
    if (end != line + n) {
        reply_error(c, "invalid JSON: trailing data after the object");
    } else if (!cJSON_IsObject(req)) {
        reply_error(c, "a request must be a JSON object such as "
                    "{\"cmd\":\"members\"}");
    } else {
        const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
        const char *name = cJSON_IsString(cmd) ? cmd->valuestring : NULL;
        if (name == NULL)
            reply_error(c, "missing \"cmd\"");
        else if (c->ctl->a->node == NULL)
            reply_error(c, "the agent is shutting down");
        else if (!strcmp(name, "members"))
            cmd_members(c, req);
        else if (!strcmp(name, "join"))
            cmd_join(c, req);
        else if (!strcmp(name, "leave"))
            cmd_leave(c);
        else if (!strcmp(name, "pause") || !strcmp(name, "resume"))
            cmd_pause(c, !strcmp(name, "pause"));
        else if (!strcmp(name, "version"))
            cmd_version(c);
        else if (!strcmp(name, "stats"))
            cmd_stats(c);
        else if (!strcmp(name, "reload"))
            cmd_reload(c);
        else
            reply_error(c, "unknown cmd \"%.64s\": use members, join, "
                        "leave, pause, resume, reload, version or stats",
                        name);
    }
    cJSON_Delete(req);
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
    (void)hint;
    if (c->cap - c->len < BUF_MIN && c->cap < BUF_MAX) {
        size_t cap = HS_MIN(HS_MAX(c->cap * 2, (size_t)BUF_MIN * 2),
                            (size_t)BUF_MAX);
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

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    (void)b;
    if (nread > 0) {
        c->len += (size_t)nread;
    } else if (nread == UV_EOF) {
        c->eof = true; /* answer what was asked, then close */
    } else if (nread < 0) {
        c->eof = true;
        c->len = 0;
        finish(c);
        return;
    }
    pump(c);
}

/* Serve the complete lines in the buffer, in order, while nothing keeps
 * us waiting (an answer in flight, a write backlog). */
static void pump(struct conn *c)
{
    if (c->in_pump || c->closing)
        return; /* the outer pump picks up where this one was asked */
    c->in_pump = true;
    while (!c->closing && !c->busy && !c->ctl->stopping &&
           backlog(c) <= WRITE_BACKLOG_MAX) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        size_t n = nl ? (size_t)(nl - c->buf) : c->len;
        if (nl == NULL && c->len > CONTROL_LINE_MAX) {
            reply_error(c, "request line longer than %d bytes",
                        CONTROL_LINE_MAX);
            finish(c);
            break;
        }
        if (nl == NULL && !(c->eof && c->len > 0))
            break;
        if (!blank(c->buf, n))
            handle_line(c, c->buf, n);
        size_t used = nl ? n + 1 : n;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
    if (!c->closing) {
        bool idle = !c->busy && c->len == 0;
        if ((c->eof && idle) || (c->ctl->stopping && !c->busy))
            finish(c);
        else if (c->eof || c->busy || backlog(c) > WRITE_BACKLOG_MAX)
            uv_read_stop((uv_stream_t *)&c->tcp);
        else
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
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
    ctl->nconns--;
    hs_free(c->buf);
    hs_free(c);
    maybe_closed(ctl);
}

static void close_now(struct conn *c)
{
    c->closing = true;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    close_now(req->data);
}

/* Close once the answers already written are sent. */
static void finish(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    control_join_cancel(c->join);
    c->join = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->shut.data = c;
    if (backlog(c) == 0 ||
        uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown))
        close_now(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct control *ctl = server->data;
    if (status < 0) {
        HS_WARN(&ctl->a->log, "control: accept failed: %s",
                uv_strerror(status));
        return;
    }
    struct conn *c = hs_calloc(1, sizeof *c);
    if (c == NULL || uv_tcp_init(&ctl->a->loop, &c->tcp)) {
        hs_free(c);
        /* Refuse by accepting into a throwaway handle is not possible
         * without memory; the pending connection waits in the backlog. */
        HS_WARN(&ctl->a->log, "control: out of memory accepting");
        return;
    }
    c->tcp.data = c;
    c->ctl = ctl;
    c->next = ctl->conns;
    if (ctl->conns)
        ctl->conns->prev = c;
    ctl->conns = c;
    ctl->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        close_now(c);
        return;
    }
    if (ctl->nconns > CONTROL_CONN_MAX || ctl->stopping) {
        reply_error(c, ctl->stopping ? "the agent is shutting down"
                                     : "too many control connections "
                                       "(at most %d)", CONTROL_CONN_MAX);
        finish(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ===== Server ===== */

static void on_handle_closed(uv_handle_t *h)
{
    struct control *ctl = h->data;
    ctl->handles--;
    maybe_closed(ctl);
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
    struct control *ctl = hs_calloc(1, sizeof *ctl);
    if (ctl == NULL) {
        uv_freeaddrinfo(gai.addrinfo);
        snprintf(err, errlen, "control: out of memory");
        return HS_ENOMEM;
    }
    ctl->a = a;
    uv_tcp_init(&a->loop, &ctl->server);
    uv_timer_init(&a->loop, &ctl->grace);
    ctl->server.data = ctl->grace.data = ctl;
    ctl->handles = 2;
    a->ctl = ctl;
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
        reply(k, ok_answer());
        pump(k); /* stopping: closes once the answer is sent */
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
    uv_close((uv_handle_t *)&c->server, on_handle_closed);
    for (struct conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        finish(k);
    }
    /* Stragglers that do not read their answers get a bounded wait. */
    if (c->conns)
        uv_timer_start(&c->grace, on_grace, CLOSE_GRACE_MS, 0);
    maybe_closed(c);
}
