/* transport_int.h: what the pieces of the libuv transport share (private
 * to src/io): the transport and connection structs, and the functions one
 * piece calls in another.
 *
 * The pieces: transport.c (the struct io, timers, binding, lifecycle),
 * transport_conn.c (TCP connections: lifetime, writing, dialling,
 * reading), transport_accept.c (the listener: accepting, per-address
 * counts, telling streams from packet connections), transport_pkt.c
 * (packets over TCP, transport = tcp), transport_udp.c (UDP packets) and
 * transport_addr.c (socket addresses, the advertised address, resolving).
 *
 * One UDP socket and one TCP listener share an address and port. Every
 * TCP connection, whoever opened it, is a struct io_stream on one list:
 *
 *   CONN_STREAM   a memberlist stream the core names (dialled by
 *                 stream_open, or accepted and handed to the node);
 *   CONN_NEW      accepted, first byte not read yet;
 *   CONN_PKT_IN   accepted, first byte 0xE7: packet frames from a peer in
 *                 tcp mode (frames.c reads them);
 *   CONN_PKT_OUT  dialled by send_packet in tcp mode, cached per
 *                 destination and reused until idle.
 *
 * A packet connection starts with FRAMES_MAGIC (0xE7: memberlist types
 * are 0-13 and 244, so one listener tells the two apart), then carries
 * frames `len:u32 big-endian | packet`, 1 <= len <= 65536.
 *
 * An accepted connection must bring its first whole message (a stream's
 * request, a packet connection's first frame) within tcp_timeout, and one
 * address holds at most max_inbound_streams_per_ip connections that are
 * not packet connections, so a few slow or silent clients cannot take
 * every slot from the others.
 *
 * Memory of a connection is freed only in its close callback, so the
 * struct stays valid across any callback into the node, even one that
 * closes the stream or the whole transport. A connection the core named
 * is closed only by stream_close (or transport_close): the core may name
 * it until then. Closing is graceful: queued writes, then a FIN
 * (uv_shutdown), then reading on until the peer's FIN so that unread
 * bytes do not turn our close into a reset; a linger deadline bounds it. */
#ifndef HS_TRANSPORT_INT_H
#define HS_TRANSPORT_INT_H

#include "io/transport.h"

#include <sys/socket.h>
#include <uv.h>

#include "codec/frames.h"
#include "core/node.h"

#define UDP_BUF 65536
#define PKT_QUEUE_MAX (1u << 20) /* bytes queued per packet connection */
#define UDP_QUEUE_MAX (4u << 20) /* bytes queued behind a full socket */
#define PKT_OUT_IDLE 60000       /* ms: close an unused cached conn */
#define PKT_IN_IDLE 120000       /* ms: longer, so the sender closes */
#define NEW_MAX 256              /* accepted, first byte not read yet */
#define PKT_IN_MAX 1024          /* inbound packet connections */
#define SOCK_BUF (2 << 20)       /* memberlist asks for 2 MiB */
#define BIND_TRIES 10
#define SWEEP_MS 1000
#define BACKLOG 511

enum {
    CONN_STREAM,
    CONN_NEW,
    CONN_PKT_IN,
    CONN_PKT_OUT
};
enum {
    ST_CONNECTING,
    ST_OPEN,
    ST_DRAINING
};

struct io_stream {
    struct io_stream *next, *prev;
    struct transport *t;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    int kind, state;
    bool core;   /* the core names it (until stream_close) */
    bool ended;  /* node_io_stream_end or a failed connect sent */
    bool failed; /* a read or write error: no graceful close */
    bool reading, rdone, wdone;
    bool per_ip; /* counted in the transport's per-address table */
    void *owner;
    struct hs_addr peer;
    /* ms: opened, last packet sent or received, last write done, end
     * of the linger while draining. */
    uint64_t since, last, progress, deadline;
    /* Bytes written before the connection is up. */
    uint8_t *pend;
    size_t npend, cappend;
    unsigned pend_frames;
    size_t queued;    /* bytes handed to uv_write, not yet written */
    struct frames fr; /* the frame being read (CONN_PKT_IN) */
};

/* A write in flight, with a copy of its bytes after it. */
struct wreq {
    uv_write_t req;
    struct io_stream *c;
    size_t n;
    unsigned frames;
};

/* A datagram queued behind a busy socket, its bytes after it. */
struct sreq {
    uv_udp_send_t req;
    struct transport *t;
};

/* Inbound connections by source address: a slot per address with any
 * (open addressing, linear probing, backward-shift deletion). */
struct ipcount {
    uint8_t ip[16];
    uint8_t len;
    uint32_t n; /* 0: an empty slot */
};

struct transport {
    uv_loop_t *loop;
    const struct hs_logger *log;
    struct node *nd;
    struct io io;
    int mode;
    int family;
    uint64_t tcp_timeout;
    uint64_t linger;
    struct hs_addr bound;
    uv_udp_t udp;
    uv_tcp_t listener;
    uv_timer_t wake;
    uv_timer_t sweep;
    struct io_stream *conns;
    int handles;       /* open uv handles, the transport's included */
    int nnew, npkt_in; /* connections of those kinds */
    struct ipcount *ips;
    size_t nips, capips;
    uint32_t max_per_ip;
    int rcvbuf;             /* SO_RCVBUF asked for (handoff_queue_depth) */
    uint64_t warned_per_ip; /* when the last per-address refusal was a
                             * WARN */
    bool sockets;   /* udp and listener are initialised (transport_listen) */
    bool listening; /* bound and listening: the io may send */
    bool closing;
    void (*close_cb)(void *ud);
    void *close_ud;
    struct transport_stats stats;
    uint64_t warned;          /* when the last send failure was a WARN */
    uint8_t rbuf[FRAMES_MAX]; /* TCP reads: each is consumed at once */
    uint8_t ubuf[UDP_BUF];
};

/* One monotonic clock for now() and the wake timer: the loop's. */
static inline uint64_t tnow(struct transport *t)
{
    uv_update_time(t->loop);
    return uv_now(t->loop);
}

/* The node may be called: attached, and the transport not closing. */
static inline struct node *live_node(const struct transport *t)
{
    return t->closing ? NULL : t->nd;
}

/* transport.c */
/* A libuv error as an HS_E* code. */
int tr_err(int uverr);
/* Write the sentence into err (if any) and return rc. */
int tr_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Free the transport once it is closing and its last handle has closed. */
void tr_maybe_done(struct transport *t);

/* transport_addr.c */
int tr_to_sockaddr(const struct hs_addr *a, int family,
                   struct sockaddr_storage *ss);
int tr_from_sockaddr(const struct sockaddr *sa, struct hs_addr *out);

/* transport_conn.c */
struct io_stream *conn_new(struct transport *t, int kind);
void conn_close(struct io_stream *c);
void conn_release(struct io_stream *c);
void conn_read_start(struct io_stream *c);
int conn_pend_append(struct io_stream *c, const void *p, size_t n);
int conn_write(struct io_stream *c, const void *a, size_t an, const void *b,
               size_t bn, unsigned frames);
struct io_stream *conn_dial(struct transport *t, const struct hs_addr *to,
                            int kind, int *rc);

/* transport_accept.c */
void tr_on_connection(uv_stream_t *server, int status);
void tr_classify(struct io_stream *c, const uint8_t *p, size_t n);
void tr_ip_release(struct io_stream *c);

/* transport_pkt.c */
void pkt_feed(struct io_stream *c, const uint8_t *p, size_t n);
void pkt_frame_error(struct io_stream *c, const char *why);
int pkt_send(struct transport *t, const struct hs_addr *to, const void *p,
             size_t n);

/* transport_udp.c */
void tr_on_udp_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf);
void tr_on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *sa, unsigned flags);
int udp_send(struct transport *t, const struct hs_addr *to, const void *p,
             size_t n);

#endif
