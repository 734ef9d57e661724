/* store.c: the metadata store at scale: what repairing 1,000 missing keys
 * costs (CPU and bytes) and the longest single step of the event loop,
 * with 10k, 100k and 1M keys stored. Run by scripts/bench-store; prints a
 * table.
 *
 * Two simulated nodes in one process (the real protocol core, a virtual
 * network): a holds N keys, b holds the same N - 1,000 (loaded from a's
 * snapshot before the last 1,000 were added), then b joins a and repairs
 * what it lacks over the metadata sync. Every
 * event of the simulation is one step of a node's loop: each is timed
 * alone, so the longest step is the longest call into the store from the
 * loop (a push/pull encode or merge, a sync request served or answered).
 * The store's other calls from the loop are timed directly: a write (the
 * table's growth), the tombstone upkeep, a listing of 100 keys by prefix.
 *
 *   build/bench_store [RUNS] [N ...]     (default: 3 runs, 10000 100000
 *                                         1000000)
 * BENCH_STORE_LIMIT=s stops a repair after s seconds of CPU (default
 * 300) and prints its numbers as lower bounds (">"). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/core/metadata.h"
#include "../../src/core/node.h"
#include "../../src/io/sim.h"

#define MISSING 1000
#define VALUE "0123456789abcdef0123456789abcdef"

static double now_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A step's cost: the CPU time of this thread (so that other processes on
 * a busy machine do not count). */
static double step_ms(void)
{
    return now_ms(CLOCK_THREAD_CPUTIME_ID);
}

static double cpu_ms(void)
{
    return now_ms(CLOCK_PROCESS_CPUTIME_ID);
}

static void must(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench-store: %s: %s\n", what, hs_strerror(rc));
        exit(1);
    }
}

static void config(struct config *c, const char *name)
{
    must(config_defaults(c, "lan"), "config");
    snprintf(c->name, sizeof c->name, "%s", name);
    /* Only the push/pull this bench starts: none of its own. */
    c->push_pull_interval = 3600 * 1000;
    /* Room for a push/pull answer that lists whole buckets (before the
     * hash tree: some 50 MB at 1M keys, over the 20 MiB default). */
    c->max_stream_size = 1ull << 30;
    c->max_decompressed_size = 1ull << 30;
}

struct run {
    double repair_cpu, repair_step, put_step, tick_step, list_step;
    double repair_bytes;
    bool done;
};

static void put(struct metadata *md, const char *k, double *longest)
{
    char why[200];
    double t0 = step_ms();
    must(metadata_put(md, k, strlen(k), VALUE, sizeof VALUE - 1, false, why,
                      sizeof why, NULL),
         why);
    double dt = step_ms() - t0;
    if (dt > *longest)
        *longest = dt;
}

static uint64_t sync_bytes(struct metadata *md)
{
    const struct meta_stats *s = metadata_stats(md);
    return s->sync_bytes_out + s->digest_bytes_out;
}

static void count_key(void *ud, const struct meta_entry *e)
{
    (void)e;
    ++*(size_t *)ud;
}

static void one_run(size_t n, unsigned seed, double limit_s, struct run *r)
{
    memset(r, 0, sizeof *r);
    struct sim *s;
    must(sim_new(seed, &s), "sim_new");
    struct config c;
    size_t ia, ib, ic;
    config(&c, "a");
    must(sim_add(s, &c, NULL, &ia), "sim_add");
    config_free(&c);
    struct metadata *ma = node_metadata(sim_node(s, ia));
    char k[64];
    for (size_t i = 0; i < n - MISSING; i++) {
        snprintf(k, sizeof k, "key/%07zu", i);
        put(ma, k, &r->put_step);
    }
    /* b starts from a's store as it is now. */
    struct buf snap = BUF_INIT;
    must(metadata_snapshot(ma, &snap), "snapshot");
    config(&c, "b");
    must(sim_add(s, &c, NULL, &ib), "sim_add");
    config_free(&c);
    struct metadata *mb = node_metadata(sim_node(s, ib));
    const char *why = NULL;
    must(metadata_restore(mb, snap.data, snap.len, &why), "restore");
    buf_free(&snap);
    /* The last 1,000 keys reach a alone: written on c, which is in no
     * cluster, and loaded from its snapshot. */
    config(&c, "c");
    must(sim_add(s, &c, NULL, &ic), "sim_add");
    config_free(&c);
    struct metadata *mc = node_metadata(sim_node(s, ic));
    for (size_t i = n - MISSING; i < n; i++) {
        snprintf(k, sizeof k, "key/%07zu", i);
        put(mc, k, &r->put_step);
    }
    must(metadata_snapshot(mc, &snap), "snapshot");
    must(metadata_restore(ma, snap.data, snap.len, &why), "restore");
    buf_free(&snap);
    sim_run(s, 1000);
    if (metadata_count(ma, true) != n ||
        metadata_count(mb, true) != n - MISSING) {
        fprintf(stderr,
                "bench-store: a has %zu keys, b %zu, before the "
                "repair\n",
                metadata_count(ma, true), metadata_count(mb, true));
        exit(1);
    }
    struct hs_addr aa = sim_addr(s, ia);
    /* The repair: b joins a (a push/pull b leads, as a periodic one or a
     * restarted node's would), until b has every key. */
    uint64_t bytes0 = sync_bytes(ma) + sync_bytes(mb);
    double cpu0 = cpu_ms();
    must(node_join(sim_node(s, ib), &aa, NULL, 1, NULL, NULL), "join");
    uint64_t until = sim_now(s) + 600000;
    while (metadata_count(mb, true) < n) {
        double t0 = step_ms();
        if (!sim_step(s, until))
            break;
        double dt = step_ms() - t0;
        if (dt > r->repair_step)
            r->repair_step = dt;
        if (cpu_ms() - cpu0 > limit_s * 1000)
            break;
    }
    r->repair_cpu = cpu_ms() - cpu0;
    r->done = metadata_count(mb, true) == n;
    sim_run(s, 5000); /* what the sync has left to say */
    r->repair_bytes = (double)(sync_bytes(ma) + sync_bytes(mb) - bytes0);

    /* A listing of 100 keys by prefix. */
    size_t got = 0;
    double t0 = step_ms();
    metadata_each(ma, "key/00001", 9, false, count_key, &got);
    r->list_step = step_ms() - t0;
    if (got != 100) {
        fprintf(stderr, "bench-store: the prefix listed %zu keys\n", got);
        exit(1);
    }
    /* The upkeep, with 1,000 tombstones to collect among n keys: the
     * longest of the ticks until they are all gone. */
    for (size_t i = 0; i < MISSING; i++) {
        char why2[200];
        snprintf(k, sizeof k, "key/%07zu", i * (n / MISSING));
        must(metadata_put(ma, k, strlen(k), NULL, 0, true, why2, sizeof why2,
                          NULL),
             why2);
    }
    /* Past metadata_tombstone_ttl (24 h), on a's clock. */
    sim_set_clock_offset(s, ia, 25 * 3600 * 1000);
    for (int i = 0; i < 100 && metadata_count(ma, true) > n - MISSING; i++) {
        t0 = step_ms();
        metadata_tick(ma);
        double dt = step_ms() - t0;
        if (dt > r->tick_step)
            r->tick_step = dt;
    }
    if (metadata_count(ma, true) != n - MISSING) {
        fprintf(stderr, "bench-store: %zu tombstones left\n",
                metadata_count(ma, true) - (n - MISSING));
        exit(1);
    }
    sim_free(s);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and worst of a column over the runs. */
static void stat(const struct run *rs, int runs, size_t off, double *med,
                 double *worst)
{
    double v[64];
    for (int i = 0; i < runs; i++)
        v[i] = *(const double *)((const char *)&rs[i] + off);
    qsort(v, (size_t)runs, sizeof v[0], cmp);
    *med = v[runs / 2];
    *worst = v[runs - 1];
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    if (runs < 1 || runs > 64) {
        fprintf(stderr, "usage: bench_store [RUNS (1-64)] [N ...]\n");
        return 2;
    }
    size_t sizes[16] = {10000, 100000, 1000000};
    int nsizes = 3;
    if (argc > 2) {
        nsizes = 0;
        for (int i = 2; i < argc && nsizes < 16; i++)
            sizes[nsizes++] = (size_t)strtoull(argv[i], NULL, 10);
    }
    const char *lim = getenv("BENCH_STORE_LIMIT");
    double limit = lim && *lim ? atof(lim) : 300;
    printf("metadata store, 2 simulated nodes: repair of %d missing keys, "
           "longest loop step\n%d runs each: median / worst\n\n",
           MISSING, runs);
    printf("%9s | %19s | %21s | %19s | %15s | %15s | %15s\n", "keys",
           "repair CPU ms", "repair bytes", "longest step ms", "longest put ms",
           "tick ms", "list 100 ms");
    for (int i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        if (n <= MISSING) {
            fprintf(stderr, "bench-store: %zu keys: more than %d needed\n", n,
                    MISSING);
            return 2;
        }
        struct run rs[64];
        bool all = true;
        for (int j = 0; j < runs; j++) {
            one_run(n, (unsigned)(j + 1), limit, &rs[j]);
            all = all && rs[j].done;
            fprintf(stderr, "  %zu keys, run %d: repair %.0f ms CPU%s\n", n,
                    j + 1, rs[j].repair_cpu,
                    rs[j].done ? "" : " (stopped: over the limit)");
        }
        double cm, cw, sm, sw, pm, pw, tm, tw, lm, lw, bm, bw;
        stat(rs, runs, offsetof(struct run, repair_cpu), &cm, &cw);
        stat(rs, runs, offsetof(struct run, repair_step), &sm, &sw);
        stat(rs, runs, offsetof(struct run, put_step), &pm, &pw);
        stat(rs, runs, offsetof(struct run, tick_step), &tm, &tw);
        stat(rs, runs, offsetof(struct run, list_step), &lm, &lw);
        stat(rs, runs, offsetof(struct run, repair_bytes), &bm, &bw);
        const char *gt = all ? "" : ">";
        printf("%9zu | %s%8.0f / %s%8.0f | %s%9.0f / %s%9.0f | "
               "%s%8.2f / %s%8.2f | %6.2f / %6.2f | %6.2f / %6.2f | "
               "%6.2f / %6.2f\n",
               n, gt, cm, gt, cw, gt, bm, gt, bw, gt, sm, gt, sw, pm, pw, tm,
               tw, lm, lw);
        fflush(stdout);
    }
    return 0;
}
