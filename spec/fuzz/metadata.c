/* metadata.c: libFuzzer target for the decoders of the metadata store.
 *
 * The first byte picks what the rest is fed to, on node a of a fresh
 * two-node cluster (whose store holds a few keys):
 *   0  metadata_restore, into the emptied store; a snapshot of what it
 *      loaded must load again, to the same number of entries
 *   1  metadata_sync_merge, as the section of the answer to a push/pull a
 *      started (a then syncs the keys that differ with b over streams)
 *   2  metadata_sync_merge, as the section of a push/pull b started
 *   3  metadata_sync_encode, answering a section from b
 *   4  metadata_stream_serve, a sync or fetch request from b
 *   5  metadata_on_gossip, a gossiped entry or announcement from b
 *   6  snapshot_load, the rest being the body of a snapshot file (the
 *      header is made valid, so the body is parsed)
 *   7  snapshot_load, the rest being the whole file
 *   8  metadata_state_restore, then the rest after its first byte as
 *      one entry for metadata_entry_restore (twice: the second changes
 *      nothing)
 * (the first byte's low four bits; 9 to 15 as 0 to 6). The simulation
 * then runs, so that the streams they open run too, and every index of
 * the store must agree with the others after all of it. */
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/codec/wire.h"
#include "../../src/core/metadata.h"
#include "../../src/core/node.h"
#include "../../src/core/snapshot.h"

static void restore(struct metadata *md, const uint8_t *p, size_t n)
{
    const char *why = NULL;
    metadata_clear(md);
    if (metadata_restore(md, p, n, &why)) {
        metadata_clear(md);
        return;
    }
    size_t count = metadata_count(md, true);
    struct buf snap = BUF_INIT;
    if (metadata_snapshot(md, &snap))
        abort();
    metadata_clear(md);
    if (metadata_restore(md, snap.data, snap.len, &why) ||
        metadata_count(md, true) != count) {
        fprintf(stderr,
                "metadata: a snapshot of %zu entries does not load "
                "back: %s\n",
                count, why ? why : "count differs");
        abort();
    }
    buf_free(&snap);
}

static void state_and_entry(struct metadata *md, const uint8_t *p, size_t n)
{
    const char *why = NULL;
    if (n == 0)
        return;
    size_t split = p[0] < n ? p[0] : n - 1;
    metadata_state_restore(md, p + 1, split, &why);
    size_t before = metadata_count(md, true);
    if (metadata_entry_restore(md, p + 1 + split, n - 1 - split, &why))
        return;
    size_t after = metadata_count(md, true);
    if (after > before + 1 ||
        metadata_entry_restore(md, p + 1 + split, n - 1 - split, &why) ||
        metadata_count(md, true) != after) {
        fprintf(stderr, "metadata: replaying an entry changed the store\n");
        abort();
    }
}

static void load_file(struct node *nd, const uint8_t *p, size_t n, bool header)
{
    char path[300];
    snprintf(path, sizeof path, "%s/hearsay.snapshot", fuzz_temp_dir());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    uint8_t h[16] = {'H', 'E', 'A', 'R', 'S', 'A', 'Y', '1'};
    hs_put_be32(h + 8, (uint32_t)n);
    hs_put_be32(h + 12, wire_crc32(p, n));
    if ((header && write(fd, h, sizeof h) != (ssize_t)sizeof h) ||
        (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
    struct config_list rejoin = {{0}, 0};
    char err[256];
    metadata_clear(node_metadata(nd));
    if (snapshot_load(fuzz_temp_dir(), nd, &rejoin, &fuzz_logger, err,
                      sizeof err))
        abort(); /* only an unusable directory fails */
    config_list_truncate(&rejoin, 0);
    fuzz_temp_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct sim *s = fuzz_cluster();
    struct node *nd = sim_node(s, FUZZ_A);
    struct metadata *md = node_metadata(nd);
    struct hs_addr peer = sim_addr(s, FUZZ_B);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    struct buf out = BUF_INIT;
    int mode = data[0] & 15;
    if (mode > 8)
        mode -= 9;
    switch (mode) {
    case 0:
        restore(md, p, n);
        break;
    case 1:
    case 2:
        metadata_sync_merge(md, p, n, mode == 1, &peer);
        break;
    case 3:
        metadata_sync_encode(md, p, n, &out);
        break;
    case 4:
        metadata_stream_serve(md, p, n, &out);
        break;
    case 5:
        metadata_on_gossip(md, p, n, &peer);
        break;
    case 6:
    case 7:
        load_file(nd, p, n, mode == 6);
        break;
    default:
        state_and_entry(md, p, n);
        break;
    }
    fuzz_touch(out.data, out.len);
    buf_free(&out);
    sim_run(s, 2500);
    char why[200];
    for (size_t i = 0; i < 2; i++)
        if (metadata_check(node_metadata(sim_node(s, i)), why, sizeof why)) {
            fprintf(stderr, "metadata: the store's indexes disagree: %s\n",
                    why);
            abort();
        }
    fuzz_free(s);
    return 0;
}
