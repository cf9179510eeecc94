/* tok_hash: XXH64 (the published xxHash 64-bit algorithm, written from its
 * specification) and the chained 64-token block hashes the gateway uses to
 * find cached prompt prefixes. Not collision-resistant against an adversary:
 * a cache keyed by these hashes must compare the tokens before reusing. */
#include "tok.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint64_t rd32(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static inline uint64_t round64(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static inline uint64_t merge64(uint64_t acc, uint64_t v)
{
    acc ^= round64(0, v);
    return acc * P1 + P4;
}

uint64_t tok_xxh64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        while (end - p >= 32) {
            v1 = round64(v1, rd64(p));
            v2 = round64(v2, rd64(p + 8));
            v3 = round64(v3, rd64(p + 16));
            v4 = round64(v4, rd64(p + 24));
            p += 32;
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge64(h, v1);
        h = merge64(h, v2);
        h = merge64(h, v3);
        h = merge64(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (end - p >= 8) {
        h ^= round64(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= *p++ * P5;
        h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

size_t tok_block_hashes(const uint32_t *ids, size_t n, uint64_t *out, size_t max)
{
    unsigned char block[TOK_BLOCK_TOKENS * 4];
    uint64_t h = 0;
    size_t nb = n / TOK_BLOCK_TOKENS;
    if (nb > max)
        nb = max;
    for (size_t b = 0; b < nb; b++) {
        const uint32_t *t = ids + b * TOK_BLOCK_TOKENS;
        for (size_t i = 0; i < TOK_BLOCK_TOKENS; i++) {
            block[4 * i] = (unsigned char)t[i];
            block[4 * i + 1] = (unsigned char)(t[i] >> 8);
            block[4 * i + 2] = (unsigned char)(t[i] >> 16);
            block[4 * i + 3] = (unsigned char)(t[i] >> 24);
        }
        h = tok_xxh64(block, sizeof block, h);
        out[b] = h;
    }
    return nb;
}
