/* lzw.h: the LZW codec of memberlist "compress" messages (Go compress/lzw). */
#ifndef HS_LZW_H
#define HS_LZW_H

#include "base/buf.h"

/* The stream format is GIF-style LZW as Go's compress/lzw speaks it with
 * order LSB and litWidth 8: codes 0-255 are literals, 256 clears the
 * table, 257 ends the data, dictionary codes start at 258. Codes are 9 to
 * 12 bits wide, packed least significant bit first, with no early change.
 * See shared reference section 6. */

/* Compress `len` bytes as Go's compress/lzw writer (LSB, litWidth 8) does,
 * appending to `out`: a leading clear code, the codes, the end code, the last
 * partial byte zero-padded. Returns 0 or HS_ENOMEM. */
int lzw_encode(const uint8_t *in, size_t len, struct buf *out);

/* Decompress an LZW stream, appending to `out`. Accepts streams with or
 * without a leading clear code. Returns 0, HS_ETRUNC if the input ends before
 * the end code, HS_EBADMSG on an invalid code, HS_ETOOBIG if the output would
 * exceed `max_out` bytes (nothing beyond max_out is ever allocated), or
 * HS_ENOMEM. On error `out` may hold partial output; callers discard it. */
int lzw_decode(const uint8_t *in, size_t len, size_t max_out, struct buf *out);

#endif
