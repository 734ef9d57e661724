/* sim.h: a simulated network under a virtual clock: the in-memory
 * implementation of io.h (compare raft's fixture.c and memberlist's
 * MockNetwork).
 *
 * Many nodes run the real protocol core in one process. Time advances only
 * when the simulation runs events, so the same seed and the same calls
 * give the same run, event for event. Node i gets the address
 * 10.a.b.c:7946 with a.b.c = i + 1. The simulation owns its nodes. */
#ifndef HS_SIM_H
#define HS_SIM_H

#include "core/node.h"

struct sim;

/* A one-way link model. Packets may be lost, duplicated or held back
 * (reordered); stream data is never lost and stays in order, as TCP's,
 * but each loss drawn for it delays it by a retransmission timeout
 * (200 ms, doubling). Both share the latency and the bandwidth. */
enum {
    SIM_LATENCY_FIXED,
    SIM_LATENCY_UNIFORM,
    SIM_LATENCY_NORMAL
};
struct sim_link {
    int latency_dist;   /* SIM_LATENCY_* */
    double latency_ms;  /* fixed: the delay; uniform: the least; normal:
                             the mean */
    double latency2_ms; /* uniform: the most; normal: the standard
                             deviation (the delay never goes below 0) */
    double loss;        /* probability a packet is lost */
    double duplicate;   /* probability a packet arrives twice */
    double reorder;     /* probability a packet is held back ... */
    double reorder_ms;  /* ... by this much more, so later ones pass it */
    uint64_t bandwidth; /* bytes per second, 0 = unlimited: a link sends
                             one thing at a time, the rest queue */
};
/* 1 ms fixed, nothing else. */
struct sim_link sim_link_default(void);

int sim_new(uint64_t seed, struct sim **out);
/* Connections a node leaves waiting when it serves max_inbound_streams
 * already (the listen backlog; 4096 by default). Past it, a connection's
 * SYN is dropped and sent again after 1 s, 2 s, 4 s, ... (6 times). */
void sim_set_backlog(struct sim *s, size_t n);
void sim_free(struct sim *s);
/* Default link for every pair of nodes. */
void sim_set_link(struct sim *s, const struct sim_link *l);
/* The link from node a to node b only (one way); NULL: back to the
 * default. */
int sim_set_link_between(struct sim *s, size_t a, size_t b,
                         const struct sim_link *l);
/* Log sink for all nodes (NULL: silent) and level. */
void sim_set_log(struct sim *s, int level,
                 void (*sink)(void *ud, const char *node, uint64_t now,
                              int level, const char *msg),
                 void *ud);

/* Add and start a node (cfg->name must be unique; bind/advertise are set
 * by the simulation). Returns its index. */
int sim_add(struct sim *s, const struct config *cfg, const struct hooks *hooks,
            size_t *idx);
size_t sim_count(const struct sim *s);
struct node *sim_node(struct sim *s, size_t idx); /* NULL when killed */
const char *sim_name(const struct sim *s, size_t idx);
struct hs_addr sim_addr(const struct sim *s, size_t idx);
/* Index of the node with that name, or -1. */
long sim_find(const struct sim *s, const char *name);

/* The logger of node idx (its lines go to the sink of sim_set_log). */
const struct hs_logger *sim_logger(const struct sim *s, size_t idx);

uint64_t sim_now(const struct sim *s);
/* Run every event due within the next `ms` milliseconds. */
void sim_run(struct sim *s, uint64_t ms);
/* Run the next event, if any before `until`; false when none. */
bool sim_step(struct sim *s, uint64_t until);

/* Crash a node (no goodbye; its sockets vanish) and start it again with
 * the same name, address, config and hooks and a fresh state. */
void sim_kill(struct sim *s, size_t idx);
int sim_restart(struct sim *s, size_t idx);
bool sim_alive(const struct sim *s, size_t idx);
/* Freeze a node for `ms` (as SIGSTOP would): its packets wait in its
 * socket buffer and its timers fire late. */
void sim_pause(struct sim *s, size_t idx, uint64_t ms);
/* Nodes in different groups cannot reach each other; group 0 is the
 * default. sim_heal puts everyone back in group 0. */
void sim_set_group(struct sim *s, size_t idx, int group);
/* A slow process: everything node idx receives (packets and stream data)
 * reaches it `ms` later, while its own timers stay on time, so its probes
 * time out before their acks are read (Lifeguard's slow node). */
void sim_set_slow(struct sim *s, size_t idx, uint64_t ms);
/* Shift a node's wall clock (the metadata store's HLC reads it). */
void sim_set_clock_offset(struct sim *s, size_t idx, int64_t ms);
/* Block the link from node a to node b (one way): packets only, or
 * packets and streams. sim_heal also clears every block. */
enum {
    SIM_BLOCK_NONE,
    SIM_BLOCK_UDP,
    SIM_BLOCK_ALL
};
int sim_block(struct sim *s, size_t a, size_t b, int what);
void sim_heal(struct sim *s);
/* Open a stream from a fake peer to node idx, write `p` and keep it
 * open (a peer that never finishes). */
int sim_inject_stream(struct sim *s, size_t idx, const void *p, size_t n,
                      bool close_after);

struct sim_stats {
    uint64_t packets, bytes, lost, blocked, duplicated, reordered, streams,
        backlogged, syn_retries;
    /* Ground truth: suspicions (every node that hears one counts it),
     * those a node raised itself from a failed probe, and deaths, with the
     * false ones: about nodes running (not killed, not frozen) then. */
    uint64_t suspicions, false_suspicions, raised, false_raised, deaths,
        false_deaths;
};
const struct sim_stats *sim_stats(const struct sim *s);
/* The same counters for what node idx sent and declared. */
const struct sim_stats *sim_node_stats(const struct sim *s, size_t idx);

/* Every member event of every node, as it happens (the Lua binding's
 * event list). NULL removes it. */
typedef void (*sim_event_fn)(void *ud, size_t idx, int event,
                             const struct member *m);
void sim_set_event_sink(struct sim *s, sim_event_fn fn, void *ud);
/* Called with each node just after it is created (up: at sim_add and at
 * every restart, before it starts) and just before it is closed (!up: a
 * kill, a restart, sim_free): where a binding attaches and detaches what
 * lives with the node. */
typedef void (*sim_life_fn)(void *ud, size_t idx, struct node *nd, bool up);
void sim_set_lifecycle(struct sim *s, sim_life_fn fn, void *ud);
/* True when every running node sees exactly the running nodes (itself
 * included) as alive. */
bool sim_converged(struct sim *s);
/* Broadcasts waiting in every running node's queues. */
size_t sim_queued(struct sim *s);
/* How many running nodes see the member named `name` in `state`. */
size_t sim_count_seeing(struct sim *s, const char *name, int state);
/* Is node idx frozen by sim_pause right now? */
bool sim_paused(const struct sim *s, size_t idx);

#endif
