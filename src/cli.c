/* cli.c: the client side of `hearsay`: one request to the agent's control
 * endpoint per command, printed the way a serf user expects.
 *
 * A command is a one-shot process, so plain blocking-style sockets do:
 * non-blocking connect, send and receive under poll() with one deadline
 * for the whole exchange, so that a hung agent cannot hang the CLI. */
#include "cli.h"

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

#include "addr.h"
#include "config.h"
#include "control.h"
#include "wire.h"

#define TIMEOUT_MS 10000        /* connect plus answer, most commands */
#define SLOW_TIMEOUT_MS 30000   /* leave: up to leave_timeout, and join */
#define ANSWER_MAX (256u << 20) /* a members list of a huge cluster */

/* ===== Talking to the agent ===== */

enum { ASK_OK, ASK_CONNECT, ASK_FAILED };

struct ask {
    const char *control; /* the agent's address */
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

/* Send one request line, read one answer line. */
static int exchange(struct ask *q, int fd, const char *req, uint64_t deadline,
                    cJSON **answer)
{
    size_t n = strlen(req), off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return ask_fail(q, reason(errno));
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc <= 0)
            return ask_fail(q, rc ? reason(errno)
                                  : "the agent does not take the request");
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int status = ASK_OK;
    for (;;) {
        if (cap - len < 4096) {
            if (cap >= ANSWER_MAX) {
                status = ask_fail(q, "the agent's answer is too large");
                break;
            }
            cap = cap ? cap * 2 : 65536;
            char *nb = hs_realloc(buf, cap);
            if (nb == NULL) {
                status = ask_fail(q, "out of memory");
                break;
            }
            buf = nb;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r > 0) {
            char *nl = memchr(buf + len, '\n', (size_t)r);
            len += (size_t)r;
            if (nl) {
                *answer = cJSON_ParseWithLength(buf, (size_t)(nl - buf));
                if (*answer == NULL || !cJSON_IsObject(*answer)) {
                    cJSON_Delete(*answer);
                    *answer = NULL;
                    status = ask_fail(q, "the agent's answer is not a "
                                         "JSON object");
                }
                break;
            }
            continue;
        }
        if (r == 0) {
            status = ask_fail(q, "the agent closed the connection without "
                                 "answering");
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            status = ask_fail(q, reason(errno));
            break;
        }
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc <= 0) {
            status = ask_fail(q, rc ? reason(errno)
                                    : "no answer from the agent in time");
            break;
        }
    }
    hs_free(buf);
    return status;
}

/* Send `req` (a JSON object) and return the answer when it says ok. An
 * {"ok":false} answer becomes "Error: <its sentence>". */
static int ask(struct ask *q, cJSON *req, cJSON **answer)
{
    *answer = NULL;
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (text == NULL)
        return ask_fail(q, "out of memory");
    size_t n = strlen(text);
    char *line = hs_malloc(n + 2);
    if (line == NULL) {
        cJSON_free(text);
        return ask_fail(q, "out of memory");
    }
    memcpy(line, text, n);
    memcpy(line + n, "\n", 2);
    cJSON_free(text);
    uint64_t deadline = now_ms() + (uint64_t)q->timeout_ms;
    int fd = -1;
    int rc = dial(q, deadline, &fd);
    if (rc == ASK_OK) {
        rc = exchange(q, fd, line, deadline, answer);
        close(fd);
    }
    hs_free(line);
    if (rc != ASK_OK)
        return rc;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(*answer, "ok");
    if (!cJSON_IsTrue(ok)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(*answer, "error");
        rc = ask_fail(q, cJSON_IsString(e) ? e->valuestring
                                           : "the agent refused the request");
        cJSON_Delete(*answer);
        *answer = NULL;
    }
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

static void print_number(double v)
{
    if (v == (double)(long long)v)
        printf("%lld", (long long)v);
    else
        printf("%g", v);
}

static void print_scalar(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        print_number(v->valuedouble);
    else if (cJSON_IsString(v))
        put_safe(stdout, v->valuestring);
    else if (cJSON_IsBool(v))
        fputs(cJSON_IsTrue(v) ? "true" : "false", stdout);
    else
        fputs("null", stdout);
}

/* serf info's layout: "key = value", objects as "name:" sections of
 * tab-indented lines. */
static void print_stats_text(const cJSON *ans)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, ans) {
        if (!strcmp(v->string, "ok") || cJSON_IsObject(v))
            continue;
        printf("%s = ", v->string);
        print_scalar(v);
        putchar('\n');
    }
    cJSON_ArrayForEach(v, ans) {
        if (!cJSON_IsObject(v))
            continue;
        printf("%s:\n", v->string);
        const cJSON *k;
        cJSON_ArrayForEach(k, v) {
            printf("\t%s = ", k->string);
            print_scalar(k);
            putchar('\n');
        }
    }
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
};

enum { OPT_FORMAT = 1, OPT_STATUS = 2, OPT_DETAILED = 4 };

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

static const struct command commands[] = {
    {"agent", "Runs a hearsay agent", NULL, NULL, 0, NULL},
    {"join", "Tell a hearsay agent to join a cluster", " ADDRESS ...",
     "Tells a running hearsay agent to join the cluster by contacting "
     "the given addresses (host:port, or name/host:port when the cluster "
     "requires node names). Every address is tried; the join succeeds if "
     "any of them answers.",
     0, run_join},
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
    fprintf(f, "\nOptions:\n\n");
    fprintf(f, "  --control=ADDR    Address of the agent's control endpoint "
               "(default:\n"
               "                    $%s, else %s).\n",
            CONTROL_ENV, CONTROL_DEFAULT_ADDR);
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

/* Parse a command's options; argv[0] is its name. Returns -1 to go on,
 * else the exit status. Leaves the positional arguments in argv[*first..]. */
static int parse(const struct command *c, struct opts *o, int argc,
                 char **argv, int *first)
{
    static const struct option longopts[] = {
        {"control", required_argument, NULL, 'c'},
        {"format", required_argument, NULL, 'f'},
        {"status", required_argument, NULL, 's'},
        {"detailed", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    o->format = "text";
    o->q.control = getenv(CONTROL_ENV);
    if (o->q.control == NULL || *o->q.control == '\0')
        o->q.control = CONTROL_DEFAULT_ADDR;
    o->q.timeout_ms = TIMEOUT_MS;
    optind = 0; /* a full reset of GNU getopt */
    opterr = 0;
    int ch, idx = 0;
    while ((ch = getopt_long_only(argc, argv, ":h", longopts, &idx)) != -1) {
        unsigned need = ch == 'f' ? OPT_FORMAT
                        : ch == 's' ? OPT_STATUS
                        : ch == 'd' ? OPT_DETAILED
                                    : 0;
        if (need && !(c->opts & need)) {
            fprintf(stderr, "hearsay %s: flag --%s does not apply to this "
                    "command\n\n", c->name, longopts[idx].name);
            command_usage(stderr, c);
            return 1;
        }
        switch (ch) {
        case 'c':
            o->q.control = optarg;
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
        default:
            fprintf(stderr, "hearsay %s: unknown flag %s\n\n", c->name,
                    argv[optind - 1]);
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
    if (c->run == run_join ? npos == 0 : npos != 0) {
        fprintf(stderr, "hearsay %s: %s\n\n", c->name,
                npos ? "unexpected argument" : "give at least one address");
        command_usage(stderr, c);
        return 1;
    }
    return c->run(&o, npos, argv + first);
}
