/* config.c: defaults, profiles, parsing and validation of struct config. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "codec/keyring.h"
#include "base/log.h"

/* ===== The key table ===== */

struct key {
    struct config_key_info info;
    size_t off;
    int64_t min, max;            /* for ints, durations and sizes */
    const char *const *choices;  /* for enums, NULL-terminated */
    size_t len;                  /* for strings: buffer size */
};

static const char *const transports[] = {"udp", "tcp", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error",
                                     "off", NULL};
static const char *const profiles[] = {"lan", "wan", "local", NULL};

#define OFF(f) offsetof(struct config, f)
#define DAY (24ull * 3600 * 1000)

static const struct key keys[] = {
    {{"name", NULL, "Name", CONFIG_STRING,
      "Unique node name in the cluster (default: the host name)."},
     OFF(name), 0, 0, NULL, CONFIG_NAME_MAX + 1},
    {{"profile", NULL, NULL, CONFIG_ENUM,
      "Timing profile: lan, wan or local (memberlist's DefaultLANConfig, "
      "DefaultWANConfig, DefaultLocalConfig)."},
     OFF(profile), 0, 0, profiles, 16},
    {{"bind", "listen_addr", "BindAddr/BindPort", CONFIG_ADDR,
      "Address and port to listen on, UDP and TCP (default "
      "0.0.0.0:7946)."},
     OFF(bind), 0, 0, NULL, CONFIG_STR_MAX},
    {{"advertise", NULL, "AdvertiseAddr/AdvertisePort", CONFIG_ADDR,
      "Address and port other nodes use to reach this one (default: the "
      "bind address, or the first non-loopback address when bound to "
      "0.0.0.0)."},
     OFF(advertise), 0, 0, NULL, CONFIG_STR_MAX},
    {{"transport", "protocol", NULL, CONFIG_ENUM,
      "udp (memberlist-compatible: probes and gossip over UDP, state sync "
      "over TCP) or tcp (every message over TCP; only hearsay peers with "
      "transport tcp understand it)."},
     OFF(transport), 0, 0, transports, 0},
    {{"join", "start_join", NULL, CONFIG_LIST,
      "Addresses to join at start-up (host:port, host, or name/host:port; "
      "--join, serf's start_join): tried once, and when no join succeeds "
      "the agent exits with status 1 (serf's -join). For seeds that may "
      "come up later, use retry_join."},
     OFF(join), 0, 0, NULL, 0},
    {{"retry_join", NULL, NULL, CONFIG_LIST,
      "Addresses to join at start-up and again every retry_interval until "
      "a join succeeds (--retry-join, serf's retry_join); host names are "
      "resolved again at each attempt."},
     OFF(retry_join), 0, 0, NULL, 0},
    {{"retry_interval", NULL, NULL, CONFIG_DURATION,
      "Time between retry_join attempts (--retry-interval, serf's "
      "retry_interval; default 30s, at least 1s)."},
     OFF(retry_interval), 1000, (int64_t)DAY, NULL, 0},
    {{"retry_max", NULL, NULL, CONFIG_INT,
      "Retries of retry_join after the first attempt before the agent "
      "gives up and exits with status 1 (--retry-max, serf's retry_max); "
      "0 = retry forever (default 0)."},
     OFF(retry_max), 0, 1000000, NULL, 0},
    {{"protocol_version", NULL, "ProtocolVersion", CONFIG_INT,
      "memberlist protocol version spoken, 1 to 5 (default 2)."},
     OFF(protocol_version), 1, 5, NULL, 0},
    {{"delegate_protocol_min", NULL, "DelegateProtocolMin", CONFIG_INT,
      "Lowest delegate protocol understood (default 2, as Serf; 0 for "
      "plain memberlist clusters)."},
     OFF(delegate_protocol_min), 0, 255, NULL, 0},
    {{"delegate_protocol_max", NULL, "DelegateProtocolMax", CONFIG_INT,
      "Highest delegate protocol understood (default 5, as Serf; 0 for "
      "plain memberlist clusters)."},
     OFF(delegate_protocol_max), 0, 255, NULL, 0},
    {{"delegate_protocol_version", NULL, "DelegateProtocolVersion",
      CONFIG_INT,
      "Delegate protocol spoken (default 5, as the Serf agent; 0 for plain "
      "memberlist clusters)."},
     OFF(delegate_protocol_version), 0, 255, NULL, 0},
    {{"tcp_timeout", NULL, "TCPTimeout", CONFIG_DURATION,
      "Timeout of a TCP connection and its exchange (lan 10s, wan 30s, "
      "local 1s)."},
     OFF(tcp_timeout), 1, (int64_t)DAY, NULL, 0},
    {{"indirect_checks", NULL, "IndirectChecks", CONFIG_INT,
      "Nodes asked to probe a node that missed its direct probe (lan 3, "
      "wan 3, local 1)."},
     OFF(indirect_checks), 0, 64, NULL, 0},
    {{"retransmit_mult", NULL, "RetransmitMult", CONFIG_INT,
      "Retransmits of each broadcast: retransmit_mult * ceil(log10(n+1)) "
      "(lan 4, wan 4, local 2)."},
     OFF(retransmit_mult), 1, 100, NULL, 0},
    {{"suspicion_mult", NULL, "SuspicionMult", CONFIG_INT,
      "Suspicion timeout: suspicion_mult * max(1, log10(n)) * "
      "probe_interval (lan 4, wan 6, local 3)."},
     OFF(suspicion_mult), 1, 100, NULL, 0},
    {{"suspicion_max_timeout_mult", NULL, "SuspicionMaxTimeoutMult",
      CONFIG_INT,
      "Upper bound of the suspicion timeout as a multiple of the lower "
      "bound, before confirmations shorten it (default 6)."},
     OFF(suspicion_max_timeout_mult), 1, 100, NULL, 0},
    {{"push_pull_interval", NULL, "PushPullInterval", CONFIG_DURATION,
      "Full state sync with one random node, scaled up past 32 nodes; 0 "
      "turns it off (lan 30s, wan 60s, local 15s)."},
     OFF(push_pull_interval), 0, (int64_t)DAY, NULL, 0},
    {{"probe_interval", NULL, "ProbeInterval", CONFIG_DURATION,
      "Time between failure-detector probes (lan 1s, wan 5s, local 1s)."},
     OFF(probe_interval), 1, (int64_t)DAY, NULL, 0},
    {{"probe_timeout", NULL, "ProbeTimeout", CONFIG_DURATION,
      "Wait for a direct ack before indirect probes (lan 500ms, wan 3s, "
      "local 200ms)."},
     OFF(probe_timeout), 1, (int64_t)DAY, NULL, 0},
    {{"disable_tcp_pings", NULL, "DisableTcpPings", CONFIG_BOOL,
      "Turn off the TCP fallback ping of failed probes (default false)."},
     OFF(disable_tcp_pings), 0, 0, NULL, 0},
    {{"awareness_max_multiplier", NULL, "AwarenessMaxMultiplier",
      CONFIG_INT,
      "Lifeguard: the probe interval stretches up to this multiple while "
      "the node itself seems unhealthy (default 8)."},
     OFF(awareness_max_multiplier), 1, 100, NULL, 0},
    {{"gossip_interval", "cycle", "GossipInterval", CONFIG_DURATION,
      "Time between gossip rounds (lan 200ms, wan 500ms, local 100ms)."},
     OFF(gossip_interval), 1, (int64_t)DAY, NULL, 0},
    {{"gossip_nodes", "fanout", "GossipNodes", CONFIG_INT,
      "Nodes gossiped to in each round (lan 3, wan 4, local 3)."},
     OFF(gossip_nodes), 0, 1024, NULL, 0},
    {{"gossip_to_the_dead_time", "node_timeout", "GossipToTheDeadTime",
      CONFIG_DURATION,
      "How long a dead node still gets gossip, and stays listed before "
      "it is removed (lan 30s, wan 60s, local 15s)."},
     OFF(gossip_to_the_dead_time), 0, (int64_t)DAY, NULL, 0},
    {{"enable_compression", NULL, "EnableCompression", CONFIG_BOOL,
      "Compress messages with LZW when it makes them smaller; streams "
      "always (default true)."},
     OFF(enable_compression), 0, 0, NULL, 0},
    {{"udp_buffer_size", "packet_size", "UDPBufferSize", CONFIG_INT,
      "Largest UDP packet we send, in bytes (default 1400)."},
     OFF(udp_buffer_size), 256, 65000, NULL, 0},
    {{"dead_node_reclaim_time", NULL, "DeadNodeReclaimTime",
      CONFIG_DURATION,
      "After this long a dead node's name may come back at another "
      "address; 0 = only once it is removed (default 0)."},
     OFF(dead_node_reclaim_time), 0, (int64_t)DAY * 365, NULL, 0},
    {{"require_node_names", NULL, "RequireNodeNames", CONFIG_BOOL,
      "Join addresses must carry the node name (name/host:port) "
      "(default false)."},
     OFF(require_node_names), 0, 0, NULL, 0},
    {{"cidrs_allowed", NULL, "CIDRsAllowed", CONFIG_LIST,
      "Only nodes with an address in these networks may be members; "
      "empty = all (default empty)."},
     OFF(cidrs_allowed), 0, 0, NULL, 0},
    {{"encrypt", NULL, "SecretKey", CONFIG_STRING,
      "Encryption key: base64 of 16, 24 or 32 random bytes (hearsay "
      "keygen or serf keygen makes one), as serf's -encrypt. Packets and "
      "streams are then sealed with AES-GCM and only nodes holding the "
      "key can join; empty = no encryption (default empty). Reloadable "
      "while no key is installed yet."},
     OFF(encrypt), 0, 0, NULL, CONFIG_STR_MAX},
    {{"encrypt_passphrase", "secret_key", NULL, CONFIG_STRING,
      "A passphrase instead of encrypt (pekonode's SecretKey): the key is "
      "the SHA-256 of its bytes (32 bytes, AES-256). Only as strong as the "
      "passphrase, so weaker than a random key (default empty)."},
     OFF(encrypt_passphrase), 0, 0, NULL, CONFIG_STR_MAX},
    {{"keyring_file", NULL, NULL, CONFIG_STRING,
      "Serf's keyring file, a JSON array of base64 keys, primary first "
      "(--keyring FILE): loaded at start-up when it exists (encrypt is "
      "then ignored), created from encrypt otherwise, and rewritten "
      "atomically whenever the keyring changes (default empty)."},
     OFF(keyring_file), 0, 0, NULL, CONFIG_STR_MAX},
    {{"gossip_verify_incoming", NULL, "GossipVerifyIncoming", CONFIG_BOOL,
      "With a key installed, drop whatever is not encrypted with an "
      "installed key; false also accepts plaintext, for switching a "
      "running cluster to encryption (default true). Reloadable."},
     OFF(gossip_verify_incoming), 0, 0, NULL, 0},
    {{"gossip_verify_outgoing", NULL, "GossipVerifyOutgoing", CONFIG_BOOL,
      "With a key installed, encrypt everything we send; false sends "
      "plaintext, for switching a running cluster to encryption (default "
      "true). Reloadable."},
     OFF(gossip_verify_outgoing), 0, 0, NULL, 0},
    {{"label", NULL, "Label", CONFIG_STRING,
      "A cluster label (at most 255 bytes) put before every packet and at "
      "the start of every stream, and authenticated with the key when "
      "encrypting; traffic with another label or none is dropped. Serf "
      "0.9 (memberlist 0.2) does not understand labels (default empty). "
      "Reloadable."},
     OFF(label), 0, 0, NULL, CONFIG_LABEL_MAX + 1},
    {{"skip_inbound_label_check", NULL, "SkipInboundLabelCheck",
      CONFIG_BOOL,
      "Take unlabelled traffic as carrying our label, and drop labelled "
      "traffic (memberlist's SkipInboundLabelCheck; default false). "
      "Reloadable."},
     OFF(skip_inbound_label_check), 0, 0, NULL, 0},
    {{"leave_timeout", NULL, NULL, CONFIG_DURATION,
      "Longest wait for our leave message to spread on a graceful leave "
      "(default 5s)."},
     OFF(leave_timeout), 0, (int64_t)DAY, NULL, 0},
    {{"reconnect_interval", NULL, NULL, CONFIG_DURATION,
      "How often to try to reach one failed member again (Serf's "
      "ReconnectInterval), so that a cluster split by a partition joins "
      "up again once it heals; 0 turns it off (default 30s)."},
     OFF(reconnect_interval), 0, (int64_t)DAY, NULL, 0},
    {{"reconnect_timeout", NULL, NULL, CONFIG_DURATION,
      "How long a failed member is tried again before it is forgotten "
      "(Serf's ReconnectTimeout, default 24h)."},
     OFF(reconnect_timeout), 0, (int64_t)DAY * 3650, NULL, 0},
    {{"metadata_max_value", NULL, NULL, CONFIG_SIZE,
      "Largest value of a cluster metadata key (default 1MiB)."},
     OFF(metadata_max_value), 0, INT64_C(1) << 30, NULL, 0},
    {{"metadata_max_skew", NULL, NULL, CONFIG_DURATION,
      "How far ahead of our clock a metadata version may run; a write "
      "further ahead waits until our clock catches up (default 1m)."},
     OFF(metadata_max_skew), 0, (int64_t)DAY * 365, NULL, 0},
    {{"metadata_tombstone_ttl", NULL, NULL, CONFIG_DURATION,
      "How long a deleted metadata key is remembered, so that an old "
      "copy cannot bring it back (default 24h)."},
     OFF(metadata_tombstone_ttl), 1000, (int64_t)DAY * 3650, NULL, 0},
    {{"data_dir", NULL, NULL, CONFIG_STRING,
      "Directory for the log and snapshots of the metadata store and for "
      "the members; a write is acknowledged once it is on disk there; "
      "empty = none, nothing is kept across restarts (default empty)."},
     OFF(data_dir), 0, 0, NULL, CONFIG_STR_MAX},
    {{"snapshot_threshold", NULL, NULL, CONFIG_SIZE,
      "With a data dir: compact the log into a new snapshot once it "
      "holds this many bytes, or as many as the last snapshot if that is "
      "more (default 64MiB)."},
     OFF(snapshot_threshold), 4096, INT64_C(1) << 40, NULL, 0},
    {{"scripts", "script", NULL, CONFIG_LIST,
      "Lua hook scripts to load at start-up, in order (--script FILE, "
      "repeatable)."},
     OFF(scripts), 0, 0, NULL, 0},
    {{"script_budget", NULL, NULL, CONFIG_INT,
      "Most Lua VM instructions one hook call may run before it is "
      "stopped, and (outside a simulation) 50 ns of wall-clock time per "
      "instruction; 0 = no limit (default 10000000: 10 million, half a "
      "second)."},
     OFF(script_budget), 0, INT64_C(1) << 40, NULL, 0},
    {{"script_memory", NULL, NULL, CONFIG_SIZE,
      "Most memory the scripts' Lua state may hold; going over it is an "
      "error in that hook (default 64MiB)."},
     OFF(script_memory), 1 << 20, INT64_C(1) << 40, NULL, 0},
    {{"script_watchdog", NULL, NULL, CONFIG_DURATION,
      "How long one script call may hold the event loop (stuck in a C "
      "function or a blocking call, which the budget cannot stop) before "
      "the agent logs an error and exits with status 1, for its "
      "supervisor to restart it; 0 = only warn (default 30s)."},
     OFF(script_watchdog), 0, (int64_t)DAY, NULL, 0},
    {{"log_level", NULL, NULL, CONFIG_ENUM,
      "debug (protocol traffic), info (membership events), warn, error or "
      "off (default info)."},
     OFF(log_level), 0, 0, levels, 0},
    {{"print_events", "print", NULL, CONFIG_BOOL,
      "pekonode's IsPrint: true logs membership events (log_level info), "
      "false only warnings."},
     OFF(log_level), 0, 0, NULL, 0},
    {{"control", NULL, NULL, CONFIG_ADDR,
      "Address of the control endpoint the CLI talks to (default "
      "127.0.0.1:7374, or $HEARSAY_CONTROL)."},
     OFF(control), 0, 0, NULL, CONFIG_STR_MAX},
    {{"control_token", NULL, NULL, CONFIG_STRING,
      "A secret every control request must carry (hearsay --token, or "
      "$HEARSAY_CONTROL_TOKEN, as consul's CONSUL_HTTP_TOKEN); empty = "
      "none (default empty). Put it in a config file rather than on a "
      "command line."},
     OFF(control_token), 0, 0, NULL, CONFIG_STR_MAX},
    {{"control_idle_timeout", NULL, NULL, CONFIG_DURATION,
      "A control connection that completes no request for this long is "
      "closed (a kv watch or a request under way is not idle); the first "
      "request must come within 10s, or this if shorter (default 60s)."},
     OFF(control_idle_timeout), 100, (int64_t)DAY, NULL, 0},
    {{"metrics", NULL, NULL, CONFIG_ADDR,
      "Address (ip:port) of the Prometheus endpoint, HTTP GET /metrics; "
      "empty = off (default empty). It has no authentication: keep it on "
      "loopback."},
     OFF(metrics), 0, 0, NULL, CONFIG_STR_MAX},
    {{"max_stream_size", NULL, NULL, CONFIG_SIZE,
      "Largest message accepted on a TCP stream (default 20MiB)."},
     OFF(max_stream_size), 1024, INT64_C(1) << 32, NULL, 0},
    {{"max_push_pull_nodes", NULL, NULL, CONFIG_INT,
      "Most node states accepted in one push/pull (default 1048576)."},
     OFF(max_push_pull_nodes), 1, INT64_C(1) << 24, NULL, 0},
    {{"max_inbound_streams", NULL, NULL, CONFIG_INT,
      "Most inbound TCP streams handled at once; more are refused "
      "(default 128)."},
     OFF(max_inbound_streams), 1, 65536, NULL, 0},
    {{"max_decompressed_size", NULL, NULL, CONFIG_SIZE,
      "Largest size a compressed stream message may expand to (default "
      "40MiB)."},
     OFF(max_decompressed_size), 1024, INT64_C(1) << 32, NULL, 0},
    {{"max_inbound_streams_per_ip", NULL, NULL, CONFIG_INT,
      "Most inbound TCP connections open at once from one IP address "
      "(transport tcp's packet connections aside); more are closed at "
      "accept (default 32)."},
     OFF(max_inbound_streams_per_ip), 1, 65536, NULL, 0},
    {{"max_new_members", NULL, NULL, CONFIG_INT,
      "Most members one IP address may add at once to the member table, "
      "by state sync or gossip; joins asked for here are not limited; 0 "
      "= no limit (default 32)."},
     OFF(max_new_members), 0, INT64_C(1) << 24, NULL, 0},
    {{"new_member_rate", NULL, NULL, CONFIG_INT,
      "Members per second one IP address may add once it used "
      "max_new_members (default 1)."},
     OFF(new_member_rate), 0, INT64_C(1) << 24, NULL, 0},
};

#define NKEYS HS_ARRAY_LEN(keys)

size_t config_key_count(void)
{
    return NKEYS;
}

const struct config_key_info *config_key(size_t i)
{
    return i < NKEYS ? &keys[i].info : NULL;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (!strcmp(keys[i].info.name, name))
            return &keys[i];
        if (keys[i].info.alias && !strcmp(keys[i].info.alias, name))
            return &keys[i];
    }
    return NULL;
}

/* ===== Defaults ===== */

static void set_timings(struct config *c, const char *profile)
{
    /* LAN: memberlist DefaultLANConfig. */
    c->tcp_timeout = 10000;
    c->indirect_checks = 3;
    c->retransmit_mult = 4;
    c->suspicion_mult = 4;
    c->suspicion_max_timeout_mult = 6;
    c->push_pull_interval = 30000;
    c->probe_interval = 1000;
    c->probe_timeout = 500;
    c->disable_tcp_pings = false;
    c->awareness_max_multiplier = 8;
    c->gossip_interval = 200;
    c->gossip_nodes = 3;
    c->gossip_to_the_dead_time = 30000;
    if (!strcmp(profile, "wan")) {
        c->tcp_timeout = 30000;
        c->suspicion_mult = 6;
        c->push_pull_interval = 60000;
        c->probe_interval = 5000;
        c->probe_timeout = 3000;
        c->gossip_nodes = 4;
        c->gossip_interval = 500;
        c->gossip_to_the_dead_time = 60000;
    } else if (!strcmp(profile, "local")) {
        c->tcp_timeout = 1000;
        c->indirect_checks = 1;
        c->retransmit_mult = 2;
        c->suspicion_mult = 3;
        c->push_pull_interval = 15000;
        c->probe_timeout = 200;
        c->gossip_interval = 100;
        c->gossip_to_the_dead_time = 15000;
    }
    snprintf(c->profile, sizeof c->profile, "%s", profile);
}

static bool known_profile(const char *p)
{
    for (int i = 0; profiles[i]; i++)
        if (!strcmp(profiles[i], p))
            return true;
    return false;
}

int config_defaults(struct config *c, const char *profile)
{
    if (profile == NULL)
        profile = "lan";
    if (!known_profile(profile))
        return HS_EINVAL;
    memset(c, 0, sizeof *c);
    if (gethostname(c->name, sizeof c->name - 1) != 0)
        snprintf(c->name, sizeof c->name, "hearsay");
    snprintf(c->bind, sizeof c->bind, "0.0.0.0:7946");
    c->transport = TRANSPORT_UDP;
    c->protocol_version = 2;
    c->delegate_protocol_min = 2;
    c->delegate_protocol_max = 5;
    c->delegate_protocol_version = 5;
    c->enable_compression = true;
    c->udp_buffer_size = 1400;
    c->dead_node_reclaim_time = 0;
    c->require_node_names = false;
    c->gossip_verify_incoming = true;
    c->gossip_verify_outgoing = true;
    c->leave_timeout = 5000;
    c->reconnect_interval = 30000;
    c->reconnect_timeout = 24ull * 3600 * 1000;
    c->log_level = HS_LOG_INFO;
    c->script_budget = 10000000;
    c->metadata_max_value = 1u << 20;
    c->snapshot_threshold = 64u << 20;
    c->metadata_max_skew = 60000;
    c->metadata_tombstone_ttl = 24ull * 3600 * 1000;
    c->script_memory = 64u << 20;
    c->script_watchdog = 30000;
    snprintf(c->control, sizeof c->control, "127.0.0.1:7374");
    c->control_idle_timeout = 60000;
    c->retry_interval = 30000;
    c->max_stream_size = 20u << 20;
    c->max_push_pull_nodes = 1u << 20;
    c->max_inbound_streams = 128;
    c->max_decompressed_size = 40u << 20;
    c->max_inbound_streams_per_ip = 32;
    c->max_new_members = 32;
    c->new_member_rate = 1;
    set_timings(c, profile);
    return 0;
}

int config_apply_profile(struct config *c, const char *profile)
{
    if (profile == NULL || !known_profile(profile))
        return HS_EINVAL;
    set_timings(c, profile);
    return 0;
}

/* ===== Parsing ===== */

int config_parse_duration(const char *s, uint64_t *ms)
{
    if (s == NULL || *s == '\0')
        return HS_EINVAL;
    char *end;
    /* A plain number is milliseconds. */
    errno = 0;
    unsigned long long plain = strtoull(s, &end, 10);
    if (*end == '\0' && s[0] != '-' && errno == 0) {
        *ms = plain;
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.')
            return HS_EINVAL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno)
            return HS_EINVAL;
        p = end;
        double unit;
        if (!strncmp(p, "ns", 2)) {
            unit = 1e-6;
            p += 2;
        } else if (!strncmp(p, "us", 2)) {
            unit = 1e-3;
            p += 2;
        } else if (!strncmp(p, "ms", 2)) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60000;
            p++;
        } else if (*p == 'h') {
            unit = 3600000;
            p++;
        } else {
            return HS_EINVAL;
        }
        total += v * unit;
    }
    if (!(total >= 0) || total > 1e15)
        return HS_EINVAL;
    *ms = (uint64_t)floor(total);
    return 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    if (s == NULL || *s == '\0' || *s == '-')
        return HS_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return HS_EINVAL;
    uint64_t mult = 1;
    if (*end) {
        if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") ||
            !strcasecmp(end, "kib"))
            mult = 1024;
        else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") ||
                 !strcasecmp(end, "mib"))
            mult = 1024 * 1024;
        else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") ||
                 !strcasecmp(end, "gib"))
            mult = 1024ull * 1024 * 1024;
        else if (!strcasecmp(end, "b"))
            mult = 1;
        else
            return HS_EINVAL;
    }
    if (v > UINT64_MAX / mult)
        return HS_EINVAL;
    *bytes = v * mult;
    return 0;
}

int config_parse_bool(const char *s, bool *v)
{
    if (s == NULL)
        return HS_EINVAL;
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on")) {
        *v = true;
        return 0;
    }
    if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off")) {
        *v = false;
        return 0;
    }
    return HS_EINVAL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return HS_EINVAL;
}

static void list_clear(struct config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        hs_free(l->v[i]);
    l->n = 0;
}

static int check_range(const struct key *k, int64_t v, char *err,
                       size_t errlen)
{
    if (v < k->min || v > k->max)
        return fail(err, errlen, "%s: %lld is out of range [%lld, %lld]",
                    k->info.name, (long long)v, (long long)k->min,
                    (long long)k->max);
    return 0;
}

int config_set(struct config *c, const char *name, const char *value,
               char *err, size_t errlen)
{
    const struct key *k = find_key(name);
    if (k == NULL)
        return fail(err, errlen, "unknown configuration key \"%s\"", name);
    if (value == NULL)
        return fail(err, errlen, "%s: missing value", name);
    void *f = (char *)c + k->off;
    switch (k->info.kind) {
    case CONFIG_STRING:
        if (strlen(value) >= k->len)
            return fail(err, errlen, "%s: longer than %zu bytes", name,
                        k->len - 1);
        snprintf(f, k->len, "%s", value);
        return 0;
    case CONFIG_ADDR: {
        char host[CONFIG_STR_MAX];
        uint16_t port;
        if (strlen(value) >= k->len)
            return fail(err, errlen, "%s: address too long", name);
        if (*value && addr_split(value, host, sizeof host, &port, 7946))
            return fail(err, errlen,
                        "%s: \"%s\" is not host:port or [ipv6]:port",
                        k->info.name, value);
        snprintf(f, k->len, "%s", value);
        return 0;
    }
    case CONFIG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno)
            return fail(err, errlen, "%s: \"%s\" is not an integer",
                        k->info.name, value);
        if (check_range(k, v, err, errlen))
            return HS_EINVAL;
        if (k->off == OFF(max_push_pull_nodes) ||
            k->off == OFF(script_budget))
            *(uint64_t *)f = (uint64_t)v;
        else
            *(int *)f = (int)v;
        return 0;
    }
    case CONFIG_DURATION: {
        uint64_t ms;
        if (config_parse_duration(value, &ms))
            return fail(err, errlen,
                        "%s: \"%s\" is not a duration such as 500ms, 2s "
                        "or 1m30s",
                        k->info.name, value);
        if (check_range(k, (int64_t)HS_MIN(ms, (uint64_t)INT64_MAX), err,
                        errlen))
            return HS_EINVAL;
        *(uint64_t *)f = ms;
        return 0;
    }
    case CONFIG_SIZE: {
        uint64_t b;
        if (config_parse_size(value, &b))
            return fail(err, errlen,
                        "%s: \"%s\" is not a size such as 65536, 64KiB or "
                        "20MiB",
                        k->info.name, value);
        if (check_range(k, (int64_t)HS_MIN(b, (uint64_t)INT64_MAX), err,
                        errlen))
            return HS_EINVAL;
        *(uint64_t *)f = b;
        return 0;
    }
    case CONFIG_BOOL: {
        bool v;
        if (config_parse_bool(value, &v))
            return fail(err, errlen, "%s: \"%s\" is not true or false",
                        k->info.name, value);
        if (k->off == OFF(log_level)) /* print_events */
            c->log_level = v ? HS_LOG_INFO : HS_LOG_WARN;
        else
            *(bool *)f = v;
        return 0;
    }
    case CONFIG_ENUM:
        for (int i = 0; k->choices[i]; i++) {
            if (strcasecmp(k->choices[i], value))
                continue;
            if (k->off == OFF(profile))
                return config_apply_profile(c, k->choices[i]);
            if (k->off == OFF(log_level))
                *(int *)f = hs_log_level_parse(value);
            else
                *(int *)f = i;
            return 0;
        }
        if (k->off == OFF(log_level) && hs_log_level_parse(value) >= 0) {
            *(int *)f = hs_log_level_parse(value);
            return 0;
        }
        {
            char opts[128] = "";
            for (int i = 0; k->choices[i]; i++) {
                strncat(opts, i ? ", " : "", sizeof opts - strlen(opts) - 1);
                strncat(opts, k->choices[i], sizeof opts - strlen(opts) - 1);
            }
            return fail(err, errlen, "%s: \"%s\" is not one of %s",
                        k->info.name, value, opts);
        }
    case CONFIG_LIST: {
        struct config_list *l = f;
        if (*value == '\0') {
            list_clear(l);
            return 0;
        }
        if (k->off == OFF(cidrs_allowed)) {
            struct hs_cidr cidr;
            if (cidr_parse(value, &cidr))
                return fail(err, errlen,
                            "cidrs_allowed: \"%s\" is not a CIDR such as "
                            "10.0.0.0/8",
                            value);
        }
        if (l->n >= CONFIG_LIST_MAX)
            return fail(err, errlen, "%s: more than %d entries",
                        k->info.name, CONFIG_LIST_MAX);
        char *dup = hs_strndup(value, strlen(value));
        if (dup == NULL)
            return HS_ENOMEM;
        l->v[l->n++] = dup;
        return 0;
    }
    }
    return HS_EINVAL;
}

int config_get(const struct config *c, const char *name, char *out,
               size_t outlen)
{
    const struct key *k = find_key(name);
    if (k == NULL)
        return HS_ENOTFOUND;
    const void *f = (const char *)c + k->off;
    switch (k->info.kind) {
    case CONFIG_STRING:
    case CONFIG_ADDR:
        snprintf(out, outlen, "%s", (const char *)f);
        break;
    case CONFIG_INT:
        if (k->off == OFF(max_push_pull_nodes) ||
            k->off == OFF(script_budget))
            snprintf(out, outlen, "%llu",
                     (unsigned long long)*(const uint64_t *)f);
        else
            snprintf(out, outlen, "%d", *(const int *)f);
        break;
    case CONFIG_DURATION: {
        uint64_t ms = *(const uint64_t *)f;
        if (ms && ms % 1000 == 0)
            snprintf(out, outlen, "%llus", (unsigned long long)(ms / 1000));
        else
            snprintf(out, outlen, "%llums", (unsigned long long)ms);
        break;
    }
    case CONFIG_SIZE:
        snprintf(out, outlen, "%llu",
                 (unsigned long long)*(const uint64_t *)f);
        break;
    case CONFIG_BOOL:
        if (k->off == OFF(log_level))
            snprintf(out, outlen, "%s",
                     c->log_level <= HS_LOG_INFO ? "true" : "false");
        else
            snprintf(out, outlen, "%s",
                     *(const bool *)f ? "true" : "false");
        break;
    case CONFIG_ENUM:
        if (k->off == OFF(profile))
            snprintf(out, outlen, "%s", c->profile);
        else if (k->off == OFF(log_level))
            snprintf(out, outlen, "%s", levels[HS_MIN(c->log_level, 4)]);
        else
            snprintf(out, outlen, "%s", k->choices[*(const int *)f]);
        break;
    case CONFIG_LIST: {
        const struct config_list *l = f;
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < l->n && o < outlen; i++)
            o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? "," : "",
                                  l->v[i]);
        break;
    }
    }
    return 0;
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (c->name[0] == '\0')
        return fail(err, errlen, "name: must not be empty");
    struct hs_addr a;
    char host[CONFIG_STR_MAX];
    uint16_t port;
    if (addr_parse(c->bind, 7946, &a))
        return fail(err, errlen, "bind: \"%s\" is not ip:port", c->bind);
    if (c->advertise[0] &&
        addr_split(c->advertise, host, sizeof host, &port, a.port))
        return fail(err, errlen, "advertise: \"%s\" is not host:port",
                    c->advertise);
    if (addr_parse(c->control, 7374, &a))
        return fail(err, errlen,
                    "control: \"%s\" is not ip:port (the control endpoint "
                    "binds a numeric address)", c->control);
    if (c->metrics[0] && (addr_parse(c->metrics, 0, &a) || a.port == 0))
        return fail(err, errlen,
                    "metrics: \"%s\" is not ip:port (the metrics endpoint "
                    "binds a numeric address and a port)", c->metrics);
    if (c->delegate_protocol_min > c->delegate_protocol_max ||
        c->delegate_protocol_version < c->delegate_protocol_min ||
        c->delegate_protocol_version > c->delegate_protocol_max)
        return fail(err, errlen,
                    "delegate_protocol_version %d must lie within "
                    "[delegate_protocol_min %d, delegate_protocol_max %d]",
                    c->delegate_protocol_version, c->delegate_protocol_min,
                    c->delegate_protocol_max);
    uint8_t key[32];
    size_t keylen;
    if (c->encrypt[0] && c->encrypt_passphrase[0])
        return fail(err, errlen,
                    "give encrypt or encrypt_passphrase, not both");
    if (config_secret_key(c, key, &keylen))
        return fail(err, errlen,
                    "encrypt: not a base64-encoded key of 16, 24 or 32 "
                    "bytes (hearsay keygen makes one)");
    keyring_wipe(key, sizeof key);
    /* Room for a message after the label and the largest encryption
     * overhead (version 0). */
    size_t overhead = (c->label[0] ? 2 + strlen(c->label) : 0) + 45;
    if ((size_t)c->udp_buffer_size < overhead + 128)
        return fail(err, errlen,
                    "udp_buffer_size %d leaves too little room for a "
                    "message after the label and encryption overhead "
                    "(%zu bytes): use at least %zu",
                    c->udp_buffer_size, overhead, overhead + 128);
    if (c->probe_timeout > c->probe_interval)
        return fail(err, errlen,
                    "probe_timeout (%llums) must not exceed probe_interval "
                    "(%llums)",
                    (unsigned long long)c->probe_timeout,
                    (unsigned long long)c->probe_interval);
    return 0;
}

int config_secret_key(const struct config *c, uint8_t key[32], size_t *len)
{
    *len = 0;
    if (c->encrypt_passphrase[0]) {
        keyring_from_passphrase(c->encrypt_passphrase,
                                strlen(c->encrypt_passphrase), key);
        *len = 32;
        return 0;
    }
    if (c->encrypt[0])
        return keyring_parse(c->encrypt, key, len);
    return 0;
}

void config_free(struct config *c)
{
    keyring_wipe(c->encrypt, sizeof c->encrypt);
    keyring_wipe(c->encrypt_passphrase, sizeof c->encrypt_passphrase);
    keyring_wipe(c->control_token, sizeof c->control_token);
    list_clear(&c->join);
    list_clear(&c->retry_join);
    list_clear(&c->cidrs_allowed);
    list_clear(&c->scripts);
}

int config_list_add(struct config_list *l, const char *value)
{
    if (l->n >= CONFIG_LIST_MAX)
        return HS_ETOOBIG;
    char *dup = hs_strndup(value, strlen(value));
    if (dup == NULL)
        return HS_ENOMEM;
    l->v[l->n++] = dup;
    return 0;
}

void config_list_truncate(struct config_list *l, size_t n)
{
    while (l->n > n)
        hs_free(l->v[--l->n]);
}

static int list_copy(struct config_list *d, const struct config_list *s)
{
    d->n = 0;
    for (size_t i = 0; i < s->n; i++) {
        d->v[i] = hs_strndup(s->v[i], strlen(s->v[i]));
        if (d->v[i] == NULL)
            return HS_ENOMEM;
        d->n++;
    }
    return 0;
}

int config_copy(struct config *dst, const struct config *src)
{
    *dst = *src;
    dst->join.n = dst->cidrs_allowed.n = dst->scripts.n = 0;
    dst->retry_join.n = 0;
    if (list_copy(&dst->join, &src->join) ||
        list_copy(&dst->retry_join, &src->retry_join) ||
        list_copy(&dst->cidrs_allowed, &src->cidrs_allowed) ||
        list_copy(&dst->scripts, &src->scripts)) {
        config_free(dst);
        return HS_ENOMEM;
    }
    return 0;
}
