/* control.c: the agent's control endpoint (JSON lines over TCP) and the
 * join operation it shares with the agent's start-up.
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
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "agent/agent.h"
#include "core/metadata.h"
#include "core/node.h"
#include "agent/stats.h"
#include "base/text.h"
#include "agent/wal.h"

/* Stop reading a connection whose answers pile up unread beyond this. */
#define WRITE_BACKLOG_MAX (1u << 20)
/* The read buffer holds one whole line and its '\n': CONTROL_LINE_MAX,
 * or for kv_put enough for a value of metadata_max_value in base64 (see
 * line_max). A buffer grown past BUF_KEEP is freed once it is empty. */
#define BUF_KEEP (CONTROL_LINE_MAX + 1)
#define BUF_MIN 4096
/* A watcher that leaves this much of its events unread is dropped: it
 * must not make the agent's memory grow without bound. */
#define WATCH_BACKLOG_MAX (16u << 20)
/* kv_list writes its entries in chunks of about this size, and at most
 * LIST_BUDGET bytes before it lets other connections be served. */
#define LIST_CHUNK (64u << 10)
#define LIST_BUDGET (1u << 20)
/* At shutdown, connections get this long to take their last answers. */
#define CLOSE_GRACE_MS 1000
/* How often the deadlines of connections are checked: a deadline is met
 * within this much. */
#define SWEEP_MS 250
#define JOIN_ADDRS_MAX 64

struct conn {
    uv_tcp_t tcp;
    uv_shutdown_t shut;
    struct control *ctl;
    struct conn *prev, *next;
    char *buf;
    size_t len, cap;
    struct join_req *join; /* our join in flight, or NULL */
    size_t scan;      /* buf[0..scan) holds no '\n' */
    bool busy;        /* an answer is pending: later lines wait */
    bool wants_leave; /* answered by control_left() */
    bool eof;         /* the client sent everything it will send */
    bool closing;
    bool in_pump;
    bool discard;     /* a line was too long: drop input up to its end */
    bool keys;        /* a keyring operation answers later */
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
};

struct control {
    struct agent *a;
    uv_tcp_t server;
    uv_timer_t grace;   /* force-closes stragglers at shutdown */
    struct conn *conns;
    size_t npending;    /* connections yet to pass the token check */
    size_t nauthed;     /* connections that hold a slot */
    uv_timer_t sweep;   /* checks the deadlines while any connection is
                           open */
    uint64_t idle_ms;   /* control_idle_timeout */
    struct conn *watchers; /* the connections in kv_watch */
    size_t line_max;       /* longest request line (a kv_put) */
    uint64_t max_value;    /* metadata_max_value, for messages */
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
        k = text_utf8_seq(p + i, n - i);
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
        pump(c); /* the backlog may have drained */
}

static size_t backlog(const struct conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* Queue n bytes, and a '\n' to end the line if nl. */
static void send_bytes(struct conn *c, const char *s, size_t n, bool nl)
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
        finish(c);
        return;
    }
    w->c = c;
    memcpy(w->data, s, n);
    w->data[n] = '\n';
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(n + nl));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        hs_free(w);
        finish(c);
    }
}

static void send_text(struct conn *c, const char *s)
{
    send_bytes(c, s, strlen(s), true);
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
    if (text_utf8_valid(m->meta, m->meta_len))
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

/* The encryption and label settings in force (never a key). */
static void add_security(cJSON *obj, const struct node *nd)
{
    const struct config *cfg = node_config(nd);
    const struct keyring *kr = node_keyring(nd);
    cJSON *o = cJSON_AddObjectToObject(obj, "security");
    if (o == NULL)
        return;
    cJSON_AddBoolToObject(o, "encrypted", !keyring_empty(kr));
    cJSON_AddNumberToObject(o, "keys", (double)kr->n);
    cJSON_AddBoolToObject(o, "gossip_verify_incoming",
                          cfg->gossip_verify_incoming);
    cJSON_AddBoolToObject(o, "gossip_verify_outgoing",
                          cfg->gossip_verify_outgoing);
    add_bytes(o, "label", (const uint8_t *)cfg->label, strlen(cfg->label));
    cJSON_AddBoolToObject(o, "skip_inbound_label_check",
                          cfg->skip_inbound_label_check);
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
    if (obj) {
        cJSON_AddNumberToObject(obj, "scripts", (double)count);
        add_security(obj, a->node);
    }
    reply(c, obj);
}

/* ===== Keyring operations (serf keys) ===== */

static const char *const key_ops[] = {"list", "install", "use", "remove"};

/* The answer: ok when every member answered and none failed, as serf's
 * keys command judges; the counts and failures either way. */
static void on_keys(void *ud, const struct node_keys_result *r)
{
    struct conn *c = ud;
    c->keys = false;
    c->busy = false;
    cJSON *obj = cJSON_CreateObject();
    char msg[128] = "";
    if (r->errors)
        snprintf(msg, sizeof msg, "%zu/%zu nodes reported failure",
                 r->errors, r->nodes);
    else if (r->responses != r->nodes)
        snprintf(msg, sizeof msg, "%zu/%zu nodes reported success",
                 r->responses, r->nodes);
    if (obj) {
        cJSON_AddBoolToObject(obj, "ok", msg[0] == '\0');
        if (msg[0])
            cJSON_AddStringToObject(obj, "error", msg);
        cJSON_AddStringToObject(obj, "op", key_ops[r->op]);
        cJSON_AddNumberToObject(obj, "nodes", (double)r->nodes);
        cJSON_AddNumberToObject(obj, "responses", (double)r->responses);
        cJSON_AddNumberToObject(obj, "errors", (double)r->errors);
        cJSON *f = cJSON_AddArrayToObject(obj, "failures");
        for (size_t i = 0; f && i < r->nfailures; i++) {
            cJSON *o = cJSON_CreateObject();
            if (o == NULL || !cJSON_AddItemToArray(f, o)) {
                cJSON_Delete(o);
                break;
            }
            add_bytes(o, "name", (const uint8_t *)r->failures[i].name,
                      strlen(r->failures[i].name));
            add_bytes(o, "message", (const uint8_t *)r->failures[i].message,
                      strlen(r->failures[i].message));
        }
        cJSON *k = r->op == NODE_KEYS_LIST
                       ? cJSON_AddArrayToObject(obj, "keys") : NULL;
        for (size_t i = 0; k && i < r->nkeys; i++) {
            char b64[45];
            cJSON *o = cJSON_CreateObject();
            if (o == NULL || !cJSON_AddItemToArray(k, o)) {
                cJSON_Delete(o);
                break;
            }
            keyring_format(r->keys[i].key, r->keys[i].len, b64);
            cJSON_AddStringToObject(o, "key", b64);
            keyring_wipe(b64, sizeof b64);
            cJSON_AddNumberToObject(o, "installed",
                                    (double)r->keys[i].installed);
            cJSON_AddNumberToObject(o, "primary",
                                    (double)r->keys[i].primary);
        }
    }
    reply(c, obj);
    pump(c);
}

static void cmd_keys(struct conn *c, const cJSON *req)
{
    struct node *nd = c->ctl->a->node;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(req, "key");
    int which = -1;
    for (int i = 0; cJSON_IsString(op) && i < 4; i++)
        if (!strcmp(op->valuestring, key_ops[i]))
            which = i;
    if (which < 0) {
        reply_error(c, "op: expected list, install, use or remove");
        return;
    }
    uint8_t raw[KEYRING_KEY_MAX];
    size_t len = 0;
    if (which != NODE_KEYS_LIST &&
        (!cJSON_IsString(key) || keyring_parse(key->valuestring, raw, &len))) {
        reply_error(c, "key: expected a base64-encoded key of 16, 24 or 32 "
                    "bytes");
        return;
    }
    if (c->ctl->a->leaving) {
        reply_error(c, "the agent is leaving");
        return;
    }
    c->busy = true;
    c->keys = true;
    int rc = node_keys(nd, which, raw, len, on_keys, c);
    keyring_wipe(raw, sizeof raw);
    if (rc) {
        c->busy = false;
        c->keys = false;
        reply_error(c, "%s", node_keys_strerror(which, rc));
    }
}

/* A control token, when configured, must come with every request. Both
 * sides are hashed first, so the comparison takes the same time whatever
 * the lengths and contents. */
static bool token_ok(const struct control *ctl, const cJSON *req)
{
    const char *want = ctl->a->cfg.control_token;
    if (want[0] == '\0')
        return true;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "token");
    const char *got = cJSON_IsString(t) ? t->valuestring : "";
    uint8_t a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)want, strlen(want), a);
    SHA256((const unsigned char *)got, strlen(got), b);
    bool same = CRYPTO_memcmp(a, b, sizeof a) == 0;
    keyring_wipe(a, sizeof a);
    keyring_wipe(b, sizeof b);
    return same && cJSON_IsString(t);
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

/* A sample of stats_collect as JSON, in its group's object (made on
 * first use). */
static void json_sample(void *ud, const struct stats_sample *s)
{
    cJSON *obj = ud, *o = obj;
    if (s->key == NULL)
        return;
    if (s->group) {
        o = cJSON_GetObjectItemCaseSensitive(obj, s->group);
        if (o == NULL)
            o = cJSON_AddObjectToObject(obj, s->group);
        if (o == NULL)
            return;
    }
    if (s->text)
        add_bytes(o, s->key, (const uint8_t *)s->text, strlen(s->text));
    else if (s->boolean)
        cJSON_AddBoolToObject(o, s->key, s->value != 0);
    else
        cJSON_AddNumberToObject(o, s->key, (double)s->value);
}

static void cmd_stats(struct conn *c)
{
    struct agent *a = c->ctl->a;
    cJSON *obj = ok_answer();
    if (obj) {
        stats_collect(a, json_sample, obj);
        add_security(obj, a->node);
    }
    reply(c, obj);
}

/* ===== The key/value store ===== */

/* A key (or prefix) of a request: text of at most META_KEY_MAX bytes.
 * UTF-8 only, so that it comes back in answers exactly as it was given.
 * Absent is "" when optional. False when answered with an error. */
static bool get_key(struct conn *c, const cJSON *req, const char *field,
                    bool optional, const char **key, size_t *len)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(req, field);
    if (optional && (k == NULL || cJSON_IsNull(k))) {
        *key = "";
        *len = 0;
        return true;
    }
    if (!cJSON_IsString(k)) {
        reply_error(c, "%s: expected a string", field);
        return false;
    }
    *key = k->valuestring;
    *len = strlen(k->valuestring);
    if (*len > META_KEY_MAX) {
        reply_error(c, "%s: at most %d bytes", field, META_KEY_MAX);
        return false;
    }
    if (!text_utf8_valid(*key, *len)) {
        reply_error(c, "%s: expected UTF-8 text", field);
        return false;
    }
    return true;
}

/* A value as "value" when it is text (UTF-8 without NUL), else as
 * "value_base64". */
static cJSON *add_value(cJSON *obj, const uint8_t *v, size_t n)
{
    bool text = text_utf8_valid(v, n);
    char *s = hs_malloc(text ? n + 1 : text_base64_len(n) + 1);
    if (s == NULL)
        return NULL;
    if (text) {
        if (n)
            memcpy(s, v, n);
        s[n] = '\0';
    } else {
        text_base64_encode(v, n, s);
    }
    cJSON *item =
        cJSON_AddStringToObject(obj, text ? "value" : "value_base64", s);
    hs_free(s);
    return item;
}

/* Versions pass 2^53 (milliseconds << 16): a double would round them, so
 * they are written as the exact integer. */
static cJSON *add_version(cJSON *obj, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return cJSON_AddRawToObject(obj, "version", s);
}

/* The fields of an entry (its value unless !value) into obj; false when
 * out of memory. */
static bool add_entry(cJSON *obj, const struct meta_entry *e, bool value)
{
    return add_bytes(obj, "key", (const uint8_t *)e->key, e->keylen) &&
           (!value || add_value(obj, e->value, e->len)) &&
           add_version(obj, e->version) &&
           add_bytes(obj, "origin", (const uint8_t *)e->origin,
                     e->originlen);
}

static struct metadata *store_of(struct conn *c)
{
    return node_metadata(c->ctl->a->node);
}

/* The answer to a kv_put (with its version) or a kv_delete. */
static void reply_written(struct conn *c, bool put, const char *key,
                          size_t keylen, uint64_t version)
{
    cJSON *obj = ok_answer();
    if (obj && !(add_bytes(obj, "key", (const uint8_t *)key, keylen) &&
                 (!put || add_version(obj, version)))) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    reply(c, obj);
}

static void on_saved(struct wal_wait *wt, int err, const char *why)
{
    struct conn *c = HS_CONTAINER_OF(wt, struct conn, saving);
    c->busy = false;
    if (err)
        reply_error(c, "%s", why ? why : hs_strerror(err));
    else
        reply_written(c, c->saving_put, c->saving_key, c->saving_keylen,
                      c->saving_version);
    pump(c);
}

/* A write was taken: with a data dir, answer once it is on disk there
 * (architecture rule 7); without one, at once. */
static void written(struct conn *c, bool put, const char *key,
                    size_t keylen, uint64_t version)
{
    struct wal *w = c->ctl->a->wal;
    char why[600];
    int rc = w ? wal_wait(w, &c->saving, why, sizeof why) : 1;
    if (rc == 1) {
        reply_written(c, put, key, keylen, version);
    } else if (rc) {
        reply_error(c, "%s", why);
    } else {
        c->saving.cb = on_saved;
        c->saving_put = put;
        c->saving_keylen = (uint16_t)keylen;
        memcpy(c->saving_key, key, keylen);
        c->saving_version = version;
        c->busy = true;
    }
}

static void cmd_kv_put(struct conn *c, const cJSON *req)
{
    const char *key;
    size_t keylen;
    if (!get_key(c, req, "key", false, &key, &keylen))
        return;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(req, "value");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(req, "value_base64");
    if ((text == NULL) == (b64 == NULL)) {
        reply_error(c, "give the value as \"value\" (text) or "
                    "\"value_base64\"");
        return;
    }
    const cJSON *v = text ? text : b64;
    if (!cJSON_IsString(v)) {
        reply_error(c, "%s: expected a string",
                    text ? "value" : "value_base64");
        return;
    }
    size_t n = strlen(v->valuestring), len = n;
    const void *value = v->valuestring;
    uint8_t *bytes = NULL;
    if (b64) {
        bytes = hs_malloc(text_base64_max(n));
        if (bytes == NULL) {
            reply_error(c, "out of memory");
            return;
        }
        if (text_base64_decode(v->valuestring, n, bytes, &len)) {
            hs_free(bytes);
            reply_error(c, "value_base64: not valid base64");
            return;
        }
        value = bytes;
    }
    char why[256] = "";
    struct metadata *md = store_of(c);
    uint64_t version = 0;
    int rc = metadata_put(md, key, keylen, value, len, false, why,
                          sizeof why, &version);
    hs_free(bytes);
    if (rc) {
        reply_error(c, "%s", why[0] ? why : hs_strerror(rc));
        return;
    }
    written(c, true, key, keylen, version);
}

static void cmd_kv_get(struct conn *c, const cJSON *req)
{
    const char *key;
    size_t keylen;
    if (!get_key(c, req, "key", false, &key, &keylen))
        return;
    const struct meta_entry *e = metadata_get(store_of(c), key, keylen);
    if (e == NULL) {
        reply_error(c, "no such key: %s", key);
        return;
    }
    cJSON *obj = ok_answer();
    if (obj && !add_entry(obj, e, true)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    reply(c, obj);
}

static void cmd_kv_delete(struct conn *c, const cJSON *req)
{
    const char *key;
    size_t keylen;
    if (!get_key(c, req, "key", false, &key, &keylen))
        return;
    char why[256] = "";
    int rc = metadata_put(store_of(c), key, keylen, NULL, 0, true, why,
                          sizeof why, NULL);
    if (rc) {
        reply_error(c, "%s", why[0] ? why : hs_strerror(rc));
        return;
    }
    written(c, false, key, keylen, 0);
}

static void list_key(void *ud, const struct meta_entry *e)
{
    struct buf *b = ud;
    buf_put_be16(b, e->keylen);
    buf_append(b, e->key, e->keylen);
}

static void list_end(struct conn *c)
{
    buf_free(&c->list);
    c->list_pos = c->list_count = 0;
    c->listing = false;
    c->busy = false;
}

/* Write the next entries of a kv_list while the client keeps up. The
 * answer is one line, but may be gigabytes (10,000 values of 1 MiB, in
 * base64): it is made as it is sent, never whole in memory. Every write
 * ends in on_written, which pumps: that brings us back for more. */
static void list_more(struct conn *c)
{
    struct agent *a = c->ctl->a;
    struct buf out = BUF_INIT;
    size_t sent = 0;
    while (!c->closing && c->list_pos < c->list.len &&
           backlog(c) <= WRITE_BACKLOG_MAX && sent < LIST_BUDGET) {
        while (c->list_pos < c->list.len && out.len < LIST_CHUNK) {
            size_t kl = hs_be16(c->list.data + c->list_pos);
            const char *k = (const char *)c->list.data + c->list_pos + 2;
            c->list_pos += 2 + kl;
            /* gone since it was asked (or the node closed): skip it */
            const struct meta_entry *e =
                a->node ? metadata_get(node_metadata(a->node), k, kl) : NULL;
            if (e == NULL)
                continue;
            cJSON *o = cJSON_CreateObject();
            char *s = o && add_entry(o, e, c->list_values)
                          ? cJSON_PrintUnformatted(o)
                          : NULL;
            cJSON_Delete(o);
            if (s == NULL) {
                out.err = HS_ENOMEM;
                break;
            }
            if (c->list_count++)
                buf_putc(&out, ',');
            buf_append(&out, s, strlen(s));
            cJSON_free(s);
        }
        if (out.err) {
            /* Half a line is out: no error answer can follow it. The
             * client sees the line cut short. */
            HS_WARN(&a->log, "control: out of memory listing keys");
            finish(c);
            break;
        }
        if (out.len)
            send_bytes(c, (const char *)out.data, out.len, false);
        sent += out.len;
        buf_reset(&out);
    }
    buf_free(&out);
    if (!c->closing && c->list_pos >= c->list.len) {
        send_bytes(c, "]}", 2, true);
        list_end(c);
    }
}

static void cmd_kv_list(struct conn *c, const cJSON *req)
{
    const char *prefix;
    size_t plen;
    if (!get_key(c, req, "prefix", true, &prefix, &plen))
        return;
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(req, "values");
    if (values && !cJSON_IsBool(values)) {
        reply_error(c, "values: expected true or false");
        return;
    }
    buf_init(&c->list);
    if (metadata_each(store_of(c), prefix, plen, false, list_key,
                      &c->list) ||
        c->list.err) {
        buf_free(&c->list);
        reply_error(c, "out of memory");
        return;
    }
    c->list_values = !cJSON_IsFalse(values);
    c->listing = true;
    c->busy = true; /* later requests wait for the whole list */
    static const char head[] = "{\"ok\":true,\"entries\":[";
    send_bytes(c, head, sizeof head - 1, false);
    list_more(c); /* then pump() goes on with it as writes complete */
}

static void unwatch(struct conn *c)
{
    if (!c->watching)
        return;
    c->watching = false;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        c->ctl->watchers = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wprev = c->wnext = NULL;
}

static void cmd_kv_watch(struct conn *c, const cJSON *req)
{
    const char *prefix;
    size_t plen;
    if (!get_key(c, req, "prefix", true, &prefix, &plen))
        return;
    c->prefix = hs_strndup(prefix, plen);
    cJSON *obj = c->prefix ? ok_answer() : NULL;
    if (obj && !add_bytes(obj, "watching", (const uint8_t *)prefix, plen)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    if (obj == NULL) {
        reply_error(c, "out of memory");
        return;
    }
    reply(c, obj);
    if (c->closing)
        return;
    c->prefixlen = plen;
    c->watching = true;
    c->busy = true; /* no more requests: events only */
    c->wnext = c->ctl->watchers;
    if (c->wnext)
        c->wnext->wprev = c;
    c->ctl->watchers = c;
}

/* One event line of kv_watch (cJSON_free it), or NULL. */
static char *event_line(const struct meta_change *ch)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    bool ok =
        cJSON_AddStringToObject(o, "event", ch->value ? "put" : "delete") &&
        add_bytes(o, "key", (const uint8_t *)ch->key, ch->keylen) &&
        (!ch->value || add_value(o, ch->value, ch->len)) &&
        add_version(o, ch->version) &&
        add_bytes(o, "origin", (const uint8_t *)ch->origin,
                  ch->originlen) &&
        cJSON_AddBoolToObject(o, "local", ch->local);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* The store's observer: every write applied, local or remote, goes to
 * the watchers of a prefix of its key. */
static void on_meta_change(void *ud, const struct meta_change *ch)
{
    struct control *ctl = ud;
    char *line = NULL;
    size_t n = 0;
    bool failed = false;
    for (struct conn *k = ctl->watchers, *next; k; k = next) {
        next = k->wnext;
        if (k->closing || ch->keylen < k->prefixlen ||
            memcmp(ch->key, k->prefix, k->prefixlen) != 0)
            continue;
        if (line == NULL && !failed) {
            line = event_line(ch);
            failed = line == NULL;
            n = line ? strlen(line) : 0;
        }
        /* A watcher must see every change or know it did not. */
        if (failed) {
            reply_error(k, "out of memory: the watch stopped");
            finish(k);
        } else if (backlog(k) + n + 1 > WATCH_BACKLOG_MAX) {
            HS_WARN(&ctl->a->log, "control: a kv watcher left more than "
                    "%u MiB of events unread: dropped",
                    WATCH_BACKLOG_MAX >> 20);
            reply_error(k, "the watch stopped: more than %u MiB of events "
                        "unread", WATCH_BACKLOG_MAX >> 20);
            finish(k);
        } else {
            send_bytes(k, line, n, true);
        }
    }
    cJSON_free(line);
}

/* A backslash-u escape of NUL in a request: cJSON would cut the string
 * there, silently, so keys and values with one are refused. Backslashes
 * are only valid in strings, so every one starts an escape. */
static bool has_nul_escape(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && i + 5 < n && !memcmp(p + i + 2, "0000", 4))
            return true;
        i++; /* the escaped character */
    }
    return false;
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
static bool admit(struct conn *c)
{
    struct control *ctl = c->ctl;
    if (c->authed)
        return true;
    if (ctl->nauthed >= CONTROL_CONN_MAX) {
        reply_error(c, "too many control connections (at most %d)",
                    CONTROL_CONN_MAX);
        finish(c);
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
            HS_DEBUG(&ctl->a->log, "control: evicted a connection that "
                     "sent no request: waiting=%zu", ctl->npending);
            reply_error(old, "closed: too many connections waiting to send "
                        "a request (at most %d)", CONTROL_PENDING_MAX);
            finish(old);
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
            reply_error(k, "no request within %llu ms: closed",
                        (unsigned long long)first);
            finish(k);
        } else if (k->authed && now - k->active >= ctl->idle_ms) {
            HS_DEBUG(&ctl->a->log, "control: closed a connection idle for "
                     "%llu ms", (unsigned long long)(now - k->active));
            finish(k);
        }
    }
    if (!any)
        uv_timer_stop(t);
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
        bool kv = name && !strncmp(name, "kv_", 3);
        /* cJSON ends a string at a NUL without a word: the token
         * "secret\u0000x" would read as "secret", the key "a\u0000b" as
         * "a". So no string of a request may hold one. */
        if (memchr(line, '\0', n) || has_nul_escape(line, n))
            reply_error(c, kv ? "keys and values cannot hold \\u0000: send "
                                "binary values as value_base64"
                              : "a request cannot hold \\u0000 or a NUL "
                                "byte");
        else if (!token_ok(c->ctl, req))
            reply_error(c, "permission denied: this agent requires a "
                        "control token (hearsay --token, or $%s)",
                        CONTROL_TOKEN_ENV);
        else if (!admit(c))
            ; /* answered, and closing */
        else if (name == NULL)
            reply_error(c, "missing \"cmd\"");
        else if (c->ctl->a->node == NULL)
            reply_error(c, "the agent is shutting down");
        else if (n > CONTROL_LINE_MAX && strcmp(name, "kv_put"))
            reply_error(c, "request line longer than %d bytes",
                        CONTROL_LINE_MAX);
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
        else if (!strcmp(name, "kv_put"))
            cmd_kv_put(c, req);
        else if (!strcmp(name, "kv_get"))
            cmd_kv_get(c, req);
        else if (!strcmp(name, "kv_delete"))
            cmd_kv_delete(c, req);
        else if (!strcmp(name, "kv_list"))
            cmd_kv_list(c, req);
        else if (!strcmp(name, "kv_watch"))
            cmd_kv_watch(c, req);
        else if (!strcmp(name, "keys"))
            cmd_keys(c, req);
        else
            reply_error(c, "unknown cmd \"%.64s\": use members, join, "
                        "leave, pause, resume, reload, version, stats, "
                        "keys, kv_put, kv_get, kv_delete, kv_list or "
                        "kv_watch", name);
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
            finish(c);
        return;
    } else if (nread > 0) {
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

/* A line longer than line_max: answer, then read the rest of it and drop
 * it before closing. Closing with unread input would reset the
 * connection, and the client could lose the answer. */
static void line_too_long(struct conn *c)
{
    if (c->ctl->line_max > CONTROL_LINE_MAX)
        reply_error(c, "request line longer than %zu bytes (a kv_put "
                    "value may be at most %llu bytes: metadata_max_value)",
                    c->ctl->line_max, (unsigned long long)c->ctl->max_value);
    else
        reply_error(c, "request line longer than %zu bytes",
                    c->ctl->line_max);
    c->discard = true;
    c->len = c->scan = 0;
}

/* Serve the complete lines in the buffer, in order, while nothing keeps
 * us waiting (an answer in flight, a write backlog). */
static void pump(struct conn *c)
{
    if (c->in_pump || c->closing)
        return; /* the outer pump picks up where this one was asked */
    c->in_pump = true;
    if (c->listing)
        list_more(c);
    while (!c->closing && !c->busy && !c->ctl->stopping &&
           backlog(c) <= WRITE_BACKLOG_MAX) {
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
            handle_line(c, c->buf, n);
        }
        size_t used = nl ? n + 1 : n;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        c->scan = 0;
    }
    if (c->watching) {
        c->len = c->scan = 0; /* what a watcher sends means nothing */
        /* A watcher that half-closed still watches: it is gone when a
         * write to it fails. */
        if (!c->closing && c->ctl->stopping)
            finish(c);
        else if (!c->closing && !c->eof)
            read_start(c);
    } else if (!c->closing) {
        bool idle = !c->busy && c->len == 0;
        if ((c->eof && idle) || (c->ctl->stopping && !c->busy))
            finish(c);
        else if (c->eof || c->busy || backlog(c) > WRITE_BACKLOG_MAX)
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
    unwatch(c);
    buf_free(&c->list);
    hs_free(c->prefix);
    hs_free(c->buf);
    hs_free(c);
    maybe_closed(ctl);
}

/* The connection goes away: its keyring operation must not answer. */
static void forget_keys(struct conn *c)
{
    if (c->keys && c->ctl->a->node)
        node_keys_cancel(c->ctl->a->node, on_keys, c);
    c->keys = false;
}

static void close_now(struct conn *c)
{
    c->closing = true;
    release(c);
    forget_keys(c);
    wal_wait_cancel(&c->saving);
    unwatch(c);
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
    release(c);
    forget_keys(c);
    wal_wait_cancel(&c->saving);
    unwatch(c);
    control_join_cancel(c->join);
    c->join = NULL;
    read_stop(c);
    c->shut.data = c;
    if (backlog(c) == 0 ||
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
        reply_error(c, "the agent is shutting down");
        finish(c);
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
    /* A kv_put line holds its value in base64 at worst (the CLI sends
     * text only when that is shorter), plus room for the rest. */
    ctl->max_value = a->node ? node_config(a->node)->metadata_max_value : 0;
    ctl->line_max = CONTROL_LINE_MAX + text_base64_len(ctl->max_value);
    ctl->idle_ms = a->cfg.control_idle_timeout;
    uv_tcp_init(&a->loop, &ctl->server);
    uv_timer_init(&a->loop, &ctl->grace);
    uv_timer_init(&a->loop, &ctl->sweep);
    ctl->server.data = ctl->grace.data = ctl->sweep.data = ctl;
    ctl->handles = 3;
    a->ctl = ctl;
    if (a->node)
        metadata_set_observer(node_metadata(a->node), on_meta_change, ctl);
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
    if (c->a->node)
        metadata_set_observer(node_metadata(c->a->node), NULL, NULL);
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
