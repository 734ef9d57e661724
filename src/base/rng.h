/* rng.h: xoshiro256** (Blackman and Vigna), the pseudo-random generator of
 * the protocol core and the simulator: fast, small, and reproducible from
 * a seed, which keeps simulated runs deterministic. Not for secrets. */
#ifndef HS_RNG_H
#define HS_RNG_H

#include <stdint.h>

struct hs_rng {
    uint64_t s[4];
};

static inline uint64_t hs_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* Spread a 64-bit seed over the state with splitmix64. */
static inline void hs_rng_seed(struct hs_rng *r, uint64_t seed)
{
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) {
        z += 0x9e3779b97f4a7c15ull;
        uint64_t x = z;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = x ^ (x >> 31);
    }
}

static inline uint64_t hs_rng_next(struct hs_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = hs_rng_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = hs_rng_rotl(s[3], 45);
    return result;
}

#endif
