/* md_codec.c: an entry on the wire and on disk, and back.
 * A msgpack map: k key, v value (absent in a tombstone or an
 * announcement), ver version, o origin, d deleted, big size (an
 * announcement: the value is too large for a packet). */
#include "core/metadata_int.h"

#include <string.h>

#include "codec/mp.h"

void md_put_entry(struct buf *b, const struct meta_entry *e, bool value,
                  bool announce)
{
    mp_write_map(b, 4 + (value && !e->deleted) + announce);
    mp_write_str(b, "k");
    mp_write_raw(b, e->key, e->keylen);
    if (value && !e->deleted) {
        mp_write_str(b, "v");
        mp_write_raw(b, e->value, e->len);
    }
    mp_write_str(b, "ver");
    mp_write_uint(b, e->version);
    mp_write_str(b, "o");
    mp_write_raw(b, e->origin, e->originlen);
    mp_write_str(b, "d");
    mp_write_bool(b, e->deleted);
    if (announce) {
        mp_write_str(b, "big");
        mp_write_uint(b, e->len);
    }
}

int md_get_entry(struct mp_reader *r, struct view *v)
{
    uint32_t n;
    int rc = mp_read_map(r, &n);
    if (rc)
        return rc;
    memset(v, 0, sizeof *v);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kl;
        if ((rc = mp_read_raw(r, &k, &kl)))
            return rc;
        if (kl == 1 && k[0] == 'k')
            rc = mp_read_raw(r, &v->key, &v->keylen);
        else if (kl == 1 && k[0] == 'v') {
            rc = mp_read_raw(r, &v->value, &v->len);
            v->has_value = rc == 0;
        } else if (kl == 3 && !memcmp(k, "ver", 3))
            rc = mp_read_uint(r, &v->version);
        else if (kl == 1 && k[0] == 'o')
            rc = mp_read_raw(r, &v->origin, &v->originlen);
        else if (kl == 1 && k[0] == 'd')
            rc = mp_read_bool(r, &v->deleted);
        else if (kl == 3 && !memcmp(k, "big", 3))
            rc = mp_read_uint(r, &v->big);
        else
            rc = mp_skip(r);
        if (rc)
            return rc;
    }
    if (v->key == NULL || v->keylen > META_KEY_MAX ||
        memchr(v->key, 0, v->keylen) || v->origin == NULL ||
        v->originlen == 0 || v->originlen > 255 ||
        memchr(v->origin, 0, v->originlen))
        return HS_EBADMSG;
    return 0;
}
