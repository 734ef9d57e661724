/* metadata_int.h: the metadata store's insides, shared by its files
 * (metadata.c and md_*.c) only: limits, the structures, the hashes and
 * orders every index agrees on, and each index's calls. */
#ifndef HS_METADATA_INT_H
#define HS_METADATA_INT_H

#include "core/metadata.h"

#include <string.h>

#include "base/rng.h"
#include "core/broadcast.h"
#include "core/node.h"

/* Batches of one sync stream: what one request and its answer may carry,
 * so that serving or reading either stays a short step of the loop. */
#define WANT_BATCH 500 /* keys asked for by name */
#define PUSH_BATCH 500 /* entries pushed */
#define PUSH_BYTES (4u << 20)
#define VISIT_BATCH 4000        /* entries of ours looked at to fill a push */
#define RANGE_BATCH 500         /* entries answered from ranges */
#define RANGES_BATCH 64         /* ranges asked for at once */
#define ASK_BATCH 512           /* tree nodes asked about */
#define GONE_BATCH 500          /* keys the peer should forget */
#define ANSWER_BYTES (8u << 20) /* of wanted entries */
#define RANGE_BYTES \
    (4u << 20) /* of ranges' entries: with the above,
                                   within max_stream_size's 20 MiB */
/* What one sync may queue, whatever a peer answers (a sync that would
 * need more stops there, and the next push/pull goes on). */
#define SYNC_QUEUE_MAX (1u << 20)
/* The old protocol's key lists (a peer before the hash tree): at most
 * this many keys listed in a push/pull answer, and read from one. */
#define LEGACY_LIST_MAX 20000
#define QUEUE_MAX 4096

/* The hash tree. Each entry has a 64-bit path (a hash of its key); the
 * top level is 256 buckets by its first 8 bits, then each level splits a
 * node 16 ways by the next 4 bits, down to depth 15. A node's hash is the
 * XOR of its entries' digests and its count their number; both change
 * with every write along one path, so they are always up to date. Nodes
 * exist only where entries are: a leaf holds up to LEAF_MAX entries
 * sorted by (path, key), and splits beyond; a subtree that falls to
 * LEAF_MERGE entries becomes a leaf again. */
#define TREE_TOP 256
#define TREE_DEPTH 15
#define LEAF_MAX 64
#define LEAF_MERGE 32
/* A node with at most this many entries is answered as a list of its
 * entries, not as 16 child hashes. */
#define LIST_MAX 8

/* The skip list (key order): heights 1..SL_MAX, each level a quarter of
 * the one below. */
#define SL_MAX 24

/* Upkeep: tombstones collected per tick, hash buckets moved per write and
 * per tick. */
#define TICK_BATCH 256
#define REHASH_STEP 16
#define REHASH_TICK 4096
#define HT_MIN 64

struct fetch {
    struct fetch *next;
    uint64_t version;
    uint16_t keylen;
    bool retried;
    char key[META_KEY_MAX];
    char origin[256];
    uint8_t originlen;
};

/* A node of the hash tree: the entries whose path starts with its
 * prefix. */
struct tnode {
    uint64_t hash;
    uint32_t count;
    uint32_t n, cap;       /* a leaf's entries */
    struct meta_entry **v; /* a leaf: sorted by (path, key) */
    struct tnode *kids;    /* an inner node: 16 children; NULL: a leaf */
};

/* A prefix of paths: the top bits(depth) bits of lo (the rest zero). */
struct pfx {
    uint64_t lo;
    uint8_t depth;
};

/* An entry the peer listed under a prefix (enough to know whether to
 * push ours). */
struct seen {
    uint64_t path, version, digest;
};

/* A prefix whose entries we push, but for those the peer listed there. */
struct prange {
    struct pfx p;
    bool partial; /* the peer listed more than `seen` holds: we
                               cannot tell what it lacks */
    uint8_t nseen;
    struct seen seen[LIST_MAX];
};

/* A key the peer should forget: we lack it, at or below our horizon (it
 * was deleted here). */
struct krec {
    char *key, *origin;
    uint16_t keylen;
    uint8_t originlen;
    uint64_t version;
};

/* A growable queue, read from `pos`. */
#define QUEUE(type)         \
    struct {                \
        type *v;            \
        size_t n, cap, pos; \
    }

/* One sync with a peer, led by us: the tree nodes to ask about, the
 * ranges of keys to fetch or push, single keys wanted or pushed (the old
 * protocol's lists), and keys the peer should forget. */
struct sync {
    struct sync *next;
    struct hs_addr peer;
    uint64_t peer_hz; /* the peer's horizon */
    uint64_t t0;      /* our clock (a version) when it began */
    bool failed;      /* something went unanswered or was cut */
    size_t dropped;   /* keys the peer's horizon showed deleted */
    QUEUE(struct pfx) asks;
    QUEUE(struct pfx) wranges;
    QUEUE(struct prange) pranges;
    QUEUE(char *) want;
    QUEUE(char *) push;
    QUEUE(struct krec) gone;
    /* Where the range being fetched (w) and pushed (p) have got to. */
    bool wcur, pcur;
    uint16_t wcurlen, pcurlen;
    uint64_t wcurpath, pcurpath;
    char wcurkey[META_KEY_MAX], pcurkey[META_KEY_MAX];
};

/* What a stream request of ours is about. */
struct request {
    struct metadata *md;
    struct sync *sync;   /* or NULL */
    struct fetch *fetch; /* or NULL */
    size_t asked;        /* keys wanted by name in this request */
    struct pfx *tree;    /* tree nodes asked about, in order */
    size_t ntree;
    size_t nranges; /* ranges fetched (the first ones queued) */
};

struct htab {
    struct meta_entry **b;
    size_t mask, used;
};

struct metadata {
    struct node *nd; /* for md_node.c only */
    /* The node's parts the store reads, set once by metadata_new (they
     * live as long as the node; what they hold may change). */
    const struct config *cfg;
    const struct hooks *hooks;
    const struct hs_logger *log;
    const struct io *io;
    struct node_stats *nstats;
    size_t namelen; /* of our name, cfg->name */
    size_t n, ndeleted;
    /* Hash table, incremental rehash as redis's dict: while `rehashing`,
     * buckets below `rehash` of ht[0] have moved to ht[1]. */
    struct htab ht[2];
    size_t rehash;
    bool rehashing;
    uint64_t seed;     /* of the table's hash: keys cannot aim */
    struct hs_rng rng; /* skip list heights */
    struct meta_entry *head[SL_MAX];
    struct tnode top[TREE_TOP];
    struct meta_entry **heap; /* tombstones, oldest version first */
    size_t nheap, heapcap;
    uint64_t hlc;
    uint64_t horizon; /* highest tombstone version collected */
    uint64_t synced;  /* t0 of the last sync that completed (kept
                                with the horizon: they go together) */
    uint32_t epoch;   /* marks of key-list syncs */
    bool dirty;
    uint64_t hz_logged_at; /* refusals by the horizon: last log line */
    uint64_t hz_quiet;     /* ... and those since, not logged */
    bool hz_logged;
    struct fetch *fetches;
    struct sync *syncs;
    struct bqueue queue;
    struct meta_stats stats;
    meta_observer_fn observer;
    void *observer_ud;
    struct meta_journal journal; /* the data dir's log */
    /* Keys whose hooks are running: a hook must not write its own key
     * (the entry it was handed would be freed under it). */
    struct {
        const char *key;
        size_t len;
    } busy[8];
    int nbusy;
};

/* ===== Hashing and ordering ===== */

static inline uint64_t fnv64(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* A key's place in the tree. Its first 8 bits are the bucket of the
 * digest that push/pulls have always carried (the hash's low byte), so
 * the top level compares with nodes from before the tree. */
static inline uint64_t key_path(const char *k, size_t n)
{
    uint64_t h = mix64(fnv64(1469598103934665603ull, k, n));
    return h >> 8 | h << 56;
}

static inline uint64_t digest_of(const char *k, size_t kl, const char *o,
                                 size_t ol, uint64_t version, bool deleted)
{
    uint64_t h = fnv64(1469598103934665603ull, k, kl);
    h = fnv64(h, o, ol);
    h ^= mix64(version * 2 + (deleted ? 1 : 0));
    return mix64(h) | 1; /* never 0 */
}

/* Order of writes: version, then origin. >0 if a wins. */
static inline int newer(uint64_t av, const char *ao, size_t aol, uint64_t bv,
                        const char *bo, size_t bol)
{
    if (av != bv)
        return av > bv ? 1 : -1;
    int c = memcmp(ao, bo, HS_MIN(aol, bol));
    if (c)
        return c;
    return aol == bol ? 0 : aol > bol ? 1 : -1;
}

/* Key order: bytes, then length. */
static inline int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, HS_MIN(al, bl));
    if (c)
        return c;
    return al == bl ? 0 : al < bl ? -1 : 1;
}

/* Tree order: path, then key. */
static inline int pk_cmp(uint64_t path, const char *k, size_t kl,
                         const struct meta_entry *e)
{
    if (path != e->path)
        return path < e->path ? -1 : 1;
    return key_cmp(k, kl, e->key, e->keylen);
}

static inline uint64_t version_ms(uint64_t v)
{
    return v >> 16;
}

/* ===== The hash tree's prefixes ===== */

/* Which child of a node at depth d (1..TREE_DEPTH-1) a path falls in. */
static inline unsigned nib(uint64_t path, int d)
{
    return (unsigned)(path >> (56 - 4 * d)) & 15;
}

/* The prefix bits of a node at depth d. */
static inline int pfx_bits(int d)
{
    return 4 + 4 * d;
}

static inline uint64_t pfx_hi(const struct pfx *p)
{
    int bits = pfx_bits(p->depth);
    return bits >= 64 ? p->lo : p->lo | (UINT64_MAX >> bits);
}

static inline struct pfx pfx_child(const struct pfx *p, unsigned c)
{
    struct pfx k = {p->lo | (uint64_t)c << (56 - 4 * p->depth),
                    (uint8_t)(p->depth + 1)};
    return k;
}

/* What the store has under a prefix: a whole node, or a slice of a leaf
 * above the prefix's depth. */
struct tview {
    const struct tnode *t;
    uint32_t from, to; /* a leaf's entries in the prefix */
    uint32_t count;
    uint64_t hash;
};

/* ===== md_table.c: the hash table ===== */
struct meta_entry *md_find_path(const struct metadata *md, const char *k,
                                size_t n, uint64_t path);
struct meta_entry *md_find(const struct metadata *md, const char *k, size_t n);
void md_rehash_step(struct metadata *md, size_t steps);
int md_ht_reserve(struct metadata *md);
void md_ht_insert(struct metadata *md, struct meta_entry *e);
void md_ht_remove(struct metadata *md, struct meta_entry *e);
void md_ht_maybe_shrink(struct metadata *md);

/* ===== md_skiplist.c: the skip list (key order) ===== */
int md_random_level(struct metadata *md);
void md_sl_insert(struct metadata *md, struct meta_entry *e);
void md_sl_remove(struct metadata *md, struct meta_entry *e);
struct meta_entry *md_sl_seek(const struct metadata *md, const char *k,
                              size_t kl, bool after);

/* ===== md_tree.c: the hash tree ===== */
int md_tree_reserve(struct metadata *md, uint64_t path);
void md_tree_add(struct metadata *md, struct meta_entry *e);
void md_tree_remove(struct metadata *md, struct meta_entry *e);
void md_free_kids(struct tnode *t);
struct meta_entry *md_tree_after(const struct metadata *md, uint64_t path,
                                 const char *k, size_t kl, bool incl);
void md_tree_view(const struct metadata *md, const struct pfx *p,
                  struct tview *v);
void md_tree_kids(const struct pfx *p, const struct tview *v, uint64_t hash[16],
                  uint32_t count[16]);

/* ===== md_heap.c: the tombstone heap (oldest version first) ===== */
int md_heap_reserve(struct metadata *md);
void md_heap_push(struct metadata *md, struct meta_entry *e);
void md_heap_remove(struct metadata *md, struct meta_entry *e);
/* Every slot in order, each entry knowing its slot: O(n), for
 * HS_INVARIANT. */
bool md_heap_ordered(const struct metadata *md);

/* A write as it arrived: views into the message that brought it. */
struct view {
    const uint8_t *key, *value, *origin;
    uint32_t keylen, len, originlen;
    bool has_value, deleted;
    uint64_t version, big;
};

/* What md_apply made of a write. */
enum {
    APPLIED,
    IGNORED,
    REFUSED,
    HORIZON
};

/* ===== The store's clocks ===== */

/* The node's clock (ms) and the wall clock (ms since the epoch). */
static inline uint64_t md_now(const struct metadata *md)
{
    return md->io->now(md->io->ctx);
}

static inline uint64_t md_wall(const struct metadata *md)
{
    return md->io->wall(md->io->ctx);
}

/* A tombstone of this version is past metadata_tombstone_ttl. */
static inline bool md_expired(const struct metadata *md, uint64_t version,
                              uint64_t now)
{
    return now > version_ms(version) + md->cfg->metadata_tombstone_ttl;
}

void md_hlc_observe(struct metadata *md, uint64_t v);

/* ===== md_entry.c: entries in every index ===== */
void md_entry_free(struct metadata *md, struct meta_entry *e);
void md_link_entry(struct metadata *md, struct meta_entry *e);
void md_unlink_entry(struct metadata *md, struct meta_entry *e);
/* Store a write (the entry replaces any older one). */
int md_store(struct metadata *md, const char *k, size_t klen, const uint8_t *v,
             size_t vlen, bool del, uint64_t version, const char *origin,
             size_t olen, struct meta_entry **out);

/* ===== md_codec.c: entries on the wire ===== */
struct mp_reader;
void md_put_entry(struct buf *b, const struct meta_entry *e, bool value,
                  bool announce);
int md_get_entry(struct mp_reader *r, struct view *v);

/* ===== md_apply.c: applying writes ===== */
void md_note_horizon(struct metadata *md, const struct view *v);
/* A write from elsewhere: APPLIED, IGNORED, REFUSED or HORIZON. */
int md_apply(struct metadata *md, const struct view *v);
bool md_drop(struct metadata *md, struct meta_entry *e);

/* ===== md_gossip.c: writes as rumors ===== */
void md_gossip(struct metadata *md, struct meta_entry *e);

/* ===== metadata.c: fetches of large values ===== */
void md_start_fetch(struct metadata *md, const struct view *v,
                    const struct hs_addr *from);

#define LIST_CAP 1024 /* entries listed for one node (path collisions) */

/* ===== md_sync.c: the syncs we lead ===== */
#define Q_WANT(sy, k, kl) \
    md_q_key(sy, &(sy)->want.v, &(sy)->want.n, &(sy)->want.cap, k, kl)
#define Q_PUSH(sy, k, kl) \
    md_q_key(sy, &(sy)->push.v, &(sy)->push.n, &(sy)->push.cap, k, kl)
uint64_t md_peer_horizon(const struct metadata *md, uint64_t hz);
void md_sync_free(struct metadata *md, struct sync *sy);
void md_q_ask(struct sync *sy, const struct pfx *p);
void md_q_want_range(struct sync *sy, const struct pfx *p);
void md_q_push_range(struct sync *sy, const struct prange *r);
void md_q_key(struct sync *sy, char ***v, size_t *n, size_t *cap, const char *k,
              size_t kl);
void md_q_gone(struct sync *sy, const char *k, size_t kl, const char *o,
               size_t ol, uint64_t version);
int md_read_pfx(struct mp_reader *r, uint32_t n, struct pfx *p);
/* Send the next request of a sync, or finish it. */
void md_sync_next(struct metadata *md, struct sync *sy);

/* ===== md_fetch.c: fetches of large values ===== */
void md_fetch_free(struct metadata *md, struct fetch *f);
bool md_retry_from_origin(struct metadata *md, struct fetch *f);

/* ===== md_node.c: the node's side ===== */
/* Send a metadata request over a new stream; its answer comes to
 * metadata_stream_answer with rq. */
int md_send_request(struct metadata *md, const struct hs_addr *to,
                    const struct buf *body, struct request *rq);
bool md_member_addr(const struct metadata *md, const char *name, size_t len,
                    struct hs_addr *out);
void md_count_drop(struct metadata *md, int reason, const struct hs_addr *from,
                   const char *what, const char *why);

#endif
