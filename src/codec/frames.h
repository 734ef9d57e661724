/* frames.h: the bytes of an accepted TCP connection, before any socket.
 *
 * The first byte says what a connection carries: FRAMES_MAGIC (0xE7;
 * memberlist's types are 0-13 and 244) starts the packet frames of
 * transport "tcp", anything else is a memberlist stream. Packet frames
 * are `len:u32 big-endian | packet` with 1 <= len <= FRAMES_MAX, split
 * any way across reads. Pure (no libuv, no node), so that the transport
 * (transport_pkt.c) reads with it and a fuzz target feeds it bytes
 * without sockets. */
#ifndef HS_FRAMES_H
#define HS_FRAMES_H

#include "base/hs.h"

#define FRAMES_MAGIC 0xE7
#define FRAMES_MAX 65536u

/* What an accepted connection carries, by its first byte. */
enum {
    FRAMES_STREAM,
    FRAMES_PACKETS
};
static inline int frames_classify(uint8_t first)
{
    return first == FRAMES_MAGIC ? FRAMES_PACKETS : FRAMES_STREAM;
}

/* The frame being read. A frame split across reads is gathered in
 * `frame`, which lives only that long: an idle connection holds no
 * memory. Zero-initialise; frames_free releases. */
struct frames {
    uint8_t hdr[4];
    size_t nhdr;
    uint8_t *frame;
    size_t flen, fgot;
    uint64_t count; /* whole frames delivered */
};

/* A whole frame; it is lent until the call returns. A nonzero return
 * stops the reading (the connection is going away) and is returned by
 * frames_feed. */
typedef int (*frames_fn)(void *ud, const uint8_t *p, size_t n);

/* Read n more bytes of a packet connection (after its magic byte),
 * calling fn for each whole frame. Returns 0, fn's nonzero answer, or
 * HS_EBADMSG (an empty frame), HS_ETOOBIG (a length over FRAMES_MAX),
 * HS_ENOMEM, with a reason in *why; after an error the connection is
 * dropped and its reader only freed. */
int frames_feed(struct frames *f, const uint8_t *p, size_t n, frames_fn fn,
                void *ud, const char **why);
/* Inside a frame (its length or bytes started, not finished)? */
static inline bool frames_partial(const struct frames *f)
{
    return f->nhdr > 0;
}
void frames_free(struct frames *f);

#endif
