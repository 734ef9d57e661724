/* keyring.c: libFuzzer target for serf's keyring file (keyfile_load).
 *
 * The input is the file's content. Whatever it holds, the load fails
 * with a sentence that never holds a key, or gives a keyring of at most
 * KEYRING_MAX keys of 16, 24 or 32 bytes; a keyring loaded is saved
 * (keyfile_save) and loaded again, which must give the same keys in the
 * same order. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/agent/keyfile.h"
#include "../../src/codec/keyring.h"

static void check_keys(const struct keyring *kr)
{
    if (kr->n == 0 || kr->n > KEYRING_MAX) {
        fprintf(stderr, "keyring: %zu keys loaded\n", kr->n);
        abort();
    }
    for (size_t i = 0; i < kr->n; i++) {
        if (kr->len[i] != 16 && kr->len[i] != 24 && kr->len[i] != 32) {
            fprintf(stderr, "keyring: a key of %u bytes\n",
                    (unsigned)kr->len[i]);
            abort();
        }
        fuzz_touch(kr->key[i], kr->len[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keyring kr, back;
    char err[600];
    keyring_init(&kr);
    keyring_init(&back);
    const char *path = fuzz_temp_file("keyring", data, size);
    int rc = keyfile_load(path, &kr, err, sizeof err);
    if (rc) {
        if (rc == HS_ENOTFOUND || strstr(err, "keyring file ") != err) {
            fprintf(stderr, "keyring: %s: \"%s\"\n", hs_strerror(rc), err);
            abort();
        }
        fuzz_touch(err, strlen(err));
    } else {
        check_keys(&kr);
        char saved[700];
        snprintf(saved, sizeof saved, "%s/saved", fuzz_temp_dir());
        if (keyfile_save(saved, &kr, err, sizeof err) ||
            keyfile_load(saved, &back, err, sizeof err)) {
            fprintf(stderr, "keyring: round trip: %s\n", err);
            abort();
        }
        bool same = back.n == kr.n;
        for (size_t i = 0; same && i < kr.n; i++)
            same = back.len[i] == kr.len[i] &&
                   !memcmp(back.key[i], kr.key[i], kr.len[i]);
        if (!same) {
            fprintf(stderr,
                    "keyring: %zu keys saved, %zu read back, or "
                    "not the same\n",
                    kr.n, back.n);
            abort();
        }
    }
    keyring_clear(&kr);
    keyring_clear(&back);
    fuzz_check_leaks("keyfile_load");
    return 0;
}
