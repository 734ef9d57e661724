/* config.h: one struct config with memberlist's profiles and every key.
 *
 * Keys have snake_case names (memberlist's Config fields, plus pekonode's
 * names as aliases), a kind, a range and a documented default. Values come
 * from a profile, then a config file, then command-line flags, each set
 * through config_set(). */
#ifndef HS_CONFIG_H
#define HS_CONFIG_H

#include "base/addr.h"

#define CONFIG_NAME_MAX 255
#define CONFIG_STR_MAX 256
#define CONFIG_LIST_MAX 64
#define CONFIG_LABEL_MAX 255 /* memberlist LabelMaxSize */

enum {
    TRANSPORT_UDP,
    TRANSPORT_TCP
};

struct config_list {
    char *v[CONFIG_LIST_MAX];
    size_t n;
};

struct config {
    char name[CONFIG_NAME_MAX + 1];
    char profile[16];
    char bind[CONFIG_STR_MAX];      /* "ip:port" */
    char advertise[CONFIG_STR_MAX]; /* "" = derived from bind */
    int transport;
    struct config_list join;       /* tried once at start-up */
    struct config_list retry_join; /* tried until one join succeeds */
    uint64_t retry_interval;       /* between retry_join attempts */
    int retry_max;                 /* retries before giving up; 0 = none */

    int protocol_version;
    int delegate_protocol_min, delegate_protocol_max, delegate_protocol_version;

    uint64_t tcp_timeout; /* all durations in milliseconds */
    int indirect_checks;
    int retransmit_mult;
    int suspicion_mult;
    int suspicion_max_timeout_mult;
    uint64_t push_pull_interval;
    uint64_t probe_interval;
    uint64_t probe_timeout;
    bool disable_tcp_pings;
    struct config_list disable_tcp_pings_for_node; /* node names */
    int awareness_max_multiplier;
    uint64_t gossip_interval;
    int gossip_nodes;
    uint64_t gossip_to_the_dead_time;
    bool enable_compression;
    int udp_buffer_size;
    int handoff_queue_depth; /* packets the UDP receive buffer holds */
    uint64_t dead_node_reclaim_time;
    bool require_node_names;
    struct config_list cidrs_allowed;

    /* Encryption and labels (keyring.c; memberlist's SecretKey,
     * GossipVerifyIncoming/Outgoing, Label, SkipInboundLabelCheck). The
     * secrets are wiped by config_free. */
    char encrypt[CONFIG_STR_MAX];            /* base64 key, "" = none */
    char encrypt_passphrase[CONFIG_STR_MAX]; /* SHA-256 gives the key */
    char keyring_file[CONFIG_STR_MAX];       /* the agent's; "" = none */
    bool gossip_verify_incoming;
    bool gossip_verify_outgoing;
    char label[CONFIG_LABEL_MAX + 1];
    bool skip_inbound_label_check;

    uint64_t leave_timeout;
    uint64_t reconnect_interval; /* Serf's: retry failed members */
    uint64_t reconnect_timeout;  /* and for how long */
    int log_level;

    /* Cluster metadata (metadata.c). */
    uint64_t metadata_max_value;     /* bytes of one value */
    uint64_t metadata_max_skew;      /* ms a version may run ahead */
    uint64_t metadata_tombstone_ttl; /* ms a delete is remembered */
    char data_dir[CONFIG_STR_MAX];   /* snapshots; "" = none */
    uint64_t snapshot_threshold;     /* log bytes before a snapshot */

    /* Lua hook scripts (the agent; lua/host.c). */
    struct config_list scripts;
    uint64_t script_budget;   /* VM instructions per hook call, 0 = none */
    uint64_t script_memory;   /* bytes the scripts' Lua state may hold */
    uint64_t script_watchdog; /* ms a script call may hold the loop
                               * before the agent exits; 0 = never */
    char control[CONFIG_STR_MAX];
    char control_token[CONFIG_STR_MAX]; /* "" = none */
    uint64_t control_idle_timeout;      /* ms */
    char metrics[CONFIG_STR_MAX];       /* Prometheus endpoint; "" = off */
    struct config_list metric_labels;   /* "name=value", on every metric */

    /* Bounds on what the network controls (section 10.5 and our own). */
    uint64_t max_stream_size;
    uint64_t max_push_pull_nodes;
    int max_inbound_streams;
    uint64_t max_decompressed_size;
    int max_inbound_streams_per_ip;
    /* Growth of the member table by source address (members.c). */
    int max_new_members;
    int new_member_rate;
};

/* Fill with the defaults of profile "lan", "wan" or "local" (memberlist's
 * DefaultLANConfig, DefaultWANConfig, DefaultLocalConfig). HS_EINVAL for
 * another name. The name defaults to the host name. */
int config_defaults(struct config *c, const char *profile);
/* Re-apply a profile's protocol timings, keeping identity settings (name,
 * bind, advertise, join, transport, control, log level). */
int config_apply_profile(struct config *c, const char *profile);
/* Set one key (or alias) from its text form. List keys append; the value
 * "" clears a list. On error writes a sentence to err. */
int config_set(struct config *c, const char *key, const char *value, char *err,
               size_t errlen);
/* Check cross-key rules; on error writes a sentence to err (never a
 * secret's value). */
int config_validate(const struct config *c, char *err, size_t errlen);
/* The encryption key the configuration gives (encrypt, or the SHA-256 of
 * encrypt_passphrase): 0 with its length in *len (0 when there is none),
 * or HS_EINVAL. */
int config_secret_key(const struct config *c, uint8_t key[32], size_t *len);
void config_free(struct config *c);
/* Append a copy of value to a list (HS_ETOOBIG past CONFIG_LIST_MAX). */
int config_list_add(struct config_list *l, const char *value);
/* Drop the entries from index n on. */
void config_list_truncate(struct config_list *l, size_t n);
/* Deep copy (lists are duplicated). */
int config_copy(struct config *dst, const struct config *src);

/* Parse "250ms", "1.5s", "1m30s", "2h" (or a plain number of ms). */
int config_parse_duration(const char *s, uint64_t *ms);
/* Parse "1400", "64KiB", "20MiB", "1G". */
int config_parse_size(const char *s, uint64_t *bytes);
int config_parse_bool(const char *s, bool *v);

/* ===== Introspection (docs, `hearsay agent --help`, specs) ===== */
enum config_kind {
    CONFIG_STRING,
    CONFIG_ADDR,
    CONFIG_INT,
    CONFIG_DURATION,
    CONFIG_SIZE,
    CONFIG_BOOL,
    CONFIG_LIST,
    CONFIG_ENUM
};

struct config_key_info {
    const char *name;
    const char *alias;      /* pekonode's name, or NULL */
    const char *memberlist; /* memberlist's Config field, or NULL */
    enum config_kind kind;
    const char *doc;
};

size_t config_key_count(void);
const struct config_key_info *config_key(size_t i);
/* The value of a key in text form, as config_set accepts it. */
int config_get(const struct config *c, const char *key, char *out,
               size_t outlen);

#endif
