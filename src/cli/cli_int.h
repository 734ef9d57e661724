/* cli_int.h: what the files of the CLI share: the exchange with the
 * agent (cli_ask.c), the output helpers (cli_print.c), the commands
 * (cli_cmds.c, cli_kv.c, cli_ops.c) and their options (cli.c). Private to
 * src/cli. */
#ifndef HS_CLI_INT_H
#define HS_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "base/hs.h"

#define TIMEOUT_MS 10000      /* connect plus answer, most commands */
#define SLOW_TIMEOUT_MS 30000 /* leave: up to leave_timeout, and join */

/* ===== Talking to the agent (cli_ask.c) ===== */

/* ASK_REFUSED: the agent answered {"ok":false}. */
enum {
    ASK_OK,
    ASK_CONNECT,
    ASK_FAILED,
    ASK_REFUSED
};

struct ask {
    const char *control; /* the agent's address */
    const char *token;   /* the control token, or NULL */
    int timeout_ms;
    char err[512]; /* the sentence for ASK_CONNECT / ASK_FAILED */
};

/* A connection to the agent, and what was read from it and not yet
 * taken. */
struct link {
    int fd;
    bool eof; /* the agent closed its side */
    char *buf;
    size_t len, cap;
    size_t taken; /* buf[0..taken) was the last line handed out */
};

#define LINK_INIT                \
    {                            \
        -1, false, NULL, 0, 0, 0 \
    }

uint64_t cli_now_ms(void);
/* strerror's sentence starting in lower case, as Go prints them. */
const char *cli_reason(int e);
/* q->err = "Error: why"; returns ASK_FAILED. */
int ask_fail(struct ask *q, const char *why);
void link_close(struct link *l);
/* Read what the agent sent next onto the buffer (nothing at its end:
 * then l->eof). */
int link_fill(struct ask *q, struct link *l, uint64_t deadline);
/* The next line, without its '\n' and NUL-terminated, valid until the
 * next call; *line is NULL when the agent closed the connection between
 * lines. */
int link_line(struct ask *q, struct link *l, uint64_t deadline, char **line,
              size_t *n);
/* Connect and send `req` (freed here) as one line. */
int ask_open(struct ask *q, cJSON *req, uint64_t deadline, struct link *l);
/* Read one answer: ASK_OK when it says ok (with the line as it came in
 * *raw when asked, valid until the link moves on); an {"ok":false}
 * answer is ASK_REFUSED and "Error: <its sentence>". */
int ask_answer(struct ask *q, struct link *l, uint64_t deadline, cJSON **answer,
               const char **raw);
/* Send `req` (a JSON object) and return the answer when it says ok. An
 * {"ok":false} answer becomes "Error: <its sentence>". */
int ask(struct ask *q, cJSON *req, cJSON **answer);
/* Send `req` (freed here) and follow the stream of lines it starts:
 * each as it came in (json) or through print. An {"ok":false} line ends
 * it as ASK_REFUSED with "Error: <its sentence>". Returns ASK_OK once
 * the agent closed the connection (said on stderr), else the error. */
int ask_stream(struct ask *q, cJSON *req, bool json,
               void (*print)(const cJSON *ev));
/* {"cmd":cmd} */
cJSON *cli_request(const char *cmd);

/* ===== Output (cli_print.c) ===== */

/* Terminal-safe text: control bytes as \xNN. */
void cli_put_safe(FILE *f, const char *s);
/* Characters shown, for column alignment. */
size_t cli_width(const char *s);
/* A field of an answer: "" or 0 when absent or of another type. */
const char *cli_str_field(const cJSON *o, const char *key);
double cli_num_field(const cJSON *o, const char *key);
/* `hearsay members` as text (the table; --detailed adds columns). */
void print_members_text(const cJSON *arr, bool detailed);
/* `hearsay stats` as text. */
void print_stats_text(const cJSON *ans);

/* JSON documents are laid out as Go's json.MarshalIndent(v, "", "  ")
 * lays them out (serf's -format=json): two spaces a level, "key": value,
 * empty objects and arrays as {} and []. The layout works on the text,
 * so numbers and strings stay exactly as the agent wrote them (versions
 * are 64-bit integers), and it can take a document in pieces. */
struct jfmt {
    int depth;
    bool in_str, esc; /* inside a string; after its backslash */
    bool opened;      /* after { or [: a newline unless it closes */
};
#define JFMT_INIT              \
    {                          \
        0, false, false, false \
    }
void jfmt_feed(struct jfmt *j, FILE *f, const char *p, size_t n);
/* A whole document of JSON text on stdout, laid out, and a newline. */
void print_json_text(const char *p, size_t n);
/* v as a JSON document on stdout, and a newline. */
void print_json(const cJSON *v);
/* An error: its sentence on stderr, or with --format json the document
 * {"error": "sentence"} there (without a leading "Error: " or
 * "Error! "). Returns 1, the exit status. */
struct opts;
int cli_fail(const struct opts *o, const char *msg);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_failf(const struct opts *o, const char *fmt, ...);

/* ===== Commands (cli_cmds.c, cli_kv.c, cli_ops.c) ===== */
struct opts {
    struct ask q;
    const char *format; /* "text" or "json" */
    bool json;          /* format is "json" */
    const char *status; /* members --status, or NULL */
    bool detailed;
    int key_op;            /* keys: NODE_KEYS_*, or -1 */
    int key_ops;           /* keys: how many operations were given */
    const char *key;       /* keys: the key of install, use, remove */
    const char *log_level; /* monitor --log-level, or NULL */
    /* tags: the --set KEY=VALUE and --delete KEY flags, in order */
    char **tag_set, **tag_del;
    int ntag_set, ntag_del;
};

/* Each runs its command with the positional arguments argv[0..argc) and
 * returns the exit status. */
typedef int cli_run_fn(struct opts *o, int argc, char **argv);
cli_run_fn run_members, run_join, run_leave, run_reload, run_pause, run_resume,
    run_stats, run_version, run_keygen, run_keys, run_kv, run_monitor,
    run_force_leave, run_tags;

/* hearsay kv's usage error (cli.c): "hearsay kv SUB: why", the usage,
 * exit status 1 (with --format json, the sentence as a JSON error). */
int kv_usage_error(const struct opts *o, const char *sub, const char *why);

#endif
