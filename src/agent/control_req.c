/* control_req.c: a request line of the control endpoint, from its bytes
 * to its command: the JSON checks, the token, the slot, and the command
 * table that dispatches it; and the JSON helpers the answers share. */
#include <string.h>

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/control_int.h"
#include "base/text.h"
#include "codec/keyring.h"

/* ===== JSON helpers ===== */

/* Bytes of the network as text for JSON: cJSON copies bytes as they
 * are, so anything not valid UTF-8 (or a NUL) becomes U+FFFD first to
 * keep every answer valid JSON. */
char *ctl_utf8(const uint8_t *p, size_t n)
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
    return s;
}

cJSON *ctl_add_bytes(cJSON *obj, const char *key, const uint8_t *p, size_t n)
{
    char *s = ctl_utf8(p, n);
    if (s == NULL)
        return NULL;
    cJSON *item = cJSON_AddStringToObject(obj, key, s);
    hs_free(s);
    return item;
}

void ctl_add_vsn(cJSON *obj, const char *key, int min, int max, int cur)
{
    cJSON *v = cJSON_AddObjectToObject(obj, key);
    if (v == NULL)
        return;
    cJSON_AddNumberToObject(v, "min", min);
    cJSON_AddNumberToObject(v, "max", max);
    cJSON_AddNumberToObject(v, "version", cur);
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

/* ===== The commands =====
 * Every command needs the token (when one is set), a slot and a running
 * node. A request line may be longer than CONTROL_LINE_MAX only for a
 * command that says so: a kv_put, whose value bounds it (line_max). The
 * order is that of the list in the answer to an unknown cmd. */
static const struct command {
    const char *name;
    ctl_cmd_fn *run;
    bool long_line;
} commands[] = {
    {"members", ctl_cmd_members, false},
    {"join", ctl_cmd_join, false},
    {"leave", ctl_cmd_leave, false},
    {"pause", ctl_cmd_pause, false},
    {"resume", ctl_cmd_resume, false},
    {"reload", ctl_cmd_reload, false},
    {"version", ctl_cmd_version, false},
    {"stats", ctl_cmd_stats, false},
    {"keys", ctl_cmd_keys, false},
    {"force_leave", ctl_cmd_force_leave, false},
    {"tags", ctl_cmd_tags, false},
    {"monitor", ctl_cmd_monitor, false},
    {"kv_put", ctl_cmd_kv_put, true},
    {"kv_get", ctl_cmd_kv_get, false},
    {"kv_delete", ctl_cmd_kv_delete, false},
    {"kv_list", ctl_cmd_kv_list, false},
    {"kv_watch", ctl_cmd_kv_watch, false},
};

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < HS_ARRAY_LEN(commands); i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

/* ===== A request ===== */

void ctl_handle_line(struct conn *c, const char *line, size_t n)
{
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (req == NULL) {
        ctl_reply_error(c, "invalid JSON: expected one object per line");
        return;
    }
    while (end < line + n && (*end == ' ' || *end == '\t' || *end == '\r'))
        end++;
    if (end != line + n) {
        ctl_reply_error(c, "invalid JSON: trailing data after the object");
    } else if (!cJSON_IsObject(req)) {
        ctl_reply_error(c, "a request must be a JSON object such as "
                           "{\"cmd\":\"members\"}");
    } else {
        const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
        const char *name = cJSON_IsString(cmd) ? cmd->valuestring : NULL;
        const struct command *command = name ? command_find(name) : NULL;
        /* By name, so that an unknown kv_ command hears about keys too. */
        bool kv = name && !strncmp(name, "kv_", 3);
        /* cJSON ends a string at a NUL without a word: the token
         * "secret\u0000x" would read as "secret", the key "a\u0000b" as
         * "a". So no string of a request may hold one. */
        if (memchr(line, '\0', n) || has_nul_escape(line, n))
            ctl_reply_error(c, kv ? "keys and values cannot hold \\u0000: send "
                                    "binary values as value_base64"
                                  : "a request cannot hold \\u0000 or a NUL "
                                    "byte");
        else if (!token_ok(c->ctl, req))
            ctl_reply_error(c,
                            "permission denied: this agent requires a "
                            "control token (hearsay --token, or $%s)",
                            CONTROL_TOKEN_ENV);
        else if (!ctl_admit(c))
            ; /* answered, and closing */
        else if (name == NULL)
            ctl_reply_error(c, "missing \"cmd\"");
        else if (c->ctl->a->setup.node == NULL)
            ctl_reply_error(c, "the agent is shutting down");
        else if (n > CONTROL_LINE_MAX && !(command && command->long_line))
            ctl_reply_error(c, "request line longer than %d bytes",
                            CONTROL_LINE_MAX);
        else if (command)
            command->run(c, req);
        else
            ctl_reply_error(c,
                            "unknown cmd \"%.64s\": use members, join, "
                            "leave, pause, resume, reload, version, stats, "
                            "keys, force_leave, tags, monitor, kv_put, "
                            "kv_get, kv_delete, kv_list or kv_watch",
                            name);
    }
    cJSON_Delete(req);
}
