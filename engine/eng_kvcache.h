/* eng_kvcache: the MLA latent cache in 64-token blocks shared by sequences.
 * A block holds, for 64 consecutive positions and every layer, the latent row
 * [c (kv_lora_rank) | k_rot (qk_rope)]. Full blocks are identified by a
 * chained hash of their tokens (the hash of block i covers blocks 0..i), so a
 * prompt that starts with cached blocks reuses them instead of recomputing.
 * Blocks are reference-counted; unreferenced full blocks stay cached and are
 * evicted least-recently-released first when a new block is needed. */
#ifndef ENG_KVCACHE_H
#define ENG_KVCACHE_H

#include "eng_model.h"

#include <stddef.h>
#include <stdint.h>

#define ENG_KV_BLOCK 64

typedef struct eng_kvcache eng_kvcache_t;

/* A cache of n_blocks blocks for model's shapes. Aborts on OOM. */
eng_kvcache_t *eng_kvcache_create(const eng_model_t *model, int n_blocks);
/* The same bookkeeping (refcounts, hashes, LRU) without host rows: for a
 * backend that keeps the rows in device memory, indexed by block id.
 * eng_kvcache_row_ptr must not be called on it. Aborts on OOM. */
eng_kvcache_t *eng_kvcache_create_meta(const eng_model_t *model, int n_blocks);

void eng_kvcache_free(eng_kvcache_t *kc);

/* Floats per cached row (kv_lora_rank + qk_rope). */
int eng_kvcache_row(const eng_kvcache_t *kc);

/* Takes a free block (or evicts the least recently released cached one) and
 * returns its id with refcount 1, or -1 when every block is in use. */
int eng_kvcache_alloc(eng_kvcache_t *kc);

/* Adds a reference to block b. */
void eng_kvcache_ref(eng_kvcache_t *kc, int b);

/* Drops a reference; at zero a registered block becomes evictable (most
 * recently released last), an unregistered one free. */
void eng_kvcache_release(eng_kvcache_t *kc, int b);

/* The chained hash of a block whose 64 tokens follow a prefix with hash
 * parent (0 for the first block). */
uint64_t eng_kvcache_chain_hash(uint64_t parent, const int32_t *tokens);

/* Registers full block b (its rows written) as holding `tokens` after the
 * prefix `parent`; later lookups can find it. No-op when an equal block is
 * already registered (b then stays private to its sequence). */
void eng_kvcache_register(eng_kvcache_t *kc, int b, uint64_t parent, const int32_t *tokens);

/* Finds the registered block for tokens after prefix parent, takes a
 * reference on it and returns its id (and the block's chain hash in *hash),
 * or -1. */
int eng_kvcache_lookup(eng_kvcache_t *kc, uint64_t parent, const int32_t *tokens,
                       uint64_t *hash);

/* Row of position `slot` (0..63) of layer `layer` in block b. */
float *eng_kvcache_row_ptr(eng_kvcache_t *kc, int b, int layer, int slot);

/* Counters for tests and metrics. */
typedef struct eng_kvcache_stats {
    int n_blocks;
    int in_use;    /* refcount > 0 */
    int cached;    /* refcount 0, registered, evictable */
    int free;      /* refcount 0, unregistered */
    long evictions;
} eng_kvcache_stats_t;

void eng_kvcache_stats(const eng_kvcache_t *kc, eng_kvcache_stats_t *out);

#endif
