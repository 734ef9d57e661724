/* datadir.c: libFuzzer target for the loader of the data dir (snapshot.c):
 * the bytes of a file an agent would find in its data dir after a crash,
 * a full disk or bit rot.
 *
 * The first byte picks the file the rest becomes, in an empty directory
 * that node a then loads (snapshot_open):
 *   0  a log, whole (header and records)
 *   1  a log, after a valid header (so its records are parsed)
 *   2  a snapshot segment, whole
 *   3  a snapshot segment, after a valid header
 *   4  the members file, whole
 *   5  a log after a valid header, next to a segment that holds the
 *      store's entries (the log is replayed on top of them)
 * Loading must never fail on bad bytes (only on an unusable directory)
 * and never leak. The simulation then runs, as after a start. */
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/core/metadata.h"
#include "../../src/core/node.h"
#include "../../src/core/snapshot.h"

static void write_file(const char *path, const struct buf *head,
                       const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if ((head->len && write(fd, head->data, head->len) != (ssize_t)head->len) ||
        (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

/* node b's store as a segment of generation 1 (what a snapshot wrote). */
struct seg {
    struct buf b;
    uint64_t n;
    char last[META_KEY_MAX];
    size_t lastlen;
};

static void add_entry(void *ud, const struct meta_entry *e)
{
    struct seg *sg = ud;
    size_t at = snapshot_record_begin(&sg->b, SNAPSHOT_REC_ENTRY);
    metadata_entry_encode(e, &sg->b);
    snapshot_record_end(&sg->b, at);
    memcpy(sg->last, e->key, e->keylen);
    sg->lastlen = e->keylen;
    sg->n++;
}

static void write_segment(struct node *b)
{
    struct seg sg = {BUF_INIT, 0, {0}, 0};
    bool more;
    snapshot_put_header(&sg.b, SNAPSHOT_SEG, 1);
    metadata_scan(node_metadata(b), NULL, 0, 1000, add_entry, &sg, &more);
    size_t at = snapshot_record_begin(&sg.b, SNAPSHOT_REC_END);
    buf_put_be32(&sg.b, (uint32_t)(sg.n >> 32));
    buf_put_be32(&sg.b, (uint32_t)sg.n);
    buf_append(&sg.b, sg.last, sg.lastlen);
    snapshot_record_end(&sg.b, at);
    char path[600];
    struct buf none = BUF_INIT;
    snapshot_seg_path(path, sizeof path, fuzz_temp_dir(), 1, 0);
    write_file(path, &none, sg.b.data, sg.b.len);
    buf_free(&sg.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct sim *s = fuzz_cluster();
    struct node *nd = sim_node(s, FUZZ_A);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int mode = data[0] % 6;
    char path[600];
    struct buf head = BUF_INIT;
    metadata_clear(node_metadata(nd));
    switch (mode) {
    case 0:
    case 1:
    case 5:
        snapshot_log_path(path, sizeof path, fuzz_temp_dir(), 2);
        if (mode != 0)
            snapshot_put_header(&head, SNAPSHOT_LOG, 2);
        break;
    case 2:
    case 3:
        snapshot_seg_path(path, sizeof path, fuzz_temp_dir(), 2, 0);
        if (mode == 3)
            snapshot_put_header(&head, SNAPSHOT_SEG, 2);
        break;
    default:
        snapshot_members_path(path, sizeof path, fuzz_temp_dir());
        break;
    }
    write_file(path, &head, p, n);
    buf_free(&head);
    if (mode == 5)
        write_segment(sim_node(s, FUZZ_B));
    struct config_list rejoin = {{0}, 0};
    struct snapshot_files f;
    char err[256];
    if (snapshot_open(fuzz_temp_dir(), nd, &rejoin, &fuzz_logger, &f, err,
                      sizeof err))
        abort(); /* only an unusable directory fails */
    snapshot_files_free(&f);
    config_list_truncate(&rejoin, 0);
    fuzz_temp_clear();
    sim_run(s, 1500);
    fuzz_free(s);
    return 0;
}
