/* tags.h: Serf's tags in memberlist's node meta (our private data): the
 * byte 0xff, then a msgpack map of string keys to string values, the
 * whole at most WIRE_META_MAX bytes (serf's encodeTags / decodeTags).
 *
 * Private data comes from the network: the decoder checks every length
 * against what is left, and anything unexpected makes the whole of it
 * "not tags". Tags are returned as views into the input. */
#ifndef HS_TAGS_H
#define HS_TAGS_H

#include "base/buf.h"

#define TAGS_MAGIC 0xff
/* The most tags private data of WIRE_META_MAX bytes can hold (each tag
 * takes two bytes at least). */
#define TAGS_MAX 256

struct tag {
    const uint8_t *key, *value;
    uint32_t keylen, valuelen;
};

/* Decode Serf's tags: 0 with the tags in out[0..*n) in the order they
 * were written (a key written twice counts once, with its last value, as
 * in Go's map); HS_ENOTFOUND when the bytes are not Serf tags at all
 * (empty, or not starting with 0xff: an old Serf's role, or any other
 * private data); HS_EBADMSG when they start with 0xff but are not a
 * whole map of strings. */
int tags_decode(const uint8_t *p, size_t len, struct tag *out, size_t *n);

/* Encode tags as Serf does (0xff, then the map; strings in the raw
 * family, as Go's codec writes them), sorted by key so that the same
 * tags always give the same bytes. Keys must be distinct. Appends to
 * out (errors stick there). */
void tags_encode(const struct tag *t, size_t n, struct buf *out);

/* Sort tags by key (bytes, then length). */
void tags_sort(struct tag *t, size_t n);

#endif
