/* config.c: defaults, profiles, parsing and validation of struct config
 * (the key table is in config_keys.c). */
#include "core/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "codec/keyring.h"

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
    for (int i = 0; config_profiles[i]; i++)
        if (!strcmp(config_profiles[i], p))
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
    c->handoff_queue_depth = 1024;
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

static int check_range(const struct key *k, int64_t v, char *err, size_t errlen)
{
    if (v < k->min || v > k->max)
        return fail(err, errlen, "%s: %lld is out of range [%lld, %lld]",
                    k->info.name, (long long)v, (long long)k->min,
                    (long long)k->max);
    return 0;
}

/* A metric label "name=value": a Prometheus label name (not one of the
 * reserved __ names) that the list does not hold yet. */
static int check_label(const struct config_list *l, const char *value,
                       char *err, size_t errlen)
{
    const char *eq = strchr(value, '=');
    size_t n = eq ? (size_t)(eq - value) : 0;
    bool ok = n > 0 && !isdigit((unsigned char)value[0]) &&
              strncmp(value, "__", 2) != 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)value[i]) || value[i] == '_';
    if (!ok)
        return fail(err, errlen,
                    "metric_labels: \"%s\" is not name=value with a "
                    "label name such as env (letters, digits and _, not "
                    "starting with a digit or __)",
                    value);
    for (size_t i = 0; i < l->n; i++)
        if (!strncmp(l->v[i], value, n + 1))
            return fail(err, errlen, "metric_labels: %.*s is given twice",
                        (int)n, value);
    return 0;
}

int config_set(struct config *c, const char *name, const char *value, char *err,
               size_t errlen)
{
    const struct key *k = config_find_key(name);
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
        if (k->off == OFF(max_push_pull_nodes) || k->off == OFF(script_budget))
            *(uint64_t *)f = (uint64_t)v;
        else
            *(int *)f = (int)v;
        return 0;
    }
    case CONFIG_DURATION: {
        uint64_t ms;
        /* pekonode counts its Cycle and Timeout in seconds: through
         * their aliases a bare number would be a thousand times off. */
        if (k->info.alias && !strcmp(name, k->info.alias) &&
            value[strspn(value, "0123456789")] == '\0')
            return fail(err, errlen,
                        "%s: \"%s\" needs a unit, such as %ss or %sms "
                        "(pekonode counts it in seconds; a bare number "
                        "would be milliseconds here)",
                        name, value, value, value);
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
        if (k->off == OFF(metric_labels) && check_label(l, value, err, errlen))
            return HS_EINVAL;
        if (k->off == OFF(disable_tcp_pings_for_node) &&
            strlen(value) > CONFIG_NAME_MAX)
            return fail(err, errlen,
                        "disable_tcp_pings_for_node: a node name is at "
                        "most %d bytes",
                        CONFIG_NAME_MAX);
        if (l->n >= CONFIG_LIST_MAX)
            return fail(err, errlen, "%s: more than %d entries", k->info.name,
                        CONFIG_LIST_MAX);
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
    const struct key *k = config_find_key(name);
    if (k == NULL)
        return HS_ENOTFOUND;
    const void *f = (const char *)c + k->off;
    switch (k->info.kind) {
    case CONFIG_STRING:
    case CONFIG_ADDR:
        snprintf(out, outlen, "%s", (const char *)f);
        break;
    case CONFIG_INT:
        if (k->off == OFF(max_push_pull_nodes) || k->off == OFF(script_budget))
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
        snprintf(out, outlen, "%llu", (unsigned long long)*(const uint64_t *)f);
        break;
    case CONFIG_BOOL:
        if (k->off == OFF(log_level))
            snprintf(out, outlen, "%s",
                     c->log_level <= HS_LOG_INFO ? "true" : "false");
        else
            snprintf(out, outlen, "%s", *(const bool *)f ? "true" : "false");
        break;
    case CONFIG_ENUM:
        if (k->off == OFF(profile))
            snprintf(out, outlen, "%s", c->profile);
        else if (k->off == OFF(log_level))
            snprintf(out, outlen, "%s", config_levels[HS_MIN(c->log_level, 4)]);
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
                    "binds a numeric address)",
                    c->control);
    if (c->metrics[0] && (addr_parse(c->metrics, 0, &a) || a.port == 0))
        return fail(err, errlen,
                    "metrics: \"%s\" is not ip:port (the metrics endpoint "
                    "binds a numeric address and a port)",
                    c->metrics);
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
    list_clear(&c->disable_tcp_pings_for_node);
    list_clear(&c->metric_labels);
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
    dst->retry_join.n = dst->disable_tcp_pings_for_node.n = 0;
    dst->metric_labels.n = 0;
    if (list_copy(&dst->join, &src->join) ||
        list_copy(&dst->retry_join, &src->retry_join) ||
        list_copy(&dst->cidrs_allowed, &src->cidrs_allowed) ||
        list_copy(&dst->scripts, &src->scripts) ||
        list_copy(&dst->disable_tcp_pings_for_node,
                  &src->disable_tcp_pings_for_node) ||
        list_copy(&dst->metric_labels, &src->metric_labels)) {
        config_free(dst);
        return HS_ENOMEM;
    }
    return 0;
}
