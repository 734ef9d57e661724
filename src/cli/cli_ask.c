/* cli_ask.c: the client side of the control protocol: one request to the
 * agent's control endpoint, and its answer.
 *
 * A command is a one-shot process, so plain blocking-style sockets do:
 * non-blocking connect, send and receive under poll() with one deadline
 * for the whole exchange, so that a hung agent cannot hang the CLI. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "base/addr.h"
#include "cli/cli_int.h"
#include "core/config.h"

#define ANSWER_MAX (256u << 20) /* a members list of a huge cluster */

/* ===== Talking to the agent ===== */

uint64_t cli_now_ms(void)
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
        uint64_t now = cli_now_ms();
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
const char *cli_reason(int e)
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
    return connect_fail(q, cli_reason(e));
}

int ask_fail(struct ask *q, const char *why)
{
    snprintf(q->err, sizeof q->err, "Error: %s", why);
    return ASK_FAILED;
}

void link_close(struct link *l)
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
            return ask_fail(q, cli_reason(errno));
        int rc = wait_fd(l->fd, POLLOUT, deadline);
        if (rc <= 0)
            return ask_fail(q, rc ? cli_reason(errno)
                                  : "the agent does not take the request");
    }
    return ASK_OK;
}

/* Read what the agent sent next onto the buffer (nothing at its end:
 * then l->eof). */
int link_fill(struct ask *q, struct link *l, uint64_t deadline)
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
            return ask_fail(q, cli_reason(errno));
        int rc = wait_fd(l->fd, POLLIN, deadline);
        if (rc <= 0)
            return ask_fail(q, rc ? cli_reason(errno)
                                  : "no answer from the agent in time");
    }
}

/* The next line, without its '\n' and NUL-terminated, valid until the
 * next call; *line is NULL when the agent closed the connection between
 * lines. */
int link_line(struct ask *q, struct link *l, uint64_t deadline, char **line,
              size_t *n)
{
    if (l->taken) {
        memmove(l->buf, l->buf + l->taken, l->len - l->taken);
        l->len -= l->taken;
        l->taken = 0;
    }
    size_t scan = 0; /* an answer can be large: look at new bytes only */
    for (;;) {
        char *nl =
            l->len > scan ? memchr(l->buf + scan, '\n', l->len - scan) : NULL;
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
int ask_open(struct ask *q, cJSON *req, uint64_t deadline, struct link *l)
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
int ask_answer(struct ask *q, struct link *l, uint64_t deadline, cJSON **answer,
               const char **raw)
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
int ask(struct ask *q, cJSON *req, cJSON **answer)
{
    struct link l = LINK_INIT;
    uint64_t deadline = cli_now_ms() + (uint64_t)q->timeout_ms;
    *answer = NULL;
    int rc = ask_open(q, req, deadline, &l);
    if (rc == ASK_OK)
        rc = ask_answer(q, &l, deadline, answer, NULL);
    link_close(&l);
    return rc;
}

cJSON *cli_request(const char *cmd)
{
    cJSON *r = cJSON_CreateObject();
    if (r)
        cJSON_AddStringToObject(r, "cmd", cmd);
    return r;
}

int ask_stream(struct ask *q, cJSON *req, bool json,
               void (*print)(const cJSON *ev))
{
    struct link l = LINK_INIT;
    cJSON *ans = NULL;
    uint64_t deadline = cli_now_ms() + (uint64_t)q->timeout_ms;
    int rc = ask_open(q, req, deadline, &l);
    if (rc == ASK_OK)
        rc = ask_answer(q, &l, deadline, &ans, NULL);
    cJSON_Delete(ans);
    while (rc == ASK_OK) {
        char *line;
        size_t n;
        /* lines come when they come: no deadline */
        rc = link_line(q, &l, UINT64_MAX, &line, &n);
        if (rc)
            break;
        if (line == NULL) {
            link_close(&l);
            fprintf(stderr, "Agent closed the connection\n");
            return ASK_OK;
        }
        cJSON *ev = cJSON_ParseWithLength(line, n);
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(ev, "ok");
        if (cJSON_IsFalse(ok)) { /* the agent ended the stream */
            ask_fail(q, cli_str_field(ev, "error"));
            rc = ASK_REFUSED;
        } else if (ev && json) { /* a stream: one line each */
            fwrite(line, 1, n, stdout);
            putchar('\n');
        } else if (ev) {
            print(ev);
        }
        cJSON_Delete(ev);
        fflush(stdout);
    }
    link_close(&l);
    return rc;
}
