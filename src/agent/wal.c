/* wal.c: the data dir while the agent runs (see wal.h): its life, the
 * members file, the upkeep of every second, and closing. The log is
 * wal_log.c's, snapshots are wal_snap.c's, and the file work they hand
 * to libuv's thread pool is wal_job.c's; the loop only builds bytes, a
 * bounded amount per turn. */
#include "agent/wal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/wal_int.h"
#include "codec/wire.h"
#include "core/metadata.h"

#define TICK_MS 1000           /* failing: try the disk again this often */
#define MEMBERS_EVERY_MS 30000 /* the members file, when they changed */

static void maybe_closed(struct wal *w);

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
    struct job *j = file.err ? NULL : wal_job_new(w, JOB_MEMBERS);
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
    if (wal_job_queue(j)) {
        w->members_job = NULL;
        wal_job_free(j);
    }
}

static void members_done(struct wal *w, struct job *j)
{
    char reason[160];
    w->members_job = NULL;
    if (j->err) {
        wal_count_failure(w, j->what, j->path, j->err, reason, sizeof reason);
        if (!w->members_failing)
            HS_WARN(w->log,
                    "data dir %s: members not saved (%s); trying "
                    "again every %d s",
                    w->dir, w->st.last_error, MEMBERS_EVERY_MS / 1000);
        w->members_failing = true;
        w->members_saved = false; /* write it again, changed or not */
        w->members_at = uv_now(w->loop) + MEMBERS_EVERY_MS;
        return;
    }
    wal_count_save(w);
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
            wal_probe(w);
    } else {
        wal_log_state(w, false);
    }
    if (now >= w->members_at && !w->members_job) {
        w->members_at = now + MEMBERS_EVERY_MS;
        save_members(w);
    }
    wal_maybe_compact(w);
}

void wal_job_done(uv_work_t *req, int status)
{
    struct job *j = req->data;
    struct wal *w = j->w;
    (void)status; /* never cancelled */
    switch (j->kind) {
    case JOB_FLUSH:
        wal_flush_done(w, j);
        break;
    case JOB_PROBE:
        wal_probe_done(w, j);
        break;
    case JOB_CHUNK:
        wal_chunk_done(w, j);
        break;
    case JOB_FILES:
        wal_cleanup_done(w, j);
        break;
    case JOB_MEMBERS:
        members_done(w, j);
        break;
    }
    wal_job_free(j);
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
    struct meta_journal j = {wal_on_append, wal_on_refuse, w};
    metadata_set_journal(w->md, &j);
    wal_log_state(w, true);
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    w->members_at = uv_now(loop);
    wal_maybe_compact(w);
    *out = w;
    return 0;
}

int wal_wait(struct wal *w, struct wal_wait *wt, char *why, size_t whylen)
{
    if (w->st.failing) {
        snprintf(why, whylen, "not saved: %s (data dir %s)", w->reason, w->dir);
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

static void maybe_closed(struct wal *w)
{
    if (w->log_job || w->file_job || w->members_job || w->handles_closing)
        return;
    w->handles_closing = true;
    wal_flush_now(w);
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    wal_compaction_free(w);
    if (w->last_members.len) {
        struct job j = {.kind = JOB_MEMBERS,
                        .fd = -1,
                        .data = w->last_members.data,
                        .len = w->last_members.len,
                        .finish = true};
        snprintf(j.dir, sizeof j.dir, "%s", w->dir);
        snapshot_members_path(j.final, sizeof j.final, w->dir);
        snprintf(j.path, sizeof j.path, "%s.tmp", j.final);
        j.req.data = &j;
        wal_job_work(&j.req);
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
        size_t at =
            snapshot_record_begin(&w->last_members, SNAPSHOT_REC_MEMBERS);
        buf_append(&w->last_members, body.data, body.len);
        snapshot_record_end(&w->last_members, at);
        if (w->last_members.err)
            buf_free(&w->last_members);
    }
    buf_free(&body);
    wal_log_state(w, false);
    maybe_closed(w);
}
