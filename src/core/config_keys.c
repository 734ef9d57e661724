/* config_keys.c: the configuration's key table: each key's name, alias,
 * memberlist name, kind, documentation (docs/configuration.md is made
 * from it, through hearsay.core's config_keys()), field and bounds. */
#include "core/config_int.h"

#include <string.h>

/* ===== The key table ===== */

static const char *const transports[] = {"udp", "tcp", NULL};
const char *const config_levels[] = {"debug", "info", "warn",
                                     "error", "off",  NULL};
const char *const config_profiles[] = {"lan", "wan", "local", NULL};

#define DAY (24ull * 3600 * 1000)

static const struct key keys[] = {
    {{"name", NULL, "Name", CONFIG_STRING,
      "Unique node name in the cluster (default: the host name)."},
     OFF(name),
     0,
     0,
     NULL,
     CONFIG_NAME_MAX + 1},
    {{"profile", NULL, NULL, CONFIG_ENUM,
      "Timing profile: lan, wan or local (memberlist's DefaultLANConfig, "
      "DefaultWANConfig, DefaultLocalConfig)."},
     OFF(profile),
     0,
     0,
     config_profiles,
     16},
    {{"bind", "listen_addr", "BindAddr/BindPort", CONFIG_ADDR,
      "Address and port to listen on, UDP and TCP (default "
      "0.0.0.0:7946)."},
     OFF(bind),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"advertise", NULL, "AdvertiseAddr/AdvertisePort", CONFIG_ADDR,
      "Address and port other nodes use to reach this one (default: the "
      "bind address, or the first non-loopback address when bound to "
      "0.0.0.0)."},
     OFF(advertise),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"transport", "protocol", NULL, CONFIG_ENUM,
      "udp (memberlist-compatible: probes and gossip over UDP, state sync "
      "over TCP) or tcp (every message over TCP; only hearsay peers with "
      "transport tcp understand it)."},
     OFF(transport),
     0,
     0,
     transports,
     0},
    {{"join", "start_join", NULL, CONFIG_LIST,
      "Addresses to join at start-up (host:port, host, or name/host:port; "
      "--join, serf's start_join): tried once, and when no join succeeds "
      "the agent exits with status 1 (serf's -join). For seeds that may "
      "come up later, use retry_join."},
     OFF(join),
     0,
     0,
     NULL,
     0},
    {{"retry_join", NULL, NULL, CONFIG_LIST,
      "Addresses to join at start-up and again every retry_interval until "
      "a join succeeds (--retry-join, serf's retry_join); host names are "
      "resolved again at each attempt."},
     OFF(retry_join),
     0,
     0,
     NULL,
     0},
    {{"retry_interval", NULL, NULL, CONFIG_DURATION,
      "Time between retry_join attempts (--retry-interval, serf's "
      "retry_interval; default 30s, at least 1s)."},
     OFF(retry_interval),
     1000,
     (int64_t)DAY,
     NULL,
     0},
    {{"retry_max", NULL, NULL, CONFIG_INT,
      "Retries of retry_join after the first attempt before the agent "
      "gives up and exits with status 1 (--retry-max, serf's retry_max); "
      "0 = retry forever (default 0)."},
     OFF(retry_max),
     0,
     1000000,
     NULL,
     0},
    {{"protocol_version", NULL, "ProtocolVersion", CONFIG_INT,
      "memberlist protocol version spoken, 1 to 5 (default 2)."},
     OFF(protocol_version),
     1,
     5,
     NULL,
     0},
    {{"delegate_protocol_min", NULL, "DelegateProtocolMin", CONFIG_INT,
      "Lowest delegate protocol understood (default 2, as Serf; 0 for "
      "plain memberlist clusters)."},
     OFF(delegate_protocol_min),
     0,
     255,
     NULL,
     0},
    {{"delegate_protocol_max", NULL, "DelegateProtocolMax", CONFIG_INT,
      "Highest delegate protocol understood (default 5, as Serf; 0 for "
      "plain memberlist clusters)."},
     OFF(delegate_protocol_max),
     0,
     255,
     NULL,
     0},
    {{"delegate_protocol_version", NULL, "DelegateProtocolVersion", CONFIG_INT,
      "Delegate protocol spoken (default 5, as the Serf agent; 0 for plain "
      "memberlist clusters)."},
     OFF(delegate_protocol_version),
     0,
     255,
     NULL,
     0},
    {{"tcp_timeout", NULL, "TCPTimeout", CONFIG_DURATION,
      "Timeout of a TCP connection and its exchange (lan 10s, wan 30s, "
      "local 1s)."},
     OFF(tcp_timeout),
     1,
     (int64_t)DAY,
     NULL,
     0},
    {{"indirect_checks", NULL, "IndirectChecks", CONFIG_INT,
      "Nodes asked to probe a node that missed its direct probe (lan 3, "
      "wan 3, local 1)."},
     OFF(indirect_checks),
     0,
     64,
     NULL,
     0},
    {{"retransmit_mult", NULL, "RetransmitMult", CONFIG_INT,
      "Retransmits of each broadcast: retransmit_mult * ceil(log10(n+1)) "
      "(lan 4, wan 4, local 2)."},
     OFF(retransmit_mult),
     1,
     100,
     NULL,
     0},
    {{"suspicion_mult", NULL, "SuspicionMult", CONFIG_INT,
      "Suspicion timeout: suspicion_mult * max(1, log10(n)) * "
      "probe_interval (lan 4, wan 6, local 3)."},
     OFF(suspicion_mult),
     1,
     100,
     NULL,
     0},
    {{"suspicion_max_timeout_mult", NULL, "SuspicionMaxTimeoutMult", CONFIG_INT,
      "Upper bound of the suspicion timeout as a multiple of the lower "
      "bound, before confirmations shorten it (default 6)."},
     OFF(suspicion_max_timeout_mult),
     1,
     100,
     NULL,
     0},
    {{"push_pull_interval", NULL, "PushPullInterval", CONFIG_DURATION,
      "Full state sync with one random node, scaled up past 32 nodes; 0 "
      "turns it off (lan 30s, wan 60s, local 15s)."},
     OFF(push_pull_interval),
     0,
     (int64_t)DAY,
     NULL,
     0},
    {{"probe_interval", NULL, "ProbeInterval", CONFIG_DURATION,
      "Time between failure-detector probes (lan 1s, wan 5s, local 1s)."},
     OFF(probe_interval),
     1,
     (int64_t)DAY,
     NULL,
     0},
    {{"probe_timeout", NULL, "ProbeTimeout", CONFIG_DURATION,
      "Wait for a direct ack before indirect probes (lan 500ms, wan 3s, "
      "local 200ms)."},
     OFF(probe_timeout),
     1,
     (int64_t)DAY,
     NULL,
     0},
    {{"disable_tcp_pings", NULL, "DisableTcpPings", CONFIG_BOOL,
      "Turn off the TCP fallback ping of failed probes (default false)."},
     OFF(disable_tcp_pings),
     0,
     0,
     NULL,
     0},
    {{"disable_tcp_pings_for_node", NULL, "DisableTcpPingsForNode", CONFIG_LIST,
      "Node names whose failed probes get no TCP fallback ping, as "
      "disable_tcp_pings does for all (memberlist's function of the node "
      "name, as a list); empty = none (default empty)."},
     OFF(disable_tcp_pings_for_node),
     0,
     0,
     NULL,
     0},
    {{"awareness_max_multiplier", NULL, "AwarenessMaxMultiplier", CONFIG_INT,
      "Lifeguard: the probe interval stretches up to this multiple while "
      "the node itself seems unhealthy (default 8)."},
     OFF(awareness_max_multiplier),
     1,
     100,
     NULL,
     0},
    {{"gossip_interval", "cycle", "GossipInterval", CONFIG_DURATION,
      "Time between gossip rounds (lan 200ms, wan 500ms, local 100ms)."},
     OFF(gossip_interval),
     1,
     (int64_t)DAY,
     NULL,
     0},
    {{"gossip_nodes", "fanout", "GossipNodes", CONFIG_INT,
      "Nodes gossiped to in each round (lan 3, wan 4, local 3)."},
     OFF(gossip_nodes),
     0,
     1024,
     NULL,
     0},
    {{"gossip_to_the_dead_time", "node_timeout", "GossipToTheDeadTime",
      CONFIG_DURATION,
      "How long a dead node still gets gossip, and stays listed before "
      "it is removed (lan 30s, wan 60s, local 15s)."},
     OFF(gossip_to_the_dead_time),
     0,
     (int64_t)DAY,
     NULL,
     0},
    {{"enable_compression", NULL, "EnableCompression", CONFIG_BOOL,
      "Compress messages with LZW when it makes them smaller; streams "
      "always (default true)."},
     OFF(enable_compression),
     0,
     0,
     NULL,
     0},
    {{"udp_buffer_size", "packet_size", "UDPBufferSize", CONFIG_INT,
      "Largest UDP packet we send, in bytes (default 1400)."},
     OFF(udp_buffer_size),
     256,
     65000,
     NULL,
     0},
    {{"handoff_queue_depth", NULL, "HandoffQueueDepth", CONFIG_INT,
      "Packets that may wait to be handled: the UDP socket's receive "
      "buffer is asked for handoff_queue_depth * udp_buffer_size bytes "
      "(the kernel caps it at net.core.rmem_max); past it the kernel "
      "drops packets, as memberlist drops messages past its handoff "
      "queue (default 1024)."},
     OFF(handoff_queue_depth),
     1,
     INT64_C(1) << 20,
     NULL,
     0},
    {{"dead_node_reclaim_time", NULL, "DeadNodeReclaimTime", CONFIG_DURATION,
      "After this long a dead node's name may come back at another "
      "address; 0 = only once it is removed (default 0)."},
     OFF(dead_node_reclaim_time),
     0,
     (int64_t)DAY * 365,
     NULL,
     0},
    {{"require_node_names", NULL, "RequireNodeNames", CONFIG_BOOL,
      "Join addresses must carry the node name (name/host:port) "
      "(default false)."},
     OFF(require_node_names),
     0,
     0,
     NULL,
     0},
    {{"cidrs_allowed", NULL, "CIDRsAllowed", CONFIG_LIST,
      "Only nodes with an address in these networks may be members; "
      "empty = all (default empty)."},
     OFF(cidrs_allowed),
     0,
     0,
     NULL,
     0},
    {{"encrypt", NULL, "SecretKey", CONFIG_STRING,
      "Encryption key: base64 of 16, 24 or 32 random bytes (hearsay "
      "keygen or serf keygen makes one), as serf's -encrypt. Packets and "
      "streams are then sealed with AES-GCM and only nodes holding the "
      "key can join; empty = no encryption (default empty). Reloadable "
      "while no key is installed yet."},
     OFF(encrypt),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"encrypt_passphrase", "secret_key", NULL, CONFIG_STRING,
      "A passphrase instead of encrypt (pekonode's SecretKey): the key is "
      "the SHA-256 of its bytes (32 bytes, AES-256). Only as strong as the "
      "passphrase, so weaker than a random key (default empty)."},
     OFF(encrypt_passphrase),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"keyring_file", NULL, NULL, CONFIG_STRING,
      "Serf's keyring file, a JSON array of base64 keys, primary first "
      "(--keyring FILE): loaded at start-up when it exists (encrypt is "
      "then ignored), created from encrypt otherwise, and rewritten "
      "atomically whenever the keyring changes (default empty)."},
     OFF(keyring_file),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"gossip_verify_incoming", NULL, "GossipVerifyIncoming", CONFIG_BOOL,
      "With a key installed, drop whatever is not encrypted with an "
      "installed key; false also accepts plaintext, for switching a "
      "running cluster to encryption (default true). Reloadable."},
     OFF(gossip_verify_incoming),
     0,
     0,
     NULL,
     0},
    {{"gossip_verify_outgoing", NULL, "GossipVerifyOutgoing", CONFIG_BOOL,
      "With a key installed, encrypt everything we send; false sends "
      "plaintext, for switching a running cluster to encryption (default "
      "true). Reloadable."},
     OFF(gossip_verify_outgoing),
     0,
     0,
     NULL,
     0},
    {{"label", NULL, "Label", CONFIG_STRING,
      "A cluster label (at most 255 bytes) put before every packet and at "
      "the start of every stream, and authenticated with the key when "
      "encrypting; traffic with another label or none is dropped. Serf "
      "0.9 (memberlist 0.2) does not understand labels (default empty). "
      "Reloadable."},
     OFF(label),
     0,
     0,
     NULL,
     CONFIG_LABEL_MAX + 1},
    {{"skip_inbound_label_check", NULL, "SkipInboundLabelCheck", CONFIG_BOOL,
      "Take unlabelled traffic as carrying our label, and drop labelled "
      "traffic (memberlist's SkipInboundLabelCheck; default false). "
      "Reloadable."},
     OFF(skip_inbound_label_check),
     0,
     0,
     NULL,
     0},
    {{"leave_timeout", NULL, NULL, CONFIG_DURATION,
      "Longest wait for our leave message to spread on a graceful leave "
      "(default 5s)."},
     OFF(leave_timeout),
     0,
     (int64_t)DAY,
     NULL,
     0},
    {{"reconnect_interval", NULL, NULL, CONFIG_DURATION,
      "How often to try to reach one failed member again (Serf's "
      "ReconnectInterval), so that a cluster split by a partition joins "
      "up again once it heals; 0 turns it off (default 30s)."},
     OFF(reconnect_interval),
     0,
     (int64_t)DAY,
     NULL,
     0},
    {{"reconnect_timeout", NULL, NULL, CONFIG_DURATION,
      "How long a failed member is tried again before it is forgotten "
      "(Serf's ReconnectTimeout, default 24h)."},
     OFF(reconnect_timeout),
     0,
     (int64_t)DAY * 3650,
     NULL,
     0},
    {{"metadata_max_value", NULL, NULL, CONFIG_SIZE,
      "Largest value of a cluster metadata key (default 1MiB)."},
     OFF(metadata_max_value),
     0,
     INT64_C(1) << 30,
     NULL,
     0},
    {{"metadata_max_skew", NULL, NULL, CONFIG_DURATION,
      "How far ahead of our clock a metadata version may run; a write "
      "further ahead waits until our clock catches up (default 1m)."},
     OFF(metadata_max_skew),
     0,
     (int64_t)DAY * 365,
     NULL,
     0},
    {{"metadata_tombstone_ttl", NULL, NULL, CONFIG_DURATION,
      "How long a deleted metadata key is remembered, so that an old "
      "copy cannot bring it back (default 24h)."},
     OFF(metadata_tombstone_ttl),
     1000,
     (int64_t)DAY * 3650,
     NULL,
     0},
    {{"data_dir", NULL, NULL, CONFIG_STRING,
      "Directory for the log and snapshots of the metadata store and for "
      "the members; a write is acknowledged once it is on disk there; "
      "empty = none, nothing is kept across restarts (default empty)."},
     OFF(data_dir),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"snapshot_threshold", NULL, NULL, CONFIG_SIZE,
      "With a data dir: compact the log into a new snapshot once it "
      "holds this many bytes, or as many as the last snapshot if that is "
      "more (default 64MiB)."},
     OFF(snapshot_threshold),
     4096,
     INT64_C(1) << 40,
     NULL,
     0},
    {{"scripts", "script", NULL, CONFIG_LIST,
      "Lua hook scripts to load at start-up, in order (--script FILE, "
      "repeatable)."},
     OFF(scripts),
     0,
     0,
     NULL,
     0},
    {{"script_budget", NULL, NULL, CONFIG_INT,
      "Most Lua VM instructions one hook call may run before it is "
      "stopped, and (outside a simulation) 50 ns of wall-clock time per "
      "instruction; 0 = no limit (default 10000000: 10 million, half a "
      "second)."},
     OFF(script_budget),
     0,
     INT64_C(1) << 40,
     NULL,
     0},
    {{"script_memory", NULL, NULL, CONFIG_SIZE,
      "Most memory the scripts' Lua state may hold; going over it is an "
      "error in that hook (default 64MiB)."},
     OFF(script_memory),
     1 << 20,
     INT64_C(1) << 40,
     NULL,
     0},
    {{"script_watchdog", NULL, NULL, CONFIG_DURATION,
      "How long one script call may hold the event loop (stuck in a C "
      "function or a blocking call, which the budget cannot stop) before "
      "the agent logs an error and exits with status 1, for its "
      "supervisor to restart it; 0 = only warn (default 30s)."},
     OFF(script_watchdog),
     0,
     (int64_t)DAY,
     NULL,
     0},
    {{"log_level", NULL, NULL, CONFIG_ENUM,
      "debug (protocol traffic), info (membership events), warn, error or "
      "off (default info)."},
     OFF(log_level),
     0,
     0,
     config_levels,
     0},
    {{"print_events", "print", NULL, CONFIG_BOOL,
      "pekonode's IsPrint: true logs membership events (log_level info), "
      "false only warnings."},
     OFF(log_level),
     0,
     0,
     NULL,
     0},
    {{"control", NULL, NULL, CONFIG_ADDR,
      "Address of the control endpoint the CLI talks to (default "
      "127.0.0.1:7374, or $HEARSAY_CONTROL)."},
     OFF(control),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"control_token", NULL, NULL, CONFIG_STRING,
      "A secret every control request must carry (hearsay --token, or "
      "$HEARSAY_CONTROL_TOKEN, as consul's CONSUL_HTTP_TOKEN); empty = "
      "none (default empty). Put it in a config file rather than on a "
      "command line."},
     OFF(control_token),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"control_idle_timeout", NULL, NULL, CONFIG_DURATION,
      "A control connection that completes no request for this long is "
      "closed (a kv watch or a request under way is not idle); the first "
      "request must come within 10s, or this if shorter (default 60s)."},
     OFF(control_idle_timeout),
     100,
     (int64_t)DAY,
     NULL,
     0},
    {{"metrics", NULL, NULL, CONFIG_ADDR,
      "Address (ip:port) of the Prometheus endpoint, HTTP GET /metrics; "
      "empty = off (default empty). It has no authentication: keep it on "
      "loopback."},
     OFF(metrics),
     0,
     0,
     NULL,
     CONFIG_STR_MAX},
    {{"metric_labels", NULL, "MetricLabels", CONFIG_LIST,
      "Labels added to every metric of the Prometheus endpoint, each "
      "name=value (env=prod); a metric's own label of the same name wins "
      "(default none)."},
     OFF(metric_labels),
     0,
     0,
     NULL,
     0},
    {{"max_stream_size", NULL, NULL, CONFIG_SIZE,
      "Largest message accepted on a TCP stream (default 20MiB)."},
     OFF(max_stream_size),
     1024,
     INT64_C(1) << 32,
     NULL,
     0},
    {{"max_push_pull_nodes", NULL, NULL, CONFIG_INT,
      "Most node states accepted in one push/pull (default 1048576)."},
     OFF(max_push_pull_nodes),
     1,
     INT64_C(1) << 24,
     NULL,
     0},
    {{"max_inbound_streams", NULL, NULL, CONFIG_INT,
      "Most inbound TCP streams handled at once; more are refused "
      "(default 128)."},
     OFF(max_inbound_streams),
     1,
     65536,
     NULL,
     0},
    {{"max_decompressed_size", NULL, NULL, CONFIG_SIZE,
      "Largest size a compressed stream message may expand to (default "
      "40MiB)."},
     OFF(max_decompressed_size),
     1024,
     INT64_C(1) << 32,
     NULL,
     0},
    {{"max_inbound_streams_per_ip", NULL, NULL, CONFIG_INT,
      "Most inbound TCP connections open at once from one IP address "
      "(transport tcp's packet connections aside); more are closed at "
      "accept (default 32)."},
     OFF(max_inbound_streams_per_ip),
     1,
     65536,
     NULL,
     0},
    {{"max_new_members", NULL, NULL, CONFIG_INT,
      "Most members one IP address may add at once to the member table, "
      "by state sync or gossip; joins asked for here are not limited; 0 "
      "= no limit (default 32)."},
     OFF(max_new_members),
     0,
     INT64_C(1) << 24,
     NULL,
     0},
    {{"new_member_rate", NULL, NULL, CONFIG_INT,
      "Members per second one IP address may add once it used "
      "max_new_members (default 1)."},
     OFF(new_member_rate),
     0,
     INT64_C(1) << 24,
     NULL,
     0},
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

const struct key *config_find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (!strcmp(keys[i].info.name, name))
            return &keys[i];
        if (keys[i].info.alias && !strcmp(keys[i].info.alias, name))
            return &keys[i];
    }
    return NULL;
}
