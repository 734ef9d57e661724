/* wal_job.c: the data dir's file work, in libuv's thread pool: a job
 * creates, writes, fsyncs, renames and removes files, and counts the
 * saves and the failures when it is back on the loop. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/wal_int.h"

/* ===== Jobs: file work in the thread pool =====
 * A job owns its bytes and, while it runs, the file descriptor it is
 * given; nothing else of the wal is touched off the loop. */

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

void wal_job_work(uv_work_t *req)
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
            j->fd =
                open(j->path,
                     O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
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
            j->fd =
                open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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
    if (j->kind == JOB_PROBE || j->kind == JOB_CHUNK || j->kind == JOB_MEMBERS)
        unlink(j->path);
}

struct job *wal_job_new(struct wal *w, int kind)
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

void wal_job_free(struct job *j)
{
    for (size_t i = 0; i < j->nunlink; i++)
        hs_free(j->unlink[i]);
    hs_free(j->unlink);
    hs_free(j->owned);
    hs_free(j);
}

int wal_job_unlink(struct job *j, const char *path)
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

int wal_job_queue(struct job *j)
{
    int rc = uv_queue_work(j->w->loop, &j->req, wal_job_work, wal_job_done);
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
void wal_count_failure(struct wal *w, const char *what, const char *path,
                       int err, char *reason, size_t n)
{
    reason_of(err, reason, n);
    w->st.save_failures++;
    w->st.last_failure_time = (uint64_t)time(NULL);
    snprintf(w->st.last_error, sizeof w->st.last_error, "%s %s: %s",
             what ? what : "save", base(path), reason);
}

void wal_count_save(struct wal *w)
{
    w->st.saves++;
    w->st.last_save_time = (uint64_t)time(NULL);
}
