/* metadata.h: the cluster-wide metadata store (pekonode's Publish/Read,
 * grown into a versioned key/value store for configuration).
 *
 * Every write carries a hybrid logical clock version (wall-clock ms in the
 * high 48 bits, a counter in the low 16) and its origin's name; the higher
 * (version, origin) wins everywhere, so every node converges on the same
 * value whatever the order of arrival. Deletes are tombstones, collected
 * after metadata_tombstone_ttl; the highest version collected is the
 * store's horizon, below which a key the store does not hold cannot come
 * back. Every write, local or remote, passes the validate_metadata hook
 * first.
 *
 * Spreading: a write that fits in a packet is gossiped as a rumor; a larger
 * one is announced by gossip and fetched over a stream from a node that
 * has it. Each push/pull carries the top of a hash tree of the store (256
 * bucket hashes); the side that started it then walks down the buckets
 * that differ, level by level over a stream, to the keys that differ, so a
 * sync costs what differs, not what is stored.
 *
 * Indexes: a hash table (grown and shrunk a few buckets at a time), a skip
 * list in key order (listings and scans), the hash tree (syncs) and a heap
 * of tombstones by version (collection): no call walks the whole store.
 *
 * The store belongs to the node (node.c creates it). Keys and values are
 * copied in; views handed out are valid until the next change. */
#ifndef HS_METADATA_H
#define HS_METADATA_H

#include "base/addr.h"
#include "base/buf.h"

struct node;

#define META_KEY_MAX 256
#define META_BUCKETS 256

struct bcast;

struct meta_entry {
    struct bcast *bcast; /* our queued gossip about it (broadcast.h) */
    const char *key;     /* stored with the entry, NUL-terminated */
    const char *origin;  /* stored with the entry, NUL-terminated */
    uint8_t *value;      /* owned; NULL for a tombstone */
    uint64_t version;
    uint64_t changed; /* node clock (ms) of the last local change */
    uint64_t digest;  /* hash of key, version, origin, deleted */
    uint32_t len;
    uint16_t keylen;
    uint8_t originlen;
    bool deleted; /* a tombstone */
    /* The store's own (md_*.c): */
    uint64_t path;            /* place in the hash tree (of the key) */
    struct meta_entry *hnext; /* hash table chain */
    size_t heap;              /* tombstones: heap slot + 1 */
    uint32_t mark;            /* scratch of a key-list sync */
    uint8_t level;            /* skip list height */
    struct meta_entry *fwd[]; /* skip list links, then the key, origin */
};

/* A change as the hooks see it. value is NULL for a delete; old is NULL
 * when the key had no live value. */
struct meta_change {
    const char *key;
    size_t keylen;
    const uint8_t *value;
    size_t len;
    const uint8_t *old;
    size_t oldlen;
    const char *origin;
    size_t originlen;
    uint64_t version;
    bool local; /* written here, not received */
};

struct metadata;

int metadata_new(struct node *nd, struct metadata **out);
void metadata_free(struct metadata *md);

/* A local write (value NULL: delete). Returns 0 with the version given
 * in *version (may be NULL), HS_EREFUSED with the validation hook's
 * reason in why, HS_ETOOBIG, HS_EINVAL (bad key), or HS_EBUSY when a
 * metadata hook writes the very key it was called for (do it later, from
 * a timer). */
int metadata_put(struct metadata *md, const char *key, size_t keylen,
                 const void *value, size_t len, bool del, char *why,
                 size_t whylen, uint64_t *version);
/* The live entry for key, or NULL (absent or deleted). */
const struct meta_entry *metadata_get(const struct metadata *md,
                                      const char *key, size_t keylen);
/* Visit the entries whose key starts with prefix, in key order
 * (tombstones too if `deleted`): O(log n + what it visits). Returns 0.
 * fn must not change the store. */
typedef void (*meta_visit_fn)(void *ud, const struct meta_entry *e);
int metadata_each(const struct metadata *md, const char *prefix,
                  size_t prefixlen, bool deleted, meta_visit_fn fn, void *ud);
/* Visit, in key order, up to max entries (tombstones included) whose key
 * sorts after `after` (afterlen bytes; after == NULL: from the first
 * key). Returns how many were visited; *more tells whether any remain.
 * O(log n + max). fn must not change the store; a scan resumed after
 * changes sees each key that stayed in the store exactly once. */
size_t metadata_scan(const struct metadata *md, const char *after,
                     size_t afterlen, size_t max, meta_visit_fn fn, void *ud,
                     bool *more);
/* Entries: live ones, or with tombstones too. O(1). */
size_t metadata_count(const struct metadata *md, bool deleted);

/* Watch every write applied, local or remote, after the on_metadata hook
 * (the control endpoint's `kv watch`). One observer; NULL removes it. */
typedef void (*meta_observer_fn)(void *ud, const struct meta_change *c);
void metadata_set_observer(struct metadata *md, meta_observer_fn fn, void *ud);

/* ===== For the node ===== */

/* A metadata user message (the body of a hearsay envelope of kind
 * WIRE_ENV_META) arrived by gossip from `from` (the packet's source). */
void metadata_on_gossip(struct metadata *md, const uint8_t *p, size_t n,
                        const struct hs_addr *from);
/* The store's share of a gossip packet (md_gossip.c): up to `limit`
 * bytes of queued writes, each sent at most transmit_limit times, laid
 * end to end in out with their lengths in lens (at most max). */
size_t metadata_take(struct metadata *md, size_t overhead, size_t limit,
                     int transmit_limit, struct buf *out, size_t *lens,
                     size_t max);
/* The metadata section of our push/pull user state. `remote` is the
 * peer's section when we answer a push/pull (we then add the key lists of
 * the buckets that differ), NULL when we start one. */
int metadata_sync_encode(struct metadata *md, const uint8_t *remote,
                         size_t remotelen, struct buf *out);
/* The peer's section arrived in a push/pull: `started` when we started
 * this push/pull (we then fetch and push what differs, over a stream to
 * `peer`). */
void metadata_sync_merge(struct metadata *md, const uint8_t *p, size_t n,
                         bool started, const struct hs_addr *peer);
/* A metadata stream request (after the envelope): apply what it brings,
 * and write the answer (entries asked for) into reply. */
int metadata_stream_serve(struct metadata *md, const uint8_t *p, size_t n,
                          struct buf *reply);
/* The answer to a request of ours arrived (or the stream failed: p NULL). */
void metadata_stream_answer(struct metadata *md, void *req, const uint8_t *p,
                            size_t n);
/* Writes waiting in the gossip queue. */
size_t metadata_queued(const struct metadata *md);
/* Periodic work: collect expired tombstones (a bounded batch), move the
 * hash table along. True when more tombstones are due already: call again
 * soon rather than at the next period. */
bool metadata_tick(struct metadata *md);

/* ===== Persistence (the bytes; the agent does the file) =====
 * The store-wide fields (the HLC, the horizon) and each entry are written
 * and read on their own, so that a snapshot can be written a slice at a
 * time (metadata_scan) and a log of writes replayed over it. */

/* The store-wide fields: a msgpack map {hlc, hz (the horizon), sy (the
 * start of the last sync completed)}. */
int metadata_state_encode(const struct metadata *md, struct buf *out);
/* Read them back (the HLC and the horizon only ever move forward). */
int metadata_state_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why);
/* One entry, tombstones too: the msgpack map of the wire's entries. */
int metadata_entry_encode(const struct meta_entry *e, struct buf *out);
/* Merge one entry as the store would a write (the higher (version,
 * origin) wins), without hooks or gossip: replaying the same entry or an
 * older one does nothing, so a snapshot taken while the store changed and
 * a replay of the writes since are correct together. The horizon is not
 * consulted (a snapshot's own live keys may be older than its horizon). */
int metadata_entry_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why);

/* The data dir's log. `append` sees every change the store applies,
 * local or remote, once validated and stored, before the on_metadata
 * hook. `refuse`, when set, is asked before a local write is validated:
 * true (with its sentence in why) refuses the write with HS_EIO, as while
 * the log cannot be written. NULL (or a NULL journal) detaches. */
struct meta_journal {
    void (*append)(void *ud, const struct meta_entry *e);
    bool (*refuse)(void *ud, char *why, size_t whylen);
    void *ud;
};
void metadata_set_journal(struct metadata *md, const struct meta_journal *j);

/* The whole store, tombstones included, and the store-wide fields: a map
 * {hlc, hz, sy, e: [entries]}. O(n): for tests and small stores. */
int metadata_snapshot(const struct metadata *md, struct buf *out);
/* Forget every entry, the horizon and the sync mark (a snapshot that
 * failed half-way through). */
void metadata_clear(struct metadata *md);
/* Load a snapshot (merged as metadata_entry_restore does; no hooks). */
int metadata_restore(struct metadata *md, const uint8_t *p, size_t n,
                     const char **why);

struct meta_stats {
    uint64_t writes_local, writes_remote, refused_local, refused_remote,
        refused_future, fetches, fetch_errors, sync_streams, sync_bytes_out,
        sync_bytes_in, digest_bytes_out, digest_bytes_in, tombstones_collected,
        refused_horizon, /* writes of keys not held, at or below the
                             horizon: deleted and collected already */
        dropped_horizon; /* keys forgotten because a peer whose horizon
                             covers them lacks them */
};
const struct meta_stats *metadata_stats(const struct metadata *md);
/* True when anything changed since the last call (for snapshots). */
bool metadata_take_dirty(struct metadata *md);
/* Mark changed (a snapshot that failed is tried again). */
void metadata_set_dirty(struct metadata *md);

/* The HLC: the version a write made now would get. */
uint64_t metadata_hlc_next(struct metadata *md, uint64_t wall_ms);
/* The horizon in force: the highest tombstone version collected, but no
 * higher than the start of the last sync completed (see metadata.c). */
uint64_t metadata_horizon(const struct metadata *md);

/* ===== For tests ===== */

/* Check every index against the others: 0, or -1 with the first fault in
 * why. O(n). */
int metadata_check(const struct metadata *md, char *why, size_t whylen);
/* True while the hash table moves to a new size. */
bool metadata_rehashing(const struct metadata *md);

#endif
