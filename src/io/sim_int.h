/* sim_int.h: what the pieces of the simulated network share (private to
 * src/io): the simulation's structs and the calls across its files.
 *
 * The pieces: sim.c (the node table: adding, killing, restarting,
 * pausing nodes), sim_queue.c (the event queue, the virtual clock and
 * running), sim_net.c (the network model: links, delays, loss,
 * partitions), sim_io.c (the struct io of each node, simulated streams and
 * the listen backlog, delivering events to nodes) and sim_obs.c (logs,
 * the event observer and the counters, convergence).
 *
 * Every random draw comes from the one generator in struct sim, in the
 * order the events run: the same seed and calls give the same run. */
#ifndef HS_SIM_INT_H
#define HS_SIM_INT_H

#include "io/sim.h"

#include "base/rng.h"

/* ===== Events ===== */

enum ev_type {
    EV_WAKE,
    EV_PACKET,
    EV_CONNECT,
    EV_CONNECTED,
    EV_DATA,
    EV_END
};

struct half;

struct event {
    uint64_t at, seq;
    int type;
    uint32_t node;  /* receiving node */
    uint32_t epoch; /* the node's epoch when the event was made */
    uint64_t gen;   /* EV_WAKE: the request it belongs to */
    struct hs_addr from;
    struct half *h; /* stream half the event is for */
    int status;     /* EV_CONNECTED: the result; EV_CONNECT: how many
                        * times its SYN was sent again */
    size_t len;
    uint8_t data[];
};

/* One side of a simulated TCP connection. */
struct half {
    struct half *peer;
    struct sim *sim;
    uint32_t node, epoch;
    void *owner;
    bool closed;   /* the core called stream_close */
    bool ended;    /* the core was told the stream ended */
    uint64_t last; /* time of the last data sent to the peer */
    int refs;      /* events and the core pointing here */
};

struct snode {
    struct sim *sim;
    uint32_t idx;
    uint32_t epoch;
    struct node *nd; /* NULL while killed */
    struct config cfg;
    struct hooks hooks;
    struct hs_addr addr;
    struct io io;
    struct hs_logger log;
    uint64_t wake_gen;
    uint64_t paused_until;
    int group;
    int64_t clock_offset; /* ms added to this node's wall clock */
    uint64_t slow_ms;     /* added to everything it receives */
    uint64_t raised;      /* its own suspicions, as of the last event */
    struct sim_stats stats;
    /* Connections waiting for the node to take them (the listen
     * backlog): EV_CONNECT events, oldest at backlog[head]. */
    struct event **backlog;
    size_t head, nbacklog, capbacklog;
};

struct block {
    uint32_t a, b;
    int what;
};

/* What a directed pair of nodes has of its own: a link model other than
 * the default, and when its bandwidth is free again. */
struct pair {
    uint64_t key; /* (a + 1) << 32 | (b + 1); 0: empty slot */
    bool own;     /* link below overrides the default */
    struct sim_link link;
    uint64_t busy_until; /* microseconds */
};

/* Most connections waiting to be taken by one node unless set otherwise:
 * Linux's somaxconn. */
#define BACKLOG_DEFAULT 4096

struct sim {
    uint64_t now, seq;
    struct block *blocks;
    size_t nblocks;
    struct hs_rng rng;
    struct event **heap;
    size_t n, cap;
    struct snode **nodes;
    size_t nnodes, capnodes;
    struct sim_link link;
    struct pair *pairs; /* open addressing, linear probing */
    size_t npairs, cappairs;
    size_t nown; /* pairs with a link of their own */
    struct sim_stats stats;
    int log_level;
    void (*sink)(void *ud, const char *node, uint64_t now, int level,
                 const char *msg);
    void *sink_ud;
    sim_event_fn event_fn;
    void *event_ud;
    sim_life_fn life_fn;
    void *life_ud;
    size_t backlog; /* connections waiting per node, at most */
};

static inline uint64_t rnd(struct sim *s)
{
    return hs_rng_next(&s->rng);
}

static inline double rnd01(struct sim *s)
{
    return (double)(rnd(s) >> 11) * (1.0 / 9007199254740992.0);
}

#define COUNT(sn, field) ((sn)->sim->stats.field++, (sn)->stats.field++)

/* sim_queue.c: events ordered by (at, seq), seq the order of pushing. */
struct event *ev_new(int type, uint64_t at, const struct snode *to,
                     const void *data, size_t len);
void ev_push(struct sim *s, struct event *e);
struct event *ev_pop(struct sim *s);
void ev_drop(struct event *e);

/* sim_net.c */
const struct sim_link *net_link_of(const struct sim *s, uint32_t a, uint32_t b);
uint64_t net_latency(struct sim *s, const struct sim_link *l);
uint64_t net_arrival(struct sim *s, uint32_t a, uint32_t b,
                     const struct sim_link *l, size_t n);
uint64_t net_stream_arrival(struct sim *s, uint32_t a, uint32_t b, size_t n);
bool net_reachable(const struct sim *s, const struct snode *a,
                   const struct snode *b, bool stream);
struct snode *net_by_addr(struct sim *s, const struct hs_addr *a);

/* sim_io.c */
/* The struct io of node sn. */
struct io io_of(struct snode *sn);
void half_unref(struct half *h);
void backlog_reset(struct sim *s, struct snode *sn);
bool io_deliver(struct sim *s, struct event *e);

/* sim_obs.c */
void obs_log_sink(void *ud, int level, const char *msg);
void obs_event(void *ud, int event, const struct member *m);

#endif
