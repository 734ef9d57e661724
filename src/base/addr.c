/* addr.c: parsing, formatting and comparing wire addresses; CIDR match. */
#include "base/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int addr_from_raw(const uint8_t *ip, size_t len, uint16_t port,
                  struct hs_addr *out)
{
    if (len != 4 && len != 16)
        return HS_EADDR;
    memset(out, 0, sizeof *out);
    out->len = (uint8_t)len;
    memcpy(out->ip, ip, len);
    out->port = port;
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0')
        return HS_EADDR;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v > 65535 || s[0] == '-' || s[0] == '+')
        return HS_EADDR;
    *port = (uint16_t)v;
    return 0;
}

int addr_split(const char *s, char *host, size_t hostlen, uint16_t *port,
               uint16_t default_port)
{
    const char *h = s, *p = NULL;
    size_t hl;
    if (s == NULL || *s == '\0')
        return HS_EADDR;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return HS_EADDR;
        h = s + 1;
        hl = (size_t)(close - h);
        if (close[1] == ':')
            p = close + 2;
        else if (close[1] != '\0')
            return HS_EADDR;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon) {
            /* Several colons and no brackets: a bare IPv6 address. */
            hl = strlen(s);
        } else if (colon) {
            hl = (size_t)(colon - s);
            p = colon + 1;
        } else {
            hl = strlen(s);
        }
    }
    if (hl == 0 || hl >= hostlen)
        return HS_EADDR;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (p)
        return parse_port(p, port);
    *port = default_port;
    return 0;
}

int addr_parse(const char *s, uint16_t default_port, struct hs_addr *out)
{
    char host[64];
    uint16_t port;
    int rc = addr_split(s, host, sizeof host, &port, default_port);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, out->ip) == 1)
        out->len = 4;
    else if (inet_pton(AF_INET6, host, out->ip) == 1)
        out->len = 16;
    else
        return HS_EADDR;
    out->port = port;
    return 0;
}

bool addr_eq(const struct hs_addr *a, const struct hs_addr *b)
{
    return a->len == b->len && a->port == b->port &&
           memcmp(a->ip, b->ip, a->len) == 0;
}

struct hs_addr addr_unmap(const struct hs_addr *a)
{
    struct hs_addr u = *a;
    if (a->len == 16 && memcmp(a->ip, v4mapped, 12) == 0) {
        memset(&u, 0, sizeof u);
        u.len = 4;
        memcpy(u.ip, a->ip + 12, 4);
        u.port = a->port;
    }
    return u;
}

bool addr_ip_eq(const struct hs_addr *a, const struct hs_addr *b)
{
    struct hs_addr x = addr_unmap(a), y = addr_unmap(b);
    return x.len == y.len && memcmp(x.ip, y.ip, x.len) == 0;
}

const char *addr_ip_format(const struct hs_addr *a, char *out, size_t n)
{
    struct hs_addr u = addr_unmap(a);
    if (u.len != 4 && u.len != 16) {
        snprintf(out, n, "?");
        return out;
    }
    if (inet_ntop(u.len == 4 ? AF_INET : AF_INET6, u.ip, out, (socklen_t)n) ==
        NULL)
        snprintf(out, n, "?");
    return out;
}

const char *addr_format(const struct hs_addr *a, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    struct hs_addr u = addr_unmap(a);
    addr_ip_format(&u, ip, sizeof ip);
    if (u.len == 16)
        snprintf(out, n, "[%s]:%u", ip, (unsigned)a->port);
    else
        snprintf(out, n, "%s:%u", ip, (unsigned)a->port);
    return out;
}

bool addr_is_unspecified(const struct hs_addr *a)
{
    for (int i = 0; i < a->len; i++)
        if (a->ip[i])
            return false;
    return true;
}

bool addr_is_loopback(const struct hs_addr *a)
{
    struct hs_addr u = addr_unmap(a);
    if (u.len == 4)
        return u.ip[0] == 127;
    static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0, 0, 0, 0, 0, 1};
    return u.len == 16 && memcmp(u.ip, lo6, 16) == 0;
}

int cidr_parse(const char *s, struct hs_cidr *out)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof ip)
        return HS_EADDR;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, ip, out->ip) == 1)
        out->len = 4;
    else if (inet_pton(AF_INET6, ip, out->ip) == 1)
        out->len = 16;
    else
        return HS_EADDR;
    unsigned maxbits = out->len * 8u;
    out->bits = (uint8_t)maxbits;
    if (slash) {
        char *end;
        unsigned long b = strtoul(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || b > maxbits)
            return HS_EADDR;
        out->bits = (uint8_t)b;
    }
    return 0;
}

bool cidr_contains(const struct hs_cidr *c, const struct hs_addr *a)
{
    struct hs_addr u = addr_unmap(a);
    const uint8_t *ip = u.ip;
    uint8_t mapped[16];
    if (c->len == 16 && u.len == 4) {
        /* An IPv6 CIDR may name IPv4-mapped space. */
        memcpy(mapped, v4mapped, 12);
        memcpy(mapped + 12, u.ip, 4);
        ip = mapped;
    } else if (c->len != u.len) {
        return false;
    }
    unsigned full = c->bits / 8u, rest = c->bits % 8u;
    if (memcmp(c->ip, ip, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->ip[full] & mask) == (ip[full] & mask);
}
