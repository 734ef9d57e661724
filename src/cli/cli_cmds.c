/* cli_cmds.c: the CLI's commands on the agent and its cluster: members,
 * join, leave, reload, pause, resume, stats, version, keygen and keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/rand.h>

#include "cli/cli_int.h"
#include "codec/keyring.h"
#include "codec/wire.h"
#include "core/node.h"

/* ===== Commands ===== */

static int fail_with(const struct opts *o)
{
    return cli_fail(o, o->q.err);
}

int run_members(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *req = cli_request("members"), *ans;
    if (req && o->status)
        cJSON_AddStringToObject(req, "status", o->status);
    if (ask(&o->q, req, &ans))
        return fail_with(o);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(ans, "members");
    if (!strcmp(o->format, "json")) {
        /* {"members": [...]}, the document serf prints */
        cJSON *doc = cJSON_CreateObject();
        cJSON *copy = cJSON_Duplicate(arr, true);
        if (doc && copy && cJSON_AddItemToObject(doc, "members", copy))
            print_json(doc);
        else
            cJSON_Delete(copy);
        cJSON_Delete(doc);
    } else
        print_members_text(arr, o->detailed);
    cJSON_Delete(ans);
    return 0;
}

int run_join(struct opts *o, int argc, char **argv)
{
    cJSON *req = cli_request("join"), *ans;
    cJSON *addrs = req ? cJSON_AddArrayToObject(req, "addrs") : NULL;
    for (int i = 0; addrs && i < argc; i++)
        cJSON_AddItemToArray(addrs, cJSON_CreateString(argv[i]));
    o->q.timeout_ms = SLOW_TIMEOUT_MS;
    int rc = ask(&o->q, req, &ans);
    if (rc == ASK_CONNECT)
        return fail_with(o);
    if (rc) { /* "Error: why" becomes serf's wording */
        fprintf(stderr, "Error joining the cluster: %s\n", o->q.err + 7);
        return 1;
    }
    printf("Successfully joined cluster by contacting %.0f nodes.\n",
           cli_num_field(ans, "joined"));
    cJSON_Delete(ans);
    return 0;
}

static int run_simple(struct opts *o, const char *cmd, const char *done)
{
    cJSON *ans;
    if (ask(&o->q, cli_request(cmd), &ans))
        return fail_with(o);
    cJSON_Delete(ans);
    printf("%s\n", done);
    return 0;
}

int run_leave(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    o->q.timeout_ms = SLOW_TIMEOUT_MS;
    return run_simple(o, "leave", "Graceful leave complete");
}

int run_reload(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *ans;
    if (ask(&o->q, cli_request("reload"), &ans))
        return fail_with(o);
    int n = (int)cli_num_field(ans, "scripts");
    printf("Scripts reloaded: %d script%s\n", n, n == 1 ? "" : "s");
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(ans, "security");
    if (sec) {
        printf("Security: encrypted=%s keys=%.0f gossip_verify_incoming=%s "
               "gossip_verify_outgoing=%s label=\"",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sec, "encrypted"))
                   ? "true"
                   : "false",
               cli_num_field(sec, "keys"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                   sec, "gossip_verify_incoming"))
                   ? "true"
                   : "false",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                   sec, "gossip_verify_outgoing"))
                   ? "true"
                   : "false");
        cli_put_safe(stdout, cli_str_field(sec, "label"));
        printf("\"\n");
    }
    cJSON_Delete(ans);
    return 0;
}

int run_pause(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return run_simple(o, "pause", "Heartbeat paused");
}

int run_resume(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return run_simple(o, "resume", "Heartbeat resumed");
}

int run_stats(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *ans;
    if (ask(&o->q, cli_request("stats"), &ans))
        return fail_with(o);
    cJSON_DeleteItemFromObjectCaseSensitive(ans, "ok");
    if (!strcmp(o->format, "json"))
        print_json(ans);
    else
        print_stats_text(ans);
    cJSON_Delete(ans);
    return 0;
}

int run_version(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct config def;
    config_defaults(&def, "lan");
    printf("hearsay v%s\n", HS_VERSION);
    printf("memberlist protocol %d-%d (speaks %d), delegate protocol %d-%d\n",
           WIRE_PROTO_MIN, WIRE_PROTO_MAX, def.protocol_version,
           def.delegate_protocol_min, def.delegate_protocol_max);
    config_free(&def);
    /* The agent is optional here: say what it runs when it answers. */
    cJSON *ans;
    if (ask(&o->q, cli_request("version"), &ans) == ASK_OK) {
        printf("agent: ");
        cli_put_safe(stdout, cli_str_field(ans, "name"));
        printf(" v%s\n", cli_str_field(ans, "version"));
        cJSON_Delete(ans);
    }
    return 0;
}

/* ===== Keys ===== */

/* hearsay keygen: 32 random bytes in base64, as serf keygen. */
int run_keygen(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint8_t key[32];
    char text[45];
    if (RAND_bytes(key, sizeof key) != 1)
        return cli_fail(o, "Error reading random data");
    keyring_format(key, sizeof key, text);
    printf("%s\n", text);
    keyring_wipe(key, sizeof key);
    keyring_wipe(text, sizeof text);
    return 0;
}

static int by_count(const void *x, const void *y)
{
    const cJSON *a = *(const cJSON *const *)x, *b = *(const cJSON *const *)y;
    double d = cli_num_field(b, "primary") - cli_num_field(a, "primary");
    if (d == 0)
        d = cli_num_field(b, "installed") - cli_num_field(a, "installed");
    if (d == 0)
        return strcmp(cli_str_field(a, "key"), cli_str_field(b, "key"));
    return d < 0 ? -1 : 1;
}

/* serf keys' list: "KEY  [n/total]", here with where it is the primary;
 * most used first. */
static void print_keys(const cJSON *ans)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(ans, "keys");
    size_t n = (size_t)cJSON_GetArraySize(keys), i = 0;
    const cJSON **v = hs_calloc(n ? n : 1, sizeof *v), *k;
    double total = cli_num_field(ans, "nodes");
    if (v == NULL)
        return;
    cJSON_ArrayForEach (k, keys)
        v[i++] = k;
    qsort(v, n, sizeof *v, by_count);
    for (i = 0; i < n; i++) {
        printf("%s  [%.0f/%.0f]", cli_str_field(v[i], "key"),
               cli_num_field(v[i], "installed"), total);
        if (cli_num_field(v[i], "primary") > 0)
            printf("  primary [%.0f/%.0f]", cli_num_field(v[i], "primary"),
                   total);
        putchar('\n');
    }
    hs_free(v);
}

/* serf's "failed: | node | message" lines, aligned. */
static void print_failures(const cJSON *ans)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(ans, "failures"), *x;
    size_t w = 0;
    cJSON_ArrayForEach (x, f)
        w = HS_MAX(w, cli_width(cli_str_field(x, "name")));
    cJSON_ArrayForEach (x, f) {
        const char *name = cli_str_field(x, "name");
        fputs("failed:  ", stderr);
        cli_put_safe(stderr, name);
        fprintf(stderr, "%*s  ", (int)(w - cli_width(name)), "");
        cli_put_safe(stderr, cli_str_field(x, "message"));
        fputc('\n', stderr);
    }
}

int run_keys(struct opts *o, int argc, char **argv)
{
    static const struct {
        const char *op, *start, *done, *fail;
    } say[] = {
        {"list", "Asking all members for installed keys...",
         "Keys gathered, listing cluster keys...",
         "Failed to gather member keys"},
        {"install", "Installing key on all members...",
         "Successfully installed key!", "Error installing key"},
        {"use", "Changing primary key on all members...",
         "Successfully changed primary key!", "Error changing primary key"},
        {"remove", "Removing key on all members...",
         "Successfully removed key!", "Error removing key"},
    };
    (void)argc;
    (void)argv;
    int op = o->key_op;
    bool json = !strcmp(o->format, "json");
    uint8_t raw[KEYRING_KEY_MAX];
    size_t rawlen;
    if (o->key && keyring_parse(o->key, raw, &rawlen))
        return cli_failf(o,
                         "%s: the key must be base64 of 16, 24 or 32 bytes "
                         "(hearsay keygen makes one)",
                         say[op].fail);
    keyring_wipe(raw, sizeof raw);
    cJSON *req = cli_request("keys");
    if (req) {
        cJSON_AddStringToObject(req, "op", say[op].op);
        if (o->key)
            cJSON_AddStringToObject(req, "key", o->key);
    }
    if (!json)
        printf("==> %s\n", say[op].start);
    fflush(stdout);
    /* The agent waits up to tcp_timeout for the slowest member. */
    o->q.timeout_ms = SLOW_TIMEOUT_MS;
    struct link l = LINK_INIT;
    uint64_t deadline = cli_now_ms() + (uint64_t)o->q.timeout_ms;
    int rc = ask_open(&o->q, req, deadline, &l);
    char *line = NULL;
    size_t n = 0;
    if (rc == ASK_OK)
        rc = link_line(&o->q, &l, deadline, &line, &n);
    if (rc == ASK_OK && line == NULL)
        rc = ask_fail(&o->q, "the agent closed the connection without "
                             "answering");
    cJSON *ans = rc == ASK_OK ? cJSON_ParseWithLength(line, n) : NULL;
    if (rc == ASK_OK && !cJSON_IsObject(ans))
        rc = ask_fail(&o->q, "the agent's answer is not a JSON object");
    link_close(&l);
    if (rc) {
        cJSON_Delete(ans);
        return fail_with(o);
    }
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok"));
    if (json) {
        print_json(ans);
    } else if (ok) {
        printf("==> %s\n", say[op].done);
        if (op == NODE_KEYS_LIST) {
            putchar('\n');
            print_keys(ans);
        }
    } else {
        print_failures(ans);
        if (cJSON_GetObjectItemCaseSensitive(ans, "failures"))
            fputc('\n', stderr);
        fprintf(stderr, "%s: ", say[op].fail);
        cli_put_safe(stderr, cli_str_field(ans, "error"));
        fputc('\n', stderr);
    }
    cJSON_Delete(ans);
    return ok ? 0 : 1;
}
