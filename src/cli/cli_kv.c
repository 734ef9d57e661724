/* cli_kv.c: hearsay kv: put, get, delete, list and watch on the
 * cluster's key/value store, through the agent's control endpoint. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "base/text.h"
#include "cli/cli_int.h"

/* ===== kv ===== */

#define STDIN_MAX (64u << 20) /* `kv put KEY -` reads at most this */

/* A kv command failed: consul's "Error! ..." for what the agent refused,
 * our usual sentence when the agent could not be asked. */
static int kv_fail(const struct opts *o, int rc)
{
    if (rc == ASK_REFUSED)
        return cli_failf(o, "Error! %s", o->q.err + 7);
    return cli_fail(o, o->q.err);
}

/* The whole of stdin (NUL-terminated, so it can also be a C string), or
 * NULL with a message printed. */
static uint8_t *read_stdin(const struct opts *o, size_t *len)
{
    size_t n = 0, cap = 65536;
    uint8_t *buf = hs_malloc(cap + 1);
    while (buf) {
        if (n > STDIN_MAX) {
            cli_failf(o, "Error! The value on stdin is over %u MiB",
                      STDIN_MAX >> 20);
            hs_free(buf);
            return NULL;
        }
        if (n == cap) { /* the last step reads one byte past the limit */
            size_t more = HS_MIN(cap * 2, (size_t)STDIN_MAX + 1);
            uint8_t *nb = hs_realloc(buf, more + 1);
            if (nb == NULL)
                break;
            buf = nb;
            cap = more;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0 && ferror(stdin)) {
            cli_failf(o, "Error! Failed to read stdin: %s", cli_reason(errno));
            hs_free(buf);
            return NULL;
        }
        if (r == 0) {
            buf[n] = '\0';
            *len = n;
            return buf;
        }
    }
    hs_free(buf);
    cli_fail(o, "Error! Failed to read stdin: out of memory");
    return NULL;
}

/* Bytes cJSON writes for this text as a JSON string's contents. */
static size_t json_len(const uint8_t *p, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += p[i] == '"' || p[i] == '\\' || p[i] == '\b' || p[i] == '\f' ||
                       p[i] == '\n' || p[i] == '\r' || p[i] == '\t'
                   ? 2
               : p[i] < 0x20 ? 6
                             : 1;
    return len;
}

/* The value into a kv_put request: as text when it is text and no longer
 * that way (control characters take 6 bytes in JSON), else in base64. The
 * agent takes lines up to a base64 value of metadata_max_value. v[n] is
 * a NUL. */
static bool add_put_value(cJSON *req, const uint8_t *v, size_t n)
{
    if (text_utf8_valid(v, n) && json_len(v, n) <= text_base64_len(n))
        return cJSON_AddStringToObject(req, "value", (const char *)v);
    char *b = hs_malloc(text_base64_len(n) + 1);
    if (b == NULL)
        return false;
    text_base64_encode(v, n, b);
    bool ok = cJSON_AddStringToObject(req, "value_base64", b) != NULL;
    hs_free(b);
    return ok;
}

/* Ask one kv request; in JSON format print the answer as it came, laid
 * out (versions are 64-bit integers a double would round). */
static int kv_ask(struct opts *o, cJSON *req, cJSON **answer, bool print)
{
    struct link l = LINK_INIT;
    uint64_t deadline = cli_now_ms() + (uint64_t)o->q.timeout_ms;
    const char *raw = NULL;
    int rc = ask_open(&o->q, req, deadline, &l);
    if (rc == ASK_OK)
        rc = ask_answer(&o->q, &l, deadline, answer, &raw);
    if (rc == ASK_OK && print && o->json)
        print_json_text(raw, strlen(raw));
    link_close(&l);
    return rc;
}

static cJSON *kv_request(const char *cmd, const char *field, const char *key)
{
    cJSON *r = cli_request(cmd);
    if (r && !cJSON_AddStringToObject(r, field, key)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

static int kv_put(struct opts *o, char **args)
{
    const char *key = args[0];
    size_t len;
    uint8_t *in = NULL;
    const uint8_t *value = (const uint8_t *)args[1];
    if (!strcmp(args[1], "-")) {
        if ((in = read_stdin(o, &len)) == NULL)
            return 1;
        value = in;
        o->q.timeout_ms = SLOW_TIMEOUT_MS; /* up to 64 MiB to send */
    } else {
        len = strlen(args[1]);
    }
    cJSON *req = kv_request("kv_put", "key", key), *ans;
    if (req && !add_put_value(req, value, len)) {
        cJSON_Delete(req);
        req = NULL;
    }
    hs_free(in);
    int rc = kv_ask(o, req, &ans, true);
    if (rc)
        return kv_fail(o, rc);
    if (!o->json) {
        printf("Success! Data written to: ");
        cli_put_safe(stdout, key);
        putchar('\n');
    }
    cJSON_Delete(ans);
    return 0;
}

static int kv_get(struct opts *o, char **args)
{
    cJSON *ans;
    int rc = kv_ask(o, kv_request("kv_get", "key", args[0]), &ans, true);
    if (rc == ASK_REFUSED && !strncmp(o->q.err + 7, "no such key: ", 13)) {
        if (o->json)
            return cli_failf(o, "No key exists at: %s", args[0]);
        fprintf(stderr, "Error! No key exists at: ");
        cli_put_safe(stderr, args[0]);
        fputc('\n', stderr);
        return 1;
    }
    if (rc)
        return kv_fail(o, rc);
    if (o->json) {
        cJSON_Delete(ans);
        return 0;
    }
    /* consul prints the value's bytes as they are; a text value gets a
     * newline to end the line, but binary bytes stay exact (they go to
     * a file, not to a terminal). */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, "value");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(ans, "value_base64");
    const uint8_t *p = NULL;
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (cJSON_IsString(v)) {
        p = (const uint8_t *)v->valuestring;
        n = strlen(v->valuestring);
    } else if (cJSON_IsString(b)) {
        size_t bn = strlen(b->valuestring);
        if ((bytes = hs_malloc(text_base64_max(bn))) == NULL ||
            text_base64_decode(b->valuestring, bn, bytes, &n)) {
            hs_free(bytes);
            cJSON_Delete(ans);
            return cli_fail(o, "Error! The agent's value is not base64");
        }
        p = bytes;
    }
    if (n)
        fwrite(p, 1, n, stdout);
    if (n && p[n - 1] != '\n' && bytes == NULL)
        putchar('\n');
    hs_free(bytes);
    cJSON_Delete(ans);
    return 0;
}

static int kv_delete(struct opts *o, char **args)
{
    cJSON *ans;
    int rc = kv_ask(o, kv_request("kv_delete", "key", args[0]), &ans, true);
    if (rc)
        return kv_fail(o, rc);
    if (!o->json) {
        printf("Success! Deleted key: ");
        cli_put_safe(stdout, args[0]);
        putchar('\n');
    }
    cJSON_Delete(ans);
    return 0;
}

/* kv list in JSON: the agent's answer is {"ok":true,"entries":[...]},
 * possibly gigabytes of values: it goes to stdout as it arrives, laid
 * out, as {"entries":[...]}, never whole in memory. */
static int kv_list_json(struct opts *o, cJSON *req)
{
    static const char head[] = "{\"ok\":true,";
    const size_t hn = sizeof head - 1;
    struct link l = LINK_INIT;
    int rc = ask_open(&o->q, req, cli_now_ms() + (uint64_t)o->q.timeout_ms, &l);
    while (rc == ASK_OK && l.len < hn && !l.eof &&
           !(l.len && memchr(l.buf, '\n', l.len)))
        rc = link_fill(&o->q, &l, cli_now_ms() + (uint64_t)o->q.timeout_ms);
    if (rc == ASK_OK && (l.len < hn || memcmp(l.buf, head, hn))) {
        cJSON *ans; /* an error answer, short */
        rc = ask_answer(&o->q, &l, cli_now_ms() + (uint64_t)o->q.timeout_ms,
                        &ans, NULL);
        cJSON_Delete(ans);
        if (rc == ASK_OK)
            rc = ask_fail(&o->q, "the agent's answer is not a list");
    } else if (rc == ASK_OK) {
        size_t skip = hn;
        struct jfmt j = JFMT_INIT;
        jfmt_feed(&j, stdout, "{", 1);
        for (;;) {
            char *nl = memchr(l.buf + skip, '\n', l.len - skip);
            size_t upto = nl ? (size_t)(nl - l.buf) : l.len;
            jfmt_feed(&j, stdout, l.buf + skip, upto - skip);
            if (nl) {
                putchar('\n');
                break;
            }
            if (l.eof) {
                putchar('\n');
                rc = ask_fail(&o->q, "the agent closed the connection in "
                                     "the middle of the list");
                break;
            }
            l.len = skip = 0;
            /* no deadline for the whole list: one for each piece */
            rc = link_fill(&o->q, &l, cli_now_ms() + (uint64_t)o->q.timeout_ms);
            if (rc)
                break;
        }
    }
    link_close(&l);
    return rc ? kv_fail(o, rc) : 0;
}

static int kv_list(struct opts *o, char **args)
{
    cJSON *req = kv_request("kv_list", "prefix", args[0] ? args[0] : "");
    if (o->json)
        return kv_list_json(o, req);
    if (req) /* keys only: no need to carry the values here */
        cJSON_AddFalseToObject(req, "values");
    cJSON *ans;
    int rc = kv_ask(o, req, &ans, false);
    if (rc)
        return kv_fail(o, rc);
    const cJSON *e;
    cJSON_ArrayForEach (e, cJSON_GetObjectItemCaseSensitive(ans, "entries")) {
        cli_put_safe(stdout, cli_str_field(e, "key"));
        putchar('\n');
    }
    cJSON_Delete(ans);
    return 0;
}

/* A value on one line: newlines as \n (and other control bytes
 * escaped, so that one change stays one line). */
static void put_value(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\r')
            fputs("\\r", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
}

static void print_event(const cJSON *ev)
{
    const char *kind = cli_str_field(ev, "event");
    printf("%s ", kind);
    cli_put_safe(stdout, cli_str_field(ev, "key"));
    if (!strcmp(kind, "put")) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "value");
        putchar(' ');
        if (cJSON_IsString(v)) {
            put_value(v->valuestring);
        } else { /* binary: its size only */
            const char *b = cli_str_field(ev, "value_base64");
            size_t n = strlen(b);
            while (n && b[n - 1] == '=')
                n--;
            printf("<%zu bytes>", n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0));
        }
    }
    putchar('\n');
}

static int kv_watch(struct opts *o, char **args)
{
    int rc = ask_stream(
        &o->q, kv_request("kv_watch", "prefix", args[0] ? args[0] : ""),
        o->json, print_event);
    return rc == ASK_OK ? 0 : kv_fail(o, rc);
}

static const struct {
    const char *name;
    int min, max; /* positional arguments */
    const char *need;
    int (*run)(struct opts *o, char **args);
} kv_subs[] = {
    {"put", 2, 2, "give a KEY and a VALUE (- reads it from stdin)", kv_put},
    {"get", 1, 1, "give a KEY", kv_get},
    {"delete", 1, 1, "give a KEY", kv_delete},
    {"list", 0, 1, "give at most one PREFIX", kv_list},
    {"watch", 0, 1, "give at most one PREFIX", kv_watch},
};

int run_kv(struct opts *o, int argc, char **argv)
{
    if (argc == 0)
        return kv_usage_error(o, NULL, "give a subcommand");
    for (size_t i = 0; i < HS_ARRAY_LEN(kv_subs); i++) {
        if (strcmp(kv_subs[i].name, argv[0]))
            continue;
        int n = argc - 1;
        if (n < kv_subs[i].min || n > kv_subs[i].max)
            return kv_usage_error(o, argv[0], kv_subs[i].need);
        char *args[3] = {NULL, NULL, NULL};
        for (int k = 0; k < n; k++)
            args[k] = argv[1 + k];
        return kv_subs[i].run(o, args);
    }
    if (o->json)
        return cli_failf(o, "hearsay kv: unknown subcommand \"%s\"", argv[0]);
    fprintf(stderr, "hearsay kv: unknown subcommand \"%s\"\n\n", argv[0]);
    return kv_usage_error(o, NULL, NULL);
}
