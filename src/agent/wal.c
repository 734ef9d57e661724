/* wal.c: the data dir while the agent runs: the log and its group
 * commit, snapshots written in pieces, the members file, and what to do
 * when the disk fails (see wal.h). File work runs in libuv's thread
 * pool; the loop only builds bytes, a bounded amount per turn. */
#include "agent/wal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/metadata.h"
#include "codec/wire.h"

#define TICK_MS 1000           /* failing: try the disk again this often */
#define MEMBERS_EVERY_MS 30000 /* the members file, when they changed */
#define COMPACT_RETRY_MS 10000 /* after a snapshot that failed */
#define PATH_LEN 600

/* ===== Jobs: file work in the thread pool =====
 * A job owns its bytes and, while it runs, the file descriptor it is
 * given; nothing else of the wal is touched off the loop. */

enum { JOB_FLUSH, JOB_PROBE, JOB_CHUNK, JOB_FILES, JOB_MEMBERS };

struct batch {
    struct batch *next;
    uint64_t gen;       /* of the log file it goes to */
    struct buf b;
    uint64_t last_seq;  /* of its last record */
    size_t records;
};

struct job {
    uv_work_t req;
    struct wal *w;
    int kind;
    char dir[PATH_LEN];
    char path[PATH_LEN + 8]; /* the file written (a .tmp for a segment) */
    char final[PATH_LEN]; /* what it is renamed to when finished */
    const uint8_t *data;
    size_t len;
    uint8_t *owned;       /* data, when the job owns it */
    int fd;               /* in and out: the open file, or -1 */
    bool create;          /* open path first, creating it */
    bool finish;          /* fsync, close, rename to final */
    char **unlink;        /* files to remove after (then the dir fsynced) */
    size_t nunlink;
    struct batch *batch;  /* JOB_FLUSH */
    uint64_t gen;         /* JOB_PROBE: of the file it makes */
    uint32_t seg_idx;     /* JOB_CHUNK that finishes a segment: which, */
    uint16_t lastlen;     /* and its last key */
    char last[META_KEY_MAX + 1];
    int err;              /* out: errno */
    const char *what;     /* out: the step that failed */
};

struct compaction {
    uint64_t gen;
    uint32_t idx;          /* the segment being built */
    char key[META_KEY_MAX + 1]; /* the last key taken (the walk's place) */
    uint16_t keylen;
    bool has_key;
    struct buf out;        /* the next chunk */
    uint64_t seg_bytes;    /* of the current segment, out included */
    uint64_t seg_entries;
    int fd;                /* the segment's .tmp, open between jobs */
    bool scanned;          /* the walk is over */
    bool last_sent;        /* the last segment is handed over */
    bool cleaning;         /* removing the older files */
    uint64_t entries, bytes, started, dropped_at_start;
};

struct wal {
    uv_loop_t *loop;
    struct node *nd;
    struct metadata *md;
    const struct hs_logger *log;
    char dir[CONFIG_STR_MAX];
    struct wal_options o;
    uv_idle_t kick;  /* starts the next group at the next loop turn */
    uv_idle_t step;  /* a snapshot's walk, one piece per loop turn */
    uv_timer_t tick;
    int handles;
    /* The log. */
    int fd;               /* open on generation fd_gen, or -1 */
    uint64_t fd_gen;
    uint64_t gen;         /* where new records go */
    bool header_due;      /* the next batch starts the file of `gen` */
    uint64_t max_gen;
    struct batch *head, *tail;
    struct job *log_job;
    uint64_t appended, durable; /* record numbers */
    struct wal_wait waits;      /* sentinel of a ring, oldest first */
    struct snapshot_log *logs;  /* the log files and their bytes */
    size_t nlogs;
    struct buf state;           /* the store state last logged */
    char reason[160];           /* why saving fails, for the clients */
    /* Snapshots. */
    struct snapshot_seg *segs;  /* on disk, every generation */
    size_t nsegs;
    struct compaction *cp;
    struct job *file_job;
    struct job *members_job;
    bool needs_snapshot;  /* the log missed changes, or a file was bad */
    bool legacy;          /* hearsay.snapshot still there */
    bool snap_failing;
    uint64_t retry_at;    /* uv_now before which no snapshot starts */
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

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

#define FAIL(step)        \
    do {                  \
        j->err = errno;   \
        j->what = (step); \
        goto failed;      \
    } while (0)

static void job_work(uv_work_t *req)
{
    struct job *j = req->data;
    off_t before = 0;
    j->err = 0;
    switch (j->kind) {
    case JOB_FLUSH:
    case JOB_PROBE:
        if (j->create) {
            if (j->fd >= 0)
                close(j->fd);
            j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
                         O_CLOEXEC, 0600);
            if (j->fd < 0)
                FAIL("create");
        }
        before = lseek(j->fd, 0, SEEK_END);
        if (write_all(j->fd, j->data, j->len))
            FAIL("write");
        if (fdatasync(j->fd))
            FAIL("fsync");
        if (j->create && sync_dir(j->dir))
            FAIL("fsync the directory of");
        return;
    case JOB_CHUNK:
    case JOB_MEMBERS:
        if (j->fd < 0) {
            j->fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                         0600);
            if (j->fd < 0)
                FAIL("create");
        }
        if (write_all(j->fd, j->data, j->len))
            FAIL("write");
        if (j->finish) {
            if (fsync(j->fd))
                FAIL("fsync");
            int fd = j->fd;
            j->fd = -1;
            if (close(fd))
                FAIL("close");
            if (rename(j->path, j->final))
                FAIL("rename");
            if (sync_dir(j->dir))
                FAIL("fsync the directory of");
        }
        /* what the new file covers goes, as in JOB_FILES */
        __attribute__((fallthrough));
    case JOB_FILES:
        for (size_t i = 0; i < j->nunlink; i++)
            unlink(j->unlink[i]);
        if (j->kind == JOB_FILES && sync_dir(j->dir))
            FAIL("fsync the directory of");
        return;
    }
    return;
failed:
    /* Leave nothing half-written behind: a log loses the bytes of this
     * group (an fsync that failed says nothing of what reached the disk),
     * a temporary file goes. */
    if (j->kind == JOB_FLUSH && j->fd >= 0 && before >= 0)
        (void)!ftruncate(j->fd, before);
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    if (j->kind == JOB_PROBE || j->kind == JOB_CHUNK ||
        j->kind == JOB_MEMBERS)
        unlink(j->path);
}

static void job_done(uv_work_t *req, int status);

static struct job *job_new(struct wal *w, int kind)
{
    struct job *j = hs_calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->w = w;
    j->kind = kind;
    j->fd = -1;
    j->req.data = j;
    snprintf(j->dir, sizeof j->dir, "%s", w->dir);
    return j;
}

static void job_free(struct job *j)
{
    for (size_t i = 0; i < j->nunlink; i++)
        hs_free(j->unlink[i]);
    hs_free(j->unlink);
    hs_free(j->owned);
    hs_free(j);
}

static int job_unlink(struct job *j, const char *path)
{
    char **v = hs_realloc(j->unlink, (j->nunlink + 1) * sizeof *v);
    if (v == NULL)
        return HS_ENOMEM;
    j->unlink = v;
    if ((v[j->nunlink] = hs_strndup(path, strlen(path))) == NULL)
        return HS_ENOMEM;
    j->nunlink++;
    return 0;
}

static int job_queue(struct job *j)
{
    int rc = uv_queue_work(j->w->loop, &j->req, job_work, job_done);
    return rc ? HS_EIO : 0;
}

/* ===== Failures ===== */

/* strerror, as a clause: "no space left on device". */
static void reason_of(int err, char *out, size_t n)
{
    snprintf(out, n, "%s", strerror(err ? err : EIO));
    if (out[0] && out[1] && !isupper((unsigned char)out[1]))
        out[0] = (char)tolower((unsigned char)out[0]);
}

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A save failed: count it and keep its sentence. */
static void count_failure(struct wal *w, const char *what,
                          const char *path, int err, char *reason,
                          size_t n)
{
    reason_of(err, reason, n);
    w->st.save_failures++;
    w->st.last_failure_time = (uint64_t)time(NULL);
    snprintf(w->st.last_error, sizeof w->st.last_error, "%s %s: %s",
             what ? what : "save", base(path), reason);
}

static void count_save(struct wal *w)
{
    w->st.saves++;
    w->st.last_save_time = (uint64_t)time(NULL);
}

/* ===== The log ===== */

static void answer_waits(struct wal *w, int err, const char *why)
{
    while (w->waits.next != &w->waits) {
        struct wal_wait *wt = w->waits.next;
        if (err == 0 && wt->seq > w->durable)
            break;
        wal_wait_cancel(wt);
        wt->cb(wt, err, why);
    }
}

static void log_bytes_add(struct wal *w, uint64_t gen, uint64_t n,
                          bool create)
{
    if (create || w->nlogs == 0 || w->logs[w->nlogs - 1].gen != gen) {
        struct snapshot_log *v =
            hs_realloc(w->logs, (w->nlogs + 1) * sizeof *v);
        if (v == NULL)
            return; /* a gauge goes wrong, nothing else */
        w->logs = v;
        w->logs[w->nlogs++] = (struct snapshot_log){gen, 0};
    }
    w->logs[w->nlogs - 1].bytes += n;
    w->st.log_bytes += n;
}

static void batch_free(struct batch *b)
{
    buf_free(&b->b);
    hs_free(b);
}

static void compaction_start(struct wal *w);
static void on_step(uv_idle_t *h);
static void try_cleanup(struct wal *w);
static void maybe_compact(struct wal *w);
static void maybe_closed(struct wal *w);

/* The log cannot be written: fail every write waiting, drop what is
 * pending (those changes are in memory; a snapshot saves them once the
 * disk works again), and refuse local writes until then. */
static void log_failed(struct wal *w, const struct job *j)
{
    char reason[160], why[600];
    count_failure(w, j->what, j->path, j->err, reason, sizeof reason);
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    if (!w->st.failing)
        HS_ERROR(w->log, "data dir %s: cannot save the log (%s): local "
                 "writes are refused until it can; gossip goes on, and "
                 "the agent tries again every second", w->dir,
                 w->st.last_error);
    w->st.failing = true;
    w->needs_snapshot = true;
    while (w->head) {
        struct batch *b = w->head;
        w->head = b->next;
        w->st.dropped += b->records;
        batch_free(b);
    }
    w->tail = NULL;
    w->durable = w->appended;
    snprintf(why, sizeof why, "not saved: %s (data dir %s)", reason, w->dir);
    answer_waits(w, HS_EIO, why);
}

/* The batch new records go to: the last one, unless it is being written
 * or belongs to an older file. NULL when out of memory. */
static struct batch *open_batch(struct wal *w)
{
    struct batch *t = w->tail;
    if (t && t->gen == w->gen && !(w->log_job && w->log_job->batch == t))
        return t;
    struct batch *b = hs_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->gen = w->gen;
    if (w->header_due) {
        snapshot_put_header(&b->b, SNAPSHOT_LOG, w->gen);
        w->header_due = false;
    }
    if (t)
        t->next = b;
    else
        w->head = b;
    w->tail = b;
    return b;
}

static void start_flush(struct wal *w)
{
    if (w->log_job || w->head == NULL || w->st.failing || w->closing)
        return;
    struct batch *b = w->head;
    struct job *j = job_new(w, JOB_FLUSH);
    if (j == NULL)
        return; /* the next append or tick tries again */
    j->batch = b;
    j->data = b->b.data;
    j->len = b->b.len;
    j->create = w->fd < 0 || w->fd_gen != b->gen;
    j->fd = w->fd;
    snapshot_log_path(j->path, sizeof j->path, w->dir, b->gen);
    w->fd = -1; /* the job's while it runs */
    w->log_job = j;
    if (job_queue(j)) {
        w->log_job = NULL;
        w->fd = j->fd;
        job_free(j);
    }
}

static void on_kick(uv_idle_t *h)
{
    struct wal *w = h->data;
    uv_idle_stop(h);
    start_flush(w);
}

static void kick(struct wal *w)
{
    if (!w->log_job && !w->closing)
        uv_idle_start(&w->kick, on_kick);
}

/* Append one record (its payload from enc) to the log. */
static void append(struct wal *w, int type,
                   int (*enc)(const void *x, struct buf *out), const void *x)
{
    struct batch *b = open_batch(w);
    if (b == NULL) {
        w->st.dropped++;
        w->needs_snapshot = true;
        return;
    }
    size_t len0 = b->b.len;
    size_t at = snapshot_record_begin(&b->b, type);
    enc(x, &b->b);
    snapshot_record_end(&b->b, at);
    if (b->b.err) {
        /* out of memory: the record is lost, the batch stays sound */
        b->b.len = len0;
        b->b.err = 0;
        w->st.dropped++;
        w->needs_snapshot = true;
        return;
    }
    b->records++;
    b->last_seq = ++w->appended;
    w->st.records++;
    kick(w);
}

static int enc_entry(const void *x, struct buf *out)
{
    return metadata_entry_encode(x, out);
}

static int enc_state(const void *x, struct buf *out)
{
    return metadata_state_encode(x, out);
}

static void on_append(void *ud, const struct meta_entry *e)
{
    struct wal *w = ud;
    if (w->st.failing) {
        w->st.dropped++;
        w->needs_snapshot = true;
        return;
    }
    append(w, SNAPSHOT_REC_ENTRY, enc_entry, e);
}

static bool on_refuse(void *ud, char *why, size_t whylen)
{
    struct wal *w = ud;
    if (!w->st.failing)
        return false;
    w->st.refused++;
    snprintf(why, whylen, "not saved: %s (data dir %s)", w->reason, w->dir);
    return true;
}

/* Log the store's own fields (its clock) when they changed. */
static void log_state(struct wal *w, bool force)
{
    struct buf s = BUF_INIT;
    if (w->st.failing)
        return;
    if (metadata_state_encode(w->md, &s) == 0 &&
        (force || s.len != w->state.len ||
         memcmp(s.data, w->state.data, s.len) != 0)) {
        append(w, SNAPSHOT_REC_STATE, enc_state, w->md);
        buf_free(&w->state);
        w->state = s;
        return;
    }
    buf_free(&s);
}

static void flush_done(struct wal *w, struct job *j)
{
    struct batch *b = j->batch;
    w->log_job = NULL;
    w->fd = j->fd;
    if (j->err) {
        log_failed(w, j);
        return;
    }
    if (j->create)
        w->fd_gen = b->gen;
    log_bytes_add(w, b->gen, b->b.len, j->create);
    w->st.fsyncs++;
    if (b->records > w->st.group_max)
        w->st.group_max = b->records;
    count_save(w);
    if (b->records)
        w->durable = b->last_seq;
    w->head = b->next;
    if (w->tail == b)
        w->tail = NULL;
    batch_free(b);
    answer_waits(w, 0, NULL);
    start_flush(w); /* what gathered during this fsync */
    if (w->cp && w->cp->cleaning)
        try_cleanup(w);
    maybe_compact(w);
}

/* Failing: try a new log file, a small write and its fsync. */
static void probe(struct wal *w)
{
    struct job *j = job_new(w, JOB_PROBE);
    if (j == NULL)
        return;
    struct buf b = BUF_INIT;
    uint64_t gen = ++w->max_gen;
    snapshot_put_header(&b, SNAPSHOT_LOG, gen);
    size_t at = snapshot_record_begin(&b, SNAPSHOT_REC_STATE);
    metadata_state_encode(w->md, &b);
    snapshot_record_end(&b, at);
    if (b.err) {
        buf_free(&b);
        job_free(j);
        return;
    }
    j->owned = buf_steal(&b, &j->len);
    j->data = j->owned;
    j->create = true;
    j->gen = gen;
    j->fd = w->fd; /* -1: the failure closed it */
    w->fd = -1;
    snapshot_log_path(j->path, sizeof j->path, w->dir, gen);
    w->log_job = j;
    if (job_queue(j)) {
        w->log_job = NULL;
        job_free(j);
    }
}

static void probe_done(struct wal *w, struct job *j)
{
    w->log_job = NULL;
    char reason[160];
    if (j->err) {
        count_failure(w, j->what, j->path, j->err, reason, sizeof reason);
        snprintf(w->reason, sizeof w->reason, "%s", reason);
        return;
    }
    uint64_t gen = j->gen;
    w->fd = j->fd;
    w->fd_gen = w->gen = gen;
    w->header_due = false;
    log_bytes_add(w, gen, j->len, true);
    count_save(w);
    w->st.failing = false;
    HS_INFO(w->log, "data dir %s: saving again: local writes are taken; "
            "a snapshot saves the %" PRIu64 " changes the log missed",
            w->dir, w->st.dropped);
    compaction_start(w);
}

/* ===== Snapshots ===== */

static void seg_forget(struct wal *w, size_t i)
{
    w->st.snapshot_bytes -= HS_MIN(w->st.snapshot_bytes, w->segs[i].bytes);
    w->segs[i] = w->segs[--w->nsegs];
}

static void compaction_free(struct wal *w)
{
    struct compaction *cp = w->cp;
    if (cp == NULL)
        return;
    uv_idle_stop(&w->step);
    if (cp->fd >= 0) { /* only at close: a job closes it otherwise */
        char p[PATH_LEN];
        close(cp->fd);
        char t[PATH_LEN + 8];
        snapshot_seg_path(p, sizeof p, w->dir, cp->gen, cp->idx);
        snprintf(t, sizeof t, "%s.tmp", p);
        unlink(t);
    }
    buf_free(&cp->out);
    hs_free(cp);
    w->cp = NULL;
}

static void compaction_failed(struct wal *w, const char *what,
                              const char *path, int err)
{
    char reason[160];
    count_failure(w, what, path, err, reason, sizeof reason);
    if (!w->snap_failing)
        HS_ERROR(w->log, "data dir %s: snapshot not written (%s): the log "
                 "keeps every change; trying again in %d s", w->dir,
                 w->st.last_error, COMPACT_RETRY_MS / 1000);
    w->snap_failing = true;
    w->needs_snapshot = true; /* whatever called for it still does */
    w->retry_at = uv_now(w->loop) + COMPACT_RETRY_MS;
    compaction_free(w);
}

static void segment_header(struct compaction *cp, struct wal *w)
{
    snapshot_put_header(&cp->out, SNAPSHOT_SEG, cp->gen);
    if (cp->idx == 0) {
        size_t at = snapshot_record_begin(&cp->out, SNAPSHOT_REC_STATE);
        metadata_state_encode(w->md, &cp->out);
        snapshot_record_end(&cp->out, at);
    }
    cp->seg_bytes = cp->out.len;
    cp->seg_entries = 0;
}

static void compaction_start(struct wal *w)
{
    if (w->cp || w->closing || w->st.failing)
        return;
    struct compaction *cp = hs_calloc(1, sizeof *cp);
    if (cp == NULL)
        return;
    cp->gen = ++w->max_gen;
    cp->fd = -1;
    cp->started = uv_now(w->loop);
    cp->dropped_at_start = w->st.dropped;
    w->cp = cp;
    /* Every change from here on goes to the new log: what the walk
     * takes from the store later may be newer, never older. */
    w->gen = cp->gen;
    w->header_due = true;
    log_state(w, true);
    w->needs_snapshot = false;
    segment_header(cp, w);
    HS_INFO(w->log, "data dir %s: snapshot started: generation=%" PRIx64
            " log_bytes=%" PRIu64, w->dir, cp->gen, w->st.log_bytes);
    uv_idle_start(&w->step, on_step);
}

struct visit {
    struct wal *w;
    size_t skipped;
    bool full;
};

static void visit(void *ud, const struct meta_entry *e)
{
    struct visit *v = ud;
    struct compaction *cp = v->w->cp;
    if (v->full) {
        v->skipped++;
        return;
    }
    size_t before = cp->out.len;
    size_t at = snapshot_record_begin(&cp->out, SNAPSHOT_REC_ENTRY);
    metadata_entry_encode(e, &cp->out);
    snapshot_record_end(&cp->out, at);
    memcpy(cp->key, e->key, e->keylen);
    cp->keylen = e->keylen;
    cp->has_key = true;
    cp->seg_entries++;
    cp->entries++;
    cp->seg_bytes += cp->out.len - before;
    if (cp->out.len >= v->w->o.chunk_bytes ||
        cp->seg_bytes >= v->w->o.segment_bytes)
        v->full = true;
}

/* Hand the chunk built so far to a thread; `finish` ends the segment. */
static void send_chunk(struct wal *w, bool finish)
{
    struct compaction *cp = w->cp;
    struct job *j = job_new(w, JOB_CHUNK);
    if (j == NULL)
        return; /* the next step tries again */
    snapshot_seg_path(j->final, sizeof j->final, w->dir, cp->gen, cp->idx);
    snprintf(j->path, sizeof j->path, "%s.tmp", j->final);
    if (finish) {
        size_t at = snapshot_record_begin(&cp->out, SNAPSHOT_REC_END);
        buf_put_be32(&cp->out, (uint32_t)(cp->seg_entries >> 32));
        buf_put_be32(&cp->out, (uint32_t)cp->seg_entries);
        if (cp->seg_entries)
            buf_append(&cp->out, cp->key, cp->keylen);
        snapshot_record_end(&cp->out, at);
        /* The older segments whose keys this one and those before it
         * cover: they go once it is on disk. */
        for (size_t i = 0; i < w->nsegs; i++) {
            const struct snapshot_seg *s = &w->segs[i];
            char p[PATH_LEN];
            if (s->gen >= cp->gen)
                continue;
            if (!(cp->scanned || s->empty ||
                  (cp->has_key && snapshot_key_cmp(s->last, s->lastlen,
                                                   cp->key,
                                                   cp->keylen) <= 0)))
                continue;
            snapshot_seg_path(p, sizeof p, w->dir, s->gen, s->idx);
            job_unlink(j, p);
        }
    }
    if (cp->out.err) {
        compaction_failed(w, "build", j->path, ENOMEM);
        job_free(j);
        return;
    }
    cp->bytes += cp->out.len;
    j->owned = buf_steal(&cp->out, &j->len);
    j->data = j->owned;
    j->finish = finish;
    j->seg_idx = cp->idx;
    j->lastlen = cp->seg_entries ? cp->keylen : 0;
    memcpy(j->last, cp->key, j->lastlen);
    j->fd = cp->fd;
    cp->fd = -1;
    w->file_job = j;
    if (job_queue(j)) {
        w->file_job = NULL;
        cp->fd = j->fd;
        job_free(j);
        return;
    }
    if (finish) {
        cp->last_sent = cp->scanned;
        if (!cp->scanned) {
            cp->idx++;
            segment_header(cp, w);
        }
    }
}

static void on_step(uv_idle_t *h)
{
    struct wal *w = h->data;
    struct compaction *cp = w->cp;
    if (cp == NULL || w->closing || cp->last_sent) {
        uv_idle_stop(h);
        return;
    }
    bool room = cp->out.len < w->o.chunk_bytes &&
                cp->seg_bytes < w->o.segment_bytes;
    if (!cp->scanned && room) {
        struct visit v = {w, 0, false};
        bool more = false;
        metadata_scan(w->md, cp->has_key ? cp->key : NULL, cp->keylen,
                      w->o.step_entries, visit, &v, &more);
        if (!more && v.skipped == 0)
            cp->scanned = true;
        if (cp->out.err) {
            compaction_failed(w, "build", w->dir, ENOMEM);
            return;
        }
    }
    bool seg_full = cp->seg_bytes >= w->o.segment_bytes;
    if (cp->out.len < w->o.chunk_bytes && !seg_full && !cp->scanned)
        return; /* the next turn adds more */
    if (w->file_job) {
        uv_idle_stop(h); /* the job's end starts us again */
        return;
    }
    send_chunk(w, seg_full || cp->scanned);
    if (w->cp && w->cp->last_sent)
        uv_idle_stop(h);
}

/* The whole snapshot is on disk: the older logs go (once nothing is left
 * to write to them), and the single-file snapshot of earlier releases. */
static void try_cleanup(struct wal *w)
{
    struct compaction *cp = w->cp;
    if (cp == NULL || !cp->cleaning || w->file_job || w->closing)
        return;
    for (struct batch *b = w->head; b; b = b->next)
        if (b->gen < cp->gen)
            return; /* flush_done calls again */
    struct job *j = job_new(w, JOB_FILES);
    if (j == NULL)
        return;
    char p[PATH_LEN];
    for (size_t i = 0; i < w->nlogs; i++)
        if (w->logs[i].gen < cp->gen) {
            snapshot_log_path(p, sizeof p, w->dir, w->logs[i].gen);
            job_unlink(j, p);
        }
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].gen < cp->gen) {
            snapshot_seg_path(p, sizeof p, w->dir, w->segs[i].gen,
                              w->segs[i].idx);
            job_unlink(j, p);
        }
    if (w->legacy) {
        snapshot_legacy_path(p, sizeof p, w->dir);
        job_unlink(j, p);
    }
    snprintf(j->path, sizeof j->path, "%s", w->dir);
    w->file_job = j;
    if (job_queue(j)) {
        w->file_job = NULL;
        job_free(j);
    }
}

static void chunk_done(struct wal *w, struct job *j)
{
    struct compaction *cp = w->cp;
    w->file_job = NULL;
    if (cp == NULL)
        return;
    if (j->err) {
        compaction_failed(w, j->what, j->path, j->err);
        return;
    }
    cp->fd = j->fd;
    if (j->finish) {
        count_save(w);
        /* The files removed, then the new segment. */
        for (size_t k = 0; k < j->nunlink; k++)
            for (size_t i = 0; i < w->nsegs; i++) {
                char p[PATH_LEN];
                snapshot_seg_path(p, sizeof p, w->dir, w->segs[i].gen,
                                  w->segs[i].idx);
                if (!strcmp(p, j->unlink[k])) {
                    seg_forget(w, i);
                    break;
                }
            }
        struct snapshot_seg *v =
            hs_realloc(w->segs, (w->nsegs + 1) * sizeof *v);
        if (v) {
            w->segs = v;
            struct snapshot_seg *s = &v[w->nsegs++];
            memset(s, 0, sizeof *s);
            s->gen = cp->gen;
            s->idx = j->seg_idx;
            struct stat st;
            s->bytes = stat(j->final, &st) == 0 ? (uint64_t)st.st_size : 0;
            w->st.snapshot_bytes += s->bytes;
            s->empty = j->lastlen == 0;
            s->lastlen = j->lastlen;
            memcpy(s->last, j->last, j->lastlen);
        }
    }
    if (cp->last_sent) {
        cp->cleaning = true;
        try_cleanup(w);
        return;
    }
    if (!w->closing)
        uv_idle_start(&w->step, on_step);
}

static void cleanup_done(struct wal *w, struct job *j)
{
    struct compaction *cp = w->cp;
    w->file_job = NULL;
    if (cp == NULL)
        return;
    if (j->err) {
        compaction_failed(w, j->what, j->path, j->err);
        return;
    }
    for (size_t i = 0; i < w->nsegs;)
        if (w->segs[i].gen < cp->gen)
            seg_forget(w, i);
        else
            i++;
    size_t keep = 0;
    for (size_t i = 0; i < w->nlogs; i++) {
        if (w->logs[i].gen < cp->gen)
            w->st.log_bytes -= HS_MIN(w->st.log_bytes, w->logs[i].bytes);
        else
            w->logs[keep++] = w->logs[i];
    }
    w->nlogs = keep;
    w->legacy = false;
    w->st.snapshots++;
    if (w->snap_failing)
        HS_INFO(w->log, "data dir %s: snapshots written again", w->dir);
    w->snap_failing = false;
    HS_INFO(w->log, "data dir %s: snapshot written: generation=%" PRIx64
            " segments=%u entries=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64,
            w->dir, cp->gen, cp->idx + 1, cp->entries, cp->bytes,
            uv_now(w->loop) - cp->started);
    if (w->st.dropped != cp->dropped_at_start)
        w->needs_snapshot = true;
    compaction_free(w);
    maybe_compact(w);
}

static void maybe_compact(struct wal *w)
{
    if (w->cp || w->closing || w->st.failing ||
        uv_now(w->loop) < w->retry_at)
        return;
    uint64_t limit = HS_MAX(w->o.compact_bytes, w->st.snapshot_bytes);
    if (w->needs_snapshot || w->legacy || w->st.log_bytes >= limit)
        compaction_start(w);
}

void wal_compact(struct wal *w)
{
    w->retry_at = 0;
    compaction_start(w);
}

bool wal_compacting(const struct wal *w)
{
    return w->cp != NULL;
}

bool wal_busy(const struct wal *w)
{
    return w->log_job || w->file_job || w->members_job;
}

/* ===== The members file ===== */

static void save_members(struct wal *w)
{
    struct buf body = BUF_INIT, file = BUF_INIT;
    if (snapshot_members_encode(w->nd, &body)) {
        buf_free(&body);
        return;
    }
    uint32_t crc = wire_crc32(body.data, body.len);
    if (w->members_saved && crc == w->members_crc) {
        buf_free(&body);
        return;
    }
    snapshot_put_header(&file, SNAPSHOT_MEMBERS, 0);
    size_t at = snapshot_record_begin(&file, SNAPSHOT_REC_MEMBERS);
    buf_append(&file, body.data, body.len);
    snapshot_record_end(&file, at);
    buf_free(&body);
    struct job *j = file.err ? NULL : job_new(w, JOB_MEMBERS);
    if (j == NULL) {
        buf_free(&file);
        return;
    }
    j->owned = buf_steal(&file, &j->len);
    j->data = j->owned;
    j->finish = true;
    snapshot_members_path(j->final, sizeof j->final, w->dir);
    snprintf(j->path, sizeof j->path, "%s.tmp", j->final);
    w->members_crc = crc;
    w->members_job = j;
    if (job_queue(j)) {
        w->members_job = NULL;
        job_free(j);
    }
}

static void members_done(struct wal *w, struct job *j)
{
    char reason[160];
    w->members_job = NULL;
    if (j->err) {
        count_failure(w, j->what, j->path, j->err, reason, sizeof reason);
        if (!w->members_failing)
            HS_WARN(w->log, "data dir %s: members not saved (%s); trying "
                    "again every %d s", w->dir, w->st.last_error,
                    MEMBERS_EVERY_MS / 1000);
        w->members_failing = true;
        w->members_saved = false; /* write it again, changed or not */
        w->members_at = uv_now(w->loop) + MEMBERS_EVERY_MS;
        return;
    }
    count_save(w);
    w->members_saved = true;
    w->members_failing = false;
}

/* ===== Upkeep ===== */

static void on_tick(uv_timer_t *t)
{
    struct wal *w = t->data;
    uint64_t now = uv_now(w->loop);
    if (w->closing)
        return;
    if (w->st.failing) {
        if (!w->log_job)
            probe(w);
    } else {
        log_state(w, false);
    }
    if (now >= w->members_at && !w->members_job) {
        w->members_at = now + MEMBERS_EVERY_MS;
        save_members(w);
    }
    maybe_compact(w);
}

static void job_done(uv_work_t *req, int status)
{
    struct job *j = req->data;
    struct wal *w = j->w;
    (void)status; /* never cancelled */
    switch (j->kind) {
    case JOB_FLUSH:
        flush_done(w, j);
        break;
    case JOB_PROBE:
        probe_done(w, j);
        break;
    case JOB_CHUNK:
        chunk_done(w, j);
        break;
    case JOB_FILES:
        cleanup_done(w, j);
        break;
    case JOB_MEMBERS:
        members_done(w, j);
        break;
    }
    job_free(j);
    if (w->closing)
        maybe_closed(w);
}

/* ===== Life ===== */

int wal_new(uv_loop_t *loop, const char *dir, struct node *nd,
            const struct hs_logger *log, struct snapshot_files *files,
            const struct wal_options *opts, struct wal **out)
{
    struct wal *w = hs_calloc(1, sizeof *w);
    if (w == NULL)
        return HS_ENOMEM;
    w->loop = loop;
    w->nd = nd;
    w->md = node_metadata(nd);
    w->log = log;
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    if (opts)
        w->o = *opts;
    else
        w->o = (struct wal_options){node_config(nd)->snapshot_threshold,
                                    WAL_SEGMENT_BYTES, WAL_CHUNK_BYTES,
                                    WAL_STEP_ENTRIES};
    if (w->o.chunk_bytes == 0)
        w->o.chunk_bytes = WAL_CHUNK_BYTES;
    if (w->o.step_entries == 0)
        w->o.step_entries = WAL_STEP_ENTRIES;
    if (w->o.segment_bytes == 0)
        w->o.segment_bytes = WAL_SEGMENT_BYTES;
    w->fd = -1;
    w->waits.next = w->waits.prev = &w->waits;
    w->segs = files->segs;
    w->nsegs = files->nsegs;
    w->logs = files->logs;
    w->nlogs = files->nlogs;
    files->segs = NULL;
    files->logs = NULL;
    files->nsegs = files->nlogs = 0;
    w->st.snapshot_bytes = files->snapshot_bytes;
    w->st.log_bytes = files->log_bytes;
    w->max_gen = files->max_gen;
    w->legacy = files->legacy;
    /* A file was cut or set aside: a new snapshot makes the dir whole. */
    w->needs_snapshot = files->damaged;
    /* Every start writes a new log: the older ones stay as they are
     * until a snapshot covers them. */
    w->gen = ++w->max_gen;
    w->header_due = true;
    uv_idle_init(loop, &w->kick);
    uv_idle_init(loop, &w->step);
    uv_timer_init(loop, &w->tick);
    w->kick.data = w->step.data = w->tick.data = w;
    w->handles = 3;
    struct meta_journal j = {on_append, on_refuse, w};
    metadata_set_journal(w->md, &j);
    log_state(w, true);
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    w->members_at = uv_now(loop);
    maybe_compact(w);
    *out = w;
    return 0;
}

int wal_wait(struct wal *w, struct wal_wait *wt, char *why, size_t whylen)
{
    if (w->st.failing) {
        snprintf(why, whylen, "not saved: %s (data dir %s)", w->reason,
                 w->dir);
        return HS_EIO;
    }
    if (w->durable >= w->appended)
        return 1;
    wt->seq = w->appended;
    wt->prev = w->waits.prev;
    wt->next = &w->waits;
    w->waits.prev->next = wt;
    w->waits.prev = wt;
    return 0;
}

void wal_wait_cancel(struct wal_wait *wt)
{
    if (wt->next == NULL)
        return;
    wt->prev->next = wt->next;
    wt->next->prev = wt->prev;
    wt->next = wt->prev = NULL;
}

const struct wal_stats *wal_stats(const struct wal *w)
{
    return &w->st;
}

/* ===== Closing ===== */

static void on_handle_closed(uv_handle_t *h)
{
    struct wal *w = h->data;
    if (--w->handles > 0)
        return;
    void (*cb)(void *) = w->close_cb;
    void *ud = w->close_ud;
    hs_free(w->logs);
    hs_free(w->segs);
    buf_free(&w->state);
    buf_free(&w->last_members);
    hs_free(w);
    if (cb)
        cb(ud);
}

/* At shutdown, on the loop: what is pending goes to the log now. */
static void flush_now(struct wal *w)
{
    while (w->head && !w->st.failing) {
        struct batch *b = w->head;
        struct job *j = job_new(w, JOB_FLUSH);
        if (j == NULL)
            break;
        j->data = b->b.data;
        j->len = b->b.len;
        j->create = w->fd < 0 || w->fd_gen != b->gen;
        j->fd = w->fd;
        snapshot_log_path(j->path, sizeof j->path, w->dir, b->gen);
        job_work(&j->req);
        w->fd = j->fd;
        if (j->err) {
            log_failed(w, j);
            job_free(j);
            break;
        }
        if (j->create)
            w->fd_gen = b->gen;
        log_bytes_add(w, b->gen, b->b.len, j->create);
        w->st.fsyncs++;
        count_save(w);
        if (b->records)
            w->durable = b->last_seq;
        w->head = b->next;
        if (w->tail == b)
            w->tail = NULL;
        batch_free(b);
        job_free(j);
        answer_waits(w, 0, NULL);
    }
    answer_waits(w, HS_EIO, "not saved: the agent is shutting down");
}

static void maybe_closed(struct wal *w)
{
    if (w->log_job || w->file_job || w->members_job || w->handles_closing)
        return;
    w->handles_closing = true;
    flush_now(w);
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    compaction_free(w);
    if (w->last_members.len) {
        struct job j = {.kind = JOB_MEMBERS, .fd = -1,
                        .data = w->last_members.data,
                        .len = w->last_members.len, .finish = true};
        snprintf(j.dir, sizeof j.dir, "%s", w->dir);
        snapshot_members_path(j.final, sizeof j.final, w->dir);
        snprintf(j.path, sizeof j.path, "%s.tmp", j.final);
        j.req.data = &j;
        job_work(&j.req);
        if (j.err)
            HS_WARN(w->log, "data dir %s: members not saved at exit: %s",
                    w->dir, strerror(j.err));
    }
    uv_close((uv_handle_t *)&w->kick, on_handle_closed);
    uv_close((uv_handle_t *)&w->step, on_handle_closed);
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
}

void wal_close(struct wal *w, void (*cb)(void *ud), void *ud)
{
    if (w == NULL || w->closing)
        return;
    w->closing = true;
    w->close_cb = cb;
    w->close_ud = ud;
    metadata_set_journal(w->md, NULL);
    uv_idle_stop(&w->kick);
    uv_idle_stop(&w->step);
    uv_timer_stop(&w->tick);
    /* The node goes right after this: take the members now. */
    struct buf body = BUF_INIT;
    if (snapshot_members_encode(w->nd, &body) == 0) {
        snapshot_put_header(&w->last_members, SNAPSHOT_MEMBERS, 0);
        size_t at = snapshot_record_begin(&w->last_members,
                                          SNAPSHOT_REC_MEMBERS);
        buf_append(&w->last_members, body.data, body.len);
        snapshot_record_end(&w->last_members, at);
        if (w->last_members.err)
            buf_free(&w->last_members);
    }
    buf_free(&body);
    log_state(w, false);
    maybe_closed(w);
}
