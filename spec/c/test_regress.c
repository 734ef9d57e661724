/* test_regress.c: inputs the fuzz targets (spec/fuzz) found to misbehave,
 * replayed as unit checks. The inputs themselves are also kept in the
 * targets' corpora as regress-*; `make asan` runs these checks under the
 * same sanitizers. */
#include "test.h"

#include "../../src/codec/keyring.h"
#include "../../src/io/sim.h"

static struct sim *pair(void)
{
    struct sim *s;
    sim_new(7, &s);
    static const char *const names[] = {"a", "b"};
    for (size_t i = 0; i < 2; i++) {
        struct config c;
        size_t idx;
        config_defaults(&c, "lan");
        snprintf(c.name, sizeof c.name, "%s", names[i]);
        CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
        config_free(&c);
    }
    struct hs_addr a = sim_addr(s, 0);
    CHECK_EQ(node_join(sim_node(s, 1), &a, NULL, 1, NULL, NULL), 0);
    sim_run(s, 100);
    return s;
}

static int state_of(struct sim *s, size_t idx, const char *name)
{
    const struct member *m =
        members_find(node_members(sim_node(s, idx)), name, strlen(name));
    return m ? m->state : -1;
}

/* A suspect message without a From field: the accuser's name was copied
 * from a NULL pointer (packet/regress-suspect-without-from). */
static void test_suspect_without_from(void)
{
    struct sim *s = pair();
    CHECK_EQ(state_of(s, 0, "b"), MEMBER_ALIVE);
    static const uint8_t msg[] = {0x03, 0x83, 0xa4, 'F',  'r', 't',  'm',  0xa1,
                                  'a',  0xab, 'I',  'n',  'c', 'a',  'r',  'n',
                                  'a',  't',  'i',  'o',  'n', 0x01, 0xa4, 'N',
                                  'o',  'd',  'e',  0xa1, 'b'};
    struct hs_addr from = sim_addr(s, 1);
    node_io_packet(sim_node(s, 0), &from, msg, sizeof msg);
    CHECK_EQ(state_of(s, 0, "b"), MEMBER_SUSPECT);
    sim_run(s, 2000); /* b hears of it and refutes */
    CHECK_EQ(state_of(s, 0, "b"), MEMBER_ALIVE);
    sim_free(s);
}

/* Two suspect messages without From about a member whose suspicion
 * takes confirmations: the second was compared with the first through a
 * NULL pointer (packet/regress-suspicion-confirmed-without-from). */
static void test_confirm_without_from(void)
{
    struct sim *s = pair();
    struct buf all = BUF_INIT, pkt = BUF_INIT;
    struct wire_part parts[5];
    size_t lens[5];
    static const uint8_t vsn[6] = {1, 5, 2, 0, 0, 0};
    static const char *const names[] = {"c", "d", "e"};
    for (int i = 0; i < 3; i++) {
        uint8_t ip[4] = {10, 0, 0, (uint8_t)(3 + i)};
        struct wire_alive a = {1,   wire_str(names[i]), wire_raw(ip, 4), 7946,
                               {0}, wire_raw(vsn, 6)};
        size_t before = all.len;
        wire_put_alive(&all, &a);
        lens[i] = all.len - before;
    }
    /* suspect {Incarnation: 1, Node: "c"}, twice */
    static const uint8_t sus[] = {0x03, 0x82, 0xab, 'I', 'n',  'c', 'a',  'r',
                                  'n',  'a',  't',  'i', 'o',  'n', 0x01, 0xa4,
                                  'N',  'o',  'd',  'e', 0xa1, 'c'};
    for (int i = 3; i < 5; i++) {
        buf_append(&all, sus, sizeof sus);
        lens[i] = sizeof sus;
    }
    for (size_t i = 0, o = 0; i < 5; o += lens[i], i++)
        parts[i] = (struct wire_part){all.data + o, lens[i]};
    CHECK_EQ(wire_put_compound(&pkt, parts, 5), 0);
    struct hs_addr from = sim_addr(s, 1);
    node_io_packet(sim_node(s, 0), &from, pkt.data, pkt.len);
    CHECK_EQ(state_of(s, 0, "c"), MEMBER_SUSPECT);
    buf_free(&all);
    buf_free(&pkt);
    sim_free(s);
}

/* An encrypted empty message (a blob of exactly the overhead): the
 * plaintext buffer was a NULL pointer plus 0
 * (stream_encrypted/regress-sealed-empty-message). */
static void test_sealed_empty_message(void)
{
    struct keyring kr;
    static const uint8_t key[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                    9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t nonce[KEYRING_NONCE] = {0};
    keyring_init(&kr);
    CHECK_EQ(keyring_add(&kr, key, sizeof key), 0);
    struct buf sealed = BUF_INIT, plain = BUF_INIT;
    const char *why = NULL;
    CHECK_EQ(keyring_seal(&kr, 1, nonce, NULL, 0, NULL, 0, &sealed), 0);
    CHECK_EQ(sealed.len, KEYRING_OVERHEAD_V1);
    CHECK_EQ(
        keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &plain, NULL, &why),
        0);
    CHECK_EQ(plain.len, 0);
    buf_reset(&sealed);
    CHECK_EQ(keyring_seal_stream(&kr, 1, nonce, NULL, 0, NULL, 0, &sealed), 0);
    CHECK_EQ(keyring_open_stream(&kr, NULL, 0, sealed.data, sealed.len, &plain,
                                 &why),
             0);
    CHECK_EQ(plain.len, 0);
    buf_free(&sealed);
    buf_free(&plain);
    keyring_clear(&kr);
}

int main(void)
{
    RUN(test_suspect_without_from);
    RUN(test_confirm_without_from);
    RUN(test_sealed_empty_message);
    return test_report("test_regress");
}
