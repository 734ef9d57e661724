/* cli_print.c: the CLI's output: terminal-safe text, the members
 * table, `hearsay stats` as text, JSON documents in serf's layout, and
 * errors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli/cli_int.h"

/* ===== Output helpers ===== */

/* Terminal-safe text: control bytes as \xNN. */
void cli_put_safe(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
}

/* Characters shown, for column alignment (UTF-8 continuation bytes take
 * no column; escaped control bytes take four). */
size_t cli_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            w += 4;
        else if ((ch & 0xc0) != 0x80)
            w++;
    }
    return w;
}

const char *cli_str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double cli_num_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void vsn_text(const cJSON *m, const char *key, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    snprintf(out, n, "%.0f/%.0f/%.0f", cli_num_field(v, "min"),
             cli_num_field(v, "max"), cli_num_field(v, "version"));
}

#define COLS_MAX 7

/* One row of the members table; cells are owned strings. */
struct row {
    char *cell[COLS_MAX];
};

static char *dup_str(const char *s)
{
    return hs_strndup(s, strlen(s));
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static char *
dup_fmt(const char *fmt, ...)
{
    char tmp[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return dup_str(tmp);
}

static void member_row(const cJSON *m, bool detailed, struct row *r)
{
    r->cell[0] = dup_str(cli_str_field(m, "name"));
    r->cell[1] = dup_str(cli_str_field(m, "addr"));
    r->cell[2] = dup_str(cli_str_field(m, "status"));
    if (!detailed)
        return;
    char p[64], d[64];
    vsn_text(m, "protocol", p, sizeof p);
    vsn_text(m, "delegate", d, sizeof d);
    r->cell[3] = dup_fmt("%.0f", cli_num_field(m, "incarnation"));
    r->cell[4] = dup_str(p);
    r->cell[5] = dup_str(d);
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(m, "private_data");
    if (cJSON_IsString(pd))
        r->cell[6] = dup_str(pd->valuestring);
    else /* binary private data: show its bytes */
        r->cell[6] = dup_fmt("0x%s", cli_str_field(m, "private_data_hex"));
}

/* serf's members output: aligned columns joined by two spaces, no
 * header. */
void print_members_text(const cJSON *arr, bool detailed)
{
    size_t n = (size_t)cJSON_GetArraySize(arr);
    size_t ncols = detailed ? 7 : 3;
    struct row *rows = hs_calloc(n ? n : 1, sizeof *rows);
    size_t w[COLS_MAX] = {0};
    if (rows == NULL) {
        fprintf(stderr, "Error: out of memory\n");
        return;
    }
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach (m, arr) {
        member_row(m, detailed, &rows[i]);
        for (size_t c = 0; c < ncols; c++)
            if (rows[i].cell[c])
                w[c] = HS_MAX(w[c], cli_width(rows[i].cell[c]));
        i++;
    }
    for (i = 0; i < n; i++) {
        size_t last = ncols; /* no padding after the last non-empty cell */
        while (last > 1 && !(rows[i].cell[last - 1] && *rows[i].cell[last - 1]))
            last--;
        for (size_t c = 0; c < last; c++) {
            const char *s = rows[i].cell[c] ? rows[i].cell[c] : "";
            cli_put_safe(stdout, s);
            if (c + 1 < last)
                printf("%*s", (int)(w[c] - cli_width(s) + 2), "");
        }
        putchar('\n');
        for (size_t c = 0; c < COLS_MAX; c++)
            hs_free(rows[i].cell[c]);
    }
    hs_free(rows);
}

/* A number as text: integers in full, anything else as %g. */
static void number_text(double v, char *out, size_t n)
{
    if (v >= -9e15 && v <= 9e15 && v == (double)(long long)v)
        snprintf(out, n, "%lld", (long long)v);
    else
        snprintf(out, n, "%g", v);
}

static void print_scalar(const cJSON *v)
{
    char num[64];
    if (cJSON_IsNumber(v)) {
        number_text(v->valuedouble, num, sizeof num);
        fputs(num, stdout);
    } else if (cJSON_IsString(v))
        cli_put_safe(stdout, v->valuestring);
    else if (cJSON_IsBool(v))
        fputs(cJSON_IsTrue(v) ? "true" : "false", stdout);
    else
        fputs("null", stdout);
}

/* ===== hearsay stats as text =====
 * serf info's layout: "name:" sections of tab-indented "key = value"
 * lines, with the keys of a section aligned. The agent's top-level
 * numbers are grouped into the sections below, its objects are sections
 * of their own, and the four objects of messages by type make one table.
 * What this CLI does not know of (a newer agent's) is still shown. */

static const char *const sect_node[] = {"health", "paused", "broadcast_queue",
                                        NULL};
static const char *const sect_probes[] = {"probes",
                                          "probes_failed",
                                          "indirect_probes",
                                          "tcp_pings",
                                          "tcp_ping_rescues",
                                          "nacks_received",
                                          "suspicions",
                                          "refutations",
                                          "deaths",
                                          "conflicts",
                                          NULL};
static const char *const sect_gossip[] = {
    "packets_in",        "packets_out",
    "bytes_in",          "bytes_out",
    "send_errors",       "push_pulls_out",
    "push_pulls_in",     "push_pull_errors",
    "streams_in",        "streams_out",
    "broadcasts_queued", "user_messages_in",
    "user_messages_out", "members_refused",
    "rumors_duplicate",  NULL};
/* The sections in order: top-level keys, or (keys NULL) the object of
 * that name, or (name "messages") the table of messages by type. */
static const struct {
    const char *name;
    const char *const *keys;
} stats_layout[] = {
    {"node", sect_node},     {"members", NULL},  {"probes", sect_probes},
    {"gossip", sect_gossip}, {"messages", NULL}, {"dropped", NULL},
    {"hooks", NULL},         {"metadata", NULL}, {"security", NULL},
    {"transport", NULL},     {"metrics", NULL},  {"loop", NULL}};
static const char *const msg_objs[] = {"msgs_in", "msgs_out", "msg_bytes_in",
                                       "msg_bytes_out"};
static const char *const msg_heads[] = {"in", "out", "bytes in", "bytes out"};

#define STATS_ITEMS_MAX 256

/* One section of "key = value" lines, keys aligned. */
static void print_section(const char *name, const cJSON *const *items, size_t n)
{
    size_t w = 0;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        w = HS_MAX(w, cli_width(items[i]->string));
    printf("%s:\n", name);
    for (size_t i = 0; i < n; i++) {
        putchar('\t');
        cli_put_safe(stdout, items[i]->string);
        printf("%*s = ", (int)(w - cli_width(items[i]->string)), "");
        print_scalar(items[i]);
        putchar('\n');
    }
}

static void print_object(const cJSON *obj)
{
    const cJSON *items[STATS_ITEMS_MAX], *k;
    size_t n = 0;
    cJSON_ArrayForEach (k, obj) {
        if (n < STATS_ITEMS_MAX)
            items[n++] = k;
    }
    print_section(obj->string, items, n);
}

/* Messages by type: one row a type, the counts and bytes in and out. */
static void print_messages(const cJSON *ans)
{
    const cJSON *cols[4], *rows = NULL, *t;
    char num[64];
    size_t w[5] = {4, 0, 0, 0, 0}; /* "type", then each column */
    for (int c = 0; c < 4; c++) {
        cols[c] = cJSON_GetObjectItemCaseSensitive(ans, msg_objs[c]);
        if (!cJSON_IsObject(cols[c]))
            cols[c] = NULL;
        if (rows == NULL)
            rows = cols[c];
        w[c + 1] = strlen(msg_heads[c]);
    }
    if (rows == NULL)
        return;
    cJSON_ArrayForEach (t, rows) {
        w[0] = HS_MAX(w[0], cli_width(t->string));
        for (int c = 0; c < 4; c++) {
            const cJSON *v =
                cols[c] ? cJSON_GetObjectItemCaseSensitive(cols[c], t->string)
                        : NULL;
            number_text(cJSON_IsNumber(v) ? v->valuedouble : 0, num,
                        sizeof num);
            w[c + 1] = HS_MAX(w[c + 1], strlen(num));
        }
    }
    printf("messages:\n\t%-*s", (int)w[0], "type");
    for (int c = 0; c < 4; c++)
        printf("  %*s", (int)w[c + 1], msg_heads[c]);
    putchar('\n');
    cJSON_ArrayForEach (t, rows) {
        putchar('\t');
        cli_put_safe(stdout, t->string);
        printf("%*s", (int)(w[0] - cli_width(t->string)), "");
        for (int c = 0; c < 4; c++) {
            const cJSON *v =
                cols[c] ? cJSON_GetObjectItemCaseSensitive(cols[c], t->string)
                        : NULL;
            if (cJSON_IsNumber(v))
                number_text(v->valuedouble, num, sizeof num);
            else
                snprintf(num, sizeof num, "-");
            printf("  %*s", (int)w[c + 1], num);
        }
        putchar('\n');
    }
}

static bool is_msg_obj(const char *key)
{
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(key, msg_objs[i]))
            return true;
    return false;
}

/* Is a top-level key placed by stats_layout? */
static bool laid_out(const cJSON *v)
{
    if (cJSON_IsObject(v))
        for (size_t s = 0; s < sizeof stats_layout / sizeof *stats_layout; s++)
            if (stats_layout[s].keys == NULL &&
                !strcmp(stats_layout[s].name, v->string))
                return true;
    for (size_t s = 0; s < sizeof stats_layout / sizeof *stats_layout; s++)
        for (const char *const *k = stats_layout[s].keys; k && *k; k++)
            if (!strcmp(*k, v->string))
                return true;
    return is_msg_obj(v->string);
}

void print_stats_text(const cJSON *ans)
{
    const cJSON *items[STATS_ITEMS_MAX], *v;
    size_t n;
    for (size_t s = 0; s < sizeof stats_layout / sizeof *stats_layout; s++) {
        const char *name = stats_layout[s].name;
        if (!strcmp(name, "messages")) {
            print_messages(ans);
            continue;
        }
        if (stats_layout[s].keys == NULL) {
            v = cJSON_GetObjectItemCaseSensitive(ans, name);
            if (cJSON_IsObject(v))
                print_object(v);
            continue;
        }
        n = 0;
        for (const char *const *k = stats_layout[s].keys; *k; k++) {
            v = cJSON_GetObjectItemCaseSensitive(ans, *k);
            if (v && !cJSON_IsObject(v))
                items[n++] = v;
        }
        print_section(name, items, n);
    }
    /* What a newer agent adds: its objects, then its other numbers. */
    cJSON_ArrayForEach (v, ans) {
        if (cJSON_IsObject(v) && !laid_out(v))
            print_object(v);
    }
    n = 0;
    cJSON_ArrayForEach (v, ans) {
        if (!cJSON_IsObject(v) && !laid_out(v) && strcmp(v->string, "ok") &&
            n < STATS_ITEMS_MAX)
            items[n++] = v;
    }
    print_section("other", items, n);
}

/* ===== JSON documents ===== */

static void newline(FILE *f, int depth)
{
    fputc('\n', f);
    for (int i = 0; i < depth; i++)
        fputs("  ", f);
}

void jfmt_feed(struct jfmt *j, FILE *f, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (j->in_str) {
            fputc(ch, f);
            if (j->esc)
                j->esc = false;
            else if (ch == '\\')
                j->esc = true;
            else if (ch == '"')
                j->in_str = false;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
            continue;
        if (j->opened) {
            j->opened = false;
            if (ch == '}' || ch == ']') { /* {} and [] */
                j->depth--;
                fputc(ch, f);
                continue;
            }
            newline(f, j->depth);
        }
        switch (ch) {
        case '{':
        case '[':
            fputc(ch, f);
            j->depth++;
            j->opened = true;
            break;
        case '}':
        case ']':
            j->depth--;
            newline(f, j->depth);
            fputc(ch, f);
            break;
        case ',':
            fputc(ch, f);
            newline(f, j->depth);
            break;
        case ':':
            fputs(": ", f);
            break;
        case '"':
            j->in_str = true;
            fputc(ch, f);
            break;
        default:
            fputc(ch, f);
        }
    }
}

static void json_text_to(FILE *f, const char *p, size_t n)
{
    struct jfmt j = JFMT_INIT;
    jfmt_feed(&j, f, p, n);
    fputc('\n', f);
}

void print_json_text(const char *p, size_t n)
{
    json_text_to(stdout, p, n);
}

void print_json(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        fprintf(stderr, "Error: out of memory\n");
        return;
    }
    print_json_text(s, strlen(s));
    cJSON_free(s);
}

int cli_fail(const struct opts *o, const char *msg)
{
    if (!o->json) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    if (!strncmp(msg, "Error: ", 7) || !strncmp(msg, "Error! ", 7))
        msg += 7;
    cJSON *doc = cJSON_CreateObject();
    char *s = doc && cJSON_AddStringToObject(doc, "error", msg)
                  ? cJSON_PrintUnformatted(doc)
                  : NULL;
    if (s)
        json_text_to(stderr, s, strlen(s));
    else
        fprintf(stderr, "%s\n", msg);
    cJSON_free(s);
    cJSON_Delete(doc);
    return 1;
}

int cli_failf(const struct opts *o, const char *fmt, ...)
{
    char msg[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cli_fail(o, msg);
}
