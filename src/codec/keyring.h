/* keyring.h: memberlist's keyring and its AES-GCM message encryption
 * (shared reference section 7; memberlist keyring.go and security.go).
 *
 * Pure: no clock, no randomness of its own (the caller passes the nonce,
 * from the node's io random function), no I/O. A keyring is an ordered
 * list of keys of 16, 24 or 32 bytes (AES-128, -192, -256); element 0 is
 * the primary, the only key that encrypts; decryption tries every key in
 * order. The keyring owns copies of its keys and wipes them when they go.
 *
 * Encrypted blob: `vsn:u8 | nonce:12 | ciphertext | tag:16`. Version 1
 * (protocol >= 2) seals the message as it is; version 0 (protocol 1)
 * pads it with PKCS#7 to a multiple of 16 first. The additional
 * authenticated data is the label for packets, and for a stream message
 * its 5 header bytes `0a|len` followed by the label. */
#ifndef HS_KEYRING_H
#define HS_KEYRING_H

#include "base/buf.h"

#define KEYRING_MAX 32     /* keys in one ring */
#define KEYRING_KEY_MAX 32 /* bytes of the largest key */
#define KEYRING_NONCE 12
#define KEYRING_TAG 16
#define KEYRING_OVERHEAD_V1 29  /* version, nonce, tag */
#define KEYRING_OVERHEAD_V0 45  /* and up to 16 bytes of padding */
#define KEYRING_STREAM_HEADER 5 /* 0a | length:u32 */

struct keyring {
    uint8_t key[KEYRING_MAX][KEYRING_KEY_MAX];
    uint8_t len[KEYRING_MAX];
    size_t n;
};

/* True for 16, 24 and 32. */
bool keyring_key_len_ok(size_t len);
/* Decode a key given in base64 (serf keygen's form): 0 with the bytes in
 * key[0..*len), or HS_EINVAL when it is not base64 of 16, 24 or 32
 * bytes. The text is never copied anywhere else. */
int keyring_parse(const char *b64, uint8_t key[KEYRING_KEY_MAX], size_t *len);
/* The base64 form of a key: out needs 45 bytes. */
void keyring_format(const uint8_t *key, size_t len, char out[45]);
/* A key from a passphrase: SHA-256 of its bytes (32 bytes, AES-256). It
 * is only as strong as the passphrase. */
void keyring_from_passphrase(const char *pass, size_t n,
                             uint8_t key[KEYRING_KEY_MAX]);

/* Clear memory that held a secret (the compiler may not skip it). */
void keyring_wipe(void *p, size_t n);

void keyring_init(struct keyring *kr);
/* Wipe every key. */
void keyring_clear(struct keyring *kr);
static inline bool keyring_empty(const struct keyring *kr)
{
    return kr->n == 0;
}
/* memberlist AddKey: install a key for decryption; the first key of an
 * empty ring becomes its primary; a key already there is left as it is.
 * HS_EINVAL for a bad length, HS_ETOOBIG when the ring is full. */
int keyring_add(struct keyring *kr, const uint8_t *key, size_t len);
/* memberlist UseKey: make an installed key the primary (HS_ENOTFOUND
 * when it is not installed). */
int keyring_use(struct keyring *kr, const uint8_t *key, size_t len);
/* memberlist RemoveKey: HS_ESTATE for the primary key; a key that is not
 * installed is no error. */
int keyring_remove(struct keyring *kr, const uint8_t *key, size_t len);
/* Index of an installed key, or -1. */
int keyring_find(const struct keyring *kr, const uint8_t *key, size_t len);

/* Encryption version for a memberlist protocol version, and its largest
 * overhead in bytes. */
static inline int keyring_version(int protocol_version)
{
    return protocol_version == 1 ? 0 : 1;
}
static inline size_t keyring_overhead(int vsn)
{
    return vsn == 0 ? KEYRING_OVERHEAD_V0 : KEYRING_OVERHEAD_V1;
}
/* Length of the blob for a message of n bytes. */
size_t keyring_sealed_len(int vsn, size_t n);

/* Append the blob of msg sealed with the primary key to out (msg must
 * not lie inside out). HS_ESTATE when the ring is empty, HS_EIO if the
 * cipher fails. */
int keyring_seal(const struct keyring *kr, int vsn,
                 const uint8_t nonce[KEYRING_NONCE], const uint8_t *aad,
                 size_t aadlen, const uint8_t *msg, size_t n, struct buf *out);
/* Open a blob with the first key that authenticates it; the plaintext is
 * appended to out. HS_EBADMSG for a bad version or a short blob (with
 * *why), HS_EREFUSED when no installed key opens it, HS_ESTATE for an
 * empty ring. `*used` (may be NULL) gets the index of the key. */
int keyring_open(const struct keyring *kr, const uint8_t *aad, size_t aadlen,
                 const uint8_t *blob, size_t n, struct buf *out, int *used,
                 const char **why);

/* A stream message `0a | len:u32 | blob` with the 5 header bytes and the
 * label as the additional data, appended to out. */
int keyring_seal_stream(const struct keyring *kr, int vsn,
                        const uint8_t nonce[KEYRING_NONCE],
                        const uint8_t *label, size_t labellen,
                        const uint8_t *msg, size_t n, struct buf *out);
/* Open a whole stream message (p[0] = 0a, then the length and exactly
 * that many bytes): the plaintext is appended to out. Errors as
 * keyring_open. */
int keyring_open_stream(const struct keyring *kr, const uint8_t *label,
                        size_t labellen, const uint8_t *p, size_t n,
                        struct buf *out, const char **why);

#endif
