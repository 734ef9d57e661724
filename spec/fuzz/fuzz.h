/* fuzz.h: what the libFuzzer targets under spec/fuzz share: the node
 * configuration, hooks that read every byte they are lent, a two-node
 * cluster on the simulated network with some state to disturb, and a leak
 * check on the runtime's own allocation counter.
 *
 * Every input starts from a fresh cluster built the same way (a fixed
 * seed, a fixed simulated clock), so a crashing input replays exactly. */
#ifndef HS_FUZZ_H
#define HS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "../../src/base/buf.h"
#include "../../src/base/log.h"
#include "../../src/core/config.h"
#include "../../src/core/hooks.h"
#include "../../src/io/sim.h"

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The target node is index 0 ("a"), its peer index 1 ("b"). */
#define FUZZ_A 0
#define FUZZ_B 1

/* A node's configuration for fuzzing: the LAN profile with a short
 * tcp_timeout and smaller size bounds (so that every input finishes
 * quickly), a short reconnect_interval, cidrs_allowed 10.0.0.0/8, and
 * the given name. */
void fuzz_config(struct config *c, const char *name);
/* Hooks that read every byte they are given, write some private data,
 * user state and ack payloads, and refuse some names and keys (a
 * candidate named "deny..." and keys under "ro/"), so that both answers
 * of every hook are reached. */
extern const struct hooks fuzz_hooks;
/* A logger at DEBUG level into a sink that reads the line: every log
 * call formats its arguments, as an agent run with --log-level debug. */
extern const struct hs_logger fuzz_logger;

/* Two nodes that know each other and hold some cluster metadata (a small
 * value, a large one that is only announced, a tombstone, and a key on
 * which they disagree), with a rumor queued. Aborts if the cluster cannot
 * be built. */
struct sim *fuzz_cluster(void);

/* ===== Encryption and labels =====
 * The *_encrypted targets read these flags from their first input byte.
 * Their cluster encrypts with the key of the Serf capture with
 * encryption (so its packets open), and also holds the reference's
 * AES-128 test key (section 7.4) for decryption. */
enum {
    FUZZ_LABEL = 1,      /* both nodes use the label "prod" */
    FUZZ_SEAL = 2,       /* the target seals the input with the primary */
    FUZZ_ADD_LABEL = 4,  /* the target puts the label header in front */
    FUZZ_PLAIN_OK = 8,   /* gossip_verify_incoming = false */
    FUZZ_SEAL_V0 = 16,   /* seal as protocol 1 does (PKCS#7 padding) */
    FUZZ_SKIP_LABEL = 32 /* skip_inbound_label_check = true */
};
struct sim *fuzz_secure_cluster(unsigned flags);
/* That cluster's configuration of encryption and labels. */
void fuzz_secure_config(struct config *c, unsigned flags);
/* The input as the flags say a peer would send it: sealed or not (as a
 * datagram, or as a stream message `0a len blob`), labelled or not. */
void fuzz_wrap(unsigned flags, bool stream, const uint8_t *p, size_t n,
               struct buf *out);

/* Free the cluster and abort if any block of the runtime is still live. */
void fuzz_free(struct sim *s);
/* Abort with a message if the runtime holds blocks it should not. */
void fuzz_check_leaks(const char *where);

/* Read p[0..n) so that the sanitizers check every byte. */
void fuzz_touch(const void *p, size_t n);

/* ===== Files =====
 * A directory of this process's own (under $TMPDIR, else /dev/shm, else
 * /tmp; made at the first call, removed with what is in it at exit),
 * and a file in it holding p[0..n): its
 * path, valid until the next call. For the targets whose code reads a
 * path (config files, the keyring file). */
const char *fuzz_temp_dir(void);
/* Remove the files in it (the directory stays). */
void fuzz_temp_clear(void);
const char *fuzz_temp_file(const char *name, const void *p, size_t n);

#endif
