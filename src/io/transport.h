/* transport.h: the libuv implementation of io.h (real sockets, real time).
 *
 * A transport owns one UDP socket and one TCP listener on the same
 * address and port, the TCP connections of the node's streams, and one uv
 * timer that wakes the node. With transport = "tcp" every packet travels
 * over TCP too (framed, on cached connections), for networks that block
 * UDP; only hearsay peers configured the same way understand that. */
#ifndef HS_TRANSPORT_H
#define HS_TRANSPORT_H

#include "base/log.h"
#include "core/config.h"
#include "io/io.h"

struct node;
struct transport;
/* libuv's loop (uv_loop_t), named but not opened here: this header does
 * not bring in <uv.h>, and a user that calls libuv includes it itself. */
struct uv_loop_s;

/* Make a transport for cfg->bind (an ip:port; port 0 picks a free port),
 * not bound yet: its io keeps time and timers, but sends and dials fail
 * (HS_ESTATE) until transport_listen, so a node, and the scripts that
 * use it, can be made before any port is taken. Returns 0 or an HS_E*
 * code with a sentence in err. The loop and log are borrowed; once made,
 * the transport goes with transport_close, bound or not. */
int transport_new(struct uv_loop_s *loop, const struct config *cfg,
                  const struct hs_logger *log, struct transport **out,
                  char *err, size_t errlen);
/* Bind the UDP socket and TCP listener to the address (the same port for
 * both) and start listening. Returns 0 or an HS_E* code with a sentence
 * in err ("cannot bind UDP 127.0.0.1:7946: address already in use"); on
 * failure the transport stays unbound, for transport_close. */
int transport_listen(struct transport *t, char *err, size_t errlen);
/* The io for node_new; valid until transport_close. An accepted TCP
 * connection reaches node_io_stream_accepted at its first byte: a first
 * byte of 0xE7 marks a packet connection of transport "tcp" (accepted in
 * both modes), anything else a memberlist stream. At most
 * cfg->max_inbound_streams_per_ip connections from one address are open
 * at once (packet connections aside); more are closed at accept. */
const struct io *transport_io(struct transport *t);
/* The node to call back (set once, after node_new). */
void transport_attach(struct transport *t, struct node *nd);
/* The bound address (with the real port, once listening). */
struct hs_addr transport_bound(const struct transport *t);
/* The address to advertise: cfg->advertise if set (host names resolved
 * synchronously at start-up), else the bound address, else when bound to
 * 0.0.0.0 / :: the first non-loopback address of the host. */
int transport_advertise(struct transport *t, const struct config *cfg,
                        struct hs_addr *out, char *err, size_t errlen);
/* Close every handle; cb(ud) runs once all are closed. Streams still open
 * are dropped without callbacks. Call it after node_close: the node closes
 * its streams through the io, and no io call may follow this one. */
void transport_close(struct transport *t, void (*cb)(void *ud), void *ud);

/* Resolve "host:port", "[v6]:port" or "host" (default_port) without
 * blocking the loop; cb gets every address found (IPv4 first). */
typedef void (*transport_resolve_cb)(void *ud, int err,
                                     const struct hs_addr *addrs, size_t n);
int transport_resolve(struct uv_loop_s *loop, const char *hostport,
                      uint16_t default_port, transport_resolve_cb cb, void *ud);

/* Packets and bytes dropped by the transport itself (oversized, framing
 * errors on tcp-mode connections), for stats. tcp_refused counts every
 * connection refused at accept, tcp_refused_per_ip those of them refused
 * for max_inbound_streams_per_ip; tcp_timeouts the connections closed
 * for not sending their first byte, or a packet connection its first
 * frame, within tcp_timeout. */
struct transport_stats {
    uint64_t udp_recv_errors, udp_send_errors, tcp_accepts, tcp_refused,
        frames_in, frames_out, frame_errors, tcp_refused_per_ip, tcp_timeouts;
};
const struct transport_stats *transport_stats(const struct transport *t);

#endif
