/* test_metadata.c: the metadata store's indexes against a model: the
 * hash table while it grows and shrinks a few buckets at a time, the key
 * order of listings and scans, the hash tree's counts and hashes, the
 * tombstone heap collected across ticks, and the snapshot's parts. */
#include "test.h"

#include "../../src/base/rng.h"
#include "../../src/codec/mp.h"
#include "../../src/core/metadata.h"
#include "../../src/io/sim.h"

#define TTL_MS 30000

static struct sim *one_node(struct metadata **md)
{
    struct sim *s;
    sim_new(7, &s);
    sim_set_log(s, HS_LOG_ERROR, NULL, NULL);
    struct config c;
    config_defaults(&c, "lan");
    snprintf(c.name, sizeof c.name, "solo");
    c.metadata_tombstone_ttl = TTL_MS;
    size_t idx;
    CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
    config_free(&c);
    *md = node_metadata(sim_node(s, idx));
    return s;
}

static int put(struct metadata *md, const char *k, const char *v)
{
    char why[200];
    return metadata_put(md, k, strlen(k), v, v ? strlen(v) : 0, v == NULL, why,
                        sizeof why, NULL);
}

static void check(const struct metadata *md)
{
    char why[200] = "";
    int rc = metadata_check(md, why, sizeof why);
    CHECK_EQ(rc, 0);
    if (rc)
        fprintf(stderr, "    %s\n", why);
}

/* The model: each key absent, live with a value number, or deleted. */
enum {
    ABSENT,
    LIVE,
    DELETED
};
#define KEYS 3000
static int state[KEYS];
static unsigned val[KEYS];

static void key_of(unsigned i, char *k, size_t n)
{
    snprintf(k, n, "key/%u", i * 7919u % 100000u);
}

static void agrees(struct metadata *md)
{
    char k[32];
    size_t live = 0, all = 0;
    for (unsigned i = 0; i < KEYS; i++) {
        key_of(i, k, sizeof k);
        const struct meta_entry *e = metadata_get(md, k, strlen(k));
        if (state[i] == LIVE) {
            char v[16];
            snprintf(v, sizeof v, "%u", val[i]);
            CHECK(e != NULL && e->len == strlen(v) &&
                  memcmp(e->value, v, e->len) == 0);
            live++;
        } else {
            CHECK(e == NULL);
        }
        all += state[i] != ABSENT;
    }
    CHECK_EQ(metadata_count(md, false), live);
    CHECK_EQ(metadata_count(md, true), all);
}

/* Writes and deletes in random order, most of them while the table moves
 * to a new size: every key found, every index in step. */
static void test_rehash_under_writes(void)
{
    struct metadata *md;
    struct sim *s = one_node(&md);
    struct hs_rng r;
    hs_rng_seed(&r, 11);
    memset(state, 0, sizeof state);
    char k[32], v[16];
    int mid_rehash = 0;
    for (int op = 0; op < 20000; op++) {
        unsigned i = (unsigned)(hs_rng_next(&r) % KEYS);
        key_of(i, k, sizeof k);
        if (hs_rng_next(&r) % 4 == 0) {
            CHECK_EQ(put(md, k, NULL), 0);
            state[i] = DELETED;
        } else {
            val[i] = (unsigned)op;
            snprintf(v, sizeof v, "%u", val[i]);
            CHECK_EQ(put(md, k, v), 0);
            state[i] = LIVE;
        }
        if (metadata_rehashing(md)) {
            mid_rehash++;
            if (mid_rehash % 50 == 0) {
                check(md);
                agrees(md);
            }
        }
        if (op % 2000 == 0)
            check(md);
    }
    CHECK(mid_rehash > 100); /* the table grew while written to */
    check(md);
    agrees(md);
    sim_free(s);
}

struct listing {
    char keys[KEYS][32];
    size_t n;
    bool deleted;
};

static void collect(void *ud, const struct meta_entry *e)
{
    struct listing *l = ud;
    if (l->n < KEYS)
        snprintf(l->keys[l->n++], sizeof l->keys[0], "%s", e->key);
    l->deleted |= e->deleted;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Listings by prefix and scans in pages give the keys in order, no more
 * and no fewer, while keys come and go between pages. */
static void test_key_order(void)
{
    struct metadata *md;
    struct sim *s = one_node(&md);
    static char want[KEYS][32];
    size_t nwant = 0;
    char k[32];
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "%c/%u", "abc"[i % 3], i * 37 % 1000);
        CHECK_EQ(put(md, k, "x"), 0);
        if (k[0] == 'b')
            snprintf(want[nwant++], sizeof want[0], "%s", k);
    }
    CHECK_EQ(put(md, "b", "the prefix itself"), 0);
    CHECK_EQ(put(md, "b/\xff", "high byte"), 0);
    CHECK_EQ(put(md, "b0", "past the prefix"), 0);
    snprintf(want[nwant++], sizeof want[0], "b/\xff");
    qsort(want, nwant, sizeof want[0], by_str);
    static struct listing l;
    l.n = 0;
    CHECK_EQ(metadata_each(md, "b/", 2, false, collect, &l), 0);
    CHECK_EQ(l.n, nwant);
    for (size_t i = 0; i < l.n && i < nwant; i++)
        CHECK(strcmp(l.keys[i], want[i]) == 0);
    /* Deleted keys: listed only when asked for. */
    CHECK_EQ(put(md, want[0], NULL), 0);
    l.n = 0;
    metadata_each(md, "b/", 2, false, collect, &l);
    CHECK_EQ(l.n, nwant - 1);
    l.n = 0;
    l.deleted = false;
    metadata_each(md, "b/", 2, true, collect, &l);
    CHECK_EQ(l.n, nwant);
    CHECK(l.deleted);
    /* Scans in pages of 7, deleting and adding keys between pages: each
     * key that stays is seen once, in order. */
    static struct listing all;
    all.n = 0;
    bool more = true;
    char after[32] = "";
    size_t pages = 0;
    while (more) {
        size_t before = all.n;
        size_t got = metadata_scan(md, pages ? after : NULL, strlen(after), 7,
                                   collect, &all, &more);
        CHECK(got <= 7);
        CHECK(got == 7 || !more);
        if (got)
            snprintf(after, sizeof after, "%s", all.keys[all.n - 1]);
        if (pages++ % 5 == 0 && before < all.n) {
            /* gone before it was reached, or behind the scan */
            put(md, "c/999", NULL);
            put(md, "a/0", NULL);
            put(md, "a/!", "behind");
        }
    }
    CHECK_EQ(all.n, metadata_count(md, true) - 1); /* but a/! */
    for (size_t i = 1; i < all.n; i++)
        CHECK(strcmp(all.keys[i - 1], all.keys[i]) < 0);
    check(md);
    sim_free(s);
}

/* More tombstones expire than one tick collects: each tick takes a batch
 * and says whether more are due; all go; the horizon is the newest. */
static void test_collect_across_ticks(void)
{
    struct metadata *md;
    struct sim *s = one_node(&md);
    char k[32];
    for (unsigned i = 0; i < 2500; i++) {
        snprintf(k, sizeof k, "t/%u", i);
        CHECK_EQ(put(md, k, "v"), 0);
    }
    uint64_t newest = 0;
    for (unsigned i = 0; i < 2500; i++) {
        snprintf(k, sizeof k, "t/%u", i);
        char why[100];
        uint64_t ver;
        CHECK_EQ(metadata_put(md, k, strlen(k), NULL, 0, true, why, sizeof why,
                              &ver),
                 0);
        newest = ver > newest ? ver : newest;
    }
    CHECK_EQ(put(md, "kept", "v"), 0);
    CHECK_EQ(metadata_count(md, true), 2501);
    CHECK(!metadata_tick(md)); /* not expired yet */
    CHECK_EQ(metadata_count(md, true), 2501);
    sim_set_clock_offset(s, 0, TTL_MS + 1000);
    int ticks = 0;
    while (metadata_tick(md))
        ticks++;
    CHECK(ticks >= 2);
    CHECK_EQ(metadata_count(md, true), 1);
    CHECK_EQ(metadata_stats(md)->tombstones_collected, 2500);
    check(md);
    /* The horizon went into the store-wide state. */
    struct buf st = BUF_INIT;
    CHECK_EQ(metadata_state_encode(md, &st), 0);
    struct mp_reader r;
    uint32_t nf;
    uint64_t hz = 0;
    mp_reader_init(&r, st.data, st.len);
    CHECK_EQ(mp_read_map(&r, &nf), 0);
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *f;
        uint32_t fl;
        uint64_t v;
        CHECK_EQ(mp_read_raw(&r, &f, &fl), 0);
        CHECK_EQ(mp_read_uint(&r, &v), 0);
        if (fl == 2 && !memcmp(f, "hz", 2))
            hz = v;
    }
    CHECK_EQ(hz, newest);
    buf_free(&st);
    /* The table shrinks with what it holds, a little at each tick. */
    for (int i = 0; i < 100; i++)
        metadata_tick(md);
    CHECK(!metadata_rehashing(md));
    check(md);
    sim_free(s);
}

struct dump {
    struct buf b;
    uint32_t n;
};

static void dump_entry(void *ud, const struct meta_entry *e)
{
    struct dump *d = ud;
    CHECK_EQ(metadata_entry_encode(e, &d->b), 0);
    d->n++;
}

/* Entries replayed twice, or older ones after newer: the same store. */
static void test_entry_restore(void)
{
    struct metadata *a, *b;
    struct sim *sa = one_node(&a), *sb = one_node(&b);
    CHECK_EQ(put(a, "x", "1"), 0);
    struct dump old = {BUF_INIT, 0};
    metadata_scan(a, NULL, 0, 10, dump_entry, &old, NULL);
    CHECK_EQ(put(a, "x", "2"), 0);
    CHECK_EQ(put(a, "y", "3"), 0);
    CHECK_EQ(put(a, "z", NULL), 0);
    struct dump now = {BUF_INIT, 0};
    bool more;
    CHECK_EQ(metadata_scan(a, NULL, 0, 2, dump_entry, &now, &more), 2);
    CHECK(more);
    CHECK_EQ(metadata_scan(a, "y", 1, 2, dump_entry, &now, &more), 1);
    CHECK(!more);
    struct buf st = BUF_INIT;
    CHECK_EQ(metadata_state_encode(a, &st), 0);
    const char *why = NULL;
    CHECK_EQ(metadata_state_restore(b, st.data, st.len, &why), 0);
    for (int round = 0; round < 2; round++) {
        struct mp_reader r;
        mp_reader_init(&r, now.b.data, now.b.len);
        for (uint32_t i = 0; i < now.n; i++) {
            size_t at = r.off;
            CHECK_EQ(mp_skip(&r), 0);
            CHECK_EQ(
                metadata_entry_restore(b, now.b.data + at, r.off - at, &why),
                0);
        }
        /* the older x after the newer: nothing changes */
        CHECK_EQ(metadata_entry_restore(b, old.b.data, old.b.len, &why), 0);
    }
    const struct meta_entry *x = metadata_get(b, "x", 1);
    CHECK(x && x->len == 1 && x->value[0] == '2');
    CHECK(metadata_get(b, "z", 1) == NULL);
    CHECK_EQ(metadata_count(b, true), 3);
    CHECK_EQ(metadata_count(b, false), 2);
    check(b);
    /* Bad input: an error, nothing stored. */
    CHECK(metadata_entry_restore(b, (const uint8_t *)"\x80", 1, &why) != 0);
    CHECK(metadata_entry_restore(b, old.b.data, old.b.len - 1, &why) != 0);
    CHECK(metadata_state_restore(b, (const uint8_t *)"\x01", 1, &why) != 0);
    CHECK_EQ(metadata_count(b, true), 3);
    /* The whole-store snapshot on top of them loads back the same. */
    struct buf snap = BUF_INIT;
    CHECK_EQ(metadata_snapshot(b, &snap), 0);
    metadata_clear(a);
    CHECK_EQ(metadata_restore(a, snap.data, snap.len, &why), 0);
    CHECK_EQ(metadata_count(a, true), 3);
    check(a);
    buf_free(&snap);
    buf_free(&st);
    buf_free(&old.b);
    buf_free(&now.b);
    sim_free(sa);
    sim_free(sb);
}

/* A large store emptied again: the tree's nodes merge back into leaves
 * and every count and hash stays right on the way. */
static void test_tree_grows_and_shrinks(void)
{
    struct metadata *md;
    struct sim *s = one_node(&md);
    char k[32];
    for (unsigned i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "g/%u", i);
        CHECK_EQ(put(md, k, "v"), 0);
    }
    check(md);
    for (unsigned i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "g/%u", i);
        CHECK_EQ(put(md, k, NULL), 0);
    }
    check(md);
    sim_set_clock_offset(s, 0, TTL_MS + 1000);
    while (metadata_tick(md))
        ;
    CHECK_EQ(metadata_count(md, true), 0);
    check(md);
    sim_free(s);
}

/* ===== Syncs between two nodes ===== */

static struct sim *two_nodes(struct metadata **a, struct metadata **b)
{
    struct sim *s;
    sim_new(9, &s);
    sim_set_log(s, HS_LOG_ERROR, NULL, NULL);
    const char *names[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        struct config c;
        config_defaults(&c, "lan");
        snprintf(c.name, sizeof c.name, "%s", names[i]);
        c.push_pull_interval = 3600 * 1000; /* only those we start */
        size_t idx;
        CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
        config_free(&c);
    }
    *a = node_metadata(sim_node(s, 0));
    *b = node_metadata(sim_node(s, 1));
    return s;
}

/* Keys on a only, on b only, on both with either newer, deleted on one
 * side or both, under prefixes deep enough to split the tree. */
static void differ(struct sim *s, struct metadata *a, struct metadata *b,
                   unsigned n, uint64_t seed)
{
    struct hs_rng r;
    hs_rng_seed(&r, seed);
    char k[32], v[32];
    for (unsigned i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%s/%u", i % 2 ? "deep/er" : "k", i);
        snprintf(v, sizeof v, "v%u", i);
        switch (hs_rng_next(&r) % 8) {
        case 0:
            put(a, k, v);
            break;
        case 1:
            put(b, k, v);
            break;
        case 2:
            put(a, k, "older");
            put(b, k, v);
            break;
        case 3:
            put(b, k, "older");
            put(a, k, v);
            break;
        case 4:
            put(a, k, v);
            put(b, k, v);
            put(b, k, NULL);
            break;
        case 5:
            put(a, k, NULL);
            break;
        default: /* the same on both: the same write, copied */
            put(a, k, v);
            {
                struct dump d = {BUF_INIT, 0};
                const char *why;
                const struct meta_entry *e = metadata_get(a, k, strlen(k));
                metadata_entry_encode(e, &d.b);
                CHECK_EQ(metadata_entry_restore(b, d.b.data, d.b.len, &why), 0);
                buf_free(&d.b);
            }
            break;
        }
        if (i % 64 == 0)
            sim_run(s, 1); /* later writes, newer versions */
    }
}

struct rec {
    char key[32], origin[8];
    uint64_t version;
    bool deleted;
};

struct recs {
    struct rec *v;
    size_t n, cap;
};

static void add_rec(void *ud, const struct meta_entry *e)
{
    struct recs *r = ud;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
    }
    struct rec *x = &r->v[r->n++];
    snprintf(x->key, sizeof x->key, "%s", e->key);
    snprintf(x->origin, sizeof x->origin, "%s", e->origin);
    x->version = e->version;
    x->deleted = e->deleted;
}

/* Both stores hold the same entries, tombstones included. */
static void same(struct metadata *a, struct metadata *b, size_t expect)
{
    struct recs ra = {0}, rb = {0};
    bool more;
    metadata_scan(a, NULL, 0, SIZE_MAX, add_rec, &ra, &more);
    metadata_scan(b, NULL, 0, SIZE_MAX, add_rec, &rb, &more);
    CHECK_EQ(ra.n, expect);
    CHECK_EQ(ra.n, rb.n);
    size_t bad = 0;
    for (size_t i = 0; i < ra.n && i < rb.n; i++)
        if (strcmp(ra.v[i].key, rb.v[i].key) ||
            strcmp(ra.v[i].origin, rb.v[i].origin) ||
            ra.v[i].version != rb.v[i].version ||
            ra.v[i].deleted != rb.v[i].deleted)
            bad++;
    CHECK_EQ(bad, 0);
    free(ra.v);
    free(rb.v);
    check(a);
    check(b);
}

/* Two stores that differ every way, small and large: one push/pull led
 * by each side, and they hold the same. */
static void test_sync_converges(void)
{
    static const unsigned sizes[] = {300, 6000};
    for (int i = 0; i < 2; i++) {
        struct metadata *a, *b;
        struct sim *s = two_nodes(&a, &b);
        differ(s, a, b, sizes[i], 100 + (uint64_t)i);
        struct hs_addr aa = sim_addr(s, 0);
        CHECK_EQ(node_join(sim_node(s, 1), &aa, NULL, 1, NULL, NULL), 0);
        sim_run(s, 10000); /* b's join: b leads, both ways */
        same(a, b, sizes[i]);
        const struct meta_stats *sa = metadata_stats(a),
                                *sb = metadata_stats(b);
        CHECK_EQ(sa->fetch_errors + sb->fetch_errors, 0);
        CHECK(sa->sync_streams + sb->sync_streams > 0);
        sim_free(s);
    }
}

/* The push/pull section as a node from before the hash tree writes it:
 * the bucket hashes only. */
static void old_section(const struct buf *in, struct buf *out, bool lists)
{
    struct mp_reader r;
    uint32_t nf, keep = 0;
    mp_reader_init(&r, in->data, in->len);
    CHECK_EQ(mp_read_map(&r, &nf), 0);
    struct mp_reader r2 = r;
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k;
        uint32_t kl;
        mp_read_raw(&r2, &k, &kl);
        keep += k[0] == 'b' || (lists && k[0] == 'l');
        mp_skip(&r2);
    }
    mp_write_map(out, keep);
    for (uint32_t i = 0; i < nf; i++) {
        const uint8_t *k;
        uint32_t kl;
        mp_read_raw(&r, &k, &kl);
        size_t at = r.off;
        mp_skip(&r);
        if (k[0] == 'b' || (lists && k[0] == 'l')) {
            mp_write_raw(out, k, kl);
            buf_append(out, in->data + at, r.off - at);
        }
    }
}

/* Toward nodes from before the tree: the asker gets key lists, and a
 * node reading them syncs with key lists over the streams. */
static void test_old_peers(void)
{
    struct metadata *a, *b;
    struct sim *s = two_nodes(&a, &b);
    differ(s, a, b, 2000, 7);
    struct buf sb = BUF_INIT, old = BUF_INIT, ans = BUF_INIT, oldans = BUF_INIT;
    CHECK_EQ(metadata_sync_encode(b, NULL, 0, &sb), 0);
    old_section(&sb, &old, false);
    CHECK_EQ(metadata_sync_encode(a, old.data, old.len, &ans), 0);
    old_section(&ans, &oldans, true);
    CHECK(oldans.len > 8 * 256 + 100); /* the lists are there */
    struct hs_addr aa = sim_addr(s, 0);
    metadata_sync_merge(b, oldans.data, oldans.len, true, &aa);
    sim_run(s, 5000);
    same(a, b, 2000);
    buf_free(&sb);
    buf_free(&old);
    buf_free(&ans);
    buf_free(&oldans);
    sim_free(s);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    RUN(test_rehash_under_writes);
    RUN(test_key_order);
    RUN(test_collect_across_ticks);
    RUN(test_entry_restore);
    RUN(test_tree_grows_and_shrinks);
    RUN(test_sync_converges);
    RUN(test_old_peers);
    return test_report("test_metadata");
}
