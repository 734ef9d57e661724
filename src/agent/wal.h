/* wal.h: the agent's data dir while it runs (the files are snapshot.h's).
 *
 * Every change the store applies, local or remote, is appended to the
 * log as a record. Records gather in memory while an fsync is in flight
 * and go to disk together in the next (group commit); the write and the
 * fsync run in libuv's thread pool, never on the loop. A local write is
 * acknowledged once the group holding it is on disk (wal_wait).
 *
 * When the log grows past max(snapshot_threshold, the last snapshot's
 * size) it is compacted into a new snapshot: the log is switched to a new
 * generation, then the store is walked in key order a bounded number of
 * entries per loop turn and written in pieces (segments), each to a
 * temporary file, fsynced and renamed; an older segment is removed as
 * soon as the new ones cover its keys, so a snapshot needs one segment
 * of space beyond the store, not twice the store. The older logs go once
 * the whole snapshot is written.
 *
 * A write or fsync that fails (a full disk) fails the writes waiting on
 * it and puts the log in the failing state: local writes are refused up
 * front (HS_EIO, with the reason), remote changes are applied but not
 * logged, and once a second the log tries a new file; when that works it
 * logs so, and a new snapshot saves what the log missed. It logs once
 * when it starts failing and once when it saves again.
 *
 * Only the agent uses it (main.c makes it, control_kv.c waits on it). */
#ifndef HS_WAL_H
#define HS_WAL_H

#include <uv.h>

#include "base/log.h"
#include "core/node.h"
#include "core/snapshot.h"

struct wal;

struct wal_options {
    uint64_t compact_bytes; /* snapshot_threshold */
    size_t segment_bytes;   /* a segment is closed past this size */
    size_t chunk_bytes;     /* bytes handed to a thread at a time */
    size_t step_entries;    /* entries serialized per loop turn at most */
};
#define WAL_SEGMENT_BYTES (4u << 20)
#define WAL_CHUNK_BYTES (256u << 10)
#define WAL_STEP_ENTRIES 256

struct wal_stats {
    uint64_t log_bytes;      /* in the log files now */
    uint64_t records;        /* appended to the log */
    uint64_t fsyncs;         /* groups written and fsynced */
    uint64_t group_max;      /* most records in one group */
    uint64_t saves;          /* groups, segments, members files saved */
    uint64_t save_failures;  /* writes or fsyncs that failed */
    uint64_t refused;        /* local writes refused while failing */
    uint64_t dropped;        /* remote changes not logged while failing */
    uint64_t snapshots;      /* snapshots written whole */
    uint64_t snapshot_bytes; /* of the segments now */
    uint64_t last_save_time; /* unix seconds of the last save, or 0 */
    uint64_t last_failure_time;
    bool failing;
    char last_error[320]; /* the last failure's sentence, or "" */
};

/* A local write waiting to be on disk: embed it in the request's state;
 * cb runs once, on the loop, with 0 or an error and its sentence. */
struct wal_wait {
    struct wal_wait *prev, *next;
    uint64_t seq;
    void (*cb)(struct wal_wait *wt, int err, const char *why);
};

/* Take over the data dir that snapshot_open loaded into nd's store
 * (`files` is consumed): attach to the store and start the log.
 * `opts` NULL: the defaults, with compact_bytes from the config. */
int wal_new(uv_loop_t *loop, const char *dir, struct node *nd,
            const struct hs_logger *log, struct snapshot_files *files,
            const struct wal_options *opts, struct wal **out);
/* Wait until every change applied so far is on disk. Returns 0 (cb will
 * run), 1 when it already is (cb will not run), or HS_EIO with the
 * reason in why when the log is failing (cb will not run). */
int wal_wait(struct wal *w, struct wal_wait *wt, char *why, size_t whylen);
/* Forget a wait (its requester went away): cb will not run. */
void wal_wait_cancel(struct wal_wait *wt);
/* Start a snapshot now (if none is under way). */
void wal_compact(struct wal *w);
/* True while a snapshot is under way. */
bool wal_compacting(const struct wal *w);
/* True while file work runs in a thread (for tests and benchmarks: the
 * directory is then between two of its steps). */
bool wal_busy(const struct wal *w);
const struct wal_stats *wal_stats(const struct wal *w);
/* Detach from the store, finish what is in flight, write what is pending
 * and the members (the node must still be open when this is called),
 * close, then call cb. Waits not yet answered get their answer first. */
void wal_close(struct wal *w, void (*cb)(void *ud), void *ud);

#endif
