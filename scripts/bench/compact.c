/* compact.c: what a snapshot of the data dir costs at 10k, 100k, 1M keys
 * (scripts/bench-compact): a store filled through metadata_put, then one
 * snapshot written by wal_snap.c on a real libuv loop and a real directory,
 * the loop run one turn at a time (UV_RUN_ONCE) so that each turn is
 * timed, less the time it waited for the threads (libuv's idle time);
 * then the same store loaded back by snapshot_open.
 * Usage: bench_compact [KEYS ...] (default 10000 100000 1000000);
 * BENCH_DIR picks the filesystem (default /tmp). */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "../../src/agent/wal.h"
#include "../../src/core/metadata.h"
#include "../../src/core/snapshot.h"
#include "../../src/io/sim.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of the loop's own thread: a turn's work, without the time
 * the scheduler gave other threads (the writer's, other programs'). */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct node *new_node(struct sim *s, const char *name)
{
    struct config c;
    size_t idx;
    config_defaults(&c, "lan");
    snprintf(c.name, sizeof c.name, "%s", name);
    if (sim_add(s, &c, NULL, &idx)) {
        fprintf(stderr, "sim_add failed\n");
        exit(1);
    }
    config_free(&c);
    return sim_node(s, idx);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".seg") != NULL &&
             strstr(e->d_name, ".tmp") == NULL;
    if (d)
        closedir(d);
    return n;
}

static void nothing(void *ud, const struct meta_entry *e)
{
    (void)ud;
    (void)e;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of the turns (a copy is sorted). */
static double p99_guess(const double *v, size_t n)
{
    double *c = malloc((n ? n : 1) * sizeof *c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, by_value);
    double m = n ? c[n / 2] : 0;
    free(c);
    return m;
}

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

static void run(size_t keys)
{
    struct sim *s;
    sim_new(1, &s);
    sim_set_log(s, HS_LOG_ERROR, NULL, NULL);
    struct node *nd = new_node(s, "writer");
    struct metadata *md = node_metadata(nd);
    char key[64], value[101], why[256];
    memset(value, 'v', 100);
    value[100] = '\0';
    double t0 = now_ms();
    for (size_t i = 0; i < keys; i++) {
        snprintf(key, sizeof key, "bench/%010zu", i * 7919 % keys);
        if (metadata_put(md, key, strlen(key), value, 100, false, why,
                         sizeof why, NULL)) {
            fprintf(stderr, "put: %s\n", why);
            exit(1);
        }
    }
    double fill = now_ms() - t0;

    const char *base = getenv("BENCH_DIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/hearsay-bench-compact-XXXXXX",
             base && *base ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    struct hs_logger lg = {HS_LOG_WARN, hs_log_stderr_sink, NULL};
    struct config_list rejoin = {{0}, 0};
    struct snapshot_files files;
    char err[512];
    if (snapshot_open(dir, nd, &rejoin, &lg, &files, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* to take the time blocked waiting for the threads out of a turn */
    uv_loop_configure(&loop, UV_METRICS_IDLE_TIME);
    struct wal *w;
    struct wal_options o = {UINT64_C(1) << 40, WAL_SEGMENT_BYTES,
                            WAL_CHUNK_BYTES, WAL_STEP_ENTRIES};
    wal_new(&loop, dir, nd, &lg, &files, &o, &w);
    snapshot_files_free(&files);
    wal_compact(w);
    double longest = 0, longest_cpu = 0, start = now_ms();
    size_t turns = 0, cap = 1 << 16;
    double *turn = malloc(cap * sizeof *turn);
    while (wal_compacting(w)) {
        double a = now_ms(), c = cpu_ms();
        uint64_t idle = uv_metrics_idle_time(&loop);
        uv_run(&loop, UV_RUN_ONCE);
        double d =
            now_ms() - a - (double)(uv_metrics_idle_time(&loop) - idle) / 1e6;
        if (cpu_ms() - c > longest_cpu)
            longest_cpu = cpu_ms() - c;
        if (d > longest)
            longest = d;
        if (turns == cap)
            turn = realloc(turn, (cap *= 2) * sizeof *turn);
        turn[turns++] = d;
    }
    if (getenv("BENCH_TURNS")) { /* the slow turns, in order */
        for (size_t i = 0; i < turns; i++)
            if (turn[i] > 3 * p99_guess(turn, turns))
                fprintf(stderr, "turn %zu of %zu: %.2f ms\n", i, turns,
                        turn[i]);
    }
    qsort(turn, turns, sizeof *turn, by_value);
    double p99 = turns ? turn[(size_t)((double)turns * 0.99)] : 0;
    free(turn);
    double took = now_ms() - start;
    uint64_t bytes = wal_stats(w)->snapshot_bytes;
    bool closed = false;
    wal_close(w, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_loop_close(&loop);

    /* The store's part of a turn: one metadata_scan of a step's size,
     * from five places of the key space. */
    double scan_longest = 0;
    for (int part = 0; part < 5; part++) {
        bool more;
        snprintf(key, sizeof key, "bench/%010zu", keys / 5 * (size_t)part);
        double a = now_ms();
        metadata_scan(md, part ? key : NULL, part ? strlen(key) : 0,
                      WAL_STEP_ENTRIES, nothing, NULL, &more);
        double d = now_ms() - a;
        if (d > scan_longest)
            scan_longest = d;
    }

    struct node *nd2 = new_node(s, "reader");
    t0 = now_ms();
    if (snapshot_open(dir, nd2, &rejoin, &lg, &files, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    double load = now_ms() - t0;
    snapshot_files_free(&files);
    size_t loaded = metadata_count(node_metadata(nd2), true);
    int segs = count_segments(dir);
    config_list_truncate(&rejoin, 0);
    remove_dir(dir);
    sim_free(s);
    printf("| %zu | %.2f s | %.2f s | %.1f MB | %d | %zu | %.2f ms | "
           "%.2f ms | %.2f ms | %.2f ms | %.2f s |%s\n",
           keys, fill / 1e3, took / 1e3, (double)bytes / 1e6, segs, turns, p99,
           longest, longest_cpu, scan_longest, load / 1e3,
           loaded == keys ? "" : " (LOADED A DIFFERENT COUNT)");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    printf("| keys | fill (metadata_put) | snapshot | size | segments | "
           "loop turns | 99%% of turns under | longest turn | "
           "its CPU, longest | one metadata_scan | load |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
           "---: | ---: | ---: |\n");
    if (argc < 2) {
        run(10000);
        run(100000);
        run(1000000);
    }
    for (int i = 1; i < argc; i++)
        run((size_t)strtoull(argv[i], NULL, 10));
    return 0;
}
