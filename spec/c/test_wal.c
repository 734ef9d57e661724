/* test_wal.c: the data dir's log and snapshots (wal*.c, snapshot.c) on a
 * real libuv loop and real files: what is acknowledged loads back, a
 * snapshot taken while the store changes loads back whole, and a crash at
 * any point of a snapshot (a copy of the directory between two file
 * operations) loads back the same store. */
#include "test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "../../src/agent/wal.h"
#include "../../src/core/metadata.h"
#include "../../src/core/snapshot.h"
#include "../../src/io/sim.h"

static struct hs_logger quiet = {HS_LOG_OFF, NULL, NULL};

static struct node *add_node(struct sim *s, const char *name)
{
    struct config c;
    size_t idx;
    config_defaults(&c, "lan");
    snprintf(c.name, sizeof c.name, "%s", name);
    CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
    config_free(&c);
    return sim_node(s, idx);
}

static void rm_dir(const char *dir)
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

/* Copy every file of one directory into another (made fresh). */
static void copy_dir(const char *from, const char *to)
{
    rm_dir(to);
    mkdir(to, 0700);
    DIR *d = opendir(from);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char a[1024], b[1024], buf[65536];
        if (e->d_name[0] == '.')
            continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        size_t n;
        while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
        if (in)
            fclose(in);
        if (out)
            fclose(out);
    }
    if (d)
        closedir(d);
}

/* The whole store (tombstones too) as text, in key order. */
static void dump_one(void *ud, const struct meta_entry *e)
{
    struct buf *b = ud;
    char line[512];
    int n = snprintf(line, sizeof line, "%s|%llu|%s|%d|%.*s\n", e->key,
                     (unsigned long long)e->version, e->origin, e->deleted,
                     (int)HS_MIN(e->len, 200u),
                     e->value ? (const char *)e->value : "");
    buf_append(b, line, (size_t)n);
}

static void dump(struct metadata *md, struct buf *out)
{
    buf_reset(out);
    metadata_each(md, "", 0, true, dump_one, out);
}

struct world {
    struct sim *sim;
    struct node *nd;
    uv_loop_t loop;
    struct wal *w;
    char dir[64], copy[64];
    int loads;
};

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

static void close_wal(struct world *wd)
{
    bool closed = false;
    wal_close(wd->w, on_closed, &closed);
    while (!closed)
        uv_run(&wd->loop, UV_RUN_ONCE);
    wd->w = NULL;
}

static void open_world(struct world *wd, const struct wal_options *o)
{
    memset(wd, 0, sizeof *wd);
    sim_new(3, &wd->sim);
    sim_set_log(wd->sim, HS_LOG_OFF, NULL, NULL);
    wd->nd = add_node(wd->sim, "w");
    snprintf(wd->dir, sizeof wd->dir, "/tmp/hearsay-test-wal-XXXXXX");
    snprintf(wd->copy, sizeof wd->copy, "%s-copy", mkdtemp(wd->dir));
    uv_loop_init(&wd->loop);
    struct config_list rejoin = {{0}, 0};
    struct snapshot_files f;
    char err[256];
    CHECK_EQ(
        snapshot_open(wd->dir, wd->nd, &rejoin, &quiet, &f, err, sizeof err),
        0);
    CHECK_EQ(wal_new(&wd->loop, wd->dir, wd->nd, &quiet, &f, o, &wd->w), 0);
    snapshot_files_free(&f);
}

static void close_world(struct world *wd)
{
    if (wd->w)
        close_wal(wd);
    CHECK_EQ(uv_loop_close(&wd->loop), 0);
    sim_free(wd->sim);
    rm_dir(wd->dir);
    rm_dir(wd->copy);
}

struct waiter {
    struct wal_wait wt;
    int done; /* 1, or the error */
};

static void on_saved(struct wal_wait *wt, int err, const char *why)
{
    (void)why;
    HS_CONTAINER_OF(wt, struct waiter, wt)->done = err ? err : 1;
}

/* Wait until every change so far is on disk. */
static void settle(struct world *wd)
{
    struct waiter s = {{NULL, NULL, 0, on_saved}, 0};
    char why[256];
    int rc = wal_wait(wd->w, &s.wt, why, sizeof why);
    CHECK(rc >= 0);
    while (rc == 0 && s.done == 0)
        uv_run(&wd->loop, UV_RUN_ONCE);
    CHECK(rc == 1 || s.done == 1);
}

/* Is every change so far on disk? (A wait answered at once.) */
static bool all_durable(struct world *wd)
{
    struct waiter s = {{NULL, NULL, 0, on_saved}, 0};
    char why[256];
    int rc = wal_wait(wd->w, &s.wt, why, sizeof why);
    if (rc == 0)
        wal_wait_cancel(&s.wt);
    return rc == 1;
}

static void put(struct world *wd, const char *key, const char *value)
{
    char why[256];
    CHECK_EQ(metadata_put(node_metadata(wd->nd), key, strlen(key), value,
                          value ? strlen(value) : 0, value == NULL, why,
                          sizeof why, NULL),
             0);
}

/* Load dir into a fresh node and compare with the live store. */
static void check_loads(struct world *wd, const char *dir)
{
    char name[32], err[256];
    snprintf(name, sizeof name, "r%d", wd->loads++);
    struct node *r = add_node(wd->sim, name);
    struct config_list rejoin = {{0}, 0};
    struct snapshot_files f;
    CHECK_EQ(snapshot_open(dir, r, &rejoin, &quiet, &f, err, sizeof err), 0);
    CHECK(!f.damaged);
    snapshot_files_free(&f);
    config_list_truncate(&rejoin, 0);
    struct buf a = BUF_INIT, b = BUF_INIT;
    dump(node_metadata(wd->nd), &a);
    dump(node_metadata(r), &b);
    CHECK_MEM(b.data, b.len, a.data, a.len);
    buf_free(&a);
    buf_free(&b);
}

static const struct wal_options small = {1u << 30, 2048, 512, 8};

/* Acknowledged writes load back, from the log alone. */
static void test_log_loads(void)
{
    struct world wd;
    open_world(&wd, &small);
    char k[32], v[32];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "v%d", i);
        put(&wd, k, v);
    }
    put(&wd, "k007", NULL);
    settle(&wd);
    CHECK(wal_stats(wd.w)->fsyncs >= 1);
    CHECK(wal_stats(wd.w)->group_max > 1); /* one turn, one group */
    copy_dir(wd.dir, wd.copy);             /* a kill -9 now */
    check_loads(&wd, wd.copy);
    close_world(&wd);
}

/* A snapshot taken while keys are added, changed and deleted between its
 * steps loads back whole; and a copy of the directory taken between any
 * two file operations of it (what a crash leaves) loads back the store
 * as it was then. */
static void test_snapshot_while_writing(void)
{
    struct world wd;
    open_world(&wd, &small);
    char k[32], v[64];
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "first value of key %d", i);
        put(&wd, k, v);
    }
    settle(&wd);
    /* a first snapshot, so that the second replaces older segments */
    wal_compact(wd.w);
    while (wal_compacting(wd.w))
        uv_run(&wd.loop, UV_RUN_ONCE);
    CHECK_EQ(wal_stats(wd.w)->snapshots, 1);
    check_loads(&wd, wd.dir);
    wal_compact(wd.w);
    int turn = 0, copies = 0, writes = 0;
    uint64_t seen = 0;
    while (wal_compacting(wd.w)) {
        uv_run(&wd.loop, UV_RUN_NOWAIT);
        turn++;
        if (wal_busy(wd.w) || !all_durable(&wd))
            continue;
        /* Between two file operations: what a crash would leave. */
        const struct wal_stats *st = wal_stats(wd.w);
        uint64_t sig = st->saves + st->snapshots;
        if (sig != seen) {
            seen = sig;
            copy_dir(wd.dir, wd.copy);
            check_loads(&wd, wd.copy);
            copies++;
        }
        /* and a change, behind or ahead of the walk */
        int i = (turn * 37) % 360;
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "turn %d", turn);
        put(&wd, k, ++writes % 3 == 0 ? NULL : v);
    }
    CHECK(copies > 5);
    CHECK(writes > 5);
    CHECK_EQ(wal_stats(wd.w)->snapshots, 2);
    settle(&wd);
    check_loads(&wd, wd.dir);
    /* only the newest generation is left */
    DIR *d = opendir(wd.dir);
    struct dirent *e;
    unsigned long long lo = ~0ull, hi = 0, g;
    int logs = 0;
    while ((e = readdir(d)) != NULL)
        if (sscanf(e->d_name, "hearsay-%16llx", &g) == 1) {
            lo = HS_MIN(lo, g);
            hi = HS_MAX(hi, g);
            logs += strstr(e->d_name, ".log") != NULL;
        }
    closedir(d);
    CHECK_EQ(logs, 1);
    CHECK(lo == hi);
    close_world(&wd);
}

int main(void)
{
    RUN(test_log_loads);
    RUN(test_snapshot_while_writing);
    return test_report("wal");
}
