/* snapshot.c: save and load the agent's snapshot file. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metadata.h"
#include "mp.h"
#include "wire.h"

/* The file: magic, body length, CRC-32 of the body, then the body: a
 * msgpack map {saved, name, meta, members: [[name, "ip:port"], ...]}. */
static const char MAGIC[8] = {'H', 'E', 'A', 'R', 'S', 'A', 'Y', '1'};
#define HEADER 16
#define MAX_SNAPSHOT (4ull << 30)

static void path(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int snapshot_save(const char *dir, struct node *nd, char *err, size_t errlen)
{
    struct buf body = BUF_INIT, meta = BUF_INIT, file = BUF_INIT;
    char tmp[4200], final[4200], ab[HS_ADDRSTRLEN];
    metadata_snapshot(node_metadata(nd), &meta);
    const struct members *t = node_members(nd);
    const struct member *self = node_self(nd);
    /* Every member still in the table, whatever its state: after a
     * whole cluster stops, the others are "left" or "dead" here, and
     * they are the ones to find again. */
    uint32_t known = 0;
    for (size_t i = 0; i < t->n; i++)
        known += t->order[i] != self;
    mp_write_map(&body, 4);
    mp_write_str(&body, "saved");
    mp_write_uint(&body, (uint64_t)time(NULL));
    mp_write_str(&body, "name");
    mp_write_str(&body, node_config(nd)->name);
    mp_write_str(&body, "meta");
    mp_write_raw(&body, meta.data, meta.len);
    mp_write_str(&body, "members");
    mp_write_array(&body, known);
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        if (m == self)
            continue;
        mp_write_array(&body, 2);
        mp_write_raw(&body, m->name, m->name_len);
        mp_write_str(&body, addr_format(&m->addr, ab, sizeof ab));
    }
    buf_append(&file, MAGIC, sizeof MAGIC);
    buf_put_be32(&file, (uint32_t)body.len);
    buf_put_be32(&file, wire_crc32(body.data, body.len));
    buf_append(&file, body.data, body.len);
    int rc = file.err ? file.err : body.err ? body.err : meta.err;
    buf_free(&meta);
    buf_free(&body);
    if (rc) {
        snprintf(err, errlen, "cannot build the snapshot: %s",
                 hs_strerror(rc));
        buf_free(&file);
        return rc;
    }
    path(tmp, sizeof tmp, dir, "hearsay.snapshot.tmp");
    path(final, sizeof final, dir, "hearsay.snapshot");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, file.data, file.len) || fsync(fd)) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        buf_free(&file);
        return HS_EIO;
    }
    buf_free(&file);
    if (close(fd) || rename(tmp, final)) {
        snprintf(err, errlen, "cannot replace %s: %s", final,
                 strerror(errno));
        unlink(tmp);
        return HS_EIO;
    }
    /* The rename itself must reach the disk. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Rename a bad snapshot out of the way and say so. */
static void set_aside(const char *dir, const char *why,
                      const struct hs_logger *log)
{
    char final[4200], aside[4300];
    path(final, sizeof final, dir, "hearsay.snapshot");
    snprintf(aside, sizeof aside, "%s.corrupt-%lld", final,
             (long long)time(NULL));
    if (rename(final, aside) == 0)
        HS_ERROR(log, "snapshot %s is not usable (%s): set aside as %s; "
                 "starting without it", final, why, aside);
    else
        HS_ERROR(log, "snapshot %s is not usable (%s), and cannot be set "
                 "aside: %s; starting without it", final, why,
                 strerror(errno));
}

int snapshot_load(const char *dir, struct node *nd, struct config_list *rejoin,
                  const struct hs_logger *log, char *err, size_t errlen)
{
    char final[4200];
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "data_dir %s: %s", dir, strerror(errno));
        return HS_EIO;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(dir, W_OK) != 0) {
        snprintf(err, errlen, "data_dir %s is not a writable directory",
                 dir);
        return HS_EIO;
    }
    path(final, sizeof final, dir, "hearsay.snapshot");
    int fd = open(final, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0; /* a first start */
        snprintf(err, errlen, "cannot read %s: %s", final, strerror(errno));
        return HS_EIO;
    }
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > MAX_SNAPSHOT) {
        close(fd);
        set_aside(dir, "too large", log);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = hs_malloc(size ? size : 1);
    size_t got = 0;
    while (data && got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    const char *why = NULL;
    if (data == NULL)
        why = "out of memory";
    else if (got < HEADER || memcmp(data, MAGIC, sizeof MAGIC) != 0)
        why = got < HEADER ? "cut short" : "not a hearsay snapshot";
    else if (hs_be32(data + 8) != got - HEADER)
        why = "cut short";
    else if (wire_crc32(data + HEADER, got - HEADER) != hs_be32(data + 12))
        why = "checksum mismatch";
    struct mp_reader r;
    uint32_t nf;
    if (why == NULL) {
        mp_reader_init(&r, data + HEADER, got - HEADER);
        if (mp_read_map(&r, &nf))
            why = "malformed";
    }
    size_t members = 0, rejoin_before = rejoin->n;
    for (uint32_t i = 0; why == NULL && i < nf; i++) {
        const uint8_t *k, *v;
        uint32_t kl, vl, n;
        if (mp_read_raw(&r, &k, &kl)) {
            why = "malformed";
        } else if (kl == 4 && !memcmp(k, "meta", 4)) {
            const char *w = NULL;
            if (mp_read_raw(&r, &v, &vl) ||
                metadata_restore(node_metadata(nd), v, vl, &w)) {
                metadata_clear(node_metadata(nd));
                why = w ? w : "bad metadata";
            }
        } else if (kl == 7 && !memcmp(k, "members", 7)) {
            if (mp_read_array(&r, &n)) {
                why = "malformed members";
                break;
            }
            for (uint32_t j = 0; j < n; j++) {
                const uint8_t *name, *addr;
                uint32_t nl, al, two;
                if (mp_read_array(&r, &two) || two != 2 ||
                    mp_read_raw(&r, &name, &nl) ||
                    mp_read_raw(&r, &addr, &al)) {
                    why = "malformed members";
                    break;
                }
                char spec[600];
                snprintf(spec, sizeof spec, "%.*s/%.*s", (int)nl,
                         (const char *)name, (int)al, (const char *)addr);
                if (config_list_add(rejoin, spec) == 0)
                    members++;
            }
        } else if (mp_skip(&r)) {
            why = "malformed";
        }
    }
    hs_free(data);
    if (why) {
        config_list_truncate(rejoin, rejoin_before);
        set_aside(dir, why, log);
        return 0;
    }
    HS_INFO(log, "snapshot loaded: path=%s keys=%zu members=%zu", final,
            metadata_count(node_metadata(nd), false), members);
    metadata_take_dirty(node_metadata(nd));
    return 0;
}
