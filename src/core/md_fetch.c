/* md_fetch.c: fetches of values too large for a packet, from the
 * node that announced them, or else from their origin. */
#include "core/metadata_int.h"

#include "codec/mp.h"

void md_fetch_free(struct metadata *md, struct fetch *f)
{
    struct fetch **pp = &md->fetches;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    hs_free(f);
}

static int fetch_from(struct metadata *md, struct fetch *f,
                      const struct hs_addr *to)
{
    struct buf body = BUF_INIT;
    mp_write_map(&body, 2);
    mp_write_str(&body, "push");
    mp_write_array(&body, 0);
    mp_write_str(&body, "want");
    mp_write_array(&body, 1);
    mp_write_raw(&body, f->key, f->keylen);
    struct request *rq = hs_calloc(1, sizeof *rq);
    int rc = rq && !body.err ? 0 : HS_ENOMEM;
    if (rc == 0) {
        rq->md = md;
        rq->fetch = f;
        rq->asked = 1;
        rc = md_send_request(md, to, &body, rq);
    }
    if (rc)
        hs_free(rq);
    buf_free(&body);
    return rc;
}

void md_start_fetch(struct metadata *md, const struct view *v,
                    const struct hs_addr *from)
{
    for (struct fetch *f = md->fetches; f; f = f->next)
        if (f->keylen == v->keylen && !memcmp(f->key, v->key, v->keylen) &&
            f->version >= v->version)
            return; /* already on its way */
    struct fetch *f = hs_calloc(1, sizeof *f);
    if (f == NULL)
        return;
    f->version = v->version;
    f->keylen = (uint16_t)v->keylen;
    memcpy(f->key, v->key, v->keylen);
    f->originlen = (uint8_t)v->originlen;
    memcpy(f->origin, v->origin, v->originlen);
    f->next = md->fetches;
    md->fetches = f;
    md->stats.fetches++;
    /* From the node that told us: it has the value. */
    if (from == NULL || fetch_from(md, f, from)) {
        md->stats.fetch_errors++;
        md_fetch_free(md, f);
    }
}

/* The origin, as a second chance for a fetch that failed. */
bool md_retry_from_origin(struct metadata *md, struct fetch *f)
{
    if (f->retried)
        return false;
    f->retried = true;
    struct hs_addr to;
    return md_member_addr(md, f->origin, f->originlen, &to) &&
           fetch_from(md, f, &to) == 0;
}
