/* cli.c: the client side of `hearsay`: one request to the agent's control
 * endpoint per command, printed the way a serf user expects.
 *
 * A command is a one-shot process, so plain blocking-style sockets do:
 * non-blocking connect, send and receive under poll() with one deadline
 * for the whole exchange, so that a hung agent cannot hang the CLI. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/rand.h>

#include "base/addr.h"
#include "core/config.h"
#include "agent/control.h"
#include "codec/keyring.h"
#include "core/node.h"
#include "base/text.h"
#include "codec/wire.h"

#define TIMEOUT_MS 10000        /* connect plus answer, most commands */
#define SLOW_TIMEOUT_MS 30000   /* leave: up to leave_timeout, and join */
#define ANSWER_MAX (256u << 20) /* a members list of a huge cluster */

/* ===== Talking to the agent ===== */

/* ASK_REFUSED: the agent answered {"ok":false}. */
enum { ASK_OK, ASK_CONNECT, ASK_FAILED, ASK_REFUSED };

struct ask {
    const char *control; /* the agent's address */
    const char *token;   /* the control token, or NULL */
    int timeout_ms;
    char err[512];       /* the sentence for ASK_CONNECT / ASK_FAILED */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until the deadline: 1 ready, 0 timed out,
 * -1 error (errno set). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, (int)HS_MIN(deadline - now, (uint64_t)60000));
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* strerror's sentence starting in lower case, as Go prints them. */
static const char *reason(int e)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s", strerror(e));
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

static int connect_fail(struct ask *q, const char *why)
{
    snprintf(q->err, sizeof q->err,
             "Error connecting to hearsay agent at %s: %s", q->control, why);
    return ASK_CONNECT;
}

static int dial(struct ask *q, uint64_t deadline, int *out)
{
    char host[CONFIG_STR_MAX], port[8];
    uint16_t p;
    if (addr_split(q->control, host, sizeof host, &p, 7374))
        return connect_fail(q, "not a host:port address");
    snprintf(port, sizeof port, "%u", (unsigned)p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc)
        return connect_fail(q, gai_strerror(rc));
    int e = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            *out = fd;
            freeaddrinfo(res);
            return ASK_OK;
        }
        e = errno;
        if (e == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            socklen_t len = sizeof e;
            if (w == 0)
                e = ETIMEDOUT;
            else if (w < 0)
                e = errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
                e = errno;
            if (e == 0) {
                *out = fd;
                freeaddrinfo(res);
                return ASK_OK;
            }
        }
        close(fd);
    }
    freeaddrinfo(res);
    return connect_fail(q, reason(e));
}

static int ask_fail(struct ask *q, const char *why)
{
    snprintf(q->err, sizeof q->err, "Error: %s", why);
    return ASK_FAILED;
}

/* A connection to the agent, and what was read from it and not yet
 * taken. */
struct link {
    int fd;
    bool eof;     /* the agent closed its side */
    char *buf;
    size_t len, cap;
    size_t taken; /* buf[0..taken) was the last line handed out */
};

#define LINK_INIT {-1, false, NULL, 0, 0, 0}

static void link_close(struct link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    hs_free(l->buf);
    *l = (struct link)LINK_INIT;
}

static int link_send(struct ask *q, struct link *l, const char *s, size_t n,
                     uint64_t deadline)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(l->fd, s + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return ask_fail(q, reason(errno));
        int rc = wait_fd(l->fd, POLLOUT, deadline);
        if (rc <= 0)
            return ask_fail(q, rc ? reason(errno)
                                  : "the agent does not take the request");
    }
    return ASK_OK;
}

/* Read what the agent sent next onto the buffer (nothing at its end:
 * then l->eof). */
static int link_fill(struct ask *q, struct link *l, uint64_t deadline)
{
    if (l->cap - l->len < 4096) {
        if (l->cap >= ANSWER_MAX)
            return ask_fail(q, "the agent's answer is too large");
        size_t cap = l->cap ? l->cap * 2 : 65536;
        char *nb = hs_realloc(l->buf, cap);
        if (nb == NULL)
            return ask_fail(q, "out of memory");
        l->buf = nb;
        l->cap = cap;
    }
    for (;;) {
        ssize_t r = recv(l->fd, l->buf + l->len, l->cap - l->len, 0);
        if (r >= 0) {
            l->len += (size_t)r;
            l->eof = r == 0;
            return ASK_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return ask_fail(q, reason(errno));
        int rc = wait_fd(l->fd, POLLIN, deadline);
        if (rc <= 0)
            return ask_fail(q, rc ? reason(errno)
                                  : "no answer from the agent in time");
    }
}

/* The next line, without its '\n' and NUL-terminated, valid until the
 * next call; *line is NULL when the agent closed the connection between
 * lines. */
static int link_line(struct ask *q, struct link *l, uint64_t deadline,
                     char **line, size_t *n)
{
    if (l->taken) {
        memmove(l->buf, l->buf + l->taken, l->len - l->taken);
        l->len -= l->taken;
        l->taken = 0;
    }
    size_t scan = 0; /* an answer can be large: look at new bytes only */
    for (;;) {
        char *nl = l->len > scan ? memchr(l->buf + scan, '\n', l->len - scan)
                                 : NULL;
        if (nl) {
            *nl = '\0';
            *line = l->buf;
            *n = (size_t)(nl - l->buf);
            l->taken = *n + 1;
            return ASK_OK;
        }
        scan = l->len;
        if (l->eof) {
            *line = NULL;
            return l->len == 0 ? ASK_OK
                               : ask_fail(q, "the agent closed the "
                                             "connection in the middle of "
                                             "an answer");
        }
        int rc = link_fill(q, l, deadline);
        if (rc)
            return rc;
    }
}

/* Connect and send `req` (freed here) as one line. */
static int ask_open(struct ask *q, cJSON *req, uint64_t deadline,
                    struct link *l)
{
    if (req && q->token && *q->token)
        cJSON_AddStringToObject(req, "token", q->token);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (text == NULL)
        return ask_fail(q, "out of memory");
    int rc = dial(q, deadline, &l->fd);
    if (rc == ASK_OK)
        rc = link_send(q, l, text, strlen(text), deadline);
    if (rc == ASK_OK)
        rc = link_send(q, l, "\n", 1, deadline);
    cJSON_free(text);
    return rc;
}

/* Read one answer: ASK_OK when it says ok (with the line as it came in
 * *raw when asked, valid until the link moves on); an {"ok":false}
 * answer is ASK_REFUSED and "Error: <its sentence>". */
static int ask_answer(struct ask *q, struct link *l, uint64_t deadline,
                      cJSON **answer, const char **raw)
{
    char *line;
    size_t n;
    *answer = NULL;
    int rc = link_line(q, l, deadline, &line, &n);
    if (rc)
        return rc;
    if (line == NULL)
        return ask_fail(q, "the agent closed the connection without "
                           "answering");
    *answer = cJSON_ParseWithLength(line, n);
    if (*answer == NULL || !cJSON_IsObject(*answer)) {
        cJSON_Delete(*answer);
        *answer = NULL;
        return ask_fail(q, "the agent's answer is not a JSON object");
    }
    if (raw)
        *raw = line;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(*answer, "ok");
    if (!cJSON_IsTrue(ok)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(*answer, "error");
        ask_fail(q, cJSON_IsString(e) ? e->valuestring
                                      : "the agent refused the request");
        cJSON_Delete(*answer);
        *answer = NULL;
        return ASK_REFUSED;
    }
    return ASK_OK;
}

/* Send `req` (a JSON object) and return the answer when it says ok. An
 * {"ok":false} answer becomes "Error: <its sentence>". */
static int ask(struct ask *q, cJSON *req, cJSON **answer)
{
    struct link l = LINK_INIT;
    uint64_t deadline = now_ms() + (uint64_t)q->timeout_ms;
    *answer = NULL;
    int rc = ask_open(q, req, deadline, &l);
    if (rc == ASK_OK)
        rc = ask_answer(q, &l, deadline, answer, NULL);
    link_close(&l);
    return rc;
}

static cJSON *request(const char *cmd)
{
    cJSON *r = cJSON_CreateObject();
    if (r)
        cJSON_AddStringToObject(r, "cmd", cmd);
    return r;
}

/* ===== Output helpers ===== */

/* Terminal-safe text: control bytes as \xNN. */
static void put_safe(FILE *f, const char *s)
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
static size_t width(const char *s)
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

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void vsn_text(const cJSON *m, const char *key, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    snprintf(out, n, "%.0f/%.0f/%.0f", num_field(v, "min"),
             num_field(v, "max"), num_field(v, "cur"));
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
static char *dup_fmt(const char *fmt, ...)
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
    r->cell[0] = dup_str(str_field(m, "name"));
    r->cell[1] = dup_str(str_field(m, "addr"));
    r->cell[2] = dup_str(str_field(m, "status"));
    if (!detailed)
        return;
    char p[64], d[64];
    vsn_text(m, "protocol", p, sizeof p);
    vsn_text(m, "delegate", d, sizeof d);
    r->cell[3] = dup_fmt("%.0f", num_field(m, "incarnation"));
    r->cell[4] = dup_str(p);
    r->cell[5] = dup_str(d);
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(m, "private_data");
    if (cJSON_IsString(pd))
        r->cell[6] = dup_str(pd->valuestring);
    else /* binary private data: show its bytes */
        r->cell[6] = dup_fmt("0x%s", str_field(m, "private_data_hex"));
}

/* serf's members output: aligned columns joined by two spaces, no
 * header. */
static void print_members_text(const cJSON *arr, bool detailed)
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
    cJSON_ArrayForEach(m, arr) {
        member_row(m, detailed, &rows[i]);
        for (size_t c = 0; c < ncols; c++)
            if (rows[i].cell[c])
                w[c] = HS_MAX(w[c], width(rows[i].cell[c]));
        i++;
    }
    for (i = 0; i < n; i++) {
        size_t last = ncols; /* no padding after the last non-empty cell */
        while (last > 1 && !(rows[i].cell[last - 1] &&
                             *rows[i].cell[last - 1]))
            last--;
        for (size_t c = 0; c < last; c++) {
            const char *s = rows[i].cell[c] ? rows[i].cell[c] : "";
            put_safe(stdout, s);
            if (c + 1 < last)
                printf("%*s", (int)(w[c] - width(s) + 2), "");
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
        put_safe(stdout, v->valuestring);
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

static const char *const sect_node[] = {"health", "paused",
                                        "broadcast_queue", NULL};
static const char *const sect_probes[] = {
    "probes", "probes_failed", "indirect_probes", "tcp_pings",
    "tcp_ping_rescues", "nacks_received", "suspicions", "refutations",
    "deaths", "conflicts", NULL};
static const char *const sect_gossip[] = {
    "packets_in", "packets_out", "bytes_in", "bytes_out", "send_errors",
    "push_pulls_out", "push_pulls_in", "push_pull_errors", "streams_in",
    "streams_out", "broadcasts_queued", "user_messages_in",
    "user_messages_out", "members_refused", "rumors_duplicate", NULL};
/* The sections in order: top-level keys, or (keys NULL) the object of
 * that name, or (name "messages") the table of messages by type. */
static const struct {
    const char *name;
    const char *const *keys;
} stats_layout[] = {
    {"node", sect_node},    {"members", NULL},   {"probes", sect_probes},
    {"gossip", sect_gossip}, {"messages", NULL}, {"dropped", NULL},
    {"hooks", NULL},        {"metadata", NULL},  {"security", NULL},
    {"transport", NULL},    {"metrics", NULL},   {"loop", NULL}};
static const char *const msg_objs[] = {"msgs_in", "msgs_out", "msg_bytes_in",
                                       "msg_bytes_out"};
static const char *const msg_heads[] = {"in", "out", "bytes in",
                                        "bytes out"};

#define STATS_ITEMS_MAX 256

/* One section of "key = value" lines, keys aligned. */
static void print_section(const char *name, const cJSON *const *items,
                          size_t n)
{
    size_t w = 0;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        w = HS_MAX(w, width(items[i]->string));
    printf("%s:\n", name);
    for (size_t i = 0; i < n; i++) {
        putchar('\t');
        put_safe(stdout, items[i]->string);
        printf("%*s = ", (int)(w - width(items[i]->string)), "");
        print_scalar(items[i]);
        putchar('\n');
    }
}

static void print_object(const cJSON *obj)
{
    const cJSON *items[STATS_ITEMS_MAX], *k;
    size_t n = 0;
    cJSON_ArrayForEach(k, obj) {
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
    cJSON_ArrayForEach(t, rows) {
        w[0] = HS_MAX(w[0], width(t->string));
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
    cJSON_ArrayForEach(t, rows) {
        putchar('\t');
        put_safe(stdout, t->string);
        printf("%*s", (int)(w[0] - width(t->string)), "");
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
        for (size_t s = 0; s < sizeof stats_layout / sizeof *stats_layout;
             s++)
            if (stats_layout[s].keys == NULL &&
                !strcmp(stats_layout[s].name, v->string))
                return true;
    for (size_t s = 0; s < sizeof stats_layout / sizeof *stats_layout; s++)
        for (const char *const *k = stats_layout[s].keys; k && *k; k++)
            if (!strcmp(*k, v->string))
                return true;
    return is_msg_obj(v->string);
}

static void print_stats_text(const cJSON *ans)
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
    cJSON_ArrayForEach(v, ans) {
        if (cJSON_IsObject(v) && !laid_out(v))
            print_object(v);
    }
    n = 0;
    cJSON_ArrayForEach(v, ans) {
        if (!cJSON_IsObject(v) && !laid_out(v) && strcmp(v->string, "ok") &&
            n < STATS_ITEMS_MAX)
            items[n++] = v;
    }
    print_section("other", items, n);
}

static void print_json(const cJSON *v)
{
    char *s = cJSON_Print(v);
    if (s == NULL) {
        fprintf(stderr, "Error: out of memory\n");
        return;
    }
    printf("%s\n", s);
    cJSON_free(s);
}

/* ===== Commands ===== */

struct opts {
    struct ask q;
    const char *format;  /* "text" or "json" */
    const char *status;  /* members --status, or NULL */
    bool detailed;
    int key_op;          /* keys: NODE_KEYS_*, or -1 */
    int key_ops;         /* keys: how many operations were given */
    const char *key;     /* keys: the key of install, use, remove */
};

enum { OPT_FORMAT = 1, OPT_STATUS = 2, OPT_DETAILED = 4, OPT_KEYS = 8 };

struct command {
    const char *name;
    const char *synopsis;
    const char *args;  /* after "hearsay NAME [options]" */
    const char *help;  /* what it does, one paragraph */
    unsigned opts;     /* OPT_* it accepts besides --control, --help */
    int (*run)(struct opts *o, int argc, char **argv);
};

static int fail_with(const struct ask *q)
{
    fprintf(stderr, "%s\n", q->err);
    return 1;
}

static int run_members(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *req = request("members"), *ans;
    if (req && o->status)
        cJSON_AddStringToObject(req, "status", o->status);
    if (ask(&o->q, req, &ans))
        return fail_with(&o->q);
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

static int run_join(struct opts *o, int argc, char **argv)
{
    cJSON *req = request("join"), *ans;
    cJSON *addrs = req ? cJSON_AddArrayToObject(req, "addrs") : NULL;
    for (int i = 0; addrs && i < argc; i++)
        cJSON_AddItemToArray(addrs, cJSON_CreateString(argv[i]));
    o->q.timeout_ms = SLOW_TIMEOUT_MS;
    int rc = ask(&o->q, req, &ans);
    if (rc == ASK_CONNECT)
        return fail_with(&o->q);
    if (rc) { /* "Error: why" becomes serf's wording */
        fprintf(stderr, "Error joining the cluster: %s\n", o->q.err + 7);
        return 1;
    }
    printf("Successfully joined cluster by contacting %.0f nodes.\n",
           num_field(ans, "joined"));
    cJSON_Delete(ans);
    return 0;
}

static int run_simple(struct opts *o, const char *cmd, const char *done)
{
    cJSON *ans;
    if (ask(&o->q, request(cmd), &ans))
        return fail_with(&o->q);
    cJSON_Delete(ans);
    printf("%s\n", done);
    return 0;
}

static int run_leave(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    o->q.timeout_ms = SLOW_TIMEOUT_MS;
    return run_simple(o, "leave", "Graceful leave complete");
}

static int run_reload(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *ans;
    if (ask(&o->q, request("reload"), &ans))
        return fail_with(&o->q);
    int n = (int)num_field(ans, "scripts");
    printf("Scripts reloaded: %d script%s\n", n, n == 1 ? "" : "s");
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(ans, "security");
    if (sec) {
        printf("Security: encrypted=%s keys=%.0f gossip_verify_incoming=%s "
               "gossip_verify_outgoing=%s label=\"",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sec,
                                                            "encrypted"))
                   ? "true" : "false",
               num_field(sec, "keys"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                   sec, "gossip_verify_incoming")) ? "true" : "false",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                   sec, "gossip_verify_outgoing")) ? "true" : "false");
        put_safe(stdout, str_field(sec, "label"));
        printf("\"\n");
    }
    cJSON_Delete(ans);
    return 0;
}

static int run_pause(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return run_simple(o, "pause", "Heartbeat paused");
}

static int run_resume(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return run_simple(o, "resume", "Heartbeat resumed");
}

static int run_stats(struct opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cJSON *ans;
    if (ask(&o->q, request("stats"), &ans))
        return fail_with(&o->q);
    cJSON_DeleteItemFromObjectCaseSensitive(ans, "ok");
    if (!strcmp(o->format, "json"))
        print_json(ans);
    else
        print_stats_text(ans);
    cJSON_Delete(ans);
    return 0;
}

static int run_version(struct opts *o, int argc, char **argv)
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
    if (ask(&o->q, request("version"), &ans) == ASK_OK) {
        printf("agent: ");
        put_safe(stdout, str_field(ans, "name"));
        printf(" v%s\n", str_field(ans, "version"));
        cJSON_Delete(ans);
    }
    return 0;
}

/* ===== Keys ===== */

/* hearsay keygen: 32 random bytes in base64, as serf keygen. */
static int run_keygen(struct opts *o, int argc, char **argv)
{
    (void)o;
    (void)argc;
    (void)argv;
    uint8_t key[32];
    char text[45];
    if (RAND_bytes(key, sizeof key) != 1) {
        fprintf(stderr, "Error reading random data\n");
        return 1;
    }
    keyring_format(key, sizeof key, text);
    printf("%s\n", text);
    keyring_wipe(key, sizeof key);
    keyring_wipe(text, sizeof text);
    return 0;
}

static int by_count(const void *x, const void *y)
{
    const cJSON *a = *(const cJSON *const *)x, *b = *(const cJSON *const *)y;
    double d = num_field(b, "primary") - num_field(a, "primary");
    if (d == 0)
        d = num_field(b, "installed") - num_field(a, "installed");
    if (d == 0)
        return strcmp(str_field(a, "key"), str_field(b, "key"));
    return d < 0 ? -1 : 1;
}

/* serf keys' list: "KEY  [n/total]", here with where it is the primary;
 * most used first. */
static void print_keys(const cJSON *ans)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(ans, "keys");
    size_t n = (size_t)cJSON_GetArraySize(keys), i = 0;
    const cJSON **v = hs_calloc(n ? n : 1, sizeof *v), *k;
    double total = num_field(ans, "nodes");
    if (v == NULL)
        return;
    cJSON_ArrayForEach(k, keys) v[i++] = k;
    qsort(v, n, sizeof *v, by_count);
    for (i = 0; i < n; i++) {
        printf("%s  [%.0f/%.0f]", str_field(v[i], "key"),
               num_field(v[i], "installed"), total);
        if (num_field(v[i], "primary") > 0)
            printf("  primary [%.0f/%.0f]", num_field(v[i], "primary"),
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
    cJSON_ArrayForEach(x, f) w = HS_MAX(w, width(str_field(x, "name")));
    cJSON_ArrayForEach(x, f) {
        const char *name = str_field(x, "name");
        fputs("failed:  ", stderr);
        put_safe(stderr, name);
        fprintf(stderr, "%*s  ", (int)(w - width(name)), "");
        put_safe(stderr, str_field(x, "message"));
        fputc('\n', stderr);
    }
}

static int run_keys(struct opts *o, int argc, char **argv)
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
    if (o->key && keyring_parse(o->key, raw, &rawlen)) {
        fprintf(stderr, "%s: the key must be base64 of 16, 24 or 32 bytes "
                "(hearsay keygen makes one)\n", say[op].fail);
        return 1;
    }
    keyring_wipe(raw, sizeof raw);
    cJSON *req = request("keys");
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
    uint64_t deadline = now_ms() + (uint64_t)o->q.timeout_ms;
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
        return fail_with(&o->q);
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
        put_safe(stderr, str_field(ans, "error"));
        fputc('\n', stderr);
    }
    cJSON_Delete(ans);
    return ok ? 0 : 1;
}

/* ===== kv ===== */

#define STDIN_MAX (64u << 20) /* `kv put KEY -` reads at most this */

static int kv_usage_error(const char *sub, const char *why);

/* A kv command failed: consul's "Error! ..." for what the agent refused,
 * our usual sentence when the agent could not be asked. */
static int kv_fail(const struct ask *q, int rc)
{
    if (rc == ASK_REFUSED)
        fprintf(stderr, "Error! %s\n", q->err + 7);
    else
        fprintf(stderr, "%s\n", q->err);
    return 1;
}

/* The whole of stdin (NUL-terminated, so it can also be a C string), or
 * NULL with a message printed. */
static uint8_t *read_stdin(size_t *len)
{
    size_t n = 0, cap = 65536;
    uint8_t *buf = hs_malloc(cap + 1);
    while (buf) {
        if (n > STDIN_MAX) {
            fprintf(stderr, "Error! The value on stdin is over %u MiB\n",
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
            fprintf(stderr, "Error! Failed to read stdin: %s\n",
                    reason(errno));
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
    fprintf(stderr, "Error! Failed to read stdin: out of memory\n");
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
                   : p[i] < 0x20 ? 6 : 1;
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

/* Ask one kv request; in JSON format print the answer exactly as it came
 * (versions are 64-bit integers a double would round). */
static int kv_ask(struct opts *o, cJSON *req, cJSON **answer, bool print)
{
    struct link l = LINK_INIT;
    uint64_t deadline = now_ms() + (uint64_t)o->q.timeout_ms;
    const char *raw = NULL;
    int rc = ask_open(&o->q, req, deadline, &l);
    if (rc == ASK_OK)
        rc = ask_answer(&o->q, &l, deadline, answer, &raw);
    if (rc == ASK_OK && print && !strcmp(o->format, "json"))
        printf("%s\n", raw);
    link_close(&l);
    return rc;
}

static cJSON *kv_request(const char *cmd, const char *field,
                         const char *key)
{
    cJSON *r = request(cmd);
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
        if ((in = read_stdin(&len)) == NULL)
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
        return kv_fail(&o->q, rc);
    if (strcmp(o->format, "json")) {
        printf("Success! Data written to: ");
        put_safe(stdout, key);
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
        fprintf(stderr, "Error! No key exists at: ");
        put_safe(stderr, args[0]);
        fputc('\n', stderr);
        return 1;
    }
    if (rc)
        return kv_fail(&o->q, rc);
    if (!strcmp(o->format, "json")) {
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
            fprintf(stderr, "Error! The agent's value is not base64\n");
            return 1;
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
        return kv_fail(&o->q, rc);
    if (strcmp(o->format, "json")) {
        printf("Success! Deleted key: ");
        put_safe(stdout, args[0]);
        putchar('\n');
    }
    cJSON_Delete(ans);
    return 0;
}

/* kv list in JSON: the agent's answer is {"ok":true,"entries":[...]},
 * possibly gigabytes of values: it goes to stdout as it arrives, as
 * {"entries":[...]}, never whole in memory. */
static int kv_list_json(struct opts *o, cJSON *req)
{
    static const char head[] = "{\"ok\":true,";
    const size_t hn = sizeof head - 1;
    struct link l = LINK_INIT;
    int rc = ask_open(&o->q, req, now_ms() + (uint64_t)o->q.timeout_ms, &l);
    while (rc == ASK_OK && l.len < hn && !l.eof &&
           !(l.len && memchr(l.buf, '\n', l.len)))
        rc = link_fill(&o->q, &l, now_ms() + (uint64_t)o->q.timeout_ms);
    if (rc == ASK_OK && (l.len < hn || memcmp(l.buf, head, hn))) {
        cJSON *ans; /* an error answer, short */
        rc = ask_answer(&o->q, &l,
                        now_ms() + (uint64_t)o->q.timeout_ms, &ans, NULL);
        cJSON_Delete(ans);
        if (rc == ASK_OK)
            rc = ask_fail(&o->q, "the agent's answer is not a list");
    } else if (rc == ASK_OK) {
        size_t skip = hn;
        putchar('{');
        for (;;) {
            char *nl = memchr(l.buf + skip, '\n', l.len - skip);
            size_t upto = nl ? (size_t)(nl - l.buf) + 1 : l.len;
            fwrite(l.buf + skip, 1, upto - skip, stdout);
            if (nl)
                break;
            if (l.eof) {
                putchar('\n');
                rc = ask_fail(&o->q, "the agent closed the connection in "
                                     "the middle of the list");
                break;
            }
            l.len = skip = 0;
            /* no deadline for the whole list: one for each piece */
            rc = link_fill(&o->q, &l, now_ms() + (uint64_t)o->q.timeout_ms);
            if (rc)
                break;
        }
    }
    link_close(&l);
    return rc ? kv_fail(&o->q, rc) : 0;
}

static int kv_list(struct opts *o, char **args)
{
    cJSON *req = kv_request("kv_list", "prefix", args[0] ? args[0] : "");
    if (!strcmp(o->format, "json"))
        return kv_list_json(o, req);
    if (req) /* keys only: no need to carry the values here */
        cJSON_AddFalseToObject(req, "values");
    cJSON *ans;
    int rc = kv_ask(o, req, &ans, false);
    if (rc)
        return kv_fail(&o->q, rc);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(ans, "entries")) {
        put_safe(stdout, str_field(e, "key"));
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
    const char *kind = str_field(ev, "event");
    printf("%s ", kind);
    put_safe(stdout, str_field(ev, "key"));
    if (!strcmp(kind, "put")) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "value");
        putchar(' ');
        if (cJSON_IsString(v)) {
            put_value(v->valuestring);
        } else { /* binary: its size only */
            const char *b = str_field(ev, "value_base64");
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
    struct link l = LINK_INIT;
    cJSON *ans = NULL;
    uint64_t deadline = now_ms() + (uint64_t)o->q.timeout_ms;
    int rc = ask_open(&o->q, kv_request("kv_watch", "prefix",
                                        args[0] ? args[0] : ""),
                      deadline, &l);
    if (rc == ASK_OK)
        rc = ask_answer(&o->q, &l, deadline, &ans, NULL);
    cJSON_Delete(ans);
    while (rc == ASK_OK) {
        char *line;
        size_t n;
        /* events come when they come: no deadline */
        rc = link_line(&o->q, &l, UINT64_MAX, &line, &n);
        if (rc)
            break;
        if (line == NULL) {
            link_close(&l);
            fprintf(stderr, "Agent closed the connection\n");
            return 0;
        }
        cJSON *ev = cJSON_ParseWithLength(line, n);
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(ev, "ok");
        if (cJSON_IsFalse(ok)) { /* dropped, for not reading fast enough */
            ask_fail(&o->q, str_field(ev, "error"));
            rc = ASK_REFUSED;
        } else if (ev && !strcmp(o->format, "json")) {
            fwrite(line, 1, n, stdout);
            putchar('\n');
        } else if (ev) {
            print_event(ev);
        }
        cJSON_Delete(ev);
        fflush(stdout);
    }
    link_close(&l);
    return kv_fail(&o->q, rc);
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

static int run_kv(struct opts *o, int argc, char **argv)
{
    if (argc == 0)
        return kv_usage_error(NULL, "give a subcommand");
    for (size_t i = 0; i < HS_ARRAY_LEN(kv_subs); i++) {
        if (strcmp(kv_subs[i].name, argv[0]))
            continue;
        int n = argc - 1;
        if (n < kv_subs[i].min || n > kv_subs[i].max)
            return kv_usage_error(argv[0], kv_subs[i].need);
        char *args[3] = {NULL, NULL, NULL};
        for (int k = 0; k < n; k++)
            args[k] = argv[1 + k];
        return kv_subs[i].run(o, args);
    }
    fprintf(stderr, "hearsay kv: unknown subcommand \"%s\"\n\n", argv[0]);
    return kv_usage_error(NULL, NULL);
}

static const struct command commands[] = {
    {"agent", "Runs a hearsay agent", NULL, NULL, 0, NULL},
    {"join", "Tell a hearsay agent to join a cluster", " ADDRESS ...",
     "Tells a running hearsay agent to join the cluster by contacting "
     "the given addresses (host:port, or name/host:port when the cluster "
     "requires node names). Every address is tried; the join succeeds if "
     "any of them answers.",
     0, run_join},
    {"keygen", "Generates a new encryption key", "",
     "Generates a new encryption key: 32 random bytes in base64, the "
     "form the agent's --encrypt flag, the encrypt key and hearsay keys "
     "take (as serf keygen). No agent is needed.",
     0, run_keygen},
    {"keys", "Manages the encryption keyring of the whole cluster",
     " --list | --install KEY | --use KEY | --remove KEY",
     "Manages the encryption keyring, as serf keys does: the change is "
     "made on this agent, then asked of every other member alive or "
     "suspect, over encrypted streams. Only one key, the primary, "
     "encrypts; every installed key decrypts. To rotate: --install the "
     "new key, --use it, then --remove the old one. Exits 0 when every "
     "member answered and none failed, else 1 and lists the members that "
     "failed. Members that are not hearsay nodes (serf) count as "
     "failed: change their keys with their own tools. Running with "
     "several keys is meant as a transition only.",
     OPT_FORMAT | OPT_KEYS, run_keys},
    {"kv", "Reads and writes the cluster-wide key/value store",
     " <subcommand> [args]",
     "Reads, writes, lists and watches the cluster-wide key/value store "
     "through a running agent. Every write is gossiped to the whole "
     "cluster, and any agent's validate_metadata hook may refuse it.",
     OPT_FORMAT, run_kv},
    {"leave", "Gracefully leaves the cluster and shuts the agent down", "",
     "Causes the agent to gracefully leave the cluster and shut down: its "
     "leave is gossiped for up to leave_timeout before it exits.",
     0, run_leave},
    {"members", "Lists the members of the cluster", "",
     "Outputs the members a running hearsay agent knows about: name, "
     "address and status (alive, suspect, dead, left), one per line.",
     OPT_FORMAT | OPT_STATUS | OPT_DETAILED, run_members},
    {"pause", "Stops the agent's heartbeat (pekonode's Stop)", "",
     "Stops the agent's heartbeat: no probes, no gossip, no answers; other "
     "nodes will suspect it. The agent keeps its member table.",
     0, run_pause},
    {"reload", "Reloads the agent's hook scripts", "",
     "Loads the agent's hook scripts again (as SIGHUP does). If any of "
     "them fails to load, the running scripts stay and the error is "
     "printed.",
     0, run_reload},
    {"resume", "Restarts the agent's heartbeat (pekonode's Start)", "",
     "Restarts a paused agent's heartbeat with a fresh incarnation and a "
     "state sync, which refutes any suspicion raised meanwhile.",
     0, run_resume},
    {"stats", "Shows the agent's counters", "",
     "Outputs the agent's counters: packets, messages by type, drops by "
     "reason, probes, suspicions, members by state, health score.",
     OPT_FORMAT, run_stats},
    {"version", "Prints the hearsay version", "",
     "Prints the hearsay version and the protocol versions it speaks, and "
     "the running agent's name and version when one answers.",
     0, run_version},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < HS_ARRAY_LEN(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: hearsay [--version] [--help] <command> [<args>]\n\n"
               "Available commands are:\n");
    for (size_t i = 0; i < HS_ARRAY_LEN(commands); i++)
        fprintf(f, "    %-10s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f, "\nRun \"hearsay help <command>\" for its options.\n");
}

void cli_wrap(FILE *f, const char *text, int indent)
{
    int col = 0;
    while (*text) {
        size_t w = strcspn(text, " ");
        if (col > indent && col + 1 + (int)w > 78) {
            fputc('\n', f);
            col = 0;
        }
        if (col == 0)
            col = fprintf(f, "%*s", indent, "");
        else
            col += fprintf(f, " ");
        col += fprintf(f, "%.*s", (int)w, text);
        text += w;
        while (*text == ' ')
            text++;
    }
    if (col)
        fputc('\n', f);
}

static void command_usage(FILE *f, const struct command *c)
{
    fprintf(f, "Usage: hearsay %s [options]%s\n\n", c->name, c->args);
    cli_wrap(f, c->help, 2);
    if (c->run == run_kv)
        fprintf(f, "\nSubcommands:\n\n"
                   "    put KEY VALUE   Writes VALUE at KEY; a VALUE of - "
                   "is read from stdin\n"
                   "                    (binary-safe, up to 64 MiB). Put "
                   "-- before a VALUE\n"
                   "                    that starts with -.\n"
                   "    get KEY         Prints the value at KEY as it is "
                   "stored.\n"
                   "    delete KEY      Deletes KEY (a missing key is not "
                   "an error).\n"
                   "    list [PREFIX]   Lists the keys (starting with "
                   "PREFIX), one per line.\n"
                   "    watch [PREFIX]  Prints every change to the keys "
                   "(starting with PREFIX)\n"
                   "                    as it happens, local or remote, "
                   "until the agent goes\n"
                   "                    away.\n");
    if (c->run == run_keygen)
        return; /* talks to no agent */
    fprintf(f, "\nOptions:\n\n");
    if (c->opts & OPT_KEYS)
        fprintf(f, "  --list            List every key installed in the "
                   "cluster, with how many\n"
                   "                    members have it and use it as "
                   "their primary.\n"
                   "  --install=KEY     Install a key on every member: it "
                   "decrypts, but does\n"
                   "                    not encrypt until it is made the "
                   "primary.\n"
                   "  --use=KEY         Make an installed key the primary "
                   "(the key that\n"
                   "                    encrypts) on every member.\n"
                   "  --remove=KEY      Remove a key from every member; "
                   "the primary key cannot\n"
                   "                    be removed.\n");
    fprintf(f, "  --control=ADDR    Address of the agent's control endpoint "
               "(default:\n"
               "                    $%s, else %s).\n",
            CONTROL_ENV, CONTROL_DEFAULT_ADDR);
    fprintf(f, "  --token=TOKEN     The agent's control token, when it has "
               "one (default:\n"
               "                    $%s).\n", CONTROL_TOKEN_ENV);
    if (c->opts & OPT_DETAILED)
        fprintf(f, "  --detailed        Also show incarnation, protocol and "
                   "delegate versions\n"
                   "                    (min/max/current) and private "
                   "data.\n");
    if (c->opts & OPT_FORMAT)
        fprintf(f, "  --format=FORMAT   Output format: text (default) or "
                   "json.\n");
    if (c->opts & OPT_STATUS)
        fprintf(f, "  --status=STATE    Only members in this state: alive, "
                   "suspect, dead\n"
                   "                    (or failed) or left.\n");
}

static int kv_usage_error(const char *sub, const char *why)
{
    if (why)
        fprintf(stderr, "hearsay kv%s%s: %s\n\n", sub ? " " : "",
                sub ? sub : "", why);
    command_usage(stderr, find_command("kv"));
    return 1;
}

/* Parse a command's options; argv[0] is its name. Returns -1 to go on,
 * else the exit status. Leaves the positional arguments in argv[*first..]. */
static int parse(const struct command *c, struct opts *o, int argc,
                 char **argv, int *first)
{
    static const struct option longopts[] = {
        {"control", required_argument, NULL, 'c'},
        {"token", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"status", required_argument, NULL, 's'},
        {"detailed", no_argument, NULL, 'd'},
        {"list", no_argument, NULL, 'L'},
        {"install", required_argument, NULL, 'I'},
        {"use", required_argument, NULL, 'U'},
        {"remove", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    o->format = "text";
    o->key_op = -1;
    o->q.control = getenv(CONTROL_ENV);
    if (o->q.control == NULL || *o->q.control == '\0')
        o->q.control = CONTROL_DEFAULT_ADDR;
    o->q.token = getenv(CONTROL_TOKEN_ENV);
    o->q.timeout_ms = TIMEOUT_MS;
    optind = 0; /* a full reset of GNU getopt */
    opterr = 0;
    int ch, idx = 0;
    while ((ch = getopt_long_only(argc, argv, ":h", longopts, &idx)) != -1) {
        unsigned need = ch == 'f' ? OPT_FORMAT
                        : ch == 's' ? OPT_STATUS
                        : ch == 'd' ? OPT_DETAILED
                        : ch == 'L' || ch == 'I' || ch == 'U' || ch == 'R'
                            ? OPT_KEYS
                            : 0;
        if (need && !(c->opts & need)) {
            fprintf(stderr, "hearsay %s: flag --%s does not apply to this "
                    "command\n\n", c->name, longopts[idx].name);
            command_usage(stderr, c);
            return 1;
        }
        /* "--control --token T": --control took "--token" for its value;
         * say that, rather than leave T (a secret) as an unexpected
         * argument. */
        if (optarg && optind >= 2 && optarg == argv[optind - 1] &&
            optarg[0] == '-') {
            const char *f = optarg + (optarg[1] == '-' ? 2 : 1);
            size_t fl = strcspn(f, "=");
            for (const struct option *lo = longopts; lo->name; lo++) {
                if (strlen(lo->name) != fl || strncmp(lo->name, f, fl))
                    continue;
                fprintf(stderr, "hearsay %s: flag %.*s needs a value (%.*s "
                        "is a flag)\n\n", c->name,
                        (int)strcspn(argv[optind - 2], "="),
                        argv[optind - 2], (int)strcspn(optarg, "="),
                        optarg);
                command_usage(stderr, c);
                return 1;
            }
        }
        switch (ch) {
        case 'c':
            o->q.control = optarg;
            break;
        case 't':
            o->q.token = optarg;
            break;
        case 'L':
        case 'I':
        case 'U':
        case 'R':
            o->key_ops++;
            o->key_op = ch == 'L'   ? NODE_KEYS_LIST
                        : ch == 'I' ? NODE_KEYS_INSTALL
                        : ch == 'U' ? NODE_KEYS_USE
                                    : NODE_KEYS_REMOVE;
            o->key = ch == 'L' ? NULL : optarg;
            break;
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
                fprintf(stderr, "hearsay %s: --format must be text or "
                        "json, not \"%s\"\n", c->name, optarg);
                return 1;
            }
            o->format = optarg;
            break;
        case 's':
            o->status = optarg;
            break;
        case 'd':
            o->detailed = true;
            break;
        case 'h':
            command_usage(stdout, c);
            return 0;
        case ':':
            fprintf(stderr, "hearsay %s: flag %s needs a value\n\n", c->name,
                    argv[optind - 1]);
            command_usage(stderr, c);
            return 1;
        default: /* the flag's name only: "--tokn=SECRET" */
            fprintf(stderr, "hearsay %s: unknown flag %.*s\n\n", c->name,
                    (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
            command_usage(stderr, c);
            return 1;
        }
    }
    *first = optind;
    return -1;
}

int cli_main(int argc, char **argv)
{
    if (argc == 0) {
        usage(stderr);
        return 1;
    }
    const char *name = argv[0];
    if (!strcmp(name, "-h") || !strcmp(name, "-help") ||
        !strcmp(name, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "-v") || !strcmp(name, "-version") ||
        !strcmp(name, "--version"))
        name = "version";
    if (!strcmp(name, "help")) {
        if (argc < 2) {
            usage(stdout);
            return 0;
        }
        const struct command *c = find_command(argv[1]);
        if (c == NULL || c->run == NULL) {
            fprintf(stderr, "hearsay: unknown command \"%s\"\n\n", argv[1]);
            usage(stderr);
            return 1;
        }
        command_usage(stdout, c);
        return 0;
    }
    const struct command *c = find_command(name);
    if (c == NULL || c->run == NULL) {
        fprintf(stderr, "hearsay: unknown command \"%s\"\n\n", name);
        usage(stderr);
        return 1;
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    int first, rc = parse(c, &o, argc, argv, &first);
    if (rc >= 0)
        return rc;
    int npos = argc - first;
    if (c->run == run_kv) /* checks its own arguments */
        return run_kv(&o, npos, argv + first);
    if (c->run == run_keys && npos == 0 && o.key_ops != 1) {
        if (o.key_ops > 1)
            fprintf(stderr, "hearsay keys: only one of --install, --use, "
                    "--remove or --list allowed\n\n");
        command_usage(stderr, c);
        return 1;
    }
    if (c->run == run_join ? npos == 0 : npos != 0) {
        fprintf(stderr, "hearsay %s: %s\n\n", c->name,
                npos ? "unexpected argument" : "give at least one address");
        command_usage(stderr, c);
        return 1;
    }
    return c->run(&o, npos, argv + first);
}
