/* keyfile.c: serf's keyring file (a JSON array of base64 keys). */
#include "agent/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#define KEYFILE_MAX (64u << 10) /* far more than KEYRING_MAX keys need */

static int fail(char *err, size_t errlen, int rc, const char *what,
                const char *path, const char *why)
{
    snprintf(err, errlen, "keyring file %s: %s%s%s", path, what,
             why ? ": " : "", why ? why : "");
    return rc;
}

int keyfile_load(const char *path, struct keyring *kr, char *err, size_t errlen)
{
    keyring_clear(kr);
    /* O_NONBLOCK: opening a FIFO would wait for a writer, for good. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? HS_ENOTFOUND
                               : fail(err, errlen, HS_EIO, "cannot open it",
                                      path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errlen, HS_EIO, "not a regular file", path, NULL);
    }
    char *text = hs_malloc(KEYFILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (text && n < KEYFILE_MAX &&
           (r = read(fd, text + n, KEYFILE_MAX - n)) > 0)
        n += (size_t)r;
    int e = errno;
    close(fd);
    if (text == NULL)
        return fail(err, errlen, HS_ENOMEM, "out of memory", path, NULL);
    if (r < 0) {
        hs_free(text);
        return fail(err, errlen, HS_EIO, "cannot read it", path, strerror(e));
    }
    if (n == KEYFILE_MAX) {
        hs_free(text);
        return fail(err, errlen, HS_ETOOBIG, "too large", path, NULL);
    }
    text[n] = '\0';
    cJSON *doc = cJSON_ParseWithLength(text, n);
    keyring_wipe(text, n);
    hs_free(text);
    int rc = 0;
    const cJSON *it;
    if (!cJSON_IsArray(doc)) {
        rc = fail(err, errlen, HS_EINVAL, "not a JSON array of base64 keys",
                  path, NULL);
    } else {
        size_t i = 0;
        cJSON_ArrayForEach (it, doc) {
            uint8_t key[KEYRING_KEY_MAX];
            size_t len;
            i++;
            if (!cJSON_IsString(it) ||
                keyring_parse(it->valuestring, key, &len)) {
                snprintf(err, errlen,
                         "keyring file %s: entry %zu is not a "
                         "base64-encoded key of 16, 24 or 32 bytes",
                         path, i);
                rc = HS_EINVAL;
                break;
            }
            rc = keyring_add(kr, key, len);
            keyring_wipe(key, sizeof key);
            if (rc) {
                fail(err, errlen, rc, "more keys than a keyring holds", path,
                     NULL);
                break;
            }
        }
        if (rc == 0 && keyring_empty(kr))
            rc =
                fail(err, errlen, HS_EINVAL, "it contains no keys", path, NULL);
    }
    /* The parsed strings held the keys too. */
    if (cJSON_IsArray(doc))
        cJSON_ArrayForEach (it, doc)
            if (cJSON_IsString(it))
                keyring_wipe(it->valuestring, strlen(it->valuestring));
    cJSON_Delete(doc);
    if (rc)
        keyring_clear(kr);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int keyfile_save(const char *path, const struct keyring *kr, char *err,
                 size_t errlen)
{
    /* serf writes MarshalIndent(keys, "", "  "): one key per line. */
    size_t cap = 8 + kr->n * 56;
    char *text = hs_malloc(cap), tmp[4200];
    if (text == NULL)
        return fail(err, errlen, HS_ENOMEM, "out of memory", path, NULL);
    size_t o = (size_t)snprintf(text, cap, "[");
    for (size_t i = 0; i < kr->n; i++) {
        char b64[45];
        keyring_format(kr->key[i], kr->len[i], b64);
        o += (size_t)snprintf(text + o, cap - o, "%s\n  \"%s\"", i ? "," : "",
                              b64);
        keyring_wipe(b64, sizeof b64);
    }
    o += (size_t)snprintf(text + o, cap - o, "%s]\n", kr->n ? "\n" : "");
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        keyring_wipe(text, cap);
        hs_free(text);
        return fail(err, errlen, HS_EINVAL, "path too long", path, NULL);
    }
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) || write_all(fd, text, o) || fsync(fd)) {
        rc =
            fail(err, errlen, HS_EIO, "cannot write it", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    } else if (close(fd) || rename(tmp, path)) {
        rc = fail(err, errlen, HS_EIO, "cannot replace it", path,
                  strerror(errno));
        unlink(tmp);
    } else {
        /* The rename itself must reach the disk. */
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", path);
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    keyring_wipe(text, cap);
    hs_free(text);
    return rc;
}
