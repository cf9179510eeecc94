/* eng_forward: the CPU forward pass of one sequence. The sequence keeps only
 * the MLA latent rows [c (kv_lora_rank) | k_rot (qk_rope)] per token per
 * layer; attention runs either the plain reference way (expand keys and values
 * from the latents) or the absorbed way (W_UK folded into the query, W_UV
 * applied after attention, attention directly on the latent rows). */
#ifndef ENG_FORWARD_H
#define ENG_FORWARD_H

#include "eng_kvcache.h"
#include "eng_model.h"
#include "eng_pool.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { ENG_ATTN_REFERENCE = 0, ENG_ATTN_ABSORBED } eng_attn_mode_t;

typedef struct eng_seq eng_seq_t;

/* A sequence with room for max_tokens positions and its own private block
 * cache. model and pool (may be NULL: single-threaded) must outlive it.
 * Aborts on OOM. */
eng_seq_t *eng_seq_create(const eng_model_t *model, eng_pool_t *pool, int max_tokens);

/* A sequence of at most max_tokens whose blocks come from the shared cache kc
 * (which must outlive it); its full blocks become reusable by later prompts. */
eng_seq_t *eng_seq_create_in(const eng_model_t *model, eng_pool_t *pool, eng_kvcache_t *kc,
                             int max_tokens);

/* Releases the sequence's blocks (cached ones stay reusable) and frees it. */
void eng_seq_free(eng_seq_t *s);

/* Tokens already in the cache. */
int eng_seq_len(const eng_seq_t *s);

/* On an empty sequence: reuses the cached blocks that the prompt starts with
 * (whole 64-token blocks, never the prompt's last token) and returns how many
 * tokens that covers -- the cache hits; run the rest with eng_seq_forward. */
int eng_seq_attach_prefix(eng_seq_t *s, const int32_t *tokens, int n);

/* Forgets everything after the first n tokens (no-op when n >= length). A
 * kept partial block that other sequences share is copied first. Returns 0,
 * or -1 with err when no block is free for that copy (nothing changed). */
int eng_seq_truncate(eng_seq_t *s, int n, char *err, size_t errlen);

/* Runs n new tokens at positions len..len+n-1 and appends their latent rows.
 * logits: all_positions ? (n, vocab) : (vocab) for the last token; may be NULL.
 * Blocks filled by these tokens are registered in the cache for reuse.
 * Returns 0, or -1 with err for a token id outside the vocabulary, more
 * tokens than the sequence holds, or no free cache block (nothing is
 * appended then). */
int eng_seq_forward(eng_seq_t *s, const int32_t *tokens, int n, eng_attn_mode_t mode,
                    float *logits, bool all_positions, char *err, size_t errlen);

/* One sequence's part of a batched step. */
typedef struct eng_fwd_item {
    eng_seq_t *seq;
    const int32_t *tokens;
    int n;
    eng_attn_mode_t mode;
    float *logits; /* as eng_seq_forward; may be NULL */
    bool all_positions;
} eng_fwd_item_t;

/* Runs several sequences (same model, each at most once) in one step: every
 * weight is read once for all their tokens; attention stays per sequence.
 * Equivalent to running the items one by one. Returns 0, or -1 with err
 * (then no sequence changed). */
int eng_forward_batch(eng_fwd_item_t *items, int n_items, char *err, size_t errlen);

/* Bytes of the latent cache per token (all layers, float32). */
size_t eng_seq_cache_bytes_per_token(const eng_model_t *model);

/* Index of the largest value (the first one on ties), as torch.argmax. */
int eng_argmax(const float *x, int n);

#endif
