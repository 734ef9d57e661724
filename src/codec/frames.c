/* frames.c: the packet frames of transport "tcp" (see frames.h). */
#include "codec/frames.h"

#include <string.h>

#include "base/buf.h"

int frames_feed(struct frames *f, const uint8_t *p, size_t n, frames_fn fn,
                void *ud, const char **why)
{
    while (n > 0) {
        if (f->nhdr < 4) {
            size_t k = HS_MIN(4 - f->nhdr, n);
            memcpy(f->hdr + f->nhdr, p, k);
            f->nhdr += k;
            p += k;
            n -= k;
            if (f->nhdr < 4)
                return 0;
            f->flen = hs_be32(f->hdr);
            f->fgot = 0;
            /* Checked before anything is held for it: a length is never
             * an allocation size unless it is within the bound. */
            if (f->flen == 0 || f->flen > FRAMES_MAX) {
                *why = f->flen ? "frame too long" : "empty frame";
                return f->flen ? HS_ETOOBIG : HS_EBADMSG;
            }
            continue;
        }
        if (f->fgot == 0 && n >= f->flen) {
            /* The whole frame is here: no copy. */
            size_t len = f->flen;
            f->nhdr = 0;
            f->count++;
            int rc = fn(ud, p, len);
            if (rc)
                return rc;
            p += len;
            n -= len;
            continue;
        }
        if (f->frame == NULL) {
            f->frame = hs_malloc(f->flen);
            if (f->frame == NULL) {
                *why = "out of memory reading a packet frame";
                return HS_ENOMEM;
            }
        }
        size_t k = HS_MIN(f->flen - f->fgot, n);
        memcpy(f->frame + f->fgot, p, k);
        f->fgot += k;
        p += k;
        n -= k;
        if (f->fgot == f->flen) {
            uint8_t *whole = f->frame;
            size_t len = f->flen;
            f->frame = NULL;
            f->nhdr = 0;
            f->fgot = 0;
            f->count++;
            int rc = fn(ud, whole, len);
            hs_free(whole);
            if (rc)
                return rc;
        }
    }
    return 0;
}

void frames_free(struct frames *f)
{
    hs_free(f->frame);
    f->frame = NULL;
    f->nhdr = f->fgot = 0;
}
