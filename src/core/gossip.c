/* gossip.c: gossip rounds (SWIM's dissemination component). */
#include "core/node_int.h"

/* ===== Gossip (SWIM's dissemination component, piggyback-free round) */

static bool gossip_target(const struct node *nd, const struct member *m)
{
    switch (m->state) {
    case MEMBER_ALIVE:
    case MEMBER_SUSPECT:
        return true;
    case MEMBER_DEAD:
        return node_now(nd) - m->state_change <=
               nd->cfg.gossip_to_the_dead_time;
    default:
        return false;
    }
}

void gossip_tick(struct timer *t)
{
    struct node *nd = HS_CONTAINER_OF(t, struct node, gossip_tick);
    node_arm(nd, t, node_now(nd) + nd->cfg.gossip_interval);
    if (nd->paused || nd->cfg.gossip_nodes <= 0)
        return;
    struct member *peers[1024];
    size_t k = node_pick(nd, peers, HS_MIN((size_t)nd->cfg.gossip_nodes, 1024),
                         gossip_target);
    size_t limit = (size_t)nd->cfg.udp_buffer_size - WIRE_COMPOUND_HEADER -
                   node_packet_overhead(nd);
    struct buf all = BUF_INIT, pkt = BUF_INIT;
    size_t lens[WIRE_COMPOUND_MAX];
    for (size_t i = 0; i < k; i++) {
        buf_reset(&all);
        buf_reset(&pkt);
        size_t n = node_take_broadcasts(nd, WIRE_COMPOUND_OVERHEAD, limit, &all,
                                        lens, WIRE_COMPOUND_MAX,
                                        peers[i]->peer != PEER_FOREIGN);
        if (n == 0)
            continue;
        if (node_pack(&all, lens, n, &pkt) == 0)
            node_send_raw(nd, &peers[i]->addr, peers[i], pkt.data, pkt.len);
    }
    buf_free(&all);
    buf_free(&pkt);
}
