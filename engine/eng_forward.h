/* eng_forward: the CPU forward pass of one sequence. The sequence keeps only
 * the MLA latent rows [c (kv_lora_rank) | k_rot (qk_rope)] per token per
 * layer; attention runs either the plain reference way (expand keys and values
 * from the latents) or the absorbed way (W_UK folded into the query, W_UV
 * applied after attention, attention directly on the latent rows). */
#ifndef ENG_FORWARD_H
#define ENG_FORWARD_H

#include "eng_model.h"
#include "eng_pool.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { ENG_ATTN_REFERENCE = 0, ENG_ATTN_ABSORBED } eng_attn_mode_t;

typedef struct eng_seq eng_seq_t;

/* A sequence with room for max_tokens positions. model and pool (may be NULL:
 * single-threaded) must outlive it. Aborts on OOM. */
eng_seq_t *eng_seq_create(const eng_model_t *model, eng_pool_t *pool, int max_tokens);
void eng_seq_free(eng_seq_t *s);

/* Tokens already in the cache. */
int eng_seq_len(const eng_seq_t *s);

/* Forgets everything after the first n tokens (n <= length). */
void eng_seq_truncate(eng_seq_t *s, int n);

/* Runs n new tokens at positions len..len+n-1 and appends their latent rows.
 * logits: all_positions ? (n, vocab) : (vocab) for the last token; may be NULL.
 * Returns 0, or -1 with err for a token id outside the vocabulary or more
 * tokens than the sequence holds (nothing is appended then). */
int eng_seq_forward(eng_seq_t *s, const int32_t *tokens, int n, eng_attn_mode_t mode,
                    float *logits, bool all_positions, char *err, size_t errlen);

/* Bytes of the latent cache per token (all layers, float32). */
size_t eng_seq_cache_bytes_per_token(const eng_model_t *model);

/* Index of the largest value (the first one on ties), as torch.argmax. */
int eng_argmax(const float *x, int n);

#endif
