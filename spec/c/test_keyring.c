/* test_keyring.c: the keyring and AES-GCM against the reference's worked
 * examples (section 7.4), and the keyring rules of memberlist. */
#include "test.h"

#include "../../src/codec/keyring.h"
#include "../../src/io/sim.h"

/* Section 9.1: the 69-byte ping that section 7.4 encrypts. */
static const char *ping_hex =
    "0085a44e6f6465a66e6f64652d62a55365714e6f07aa536f7572636541646472a40a"
    "000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f"
    "0a";

static const char *vsn1_hex =
    "01000102030405060708090a0b93e90380097f92f225bd05ef1bc1d55bd6575489"
    "5447ae99935392485520c61e21aedbf7f52ae48c35866a828ee6b3f76af17b9461"
    "aa57d17d2107a0c929468be87a38515599975e8d3acd042073e5465f16164a19";

static const char *vsn0_hex =
    "00000102030405060708090a0b93e90380097f92f225bd05ef1bc1d55bd6575489"
    "5447ae99935392485520c61e21aedbf7f52ae48c35866a828ee6b3f76af17b9461"
    "aa57d17d2107a0c929468be87a38515547c115283b7a54773103506f8fc509f674"
    "6eed8e0d732d607f89f3";

static const char *stream_hex =
    "0a0000006201000102030405060708090a0b93e90380097f92f225bd05ef1bc1d5"
    "5bd65754895447ae99935392485520c61e21aedbf7f52ae48c35866a828ee6b3f7"
    "6af17b9461aa57d17d2107a0c929468be87a3851554580b2ea974df1959069cf0e"
    "3e69522a";

static const char *label_hex =
    "f40470726f6401000102030405060708090a0b93e90380097f92f225bd05ef1bc1"
    "d55bd65754895447ae99935392485520c61e21aedbf7f52ae48c35866a828ee6b3"
    "f76af17b9461aa57d17d2107a0c929468be87a385155acecc4a2a709779543493a"
    "bf14c94c64";

static uint8_t key16[16], nonce[KEYRING_NONCE];

static void setup(struct keyring *kr)
{
    for (int i = 0; i < 16; i++)
        key16[i] = (uint8_t)i;
    for (int i = 0; i < KEYRING_NONCE; i++)
        nonce[i] = (uint8_t)i;
    keyring_init(kr);
    CHECK_EQ(keyring_add(kr, key16, 16), 0);
}

static void test_vectors_udp(void)
{
    struct keyring kr;
    setup(&kr);
    size_t plen, v1len, v0len;
    uint8_t *ping = test_unhex(ping_hex, &plen);
    uint8_t *v1 = test_unhex(vsn1_hex, &v1len);
    uint8_t *v0 = test_unhex(vsn0_hex, &v0len);
    CHECK_EQ(plen, 69);
    CHECK_EQ(v1len, 98);
    CHECK_EQ(v0len, 109);
    struct buf b = BUF_INIT;
    /* Version 1: sealed as it is, no additional data. */
    CHECK_EQ(keyring_seal(&kr, 1, nonce, NULL, 0, ping, plen, &b), 0);
    CHECK_MEM(b.data, b.len, v1, v1len);
    CHECK_EQ(keyring_sealed_len(1, plen), v1len);
    buf_reset(&b);
    const char *why = NULL;
    int used = -1;
    CHECK_EQ(keyring_open(&kr, NULL, 0, v1, v1len, &b, &used, &why), 0);
    CHECK_MEM(b.data, b.len, ping, plen);
    CHECK_EQ(used, 0);
    /* Version 0: PKCS#7 padding of eleven 0x0b bytes. */
    buf_reset(&b);
    CHECK_EQ(keyring_seal(&kr, 0, nonce, NULL, 0, ping, plen, &b), 0);
    CHECK_MEM(b.data, b.len, v0, v0len);
    CHECK_EQ(keyring_sealed_len(0, plen), v0len);
    buf_reset(&b);
    CHECK_EQ(keyring_open(&kr, NULL, 0, v0, v0len, &b, NULL, &why), 0);
    CHECK_MEM(b.data, b.len, ping, plen);
    buf_free(&b);
    free(ping);
    free(v1);
    free(v0);
    keyring_clear(&kr);
}

static void test_vectors_stream_and_label(void)
{
    struct keyring kr;
    setup(&kr);
    size_t plen, slen, llen;
    uint8_t *ping = test_unhex(ping_hex, &plen);
    uint8_t *st = test_unhex(stream_hex, &slen);
    uint8_t *lab = test_unhex(label_hex, &llen);
    struct buf b = BUF_INIT;
    /* Stream: 0a | 00000062 | blob, the 5 header bytes authenticated. */
    CHECK_EQ(keyring_seal_stream(&kr, 1, nonce, NULL, 0, ping, plen, &b), 0);
    CHECK_MEM(b.data, b.len, st, slen);
    buf_reset(&b);
    const char *why = NULL;
    CHECK_EQ(keyring_open_stream(&kr, NULL, 0, st, slen, &b, &why), 0);
    CHECK_MEM(b.data, b.len, ping, plen);
    /* The header is authenticated: the same blob with another length
     * byte in the header does not open. */
    buf_reset(&b);
    st[4] ^= 1;
    CHECK(keyring_open_stream(&kr, NULL, 0, st, slen, &b, &why) != 0);
    st[4] ^= 1;
    /* A label ("prod") authenticates the blob, and goes outside it. */
    buf_reset(&b);
    buf_putc(&b, 0xf4);
    buf_putc(&b, 4);
    buf_append(&b, "prod", 4);
    CHECK_EQ(
        keyring_seal(&kr, 1, nonce, (const uint8_t *)"prod", 4, ping, plen, &b),
        0);
    CHECK_MEM(b.data, b.len, lab, llen);
    buf_reset(&b);
    CHECK_EQ(keyring_open(&kr, (const uint8_t *)"prod", 4, lab + 6, llen - 6,
                          &b, NULL, &why),
             0);
    CHECK_MEM(b.data, b.len, ping, plen);
    /* Another label, or none, does not open it. */
    buf_reset(&b);
    CHECK_EQ(keyring_open(&kr, (const uint8_t *)"test", 4, lab + 6, llen - 6,
                          &b, NULL, &why),
             HS_EREFUSED);
    CHECK_EQ(keyring_open(&kr, NULL, 0, lab + 6, llen - 6, &b, NULL, &why),
             HS_EREFUSED);
    CHECK_EQ(b.len, 0);
    buf_free(&b);
    free(ping);
    free(st);
    free(lab);
    keyring_clear(&kr);
}

/* Decryption tries every key; encryption uses the primary only. */
static void test_every_key(void)
{
    struct keyring kr, other;
    setup(&kr);
    uint8_t k24[24], k32[32];
    memset(k24, 0x24, sizeof k24);
    memset(k32, 0x32, sizeof k32);
    keyring_init(&other);
    CHECK_EQ(keyring_add(&other, k32, 32), 0);
    CHECK_EQ(keyring_add(&other, k24, 24), 0);
    const uint8_t msg[] = "a message for the cluster";
    struct buf sealed = BUF_INIT, b = BUF_INIT;
    const char *why = NULL;
    int used = -1;
    /* Sealed with AES-256 (other's primary): kr cannot open it... */
    CHECK_EQ(keyring_seal(&other, 1, nonce, NULL, 0, msg, sizeof msg, &sealed),
             0);
    CHECK_EQ(
        keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &b, NULL, &why),
        HS_EREFUSED);
    CHECK(why && strstr(why, "no installed key"));
    /* ...until it has that key, as its second. */
    CHECK_EQ(keyring_add(&kr, k32, 32), 0);
    CHECK_EQ(
        keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &b, &used, &why),
        0);
    CHECK_EQ(used, 1);
    CHECK_MEM(b.data, b.len, msg, sizeof msg);
    /* AES-192 round trip, with additional data. */
    CHECK_EQ(keyring_use(&other, k24, 24), 0);
    buf_reset(&sealed);
    buf_reset(&b);
    CHECK_EQ(keyring_seal(&other, 0, nonce, (const uint8_t *)"x", 1, msg,
                          sizeof msg, &sealed),
             0);
    CHECK_EQ(sealed.len, keyring_sealed_len(0, sizeof msg));
    CHECK_EQ(keyring_open(&other, (const uint8_t *)"x", 1, sealed.data,
                          sealed.len, &b, &used, &why),
             0);
    CHECK_EQ(used, 0);
    CHECK_MEM(b.data, b.len, msg, sizeof msg);
    /* Any flipped bit is refused: version byte aside, every byte is
     * covered by the tag. */
    for (size_t i = 1; i < sealed.len; i++) {
        sealed.data[i] ^= 0x40;
        buf_reset(&b);
        CHECK_EQ(keyring_open(&other, (const uint8_t *)"x", 1, sealed.data,
                              sealed.len, &b, NULL, &why),
                 HS_EREFUSED);
        sealed.data[i] ^= 0x40;
    }
    buf_free(&sealed);
    buf_free(&b);
    keyring_clear(&kr);
    keyring_clear(&other);
}

static void test_bad_blobs(void)
{
    struct keyring kr, empty;
    setup(&kr);
    keyring_init(&empty);
    uint8_t blob[64] = {0};
    struct buf b = BUF_INIT;
    const char *why = NULL;
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 0, &b, NULL, &why), HS_EBADMSG);
    blob[0] = 2; /* unknown version */
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 64, &b, NULL, &why), HS_EBADMSG);
    blob[0] = 1; /* shorter than version, nonce and tag */
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 28, &b, NULL, &why), HS_EBADMSG);
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 29, &b, NULL, &why), HS_EREFUSED);
    blob[0] = 0; /* version 0 needs room for a padding block */
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 44, &b, NULL, &why), HS_EBADMSG);
    CHECK_EQ(keyring_open(&empty, NULL, 0, blob, 64, &b, NULL, &why),
             HS_ESTATE);
    CHECK_EQ(b.len, 0);
    /* A padding count past the start of the plaintext: the version byte
     * is not authenticated, so a version 1 blob of 16 bytes ending in
     * 0x20 opens as version 0 and must be refused, not over-read. */
    uint8_t msg[16];
    memset(msg, 0x20, sizeof msg);
    struct buf sealed = BUF_INIT;
    CHECK_EQ(keyring_seal(&kr, 1, nonce, NULL, 0, msg, 16, &sealed), 0);
    sealed.data[0] = 0;
    CHECK_EQ(
        keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &b, NULL, &why),
        HS_EBADMSG);
    CHECK(why && strstr(why, "padding"));
    /* Stream framing: the length must match what follows. */
    buf_reset(&sealed);
    CHECK_EQ(keyring_seal_stream(&kr, 1, nonce, NULL, 0, msg, 16, &sealed), 0);
    CHECK_EQ(keyring_open_stream(&kr, NULL, 0, sealed.data, sealed.len - 1, &b,
                                 &why),
             HS_EBADMSG);
    CHECK_EQ(keyring_open_stream(&kr, NULL, 0, sealed.data, 3, &b, &why),
             HS_EBADMSG);
    CHECK_EQ(keyring_seal(&empty, 1, nonce, NULL, 0, msg, 16, &sealed),
             HS_ESTATE);
    buf_free(&sealed);
    buf_free(&b);
    keyring_clear(&kr);
}

/* memberlist keyring.go: AddKey, UseKey, RemoveKey. */
static void test_ring_rules(void)
{
    struct keyring kr;
    uint8_t a[16], b[24], c[32], bad[20];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    memset(c, 'c', sizeof c);
    memset(bad, 'x', sizeof bad);
    keyring_init(&kr);
    CHECK(keyring_empty(&kr));
    CHECK_EQ(keyring_add(&kr, bad, sizeof bad), HS_EINVAL);
    CHECK_EQ(keyring_use(&kr, a, 16), HS_ENOTFOUND);
    /* The first key is the primary; later ones only decrypt. */
    CHECK_EQ(keyring_add(&kr, a, 16), 0);
    CHECK_EQ(keyring_add(&kr, b, 24), 0);
    CHECK_EQ(keyring_add(&kr, c, 32), 0);
    CHECK_EQ(keyring_add(&kr, b, 24), 0); /* already there: no change */
    CHECK_EQ(kr.n, 3);
    CHECK_EQ(keyring_find(&kr, a, 16), 0);
    CHECK_EQ(keyring_find(&kr, c, 32), 2);
    CHECK_EQ(keyring_find(&kr, c, 16), -1); /* a prefix is another key */
    /* Use c: c first, the others after it in their order. */
    CHECK_EQ(keyring_use(&kr, c, 32), 0);
    CHECK_EQ(keyring_find(&kr, c, 32), 0);
    CHECK_EQ(keyring_find(&kr, a, 16), 1);
    CHECK_EQ(keyring_find(&kr, b, 24), 2);
    /* The primary cannot go; another key can, an absent one is no
     * error. */
    CHECK_EQ(keyring_remove(&kr, c, 32), HS_ESTATE);
    CHECK_EQ(keyring_remove(&kr, a, 16), 0);
    CHECK_EQ(keyring_remove(&kr, a, 16), 0);
    CHECK_EQ(kr.n, 2);
    CHECK_EQ(keyring_find(&kr, b, 24), 1);
    CHECK_EQ(kr.len[1], 24);
    /* A full ring refuses more. */
    for (int i = 0; kr.n < KEYRING_MAX; i++) {
        uint8_t k[16];
        memset(k, 0, sizeof k);
        k[0] = (uint8_t)i;
        k[1] = 0xee;
        CHECK_EQ(keyring_add(&kr, k, 16), 0);
    }
    uint8_t extra[16];
    memset(extra, 0x77, sizeof extra);
    CHECK_EQ(keyring_add(&kr, extra, 16), HS_ETOOBIG);
    keyring_clear(&kr);
    CHECK(keyring_empty(&kr));
}

static void test_parse(void)
{
    uint8_t key[KEYRING_KEY_MAX];
    size_t len = 0;
    char text[45];
    /* serf keygen's form: 32 bytes. */
    CHECK_EQ(keyring_parse("sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs=", key,
                           &len),
             0);
    CHECK_EQ(len, 32);
    CHECK_EQ(key[0], 0xb0);
    keyring_format(key, len, text);
    CHECK(!strcmp(text, "sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs="));
    /* 16 bytes (AES-128). */
    CHECK_EQ(keyring_parse("AAECAwQFBgcICQoLDA0ODw==", key, &len), 0);
    CHECK_EQ(len, 16);
    CHECK_EQ(key[15], 15);
    /* Not base64, or the wrong length. */
    CHECK_EQ(keyring_parse("", key, &len), HS_EINVAL);
    CHECK_EQ(keyring_parse("not a key!", key, &len), HS_EINVAL);
    CHECK_EQ(keyring_parse("AAECAwQFBgcICQoLDA0O", key, &len), HS_EINVAL);
    CHECK_EQ(keyring_parse("sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYsA"
                           "AAAA",
                           key, &len),
             HS_EINVAL);
    /* A passphrase: SHA-256 of its bytes. */
    keyring_from_passphrase("abc", 3, key);
    keyring_format(key, 32, text);
    CHECK(!strcmp(text, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="));
}

/* ===== The node with a keyring, on the simulated network ===== */

#define KEY_A "sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs="
#define KEY_B "AAECAwQFBgcICQoLDA0ODw=="
#define KEY_C "ZHVtbXkga2V5IGZvciBzcGVjcyBvbmx5ISEhISEhISE="

static int verbose;
static int warn_lines; /* "refused" WARN lines logged */
static char last_warn[512];

static void sink(void *ud, const char *node, uint64_t now, int level,
                 const char *msg)
{
    (void)ud;
    if (level == HS_LOG_WARN && strstr(msg, "refused ")) {
        warn_lines++;
        snprintf(last_warn, sizeof last_warn, "%s", msg);
    }
    if (verbose)
        fprintf(stderr, "%8.3f %-4s %-5s %s\n", (double)now / 1000.0, node,
                hs_log_level_name(level), msg);
}

struct spec {
    const char *name;
    const char *encrypt;  /* NULL: none */
    const char *label;    /* NULL: none */
    int protocol_version; /* 0: the default */
    bool skip_label;
};

static size_t add(struct sim *s, const struct spec *sp)
{
    struct config c;
    config_defaults(&c, "lan");
    snprintf(c.name, sizeof c.name, "%s", sp->name);
    if (sp->encrypt)
        snprintf(c.encrypt, sizeof c.encrypt, "%s", sp->encrypt);
    if (sp->label)
        snprintf(c.label, sizeof c.label, "%s", sp->label);
    if (sp->protocol_version)
        c.protocol_version = sp->protocol_version;
    c.skip_inbound_label_check = sp->skip_label;
    char err[256];
    CHECK_EQ(config_validate(&c, err, sizeof err), 0);
    size_t idx = 0;
    CHECK_EQ(sim_add(s, &c, NULL, &idx), 0);
    config_free(&c);
    return idx;
}

static struct sim *new_sim(uint64_t seed)
{
    struct sim *s;
    sim_new(seed, &s);
    sim_set_log(s, verbose ? HS_LOG_DEBUG : HS_LOG_INFO, sink, NULL);
    warn_lines = 0;
    return s;
}

static void join(struct sim *s, size_t idx, size_t to)
{
    struct hs_addr a = sim_addr(s, to);
    CHECK_EQ(node_join(sim_node(s, idx), &a, NULL, 1, NULL, NULL), 0);
}

/* The state node `at` has for `name` (-1: unknown). */
static int state_at(struct sim *s, size_t at, const char *name)
{
    const struct member *m =
        members_find(node_members(sim_node(s, at)), name, strlen(name));
    return m ? m->state : -1;
}

/* Every node of [0, n) sees every node of [0, n) alive. */
static bool all_alive(struct sim *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (state_at(s, i, sim_name(s, j)) != MEMBER_ALIVE)
                return false;
    return true;
}

/* Run `ms` in steps of 100 ms; the number of steps after which some node
 * did not see the whole cluster alive. */
static int run_watching(struct sim *s, size_t n, uint64_t ms)
{
    int bad = 0;
    for (uint64_t t = 0; t < ms; t += 100) {
        sim_run(s, 100);
        if (!all_alive(s, n))
            bad++;
    }
    return bad;
}

static uint64_t dropped(struct sim *s, size_t idx, int reason)
{
    return node_stats(sim_node(s, idx))->dropped[reason];
}

static void test_encrypted_cluster(void)
{
    struct sim *s = new_sim(3);
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "n%d", i);
        add(s, &(struct spec){name, KEY_A, NULL, 0, false});
        if (i)
            join(s, (size_t)i, 0);
    }
    sim_run(s, 5000);
    CHECK(all_alive(s, 4));
    const struct node_stats *st = node_stats(sim_node(s, 1));
    CHECK(st->msgs_out[WIRE_ENCRYPT] > 0);
    CHECK(st->msgs_in[WIRE_ENCRYPT] > 0);
    CHECK(st->push_pulls_out + st->push_pulls_in > 0);
    /* A node with another key, and one without a key, try to join: they
     * never become members, and what they send is refused. */
    size_t other = add(s, &(struct spec){"other", KEY_B, NULL, 0, false});
    size_t plain = add(s, &(struct spec){"plain", NULL, NULL, 0, false});
    join(s, other, 0);
    join(s, plain, 1);
    sim_run(s, 20000);
    CHECK(all_alive(s, 4));
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ(state_at(s, i, "other"), -1);
        CHECK_EQ(state_at(s, i, "plain"), -1);
    }
    CHECK_EQ(members_count(node_members(sim_node(s, other))), 1);
    CHECK_EQ(members_count(node_members(sim_node(s, plain))), 1);
    CHECK(dropped(s, 0, NODE_DROP_DECRYPT) > 0);   /* other's join */
    CHECK(dropped(s, 1, NODE_DROP_PLAINTEXT) > 0); /* plain's join */
    /* The keyless node sees our answers as encrypted traffic. */
    CHECK(dropped(s, plain, NODE_DROP_ENCRYPTED) > 0);
    /* Logged once per source and reason, however often it comes. */
    int lines = warn_lines;
    join(s, other, 0);
    join(s, plain, 1);
    sim_run(s, 5000);
    CHECK_EQ(warn_lines, lines);
    CHECK(strstr(last_warn, KEY_A) == NULL && strstr(last_warn, KEY_B) == NULL);
    sim_free(s);
}

/* Protocol version 1 peers seal with version 0 (padding). */
static void test_version0(void)
{
    struct sim *s = new_sim(5);
    add(s, &(struct spec){"a", KEY_B, NULL, 1, false});
    add(s, &(struct spec){"b", KEY_B, NULL, 0, false});
    add(s, &(struct spec){"c", KEY_B, NULL, 1, false});
    join(s, 1, 0);
    join(s, 2, 1);
    sim_run(s, 8000);
    CHECK(all_alive(s, 3));
    CHECK_EQ(dropped(s, 1, NODE_DROP_DECRYPT), 0);
    sim_free(s);
}

static void test_labels(void)
{
    struct sim *s = new_sim(7);
    add(s, &(struct spec){"a", NULL, "prod", 0, false});
    add(s, &(struct spec){"b", NULL, "prod", 0, false});
    add(s, &(struct spec){"c", KEY_A, "prod", 0, false});
    add(s, &(struct spec){"d", KEY_A, "prod", 0, false});
    size_t e = add(s, &(struct spec){"e", NULL, "test", 0, false});
    size_t f = add(s, &(struct spec){"f", NULL, NULL, 0, false});
    /* An encrypted node whose label differs: the label is the
     * additional data, so even its key does not help. */
    size_t g = add(s, &(struct spec){"g", KEY_A, "test", 0, false});
    join(s, 1, 0);
    join(s, 3, 2);
    join(s, e, 0);
    join(s, f, 0);
    join(s, g, 2);
    sim_run(s, 10000);
    CHECK_EQ(state_at(s, 0, "b"), MEMBER_ALIVE);
    CHECK_EQ(state_at(s, 1, "a"), MEMBER_ALIVE);
    CHECK_EQ(state_at(s, 2, "d"), MEMBER_ALIVE);
    CHECK_EQ(state_at(s, 3, "c"), MEMBER_ALIVE);
    CHECK_EQ(state_at(s, 0, "e"), -1);
    CHECK_EQ(state_at(s, 0, "f"), -1);
    CHECK_EQ(state_at(s, 2, "g"), -1);
    CHECK(dropped(s, 0, NODE_DROP_LABEL) >= 2);
    CHECK(dropped(s, 2, NODE_DROP_LABEL) > 0);
    CHECK_EQ(members_count(node_members(sim_node(s, e))), 1);
    sim_free(s);

    /* skip_inbound_label_check (memberlist's, for a transport that has
     * taken the label off already): unlabelled traffic is taken as ours,
     * labelled traffic is refused. */
    s = new_sim(9);
    size_t a = add(s, &(struct spec){"a", KEY_A, "prod", 0, true});
    size_t b = add(s, &(struct spec){"b", KEY_A, NULL, 0, false});
    size_t c = add(s, &(struct spec){"c", KEY_A, "prod", 0, false});
    sim_run(s, 100);
    struct buf pkt = BUF_INIT;
    uint8_t ping[] = {WIRE_PING, 0x81, 0xa5, 'S', 'e', 'q', 'N', 'o', 7};
    struct hs_addr from = sim_addr(s, b);
    /* What b (no label) sends: sealed with "prod" as the additional data
     * by a node that labels its packets, minus the label. */
    CHECK_EQ(keyring_seal(node_keyring(sim_node(s, c)), 1, nonce,
                          (const uint8_t *)"prod", 4, ping, sizeof ping, &pkt),
             0);
    uint64_t pings = node_stats(sim_node(s, a))->msgs_in[WIRE_PING];
    node_io_packet(sim_node(s, a), &from, pkt.data, pkt.len);
    CHECK_EQ(node_stats(sim_node(s, a))->msgs_in[WIRE_PING], pings + 1);
    /* The same with its label is refused. */
    buf_reset(&pkt);
    buf_append(&pkt, "\xf4\x04prod", 6);
    keyring_seal(node_keyring(sim_node(s, c)), 1, nonce,
                 (const uint8_t *)"prod", 4, ping, sizeof ping, &pkt);
    node_io_packet(sim_node(s, a), &from, pkt.data, pkt.len);
    CHECK_EQ(node_stats(sim_node(s, a))->msgs_in[WIRE_PING], pings + 1);
    CHECK_EQ(dropped(s, a, NODE_DROP_LABEL), 1);
    /* c, without the flag, takes the labelled one. */
    node_io_packet(sim_node(s, c), &from, pkt.data, pkt.len);
    CHECK_EQ(dropped(s, c, NODE_DROP_LABEL), 0);
    CHECK_EQ(node_stats(sim_node(s, c))->msgs_in[WIRE_PING], 1);
    buf_free(&pkt);
    sim_free(s);
}

struct outcome {
    int calls;
    size_t nodes, responses, errors, nfailures;
    size_t keys, everywhere; /* list: keys, keys on every node */
    char failure[256];
};

static void on_keys(void *ud, const struct node_keys_result *r)
{
    struct outcome *o = ud;
    o->calls++;
    o->nodes = r->nodes;
    o->responses = r->responses;
    o->errors = r->errors;
    o->nfailures = r->nfailures;
    o->keys = r->nkeys;
    o->everywhere = 0;
    for (size_t i = 0; i < r->nkeys; i++)
        if (r->keys[i].installed == r->nodes)
            o->everywhere++;
    if (r->nfailures)
        snprintf(o->failure, sizeof o->failure, "%s: %s", r->failures[0].name,
                 r->failures[0].message);
}

static int keys(struct sim *s, size_t at, int op, const char *b64,
                struct outcome *o)
{
    uint8_t key[KEYRING_KEY_MAX];
    size_t len = 0;
    if (b64)
        CHECK_EQ(keyring_parse(b64, key, &len), 0);
    memset(o, 0, sizeof *o);
    return node_keys(sim_node(s, at), op, key, len, on_keys, o);
}

/* serf keys: install, use, remove on a running five-node cluster, with
 * every member seen alive by every member throughout. */
static void test_rotation(void)
{
    struct sim *s = new_sim(11);
    for (int i = 0; i < 5; i++) {
        char name[8];
        snprintf(name, sizeof name, "n%d", i);
        add(s, &(struct spec){name, KEY_A, NULL, 0, false});
        if (i)
            join(s, (size_t)i, 0);
    }
    sim_run(s, 6000);
    CHECK(all_alive(s, 5));
    struct outcome o;
    CHECK_EQ(keys(s, 2, NODE_KEYS_INSTALL, KEY_C, &o), 0);
    CHECK_EQ(run_watching(s, 5, 3000), 0);
    CHECK_EQ(o.calls, 1);
    CHECK_EQ(o.nodes, 5);
    CHECK_EQ(o.responses, 5);
    CHECK_EQ(o.errors, 0);
    CHECK_EQ(keys(s, 0, NODE_KEYS_LIST, NULL, &o), 0);
    CHECK_EQ(run_watching(s, 5, 1000), 0);
    CHECK_EQ(o.keys, 2);
    CHECK_EQ(o.everywhere, 2);
    /* The new key becomes the primary everywhere. */
    CHECK_EQ(keys(s, 4, NODE_KEYS_USE, KEY_C, &o), 0);
    CHECK_EQ(run_watching(s, 5, 3000), 0);
    CHECK_EQ(o.responses, 5);
    CHECK_EQ(o.errors, 0);
    for (size_t i = 0; i < 5; i++) {
        uint8_t c[KEYRING_KEY_MAX];
        size_t len;
        keyring_parse(KEY_C, c, &len);
        CHECK_EQ(keyring_find(node_keyring(sim_node(s, i)), c, len), 0);
    }
    /* Removing the primary is refused here, before anyone is asked. */
    CHECK_EQ(keys(s, 1, NODE_KEYS_REMOVE, KEY_C, &o), HS_ESTATE);
    CHECK_EQ(keys(s, 1, NODE_KEYS_REMOVE, KEY_A, &o), 0);
    CHECK_EQ(run_watching(s, 5, 3000), 0);
    CHECK_EQ(o.responses, 5);
    CHECK_EQ(o.errors, 0);
    CHECK_EQ(keys(s, 3, NODE_KEYS_LIST, NULL, &o), 0);
    CHECK_EQ(run_watching(s, 5, 1000), 0);
    CHECK_EQ(o.keys, 1);
    CHECK_EQ(o.everywhere, 1);
    /* Using a key nobody has is refused here too. */
    CHECK_EQ(keys(s, 3, NODE_KEYS_USE, KEY_B, &o), HS_ENOTFOUND);
    /* A node with only the old key is refused now. */
    size_t old = add(s, &(struct spec){"old", KEY_A, NULL, 0, false});
    join(s, old, 0);
    CHECK_EQ(run_watching(s, 5, 10000), 0);
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ(state_at(s, i, "old"), -1);
    CHECK(dropped(s, 0, NODE_DROP_DECRYPT) > 0);
    /* The old node (a member of nothing) answers key requests with its
     * own failure; a killed member is reported as not answering. */
    sim_kill(s, 4);
    CHECK_EQ(keys(s, 0, NODE_KEYS_INSTALL, KEY_B, &o), 0);
    sim_run(s, 15000);
    CHECK_EQ(o.calls, 1);
    CHECK_EQ(o.responses + 1, o.nodes);
    CHECK(o.nfailures >= 1);
    sim_free(s);
}

/* A node without a keyring cannot start an operation, and a member that
 * disagrees reports it (here: a use of a key it lacks). */
static void test_keys_refusals(void)
{
    struct sim *s = new_sim(13);
    add(s, &(struct spec){"p", NULL, NULL, 0, false});
    struct outcome o;
    CHECK_EQ(keys(s, 0, NODE_KEYS_LIST, NULL, &o), HS_EUNSUPP);
    CHECK_EQ(keys(s, 0, NODE_KEYS_INSTALL, KEY_A, &o), HS_EUNSUPP);
    add(s, &(struct spec){"a", KEY_A, NULL, 0, false});
    add(s, &(struct spec){"b", KEY_A, NULL, 0, false});
    join(s, 2, 1);
    sim_run(s, 5000);
    /* A cancelled operation never calls back. */
    CHECK_EQ(keys(s, 2, NODE_KEYS_LIST, NULL, &o), 0);
    node_keys_cancel(sim_node(s, 2), on_keys, &o);
    sim_run(s, 1000);
    CHECK_EQ(o.calls, 0);
    /* Install C on a only (a single node's view), then use it
     * everywhere: b lacks it and says so. */
    uint8_t c[KEYRING_KEY_MAX];
    size_t len;
    keyring_parse(KEY_C, c, &len);
    CHECK_EQ(node_keyring_install(sim_node(s, 1), c, len), 0);
    CHECK_EQ(keys(s, 1, NODE_KEYS_USE, KEY_C, &o), 0);
    sim_run(s, 3000);
    CHECK_EQ(o.calls, 1);
    CHECK_EQ(o.nodes, 2);
    CHECK_EQ(o.responses, 2);
    CHECK_EQ(o.errors, 1);
    CHECK(strstr(o.failure, "b: requested key is not in the keyring") != NULL);
    /* a now seals with C, which b cannot open: b refuses a's packets. */
    sim_run(s, 3000);
    CHECK(dropped(s, 2, NODE_DROP_DECRYPT) > 0);
    sim_free(s);
}

/* Switch a running plaintext cluster to encryption without losing a
 * member: install the key with both verify flags off, then turn
 * gossip_verify_outgoing on everywhere, then gossip_verify_incoming. */
static void test_plain_to_encrypted(void)
{
    struct sim *s = new_sim(17);
    const size_t n = 5;
    for (size_t i = 0; i < n; i++) {
        char name[8];
        snprintf(name, sizeof name, "n%zu", i);
        add(s, &(struct spec){name, NULL, NULL, 0, false});
        if (i)
            join(s, i, 0);
    }
    sim_run(s, 6000);
    CHECK(all_alive(s, n));
    struct config c;
    config_defaults(&c, "lan");
    char err[256] = "";
    /* Step 1, node by node: the key, with verification off. */
    snprintf(c.encrypt, sizeof c.encrypt, "%s", KEY_A);
    c.gossip_verify_incoming = c.gossip_verify_outgoing = false;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(node_reconfigure_security(sim_node(s, i), &c, err, sizeof err),
                 0);
        CHECK_EQ(run_watching(s, n, 700), 0);
    }
    CHECK_EQ(node_stats(sim_node(s, 0))->msgs_out[WIRE_ENCRYPT], 0);
    /* Step 2: everyone encrypts, everyone still accepts plaintext. */
    c.gossip_verify_outgoing = true;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(node_reconfigure_security(sim_node(s, i), &c, err, sizeof err),
                 0);
        CHECK_EQ(run_watching(s, n, 700), 0);
    }
    /* Step 3: plaintext is refused. */
    c.gossip_verify_incoming = true;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(node_reconfigure_security(sim_node(s, i), &c, err, sizeof err),
                 0);
        CHECK_EQ(run_watching(s, n, 700), 0);
    }
    CHECK_EQ(run_watching(s, n, 10000), 0);
    for (size_t i = 0; i < n; i++) {
        const struct node_stats *st = node_stats(sim_node(s, i));
        CHECK(st->msgs_out[WIRE_ENCRYPT] > 0);
        CHECK_EQ(st->dropped[NODE_DROP_DECRYPT], 0);
        CHECK_EQ(st->dropped[NODE_DROP_PLAINTEXT], 0);
    }
    /* Now a plaintext node is kept out. */
    size_t p = add(s, &(struct spec){"plain", NULL, NULL, 0, false});
    join(s, p, 0);
    CHECK_EQ(run_watching(s, n, 8000), 0);
    CHECK_EQ(state_at(s, 0, "plain"), -1);
    /* A bad key in a reload changes nothing. */
    snprintf(c.encrypt, sizeof c.encrypt, "not-a-key");
    c.gossip_verify_incoming = false;
    CHECK_EQ(node_reconfigure_security(sim_node(s, 0), &c, err, sizeof err),
             HS_EINVAL);
    CHECK(strstr(err, "not-a-key") == NULL);
    CHECK(node_config(sim_node(s, 0))->gossip_verify_incoming);
    config_free(&c);
    sim_free(s);
}

/* Bytes no key opens, or that claim a label falsely, are dropped
 * without harm. */
static void test_bad_packets(void)
{
    struct sim *s = new_sim(19);
    add(s, &(struct spec){"a", KEY_A, "x", 0, false});
    sim_run(s, 100);
    struct node *nd = sim_node(s, 0);
    struct hs_addr from;
    CHECK_EQ(addr_parse("10.9.9.9:7946", 7946, &from), 0);
    static const uint8_t cases[][8] = {
        {0xf4},                  /* label header cut short */
        {0xf4, 0},               /* empty label */
        {0xf4, 5, 'x'},          /* label longer than the packet */
        {0xf4, 1, 'y', 1, 2, 3}, /* another label */
        {0xf4, 1, 'x', 2, 0, 0}, /* unsupported encryption version */
        {0xf4, 1, 'x', 1, 0, 0}, /* too short to be encrypted */
        {0xf4, 1, 'x'},          /* nothing after the label */
    };
    const size_t lens[] = {1, 2, 3, 6, 6, 6, 3};
    for (size_t i = 0; i < HS_ARRAY_LEN(cases); i++)
        node_io_packet(nd, &from, cases[i], lens[i]);
    CHECK_EQ(dropped(s, 0, NODE_DROP_LABEL), 4);
    CHECK_EQ(dropped(s, 0, NODE_DROP_PLAINTEXT), 1); /* version 2 */
    CHECK_EQ(dropped(s, 0, NODE_DROP_DECRYPT), 2);
    /* Random bytes after a good label. */
    uint8_t junk[200];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    junk[0] = 0xf4;
    junk[1] = 1;
    junk[2] = 'x';
    junk[3] = 1;
    node_io_packet(nd, &from, junk, sizeof junk);
    CHECK_EQ(dropped(s, 0, NODE_DROP_DECRYPT), 3);
    CHECK_EQ(members_count(node_members(nd)), 1);
    sim_free(s);
}

int main(int argc, char **argv)
{
    (void)argv;
    verbose = argc > 1;
    RUN(test_vectors_udp);
    RUN(test_vectors_stream_and_label);
    RUN(test_every_key);
    RUN(test_bad_blobs);
    RUN(test_ring_rules);
    RUN(test_parse);
    RUN(test_encrypted_cluster);
    RUN(test_version0);
    RUN(test_labels);
    RUN(test_rotation);
    RUN(test_keys_refusals);
    RUN(test_plain_to_encrypted);
    RUN(test_bad_packets);
    return test_report("test_keyring");
}
