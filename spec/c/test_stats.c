/* test_stats.c: the counters of hearsay stats: messages and their bytes
 * by type, in and out, on packets and on streams. */
#include "test.h"

#include "../../src/codec/wire.h"
#include "../../src/io/sim.h"

static struct sim *new_sim(size_t n, bool compress)
{
    struct sim *s;
    sim_new(7, &s);
    sim_set_log(s, HS_LOG_ERROR, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        struct config c;
        config_defaults(&c, "lan");
        snprintf(c.name, sizeof c.name, "n%zu", i);
        c.enable_compression = compress;
        size_t idx;
        CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
        config_free(&c);
    }
    return s;
}

static void put_ping(struct buf *b, uint32_t seq, const char *to)
{
    struct wire_ping p = {seq, wire_str(to), wire_str(NULL), 0, wire_str(NULL)};
    wire_put_ping(b, &p);
}

/* A ping arrives as a packet, alone and then in a compound: each message
 * counts its own encoded size, and the ack we answer with counts what
 * went out on the wire. */
static void test_packet_bytes(void)
{
    struct sim *s = new_sim(1, false);
    sim_run(s, 100);
    struct node *nd = sim_node(s, 0);
    const struct node_stats *st = node_stats(nd);
    struct hs_addr from;
    CHECK_EQ(addr_parse("10.9.9.9:7946", 7946, &from), 0);

    struct buf ping = BUF_INIT, ack = BUF_INIT;
    put_ping(&ping, 7, "n0");
    wire_put_ack(&ack, &(struct wire_ack){7, wire_str(NULL)});
    struct node_stats before = *st;
    node_io_packet(nd, &from, ping.data, ping.len);
    CHECK_EQ(st->msgs_in[WIRE_PING] - before.msgs_in[WIRE_PING], 1);
    CHECK_EQ(st->msg_bytes_in[WIRE_PING] - before.msg_bytes_in[WIRE_PING],
             ping.len);
    CHECK_EQ(st->bytes_in - before.bytes_in, ping.len);
    /* The ack, maybe in a compound with our own news. */
    CHECK_EQ(st->msgs_out[WIRE_ACK] - before.msgs_out[WIRE_ACK], 1);
    CHECK_EQ(st->msg_bytes_out[WIRE_ACK] - before.msg_bytes_out[WIRE_ACK],
             ack.len);
    CHECK_EQ(st->packets_out - before.packets_out, 1);
    uint64_t compound =
        st->msg_bytes_out[WIRE_COMPOUND] - before.msg_bytes_out[WIRE_COMPOUND];
    CHECK_EQ(st->bytes_out - before.bytes_out, compound ? compound : ack.len);

    /* Two pings in one compound. */
    struct buf p1 = BUF_INIT, p2 = BUF_INIT, comp = BUF_INIT;
    put_ping(&p1, 8, "n0");
    put_ping(&p2, 9, "n0");
    struct wire_part parts[2] = {{p1.data, p1.len}, {p2.data, p2.len}};
    CHECK_EQ(wire_put_compound(&comp, parts, 2), 0);
    before = *st;
    node_io_packet(nd, &from, comp.data, comp.len);
    CHECK_EQ(st->msgs_in[WIRE_COMPOUND] - before.msgs_in[WIRE_COMPOUND], 1);
    CHECK_EQ(st->msg_bytes_in[WIRE_COMPOUND] -
                 before.msg_bytes_in[WIRE_COMPOUND],
             comp.len);
    CHECK_EQ(st->msgs_in[WIRE_PING] - before.msgs_in[WIRE_PING], 2);
    CHECK_EQ(st->msg_bytes_in[WIRE_PING] - before.msg_bytes_in[WIRE_PING],
             p1.len + p2.len);
    CHECK_EQ(st->msgs_out[WIRE_ACK] - before.msgs_out[WIRE_ACK], 2);

    /* A type byte past the known ones counts nothing by type. */
    uint8_t junk[3] = {200, 1, 2};
    before = *st;
    node_io_packet(nd, &from, junk, sizeof junk);
    uint64_t in = 0;
    for (int t = 0; t < WIRE_TYPE_COUNT; t++)
        in += st->msg_bytes_in[t] - before.msg_bytes_in[t];
    CHECK_EQ(in, 0);
    CHECK_EQ(st->dropped[NODE_DROP_UNKNOWN_TYPE] -
                 before.dropped[NODE_DROP_UNKNOWN_TYPE],
             1);
    buf_free(&ping);
    buf_free(&ack);
    buf_free(&p1);
    buf_free(&p2);
    buf_free(&comp);
    sim_free(s);
}

/* A join's push/pull over a stream, compressed: what one side counts out
 * the other counts in, type by type. */
static void test_stream_bytes(void)
{
    struct sim *s = new_sim(2, true);
    struct hs_addr seed = sim_addr(s, 0);
    CHECK_EQ(node_join(sim_node(s, 1), &seed, NULL, 1, NULL, NULL), 0);
    sim_run(s, 1000);
    const struct node_stats *a = node_stats(sim_node(s, 0));
    const struct node_stats *b = node_stats(sim_node(s, 1));
    CHECK_EQ(b->push_pulls_out, 1);
    CHECK_EQ(a->push_pulls_in, 1);
    /* One push/pull each way: the request and the answer. */
    CHECK_EQ(b->msgs_out[WIRE_PUSHPULL], 1);
    CHECK_EQ(a->msgs_out[WIRE_PUSHPULL], 1);
    CHECK(b->msg_bytes_out[WIRE_PUSHPULL] > 0);
    CHECK_EQ(b->msg_bytes_out[WIRE_PUSHPULL], a->msg_bytes_in[WIRE_PUSHPULL]);
    CHECK_EQ(a->msg_bytes_out[WIRE_PUSHPULL], b->msg_bytes_in[WIRE_PUSHPULL]);
    CHECK_EQ(b->msgs_out[WIRE_COMPRESS], a->msgs_in[WIRE_COMPRESS]);
    CHECK_EQ(b->msg_bytes_out[WIRE_COMPRESS], a->msg_bytes_in[WIRE_COMPRESS]);
    sim_free(s);
}

int main(void)
{
    RUN(test_packet_bytes);
    RUN(test_stream_bytes);
    return test_report("test_stats");
}
