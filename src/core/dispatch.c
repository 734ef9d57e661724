/* dispatch.c: the message table. Each message of a UDP packet is checked
 * and decoded into its struct here, before its handler runs, so that the
 * handlers see only well-formed messages and a body that does not decode
 * is counted as a drop in one place. */
#include "core/node_int.h"

/* One decoded message body. */
union msg {
    struct wire_ping ping;
    struct wire_indirect_ping ind;
    struct wire_ack ack;
    struct wire_nack nack;
    struct wire_alive alive;
    struct wire_suspect suspect; /* suspect and dead */
    struct user_msg user;        /* with its envelope */
};

typedef int (*msg_decode_fn)(const uint8_t *p, size_t n, union msg *m,
                             struct wire_scratch *sc, const char **why);
typedef void (*msg_handle_fn)(struct node *nd, const struct hs_addr *from,
                              union msg *m);

struct msg_type {
    uint8_t type;
    const char *what; /* names the message in drop counts */
    bool cidr;        /* the source must be in cidrs_allowed */
    msg_decode_fn decode;
    msg_handle_fn handle;
};

/* ===== Decoders ===== */

#define MSG_DECODER(name, getter, field)                       \
    static int name(const uint8_t *p, size_t n, union msg *m,  \
                    struct wire_scratch *sc, const char **why) \
    {                                                          \
        struct mp_reader r;                                    \
        mp_reader_init(&r, p, n);                              \
        return getter(&r, &m->field, sc, why);                 \
    }

MSG_DECODER(decode_ping, wire_get_ping, ping)
MSG_DECODER(decode_indirect, wire_get_indirect_ping, ind)
MSG_DECODER(decode_ack, wire_get_ack, ack)
MSG_DECODER(decode_nack, wire_get_nack, nack)
MSG_DECODER(decode_alive, wire_get_alive, alive)
MSG_DECODER(decode_suspect, wire_get_suspect, suspect)

static int decode_user(const uint8_t *p, size_t n, union msg *m,
                       struct wire_scratch *sc, const char **why)
{
    (void)sc;
    (void)why;
    user_msg_decode(&m->user, p, n); /* a bad envelope: its handler's */
    return 0;
}

/* ===== Handlers ===== */

static void on_ping(struct node *nd, const struct hs_addr *from, union msg *m)
{
    probe_on_ping(nd, from, &m->ping);
}

static void on_indirect(struct node *nd, const struct hs_addr *from,
                        union msg *m)
{
    probe_on_indirect(nd, from, &m->ind);
}

static void on_ack(struct node *nd, const struct hs_addr *from, union msg *m)
{
    probe_on_ack(nd, from, &m->ack);
}

static void on_nack(struct node *nd, const struct hs_addr *from, union msg *m)
{
    probe_on_nack(nd, from, &m->nack);
}

static void on_alive(struct node *nd, const struct hs_addr *from, union msg *m)
{
    struct wire_alive *a = &m->alive;
    if (a->port == 0 || nd->cfg.protocol_version < 2)
        a->port = nd->advertise.port;
    members_on_alive(nd, a, false, from);
}

static void on_suspect(struct node *nd, const struct hs_addr *from,
                       union msg *m)
{
    (void)from;
    members_on_suspect(nd, &m->suspect);
}

static void on_dead(struct node *nd, const struct hs_addr *from, union msg *m)
{
    (void)from;
    members_on_dead(nd, &m->suspect);
}

static void on_user(struct node *nd, const struct hs_addr *from, union msg *m)
{
    node_user_message(nd, &m->user, from);
}

/* ===== The table ===== */

static const struct msg_type msg_types[] = {
    {WIRE_PING, "ping", false, decode_ping, on_ping},
    {WIRE_INDIRECT_PING, "indirect ping", false, decode_indirect, on_indirect},
    {WIRE_ACK, "ack", false, decode_ack, on_ack},
    {WIRE_NACK, "nack", false, decode_nack, on_nack},
    {WIRE_ALIVE, "alive", true, decode_alive, on_alive},
    {WIRE_SUSPECT, "suspect", false, decode_suspect, on_suspect},
    {WIRE_DEAD, "dead", false, decode_suspect, on_dead},
    {WIRE_USER, "user message", false, decode_user, on_user},
};

void dispatch_message(struct node *nd, const struct hs_addr *from, uint8_t type,
                      const uint8_t *body, size_t n)
{
    const struct msg_type *t = NULL;
    for (size_t i = 0; i < HS_ARRAY_LEN(msg_types); i++)
        if (msg_types[i].type == type) {
            t = &msg_types[i];
            break;
        }
    if (t == NULL) {
        node_count_drop(nd, NODE_DROP_UNKNOWN_TYPE, from, "packet",
                        wire_type_name(type));
        return;
    }
    if (t->cidr && !node_ip_allowed(nd, from)) {
        node_count_drop(nd, NODE_DROP_CIDR, from, t->what,
                        "source not in cidrs_allowed");
        return;
    }
    union msg m;
    WIRE_SCRATCH(sc);
    const char *why = NULL;
    int rc = t->decode(body, n, &m, &sc, &why);
    if (rc) {
        node_count_drop(
            nd, rc == HS_ETRUNC ? NODE_DROP_TRUNCATED : NODE_DROP_MALFORMED,
            from, t->what, why);
        return;
    }
    t->handle(nd, from, &m);
}
