/* sim_tokens: 4-bytes-per-token tokenization with per-message overhead, and
 * the chained 64-token block hashes the prefix cache is keyed by. */
#include "sim_tokens.h"

#include "sim_rng.h"

#include <stdlib.h>
#include <string.h>

void sim_tokens_init(sim_tokens_t *t)
{
    memset(t, 0, sizeof(*t));
    t->chain = 0x5151515151515151ULL;
}

void sim_tokens_free(sim_tokens_t *t)
{
    free(t->blocks);
    t->blocks = NULL;
    t->nblocks = t->cap = 0;
}

void sim_tokens_add(sim_tokens_t *t, uint64_t id)
{
    t->count++;
    t->all_hash = sim_hash_mix(t->all_hash, id);
    t->block_hash = sim_hash_mix(t->block_hash, id);
    if (++t->block_fill < SIM_BLOCK_TOKENS)
        return;
    t->chain = sim_hash_mix(t->chain, t->block_hash);
    t->block_hash = 0;
    t->block_fill = 0;
    if (t->nblocks == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        uint64_t *nb = realloc(t->blocks, ncap * sizeof(*nb));
        if (!nb)
            abort();
        t->blocks = nb;
        t->cap = ncap;
    }
    t->blocks[t->nblocks++] = t->chain;
}

void sim_tokens_add_text(sim_tokens_t *t, const char *text, size_t len)
{
    for (size_t off = 0; off < len; off += SIM_BYTES_PER_TOKEN) {
        size_t n = len - off < SIM_BYTES_PER_TOKEN ? len - off : SIM_BYTES_PER_TOKEN;
        sim_tokens_add(t, sim_hash_bytes(0x746f6b656eULL, text + off, n));
    }
}

void sim_tokens_add_message_overhead(sim_tokens_t *t, const char *role)
{
    uint64_t r = sim_hash_bytes(0x726f6c65ULL, role, strlen(role));
    for (uint64_t k = 0; k < SIM_MSG_OVERHEAD; k++)
        sim_tokens_add(t, sim_hash_mix(r, k));
}

uint64_t sim_tokens_for_bytes(size_t len)
{
    return ((uint64_t)len + SIM_BYTES_PER_TOKEN - 1) / SIM_BYTES_PER_TOKEN;
}
