/* packet.c: libFuzzer target for the UDP receive path of a node.
 *
 * The input is one datagram, delivered to node a of a fresh two-node
 * cluster as if node b had sent it: the whole pipeline (CRC, compound,
 * compress, every message body, user messages with the hearsay envelope:
 * metadata gossip and rumors). The simulation then runs for a while, so
 * that whatever the datagram set off (replies, probes, suspicion timers,
 * metadata fetches over streams, gossip to b) runs too. */
#include "fuzz.h"

#include "../../src/core/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sim *s = fuzz_cluster();
    struct hs_addr from = sim_addr(s, FUZZ_B);
    node_io_packet(sim_node(s, FUZZ_A), &from, data, size);
    sim_run(s, 1500);
    fuzz_free(s);
    return 0;
}
