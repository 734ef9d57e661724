/* control_node.c: the control endpoint's commands on the node and its
 * cluster: members, join, leave, pause and resume, reload, keys,
 * version and stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/control_int.h"
#include "agent/metrics.h"
#include "agent/stats.h"
#include "base/text.h"
#include "codec/tags.h"
#include "core/node.h"

#define JOIN_ADDRS_MAX 64

/* ===== Members ===== */

static int by_name(const void *x, const void *y)
{
    const struct member *a = *(const struct member *const *)x;
    const struct member *b = *(const struct member *const *)y;
    int d = memcmp(a->name, b->name, HS_MIN(a->name_len, b->name_len));
    if (d)
        return d;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Serf's tags in private data, as an object sorted by key (as Go writes
 * a map); {} when the private data is not Serf tags. */
static void add_tags(cJSON *o, const uint8_t *meta, size_t len)
{
    struct tag t[TAGS_MAX];
    size_t n;
    cJSON *obj = cJSON_AddObjectToObject(o, "tags");
    if (obj == NULL || tags_decode(meta, len, t, &n))
        return;
    tags_sort(t, n);
    for (size_t i = 0; i < n; i++) {
        /* keys too are made valid UTF-8, as every string of an answer */
        char *key = ctl_utf8(t[i].key, t[i].keylen);
        if (key)
            ctl_add_bytes(obj, key, t[i].value, t[i].valuelen);
        hs_free(key);
    }
}

/* A member as serf's members -format=json writes it (name, addr, port,
 * tags, status, protocol), then the delegate versions and hearsay's
 * own fields. */
static void add_member(cJSON *arr, const struct member *m)
{
    static const char hex[] = "0123456789abcdef";
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return;
    }
    char ab[HS_ADDRSTRLEN];
    ctl_add_bytes(o, "name", (const uint8_t *)m->name, m->name_len);
    /* "ip:port" as serf's members -format=json writes it */
    cJSON_AddStringToObject(o, "addr", addr_format(&m->addr, ab, sizeof ab));
    cJSON_AddNumberToObject(o, "port", m->addr.port);
    add_tags(o, m->meta, m->meta_len);
    cJSON_AddStringToObject(o, "status", member_state_name(m->state));
    ctl_add_vsn(o, "protocol", m->vsn[0], m->vsn[1], m->vsn[2]);
    ctl_add_vsn(o, "delegate", m->vsn[3], m->vsn[4], m->vsn[5]);
    cJSON_AddNumberToObject(o, "incarnation", m->incarnation);
    if (text_utf8_valid(m->meta, m->meta_len))
        ctl_add_bytes(o, "private_data", m->meta, m->meta_len);
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
}

void ctl_cmd_members(struct conn *c, const cJSON *req)
{
    struct node *nd = c->ctl->a->setup.node;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(req, "status");
    int want = -1;
    if (st && !cJSON_IsNull(st)) {
        if (!cJSON_IsString(st)) {
            ctl_reply_error(c, "status: expected a string");
            return;
        }
        want = member_state_parse(st->valuestring);
        if (want < 0) {
            ctl_reply_error(c,
                            "unknown status \"%.64s\": use alive, suspect, "
                            "dead (or failed) or left",
                            st->valuestring);
            return;
        }
    }
    const struct members *t = node_members(nd);
    const struct member **ms = hs_calloc(t->n, sizeof *ms);
    if (ms == NULL && t->n) {
        ctl_reply_error(c, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (want < 0 || t->order[i]->state == want)
            ms[n++] = t->order[i];
    qsort(ms, n, sizeof *ms, by_name);
    cJSON *obj = ctl_ok_answer();
    cJSON *arr = obj ? cJSON_AddArrayToObject(obj, "members") : NULL;
    for (size_t i = 0; arr && i < n; i++)
        add_member(arr, ms[i]);
    hs_free(ms);
    ctl_reply(c, obj);
}

static void on_conn_joined(void *ud, int joined, int err, const char *why)
{
    struct conn *c = ud;
    c->join = NULL;
    c->busy = false;
    if (joined > 0) {
        cJSON *obj = ctl_ok_answer();
        if (obj)
            cJSON_AddNumberToObject(obj, "joined", joined);
        ctl_reply(c, obj);
    } else {
        ctl_reply_error(c, "%s", why ? why : hs_strerror(err));
    }
    ctl_pump(c);
}

void ctl_cmd_join(struct conn *c, const cJSON *req)
{
    struct agent *a = c->ctl->a;
    const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(req, "addrs");
    const char *specs[JOIN_ADDRS_MAX];
    size_t n = 0;
    const cJSON *it;
    if (!cJSON_IsArray(addrs)) {
        ctl_reply_error(c, "addrs: expected an array of \"host:port\" strings");
        return;
    }
    cJSON_ArrayForEach (it, addrs) {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
            ctl_reply_error(c, "addrs: expected an array of \"host:port\" "
                               "strings");
            return;
        }
        if (n == JOIN_ADDRS_MAX) {
            ctl_reply_error(c, "addrs: at most %d addresses", JOIN_ADDRS_MAX);
            return;
        }
        specs[n++] = it->valuestring;
    }
    if (n == 0) {
        ctl_reply_error(c, "addrs: give at least one address");
        return;
    }
    c->busy = true;
    int rc = control_join(a, specs, n, on_conn_joined, c, &c->join);
    if (rc) {
        c->busy = false;
        c->join = NULL;
        ctl_reply_error(c, "%s",
                        a->leaving ? "the agent is leaving" : hs_strerror(rc));
    }
}

void ctl_cmd_leave(struct conn *c, const cJSON *req)
{
    (void)req;
    struct agent *a = c->ctl->a;
    /* Mark first: the leave may complete before a->leave returns. */
    c->busy = true;
    c->wants_leave = true;
    int rc = a->leave(a);
    if (rc && c->wants_leave) {
        c->busy = false;
        c->wants_leave = false;
        ctl_reply_error(c, "cannot leave: %s", hs_strerror(rc));
    }
}

static void pause_or_resume(struct conn *c, bool pause)
{
    struct agent *a = c->ctl->a;
    if (a->leaving) {
        ctl_reply_error(c, "the agent is leaving");
        return;
    }
    if (pause)
        node_pause(a->setup.node);
    else
        node_resume(a->setup.node);
    cJSON *obj = ctl_ok_answer();
    if (obj)
        cJSON_AddBoolToObject(obj, "paused", node_paused(a->setup.node));
    ctl_reply(c, obj);
}

void ctl_cmd_pause(struct conn *c, const cJSON *req)
{
    (void)req;
    pause_or_resume(c, true);
}

void ctl_cmd_resume(struct conn *c, const cJSON *req)
{
    (void)req;
    pause_or_resume(c, false);
}

/* ===== force-leave and tags (serf force-leave, serf tags) ===== */

void ctl_cmd_force_leave(struct conn *c, const cJSON *req)
{
    struct agent *a = c->ctl->a;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0') {
        ctl_reply_error(c, "name: expected the name of a member");
        return;
    }
    if (a->leaving) {
        ctl_reply_error(c, "the agent is leaving");
        return;
    }
    const char *n = name->valuestring;
    size_t len = strlen(n);
    const struct member *m =
        len <= MEMBER_NAME_MAX
            ? members_find(node_members(a->setup.node), n, len)
            : NULL;
    const char *was = m ? member_state_name(m->state) : NULL;
    int rc = node_force_leave(a->setup.node, n, len);
    if (rc == HS_ENOTFOUND)
        ctl_reply_error(c, "no member named \"%.256s\"", n);
    else if (rc == HS_EINVAL)
        ctl_reply_error(c,
                        "\"%.256s\" is this agent: use hearsay leave "
                        "to leave",
                        n);
    else if (rc == HS_EREFUSED)
        ctl_reply_error(c,
                        "member \"%.256s\" is alive: force-leave is for "
                        "members that failed",
                        n);
    else if (rc)
        ctl_reply_error(c, "cannot force \"%.256s\" to leave: %s", n,
                        hs_strerror(rc));
    else {
        cJSON *obj = ctl_ok_answer();
        if (obj) {
            ctl_add_bytes(obj, "name", (const uint8_t *)n, len);
            cJSON_AddStringToObject(obj, "was", was);
            cJSON_AddStringToObject(obj, "status", "left");
        }
        ctl_reply(c, obj);
    }
}

/* A tag of a request: UTF-8 text (what a JSON answer can give back). */
static bool tag_text(struct conn *c, const char *what, const char *s)
{
    if (text_utf8_valid(s, strlen(s)))
        return true;
    ctl_reply_error(c, "%s: expected UTF-8 text", what);
    return false;
}

/* The tags of this node's private data with `set` set and `del` deleted
 * (in that order, as serf does), in t[0..*n); false when answered with
 * an error. The strings point into the private data or the request. */
static bool new_tags(struct conn *c, const struct member *self,
                     const cJSON *set, const cJSON *del, struct tag *t,
                     size_t *n)
{
    const cJSON *it;
    int rc = tags_decode(self->meta, self->meta_len, t, n);
    if (rc == HS_ENOTFOUND && self->meta_len == 0)
        rc = 0; /* no private data: no tags yet */
    if (rc) {
        ctl_reply_error(c,
                        "this node's private data (%u bytes) is not Serf "
                        "tags: it comes from a script's private_data hook, "
                        "which owns it",
                        (unsigned)self->meta_len);
        return false;
    }
    cJSON_ArrayForEach (it, set) {
        if (!cJSON_IsString(it)) {
            ctl_reply_error(c, "set: expected an object of strings");
            return false;
        }
        if (!tag_text(c, "set", it->string) ||
            !tag_text(c, "set", it->valuestring))
            return false;
        size_t kl = strlen(it->string), i = 0;
        while (i < *n && !(t[i].keylen == kl &&
                           (kl == 0 || !memcmp(t[i].key, it->string, kl))))
            i++;
        if (i == TAGS_MAX) {
            ctl_reply_error(c, "at most %d tags", TAGS_MAX);
            return false;
        }
        t[i] = (struct tag){(const uint8_t *)it->string,
                            (const uint8_t *)it->valuestring, (uint32_t)kl,
                            (uint32_t)strlen(it->valuestring)};
        if (i == *n)
            (*n)++;
    }
    cJSON_ArrayForEach (it, del) {
        if (!cJSON_IsString(it)) {
            ctl_reply_error(c, "delete: expected an array of strings");
            return false;
        }
        size_t kl = strlen(it->valuestring);
        for (size_t i = 0; i < *n; i++)
            if (t[i].keylen == kl &&
                (kl == 0 || !memcmp(t[i].key, it->valuestring, kl))) {
                t[i] = t[--*n];
                break;
            }
    }
    return true;
}

void ctl_cmd_tags(struct conn *c, const cJSON *req)
{
    struct agent *a = c->ctl->a;
    struct node *nd = a->setup.node;
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(req, "set");
    const cJSON *del = cJSON_GetObjectItemCaseSensitive(req, "delete");
    if (set && !cJSON_IsNull(set) && !cJSON_IsObject(set)) {
        ctl_reply_error(c, "set: expected an object of strings");
        return;
    }
    if (del && !cJSON_IsNull(del) && !cJSON_IsArray(del)) {
        ctl_reply_error(c, "delete: expected an array of strings");
        return;
    }
    if (a->leaving) {
        ctl_reply_error(c, "the agent is leaving");
        return;
    }
    const struct member *self = node_self(nd);
    struct tag t[TAGS_MAX];
    size_t n;
    if (self == NULL) {
        ctl_reply_error(c, "the node is not running");
        return;
    }
    if (!new_tags(c, self, cJSON_IsObject(set) ? set : NULL,
                  cJSON_IsArray(del) ? del : NULL, t, &n))
        return;
    tags_sort(t, n);
    struct buf b = BUF_INIT;
    tags_encode(t, n, &b);
    bool same = b.err == 0 && b.len == self->meta_len &&
                memcmp(b.data, self->meta, b.len) == 0;
    bool empty = n == 0 && self->meta_len == 0; /* none before or after */
    int rc = b.err                   ? b.err
             : b.len > WIRE_META_MAX ? HS_ETOOBIG
             : same || empty         ? 0
                                     : node_set_meta(nd, b.data, b.len);
    if (rc == HS_ETOOBIG) {
        ctl_reply_error(c,
                        "the tags take %zu bytes, more than the %d bytes "
                        "of private data",
                        b.len, WIRE_META_MAX);
    } else if (rc) {
        ctl_reply_error(c, "cannot set the tags: %s", hs_strerror(rc));
    } else {
        cJSON *obj = ctl_ok_answer();
        if (obj) {
            const struct member *me = node_self(nd);
            add_tags(obj, me->meta, me->meta_len);
            cJSON_AddBoolToObject(obj, "changed", !same && !empty);
            cJSON_AddNumberToObject(obj, "incarnation", me->incarnation);
        }
        ctl_reply(c, obj);
    }
    buf_free(&b);
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
    ctl_add_bytes(o, "label", (const uint8_t *)cfg->label, strlen(cfg->label));
    cJSON_AddBoolToObject(o, "skip_inbound_label_check",
                          cfg->skip_inbound_label_check);
}

void ctl_cmd_reload(struct conn *c, const cJSON *req)
{
    (void)req;
    struct agent *a = c->ctl->a;
    char err[512];
    size_t count = 0;
    if (a->reload == NULL || a->reload(a, &count, err, sizeof err)) {
        ctl_reply_error(c, "%s", a->reload ? err : "reload is not available");
        return;
    }
    cJSON *obj = ctl_ok_answer();
    if (obj) {
        cJSON_AddNumberToObject(obj, "scripts", (double)count);
        add_security(obj, a->setup.node);
    }
    ctl_reply(c, obj);
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
        snprintf(msg, sizeof msg, "%zu/%zu nodes reported failure", r->errors,
                 r->nodes);
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
            ctl_add_bytes(o, "name", (const uint8_t *)r->failures[i].name,
                          strlen(r->failures[i].name));
            ctl_add_bytes(o, "message", (const uint8_t *)r->failures[i].message,
                          strlen(r->failures[i].message));
        }
        cJSON *k = r->op == NODE_KEYS_LIST ? cJSON_AddArrayToObject(obj, "keys")
                                           : NULL;
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
            cJSON_AddNumberToObject(o, "primary", (double)r->keys[i].primary);
        }
    }
    ctl_reply(c, obj);
    ctl_pump(c);
}

void ctl_cmd_keys(struct conn *c, const cJSON *req)
{
    struct node *nd = c->ctl->a->setup.node;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(req, "key");
    int which = -1;
    for (int i = 0; cJSON_IsString(op) && i < 4; i++)
        if (!strcmp(op->valuestring, key_ops[i]))
            which = i;
    if (which < 0) {
        ctl_reply_error(c, "op: expected list, install, use or remove");
        return;
    }
    uint8_t raw[KEYRING_KEY_MAX];
    size_t len = 0;
    if (which != NODE_KEYS_LIST &&
        (!cJSON_IsString(key) || keyring_parse(key->valuestring, raw, &len))) {
        ctl_reply_error(c, "key: expected a base64-encoded key of 16, 24 or 32 "
                           "bytes");
        return;
    }
    if (c->ctl->a->leaving) {
        ctl_reply_error(c, "the agent is leaving");
        return;
    }
    c->busy = true;
    c->keys = true;
    int rc = node_keys(nd, which, raw, len, on_keys, c);
    keyring_wipe(raw, sizeof raw);
    if (rc) {
        c->busy = false;
        c->keys = false;
        ctl_reply_error(c, "%s", node_keys_strerror(which, rc));
    }
}

/* The connection goes away: its keyring operation must not answer. */
void ctl_forget_keys(struct conn *c)
{
    if (c->keys && c->ctl->a->setup.node)
        node_keys_cancel(c->ctl->a->setup.node, on_keys, c);
    c->keys = false;
}

void ctl_cmd_version(struct conn *c, const cJSON *req)
{
    (void)req;
    const struct config *cfg = node_config(c->ctl->a->setup.node);
    cJSON *obj = ctl_ok_answer();
    if (obj) {
        cJSON_AddStringToObject(obj, "version", HS_VERSION);
        ctl_add_bytes(obj, "name", (const uint8_t *)cfg->name,
                      strlen(cfg->name));
        ctl_add_vsn(obj, "protocol", WIRE_PROTO_MIN, WIRE_PROTO_MAX,
                    cfg->protocol_version);
        ctl_add_vsn(obj, "delegate", cfg->delegate_protocol_min,
                    cfg->delegate_protocol_max, cfg->delegate_protocol_version);
    }
    ctl_reply(c, obj);
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
        ctl_add_bytes(o, s->key, (const uint8_t *)s->text, strlen(s->text));
    else if (s->boolean)
        cJSON_AddBoolToObject(o, s->key, s->value != 0);
    else
        cJSON_AddNumberToObject(o, s->key, (double)s->value);
}

void ctl_cmd_stats(struct conn *c, const cJSON *req)
{
    (void)req;
    struct agent *a = c->ctl->a;
    cJSON *obj = ctl_ok_answer();
    if (obj) {
        stats_collect(a, metrics_samples, json_sample, obj);
        add_security(obj, a->setup.node);
    }
    ctl_reply(c, obj);
}
