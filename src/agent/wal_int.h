/* wal_int.h: the parts of the data dir's code (wal.h), shared by its
 * files: wal.c (life, upkeep, closing), wal_log.c (the log and its group
 * commit), wal_snap.c (snapshots) and wal_job.c (file work in the thread
 * pool). Private to src/agent. */
#ifndef HS_WAL_INT_H
#define HS_WAL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/wal.h"
#include "base/buf.h"
#include "core/metadata.h"
#include "core/snapshot.h"

#define PATH_LEN 600

enum {
    JOB_FLUSH,
    JOB_PROBE,
    JOB_CHUNK,
    JOB_FILES,
    JOB_MEMBERS
};

struct batch {
    struct batch *next;
    uint64_t gen; /* of the log file it goes to */
    struct buf b;
    uint64_t last_seq; /* of its last record */
    size_t records;
};

struct job {
    uv_work_t req;
    struct wal *w;
    int kind;
    char dir[PATH_LEN];
    char path[PATH_LEN + 8]; /* the file written (a .tmp for a segment) */
    char final[PATH_LEN];    /* what it is renamed to when finished */
    const uint8_t *data;
    size_t len;
    uint8_t *owned; /* data, when the job owns it */
    int fd;         /* in and out: the open file, or -1 */
    bool create;    /* open path first, creating it */
    bool finish;    /* fsync, close, rename to final */
    char **unlink;  /* files to remove after (then the dir fsynced) */
    size_t nunlink;
    struct batch *batch; /* JOB_FLUSH */
    uint64_t gen;        /* JOB_PROBE: of the file it makes */
    uint32_t seg_idx;    /* JOB_CHUNK that finishes a segment: which, */
    uint16_t lastlen;    /* and its last key */
    char last[META_KEY_MAX + 1];
    int err;          /* out: errno */
    const char *what; /* out: the step that failed */
};

struct compaction {
    uint64_t gen;
    uint32_t idx;               /* the segment being built */
    char key[META_KEY_MAX + 1]; /* the last key taken (the walk's place) */
    uint16_t keylen;
    bool has_key;
    struct buf out;     /* the next chunk */
    uint64_t seg_bytes; /* of the current segment, out included */
    uint64_t seg_entries;
    int fd;         /* the segment's .tmp, open between jobs */
    bool scanned;   /* the walk is over */
    bool last_sent; /* the last segment is handed over */
    bool cleaning;  /* removing the older files */
    uint64_t entries, bytes, started, dropped_at_start;
};

struct wal {
    uv_loop_t *loop;
    struct node *nd;
    struct metadata *md;
    const struct hs_logger *log;
    char dir[CONFIG_STR_MAX];
    struct wal_options o;
    uv_idle_t kick; /* starts the next group at the next loop turn */
    uv_idle_t step; /* a snapshot's walk, one piece per loop turn */
    uv_timer_t tick;
    int handles;
    /* The log. */
    int fd; /* open on generation fd_gen, or -1 */
    uint64_t fd_gen;
    uint64_t gen;    /* where new records go */
    bool header_due; /* the next batch starts the file of `gen` */
    uint64_t max_gen;
    struct batch *head, *tail;
    struct job *log_job;
    uint64_t appended, durable; /* record numbers */
    struct wal_wait waits;      /* sentinel of a ring, oldest first */
    struct snapshot_log *logs;  /* the log files and their bytes */
    size_t nlogs;
    struct buf state; /* the store state last logged */
    char reason[160]; /* why saving fails, for the clients */
    /* Snapshots. */
    struct snapshot_seg *segs; /* on disk, every generation */
    size_t nsegs;
    struct compaction *cp;
    struct job *file_job;
    struct job *members_job;
    bool needs_snapshot; /* the log missed changes, or a file was bad */
    bool legacy;         /* hearsay.snapshot still there */
    bool snap_failing;
    uint64_t retry_at; /* uv_now before which no snapshot starts */
    uint64_t members_at;
    uint32_t members_crc;
    bool members_saved;
    bool members_failing;
    /* Closing. */
    bool closing;
    bool handles_closing;
    struct buf last_members;
    void (*close_cb)(void *ud);
    void *close_ud;
    struct wal_stats st;
};

/* ===== Jobs (wal_job.c) ===== */

struct job *wal_job_new(struct wal *w, int kind);
void wal_job_free(struct job *j);
/* Remove path once the job's file work is done. */
int wal_job_unlink(struct job *j, const char *path);
/* Hand the job to the thread pool: wal_job_done runs it back on the
 * loop. HS_EIO when it could not be queued. */
int wal_job_queue(struct job *j);
/* The file work of a job, in a thread (or on the loop at shutdown). */
void wal_job_work(uv_work_t *req);
/* A save failed: count it and keep its sentence (reason: its clause). */
void wal_count_failure(struct wal *w, const char *what, const char *path,
                       int err, char *reason, size_t n);
void wal_count_save(struct wal *w);
/* A job is back on the loop (wal.c): its kind's _done, then free it. */
void wal_job_done(uv_work_t *req, int status);

/* ===== The log (wal_log.c) ===== */

/* The store's journal: a change applied, and whether to refuse a local
 * write up front. */
void wal_on_append(void *ud, const struct meta_entry *e);
bool wal_on_refuse(void *ud, char *why, size_t whylen);
/* Log the store's own fields (its clock) when they changed. */
void wal_log_state(struct wal *w, bool force);
void wal_flush_done(struct wal *w, struct job *j);
/* Failing: try a new log file, a small write and its fsync. */
void wal_probe(struct wal *w);
void wal_probe_done(struct wal *w, struct job *j);
/* At shutdown, on the loop: what is pending goes to the log now. */
void wal_flush_now(struct wal *w);

/* ===== Snapshots (wal_snap.c) ===== */

void wal_compaction_start(struct wal *w);
void wal_compaction_free(struct wal *w);
/* Start a snapshot when one is due. */
void wal_maybe_compact(struct wal *w);
/* The whole snapshot is on disk: remove the older files. */
void wal_try_cleanup(struct wal *w);
void wal_chunk_done(struct wal *w, struct job *j);
void wal_cleanup_done(struct wal *w, struct job *j);

#endif
