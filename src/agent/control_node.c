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
    cJSON_AddStringToObject(o, "status", member_state_name(m->state));
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
    ctl_add_vsn(o, "protocol", m->vsn[0], m->vsn[1], m->vsn[2]);
    ctl_add_vsn(o, "delegate", m->vsn[3], m->vsn[4], m->vsn[5]);
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
