/* fuzz.c: the pieces the libFuzzer targets share (see fuzz.h). */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/codec/keyring.h"
#include "../../src/core/members.h"
#include "../../src/core/metadata.h"
#include "../../src/core/node.h"

/* ===== Reading what we are lent ===== */

static volatile uint8_t sink_byte;

void fuzz_touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= b[i];
    sink_byte ^= x;
}

static void touch_member(const struct member *m)
{
    fuzz_touch(m->name, m->name_len + 1); /* and its NUL */
    fuzz_touch(m->meta, m->meta_len);
    fuzz_touch(m->vsn, sizeof m->vsn);
}

static bool starts(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

/* ===== Hooks ===== */

static int h_node_meta(void *ud, size_t limit, struct buf *out)
{
    (void)ud;
    static const char meta[] = "\xff\x81\xa4role\xa4"
                               "fuzz";
    if (limit < sizeof meta - 1)
        return HS_ETOOBIG;
    return buf_append(out, meta, sizeof meta - 1);
}

static void h_on_member(void *ud, int event, const struct member *m)
{
    (void)ud;
    (void)event;
    touch_member(m);
}

static void h_on_message(void *ud, const char *from, size_t fromlen,
                         const uint8_t *p, size_t n)
{
    (void)ud;
    fuzz_touch(from, fromlen);
    fuzz_touch(p, n);
}

static int h_allow_member(void *ud, const struct member *c, char *why,
                          size_t whylen)
{
    (void)ud;
    touch_member(c);
    if (starts(c->name, c->name_len, "deny")) {
        snprintf(why, whylen, "name %s is denied", c->name);
        return HS_EREFUSED;
    }
    return 0;
}

static int h_allow_merge(void *ud, const struct member *const *ms, size_t n,
                         char *why, size_t whylen)
{
    (void)ud;
    for (size_t i = 0; i < n; i++) {
        touch_member(ms[i]);
        if (starts(ms[i]->name, ms[i]->name_len, "deny")) {
            snprintf(why, whylen, "name %s is denied", ms[i]->name);
            return HS_EREFUSED;
        }
    }
    return 0;
}

static void h_on_conflict(void *ud, const struct member *existing,
                          const struct member *other)
{
    (void)ud;
    touch_member(existing);
    touch_member(other);
}

static int h_ack_payload(void *ud, struct buf *out)
{
    (void)ud;
    return buf_append(out, "\x01\x80", 2);
}

static void h_on_ping(void *ud, const struct member *m, uint64_t rtt_ms,
                      const uint8_t *payload, size_t n)
{
    (void)ud;
    (void)rtt_ms;
    touch_member(m);
    fuzz_touch(payload, n);
}

static void touch_change(const struct meta_change *c)
{
    fuzz_touch(c->key, c->keylen);
    fuzz_touch(c->value, c->len);
    fuzz_touch(c->old, c->oldlen);
    fuzz_touch(c->origin, c->originlen);
}

static int h_validate_metadata(void *ud, const struct meta_change *c, char *why,
                               size_t whylen)
{
    (void)ud;
    touch_change(c);
    if (starts(c->key, c->keylen, "ro/")) {
        snprintf(why, whylen, "read-only key");
        return HS_EREFUSED;
    }
    return 0;
}

static void h_on_metadata(void *ud, const struct meta_change *c)
{
    (void)ud;
    touch_change(c);
}

static int h_local_state(void *ud, bool join, struct buf *out)
{
    (void)ud;
    return buf_append(out, join ? "join-state" : "state", join ? 10 : 5);
}

static void h_merge_remote_state(void *ud, const uint8_t *p, size_t n,
                                 bool join)
{
    (void)ud;
    (void)join;
    fuzz_touch(p, n);
}

const struct hooks fuzz_hooks = {
    .node_meta = h_node_meta,
    .on_member = h_on_member,
    .on_message = h_on_message,
    .allow_member = h_allow_member,
    .allow_merge = h_allow_merge,
    .on_conflict = h_on_conflict,
    .ack_payload = h_ack_payload,
    .on_ping = h_on_ping,
    .validate_metadata = h_validate_metadata,
    .on_metadata = h_on_metadata,
    .local_state = h_local_state,
    .merge_remote_state = h_merge_remote_state,
};

/* ===== Logging =====
 * FUZZ_LOG=1 in the environment prints every line (to replay an input
 * and see what the nodes did). */

static bool print_log(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("FUZZ_LOG");
        on = v && *v && strcmp(v, "0") != 0;
    }
    return on;
}

static void log_line(void *ud, int level, const char *msg)
{
    (void)ud;
    fuzz_touch(msg, strlen(msg));
    if (print_log())
        fprintf(stderr, "%-5s %s\n", hs_log_level_name(level), msg);
}

const struct hs_logger fuzz_logger = {HS_LOG_DEBUG, log_line, NULL};

static void sim_line(void *ud, const char *node, uint64_t now, int level,
                     const char *msg)
{
    (void)ud;
    fuzz_touch(node, strlen(node));
    fuzz_touch(msg, strlen(msg));
    if (print_log())
        fprintf(stderr, "%8.3f %s %-5s %s\n", (double)now / 1000.0, node,
                hs_log_level_name(level), msg);
}

/* ===== The cluster ===== */

void fuzz_config(struct config *c, const char *name)
{
    if (config_defaults(c, "lan"))
        abort();
    snprintf(c->name, sizeof c->name, "%s", name);
    c->tcp_timeout = 2000;
    c->max_stream_size = 1u << 20;
    c->max_decompressed_size = 1u << 20;
    c->metadata_max_value = 64u << 10;
    c->reconnect_interval = 500; /* so that failed members are retried */
    /* Every simulated address, and some the input may announce, pass. */
    if (config_list_add(&c->cidrs_allowed, "10.0.0.0/8"))
        abort();
}

static void must(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "fuzz: %s: %s\n", what, hs_strerror(rc));
        abort();
    }
}

static void put(struct sim *s, size_t idx, const char *key, const void *v,
                size_t n, bool del)
{
    char why[128];
    struct metadata *md = node_metadata(sim_node(s, idx));
    must(metadata_put(md, key, strlen(key), v, n, del, why, sizeof why, NULL),
         key);
}

/* The capture's key (serf -encrypt) and the reference's test key. */
static const char capture_key[] =
    "sKOo038zlyFGsBEoybPg6A2PeT8fqPX+IaqVdp4RjYs=";
static const uint8_t test_key[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                     8, 9, 10, 11, 12, 13, 14, 15};
#define LABEL "prod"

void fuzz_secure_config(struct config *c, unsigned flags)
{
    snprintf(c->encrypt, sizeof c->encrypt, "%s", capture_key);
    if (flags & FUZZ_LABEL)
        snprintf(c->label, sizeof c->label, "%s", LABEL);
    c->gossip_verify_incoming = !(flags & FUZZ_PLAIN_OK);
    c->skip_inbound_label_check = flags & FUZZ_SKIP_LABEL;
}

static struct sim *build(const unsigned *flags)
{
    struct sim *s;
    must(sim_new(1, &s), "sim_new");
    sim_set_log(s, HS_LOG_DEBUG, sim_line, NULL);
    static const char *const names[] = {"a", "b"};
    for (size_t i = 0; i < 2; i++) {
        struct config c;
        size_t idx;
        fuzz_config(&c, names[i]);
        if (flags)
            fuzz_secure_config(&c, *flags);
        must(sim_add(s, &c, &fuzz_hooks, &idx), "sim_add");
        config_free(&c);
        if (flags)
            must(node_keyring_install(sim_node(s, idx), test_key,
                                      sizeof test_key),
                 "keyring");
    }
    struct hs_addr a = sim_addr(s, FUZZ_A);
    must(node_join(sim_node(s, FUZZ_B), &a, NULL, 1, NULL, NULL), "join");
    sim_run(s, 20);
    /* Written after the join's state sync, so that the two stores differ
     * and the next exchange has something to repair. */
    static uint8_t big[1500];
    memset(big, 'x', sizeof big);
    put(s, FUZZ_A, "app/one", "1", 1, false);
    put(s, FUZZ_A, "app/big", big, sizeof big, false);
    put(s, FUZZ_A, "app/gone", "g", 1, false);
    put(s, FUZZ_A, "app/gone", NULL, 0, true);
    put(s, FUZZ_B, "app/one", "2", 1, false);
    put(s, FUZZ_B, "app/two", "b", 1, false);
    must(node_broadcast(sim_node(s, FUZZ_A), "rumor", 5), "broadcast");
    return s;
}

struct sim *fuzz_cluster(void)
{
    return build(NULL);
}

struct sim *fuzz_secure_cluster(unsigned flags)
{
    return build(&flags);
}

void fuzz_wrap(unsigned flags, bool stream, const uint8_t *p, size_t n,
               struct buf *out)
{
    static const uint8_t nonce[KEYRING_NONCE] = {1, 2, 3, 4,  5,  6,
                                                 7, 8, 9, 10, 11, 12};
    const uint8_t *label = (const uint8_t *)LABEL;
    size_t labellen = flags & FUZZ_LABEL ? strlen(LABEL) : 0;
    if (flags & FUZZ_ADD_LABEL) {
        buf_putc(out, 0xf4);
        buf_putc(out, (uint8_t)strlen(LABEL));
        buf_append(out, LABEL, strlen(LABEL));
    }
    if (!(flags & FUZZ_SEAL)) {
        buf_append(out, p, n);
        return;
    }
    struct keyring kr;
    uint8_t key[KEYRING_KEY_MAX];
    size_t keylen;
    keyring_init(&kr);
    must(keyring_parse(capture_key, key, &keylen), "key");
    must(keyring_add(&kr, key, keylen), "key");
    int vsn = flags & FUZZ_SEAL_V0 ? 0 : 1;
    if (stream)
        must(keyring_seal_stream(&kr, vsn, nonce, label, labellen, p, n, out),
             "seal");
    else
        must(keyring_seal(&kr, vsn, nonce, label, labellen, p, n, out), "seal");
    keyring_clear(&kr);
}

void fuzz_check_leaks(const char *where)
{
    long live = hs_mem_live();
    if (live != 0) {
        fprintf(stderr, "fuzz: %ld blocks still live after %s\n", live, where);
        abort();
    }
}

void fuzz_free(struct sim *s)
{
    sim_free(s);
    fuzz_check_leaks("sim_free");
}

/* ===== Files ===== */

static char temp_dir[256];

void fuzz_temp_clear(void)
{
    if (temp_dir[0] == '\0')
        return;
    DIR *d = opendir(temp_dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof p, "%s/%s", temp_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
}

static void remove_temp_dir(void)
{
    fuzz_temp_clear();
    rmdir(temp_dir);
}

const char *fuzz_temp_dir(void)
{
    if (temp_dir[0] == '\0') {
        /* In memory when there is a tmpfs: the keyring file is fsynced
         * at every save. */
        const char *tmp = getenv("TMPDIR");
        if ((tmp == NULL || *tmp == '\0') && access("/dev/shm", W_OK) == 0)
            tmp = "/dev/shm";
        snprintf(temp_dir, sizeof temp_dir, "%s/hearsay-fuzz-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(temp_dir) == NULL) {
            perror("mkdtemp");
            abort();
        }
        atexit(remove_temp_dir);
    }
    return temp_dir;
}

const char *fuzz_temp_file(const char *name, const void *p, size_t n)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", fuzz_temp_dir(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) {
            perror(path);
            abort();
        }
        b += w;
        n -= (size_t)w;
    }
    close(fd);
    return path;
}
