/* stream.c: TCP streams of the protocol (memberlist net.go, streams).
 *
 * A stream carries one exchange and is closed after it: a push/pull (both
 * ways), a fallback ping and its ack, or a user message. Each side reads
 * until one whole message has arrived (messages are self-delimiting), with
 * a deadline of tcp_timeout and a size bound; the io layer only moves
 * bytes. A stream is owned by the node's list until stream_finish. A
 * stream we dial carries its own completion callback, as a libuv request
 * does (stream_dial): this file never asks what a stream was for. */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

static void deadline_fired(struct timer *t);

static struct stream *stream_new(struct node *nd, int kind,
                                 const struct hs_addr *peer,
                                 uint64_t timeout_ms)
{
    struct stream *s = hs_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->nd = nd;
    s->kind = kind;
    s->peer = *peer;
    wire_stream_scan_init(&s->scan);
    timer_init(&s->deadline, deadline_fired);
    s->next = nd->streams;
    if (nd->streams)
        nd->streams->prev = s;
    nd->streams = s;
    node_arm(nd, &s->deadline, node_now(nd) + timeout_ms);
    return s;
}

void stream_finish(struct stream *s)
{
    struct node *nd = s->nd;
    node_disarm(nd, &s->deadline);
    if (s->prev)
        s->prev->next = s->next;
    else
        nd->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->kind == STREAM_IN)
        nd->inbound_streams--;
    if (s->io)
        nd->io.stream_close(nd->io.ctx, s->io);
    if (nd->probe.tcp == s)
        nd->probe.tcp = NULL;
    buf_free(&s->in);
    buf_free(&s->out);
    hs_free(s);
}

void stream_close_all(struct node *nd)
{
    while (nd->streams) {
        struct stream *s = nd->streams;
        if (s->on_cancel)
            s->on_cancel(s);
        stream_finish(s);
    }
}

int stream_wrap(struct node *nd, const uint8_t *msg, size_t len, bool seal,
                struct buf *out)
{
    bool sealed = (seal || node_seals(nd)) && !keyring_empty(&nd->keyring);
    struct buf tmp = BUF_INIT, *b = sealed ? &tmp : out;
    size_t start = b->len, sealed_start = out->len;
    if (len)
        node_count_out(nd, msg[0], len);
    /* Streams are compressed whenever compression is on, even when that
     * makes them larger (memberlist rawSendMsgStream), then sealed. */
    if (nd->cfg.enable_compression) {
        wire_put_compress(b, msg, len);
        node_count_out(nd, WIRE_COMPRESS, b->len - start);
    } else
        buf_append(b, msg, len);
    if (sealed && tmp.err == 0) {
        uint8_t nonce[KEYRING_NONCE];
        node_nonce(nd, nonce);
        int rc = keyring_seal_stream(
            &nd->keyring, keyring_version(nd->cfg.protocol_version), nonce,
            (const uint8_t *)nd->cfg.label, strlen(nd->cfg.label), tmp.data,
            tmp.len, out);
        if (rc && out->err == 0)
            out->err = rc;
        if (rc == 0)
            node_count_out(nd, WIRE_ENCRYPT, out->len - sealed_start);
    } else if (sealed) {
        out->err = tmp.err;
    }
    keyring_wipe(tmp.data, tmp.len); /* the plaintext, when sealed */
    buf_free(&tmp);
    return out->err;
}

struct stream *stream_dial(struct node *nd, int kind, const struct hs_addr *to,
                           uint64_t timeout_ms, stream_done_fn done,
                           stream_cancel_fn cancel)
{
    if (nd->paused)
        return NULL;
    struct stream *s = stream_new(nd, kind, to, timeout_ms);
    if (s == NULL)
        return NULL;
    s->on_done = done;
    s->on_cancel = cancel;
    int rc = nd->io.stream_open(nd->io.ctx, to, s, &s->io);
    if (rc) {
        char ab[HS_ADDRSTRLEN];
        HS_DEBUG(nd->log, "stream open failed: to=%s error=%s",
                 addr_format(to, ab, sizeof ab), hs_strerror(rc));
        s->io = NULL;
        stream_finish(s);
        return NULL;
    }
    nd->stats.streams_out++;
    return s;
}

int stream_set_request(struct stream *s, const uint8_t *msg, size_t len)
{
    buf_reset(&s->out);
    return stream_wrap(s->nd, msg, len, s->seal, &s->out);
}

/* Our side of the stream is over; report to whoever waits on it. */
static void stream_fail(struct stream *s, int err, const char *why)
{
    struct node *nd = s->nd;
    char ab[HS_ADDRSTRLEN];
    HS_DEBUG(nd->log, "stream failed: peer=%s kind=%d error=%s detail=%s",
             addr_format(&s->peer, ab, sizeof ab), s->kind, hs_strerror(err),
             why ? why : "-");
    if (s->on_done)
        s->on_done(s, err, why, NULL, 0);
    stream_finish(s);
}

static void deadline_fired(struct timer *t)
{
    struct stream *s = HS_CONTAINER_OF(t, struct stream, deadline);
    char why[HS_ADDRSTRLEN + 64], ab[HS_ADDRSTRLEN];
    if (s->kind == STREAM_IN)
        node_count_drop(s->nd, NODE_DROP_STREAM_TIMEOUT, &s->peer, "stream",
                        "no complete message before tcp_timeout");
    snprintf(why, sizeof why, "%s: no answer within tcp_timeout",
             addr_format(&s->peer, ab, sizeof ab));
    stream_fail(s, HS_ETIMEDOUT, why);
}

static void reply(struct stream *s, const struct buf *msg)
{
    struct node *nd = s->nd;
    struct buf w = BUF_INIT;
    if (msg->err == 0 && stream_wrap(nd, msg->data, msg->len, s->seal, &w) == 0)
        nd->io.stream_write(nd->io.ctx, s->io, w.data, w.len);
    buf_free(&w);
}

/* Tell the dialler why we could not read its request (errResp). */
static void reply_err(struct stream *s, const char *text)
{
    struct buf b = BUF_INIT;
    struct wire_err e = {wire_str(text)};
    wire_put_err(&b, &e);
    reply(s, &b);
    buf_free(&b);
}

/* ===== Handling one whole message ===== */

static void serve(struct stream *s, const uint8_t *p, size_t n)
{
    struct node *nd = s->nd;
    char why[200] = "";
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *w = NULL;
    char ab[HS_ADDRSTRLEN];
    switch (p[0]) {
    case WIRE_PING: {
        struct wire_ping ping;
        mp_reader_init(&r, p + 1, n - 1);
        if (wire_get_ping(&r, &ping, &sc, &w)) {
            node_count_drop(nd, NODE_DROP_MALFORMED, &s->peer, "stream ping",
                            w);
            reply_err(s, "malformed ping");
            return;
        }
        if (ping.node.n && !wire_raw_eq(ping.node, nd->cfg.name)) {
            nd->stats.dropped[NODE_DROP_WRONG_NODE]++;
            return; /* close without an answer, as Go does */
        }
        struct wire_ack ack = {ping.seq, {0}};
        struct buf b = BUF_INIT;
        wire_put_ack(&b, &ack);
        reply(s, &b);
        buf_free(&b);
        return;
    }
    case WIRE_PUSHPULL: {
        nd->stats.push_pulls_in++;
        /* Read it all, answer with ours, then merge (memberlist order). */
        bool join = false;
        struct wire_pushpull_header h;
        mp_reader_init(&r, p + 1, n - 1);
        if (wire_get_pushpull_header(&r, &h, &sc, &w) == 0)
            join = h.join;
        size_t ulen = 0;
        const uint8_t *user = pushpull_user_state(p + 1, n - 1, &ulen);
        struct buf b = BUF_INIT;
        if (pushpull_encode(nd, join, NULL, user, ulen, &b) == 0)
            reply(s, &b);
        buf_free(&b);
        if (pushpull_merge(nd, p + 1, n - 1, &join, false, false, &s->peer, why,
                           sizeof why)) {
            nd->stats.push_pull_errors++;
            HS_WARN(nd->log, "state sync from %s refused: %s",
                    addr_format(&s->peer, ab, sizeof ab), why);
        } else {
            HS_INFO(nd->log, "state sync answered: peer=%s join=%s",
                    addr_format(&s->peer, ab, sizeof ab),
                    join ? "true" : "false");
        }
        return;
    }
    case WIRE_USER: {
        struct wire_user_header h;
        mp_reader_init(&r, p + 1, n - 1);
        if (wire_get_user_header(&r, &h, &sc, &w) || h.len < 0 ||
            (uint64_t)h.len > mp_left(&r)) {
            node_count_drop(nd, NODE_DROP_MALFORMED, &s->peer,
                            "stream user message", w);
            return;
        }
        struct user_msg u;
        user_msg_decode(&u, p + 1 + r.off, (size_t)h.len);
        const struct wire_envelope e = u.env;
        if (u.env_rc == 0 && e.kind == WIRE_ENV_KEYS_REQ) {
            /* A keyring operation: answer on this stream, encrypted
             * whatever gossip_verify_outgoing says (it may carry keys). */
            struct buf body = BUF_INIT, b = BUF_INIT, env = BUF_INIT;
            keyops_serve(nd, e.from, e.fromlen, e.body, e.len, s->encrypted,
                         &body);
            wire_put_envelope(&env, WIRE_ENV_KEYS_RESP, nd->cfg.name,
                              nd->self_name_len);
            wire_put_user_header(&b, (int64_t)(env.len + body.len));
            buf_append(&b, env.data, env.len);
            buf_append(&b, body.data, body.len);
            s->seal = s->encrypted;
            reply(s, &b);
            keyring_wipe(body.data, body.cap);
            keyring_wipe(b.data, b.cap);
            buf_free(&body);
            buf_free(&b);
            buf_free(&env);
            return;
        }
        if (u.env_rc == 0 && e.kind == WIRE_ENV_META_REQ) {
            /* A metadata sync or fetch: answer on this stream. */
            struct buf body = BUF_INIT, b = BUF_INIT, env = BUF_INIT;
            if (metadata_stream_serve(nd->store, e.body, e.len, &body) == 0) {
                wire_put_envelope(&env, WIRE_ENV_META_RESP, nd->cfg.name,
                                  nd->self_name_len);
                wire_put_user_header(&b, (int64_t)(env.len + body.len));
                buf_append(&b, env.data, env.len);
                buf_append(&b, body.data, body.len);
                reply(s, &b);
            } else {
                node_count_drop(nd, NODE_DROP_MALFORMED, &s->peer,
                                "metadata request", "bad request");
            }
            buf_free(&body);
            buf_free(&b);
            buf_free(&env);
            return;
        }
        node_user_message(nd, &u, &s->peer);
        return;
    }
    default:
        node_count_drop(nd, NODE_DROP_UNKNOWN_TYPE, &s->peer, "stream",
                        wire_type_name(p[0]));
        reply_err(s, "unexpected message type");
        return;
    }
}

bool stream_envelope(const uint8_t *p, size_t n, int env_kind,
                     struct wire_envelope *e)
{
    struct mp_reader r;
    WIRE_SCRATCH(sc);
    const char *w = NULL;
    struct wire_user_header h;
    mp_reader_init(&r, p + 1, n - 1);
    return p[0] == WIRE_USER && wire_get_user_header(&r, &h, &sc, &w) == 0 &&
           h.len >= 0 && (uint64_t)h.len <= mp_left(&r) &&
           wire_get_envelope(p + 1 + r.off, (size_t)h.len, e) == 0 &&
           e->kind == env_kind;
}

/* A whole message arrived in p[0..n): unwrap and handle it. */
static void message(struct stream *s, const uint8_t *p, size_t n)
{
    struct node *nd = s->nd;
    struct buf plain = BUF_INIT, dec = BUF_INIT;
    const char *why = NULL;
    if (p[0] == WIRE_ENCRYPT && keyring_empty(&nd->keyring)) {
        node_refuse(nd, NODE_DROP_ENCRYPTED, &s->peer, "stream",
                    "encrypted, and no key is installed");
        if (s->kind == STREAM_IN)
            reply_err(s, "remote state is encrypted and encryption is not "
                         "configured");
        stream_fail(s, HS_EREFUSED,
                    "the peer encrypts, and no key is "
                    "installed here");
        return;
    }
    if (p[0] == WIRE_ENCRYPT) {
        int rc =
            keyring_open_stream(&nd->keyring, (const uint8_t *)nd->cfg.label,
                                strlen(nd->cfg.label), p, n, &dec, &why);
        size_t end = 0, need = 0;
        if (rc == 0) {
            /* One whole message, not encrypted again. */
            struct wire_stream_scan scan;
            wire_stream_scan_init(&scan);
            rc = dec.len == 0 || dec.data[0] == WIRE_ENCRYPT
                     ? HS_EBADMSG
                     : wire_scan_stream(&scan, dec.data, dec.len,
                                        nd->cfg.max_push_pull_nodes,
                                        nd->cfg.max_stream_size, &end, &need,
                                        &why);
            if (rc) {
                node_count_drop(nd, NODE_DROP_MALFORMED, &s->peer, "stream",
                                why ? why
                                    : "bad encrypted "
                                      "message");
                why = "malformed encrypted message";
            }
        } else {
            node_refuse(nd, NODE_DROP_DECRYPT, &s->peer, "stream", why);
            why = "no installed key decrypts the message";
        }
        if (rc) {
            if (s->kind == STREAM_IN)
                reply_err(s, why);
            buf_free(&dec);
            stream_fail(s, HS_EREFUSED, why);
            return;
        }
        node_count_in(nd, WIRE_ENCRYPT, n);
        s->encrypted = true;
        p = dec.data;
        n = end;
    } else if (!keyring_empty(&nd->keyring) && nd->cfg.gossip_verify_incoming) {
        node_refuse(nd, NODE_DROP_PLAINTEXT, &s->peer, "stream",
                    "not encrypted, and gossip_verify_incoming is set");
        if (s->kind == STREAM_IN)
            reply_err(s, "encryption is configured but remote state is "
                         "not encrypted");
        stream_fail(s, HS_EREFUSED, "the peer does not encrypt");
        return;
    }
    if (p[0] == WIRE_COMPRESS) {
        node_count_in(nd, WIRE_COMPRESS, n);
        int rc = wire_decompress(p + 1, n - 1, nd->cfg.max_decompressed_size,
                                 &plain, &why);
        struct wire_stream_scan scan;
        size_t end = 0, need = 0;
        wire_stream_scan_init(&scan);
        if (rc == 0 && (plain.len == 0 || plain.data[0] == WIRE_COMPRESS ||
                        plain.data[0] == WIRE_ENCRYPT)) {
            rc = HS_EBADMSG;
            why = "bad compressed payload";
        }
        if (rc == 0)
            rc = wire_scan_stream(&scan, plain.data, plain.len,
                                  nd->cfg.max_push_pull_nodes,
                                  nd->cfg.max_stream_size, &end, &need, &why);
        if (rc) {
            node_count_drop(
                nd, rc == HS_ETOOBIG ? NODE_DROP_TOO_BIG : NODE_DROP_DECOMPRESS,
                &s->peer, "stream", why ? why : hs_strerror(rc));
            if (s->kind == STREAM_IN)
                reply_err(s, "cannot read the compressed message");
            buf_free(&plain);
            buf_free(&dec);
            stream_fail(s, rc, why);
            return;
        }
        p = plain.data;
        n = end;
    }
    node_count_in(nd, p[0], n);
    if (s->kind == STREAM_IN)
        serve(s, p, n);
    else if (s->on_done)
        s->on_done(s, 0, NULL, p, n);
    buf_free(&plain);
    keyring_wipe(dec.data, dec.len); /* it may have carried keys */
    buf_free(&dec);
    stream_finish(s);
}

/* ===== io callbacks ===== */

/* The label header an inbound stream may start with (reference section
 * 8): 1 once checked and stripped, 0 until enough bytes are in, -1 when
 * refused (counted and logged). */
static int check_label(struct stream *s)
{
    struct node *nd = s->nd;
    const uint8_t *p = s->in.data;
    size_t n = s->in.len, have = 0, want = strlen(nd->cfg.label);
    bool skip = nd->cfg.skip_inbound_label_check;
    const uint8_t *label = NULL;
    if (n == 0)
        return 0;
    if (p[0] == WIRE_LABEL) {
        if (n < 2)
            return 0;
        if (p[1] == 0) {
            node_refuse(nd, NODE_DROP_LABEL, &s->peer, "stream",
                        "empty label header");
            return -1;
        }
        if (n < 2 + (size_t)p[1])
            return 0;
        label = p + 2;
        have = p[1];
        if (skip) {
            node_refuse(nd, NODE_DROP_LABEL, &s->peer, "stream",
                        "labelled, and skip_inbound_label_check is set");
            return -1;
        }
    }
    if (!skip &&
        (have != want || (want && memcmp(label, nd->cfg.label, want)))) {
        node_refuse(nd, NODE_DROP_LABEL, &s->peer, "stream",
                    have ? "another label" : "no label");
        return -1;
    }
    if (label)
        buf_consume(&s->in, 2 + have);
    s->label_done = true;
    return 1;
}

bool node_inbound_full(const struct node *nd)
{
    return !nd->paused && nd->phase != PHASE_NEW &&
           nd->inbound_streams >= nd->cfg.max_inbound_streams;
}

void *node_io_stream_accepted(struct node *nd, struct io_stream *io,
                              const struct hs_addr *from, uint64_t waited)
{
    if (nd->paused || nd->phase == PHASE_NEW ||
        nd->inbound_streams >= nd->cfg.max_inbound_streams) {
        node_count_drop(nd,
                        nd->paused ? NODE_DROP_PAUSED : NODE_DROP_STREAM_LIMIT,
                        from, "stream", "refused at accept");
        nd->io.stream_close(nd->io.ctx, io);
        return NULL;
    }
    /* One deadline from the accept for the whole first message, however
     * slowly its bytes come. */
    uint64_t left =
        nd->cfg.tcp_timeout > waited ? nd->cfg.tcp_timeout - waited : 0;
    struct stream *s = stream_new(nd, STREAM_IN, from, left);
    if (s == NULL) {
        nd->io.stream_close(nd->io.ctx, io);
        return NULL;
    }
    s->io = io;
    s->connected = true;
    nd->inbound_streams++;
    nd->stats.streams_in++;
    return s;
}

void node_io_stream_connected(struct node *nd, void *owner, int status)
{
    struct stream *s = owner;
    if (status) {
        char why[HS_ADDRSTRLEN + 64], ab[HS_ADDRSTRLEN];
        snprintf(why, sizeof why, "cannot connect to %s: %s",
                 addr_format(&s->peer, ab, sizeof ab),
                 status == HS_EREFUSED ? "connection refused"
                                       : hs_strerror(status));
        stream_fail(s, status, why);
        return;
    }
    s->connected = true;
    size_t labellen = strlen(nd->cfg.label);
    if (labellen) {
        /* The dialler labels the stream once, before its message. */
        uint8_t h[2 + CONFIG_LABEL_MAX];
        h[0] = WIRE_LABEL;
        h[1] = (uint8_t)labellen;
        memcpy(h + 2, nd->cfg.label, labellen);
        nd->io.stream_write(nd->io.ctx, s->io, h, 2 + labellen);
    }
    if (s->out.len)
        nd->io.stream_write(nd->io.ctx, s->io, s->out.data, s->out.len);
    if (s->on_done == NULL)
        stream_finish(s); /* nothing comes back; writes are flushed */
}

void node_io_stream_data(struct node *nd, void *owner, const uint8_t *p,
                         size_t n)
{
    struct stream *s = owner;
    if (s->done || n == 0)
        return;
    /* Room for the stream and encryption headers and a label. */
    uint64_t cap = nd->cfg.max_stream_size + 64 + 2 + CONFIG_LABEL_MAX;
    if (s->in.len + n > cap) {
        node_count_drop(nd, NODE_DROP_TOO_BIG, &s->peer, "stream",
                        "over max_stream_size");
        if (s->kind == STREAM_IN)
            reply_err(s, "message too large");
        stream_fail(s, HS_ETOOBIG, "stream over max_stream_size");
        return;
    }
    if (buf_append(&s->in, p, n)) {
        stream_fail(s, HS_ENOMEM, "out of memory");
        return;
    }
    if (s->kind == STREAM_IN && !s->label_done) {
        int rc = check_label(s);
        if (rc <= 0) {
            if (rc < 0)
                stream_fail(s, HS_EREFUSED, "label refused");
            return;
        }
    }
    if (s->in.len < s->need)
        return;
    size_t end = 0, need = 0;
    const char *why = NULL;
    int rc = wire_scan_stream(&s->scan, s->in.data, s->in.len,
                              nd->cfg.max_push_pull_nodes,
                              nd->cfg.max_stream_size, &end, &need, &why);
    if (rc == HS_ETRUNC) {
        s->need = need;
        return;
    }
    if (rc) {
        node_count_drop(nd,
                        rc == HS_ETOOBIG   ? NODE_DROP_TOO_BIG
                        : rc == HS_EUNSUPP ? NODE_DROP_UNKNOWN_TYPE
                                           : NODE_DROP_MALFORMED,
                        &s->peer, "stream", why);
        if (s->kind == STREAM_IN)
            reply_err(s, why ? why : "malformed message");
        stream_fail(s, rc, why);
        return;
    }
    s->done = true;
    message(s, s->in.data, end);
}

void node_io_stream_end(struct node *nd, void *owner, int err)
{
    struct stream *s = owner;
    (void)nd;
    stream_fail(s, err ? err : HS_ECLOSED,
                err ? hs_strerror(err) : "closed before a whole message");
}
