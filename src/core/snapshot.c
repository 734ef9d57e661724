/* snapshot.c: the data dir's file formats, and loading them at start-up
 * (see snapshot.h). Plain POSIX calls: it runs before the event loop. */
#include "core/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "codec/mp.h"
#include "codec/wire.h"
#include "core/metadata.h"

static const char MAGIC[3][8] = {
    [SNAPSHOT_LOG] = {'H', 'S', 'L', 'O', 'G', 0, 0, 1},
    [SNAPSHOT_SEG] = {'H', 'S', 'S', 'E', 'G', 0, 0, 1},
    [SNAPSHOT_MEMBERS] = {'H', 'S', 'M', 'E', 'M', 0, 0, 1},
};

/* The single-file snapshot of earlier releases: magic, body length,
 * CRC-32 of the body, then a msgpack map {saved, name, meta, members}. */
static const char LEGACY_MAGIC[8] = {'H', 'E', 'A', 'R', 'S', 'A', 'Y', '1'};
#define LEGACY_MAX (4ull << 30)
#define PATH_MAX_ 4200

/* ===== Writing ===== */

void snapshot_put_header(struct buf *b, int kind, uint64_t gen)
{
    buf_append(b, MAGIC[kind], 8);
    buf_put_be32(b, (uint32_t)(gen >> 32));
    buf_put_be32(b, (uint32_t)gen);
}

size_t snapshot_record_begin(struct buf *b, int type)
{
    size_t at = b->len;
    uint8_t head[SNAPSHOT_RECORD_HEAD] = {0};
    head[8] = (uint8_t)type;
    buf_append(b, head, sizeof head);
    return at;
}

static uint32_t record_crc(const uint8_t *rec, size_t len)
{
    /* the length's bytes, then type and payload */
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, rec, 4);
    const uint8_t *p = rec + 8;
    while (len > 0) {
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)c;
}

void snapshot_record_end(struct buf *b, size_t at)
{
    if (b->err)
        return;
    size_t len = b->len - at - 8; /* type and payload */
    if (len > SNAPSHOT_RECORD_MAX) {
        b->err = HS_ETOOBIG;
        return;
    }
    hs_put_be32(b->data + at, (uint32_t)len);
    hs_put_be32(b->data + at + 4, record_crc(b->data + at, len));
}

int snapshot_members_encode(const struct node *nd, struct buf *out)
{
    char ab[HS_ADDRSTRLEN];
    const struct members *t = node_members(nd);
    const struct member *self = node_self(nd);
    uint32_t known = 0;
    for (size_t i = 0; i < t->n; i++)
        known += t->order[i] != self;
    mp_write_array(out, known);
    for (size_t i = 0; i < t->n; i++) {
        const struct member *m = t->order[i];
        if (m == self)
            continue;
        mp_write_array(out, 2);
        mp_write_raw(out, m->name, m->name_len);
        mp_write_str(out, addr_format(&m->addr, ab, sizeof ab));
    }
    return out->err;
}

void snapshot_log_path(char *out, size_t n, const char *dir, uint64_t gen)
{
    snprintf(out, n, "%s/hearsay-%016" PRIx64 ".log", dir, gen);
}

void snapshot_seg_path(char *out, size_t n, const char *dir, uint64_t gen,
                       uint32_t idx)
{
    snprintf(out, n, "%s/hearsay-%016" PRIx64 "-%08" PRIx32 ".seg", dir, gen,
             idx);
}

void snapshot_members_path(char *out, size_t n, const char *dir)
{
    snprintf(out, n, "%s/hearsay.members", dir);
}

void snapshot_legacy_path(char *out, size_t n, const char *dir)
{
    snprintf(out, n, "%s/hearsay.snapshot", dir);
}

int snapshot_key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, HS_MIN(al, bl));
    return c ? c : al == bl ? 0 : al < bl ? -1 : 1;
}

/* ===== Reading records ===== */

/* A file's bytes, read whole (segments, members, legacy snapshots: each
 * is bounded, a segment by its size and one record). NULL on error. */
static uint8_t *read_all(int fd, size_t size, size_t *got)
{
    uint8_t *data = hs_malloc(size ? size : 1);
    *got = 0;
    while (data && *got < size) {
        ssize_t r = read(fd, data + *got, size - *got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        *got += (size_t)r;
    }
    return data;
}

/* The record at p[0..n): 0 with its type and payload, or a reason. *used
 * is its whole size. `cut` tells a record cut short by the end of the
 * bytes (what a crash leaves) from one that is wrong. */
static const char *record_at(const uint8_t *p, size_t n, int *type,
                             const uint8_t **payload, size_t *len, size_t *used,
                             bool *cut)
{
    *cut = false;
    if (n < SNAPSHOT_RECORD_HEAD) {
        *cut = true;
        return "a record cut short";
    }
    uint32_t l = hs_be32(p);
    if (l == 0 || l > SNAPSHOT_RECORD_MAX)
        return "a bad record length";
    if ((size_t)l + 8 > n) {
        *cut = true;
        return "a record cut short";
    }
    if (record_crc(p, l) != hs_be32(p + 4))
        return "a checksum mismatch";
    *type = p[8];
    *payload = p + SNAPSHOT_RECORD_HEAD;
    *len = l - 1;
    *used = (size_t)l + 8;
    return NULL;
}

/* ===== Loading ===== */

struct loader {
    const char *dir;
    struct node *nd;
    struct metadata *md;
    struct config_list *rejoin;
    const struct hs_logger *log;
    struct snapshot_files *f;
    time_t now;
};

/* Rename a bad file out of the way and say so. */
static void set_aside(struct loader *ld, const char *path, const char *what,
                      const char *why)
{
    char aside[PATH_MAX_ + 64];
    snprintf(aside, sizeof aside, "%s.corrupt-%lld", path, (long long)ld->now);
    ld->f->damaged = true;
    if (rename(path, aside) == 0)
        HS_ERROR(ld->log,
                 "%s %s is not usable (%s): set aside as %s, "
                 "never loaded",
                 what, path, why, aside);
    else
        HS_ERROR(ld->log,
                 "%s %s is not usable (%s), and cannot be set "
                 "aside: %s; not loaded",
                 what, path, why, strerror(errno));
}

/* Add the members of a MEMBERS payload (or the legacy list) to rejoin;
 * false if malformed (nothing added then). */
static bool add_members(struct loader *ld, struct mp_reader *r, size_t *count)
{
    size_t before = ld->rejoin->n;
    uint32_t n;
    *count = 0;
    if (mp_read_array(r, &n))
        return false;
    for (uint32_t j = 0; j < n; j++) {
        const uint8_t *name, *addr;
        uint32_t nl, al, two;
        if (mp_read_array(r, &two) || two != 2 || mp_read_raw(r, &name, &nl) ||
            mp_read_raw(r, &addr, &al)) {
            config_list_truncate(ld->rejoin, before);
            *count = 0;
            return false;
        }
        char spec[600];
        snprintf(spec, sizeof spec, "%.*s/%.*s", (int)HS_MIN(nl, 300u),
                 (const char *)name, (int)HS_MIN(al, 200u), (const char *)addr);
        if (config_list_add(ld->rejoin, spec) == 0)
            (*count)++;
    }
    return true;
}

static int load_legacy(struct loader *ld)
{
    char path[PATH_MAX_];
    struct stat st;
    snapshot_legacy_path(path, sizeof path, ld->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : HS_EIO;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > LEGACY_MAX) {
        close(fd);
        set_aside(ld, path, "snapshot", "too large");
        return 0;
    }
    size_t got;
    uint8_t *data = read_all(fd, (size_t)st.st_size, &got);
    close(fd);
    const char *why = NULL;
    if (data == NULL)
        return HS_ENOMEM;
    if (got < SNAPSHOT_HEADER || memcmp(data, LEGACY_MAGIC, 8) != 0)
        why = got < SNAPSHOT_HEADER ? "cut short" : "not a hearsay snapshot";
    else if (hs_be32(data + 8) != got - SNAPSHOT_HEADER)
        why = "cut short";
    else if (wire_crc32(data + SNAPSHOT_HEADER, got - SNAPSHOT_HEADER) !=
             hs_be32(data + 12))
        why = "checksum mismatch";
    struct mp_reader r;
    uint32_t nf = 0;
    if (why == NULL) {
        mp_reader_init(&r, data + SNAPSHOT_HEADER, got - SNAPSHOT_HEADER);
        if (mp_read_map(&r, &nf))
            why = "malformed";
    }
    size_t members = 0, before = ld->rejoin->n;
    for (uint32_t i = 0; why == NULL && i < nf; i++) {
        const uint8_t *k, *v;
        uint32_t kl, vl;
        if (mp_read_raw(&r, &k, &kl)) {
            why = "malformed";
        } else if (kl == 4 && !memcmp(k, "meta", 4)) {
            const char *w = NULL;
            if (mp_read_raw(&r, &v, &vl) ||
                metadata_restore(ld->md, v, vl, &w)) {
                metadata_clear(ld->md);
                why = w ? w : "bad metadata";
            }
        } else if (kl == 7 && !memcmp(k, "members", 7)) {
            if (!add_members(ld, &r, &members))
                why = "malformed members";
        } else if (mp_skip(&r)) {
            why = "malformed";
        }
    }
    hs_free(data);
    if (why) {
        config_list_truncate(ld->rejoin, before);
        set_aside(ld, path, "snapshot", why);
        return 0;
    }
    ld->f->legacy = true;
    HS_INFO(ld->log, "snapshot loaded: path=%s keys=%zu members=%zu", path,
            metadata_count(ld->md, false), members);
    return 0;
}

/* Apply one record of a segment or a log; a reason if it is bad. */
static const char *apply(struct loader *ld, int type, const uint8_t *p,
                         size_t n, int *rc)
{
    const char *why = NULL;
    *rc = 0;
    if (type == SNAPSHOT_REC_ENTRY)
        *rc = metadata_entry_restore(ld->md, p, n, &why);
    else if (type == SNAPSHOT_REC_STATE)
        *rc = metadata_state_restore(ld->md, p, n, &why);
    if (*rc == HS_ENOMEM)
        return "out of memory";
    return *rc ? (why ? why : "a bad record") : NULL;
}

/* Check a whole segment, then apply it: a bad one is never applied. */
static int load_segment(struct loader *ld, uint64_t gen, uint32_t idx)
{
    char path[PATH_MAX_];
    struct stat st;
    snapshot_seg_path(path, sizeof path, ld->dir, gen, idx);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return HS_EIO;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return HS_EIO;
    }
    size_t got;
    uint8_t *data = read_all(fd, (size_t)st.st_size, &got);
    close(fd);
    if (data == NULL)
        return HS_ENOMEM;
    const char *why = NULL;
    struct buf hb = BUF_INIT;
    snapshot_put_header(&hb, SNAPSHOT_SEG, gen);
    if (got < SNAPSHOT_HEADER || hb.err ||
        memcmp(data, hb.data, SNAPSHOT_HEADER) != 0)
        why = got < SNAPSHOT_HEADER ? "cut short"
                                    : "not a hearsay segment "
                                      "of its generation";
    buf_free(&hb);
    /* First pass: every record sound, and the end record last. */
    size_t off = SNAPSHOT_HEADER, entries = 0;
    const uint8_t *endp = NULL;
    size_t endlen = 0;
    while (why == NULL && off < got && endp == NULL) {
        int type;
        const uint8_t *p;
        size_t len, used;
        bool cut;
        why = record_at(data + off, got - off, &type, &p, &len, &used, &cut);
        if (why)
            break;
        if (type == SNAPSHOT_REC_ENTRY)
            entries++;
        else if (type == SNAPSHOT_REC_END) {
            endp = p;
            endlen = len;
        }
        off += used;
    }
    if (why == NULL && endp == NULL)
        why = "cut short (no end record)";
    else if (why == NULL && off != got)
        why = "bytes after the end record";
    else if (why == NULL &&
             (endlen < 8 || endlen - 8 > 256 ||
              ((uint64_t)hs_be32(endp) << 32 | hs_be32(endp + 4)) != entries))
        why = "a bad end record";
    if (why) {
        hs_free(data);
        set_aside(ld, path, "snapshot segment", why);
        return 0;
    }
    /* Second pass: apply. */
    int rc = 0;
    for (off = SNAPSHOT_HEADER; off < got;) {
        int type;
        const uint8_t *p;
        size_t len, used;
        bool cut;
        record_at(data + off, got - off, &type, &p, &len, &used, &cut);
        const char *w = apply(ld, type, p, len, &rc);
        if (rc == HS_ENOMEM)
            break;
        if (w) /* sound bytes, not an entry: a bug or a newer format */
            HS_WARN(ld->log,
                    "snapshot segment %s: a record not applied "
                    "(%s)",
                    path, w);
        off += used;
    }
    struct snapshot_seg *s =
        rc == HS_ENOMEM
            ? NULL
            : hs_realloc(ld->f->segs, (ld->f->nsegs + 1) * sizeof *s);
    if (s == NULL) {
        hs_free(data);
        return HS_ENOMEM;
    }
    ld->f->segs = s;
    s += ld->f->nsegs++;
    memset(s, 0, sizeof *s);
    s->gen = gen;
    s->idx = idx;
    s->empty = entries == 0;
    s->lastlen = (uint16_t)(endlen - 8);
    memcpy(s->last, endp + 8, s->lastlen);
    hs_free(data);
    s->bytes = got;
    ld->f->snapshot_bytes += got;
    ld->f->entries += entries;
    return 0;
}

/* Copy bytes [from, size) of a log aside before they are cut. */
static void keep_cut(struct loader *ld, int fd, const char *path, uint64_t from,
                     uint64_t size, char *aside, size_t n)
{
    snprintf(aside, n, "%s.corrupt-%lld", path, (long long)ld->now);
    int out = open(aside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint8_t chunk[65536];
    bool ok = out >= 0;
    for (uint64_t at = from; ok && at < size;) {
        size_t want = (size_t)HS_MIN((uint64_t)sizeof chunk, size - at);
        ssize_t r = pread(fd, chunk, want, (off_t)at);
        ok = r > 0 && write(out, chunk, (size_t)r) == r;
        at += r > 0 ? (uint64_t)r : 0;
    }
    if (out >= 0 && (!ok || fsync(out) != 0))
        ok = false;
    if (out >= 0)
        close(out);
    if (!ok) {
        unlink(aside);
        snprintf(aside, n, "nowhere (%s)", strerror(errno ? errno : EIO));
    }
}

/* Replay a log, record by record, and cut it at its first bad record. */
static int load_log(struct loader *ld, uint64_t gen)
{
    char path[PATH_MAX_], aside[PATH_MAX_ + 64];
    struct stat st;
    snapshot_log_path(path, sizeof path, ld->dir, gen);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return HS_EIO;
    }
    uint64_t size = (uint64_t)st.st_size, off = 0;
    if (size == 0) { /* created, then a crash before its first write */
        close(fd);
        unlink(path);
        return 0;
    }
    uint8_t head[SNAPSHOT_HEADER];
    struct buf hb = BUF_INIT;
    snapshot_put_header(&hb, SNAPSHOT_LOG, gen);
    bool good = hb.err == 0 && size >= SNAPSHOT_HEADER &&
                pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
                memcmp(head, hb.data, SNAPSHOT_HEADER) == 0;
    buf_free(&hb);
    if (!good && size >= SNAPSHOT_HEADER) {
        close(fd);
        set_aside(ld, path, "log", "not a hearsay log of its generation");
        return 0;
    }
    off = good ? SNAPSHOT_HEADER : 0;
    struct buf rec = BUF_INIT;
    const char *why = size < SNAPSHOT_HEADER ? "a header cut short" : NULL;
    bool cut = why != NULL;
    int rc = 0;
    uint64_t records = 0;
    while (why == NULL && off < size) {
        uint8_t h[SNAPSHOT_RECORD_HEAD];
        size_t want = (size_t)HS_MIN((uint64_t)sizeof h, size - off);
        if (pread(fd, h, want, (off_t)off) != (ssize_t)want) {
            why = "a read error";
            break;
        }
        uint32_t l = want == sizeof h ? hs_be32(h) : 0;
        if (want < sizeof h ||
            (l && l <= SNAPSHOT_RECORD_MAX && off + 8 + l > size)) {
            why = "a record cut short";
            cut = true;
            break;
        }
        if (l == 0 || l > SNAPSHOT_RECORD_MAX) {
            why = "a bad record length";
            break;
        }
        buf_reset(&rec);
        if (buf_reserve(&rec, (size_t)l + 8)) {
            rc = HS_ENOMEM;
            break;
        }
        if (pread(fd, rec.data, (size_t)l + 8, (off_t)off) != (ssize_t)l + 8) {
            why = "a read error";
            break;
        }
        int type;
        const uint8_t *p;
        size_t len, used;
        bool c;
        why = record_at(rec.data, (size_t)l + 8, &type, &p, &len, &used, &c);
        if (why)
            break;
        if (type == SNAPSHOT_REC_ENTRY || type == SNAPSHOT_REC_STATE) {
            why = apply(ld, type, p, len, &rc);
            if (rc == HS_ENOMEM)
                break;
            if (why)
                break;
            records++;
        } else {
            HS_WARN(ld->log,
                    "log %s: a record of unknown type %d at byte "
                    "%" PRIu64 " skipped",
                    path, type, off);
        }
        off += used;
    }
    buf_free(&rec);
    if (rc == HS_ENOMEM) {
        close(fd);
        return rc;
    }
    if (why) {
        /* A record cut short at the very end is what a crash leaves in
         * the middle of a write; anything else is damage, and the bytes
         * cut are kept aside for whoever wants to look at them. */
        ld->f->damaged = true;
        if (cut) {
            snprintf(aside, sizeof aside, "nowhere (a torn write)");
            HS_WARN(ld->log,
                    "log %s: %s at byte %" PRIu64 " of %" PRIu64
                    ": the last %" PRIu64 " bytes are cut, never applied "
                    "(a write torn by a crash)",
                    path, why, off, size, size - off);
        } else {
            keep_cut(ld, fd, path, off, size, aside, sizeof aside);
            HS_ERROR(ld->log,
                     "log %s: %s at byte %" PRIu64 " of %" PRIu64
                     ": the %" PRIu64 " bytes from there are cut, never "
                     "applied, and kept in %s",
                     path, why, off, size, size - off, aside);
        }
        if (ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0)
            HS_ERROR(ld->log,
                     "log %s: cannot cut it: %s (it is cut again "
                     "at the next start)",
                     path, strerror(errno));
        size = off;
    }
    close(fd);
    if (size < SNAPSHOT_HEADER) { /* nothing in it: gone */
        unlink(path);
        return 0;
    }
    struct snapshot_log *lg =
        hs_realloc(ld->f->logs, (ld->f->nlogs + 1) * sizeof *lg);
    if (lg == NULL)
        return HS_ENOMEM;
    ld->f->logs = lg;
    ld->f->logs[ld->f->nlogs++] = (struct snapshot_log){gen, size};
    ld->f->log_bytes += size;
    ld->f->records += records;
    return 0;
}

static int load_members(struct loader *ld)
{
    char path[PATH_MAX_];
    struct stat st;
    snapshot_members_path(path, sizeof path, ld->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : HS_EIO;
    if (fstat(fd, &st) != 0 || st.st_size > (64 << 20)) {
        close(fd);
        set_aside(ld, path, "members file", "too large");
        return 0;
    }
    size_t got, used, len, count = 0;
    uint8_t *data = read_all(fd, (size_t)st.st_size, &got);
    close(fd);
    if (data == NULL)
        return HS_ENOMEM;
    const char *why = NULL;
    int type = 0;
    const uint8_t *p = NULL;
    bool cut;
    if (got < SNAPSHOT_HEADER || memcmp(data, MAGIC[SNAPSHOT_MEMBERS], 8) != 0)
        why = got < SNAPSHOT_HEADER ? "cut short" : "not a members file";
    else if ((why = record_at(data + SNAPSHOT_HEADER, got - SNAPSHOT_HEADER,
                              &type, &p, &len, &used, &cut)) == NULL &&
             (type != SNAPSHOT_REC_MEMBERS || used != got - SNAPSHOT_HEADER))
        why = "malformed";
    if (why == NULL) {
        struct mp_reader r;
        mp_reader_init(&r, p, len);
        if (!add_members(ld, &r, &count))
            why = "malformed members";
    }
    hs_free(data);
    if (why)
        set_aside(ld, path, "members file", why);
    else
        HS_DEBUG(ld->log, "members loaded: path=%s members=%zu", path, count);
    return 0;
}

struct name {
    uint64_t gen;
    uint32_t idx;
    bool seg;
};

static int by_gen(const void *x, const void *y)
{
    const struct name *a = x, *b = y;
    if (a->gen != b->gen)
        return a->gen < b->gen ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* hearsay-G.log or hearsay-G-I.seg (and their .tmp: `tmp`). */
static bool parse_name(const char *s, struct name *n, bool *tmp)
{
    char *end;
    *tmp = false;
    if (strncmp(s, "hearsay-", 8) != 0 || strlen(s) < 8 + 16 + 4)
        return false;
    for (int i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", s[8 + i]))
            return false;
    n->gen = strtoull(s + 8, &end, 16);
    if (end != s + 24)
        return false;
    n->idx = 0;
    n->seg = false;
    if (*end == '-') {
        for (int i = 1; i <= 8; i++)
            if (!end[i] || !strchr("0123456789abcdef", end[i]))
                return false;
        n->idx = (uint32_t)strtoul(end + 1, NULL, 16);
        end += 9;
        n->seg = true;
    }
    const char *ext = n->seg ? ".seg" : ".log";
    if (strncmp(end, ext, 4) != 0)
        return false;
    if (end[4] == '\0')
        return true;
    *tmp = strcmp(end + 4, ".tmp") == 0;
    return *tmp;
}

/* DIR exists (made when missing) and is a directory we may write in. */
static int usable_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "data_dir %s: %s", dir, strerror(errno));
        return HS_EIO;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0) {
        snprintf(err, errlen, "data_dir %s is not a writable directory", dir);
        return HS_EIO;
    }
    return 0;
}

int snapshot_check_dir(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX_];
    int rc = usable_dir(dir, err, errlen);
    if (rc)
        return rc;
    /* access() says yes to root, whatever the mode: write a file. */
    if ((size_t)snprintf(path, sizeof path, "%s/hearsay.check-XXXXXX", dir) >=
        sizeof path) {
        snprintf(err, errlen, "data_dir %s: the path is too long", dir);
        return HS_EINVAL;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errlen, "data_dir %s is not a writable directory: %s",
                 dir, strerror(errno));
        return HS_EIO;
    }
    close(fd);
    unlink(path);
    return 0;
}

int snapshot_open(const char *dir, struct node *nd, struct config_list *rejoin,
                  const struct hs_logger *log, struct snapshot_files *out,
                  char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int urc = usable_dir(dir, err, errlen);
    if (urc)
        return urc;
    struct loader ld = {dir, nd,  node_metadata(nd), rejoin,
                        log, out, time(NULL)};
    /* The files of ours, in generation order; leftovers of a save that
     * did not finish (.tmp) go. */
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "data_dir %s: %s", dir, strerror(errno));
        return HS_EIO;
    }
    struct name *names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    char path[PATH_MAX_];
    while ((de = readdir(d)) != NULL) {
        struct name nm;
        bool tmp;
        if (!strcmp(de->d_name, "hearsay.members.tmp")) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
            continue;
        }
        if (!parse_name(de->d_name, &nm, &tmp))
            continue;
        if (nm.gen > out->max_gen)
            out->max_gen = nm.gen;
        if (tmp) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct name *v = hs_realloc(names, cap * sizeof *v);
            if (v == NULL) {
                rc = HS_ENOMEM;
                break;
            }
            names = v;
        }
        names[n++] = nm;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_gen);
    if (rc == 0)
        rc = load_legacy(&ld);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (names[i].seg)
            rc = load_segment(&ld, names[i].gen, names[i].idx);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!names[i].seg)
            rc = load_log(&ld, names[i].gen);
    if (rc == 0)
        rc = load_members(&ld);
    hs_free(names);
    if (rc) {
        snprintf(err, errlen, "data_dir %s: cannot load: %s", dir,
                 rc == HS_ENOMEM ? "out of memory" : hs_strerror(rc));
        snapshot_files_free(out);
        return rc;
    }
    if (out->nsegs || out->nlogs)
        HS_INFO(log,
                "data dir loaded: dir=%s keys=%zu segments=%zu "
                "entries=%" PRIu64 " logs=%zu records=%" PRIu64,
                dir, metadata_count(ld.md, false), out->nsegs, out->entries,
                out->nlogs, out->records);
    metadata_take_dirty(ld.md);
    return 0;
}

void snapshot_files_free(struct snapshot_files *f)
{
    hs_free(f->segs);
    hs_free(f->logs);
    f->segs = NULL;
    f->logs = NULL;
    f->nsegs = f->nlogs = 0;
}

int snapshot_load(const char *dir, struct node *nd, struct config_list *rejoin,
                  const struct hs_logger *log, char *err, size_t errlen)
{
    struct snapshot_files f;
    int rc = snapshot_open(dir, nd, rejoin, log, &f, err, errlen);
    snapshot_files_free(&f);
    return rc;
}
