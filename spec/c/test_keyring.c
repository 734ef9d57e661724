/* test_keyring.c: the keyring and AES-GCM against the reference's worked
 * examples (section 7.4), and the keyring rules of memberlist. */
#include "test.h"

#include "../../src/keyring.h"

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
    CHECK_EQ(keyring_seal(&kr, 1, nonce, (const uint8_t *)"prod", 4, ping,
                          plen, &b), 0);
    CHECK_MEM(b.data, b.len, lab, llen);
    buf_reset(&b);
    CHECK_EQ(keyring_open(&kr, (const uint8_t *)"prod", 4, lab + 6, llen - 6,
                          &b, NULL, &why), 0);
    CHECK_MEM(b.data, b.len, ping, plen);
    /* Another label, or none, does not open it. */
    buf_reset(&b);
    CHECK_EQ(keyring_open(&kr, (const uint8_t *)"test", 4, lab + 6,
                          llen - 6, &b, NULL, &why), HS_EREFUSED);
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
    CHECK_EQ(keyring_seal(&other, 1, nonce, NULL, 0, msg, sizeof msg,
                          &sealed), 0);
    CHECK_EQ(keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &b, NULL,
                          &why), HS_EREFUSED);
    CHECK(why && strstr(why, "no installed key"));
    /* ...until it has that key, as its second. */
    CHECK_EQ(keyring_add(&kr, k32, 32), 0);
    CHECK_EQ(keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &b, &used,
                          &why), 0);
    CHECK_EQ(used, 1);
    CHECK_MEM(b.data, b.len, msg, sizeof msg);
    /* AES-192 round trip, with additional data. */
    CHECK_EQ(keyring_use(&other, k24, 24), 0);
    buf_reset(&sealed);
    buf_reset(&b);
    CHECK_EQ(keyring_seal(&other, 0, nonce, (const uint8_t *)"x", 1, msg,
                          sizeof msg, &sealed), 0);
    CHECK_EQ(sealed.len, keyring_sealed_len(0, sizeof msg));
    CHECK_EQ(keyring_open(&other, (const uint8_t *)"x", 1, sealed.data,
                          sealed.len, &b, &used, &why), 0);
    CHECK_EQ(used, 0);
    CHECK_MEM(b.data, b.len, msg, sizeof msg);
    /* Any flipped bit is refused: version byte aside, every byte is
     * covered by the tag. */
    for (size_t i = 1; i < sealed.len; i++) {
        sealed.data[i] ^= 0x40;
        buf_reset(&b);
        CHECK_EQ(keyring_open(&other, (const uint8_t *)"x", 1, sealed.data,
                              sealed.len, &b, NULL, &why), HS_EREFUSED);
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
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 0, &b, NULL, &why),
             HS_EBADMSG);
    blob[0] = 2; /* unknown version */
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 64, &b, NULL, &why),
             HS_EBADMSG);
    blob[0] = 1; /* shorter than version, nonce and tag */
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 28, &b, NULL, &why),
             HS_EBADMSG);
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 29, &b, NULL, &why),
             HS_EREFUSED);
    blob[0] = 0; /* version 0 needs room for a padding block */
    CHECK_EQ(keyring_open(&kr, NULL, 0, blob, 44, &b, NULL, &why),
             HS_EBADMSG);
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
    CHECK_EQ(keyring_open(&kr, NULL, 0, sealed.data, sealed.len, &b, NULL,
                          &why), HS_EBADMSG);
    CHECK(why && strstr(why, "padding"));
    /* Stream framing: the length must match what follows. */
    buf_reset(&sealed);
    CHECK_EQ(keyring_seal_stream(&kr, 1, nonce, NULL, 0, msg, 16, &sealed),
             0);
    CHECK_EQ(keyring_open_stream(&kr, NULL, 0, sealed.data, sealed.len - 1,
                                 &b, &why), HS_EBADMSG);
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
    CHECK_EQ(keyring_parse("sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs=",
                           key, &len), 0);
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
                           "AAAA", key, &len), HS_EINVAL);
    /* A passphrase: SHA-256 of its bytes. */
    keyring_from_passphrase("abc", 3, key);
    keyring_format(key, 32, text);
    CHECK(!strcmp(text, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="));
}

int main(void)
{
    RUN(test_vectors_udp);
    RUN(test_vectors_stream_and_label);
    RUN(test_every_key);
    RUN(test_bad_blobs);
    RUN(test_ring_rules);
    RUN(test_parse);
    return test_report("test_keyring");
}
