/* addr.h: IP addresses and ports as the wire carries them, and CIDRs. */
#ifndef HS_ADDR_H
#define HS_ADDR_H

#include "base/hs.h"

/* An IP address exactly as carried in `Addr` fields: 4 bytes (IPv4) or 16
 * (IPv6, or IPv4-mapped ::ffff:a.b.c.d), plus a port. */
struct hs_addr {
    uint8_t len;
    uint8_t ip[16];
    uint16_t port;
};

/* Longest string addr_format() writes: "[v6]:port" and the NUL. */
#define HS_ADDRSTRLEN 56

/* Build from wire bytes. Returns HS_EADDR unless len is 4 or 16. */
int addr_from_raw(const uint8_t *ip, size_t len, uint16_t port,
                  struct hs_addr *out);
/* Parse a numeric "1.2.3.4:7946", "[::1]:7946", "1.2.3.4" or "::1";
 * `default_port` applies when no port is given. HS_EADDR otherwise. */
int addr_parse(const char *s, uint16_t default_port, struct hs_addr *out);
/* Split "host:port", "[v6]:port" or "host" into its parts; the host may be
 * a name. `host` gets at most hostlen-1 bytes. */
int addr_split(const char *s, char *host, size_t hostlen, uint16_t *port,
               uint16_t default_port);
/* Same bytes (Go's bytes.Equal) and same port. */
bool addr_eq(const struct hs_addr *a, const struct hs_addr *b);
/* Same IP, treating IPv4 and IPv4-mapped IPv6 as one (net.IP.Equal). */
bool addr_ip_eq(const struct hs_addr *a, const struct hs_addr *b);
/* If the address is IPv4-mapped, the 4-byte IPv4 form; else unchanged. */
struct hs_addr addr_unmap(const struct hs_addr *a);
/* "ip:port" or "[ip]:port" into out (HS_ADDRSTRLEN bytes). */
const char *addr_format(const struct hs_addr *a, char *out, size_t n);
/* The IP alone. */
const char *addr_ip_format(const struct hs_addr *a, char *out, size_t n);
bool addr_is_unspecified(const struct hs_addr *a);
bool addr_is_loopback(const struct hs_addr *a);

struct hs_cidr {
    uint8_t len; /* 4 or 16 */
    uint8_t ip[16];
    uint8_t bits;
};

/* Parse "10.0.0.0/8" or "fd00::/8" (a bare IP is a /32 or /128). */
int cidr_parse(const char *s, struct hs_cidr *out);
bool cidr_contains(const struct hs_cidr *c, const struct hs_addr *a);

#endif
