/* wal_log.c: the data dir's log: every change the store applies is
 * appended as a record, records gather in a batch while an fsync is in
 * flight and go to disk together in the next (group commit), off the
 * loop; and the log's failing state, which a probe ends. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/wal_int.h"
#include "core/metadata.h"

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

static void log_bytes_add(struct wal *w, uint64_t gen, uint64_t n, bool create)
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

/* The log cannot be written: fail every write waiting, drop what is
 * pending (those changes are in memory; a snapshot saves them once the
 * disk works again), and refuse local writes until then. */
static void log_failed(struct wal *w, const struct job *j)
{
    char reason[160], why[600];
    wal_count_failure(w, j->what, j->path, j->err, reason, sizeof reason);
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    if (!w->st.failing)
        HS_ERROR(w->log,
                 "data dir %s: cannot save the log (%s): local "
                 "writes are refused until it can; gossip goes on, and "
                 "the agent tries again every second",
                 w->dir, w->st.last_error);
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
    struct job *j = wal_job_new(w, JOB_FLUSH);
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
    if (wal_job_queue(j)) {
        w->log_job = NULL;
        w->fd = j->fd;
        wal_job_free(j);
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

void wal_on_append(void *ud, const struct meta_entry *e)
{
    struct wal *w = ud;
    if (w->st.failing) {
        w->st.dropped++;
        w->needs_snapshot = true;
        return;
    }
    append(w, SNAPSHOT_REC_ENTRY, enc_entry, e);
}

bool wal_on_refuse(void *ud, char *why, size_t whylen)
{
    struct wal *w = ud;
    if (!w->st.failing)
        return false;
    w->st.refused++;
    snprintf(why, whylen, "not saved: %s (data dir %s)", w->reason, w->dir);
    return true;
}

/* Log the store's own fields (its clock) when they changed. */
void wal_log_state(struct wal *w, bool force)
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

/* The head batch `b` is on disk (job `j` wrote it): count it, move the
 * durable mark, drop it and answer the writes that waited for it. */
static void batch_saved(struct wal *w, struct batch *b, const struct job *j)
{
    if (j->create)
        w->fd_gen = b->gen;
    log_bytes_add(w, b->gen, b->b.len, j->create);
    w->st.fsyncs++;
    if (b->records > w->st.group_max)
        w->st.group_max = b->records;
    wal_count_save(w);
    if (b->records)
        w->durable = b->last_seq;
    w->head = b->next;
    if (w->tail == b)
        w->tail = NULL;
    batch_free(b);
    answer_waits(w, 0, NULL);
}

void wal_flush_done(struct wal *w, struct job *j)
{
    struct batch *b = j->batch;
    w->log_job = NULL;
    w->fd = j->fd;
    if (j->err) {
        log_failed(w, j);
        return;
    }
    batch_saved(w, b, j);
    start_flush(w); /* what gathered during this fsync */
    if (w->cp && w->cp->cleaning)
        wal_try_cleanup(w);
    wal_maybe_compact(w);
}

/* Failing: try a new log file, a small write and its fsync. */
void wal_probe(struct wal *w)
{
    struct job *j = wal_job_new(w, JOB_PROBE);
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
        wal_job_free(j);
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
    if (wal_job_queue(j)) {
        w->log_job = NULL;
        wal_job_free(j);
    }
}

void wal_probe_done(struct wal *w, struct job *j)
{
    w->log_job = NULL;
    char reason[160];
    if (j->err) {
        wal_count_failure(w, j->what, j->path, j->err, reason, sizeof reason);
        snprintf(w->reason, sizeof w->reason, "%s", reason);
        return;
    }
    uint64_t gen = j->gen;
    w->fd = j->fd;
    w->fd_gen = w->gen = gen;
    w->header_due = false;
    log_bytes_add(w, gen, j->len, true);
    wal_count_save(w);
    w->st.failing = false;
    HS_INFO(w->log,
            "data dir %s: saving again: local writes are taken; "
            "a snapshot saves the %" PRIu64 " changes the log missed",
            w->dir, w->st.dropped);
    wal_compaction_start(w);
}

/* At shutdown, on the loop: what is pending goes to the log now. */
void wal_flush_now(struct wal *w)
{
    while (w->head && !w->st.failing) {
        struct batch *b = w->head;
        struct job *j = wal_job_new(w, JOB_FLUSH);
        if (j == NULL)
            break;
        j->data = b->b.data;
        j->len = b->b.len;
        j->create = w->fd < 0 || w->fd_gen != b->gen;
        j->fd = w->fd;
        snapshot_log_path(j->path, sizeof j->path, w->dir, b->gen);
        wal_job_work(&j->req);
        w->fd = j->fd;
        if (j->err) {
            log_failed(w, j);
            wal_job_free(j);
            break;
        }
        batch_saved(w, b, j);
        wal_job_free(j);
    }
    answer_waits(w, HS_EIO, "not saved: the agent is shutting down");
}
