/* control_kv.c: the control endpoint's commands on the key/value store:
 * kv_put, kv_get, kv_delete, kv_list (sent as the client reads it) and
 * kv_watch (the store's changes, as they are applied). */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "agent/agent.h"
#include "agent/control_int.h"
#include "agent/wal.h"
#include "base/text.h"
#include "core/metadata.h"
#include "core/node.h"

/* A watcher that leaves this much of its events unread is dropped: it
 * must not make the agent's memory grow without bound. */
#define WATCH_BACKLOG_MAX (16u << 20)
/* kv_list writes its entries in chunks of about this size, and at most
 * LIST_BUDGET bytes before it lets other connections be served. */
#define LIST_CHUNK (64u << 10)
#define LIST_BUDGET (1u << 20)

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
        ctl_reply_error(c, "%s: expected a string", field);
        return false;
    }
    *key = k->valuestring;
    *len = strlen(k->valuestring);
    if (*len > META_KEY_MAX) {
        ctl_reply_error(c, "%s: at most %d bytes", field, META_KEY_MAX);
        return false;
    }
    if (!text_utf8_valid(*key, *len)) {
        ctl_reply_error(c, "%s: expected UTF-8 text", field);
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
    return ctl_add_bytes(obj, "key", (const uint8_t *)e->key, e->keylen) &&
           (!value || add_value(obj, e->value, e->len)) &&
           add_version(obj, e->version) &&
           ctl_add_bytes(obj, "origin", (const uint8_t *)e->origin,
                         e->originlen);
}

static struct metadata *store_of(struct conn *c)
{
    return node_metadata(c->ctl->a->setup.node);
}

/* The answer to a kv_put (with its version) or a kv_delete. */
static void reply_written(struct conn *c, bool put, const char *key,
                          size_t keylen, uint64_t version)
{
    cJSON *obj = ctl_ok_answer();
    if (obj && !(ctl_add_bytes(obj, "key", (const uint8_t *)key, keylen) &&
                 (!put || add_version(obj, version)))) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    ctl_reply(c, obj);
}

static void on_saved(struct wal_wait *wt, int err, const char *why)
{
    struct conn *c = HS_CONTAINER_OF(wt, struct conn, saving);
    c->busy = false;
    if (err)
        ctl_reply_error(c, "%s", why ? why : hs_strerror(err));
    else
        reply_written(c, c->saving_put, c->saving_key, c->saving_keylen,
                      c->saving_version);
    ctl_pump(c);
}

/* A write was taken: with a data dir, answer once it is on disk there
 * (architecture rule 7); without one, at once. */
static void written(struct conn *c, bool put, const char *key, size_t keylen,
                    uint64_t version)
{
    struct wal *w = c->ctl->a->wal;
    char why[600];
    int rc = w ? wal_wait(w, &c->saving, why, sizeof why) : 1;
    if (rc == 1) {
        reply_written(c, put, key, keylen, version);
    } else if (rc) {
        ctl_reply_error(c, "%s", why);
    } else {
        c->saving.cb = on_saved;
        c->saving_put = put;
        c->saving_keylen = (uint16_t)keylen;
        memcpy(c->saving_key, key, keylen);
        c->saving_version = version;
        c->busy = true;
    }
}

void ctl_cmd_kv_put(struct conn *c, const cJSON *req)
{
    const char *key;
    size_t keylen;
    if (!get_key(c, req, "key", false, &key, &keylen))
        return;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(req, "value");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(req, "value_base64");
    if ((text == NULL) == (b64 == NULL)) {
        ctl_reply_error(c, "give the value as \"value\" (text) or "
                           "\"value_base64\"");
        return;
    }
    const cJSON *v = text ? text : b64;
    if (!cJSON_IsString(v)) {
        ctl_reply_error(c, "%s: expected a string",
                        text ? "value" : "value_base64");
        return;
    }
    size_t n = strlen(v->valuestring), len = n;
    const void *value = v->valuestring;
    uint8_t *bytes = NULL;
    if (b64) {
        bytes = hs_malloc(text_base64_max(n));
        if (bytes == NULL) {
            ctl_reply_error(c, "out of memory");
            return;
        }
        if (text_base64_decode(v->valuestring, n, bytes, &len)) {
            hs_free(bytes);
            ctl_reply_error(c, "value_base64: not valid base64");
            return;
        }
        value = bytes;
    }
    char why[256] = "";
    struct metadata *md = store_of(c);
    uint64_t version = 0;
    int rc = metadata_put(md, key, keylen, value, len, false, why, sizeof why,
                          &version);
    hs_free(bytes);
    if (rc) {
        ctl_reply_error(c, "%s", why[0] ? why : hs_strerror(rc));
        return;
    }
    written(c, true, key, keylen, version);
}

void ctl_cmd_kv_get(struct conn *c, const cJSON *req)
{
    const char *key;
    size_t keylen;
    if (!get_key(c, req, "key", false, &key, &keylen))
        return;
    const struct meta_entry *e = metadata_get(store_of(c), key, keylen);
    if (e == NULL) {
        ctl_reply_error(c, "no such key: %s", key);
        return;
    }
    cJSON *obj = ctl_ok_answer();
    if (obj && !add_entry(obj, e, true)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    ctl_reply(c, obj);
}

void ctl_cmd_kv_delete(struct conn *c, const cJSON *req)
{
    const char *key;
    size_t keylen;
    if (!get_key(c, req, "key", false, &key, &keylen))
        return;
    char why[256] = "";
    int rc = metadata_put(store_of(c), key, keylen, NULL, 0, true, why,
                          sizeof why, NULL);
    if (rc) {
        ctl_reply_error(c, "%s", why[0] ? why : hs_strerror(rc));
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
void ctl_list_more(struct conn *c)
{
    struct agent *a = c->ctl->a;
    struct buf out = BUF_INIT;
    size_t sent = 0;
    while (!c->closing && c->list_pos < c->list.len &&
           ctl_backlog(c) <= WRITE_BACKLOG_MAX && sent < LIST_BUDGET) {
        while (c->list_pos < c->list.len && out.len < LIST_CHUNK) {
            size_t kl = hs_be16(c->list.data + c->list_pos);
            const char *k = (const char *)c->list.data + c->list_pos + 2;
            c->list_pos += 2 + kl;
            /* gone since it was asked (or the node closed): skip it */
            struct node *nd = a->setup.node;
            const struct meta_entry *e =
                nd ? metadata_get(node_metadata(nd), k, kl) : NULL;
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
            ctl_finish(c);
            break;
        }
        if (out.len)
            ctl_send_bytes(c, (const char *)out.data, out.len, false);
        sent += out.len;
        buf_reset(&out);
    }
    buf_free(&out);
    if (!c->closing && c->list_pos >= c->list.len) {
        ctl_send_bytes(c, "]}", 2, true);
        list_end(c);
    }
}

void ctl_cmd_kv_list(struct conn *c, const cJSON *req)
{
    const char *prefix;
    size_t plen;
    if (!get_key(c, req, "prefix", true, &prefix, &plen))
        return;
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(req, "values");
    if (values && !cJSON_IsBool(values)) {
        ctl_reply_error(c, "values: expected true or false");
        return;
    }
    buf_init(&c->list);
    if (metadata_each(store_of(c), prefix, plen, false, list_key, &c->list) ||
        c->list.err) {
        buf_free(&c->list);
        ctl_reply_error(c, "out of memory");
        return;
    }
    c->list_values = !cJSON_IsFalse(values);
    c->listing = true;
    c->busy = true; /* later requests wait for the whole list */
    static const char head[] = "{\"ok\":true,\"entries\":[";
    ctl_send_bytes(c, head, sizeof head - 1, false);
    ctl_list_more(c); /* then ctl_pump() goes on with it as writes complete */
}

void ctl_unwatch(struct conn *c)
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

void ctl_cmd_kv_watch(struct conn *c, const cJSON *req)
{
    const char *prefix;
    size_t plen;
    if (!get_key(c, req, "prefix", true, &prefix, &plen))
        return;
    c->prefix = hs_strndup(prefix, plen);
    cJSON *obj = c->prefix ? ctl_ok_answer() : NULL;
    if (obj && !ctl_add_bytes(obj, "watching", (const uint8_t *)prefix, plen)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    if (obj == NULL) {
        ctl_reply_error(c, "out of memory");
        return;
    }
    ctl_reply(c, obj);
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
        ctl_add_bytes(o, "key", (const uint8_t *)ch->key, ch->keylen) &&
        (!ch->value || add_value(o, ch->value, ch->len)) &&
        add_version(o, ch->version) &&
        ctl_add_bytes(o, "origin", (const uint8_t *)ch->origin,
                      ch->originlen) &&
        cJSON_AddBoolToObject(o, "local", ch->local);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* The store's observer: every write applied, local or remote, goes to
 * the watchers of a prefix of its key. */
void ctl_on_meta_change(void *ud, const struct meta_change *ch)
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
            ctl_reply_error(k, "out of memory: the watch stopped");
            ctl_finish(k);
        } else if (ctl_backlog(k) + n + 1 > WATCH_BACKLOG_MAX) {
            HS_WARN(&ctl->a->log,
                    "control: a kv watcher left more than "
                    "%u MiB of events unread: dropped",
                    WATCH_BACKLOG_MAX >> 20);
            ctl_reply_error(k,
                            "the watch stopped: more than %u MiB of events "
                            "unread",
                            WATCH_BACKLOG_MAX >> 20);
            ctl_finish(k);
        } else {
            ctl_send_bytes(k, line, n, true);
        }
    }
    cJSON_free(line);
}
