/* sim_rng: splitmix64 / xoshiro256** generator and the mixing hash behind
 * the simulator's token ids and prefix-block hashes. */
#include "sim_rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void sim_rng_seed(sim_rng_t *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t sim_rng_next(sim_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sim_rng_unit(sim_rng_t *rng)
{
    return (double)(sim_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t sim_hash_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
    return splitmix64(&x);
}

uint64_t sim_hash_bytes(uint64_t h, const void *data, size_t len)
{
    /* FNV-1a over the bytes, then a final mix so that short inputs spread. */
    const unsigned char *p = data;
    uint64_t f = 0xcbf29ce484222325ULL ^ h;
    for (size_t i = 0; i < len; i++) {
        f ^= p[i];
        f *= 0x100000001b3ULL;
    }
    return sim_hash_mix(h, f ^ (uint64_t)len);
}
