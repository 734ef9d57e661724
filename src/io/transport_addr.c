/* transport_addr.c: socket addresses of the transport: conversion to and
 * from struct hs_addr, the address to advertise, and resolving names. */
#include "io/transport_int.h"

#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The sockaddr for `a` on a socket of `family` (0: the address's own).
 * An IPv4 socket takes IPv4-mapped addresses as IPv4; an IPv6 one takes
 * IPv4 as mapped. */
int tr_to_sockaddr(const struct hs_addr *a, int family,
                   struct sockaddr_storage *ss)
{
    struct hs_addr u = addr_unmap(a);
    memset(ss, 0, sizeof *ss);
    if (u.len != 4 && u.len != 16)
        return HS_EADDR;
    if (family == 0)
        family = u.len == 4 ? AF_INET : AF_INET6;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (void *)ss;
        if (u.len != 4)
            return HS_EADDR;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(u.port);
        memcpy(&s4->sin_addr, u.ip, 4);
        return 0;
    }
    struct sockaddr_in6 *s6 = (void *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(u.port);
    if (u.len == 4) {
        memcpy(s6->sin6_addr.s6_addr, v4prefix, 12);
        memcpy(s6->sin6_addr.s6_addr + 12, u.ip, 4);
    } else {
        memcpy(s6->sin6_addr.s6_addr, u.ip, 16);
    }
    return 0;
}

/* IPv4-mapped peers come out as plain IPv4. */
int tr_from_sockaddr(const struct sockaddr *sa, struct hs_addr *out)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)sa;
        addr_from_raw((const uint8_t *)&s4->sin_addr, 4, ntohs(s4->sin_port),
                      out);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        struct hs_addr a;
        addr_from_raw(s6->sin6_addr.s6_addr, 16, ntohs(s6->sin6_port), &a);
        *out = addr_unmap(&a);
        return 0;
    }
    return HS_EADDR;
}

/* ===== Addresses ===== */

static bool link_local6(const uint8_t *ip)
{
    return ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80;
}

/* The first non-loopback address of the host: IPv4, or IPv6 when bound
 * to ::. */
static int host_address(const struct transport *t, struct hs_addr *out)
{
    uv_interface_address_t *ifs;
    int count;
    if (uv_interface_addresses(&ifs, &count) != 0)
        return HS_ENOTFOUND;
    int rc = HS_ENOTFOUND;
    for (int pass = 0; pass < 2 && rc; pass++) {
        int want = pass == 0 ? AF_INET : AF_INET6;
        if (want == AF_INET6 && t->family != AF_INET6)
            break;
        for (int i = 0; i < count && rc; i++) {
            const struct sockaddr *sa =
                (const struct sockaddr *)&ifs[i].address;
            if (ifs[i].is_internal || sa->sa_family != want)
                continue;
            struct hs_addr a;
            if (tr_from_sockaddr(sa, &a) || addr_is_loopback(&a) ||
                addr_is_unspecified(&a) || (a.len == 16 && link_local6(a.ip)))
                continue;
            *out = a;
            rc = 0;
        }
    }
    uv_free_interface_addresses(ifs, count);
    return rc;
}

int transport_advertise(struct transport *t, const struct config *cfg,
                        struct hs_addr *out, char *err, size_t errlen)
{
    uint16_t port = t->bound.port;
    char ab[HS_ADDRSTRLEN];
    if (cfg->advertise[0]) {
        struct hs_addr a;
        if (addr_parse(cfg->advertise, port, &a) == 0) {
            if (addr_is_unspecified(&a))
                return tr_fail(err, errlen, HS_EADDR,
                               "advertise: \"%s\" is not an address others "
                               "can reach",
                               cfg->advertise);
            *out = addr_unmap(&a);
            return 0;
        }
        char host[CONFIG_STR_MAX];
        uint16_t p;
        if (addr_split(cfg->advertise, host, sizeof host, &p, port) != 0)
            return tr_fail(err, errlen, HS_EADDR,
                           "advertise: \"%s\" is not host:port",
                           cfg->advertise);
        /* Start-up only: blocking here is fine. */
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(host, NULL, &hints, &res);
        if (g != 0)
            return tr_fail(err, errlen, HS_ENOTFOUND,
                           "cannot resolve advertise host \"%s\": %s", host,
                           gai_strerror(g));
        int rc = HS_ENOTFOUND;
        for (int pass = 0; pass < 2 && rc; pass++)
            for (struct addrinfo *ai = res; ai && rc; ai = ai->ai_next)
                if ((pass == 0) == (ai->ai_family == AF_INET) &&
                    tr_from_sockaddr(ai->ai_addr, out) == 0) {
                    out->port = p;
                    rc = 0;
                }
        freeaddrinfo(res);
        if (rc)
            return tr_fail(err, errlen, rc,
                           "advertise host \"%s\" has no IP address", host);
        return 0;
    }
    if (!addr_is_unspecified(&t->bound)) {
        *out = t->bound;
        return 0;
    }
    if (host_address(t, out) != 0)
        return tr_fail(err, errlen, HS_ENOTFOUND,
                       "bound to %s and no non-loopback address was found: "
                       "set advertise",
                       addr_format(&t->bound, ab, sizeof ab));
    out->port = port;
    return 0;
}

struct resolve {
    uv_getaddrinfo_t req;
    transport_resolve_cb cb;
    void *ud;
    uint16_t port;
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *r = req->data;
    struct hs_addr *addrs = NULL;
    size_t n = 0, cap = 0;
    int rc = tr_err(status);
    if (status == UV_EAI_NONAME || status == UV_EAI_NODATA)
        rc = HS_ENOTFOUND;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        cap++;
    if (rc == 0 && cap) {
        addrs = hs_calloc(cap, sizeof *addrs);
        if (addrs == NULL)
            rc = HS_ENOMEM;
    }
    /* IPv4 first, then IPv6; each address once. */
    for (int pass = 0; pass < 2 && addrs; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            struct hs_addr a;
            if ((pass == 0) != (ai->ai_family == AF_INET) ||
                tr_from_sockaddr(ai->ai_addr, &a) != 0)
                continue;
            a.port = r->port;
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = addr_eq(&addrs[i], &a);
            if (!dup)
                addrs[n++] = a;
        }
    }
    if (rc == 0 && n == 0)
        rc = HS_ENOTFOUND;
    if (res)
        uv_freeaddrinfo(res);
    transport_resolve_cb cb = r->cb;
    void *ud = r->ud;
    hs_free(r);
    cb(ud, rc, rc ? NULL : addrs, rc ? 0 : n);
    hs_free(addrs);
}

int transport_resolve(uv_loop_t *loop, const char *hostport,
                      uint16_t default_port, transport_resolve_cb cb, void *ud)
{
    char host[CONFIG_STR_MAX];
    uint16_t port;
    struct hs_addr a;
    if (hostport == NULL || cb == NULL ||
        addr_split(hostport, host, sizeof host, &port, default_port) != 0)
        return HS_EADDR;
    struct resolve *r = hs_calloc(1, sizeof *r);
    if (r == NULL)
        return HS_ENOMEM;
    r->cb = cb;
    r->ud = ud;
    r->port = port;
    r->req.data = r;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* A numeric address never asks DNS; the callback still comes from
     * the loop, as for names. */
    if (addr_parse(hostport, default_port, &a) == 0)
        hints.ai_flags = AI_NUMERICHOST;
    int rc = uv_getaddrinfo(loop, &r->req, on_resolved, host, NULL, &hints);
    if (rc != 0) {
        hs_free(r);
        return tr_err(rc);
    }
    return 0;
}
