/* io.h: the seam between the protocol core and the world.
 *
 * The core reaches time and the network only through a struct io, which
 * transport*.c implement on libuv (real sockets, real time) and sim*.c in
 * memory (virtual time, simulated links). Compare raft's struct raft_io.
 *
 * The io layer calls back into the core with the node_io_* functions of
 * node.h, always on the loop thread. Ownership:
 *   - Bytes passed to send_packet and stream_write are copied before the
 *     call returns; the caller keeps its buffer.
 *   - A struct io_stream belongs to the io layer. The core names it in
 *     calls until it calls stream_close; after that no callback mentions
 *     it, and pending writes are still flushed before the socket closes.
 *   - Received bytes are lent to the callback only for its duration. */
#ifndef HS_IO_H
#define HS_IO_H

#include "base/addr.h"

struct io_stream;

struct io {
    void *ctx;
    /* Milliseconds on a monotonic clock. */
    uint64_t (*now)(void *ctx);
    /* Milliseconds since the Unix epoch (wall clock): only the metadata
     * store's versions use it. */
    uint64_t (*wall)(void *ctx);
    /* Call node_io_timers() once `at` has passed. A later call replaces
     * the request; UINT64_MAX cancels it. */
    void (*wakeup)(void *ctx, uint64_t at);
    /* Fill p with random bytes (seeds the node's generator, nonces). */
    void (*random)(void *ctx, void *p, size_t n);
    /* Send one datagram. Returns 0 or an HS_E* code; a failure is not
     * retried. */
    int (*send_packet)(void *ctx, const struct hs_addr *to, const void *p,
                       size_t n);
    /* Open a stream to `to`; node_io_stream_connected() reports the
     * outcome later (never from inside this call). `owner` is handed back
     * in every callback about the stream. */
    int (*stream_open)(void *ctx, const struct hs_addr *to, void *owner,
                       struct io_stream **out);
    int (*stream_write)(void *ctx, struct io_stream *s, const void *p,
                        size_t n);
    /* Flush pending writes, then close. No callbacks follow. */
    void (*stream_close)(void *ctx, struct io_stream *s);
};

#endif
