/* test_wire.c: the codec against the shared reference's hex examples. */
#include "test.h"

#include "../../src/codec/wire.h"

/* Section 9.1: ping, SeqNo 7, "node-a" at 10.0.0.1:7946 to "node-b". */
static const char *PING_HEX =
    "0085a44e6f6465a66e6f64652d62a55365714e6f07aa536f7572636541646472a40a00"
    "0001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f0a";
/* Section 9.2: alive, "node-a", inc 1, no meta, Vsn 1,5,2,0,0,0. */
static const char *ALIVE_HEX =
    "0486a441646472a40a000001ab496e6361726e6174696f6e01a44d657461c0a44e6f64"
    "65a66e6f64652d61a4506f7274cd1f0aa356736ea6010502000000";

static const uint8_t IP[4] = {10, 0, 0, 1};
static const uint8_t VSN[6] = {1, 5, 2, 0, 0, 0};

static void test_ping_encode(void)
{
    struct buf b = BUF_INIT;
    struct wire_ping p = {7, wire_str("node-b"), wire_raw(IP, 4), 7946,
                          wire_str("node-a")};
    wire_put_ping(&b, &p);
    size_t n;
    uint8_t *want = test_unhex(PING_HEX, &n);
    CHECK_MEM(b.data, b.len, want, n);
    CHECK_EQ(n, 69);
    free(want);

    /* Without the source fields and with a large sequence number. */
    buf_reset(&b);
    struct wire_ping q = {300000, wire_str("node-b"), {0}, 0, {0}};
    wire_put_ping(&b, &q);
    want = test_unhex("0082a44e6f6465a66e6f64652d62a55365714e6fce000493e0", &n);
    CHECK_MEM(b.data, b.len, want, n);
    free(want);
    buf_free(&b);
}

static void test_ping_decode(void)
{
    size_t n;
    uint8_t *in = test_unhex(PING_HEX, &n);
    struct mp_reader r;
    struct wire_ping p;
    WIRE_SCRATCH(s);
    const char *why = NULL;
    mp_reader_init(&r, in + 1, n - 1);
    CHECK_EQ(wire_get_ping(&r, &p, &s, &why), 0);
    CHECK_EQ(p.seq, 7);
    CHECK(wire_raw_eq(p.node, "node-b"));
    CHECK(wire_raw_eq(p.source_node, "node-a"));
    CHECK_EQ(p.source_port, 7946);
    CHECK_MEM(p.source_addr.p, p.source_addr.n, IP, 4);
    CHECK_EQ(r.off, n - 1);
    free(in);
}

static void test_alive_roundtrip(void)
{
    struct buf b = BUF_INIT;
    struct wire_alive a = {1,   wire_str("node-a"), wire_raw(IP, 4), 7946,
                           {0}, wire_raw(VSN, 6)};
    wire_put_alive(&b, &a);
    size_t n;
    uint8_t *want = test_unhex(ALIVE_HEX, &n);
    CHECK_MEM(b.data, b.len, want, n);

    struct mp_reader r;
    struct wire_alive d;
    WIRE_SCRATCH(s);
    mp_reader_init(&r, want + 1, n - 1);
    CHECK_EQ(wire_get_alive(&r, &d, &s, NULL), 0);
    CHECK(!d.meta.set);
    CHECK_EQ(d.incarnation, 1);
    CHECK_EQ(d.port, 7946);
    CHECK_MEM(d.vsn.p, d.vsn.n, VSN, 6);
    free(want);

    /* Empty non-nil meta is a0; a 40-byte meta uses str16, never str8. */
    buf_reset(&b);
    a.meta = wire_raw("", 0);
    wire_put_alive(&b, &a);
    CHECK(memmem(b.data, b.len, "\xa4Meta\xa0", 6) != NULL);
    buf_reset(&b);
    static const uint8_t meta40[40] = {0};
    a.meta = wire_raw(meta40, 40);
    wire_put_alive(&b, &a);
    CHECK(memmem(b.data, b.len, "\xa4Meta\xda\x00\x28", 8) != NULL);
    buf_free(&b);
}

static void test_small_messages(void)
{
    struct buf b = BUF_INIT;
    size_t n;
    uint8_t *want;

    struct wire_ack ack = {7, {0}};
    wire_put_ack(&b, &ack);
    want = test_unhex("0282a75061796c6f6164c0a55365714e6f07", &n);
    CHECK_MEM(b.data, b.len, want, n);
    free(want);

    buf_reset(&b);
    struct wire_indirect_ping ip = {
        9, wire_raw(IP, 4), 7946, wire_str("node-c"), true, {0}, 0, {0}};
    wire_put_indirect_ping(&b, &ip);
    want = test_unhex("0185a44e61636bc3a44e6f6465a66e6f64652d63a4506f7274cd"
                      "1f0aa55365714e6f09a6546172676574a40a000001",
                      &n);
    CHECK_MEM(b.data, b.len, want, n);
    free(want);

    buf_reset(&b);
    struct wire_pushpull_header h = {3, 0, false};
    wire_put_pushpull_header(&b, &h);
    want = test_unhex(
        "0683a44a6f696ec2a54e6f64657303ac5573657253746174654c656e00", &n);
    CHECK_MEM(b.data, b.len, want, n);
    free(want);

    buf_reset(&b);
    struct wire_nack nk = {4};
    wire_put_nack(&b, &nk);
    want = test_unhex("0b81a55365714e6f04", &n);
    CHECK_MEM(b.data, b.len, want, n);
    free(want);

    /* Section 2.1: header with Nodes=200, UserStateLen=585, Join=true as
     * the 0.2.2 codec writes it; the v2 form must decode the same. */
    buf_reset(&b);
    struct wire_pushpull_header h2 = {200, 585, true};
    wire_put_pushpull_header(&b, &h2);
    want = test_unhex("0683a44a6f696ec3a54e6f646573ccc8ac557365725374617465"
                      "4c656ecd0249",
                      &n);
    CHECK_MEM(b.data, b.len, want, n);
    free(want);
    want = test_unhex("83a44a6f696ec3a54e6f646573d100c8ac5573657253746174"
                      "654c656ed10249",
                      &n);
    struct mp_reader r;
    struct wire_pushpull_header d;
    mp_reader_init(&r, want, n);
    CHECK_EQ(wire_get_pushpull_header(&r, &d, NULL, NULL), 0);
    CHECK_EQ(d.nodes, 200);
    CHECK_EQ(d.user_state_len, 585);
    CHECK(d.join);
    free(want);
    buf_free(&b);
}

static void test_compound_crc_compress(void)
{
    size_t pn, an;
    uint8_t *ping = test_unhex(PING_HEX, &pn);
    uint8_t *alive = test_unhex(ALIVE_HEX, &an);
    struct wire_part parts[2] = {{ping, pn}, {alive, an}};
    struct buf b = BUF_INIT;
    CHECK_EQ(wire_put_compound(&b, parts, 2), 0);
    CHECK_EQ(b.len, 137);
    CHECK_MEM(b.data, 6, "\x07\x02\x00\x45\x00\x3e", 6);

    struct buf z = BUF_INIT;
    wire_put_compress(&z, b.data, b.len);
    CHECK_EQ(z.len, 138);
    CHECK_MEM(z.data, 14,
              "\x09\x82\xa4"
              "Algo"
              "\x00\xa3"
              "Buf\xda\x00\x7b",
              14);

    /* A bad LZW stream is told apart by its code, not by its message. */
    struct buf out = BUF_INIT;
    const char *why = NULL;
    CHECK_EQ(wire_decompress(z.data + 1, z.len - 1, 1 << 20, &out, &why), 0);
    CHECK_EQ(out.len, b.len);
    CHECK_MEM(out.data, out.len, b.data, b.len);
    memset(z.data + z.len - 0x7b, 0xff, 0x7b);
    buf_reset(&out);
    CHECK_EQ(wire_decompress(z.data + 1, z.len - 1, 1 << 20, &out, &why),
             HS_EDECOMPRESS);
    CHECK_MEM(why, strlen(why), "bad LZW stream", 14);
    buf_reset(&out);
    buf_free(&out);

    struct buf c = BUF_INIT;
    buf_append(&c, alive, an);
    CHECK_EQ(wire_add_crc(&c, 0), 0);
    CHECK_MEM(c.data, 5, "\x0c\xa5\x42\x28\x11", 5);
    CHECK_EQ(c.len, an + 5);

    buf_free(&b);
    buf_free(&z);
    buf_free(&c);
    free(ping);
    free(alive);
}

/* Go's decoder tolerance (section 2.2). */
static void test_lenient_decode(void)
{
    struct mp_reader r;
    struct wire_alive a;
    WIRE_SCRATCH(s);
    /* Keys out of order, an unknown key with a nested value, Vsn as an
     * array of ints, Addr as bin, Node as str8. */
    const char *hex = "85a356736e960105020205 05"
                      "a5457874726181a178 92 01 02"
                      "a4506f7274cd1f0a"
                      "a44164 6472c4047f000001"
                      "a44e6f6465d90161";
    size_t n;
    uint8_t *in = test_unhex(hex, &n);
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_alive(&r, &a, &s, NULL), 0);
    CHECK_EQ(r.off, n);
    CHECK(wire_raw_eq(a.node, "a"));
    CHECK_EQ(a.port, 7946);
    CHECK_EQ(a.vsn.n, 6);
    CHECK_EQ(a.vsn.p[1], 5);
    CHECK_EQ(a.addr.n, 4);
    CHECK_EQ(a.incarnation, 0); /* missing key: zero */
    free(in);

    /* The array form, in Go declaration order: Incarnation, Node, ... */
    in = test_unhex("9603a162a47f000001cd1f0bc0a6010502000000", &n);
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_alive(&r, &a, &s, NULL), 0);
    CHECK_EQ(a.incarnation, 3);
    CHECK(wire_raw_eq(a.node, "b"));
    CHECK_EQ(a.port, 7947);
    free(in);

    /* Wrong types and overflow are errors, not crashes. */
    struct wire_ping p;
    const char *why = NULL;
    in = test_unhex("81a55365714e6fcf0000000100000000", &n); /* SeqNo 2^32 */
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_ping(&r, &p, &s, &why), HS_EBADMSG);
    free(in);
    in = test_unhex("81a44e6f6465c3", &n); /* Node = true */
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_ping(&r, &p, &s, &why), HS_EBADMSG);
    free(in);
    in = test_unhex("81a55365714e6fff", &n); /* SeqNo = -1 */
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_ping(&r, &p, &s, &why), HS_EBADMSG);
    free(in);
    in = test_unhex("85a44e6f6465a6", &n); /* truncated */
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_ping(&r, &p, &s, &why), HS_ETRUNC);
    free(in);
    /* A map declaring 4 billion pairs in 5 bytes. */
    in = test_unhex("dfffffffff", &n);
    mp_reader_init(&r, in, n);
    CHECK_EQ(wire_get_ping(&r, &p, &s, &why), HS_ETRUNC);
    mp_reader_init(&r, in, n);
    CHECK_EQ(mp_skip(&r), HS_ETRUNC);
    free(in);
}

static int leaves;
static uint8_t leaf_types[16];

static void count_leaf(void *ud, uint8_t type, const uint8_t *body, size_t len)
{
    (void)ud;
    (void)body;
    (void)len;
    if (leaves < 16)
        leaf_types[leaves] = type;
    leaves++;
}

static void test_walk_packet(void)
{
    struct wire_limits lim = {1 << 20, 4};
    size_t n, trunc;
    const char *why;
    /* Section 16.2: CRC + compound of two alive, from serf. */
    uint8_t *in = test_unhex(
        "0c352dca4a07020049003b0486a441646472a47f000001ab496e6361726e617469"
        "6f6e01a44d657461b0ff82a4726f6c65a3776562a26463a178a44e6f6465a161a4"
        "506f7274cd1f0aa356736ea60105020205050486a441646472a47f000001ab496e"
        "6361726e6174696f6e01a44d657461a2ff80a44e6f6465a162a4506f7274cd1f0b"
        "a356736ea6010502020505",
        &n);
    leaves = 0;
    CHECK_EQ(wire_walk_packet(in, n, &lim, count_leaf, NULL, &trunc, &why), 0);
    CHECK_EQ(leaves, 2);
    CHECK_EQ(leaf_types[0], WIRE_ALIVE);
    /* A flipped bit fails the CRC. */
    in[20] ^= 1;
    leaves = 0;
    CHECK_EQ(wire_walk_packet(in, n, &lim, count_leaf, NULL, &trunc, &why),
             HS_ECRC);
    CHECK_EQ(leaves, 0);
    /* Cut the compound: the first part survives, the second is counted. */
    in[20] ^= 1;
    leaves = 0;
    CHECK_EQ(
        wire_walk_packet(in + 5, n - 20, &lim, count_leaf, NULL, &trunc, &why),
        HS_ETRUNC);
    CHECK_EQ(leaves, 1);
    CHECK_EQ(trunc, 1);
    free(in);

    /* A compound that claims 255 parts but carries no length table. */
    uint8_t lie[3] = {7, 255, 0};
    leaves = 0;
    CHECK_EQ(wire_walk_packet(lie, 3, &lim, count_leaf, NULL, &trunc, &why),
             HS_EBADMSG);
    /* Compounds nested deeper than the limit. */
    uint8_t deep[64];
    size_t dn = 0;
    for (int i = 0; i < 10; i++) {
        deep[dn++] = 7;
        deep[dn++] = 1;
        size_t rest = 4 * (size_t)(9 - i) + 2;
        deep[dn++] = (uint8_t)(rest >> 8);
        deep[dn++] = (uint8_t)rest;
    }
    deep[dn++] = 0x0b;
    deep[dn++] = 0x80;
    leaves = 0;
    CHECK_EQ(wire_walk_packet(deep, dn, &lim, count_leaf, NULL, &trunc, &why),
             HS_ETOOBIG);
    CHECK_EQ(leaves, 0);
}

static void test_stream_scan(void)
{
    struct buf b = BUF_INIT;
    struct wire_pushpull_header h = {2, 3, true};
    wire_put_pushpull_header(&b, &h);
    struct wire_node_state ns = {
        wire_str("a"), wire_raw(IP, 4), 7946, {0}, 1, 0, wire_raw(VSN, 6)};
    wire_put_node_state(&b, &ns);
    ns.name = wire_str("b");
    wire_put_node_state(&b, &ns);
    buf_append(&b, "xyz", 3);
    /* Every prefix is incomplete with a sound lower bound; the whole is
     * complete; the scan resumes without rescanning. */
    struct wire_stream_scan s;
    wire_stream_scan_init(&s);
    size_t end = 0, need = 0;
    const char *why = NULL;
    for (size_t len = 0; len < b.len; len++) {
        int rc = wire_scan_stream(&s, b.data, len, 10, 100, &end, &need, &why);
        CHECK_EQ(rc, HS_ETRUNC);
        CHECK(need > len && need <= b.len);
    }
    CHECK_EQ(wire_scan_stream(&s, b.data, b.len, 10, 100, &end, &need, &why),
             0);
    CHECK_EQ(end, b.len);

    /* A header claiming a billion nodes is refused at once. */
    buf_reset(&b);
    struct wire_pushpull_header big = {1000000000, 0, false};
    wire_put_pushpull_header(&b, &big);
    wire_stream_scan_init(&s);
    CHECK_EQ(
        wire_scan_stream(&s, b.data, b.len, 1 << 20, 100, &end, &need, &why),
        HS_ETOOBIG);
    buf_free(&b);
}

/* ===== The schema against the encoders ===== */

/* Every schema: the message types with a msgpack body, and the node
 * states of a push/pull. */
static const int SCHEMA_IDS[] = {
    WIRE_PING,     WIRE_INDIRECT_PING, WIRE_ACK,      WIRE_SUSPECT,
    WIRE_ALIVE,    WIRE_DEAD,          WIRE_PUSHPULL, WIRE_USER,
    WIRE_COMPRESS, WIRE_NACK,          WIRE_ERR,      WIRE_SCHEMA_NODE_STATE};

/* The keys of section 4 of the shared reference, in wire order. */
static const char *reference_keys(int id)
{
    switch (id) {
    case WIRE_PING:
        return "Node SeqNo SourceAddr SourceNode SourcePort";
    case WIRE_INDIRECT_PING:
        return "Nack Node Port SeqNo SourceAddr SourceNode SourcePort Target";
    case WIRE_ACK:
        return "Payload SeqNo";
    case WIRE_SUSPECT:
    case WIRE_DEAD:
        return "From Incarnation Node";
    case WIRE_ALIVE:
        return "Addr Incarnation Meta Node Port Vsn";
    case WIRE_PUSHPULL:
        return "Join Nodes UserStateLen";
    case WIRE_USER:
        return "UserMsgLen";
    case WIRE_COMPRESS:
        return "Algo Buf";
    case WIRE_NACK:
        return "SeqNo";
    case WIRE_ERR:
        return "Error";
    case WIRE_SCHEMA_NODE_STATE:
        return "Addr Incarnation Meta Name Port State Vsn";
    default:
        return NULL;
    }
}

static const uint8_t ZIP_IN[] = "hello hello hello";

/* The body through its own encoder (not wire_put_body). */
static void put_named(struct buf *b, int id, const union wire_body *m)
{
    switch (id) {
    case WIRE_PING:
        wire_put_ping(b, &m->ping);
        break;
    case WIRE_INDIRECT_PING:
        wire_put_indirect_ping(b, &m->indirect_ping);
        break;
    case WIRE_ACK:
        wire_put_ack(b, &m->ack);
        break;
    case WIRE_SUSPECT:
        wire_put_suspect(b, &m->suspect);
        break;
    case WIRE_ALIVE:
        wire_put_alive(b, &m->alive);
        break;
    case WIRE_DEAD:
        wire_put_dead(b, &m->suspect);
        break;
    case WIRE_PUSHPULL:
        wire_put_pushpull_header(b, &m->pushpull);
        break;
    case WIRE_USER:
        wire_put_user_header(b, m->user_header.len);
        break;
    case WIRE_COMPRESS:
        wire_put_compress(b, ZIP_IN, sizeof ZIP_IN - 1);
        break;
    case WIRE_NACK:
        wire_put_nack(b, &m->nack);
        break;
    case WIRE_ERR:
        wire_put_err(b, &m->err);
        break;
    case WIRE_SCHEMA_NODE_STATE:
        wire_put_node_state(b, &m->node_state);
        break;
    }
}

/* The body through its own decoder. */
static int get_named(struct mp_reader *r, int id, union wire_body *m,
                     struct wire_scratch *s)
{
    switch (id) {
    case WIRE_PING:
        return wire_get_ping(r, &m->ping, s, NULL);
    case WIRE_INDIRECT_PING:
        return wire_get_indirect_ping(r, &m->indirect_ping, s, NULL);
    case WIRE_ACK:
        return wire_get_ack(r, &m->ack, s, NULL);
    case WIRE_SUSPECT:
    case WIRE_DEAD:
        return wire_get_suspect(r, &m->suspect, s, NULL);
    case WIRE_ALIVE:
        return wire_get_alive(r, &m->alive, s, NULL);
    case WIRE_PUSHPULL:
        return wire_get_pushpull_header(r, &m->pushpull, s, NULL);
    case WIRE_USER:
        return wire_get_user_header(r, &m->user_header, s, NULL);
    case WIRE_COMPRESS:
        return wire_get_compress(r, &m->compress, s, NULL);
    case WIRE_NACK:
        return wire_get_nack(r, &m->nack, s, NULL);
    case WIRE_ERR:
        return wire_get_err(r, &m->err, s, NULL);
    case WIRE_SCHEMA_NODE_STATE:
        return wire_get_node_state(r, &m->node_state, s, NULL);
    }
    return HS_EINVAL;
}

/* CHECK_MEM for views that may be empty and NULL. */
#define CHECK_VIEW(ap, an, bp, bn)             \
    do {                                       \
        CHECK_EQ((an), (bn));                  \
        if ((an) > 0 && (an) == (bn))          \
            CHECK_MEM((ap), (an), (bp), (bn)); \
    } while (0)

static size_t kind_size(uint8_t kind)
{
    switch (kind) {
    case WIRE_K_U8:
        return 1;
    case WIRE_K_U16:
        return 2;
    case WIRE_K_U32:
        return 4;
    case WIRE_K_I64:
        return 8;
    case WIRE_K_BOOL:
        return sizeof(bool);
    default:
        return sizeof(struct wire_raw);
    }
}

static void test_schema_tables(void)
{
    for (int t = 0; t < 256; t++) {
        bool listed = false;
        for (size_t i = 0; i < HS_ARRAY_LEN(SCHEMA_IDS); i++)
            listed |= SCHEMA_IDS[i] == t;
        CHECK_EQ(wire_schema(t) != NULL, listed);
    }
    CHECK(wire_schema(WIRE_DEAD) == wire_schema(WIRE_SUSPECT));
    CHECK(wire_schema(-1) == NULL);
    for (size_t i = 0; i < HS_ARRAY_LEN(SCHEMA_IDS); i++) {
        const struct wire_schema *s = wire_schema(SCHEMA_IDS[i]);
        CHECK(s->n > 0 && s->n <= 8);
        CHECK(s->size <= sizeof(union wire_body));
        char keys[256] = "";
        unsigned decl_seen = 0;
        for (unsigned j = 0; j < s->n; j++) {
            const struct wire_field *f = &s->fields[j];
            CHECK_EQ(f->klen, strlen(f->key));
            CHECK(j == 0 || strcmp(s->fields[j - 1].key, f->key) < 0);
            CHECK(f->kind <= WIRE_K_RAW);
            CHECK(f->off + kind_size(f->kind) <= s->size);
            CHECK(f->decl < s->n && !(decl_seen & 1u << f->decl));
            decl_seen |= 1u << f->decl;
            if (j)
                strcat(keys, " ");
            strcat(keys, f->key);
        }
        const char *want = reference_keys(SCHEMA_IDS[i]);
        CHECK_MEM(keys, strlen(keys), want, strlen(want));
    }
}

/* Set every field of m to a value of its own (strings: the key). */
static void fill_fields(const struct wire_schema *s, union wire_body *m)
{
    memset(m, 0, sizeof *m);
    for (unsigned j = 0; j < s->n; j++) {
        const struct wire_field *f = &s->fields[j];
        if (f->kind == WIRE_K_STR || f->kind == WIRE_K_RAW)
            wire_field_set_raw(f, m, wire_raw(f->key, f->klen));
        else
            wire_field_set_int(f, m, f->kind == WIRE_K_BOOL ? 1 : 100 + j);
    }
}

/* What the encoder of id wrote for m, read back against the schema: the
 * same keys in the same order, each value of the field's kind, and the
 * schema's fields leaving out only the empty omitempty ones. */
static void check_encoded(int id, const union wire_body *m, bool full)
{
    const struct wire_schema *s = wire_schema(id);
    struct buf b = BUF_INIT;
    put_named(&b, id, m);
    size_t start = 0;
    if (id != WIRE_SCHEMA_NODE_STATE) {
        CHECK_EQ(b.data[0], id);
        start = 1;
        if (id != WIRE_COMPRESS) { /* wire_put_compress zips its input */
            struct buf g = BUF_INIT;
            wire_put_body(&g, id, m);
            CHECK_MEM(g.data, g.len, b.data, b.len);
            buf_free(&g);
        }
    }
    struct mp_reader r;
    mp_reader_init(&r, b.data + start, b.len - start);
    uint32_t n;
    CHECK_EQ(mp_read_map(&r, &n), 0);
    unsigned j = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        CHECK_EQ(mp_read_raw(&r, &k, &kn), 0);
        while (j < s->n && !(kn == s->fields[j].klen &&
                             memcmp(k, s->fields[j].key, kn) == 0)) {
            /* only an empty omitempty field may be left out */
            CHECK(!full && (s->fields[j].flags & WIRE_F_OMITEMPTY));
            j++;
        }
        CHECK(j < s->n);
        if (j >= s->n)
            break;
        const struct wire_field *f = &s->fields[j++];
        enum mp_type t;
        CHECK_EQ(mp_peek(&r, &t), 0);
        if (f->kind == WIRE_K_BOOL) {
            bool v;
            CHECK_EQ(mp_read_bool(&r, &v), 0);
            CHECK_EQ(v, wire_field_int(f, m));
        } else if (f->kind == WIRE_K_STR || f->kind == WIRE_K_RAW) {
            struct wire_raw want = wire_field_raw(f, m);
            if (t == MP_NIL) {
                CHECK(f->kind == WIRE_K_RAW && !want.set);
                CHECK_EQ(mp_skip(&r), 0);
                continue;
            }
            const uint8_t *p;
            uint32_t pn;
            CHECK_EQ(mp_read_raw(&r, &p, &pn), 0);
            if (!(f->flags & WIRE_F_INNER))
                CHECK_VIEW(p, pn, want.p, want.n);
        } else if (f->kind == WIRE_K_I64) {
            int64_t v;
            CHECK_EQ(mp_read_int(&r, &v), 0);
            CHECK_EQ(v, wire_field_int(f, m));
        } else {
            uint64_t v;
            CHECK_EQ(mp_read_uint(&r, &v), 0);
            CHECK_EQ(v, wire_field_int(f, m));
        }
    }
    CHECK_EQ(mp_left(&r), 0);
    while (j < s->n) /* what is left out at the end */
        CHECK(!full && (s->fields[j++].flags & WIRE_F_OMITEMPTY));

    /* The decoder of id and the schema's read the same values. */
    union wire_body a, d;
    WIRE_SCRATCH(sa);
    WIRE_SCRATCH(sd);
    mp_reader_init(&r, b.data + start, b.len - start);
    CHECK_EQ(get_named(&r, id, &a, &sa), 0);
    mp_reader_init(&r, b.data + start, b.len - start);
    CHECK_EQ(wire_get_struct(&r, s, &d, &sd, NULL), 0);
    for (j = 0; j < s->n; j++) {
        const struct wire_field *f = &s->fields[j];
        CHECK_EQ(wire_field_int(f, &a), wire_field_int(f, &d));
        struct wire_raw ra = wire_field_raw(f, &a), rd = wire_field_raw(f, &d);
        CHECK_VIEW(ra.p, ra.n, rd.p, rd.n);
        if (f->flags & WIRE_F_INNER)
            continue;
        CHECK_EQ(wire_field_int(f, &d), wire_field_int(f, m));
        struct wire_raw rm = wire_field_raw(f, m);
        CHECK_VIEW(rd.p, rd.n, rm.p, rm.n);
    }
    buf_free(&b);
}

static void test_schema_encoders(void)
{
    for (size_t i = 0; i < HS_ARRAY_LEN(SCHEMA_IDS); i++) {
        int id = SCHEMA_IDS[i];
        const struct wire_schema *s = wire_schema(id);
        union wire_body m;
        fill_fields(s, &m);
        if (id == WIRE_COMPRESS) /* wire_put_compress writes LZW, 0 */
            m.compress.algo = 0;
        check_encoded(id, &m, true);
        memset(&m, 0, sizeof m);
        check_encoded(id, &m, false);
    }
}

int main(void)
{
    RUN(test_ping_encode);
    RUN(test_ping_decode);
    RUN(test_alive_roundtrip);
    RUN(test_small_messages);
    RUN(test_compound_crc_compress);
    RUN(test_lenient_decode);
    RUN(test_walk_packet);
    RUN(test_stream_scan);
    RUN(test_schema_tables);
    RUN(test_schema_encoders);
    return test_report("wire");
}
