/* keyring.c: the keyring and AES-GCM sealing of memberlist messages, on
 * OpenSSL's EVP interface. */
#include "codec/keyring.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/text.h"

/* ===== Keys ===== */

bool keyring_key_len_ok(size_t len)
{
    return len == 16 || len == 24 || len == 32;
}

int keyring_parse(const char *b64, uint8_t key[KEYRING_KEY_MAX], size_t *len)
{
    /* Base64 of 32 bytes is 44 characters; anything longer is no key. */
    uint8_t tmp[64];
    size_t n = strlen(b64), got = 0;
    if (n == 0 || n > 48 || text_base64_max(n) > sizeof tmp ||
        text_base64_decode(b64, n, tmp, &got) || !keyring_key_len_ok(got)) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        return HS_EINVAL;
    }
    memcpy(key, tmp, got);
    *len = got;
    OPENSSL_cleanse(tmp, sizeof tmp);
    return 0;
}

void keyring_format(const uint8_t *key, size_t len, char out[45])
{
    text_base64_encode(key, HS_MIN(len, (size_t)KEYRING_KEY_MAX), out);
}

void keyring_from_passphrase(const char *pass, size_t n,
                             uint8_t key[KEYRING_KEY_MAX])
{
    SHA256((const unsigned char *)pass, n, key);
}

void keyring_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void keyring_init(struct keyring *kr)
{
    memset(kr, 0, sizeof *kr);
}

void keyring_clear(struct keyring *kr)
{
    OPENSSL_cleanse(kr, sizeof *kr);
    kr->n = 0;
}

int keyring_find(const struct keyring *kr, const uint8_t *key, size_t len)
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->len[i] == len && CRYPTO_memcmp(kr->key[i], key, len) == 0)
            return (int)i;
    return -1;
}

int keyring_add(struct keyring *kr, const uint8_t *key, size_t len)
{
    if (!keyring_key_len_ok(len))
        return HS_EINVAL;
    if (keyring_find(kr, key, len) >= 0)
        return 0;
    if (kr->n == KEYRING_MAX)
        return HS_ETOOBIG;
    memcpy(kr->key[kr->n], key, len);
    kr->len[kr->n] = (uint8_t)len;
    kr->n++;
    return 0;
}

/* Move entry i to j, shifting the ones between. */
static void move(struct keyring *kr, size_t i, size_t j)
{
    uint8_t k[KEYRING_KEY_MAX], l = kr->len[i];
    memcpy(k, kr->key[i], sizeof k);
    if (i > j) {
        memmove(kr->key[j + 1], kr->key[j], (i - j) * sizeof kr->key[0]);
        memmove(kr->len + j + 1, kr->len + j, i - j);
    } else if (i < j) {
        memmove(kr->key[i], kr->key[i + 1], (j - i) * sizeof kr->key[0]);
        memmove(kr->len + i, kr->len + i + 1, j - i);
    }
    memcpy(kr->key[j], k, sizeof k);
    kr->len[j] = l;
    OPENSSL_cleanse(k, sizeof k);
}

int keyring_use(struct keyring *kr, const uint8_t *key, size_t len)
{
    int i = keyring_find(kr, key, len);
    if (i < 0)
        return HS_ENOTFOUND;
    /* The old primary keeps its place right after the new one, as
     * memberlist's installKeys keeps the rest in order. */
    move(kr, (size_t)i, 0);
    return 0;
}

int keyring_remove(struct keyring *kr, const uint8_t *key, size_t len)
{
    int i = keyring_find(kr, key, len);
    if (i == 0)
        return HS_ESTATE;
    if (i < 0)
        return 0;
    move(kr, (size_t)i, kr->n - 1);
    kr->n--;
    OPENSSL_cleanse(kr->key[kr->n], sizeof kr->key[0]);
    kr->len[kr->n] = 0;
    return 0;
}

/* ===== AES-GCM ===== */

static const EVP_CIPHER *cipher(size_t keylen)
{
    return keylen == 16   ? EVP_aes_128_gcm()
           : keylen == 24 ? EVP_aes_192_gcm()
                          : EVP_aes_256_gcm();
}

size_t keyring_sealed_len(int vsn, size_t n)
{
    if (vsn == 0)
        return 1 + KEYRING_NONCE + n + (16 - n % 16) + KEYRING_TAG;
    return KEYRING_OVERHEAD_V1 + n;
}

/* Seal in[0..n) into out (n bytes, then the tag). */
static int gcm_seal(const uint8_t *key, size_t keylen, const uint8_t *nonce,
                    const uint8_t *aad, size_t aadlen, const uint8_t *in,
                    size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len, ok = ctx != NULL;
    ok = ok && EVP_EncryptInit_ex(ctx, cipher(keylen), NULL, NULL, NULL);
    ok = ok &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KEYRING_NONCE, NULL);
    ok = ok && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce);
    ok = ok &&
         (aadlen == 0 || EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen));
    ok = ok && (n == 0 || EVP_EncryptUpdate(ctx, out, &len, in, (int)n));
    ok = ok && EVP_EncryptFinal_ex(ctx, out + n, &len);
    ok = ok &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KEYRING_TAG, out + n);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : HS_EIO;
}

/* Open ct[0..n) + tag into out (n bytes); false if it does not
 * authenticate with this key. */
static bool gcm_open(const uint8_t *key, size_t keylen, const uint8_t *nonce,
                     const uint8_t *aad, size_t aadlen, const uint8_t *ct,
                     size_t n, const uint8_t *tag, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t t[KEYRING_TAG];
    int len, ok = ctx != NULL;
    memcpy(t, tag, sizeof t);
    ok = ok && EVP_DecryptInit_ex(ctx, cipher(keylen), NULL, NULL, NULL);
    ok = ok &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KEYRING_NONCE, NULL);
    ok = ok && EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce);
    ok = ok &&
         (aadlen == 0 || EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen));
    ok = ok && (n == 0 || EVP_DecryptUpdate(ctx, out, &len, ct, (int)n));
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KEYRING_TAG, t);
    ok = ok && EVP_DecryptFinal_ex(ctx, out + n, &len) > 0;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

int keyring_seal(const struct keyring *kr, int vsn,
                 const uint8_t nonce[KEYRING_NONCE], const uint8_t *aad,
                 size_t aadlen, const uint8_t *msg, size_t n, struct buf *out)
{
    if (kr->n == 0)
        return HS_ESTATE;
    if (n > INT32_MAX - 64 || aadlen > INT32_MAX)
        return HS_ETOOBIG;
    size_t plen = vsn == 0 ? n + (16 - n % 16) : n;
    size_t total = 1 + KEYRING_NONCE + plen + KEYRING_TAG;
    if (buf_reserve(out, total))
        return out->err;
    uint8_t *dst = out->data + out->len;
    dst[0] = (uint8_t)(vsn == 0 ? 0 : 1);
    memcpy(dst + 1, nonce, KEYRING_NONCE);
    uint8_t *body = dst + 1 + KEYRING_NONCE;
    const uint8_t *src = msg;
    if (vsn == 0) {
        /* PKCS#7: always 1 to 16 bytes, each holding the count. Padded
         * in place, then sealed in place. */
        memmove(body, msg, n);
        memset(body + n, (int)(plen - n), plen - n);
        src = body;
    }
    int rc =
        gcm_seal(kr->key[0], kr->len[0], nonce, aad, aadlen, src, plen, body);
    if (rc)
        return rc;
    out->len += total;
    return 0;
}

int keyring_open(const struct keyring *kr, const uint8_t *aad, size_t aadlen,
                 const uint8_t *blob, size_t n, struct buf *out, int *used,
                 const char **why)
{
    if (kr->n == 0)
        return HS_ESTATE;
    if (n == 0 || blob[0] > 1) {
        *why = n ? "unsupported encryption version" : "empty payload";
        return HS_EBADMSG;
    }
    int vsn = blob[0];
    if (n < keyring_sealed_len(vsn, 0)) {
        *why = "payload too short to be encrypted";
        return HS_EBADMSG;
    }
    if (n > INT32_MAX || aadlen > INT32_MAX) {
        *why = "payload too large";
        return HS_ETOOBIG;
    }
    size_t ctlen = n - 1 - KEYRING_NONCE - KEYRING_TAG;
    /* At least a byte, so that an empty message has somewhere to go. */
    if (buf_reserve(out, ctlen ? ctlen : 1))
        return out->err;
    uint8_t *dst = out->data + out->len;
    const uint8_t *nonce = blob + 1, *ct = blob + 1 + KEYRING_NONCE;
    for (size_t i = 0; i < kr->n; i++) {
        if (!gcm_open(kr->key[i], kr->len[i], nonce, aad, aadlen, ct, ctlen,
                      ct + ctlen, dst))
            continue;
        size_t plain = ctlen;
        if (vsn == 0) {
            /* memberlist strips as many bytes as the last one says,
             * unchecked; a count past the start is an error here, not a
             * panic. */
            size_t pad = dst[plain - 1];
            if (pad > plain) {
                *why = "bad padding";
                return HS_EBADMSG;
            }
            plain -= pad;
        }
        out->len += plain;
        if (used)
            *used = (int)i;
        return 0;
    }
    *why = "no installed key decrypts it";
    return HS_EREFUSED;
}

int keyring_seal_stream(const struct keyring *kr, int vsn,
                        const uint8_t nonce[KEYRING_NONCE],
                        const uint8_t *label, size_t labellen,
                        const uint8_t *msg, size_t n, struct buf *out)
{
    if (kr->n == 0)
        return HS_ESTATE;
    size_t blob = keyring_sealed_len(vsn, n);
    if (blob > UINT32_MAX || labellen > 255)
        return HS_ETOOBIG;
    uint8_t aad[KEYRING_STREAM_HEADER + 255];
    aad[0] = 10; /* the encrypt message type */
    hs_put_be32(aad + 1, (uint32_t)blob);
    if (labellen)
        memcpy(aad + KEYRING_STREAM_HEADER, label, labellen);
    size_t start = out->len;
    buf_append(out, aad, KEYRING_STREAM_HEADER);
    int rc = out->err
                 ? out->err
                 : keyring_seal(kr, vsn, nonce, aad,
                                KEYRING_STREAM_HEADER + labellen, msg, n, out);
    if (rc && out->len > start)
        out->len = start;
    return rc;
}

int keyring_open_stream(const struct keyring *kr, const uint8_t *label,
                        size_t labellen, const uint8_t *p, size_t n,
                        struct buf *out, const char **why)
{
    if (n < KEYRING_STREAM_HEADER || p[0] != 10 ||
        hs_be32(p + 1) != n - KEYRING_STREAM_HEADER) {
        *why = "bad encrypted stream header";
        return HS_EBADMSG;
    }
    if (labellen > 255) {
        *why = "label too long";
        return HS_EBADMSG;
    }
    uint8_t aad[KEYRING_STREAM_HEADER + 255];
    memcpy(aad, p, KEYRING_STREAM_HEADER);
    if (labellen)
        memcpy(aad + KEYRING_STREAM_HEADER, label, labellen);
    return keyring_open(kr, aad, KEYRING_STREAM_HEADER + labellen,
                        p + KEYRING_STREAM_HEADER, n - KEYRING_STREAM_HEADER,
                        out, NULL, why);
}
