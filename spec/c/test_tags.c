/* test_tags.c: Serf's tags in private data (codec/tags.c): what serf
 * writes decodes, what we write is what Go's codec writes, and anything
 * else is refused whole. */
#include "test.h"

#include "../../src/codec/tags.h"

static bool tag_is(const struct tag *t, const char *k, const char *v)
{
    return t->keylen == strlen(k) && !memcmp(t->key, k, t->keylen) &&
           t->valuelen == strlen(v) && !memcmp(t->value, v, t->valuelen);
}

static void test_decode_serf(void)
{
    /* role=web, dc=x as serf writes them (fixmap, fixstr) */
    static const uint8_t meta[] = {0xff, 0x82, 0xa4, 'r',  'o', 'l', 'e',  0xa3,
                                   'w',  'e',  'b',  0xa2, 'd', 'c', 0xa1, 'x'};
    struct tag t[TAGS_MAX];
    size_t n;
    CHECK_EQ(tags_decode(meta, sizeof meta, t, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(tag_is(&t[0], "role", "web"));
    CHECK(tag_is(&t[1], "dc", "x"));
    /* str8 and bin: other writers' strings */
    static const uint8_t other[] = {0xff, 0x81, 0xd9, 1,  'k',
                                    0xc4, 2,    'v',  'w'};
    CHECK_EQ(tags_decode(other, sizeof other, t, &n), 0);
    CHECK_EQ(n, 1);
    CHECK(tag_is(&t[0], "k", "vw"));
    /* a key twice: its last value, once */
    static const uint8_t twice[] = {0xff, 0x82, 0xa1, 'k',  0xa1,
                                    '1',  0xa1, 'k',  0xa1, '2'};
    CHECK_EQ(tags_decode(twice, sizeof twice, t, &n), 0);
    CHECK_EQ(n, 1);
    CHECK(tag_is(&t[0], "k", "2"));
    /* no tags: an empty map */
    static const uint8_t none[] = {0xff, 0x80};
    CHECK_EQ(tags_decode(none, sizeof none, t, &n), 0);
    CHECK_EQ(n, 0);
}

static void test_decode_refused(void)
{
    struct tag t[TAGS_MAX];
    size_t n;
    static const uint8_t role[] = {'w', 'e', 'b'}; /* an old Serf's role */
    CHECK_EQ(tags_decode(role, sizeof role, t, &n), HS_ENOTFOUND);
    CHECK_EQ(tags_decode(NULL, 0, t, &n), HS_ENOTFOUND);
    static const uint8_t bad[][8] = {
        {0xff},                               /* no map */
        {0xff, 0x92, 0xa1, 'k', 0xa1, 'v'},   /* an array */
        {0xff, 0x81, 0xa1, 'k', 0x01},        /* a number */
        {0xff, 0x82, 0xa1, 'k', 0xa1, 'v'},   /* cut short */
        {0xff, 0x81, 0xa1, 'k', 0xa3, 'v'},   /* a string cut short */
        {0xff, 0x81, 0xa1, 'k', 0xa1, 'v', 0} /* bytes after the map */
    };
    static const size_t lens[] = {1, 6, 5, 6, 6, 7};
    for (size_t i = 0; i < HS_ARRAY_LEN(lens); i++)
        CHECK_EQ(tags_decode(bad[i], lens[i], t, &n), HS_EBADMSG);
    /* a map that claims more tags than private data can hold */
    static const uint8_t huge[] = {0xff, 0xdf, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ(tags_decode(huge, sizeof huge, t, &n), HS_EBADMSG);
}

static void test_encode(void)
{
    char long_value[40];
    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    struct tag t[3] = {
        {(const uint8_t *)"role", (const uint8_t *)"web", 4, 3},
        {(const uint8_t *)"dc", (const uint8_t *)long_value, 2, 39},
        {(const uint8_t *)"d", (const uint8_t *)"", 1, 0},
    };
    tags_sort(t, 3);
    struct buf b = BUF_INIT;
    tags_encode(t, 3, &b);
    /* sorted keys; fixstr below 32 bytes, then str16 as Go (never str8) */
    uint8_t want[64 + 39];
    size_t w = 0;
    const uint8_t head[] = {0xff, 0x83, 0xa1, 'd',  0xa0, 0xa2,
                            'd',  'c',  0xda, 0x00, 39};
    memcpy(want, head, sizeof head);
    w = sizeof head;
    memcpy(want + w, long_value, 39);
    w += 39;
    const uint8_t tail[] = {0xa4, 'r', 'o', 'l', 'e', 0xa3, 'w', 'e', 'b'};
    memcpy(want + w, tail, sizeof tail);
    w += sizeof tail;
    CHECK_MEM(b.data, b.len, want, w);
    /* and back */
    struct tag d[TAGS_MAX];
    size_t n;
    CHECK_EQ(tags_decode(b.data, b.len, d, &n), 0);
    CHECK_EQ(n, 3);
    CHECK(tag_is(&d[0], "d", ""));
    CHECK(tag_is(&d[1], "dc", long_value));
    CHECK(tag_is(&d[2], "role", "web"));
    buf_free(&b);
}

int main(void)
{
    RUN(test_decode_serf);
    RUN(test_decode_refused);
    RUN(test_encode);
    return test_report("test_tags");
}
