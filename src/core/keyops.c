/* keyops.c: keyring operations across the cluster, as `serf keys` does
 * them with its internal queries, here over hearsay's own envelope.
 *
 * The node that starts an operation applies it to itself, then opens one
 * stream to every other member alive or suspect and sends it a KEYS_REQ
 * envelope; each answers on that stream with a KEYS_RESP. Both directions
 * are always encrypted, whatever gossip_verify_outgoing says, and a
 * request that did not arrive encrypted is refused: holding a key of the
 * cluster is what allows changing its keys, and keys never travel in the
 * clear. Other software reads the envelope as an unknown user message and
 * ignores it; such a member simply does not answer.
 *
 *   KEYS_REQ  body: op:u8 | keylen:u8 | key
 *   KEYS_RESP body: ok:u8 | msglen:u8 | msg | nkeys:u8 | (len:u8 | key)*
 *                   (keys only for a list, primary first) */
#include "core/node_int.h"

#include <stdio.h>
#include <string.h>

#define KEYOPS_MAX 16 /* operations under way at once */

struct keyop {
    struct keyop *next;
    struct node *nd;
    int op;
    uint8_t key[KEYRING_KEY_MAX];
    size_t len;
    node_keys_cb cb; /* NULL once cancelled */
    void *ud;
    char **names; /* the member behind each stream slot */
    size_t nnames;
    size_t pending;  /* streams still open */
    bool dispatched; /* every request is out */
    struct node_keys_result res;
};

static const char *op_name(int op)
{
    static const char *names[] = {"list", "install", "use", "remove"};
    return op >= 0 && op < 4 ? names[op] : "?";
}

const char *node_keys_strerror(int op, int err)
{
    switch (err) {
    case HS_EUNSUPP:
        return op == NODE_KEYS_LIST
                   ? "Keyring is empty (encryption not enabled)"
                   : "No keyring to modify (encryption not enabled)";
    case HS_EINVAL:
        return "key size must be 16, 24 or 32 bytes";
    case HS_ENOTFOUND:
        return "requested key is not in the keyring";
    case HS_ESTATE:
        return "removing the primary key is not allowed";
    case HS_ETOOBIG:
        return "the keyring holds at most 32 keys";
    case HS_EBUSY:
        return "too many key operations under way";
    default:
        return hs_strerror(err);
    }
}

/* ===== Results ===== */

static void add_failure(struct keyop *k, const char *name, size_t namelen,
                        const char *msg)
{
    struct node_keys_result *r = &k->res;
    struct node_keys_failure *f =
        hs_realloc(r->failures, (r->nfailures + 1) * sizeof *f);
    if (f == NULL)
        return;
    r->failures = f;
    f += r->nfailures;
    f->name = hs_strndup(name, namelen);
    f->message = hs_strndup(msg, strlen(msg));
    if (f->name == NULL || f->message == NULL) {
        hs_free(f->name);
        hs_free(f->message);
        return;
    }
    r->nfailures++;
}

static void count_key(struct keyop *k, const uint8_t *key, size_t len,
                      bool primary)
{
    struct node_keys_result *r = &k->res;
    size_t i = 0;
    while (i < r->nkeys &&
           !(r->keys[i].len == len && !memcmp(r->keys[i].key, key, len)))
        i++;
    if (i == r->nkeys) {
        struct node_keys_count *c =
            hs_realloc(r->keys, (r->nkeys + 1) * sizeof *c);
        if (c == NULL)
            return;
        r->keys = c;
        memset(&c[i], 0, sizeof c[i]);
        memcpy(c[i].key, key, len);
        c[i].len = (uint8_t)len;
        r->nkeys++;
    }
    r->keys[i].installed++;
    if (primary)
        r->keys[i].primary++;
}

static void op_free(struct keyop *k)
{
    struct node_keys_result *r = &k->res;
    for (size_t i = 0; i < r->nfailures; i++) {
        hs_free(r->failures[i].name);
        hs_free(r->failures[i].message);
    }
    hs_free(r->failures);
    if (r->keys)
        keyring_wipe(r->keys, r->nkeys * sizeof *r->keys);
    hs_free(r->keys);
    for (size_t i = 0; i < k->nnames; i++)
        hs_free(k->names[i]);
    hs_free(k->names);
    keyring_wipe(k->key, sizeof k->key);
    hs_free(k);
}

static void unlink_op(struct node *nd, struct keyop *k)
{
    for (struct keyop **pp = &nd->keyops; *pp; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            nd->nkeyops--;
            return;
        }
    }
}

static void maybe_done(struct keyop *k)
{
    if (!k->dispatched || k->pending > 0)
        return;
    struct node *nd = k->nd;
    unlink_op(nd, k);
    HS_INFO(nd->log, "keyring: %s done: nodes=%zu responses=%zu errors=%zu",
            op_name(k->op), k->res.nodes, k->res.responses, k->res.errors);
    if (k->cb)
        k->cb(k->ud, &k->res);
    op_free(k);
}

/* ===== Applying an operation to this node ===== */

/* Apply op to our keyring; false with a sentence in msg if it failed. */
static bool apply(struct node *nd, int op, const uint8_t *key, size_t len,
                  const char *by, char *msg, size_t msglen)
{
    struct keyring *kr = &nd->keyring;
    int rc = 0;
    bool changed = false;
    msg[0] = '\0';
    if (keyring_empty(kr)) {
        snprintf(msg, msglen, "%s", node_keys_strerror(op, HS_EUNSUPP));
        return false;
    }
    switch (op) {
    case NODE_KEYS_LIST:
        return true;
    case NODE_KEYS_INSTALL:
        changed = keyring_find(kr, key, len) < 0;
        rc = keyring_add(kr, key, len);
        break;
    case NODE_KEYS_USE:
        changed = keyring_find(kr, key, len) > 0;
        rc = keyring_use(kr, key, len);
        break;
    case NODE_KEYS_REMOVE:
        changed = keyring_find(kr, key, len) > 0;
        rc = keyring_remove(kr, key, len);
        break;
    default:
        rc = HS_EUNSUPP;
        break;
    }
    if (rc) {
        snprintf(msg, msglen, "%s",
                 op > NODE_KEYS_REMOVE ? "unknown key operation"
                                       : node_keys_strerror(op, rc));
        HS_WARN(nd->log, "keyring: %s refused: by=%s reason=%s", op_name(op),
                by, msg);
        return false;
    }
    if (!changed)
        return true;
    HS_INFO(nd->log, "keyring: %s: by=%s keys=%zu", op_name(op), by, kr->n);
    char err[256] = "";
    if (node_keyring_changed(nd, err, sizeof err)) {
        HS_ERROR(nd->log, "keyring: %s", err);
        snprintf(msg, msglen, "%s", err);
        return false;
    }
    return true;
}

/* ===== Serving a request ===== */

static void put_response(struct buf *out, bool ok, const char *msg,
                         const struct keyring *kr)
{
    size_t n = HS_MIN(strlen(msg), (size_t)255);
    buf_putc(out, ok);
    buf_putc(out, (uint8_t)n);
    buf_append(out, msg, n);
    buf_putc(out, (uint8_t)(kr ? kr->n : 0));
    for (size_t i = 0; kr && i < kr->n; i++) {
        buf_putc(out, kr->len[i]);
        buf_append(out, kr->key[i], kr->len[i]);
    }
}

void keyops_serve(struct node *nd, const char *from, size_t fromlen,
                  const uint8_t *body, size_t n, bool encrypted,
                  struct buf *out)
{
    char by[64], msg[256];
    hs_log_quote(from, fromlen, by, sizeof by);
    if (n < 2 || body[0] > NODE_KEYS_REMOVE || n != 2 + (size_t)body[1] ||
        (body[0] != NODE_KEYS_LIST && !keyring_key_len_ok(body[1]))) {
        HS_WARN(nd->log, "keyring: malformed request: by=%s", by);
        put_response(out, false, "malformed keyring request", NULL);
        return;
    }
    int op = body[0];
    if (!encrypted) {
        /* Only a holder of a cluster key may change or read the keys. */
        if (keyring_empty(&nd->keyring))
            snprintf(msg, sizeof msg, "%s", node_keys_strerror(op, HS_EUNSUPP));
        else
            snprintf(msg, sizeof msg,
                     "refused: keyring requests must "
                     "arrive encrypted");
        HS_WARN(nd->log, "keyring: %s refused: by=%s reason=%s", op_name(op),
                by, msg);
        put_response(out, false, msg, NULL);
        return;
    }
    bool ok = apply(nd, op, body + 2, body[1], by, msg, sizeof msg);
    put_response(out, ok, msg,
                 ok && op == NODE_KEYS_LIST ? &nd->keyring : NULL);
}

/* ===== Answers ===== */

/* Parse a KEYS_RESP body into the operation's result. */
static void take_answer(struct keyop *k, const char *name, const uint8_t *p,
                        size_t n)
{
    struct node_keys_result *r = &k->res;
    if (n < 2 || n - 2 < p[1]) {
        add_failure(k, name, strlen(name), "malformed keyring answer");
        return;
    }
    bool ok = p[0] == 1;
    char msg[256];
    memcpy(msg, p + 2, p[1]);
    msg[p[1]] = '\0';
    size_t off = 2 + (size_t)p[1];
    r->responses++;
    if (!ok) {
        r->errors++;
        add_failure(k, name, strlen(name), msg[0] ? msg : "failed");
        return;
    }
    if (k->op != NODE_KEYS_LIST)
        return;
    /* Check the whole list before counting any of it. */
    size_t nkeys = off < n ? p[off] : 0, o = off + 1;
    bool good = off < n && nkeys <= KEYRING_MAX;
    for (size_t i = 0; good && i < nkeys; i++) {
        good = o < n && keyring_key_len_ok(p[o]) && n - o - 1 >= p[o];
        if (good)
            o += 1 + (size_t)p[o];
    }
    if (!good || o != n) {
        r->errors++;
        add_failure(k, name, strlen(name), "malformed keyring answer");
        return;
    }
    o = off + 1;
    for (size_t i = 0; i < nkeys; i++) {
        count_key(k, p + o + 1, p[o], i == 0);
        o += 1 + (size_t)p[o];
    }
}

/* A STREAM_KEYS stream ended: with the answer's envelope body, or with
 * NULL and why it failed. */
static void keyops_answer(struct node *nd, struct stream *s,
                          const uint8_t *body, size_t n, const char *why)
{
    struct keyop *k = s->keyop;
    (void)nd;
    s->keyop = NULL;
    if (k == NULL)
        return;
    const char *name = s->keyop_slot < k->nnames && k->names[s->keyop_slot]
                           ? k->names[s->keyop_slot]
                           : "?";
    if (body)
        take_answer(k, name, body, n);
    else
        add_failure(k, name, strlen(name), why ? why : "no answer");
    k->pending--;
    maybe_done(k);
}

/* A keyring request's stream ended: its answer must come encrypted. */
static void keys_done(struct stream *s, int err, const char *why,
                      const uint8_t *p, size_t n)
{
    struct node *nd = s->nd;
    struct wire_envelope e;
    if (err) {
        if (s->keyop)
            keyops_answer(nd, s, NULL, 0, why ? why : hs_strerror(err));
        return;
    }
    if (s->encrypted && stream_envelope(p, n, WIRE_ENV_KEYS_RESP, &e))
        keyops_answer(nd, s, e.body, e.len, NULL);
    else
        keyops_answer(nd, s, NULL, 0,
                      p[0] == WIRE_ERR ? "the member refused the request"
                      : !s->encrypted  ? "the answer was not encrypted"
                                       : "not a keyring answer (not a "
                                         "hearsay node?)");
}

/* ===== Starting ===== */

static bool is_target(const struct member *m)
{
    return m->state == MEMBER_ALIVE || m->state == MEMBER_SUSPECT;
}

/* Ask one member; false if no stream could carry the request. */
static bool ask(struct keyop *k, const struct member *m, size_t slot)
{
    struct node *nd = k->nd;
    struct buf env = BUF_INIT, b = BUF_INIT;
    wire_put_envelope(&env, WIRE_ENV_KEYS_REQ, nd->cfg.name, nd->self_name_len);
    buf_putc(&env, (uint8_t)k->op);
    buf_putc(&env, (uint8_t)k->len);
    buf_append(&env, k->key, k->len);
    wire_put_user_header(&b, (int64_t)env.len);
    buf_append(&b, env.data, env.len);
    bool ok = false;
    if (env.err == 0 && b.err == 0) {
        struct stream *s = stream_dial(nd, STREAM_KEYS, &m->addr,
                                       nd->cfg.tcp_timeout, keys_done, NULL);
        if (s) {
            s->seal = true;
            if (stream_set_request(s, b.data, b.len) == 0) {
                s->keyop = k;
                s->keyop_slot = slot;
                k->pending++;
                ok = true;
            } else {
                stream_finish(s);
            }
        }
    }
    keyring_wipe(env.data, env.len);
    keyring_wipe(b.data, b.len);
    buf_free(&env);
    buf_free(&b);
    return ok;
}

int node_keys(struct node *nd, int op, const uint8_t *key, size_t len,
              node_keys_cb cb, void *ud)
{
    struct keyring *kr = &nd->keyring;
    if (op < NODE_KEYS_LIST || op > NODE_KEYS_REMOVE)
        return HS_EINVAL;
    if (keyring_empty(kr))
        return HS_EUNSUPP;
    if (op != NODE_KEYS_LIST && !keyring_key_len_ok(len))
        return HS_EINVAL;
    if (nd->nkeyops >= KEYOPS_MAX)
        return HS_EBUSY;
    /* This node's own refusals end the operation before anyone else is
     * asked. */
    int at = op == NODE_KEYS_LIST ? -1 : keyring_find(kr, key, len);
    if (op == NODE_KEYS_USE && at < 0)
        return HS_ENOTFOUND;
    if (op == NODE_KEYS_REMOVE && at == 0)
        return HS_ESTATE;
    if (op == NODE_KEYS_INSTALL && at < 0 && kr->n == KEYRING_MAX)
        return HS_ETOOBIG;
    struct keyop *k = hs_calloc(1, sizeof *k);
    size_t n = nd->members.n;
    if (k)
        k->names = hs_calloc(n ? n : 1, sizeof *k->names);
    if (k == NULL || k->names == NULL) {
        hs_free(k);
        return HS_ENOMEM;
    }
    k->nd = nd;
    k->op = op;
    k->cb = cb;
    k->ud = ud;
    k->res.op = op;
    if (op != NODE_KEYS_LIST) {
        memcpy(k->key, key, len);
        k->len = len;
    }
    k->next = nd->keyops;
    nd->keyops = k;
    nd->nkeyops++;
    HS_INFO(nd->log, "keyring: %s on every member", op_name(op));
    char msg[256];
    /* Ourselves first, except for use: the requests then still go out
     * under the old primary, so that a member lacking the new key says
     * so instead of failing to read the request. */
    k->res.nodes = 1;
    bool self_ok = true;
    if (op != NODE_KEYS_USE) {
        self_ok = apply(nd, op, k->key, k->len, "this node", msg, sizeof msg);
        if (op == NODE_KEYS_LIST)
            for (size_t i = 0; i < kr->n; i++)
                count_key(k, kr->key[i], kr->len[i], i == 0);
    }
    for (size_t i = 0; i < n; i++) {
        const struct member *m = nd->members.order[i];
        if (m == nd->self || !is_target(m))
            continue;
        k->res.nodes++;
        k->names[k->nnames] = hs_strndup(m->name, m->name_len);
        size_t slot = k->nnames++;
        if (m->peer == PEER_FOREIGN)
            add_failure(k, m->name, m->name_len,
                        "not a hearsay node: manage its keys with its own "
                        "tools (serf keys)");
        else if (!ask(k, m, slot))
            add_failure(k, m->name, m->name_len, "cannot open a stream to it");
    }
    if (op == NODE_KEYS_USE)
        self_ok = apply(nd, op, k->key, k->len, "this node", msg, sizeof msg);
    k->res.responses++;
    if (!self_ok) {
        k->res.errors++;
        add_failure(k, nd->cfg.name, nd->self_name_len, msg);
    }
    k->dispatched = true;
    maybe_done(k);
    return 0;
}

void node_keys_cancel(struct node *nd, node_keys_cb cb, void *ud)
{
    for (struct keyop *k = nd->keyops; k; k = k->next)
        if (k->cb == cb && k->ud == ud)
            k->cb = NULL;
}

void keyops_close(struct node *nd)
{
    for (struct stream *s = nd->streams; s; s = s->next)
        s->keyop = NULL;
    while (nd->keyops) {
        struct keyop *k = nd->keyops;
        nd->keyops = k->next;
        op_free(k);
    }
    nd->nkeyops = 0;
}
