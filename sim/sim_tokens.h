/* sim_tokens: the simulator's own deterministic tokenization.
 * Rule (documented in docs/simulator.md): every 4 bytes of text are one
 * token (a shorter tail is one token too); each chat message costs 4 extra
 * tokens for its role markers. Token ids are hashes of those bytes, so equal
 * prompt prefixes give equal token prefixes. While tokens are added, the
 * chained hash of every full 64-token block is recorded for the prefix cache. */
#ifndef SIM_TOKENS_H
#define SIM_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#define SIM_BLOCK_TOKENS 64
#define SIM_MSG_OVERHEAD 4
#define SIM_BYTES_PER_TOKEN 4

typedef struct sim_tokens {
    uint64_t count;      /* tokens added so far */
    uint64_t all_hash;   /* hash over every token id (drives the completion text) */
    uint64_t chain;      /* chained hash through the last full block */
    uint64_t block_hash; /* hash of the partial block being filled */
    unsigned block_fill; /* tokens in that partial block */
    uint64_t *blocks;    /* blocks[i] = chained hash of blocks 0..i (owned) */
    size_t nblocks, cap;
} sim_tokens_t;

void sim_tokens_init(sim_tokens_t *t);

/* Frees the block array; t may be reused after sim_tokens_init. */
void sim_tokens_free(sim_tokens_t *t);

/* Adds one token id. Aborts only on out-of-memory. */
void sim_tokens_add(sim_tokens_t *t, uint64_t id);

/* Adds the tokens of len bytes of text (ceil(len / 4) tokens). */
void sim_tokens_add_text(sim_tokens_t *t, const char *text, size_t len);

/* Adds the 4 role-marker tokens that open a chat message. */
void sim_tokens_add_message_overhead(sim_tokens_t *t, const char *role);

/* Number of tokens a text of len bytes counts as. */
uint64_t sim_tokens_for_bytes(size_t len);

#endif
