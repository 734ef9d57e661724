/* wal_snap.c: the data dir's snapshots: the store walked in key order,
 * a bounded number of entries per loop turn, written in segments that
 * replace the older ones as they cover their keys; then the older logs
 * go. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/wal_int.h"
#include "core/metadata.h"

#define COMPACT_RETRY_MS 10000 /* after a snapshot that failed */

static void on_step(uv_idle_t *h);

/* ===== Snapshots ===== */

static void seg_forget(struct wal *w, size_t i)
{
    w->st.snapshot_bytes -= HS_MIN(w->st.snapshot_bytes, w->segs[i].bytes);
    w->segs[i] = w->segs[--w->nsegs];
}

void wal_compaction_free(struct wal *w)
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

static void compaction_failed(struct wal *w, const char *what, const char *path,
                              int err)
{
    char reason[160];
    wal_count_failure(w, what, path, err, reason, sizeof reason);
    if (!w->snap_failing)
        HS_ERROR(w->log,
                 "data dir %s: snapshot not written (%s): the log "
                 "keeps every change; trying again in %d s",
                 w->dir, w->st.last_error, COMPACT_RETRY_MS / 1000);
    w->snap_failing = true;
    w->needs_snapshot = true; /* whatever called for it still does */
    w->retry_at = uv_now(w->loop) + COMPACT_RETRY_MS;
    wal_compaction_free(w);
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

void wal_compaction_start(struct wal *w)
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
    wal_log_state(w, true);
    w->needs_snapshot = false;
    segment_header(cp, w);
    HS_INFO(w->log,
            "data dir %s: snapshot started: generation=%" PRIx64
            " log_bytes=%" PRIu64,
            w->dir, cp->gen, w->st.log_bytes);
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
    struct job *j = wal_job_new(w, JOB_CHUNK);
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
                  (cp->has_key && snapshot_key_cmp(s->last, s->lastlen, cp->key,
                                                   cp->keylen) <= 0)))
                continue;
            snapshot_seg_path(p, sizeof p, w->dir, s->gen, s->idx);
            wal_job_unlink(j, p);
        }
    }
    if (cp->out.err) {
        compaction_failed(w, "build", j->path, ENOMEM);
        wal_job_free(j);
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
    if (wal_job_queue(j)) {
        w->file_job = NULL;
        cp->fd = j->fd;
        wal_job_free(j);
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
    bool room =
        cp->out.len < w->o.chunk_bytes && cp->seg_bytes < w->o.segment_bytes;
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
void wal_try_cleanup(struct wal *w)
{
    struct compaction *cp = w->cp;
    if (cp == NULL || !cp->cleaning || w->file_job || w->closing)
        return;
    for (struct batch *b = w->head; b; b = b->next)
        if (b->gen < cp->gen)
            return; /* wal_flush_done calls again */
    struct job *j = wal_job_new(w, JOB_FILES);
    if (j == NULL)
        return;
    char p[PATH_LEN];
    for (size_t i = 0; i < w->nlogs; i++)
        if (w->logs[i].gen < cp->gen) {
            snapshot_log_path(p, sizeof p, w->dir, w->logs[i].gen);
            wal_job_unlink(j, p);
        }
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].gen < cp->gen) {
            snapshot_seg_path(p, sizeof p, w->dir, w->segs[i].gen,
                              w->segs[i].idx);
            wal_job_unlink(j, p);
        }
    if (w->legacy) {
        snapshot_legacy_path(p, sizeof p, w->dir);
        wal_job_unlink(j, p);
    }
    snprintf(j->path, sizeof j->path, "%s", w->dir);
    w->file_job = j;
    if (wal_job_queue(j)) {
        w->file_job = NULL;
        wal_job_free(j);
    }
}

void wal_chunk_done(struct wal *w, struct job *j)
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
        wal_count_save(w);
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
        wal_try_cleanup(w);
        return;
    }
    if (!w->closing)
        uv_idle_start(&w->step, on_step);
}

void wal_cleanup_done(struct wal *w, struct job *j)
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
    HS_INFO(w->log,
            "data dir %s: snapshot written: generation=%" PRIx64
            " segments=%u entries=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64,
            w->dir, cp->gen, cp->idx + 1, cp->entries, cp->bytes,
            uv_now(w->loop) - cp->started);
    if (w->st.dropped != cp->dropped_at_start)
        w->needs_snapshot = true;
    wal_compaction_free(w);
    wal_maybe_compact(w);
}

void wal_maybe_compact(struct wal *w)
{
    if (w->cp || w->closing || w->st.failing || uv_now(w->loop) < w->retry_at)
        return;
    uint64_t limit = HS_MAX(w->o.compact_bytes, w->st.snapshot_bytes);
    if (w->needs_snapshot || w->legacy || w->st.log_bytes >= limit)
        wal_compaction_start(w);
}

void wal_compact(struct wal *w)
{
    w->retry_at = 0;
    wal_compaction_start(w);
}

bool wal_compacting(const struct wal *w)
{
    return w->cp != NULL;
}

bool wal_busy(const struct wal *w)
{
    return w->log_job || w->file_job || w->members_job;
}
