/* kv.c: a client of the control endpoint for scripts/bench-kv: C
 * connections, each sending kv_put requests one after the other (the next
 * once the answer came) for S seconds; prints one line:
 *   writes=N errors=E secs=S per_sec=R p50_ms=.. p99_ms=.. max_ms=..
 * Usage: bench_kv HOST PORT CLIENTS SECONDS [VALUE_BYTES]
 *        bench_kv --fsync DIR   (what the disk gives: median and worst
 *                                of 200 appends of 100 bytes, each
 *                                fdatasynced, in DIR) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS_MAX 256

struct client {
    int fd;
    double sent;     /* when the request in flight was sent */
    unsigned long n; /* requests sent */
    char in[4096];
    size_t inlen;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int send_put(struct client *c, int id, const char *value)
{
    char line[70000];
    int n = snprintf(line, sizeof line,
                     "{\"cmd\":\"kv_put\",\"key\":\"bench/%d/%lu\","
                     "\"value\":\"%s\"}\n",
                     id, c->n++, value);
    c->sent = now();
    for (int off = 0; off < n;) {
        ssize_t w = write(c->fd, line + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (int)w;
    }
    return 0;
}

static int disk(const char *dir)
{
    char path[4096];
    double t[200];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    for (int i = 0; i < 200; i++) {
        double a = now();
        if (write(fd, path, 100) != 100 || fdatasync(fd)) {
            perror("fdatasync");
            return 1;
        }
        t[i] = (now() - a) * 1000.0;
    }
    close(fd);
    unlink(path);
    qsort(t, 200, sizeof *t, cmp_double);
    printf("%.2f ms (worst %.2f ms)\n", t[100], t[199]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--fsync"))
        return disk(argv[2]);
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s HOST PORT CLIENTS SECONDS "
                "[VALUE_BYTES]\n",
                argv[0]);
        return 2;
    }
    int nc = atoi(argv[3]);
    double secs = atof(argv[4]);
    size_t vbytes = argc > 5 ? (size_t)atol(argv[5]) : 100;
    if (nc < 1 || nc > CLIENTS_MAX || secs <= 0 || vbytes > 60000)
        return 2;
    char *value = malloc(vbytes + 1);
    memset(value, 'v', vbytes);
    value[vbytes] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    static struct client cl[CLIENTS_MAX];
    struct pollfd pf[CLIENTS_MAX];
    size_t cap = 1 << 20, nlat = 0;
    double *lat = malloc(cap * sizeof *lat);
    unsigned long errors = 0;
    for (int i = 0; i < nc; i++) {
        cl[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(cl[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(cl[i].fd, (struct sockaddr *)&sa, sizeof sa)) {
            perror("connect");
            return 1;
        }
        pf[i].fd = cl[i].fd;
        pf[i].events = POLLIN;
    }
    double start = now(), end = start + secs;
    for (int i = 0; i < nc; i++)
        send_put(&cl[i], i, value);
    int active = nc;
    while (active > 0) {
        if (poll(pf, (nfds_t)nc, 1000) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < nc; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
                continue;
            struct client *c = &cl[i];
            ssize_t r = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
            if (r <= 0) {
                pf[i].fd = -1;
                active--;
                continue;
            }
            c->inlen += (size_t)r;
            char *nl;
            while ((nl = memchr(c->in, '\n', c->inlen)) != NULL) {
                double t = now();
                if (strstr(c->in, "\"ok\":true") == NULL ||
                    strstr(c->in, "\"ok\":true") > nl)
                    errors++;
                if (nlat == cap) {
                    cap *= 2;
                    lat = realloc(lat, cap * sizeof *lat);
                }
                lat[nlat++] = (t - c->sent) * 1000.0;
                size_t used = (size_t)(nl - c->in) + 1;
                memmove(c->in, nl + 1, c->inlen - used);
                c->inlen -= used;
                if (t < end) {
                    send_put(c, i, value);
                } else {
                    close(c->fd);
                    pf[i].fd = -1;
                    active--;
                    break;
                }
            }
        }
    }
    double took = now() - start;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("writes=%zu errors=%lu secs=%.2f per_sec=%.0f p50_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f\n",
           nlat, errors, took, (double)nlat / took, nlat ? lat[nlat / 2] : 0.0,
           nlat ? lat[(size_t)((double)nlat * 0.99)] : 0.0,
           nlat ? lat[nlat - 1] : 0.0);
    free(lat);
    free(value);
    return 0;
}
