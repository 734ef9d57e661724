/* packet_encrypted.c: libFuzzer target for the UDP receive path of a node
 * with a keyring, and a label when asked.
 *
 * The first byte holds the FUZZ_* flags of fuzz.h: the cluster's label
 * and checks, and whether the target seals and labels the rest itself.
 * Sealed by the target, a datagram reaches the whole pipeline behind the
 * decryption; left as it is, it exercises the label header and the
 * blob's framing and authentication (the captured encrypted datagrams
 * open with the cluster's key). As in `packet`, node a receives it from
 * node b and the simulation runs on, encrypting whatever it sends. */
#include "fuzz.h"

#include "../../src/core/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct sim *s = fuzz_secure_cluster(data[0]);
    struct buf pkt = BUF_INIT;
    fuzz_wrap(data[0], false, data + 1, size - 1, &pkt);
    struct hs_addr from = sim_addr(s, FUZZ_B);
    node_io_packet(sim_node(s, FUZZ_A), &from, pkt.data, pkt.len);
    buf_free(&pkt);
    sim_run(s, 1500);
    fuzz_free(s);
    return 0;
}
