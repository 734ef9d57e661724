/* lzw.c: libFuzzer target for the LZW codec alone.
 *
 * The input is decoded as a compressed stream (any outcome is fine, as
 * long as nothing is read or written out of bounds and the output stays
 * within the limit). Then it is compressed and decompressed again, which
 * must give back exactly the input. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/codec/lzw.h"

#define OUT_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out = BUF_INIT;
    int rc = lzw_decode(data, size, OUT_MAX, &out);
    if (rc == 0 && out.len > OUT_MAX) {
        fprintf(stderr, "lzw: %zu bytes out, over the limit\n", out.len);
        abort();
    }
    fuzz_touch(out.data, out.len);
    buf_free(&out);

    struct buf z = BUF_INIT, back = BUF_INIT;
    if (lzw_encode(data, size, &z))
        abort();
    rc = lzw_decode(z.data, z.len, size, &back);
    if (rc || back.len != size || (size && memcmp(back.data, data, size))) {
        fprintf(stderr,
                "lzw: round trip of %zu bytes failed: %s, %zu "
                "bytes back\n",
                size, hs_strerror(rc), back.len);
        abort();
    }
    buf_free(&z);
    buf_free(&back);
    fuzz_check_leaks("lzw");
    return 0;
}
