/* sim_cache: the simulator's memory of prompt prefixes, modelled on
 * DeepSeek's context cache: 64-token blocks, identified by the chained hash
 * of every block from token 0, kept per API key (keys never share), bounded
 * by a block count with least-recently-used eviction. Not thread-safe: the
 * caller serializes access. */
#ifndef SIM_CACHE_H
#define SIM_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_cache sim_cache_t;

/* Creates an empty cache holding at most capacity blocks (>= 1). */
sim_cache_t *sim_cache_new(size_t capacity);

void sim_cache_free(sim_cache_t *c);

/* Returns how many leading blocks of blocks[0..n) are stored for key_hash
 * (the hit is that many times 64 tokens) and marks them recently used. */
size_t sim_cache_lookup(sim_cache_t *c, uint64_t key_hash, const uint64_t *blocks, size_t n);

/* Stores blocks[0..n) for key_hash, evicting the least recently used
 * blocks beyond the capacity. */
void sim_cache_store(sim_cache_t *c, uint64_t key_hash, const uint64_t *blocks, size_t n);

/* Forgets everything. */
void sim_cache_clear(sim_cache_t *c);

/* Blocks currently stored. */
size_t sim_cache_size(const sim_cache_t *c);

#endif
