/* eng_seq_priv: the sequence's fields, shared by eng_seq.c (cache blocks,
 * prefix reuse) and eng_forward.c (the compute). Not part of the API. */
#ifndef ENG_SEQ_PRIV_H
#define ENG_SEQ_PRIV_H

#include "eng_forward.h"
#include "eng_kvcache.h"

#include <stdbool.h>
#include <stdlib.h>

struct eng_seq {
    const eng_model_t *m;
    eng_pool_t *pool;
    eng_kvcache_t *kc;
    bool own_kc;
    int max_tokens, len;
    int row;          /* kv_lora_rank + qk_rope: floats per cached token per layer */
    int *blocks;      /* block ids of positions [64 i, 64 i + 64) */
    int n_blocks;
    uint64_t *hashes; /* chain hash of each full block */
    int32_t *tokens;  /* the max_tokens token history */
    float *inv_freq;  /* (qk_rope/2) */
    float scale;      /* softmax scale incl. yarn mscale^2 */
};

/* calloc that aborts on OOM (and never returns NULL for zero sizes). */
static inline void *eng_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        abort();
    return p;
}

/* The cached latent row of position pos in layer. */
static inline float *eng_seq_kv_row(const eng_seq_t *s, int layer, int pos)
{
    return eng_kvcache_row_ptr(s->kc, s->blocks[pos / ENG_KV_BLOCK], layer, pos % ENG_KV_BLOCK);
}

/* Makes sure blocks exist for positions up to len + n. Returns 0, or -1 with
 * err (blocks taken by this call given back). */
int eng_seq_reserve(eng_seq_t *s, int n, char *err, size_t errlen);

/* Gives back blocks beyond what len tokens need (undoes a reservation). */
void eng_seq_unreserve(eng_seq_t *s);

/* Appends n computed tokens: records them, registers newly full blocks. */
void eng_seq_commit(eng_seq_t *s, const int32_t *tokens, int n);

#endif
