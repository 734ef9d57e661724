/* metadata.h: the cluster-wide metadata store (pekonode's Publish/Read,
 * grown into a versioned key/value store for configuration).
 *
 * Every write carries a hybrid logical clock version (wall-clock ms in the
 * high 48 bits, a counter in the low 16) and its origin's name; the higher
 * (version, origin) wins everywhere, so every node converges on the same
 * value whatever the order of arrival. Deletes are tombstones, collected
 * after metadata_tombstone_ttl. Every write, local or remote, passes the
 * validate_metadata hook first.
 *
 * Spreading: a write that fits in a packet is gossiped as a rumor; a larger
 * one is announced by gossip and fetched over a stream from a node that
 * has it. Each push/pull carries a digest (a hash per bucket of keys); the
 * two sides then exchange only the entries of the buckets that differ.
 *
 * The store belongs to the node (node.c creates it). Keys and values are
 * copied in; views handed out are valid until the next change. */
#ifndef HS_METADATA_H
#define HS_METADATA_H

#include "addr.h"
#include "buf.h"

struct node;

#define META_KEY_MAX 256
#define META_BUCKETS 256

struct bcast;

struct meta_entry {
    struct bcast *bcast;  /* our queued gossip about it (broadcast.h) */
    const char *key;      /* stored with the entry */
    uint16_t keylen;
    uint8_t originlen;
    bool deleted;         /* a tombstone */
    uint32_t len;
    uint8_t *value;       /* owned; NULL for a tombstone */
    uint64_t version;
    char origin[256];
    uint64_t changed;     /* node clock (ms) of the last local change */
    uint64_t digest;      /* hash of key, version, origin, deleted */
    uint32_t hash;        /* of the key */
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
    bool local;           /* written here, not received */
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
/* Visit entries in key order (tombstones too if `deleted`). Returns 0 or
 * HS_ENOMEM (nothing visited). */
typedef void (*meta_visit_fn)(void *ud, const struct meta_entry *e);
int metadata_each(const struct metadata *md, const char *prefix,
                  size_t prefixlen, bool deleted, meta_visit_fn fn,
                  void *ud);
size_t metadata_count(const struct metadata *md, bool deleted);

/* Watch every write applied, local or remote, after the on_metadata hook
 * (the control endpoint's `kv watch`). One observer; NULL removes it. */
typedef void (*meta_observer_fn)(void *ud, const struct meta_change *c);
void metadata_set_observer(struct metadata *md, meta_observer_fn fn,
                           void *ud);

/* ===== For the node ===== */

/* A metadata user message (the body of a hearsay envelope of kind
 * WIRE_ENV_META) arrived by gossip from `from` (the packet's source). */
void metadata_on_gossip(struct metadata *md, const uint8_t *p, size_t n,
                        const struct hs_addr *from);
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
void metadata_stream_answer(struct metadata *md, void *req,
                            const uint8_t *p, size_t n);
/* Periodic work: tombstone collection. */
void metadata_tick(struct metadata *md);

/* ===== Persistence (the bytes; the agent does the file) ===== */

/* Visit, in key order (bytewise, a shorter key first), up to `max`
 * entries, tombstones too, whose key is after `after` (NULL: from the
 * first). Returns how many were visited; *more tells whether any remain
 * after the last one visited. The data dir's snapshots walk the store
 * with it a bounded piece at a time. */
size_t metadata_scan(const struct metadata *md, const char *after,
                     size_t afterlen, size_t max, meta_visit_fn fn,
                     void *ud, bool *more);
/* The store-wide fields (the HLC) as bytes, and back: restoring never
 * moves them backwards. */
int metadata_state_encode(const struct metadata *md, struct buf *out);
int metadata_state_restore(struct metadata *md, const uint8_t *p, size_t n,
                           const char **why);
/* One entry as bytes, and back: a last-writer-wins merge without hooks
 * or gossip, so replaying the same or an older entry changes nothing. */
int metadata_entry_encode(const struct meta_entry *e, struct buf *out);
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


/* The whole store, tombstones included, and the HLC. */
int metadata_snapshot(const struct metadata *md, struct buf *out);
/* Forget every entry (a snapshot that failed half-way through). */
void metadata_clear(struct metadata *md);
/* Load a snapshot into an empty store (no hooks called). */
int metadata_restore(struct metadata *md, const uint8_t *p, size_t n,
                     const char **why);

struct meta_stats {
    uint64_t writes_local, writes_remote, refused_local, refused_remote,
        refused_future, fetches, fetch_errors, sync_streams,
        sync_bytes_out, sync_bytes_in, digest_bytes_out, digest_bytes_in,
        tombstones_collected;
};
const struct meta_stats *metadata_stats(const struct metadata *md);
/* True when anything changed since the last call (for snapshots). */
bool metadata_take_dirty(struct metadata *md);
/* Mark changed (a snapshot that failed is tried again). */
void metadata_set_dirty(struct metadata *md);

/* The HLC: the version a write made now would get. */
uint64_t metadata_hlc_next(struct metadata *md, uint64_t wall_ms);

#endif
