/* stream_encrypted.c: libFuzzer target for the TCP streams a node with a
 * keyring (and a label, when asked) accepts.
 *
 * The first byte holds the FUZZ_* flags of fuzz.h, as in
 * packet_encrypted; the rest is the stream, sealed as `0a len blob` and
 * preceded by the label header when the flags say so. As in `stream`, an
 * input of odd length is followed by the peer closing the stream. */
#include "fuzz.h"

#include "../../src/core/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct sim *s = fuzz_secure_cluster(data[0]);
    struct buf msg = BUF_INIT;
    fuzz_wrap(data[0], true, data + 1, size - 1, &msg);
    sim_inject_stream(s, FUZZ_A, msg.data, msg.len, size % 2 == 1);
    buf_free(&msg);
    sim_run(s, 2500);
    fuzz_free(s);
    return 0;
}
