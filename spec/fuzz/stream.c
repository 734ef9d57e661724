/* stream.c: libFuzzer target for the TCP streams a node accepts.
 *
 * The input is what a peer writes on a stream it opened to node a of a
 * fresh two-node cluster: a push/pull with user state (a Lua section and
 * the metadata digest section), a fallback ping, a user message, a
 * metadata sync or fetch request, or anything else. An input of odd
 * length is followed by the peer closing the stream; an even one leaves
 * it open, so that a message cut short meets the stream deadline. The
 * simulation runs past tcp_timeout, so that the answer, the merge and
 * whatever they set off run too. */
#include "fuzz.h"

#include "../../src/core/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sim *s = fuzz_cluster();
    sim_inject_stream(s, FUZZ_A, data, size, size % 2 == 1);
    sim_run(s, 2500);
    fuzz_free(s);
    return 0;
}
