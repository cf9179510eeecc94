/* sim_rng: the simulator's deterministic randomness and hashing.
 * A splitmix64-seeded xoshiro256** generator (fast, reproducible across
 * platforms) and a 64-bit mixing hash used for prompt tokens and prefix
 * blocks. Nothing here is cryptographic. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_rng {
    uint64_t s[4];
} sim_rng_t;

/* Seeds the generator; equal seeds give equal sequences. */
void sim_rng_seed(sim_rng_t *rng, uint64_t seed);

/* Next 64 random bits. */
uint64_t sim_rng_next(sim_rng_t *rng);

/* A uniform double in [0, 1). */
double sim_rng_unit(sim_rng_t *rng);

/* Mixes two 64-bit values into one (order matters). */
uint64_t sim_hash_mix(uint64_t a, uint64_t b);

/* Hashes len bytes, starting from the value h (chainable). */
uint64_t sim_hash_bytes(uint64_t h, const void *data, size_t len);

#endif
