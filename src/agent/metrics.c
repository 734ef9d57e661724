/* metrics.c: the agent's Prometheus endpoint, a small HTTP/1.0 responder
 * on the agent's loop (see metrics.h).
 *
 * A connection lives through three steps: it reads the request head
 * (bounded in size and time), queues one answer and half-closes, then
 * reads and drops whatever the client still sends until the client closes
 * or METRICS_LINGER_MS pass. Closing only then keeps an unread request
 * body from resetting the connection before the client got the answer. */
#include "agent/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "agent/agent.h"
#include "agent/stats.h"
#include "base/buf.h"

#define DISCARD_SIZE 4096

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the request's deadline, then the linger */
    uv_write_t write;
    uv_shutdown_t shut;
    struct metrics *m;
    struct conn *prev, *next;
    char *req;       /* METRICS_REQUEST_MAX bytes; NULL if refused */
    size_t len;      /* bytes of the request head so far */
    size_t scan;     /* req[0..scan) holds no end of the head */
    uint8_t *answer; /* owned; freed with the connection */
    int handles;     /* open handles of ours: tcp and timer */
    bool answered;   /* the answer is queued: drop what comes */
    bool written;    /* the answer is out */
    bool eof;        /* the client sent all it will send */
    bool closing;
};

struct metrics_stats {
    uint64_t answers[METRICS_CODE_COUNT]; /* by METRICS_<code> */
};

struct metrics {
    struct agent *a;
    uv_tcp_t server;
    struct conn *conns;
    size_t nconns;
    struct metrics_stats stats;
    bool closing, server_closed;
    void (*close_cb)(void *ud);
    void *close_ud;
    char discard[DISCARD_SIZE]; /* what comes after the request head */
};

static const int codes[] = {
#define CODE_NUMBER(code, text) code,
    METRICS_CODES(CODE_NUMBER)
#undef CODE_NUMBER
};
static const char *const reasons[] = {
#define CODE_REASON(code, text) text,
    METRICS_CODES(CODE_REASON)
#undef CODE_REASON
};

/* The JSON keys and label values of the answers, by METRICS_<code>. */
static const char *const answer_keys[] = {
#define ANSWER_KEY(code, text) "answered_" #code,
    METRICS_CODES(ANSWER_KEY)
#undef ANSWER_KEY
};
static const char *const answer_codes[] = {
#define ANSWER_CODE(code, text) #code,
    METRICS_CODES(ANSWER_CODE)
#undef ANSWER_CODE
};

void metrics_samples(const struct agent *a, stats_fn fn, void *ud)
{
    if (a->met == NULL)
        return;
    for (int i = 0; i < METRICS_CODE_COUNT; i++) {
        struct stats_sample s = {&stats_metrics_answers,
                                 "metrics",
                                 answer_keys[i],
                                 answer_codes[i],
                                 a->met->stats.answers[i],
                                 false,
                                 NULL};
        fn(ud, &s);
    }
}

/* ===== The exposition format ===== */

static void put(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

/* HELP text escapes \ and newline; label values also escape ". */
static void put_escaped(struct buf *b, const char *s, bool label)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(b, "\\\\");
        else if (*s == '\n')
            put(b, "\\n");
        else if (*s == '"' && label)
            put(b, "\\\"");
        else
            buf_putc(b, (uint8_t)*s);
    }
}

struct render {
    struct buf *b;
    const char *last; /* the metric whose samples are being written */
    const struct config_list *labels; /* metric_labels: "name=value" */
};

/* The labels of a sample: metric_labels, then the metric's own (which
 * wins over a metric label of the same name). */
static void put_labels(struct render *r, const struct stats_metric *m,
                       const struct stats_sample *s)
{
    bool any = false;
    for (size_t i = 0; i < r->labels->n; i++) {
        const char *l = r->labels->v[i], *eq = strchr(l, '=');
        size_t n = eq ? (size_t)(eq - l) : 0;
        if (n == 0 ||
            (m->label && strlen(m->label) == n && memcmp(m->label, l, n) == 0))
            continue;
        buf_putc(r->b, any ? ',' : '{');
        buf_append(r->b, l, n);
        put(r->b, "=\"");
        put_escaped(r->b, eq + 1, true);
        buf_putc(r->b, '"');
        any = true;
    }
    if (m->label) {
        buf_putc(r->b, any ? ',' : '{');
        put(r->b, m->label);
        put(r->b, "=\"");
        put_escaped(r->b, s->label ? s->label : "", true);
        buf_putc(r->b, '"');
        any = true;
    }
    if (any)
        buf_putc(r->b, '}');
}

static void render_sample(void *ud, const struct stats_sample *s)
{
    struct render *r = ud;
    const struct stats_metric *m = s->metric;
    char num[40];
    if (m == NULL)
        return;
    if (r->last == NULL || strcmp(r->last, m->name) != 0) {
        r->last = m->name;
        put(r->b, "# HELP hearsay_");
        put(r->b, m->name);
        buf_putc(r->b, ' ');
        put_escaped(r->b, m->help, false);
        put(r->b, "\n# TYPE hearsay_");
        put(r->b, m->name);
        put(r->b, m->type == STATS_COUNTER ? " counter\n" : " gauge\n");
    }
    put(r->b, "hearsay_");
    put(r->b, m->name);
    put_labels(r, m, s);
    if (m->type == STATS_GAUGE_US)
        snprintf(num, sizeof num, " %.6f\n", (double)s->value / 1e6);
    else
        snprintf(num, sizeof num, " %" PRIu64 "\n", s->value);
    put(r->b, num);
}

/* ===== Connections ===== */

static void maybe_done(struct metrics *m);

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct metrics *m = c->m;
    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->nconns--;
    hs_free(c->req);
    hs_free(c->answer);
    hs_free(c);
    maybe_done(m);
}

static void close_conn(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    c->written = true;
    /* Done when the answer is out and the client sent all it had; else
     * the linger timer or the client's close ends the connection. */
    if (status < 0 || c->eof)
        close_conn(c);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    (void)s;
    (void)status; /* the linger timer or the client's close ends it */
}

static void on_timer(uv_timer_t *t);

static const char *const sentences[METRICS_CODE_COUNT] = {
    [METRICS_400] = "bad request: expected GET /metrics HTTP/1.x\n",
    [METRICS_404] = "not found: the metrics are at /metrics\n",
    [METRICS_405] = "method not allowed: use GET\n",
    [METRICS_408] = "request timeout: the request did not arrive in time\n",
    [METRICS_431] = "request too large\n",
    [METRICS_503] = "too many connections, try again later\n",
};

/* Queue the answer (code is a METRICS_<code> index), half-close, and
 * give the client METRICS_LINGER_MS to take it. */
static void answer(struct conn *c, int code, bool head)
{
    struct metrics *m = c->m;
    struct buf body = BUF_INIT, b = BUF_INIT;
    char line[256];
    if (code == METRICS_200) {
        struct render r = {&body, NULL, &m->a->cfg.metric_labels};
        stats_collect(m->a, metrics_samples, render_sample, &r);
    } else {
        put(&body, sentences[code]);
    }
    snprintf(line, sizeof line,
             "HTTP/1.0 %d %s\r\n"
             "Content-Type: %s\r\n"
             "Content-Length: %zu\r\n"
             "%s"
             "Cache-Control: no-store\r\n"
             "Connection: close\r\n\r\n",
             codes[code], reasons[code],
             code == METRICS_200 ? "text/plain; version=0.0.4; charset=utf-8"
                                 : "text/plain; charset=utf-8",
             body.len, code == METRICS_405 ? "Allow: GET, HEAD\r\n" : "");
    put(&b, line);
    if (!head)
        buf_append(&b, body.data, body.len);
    buf_free(&body);
    m->stats.answers[code]++;
    c->answered = true;
    uv_timer_start(&c->timer, on_timer, METRICS_LINGER_MS, 0);
    if (b.err) {
        HS_WARN(&m->a->log, "metrics: out of memory for an answer");
        buf_free(&b);
        close_conn(c);
        return;
    }
    size_t n;
    c->answer = buf_steal(&b, &n);
    uv_buf_t ub = uv_buf_init((char *)c->answer, (unsigned)n);
    c->write.data = c;
    c->shut.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &ub, 1, on_written)) {
        close_conn(c);
        return;
    }
    uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->answered) { /* the linger is over */
        close_conn(c);
        return;
    }
    HS_DEBUG(&c->m->a->log, "metrics: request timed out: bytes=%zu", c->len);
    answer(c, METRICS_408, false);
}

size_t metrics_head_end(const char *p, size_t len, size_t *scan)
{
    size_t i = *scan > 2 ? *scan - 2 : 0;
    for (; i < len; i++) {
        if (p[i] != '\n')
            continue;
        size_t j = i + 1;
        if (j < len && p[j] == '\r')
            j++;
        if (j < len && p[j] == '\n')
            return j + 1;
    }
    *scan = len;
    return 0;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The length of an absolute-form target's "http://host:port" part
 * (RFC 9112 section 3.2.2: a server must accept one, as a proxy would send
 * it), or 0 when t does not start with one. */
static size_t origin_len(const char *t, size_t n)
{
    size_t k = n >= 7 && !strncasecmp(t, "http://", 7)    ? 7
               : n >= 8 && !strncasecmp(t, "https://", 8) ? 8
                                                          : 0;
    if (k == 0)
        return 0;
    size_t host = k;
    while (k < n && t[k] != '/' && t[k] != '?' && t[k] != '#')
        k++;
    return k > host ? k : 0; /* an authority is required */
}

int metrics_judge(const char *p, size_t n, bool *head)
{
    const char *nl = memchr(p, '\n', n);
    if (nl == NULL)
        return METRICS_400;
    size_t len = (size_t)(nl - p), i = 0;
    if (len && p[len - 1] == '\r')
        len--;
    while (i < len && i < 32 && is_tchar((unsigned char)p[i]))
        i++;
    size_t mlen = i;
    if (mlen == 0 || i >= len || p[i] != ' ')
        return METRICS_400;
    size_t t = ++i;
    while (i < len && (unsigned char)p[i] > ' ' && (unsigned char)p[i] < 0x7f)
        i++;
    size_t tlen = i - t;
    if (tlen == 0 || i >= len || p[i] != ' ')
        return METRICS_400;
    if (p[t] != '/') { /* absolute-form: judge its path */
        size_t o = origin_len(p + t, tlen);
        if (o == 0)
            return METRICS_400;
        t += o;
        tlen -= o; /* an empty path is "/" */
    }
    i++;
    if (len - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || p[i + 7] < '0' ||
        p[i + 7] > '9')
        return METRICS_400;
    const char *q = tlen ? memchr(p + t, '?', tlen) : NULL; /* ignored */
    size_t plen = q ? (size_t)(q - (p + t)) : tlen;
    if (plen != 8 || memcmp(p + t, "/metrics", 8) != 0)
        return METRICS_404;
    *head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    if (!*head && !(mlen == 3 && memcmp(p, "GET", 3) == 0))
        return METRICS_405;
    return METRICS_200;
}

static void serve(struct conn *c)
{
    bool head = false;
    int code = metrics_judge(c->req, c->len, &head);
    char q[100];
    const char *nl = memchr(c->req, '\n', c->len);
    size_t n = nl ? (size_t)(nl - c->req) : c->len;
    HS_DEBUG(&c->m->a->log, "metrics: request=\"%s\" status=%d",
             hs_log_quote(c->req, HS_MIN(n, (size_t)64), q, sizeof q),
             codes[code]);
    answer(c, code, head);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct conn *c = h->data;
    (void)hint;
    if (c->answered || c->req == NULL)
        *out = uv_buf_init(c->m->discard, DISCARD_SIZE);
    else
        *out = uv_buf_init(c->req + c->len,
                           (unsigned)(METRICS_REQUEST_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    (void)b;
    if (c->closing)
        return;
    if (nread == UV_EOF) {
        c->eof = true;
        if (c->answered && !c->written)
            return; /* on_written closes */
        if (!c->answered && c->len > 0)
            serve(c); /* a head cut short by the close is still judged */
        else
            close_conn(c);
        return;
    }
    if (nread < 0) {
        close_conn(c);
        return;
    }
    if (nread == 0 || c->answered || c->req == NULL)
        return;
    c->len += (size_t)nread;
    if (metrics_head_end(c->req, c->len, &c->scan))
        serve(c);
    else if (c->len == METRICS_REQUEST_MAX)
        answer(c, METRICS_431, false);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct metrics *m = server->data;
    if (status < 0) {
        HS_WARN(&m->a->log, "metrics: accept failed: %s", uv_strerror(status));
        return;
    }
    struct conn *c = hs_calloc(1, sizeof *c);
    if (c == NULL) {
        HS_WARN(&m->a->log, "metrics: out of memory accepting");
        return;
    }
    c->m = m;
    uv_tcp_init(&m->a->loop, &c->tcp);
    uv_timer_init(&m->a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    m->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        close_conn(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        close_conn(c);
        return;
    }
    if (m->nconns <= METRICS_CONN_MAX)
        c->req = hs_malloc(METRICS_REQUEST_MAX);
    if (c->req == NULL) {
        answer(c, METRICS_503, false);
        return;
    }
    uv_timer_start(&c->timer, on_timer, METRICS_TIMEOUT_MS, 0);
}

/* ===== Server ===== */

static void maybe_done(struct metrics *m)
{
    if (!m->closing || !m->server_closed || m->conns)
        return;
    void (*cb)(void *) = m->close_cb;
    void *ud = m->close_ud;
    if (m->a->met == m)
        m->a->met = NULL;
    hs_free(m);
    if (cb)
        cb(ud);
}

static void on_server_closed(uv_handle_t *h)
{
    struct metrics *m = h->data;
    m->server_closed = true;
    maybe_done(m);
}

int metrics_start(struct agent *a, char *err, size_t errlen)
{
    const char *spec = a->cfg.metrics;
    char host[CONFIG_STR_MAX], ab[HS_ADDRSTRLEN];
    struct hs_addr ha;
    struct sockaddr_storage ss;
    uint16_t port;
    if (spec[0] == '\0')
        return 0;
    if (addr_parse(spec, 0, &ha) || ha.port == 0 ||
        addr_split(spec, host, sizeof host, &port, 0) ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss))) {
        snprintf(err, errlen, "metrics: \"%s\" is not ip:port", spec);
        return HS_EINVAL;
    }
    struct metrics *m = hs_calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        return HS_ENOMEM;
    }
    m->a = a;
    uv_tcp_init(&a->loop, &m->server);
    m->server.data = m;
    a->met = m;
    int rc = uv_tcp_bind(&m->server, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->server, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "metrics: cannot listen on %s: %s", spec,
                 uv_strerror(rc));
        metrics_close(m, NULL, NULL); /* frees it once closed */
        a->met = NULL;
        return rc == UV_EADDRINUSE ? HS_EBUSY : HS_EIO;
    }
    addr_format(&ha, ab, sizeof ab);
    if (!addr_is_loopback(&ha))
        HS_WARN(&a->log,
                "metrics: listening beyond loopback, with no "
                "authentication: addr=%s",
                ab);
    HS_INFO(&a->log, "metrics: serving GET /metrics: addr=%s", ab);
    return 0;
}

void metrics_close(struct metrics *m, void (*cb)(void *ud), void *ud)
{
    if (m == NULL || m->closing)
        return;
    m->closing = true;
    m->close_cb = cb;
    m->close_ud = ud;
    uv_close((uv_handle_t *)&m->server, on_server_closed);
    for (struct conn *c = m->conns; c; c = c->next)
        close_conn(c);
}
