/* md_node.c: where the store meets the node, the one file of the store
 * that sees struct node (node_int.h): the store made with the node's
 * parts it reads, requests sent over the node's streams, members looked
 * up, drops counted. */
#include "core/metadata_int.h"

#include "core/node_int.h"

int metadata_new(struct node *nd, struct metadata **out)
{
    struct metadata *md = hs_calloc(1, sizeof *md);
    if (md == NULL)
        return HS_ENOMEM;
    md->nd = nd;
    md->cfg = &nd->cfg;
    md->hooks = &nd->hooks;
    md->log = nd->log;
    md->io = &nd->io;
    md->nstats = &nd->stats;
    md->namelen = nd->self_name_len;
    /* From the node's random state, without drawing from it: the same
     * seed gives the same run as before there was a table to seed. */
    md->seed = mix64(nd->rng.s[0] ^ nd->rng.s[3]);
    hs_rng_seed(&md->rng, mix64(nd->rng.s[1] ^ nd->rng.s[2]));
    bqueue_init(&md->queue, QUEUE_MAX);
    *out = md;
    return 0;
}

/* A request stream ended: its answer (or none) goes to the request. */
static void request_done(struct stream *s, int err, const char *why,
                         const uint8_t *p, size_t n)
{
    struct wire_envelope e;
    void *req = s->req;
    (void)why;
    s->req = NULL;
    if (req == NULL)
        return;
    if (err == 0 && stream_envelope(p, n, WIRE_ENV_META_RESP, &e))
        metadata_stream_answer(s->nd->store, req, e.body, e.len);
    else
        metadata_stream_answer(s->nd->store, req, NULL, 0);
}

/* The node closes with the request open: the store goes next. */
static void request_cancel(struct stream *s)
{
    hs_free(s->req);
    s->req = NULL;
}

int md_send_request(struct metadata *md, const struct hs_addr *to,
                    const struct buf *body, struct request *rq)
{
    struct node *nd = md->nd;
    struct buf b = BUF_INIT, env = BUF_INIT;
    wire_put_envelope(&env, WIRE_ENV_META_REQ, nd->cfg.name, nd->self_name_len);
    wire_put_user_header(&b, (int64_t)(env.len + body->len));
    buf_append(&b, env.data, env.len);
    buf_append(&b, body->data, body->len);
    int rc = b.err;
    struct stream *s = NULL;
    if (rc == 0) {
        s = stream_dial(nd, STREAM_META, to, nd->cfg.tcp_timeout, request_done,
                        request_cancel);
        rc = s ? stream_set_request(s, b.data, b.len) : HS_EIO;
    }
    if (rc == 0) {
        s->req = rq;
        md->stats.sync_bytes_out += b.len;
    } else if (s) {
        stream_finish(s);
    }
    buf_free(&b);
    buf_free(&env);
    return rc;
}

/* The address of a live member, not us, by name. */
bool md_member_addr(const struct metadata *md, const char *name, size_t len,
                    struct hs_addr *out)
{
    const struct member *m = members_find(&md->nd->members, name, len);
    if (!(m && m->state == MEMBER_ALIVE && m != md->nd->self))
        return false;
    *out = m->addr;
    return true;
}

void md_count_drop(struct metadata *md, int reason, const struct hs_addr *from,
                   const char *what, const char *why)
{
    node_count_drop(md->nd, reason, from, what, why);
}
