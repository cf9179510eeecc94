/* eng_ops: the float32 CPU building blocks of the forward pass — threaded
 * matmul against row-major weights, RMSNorm, SiLU, RoPE frequencies and
 * rotation in both layouts. */
#ifndef ENG_OPS_H
#define ENG_OPS_H

#include "eng_config.h"
#include "eng_pool.h"

#include <stdbool.h>
#include <stddef.h>

/* y[t][o] = sum_i x[t][i] * w[o][i] for t < n_tok, o < n_out.
 * x rows are ldx floats apart, y rows ldy apart; w is (n_out, n_in) row-major.
 * Rows of w are split across the pool's threads. */
void eng_matmul(eng_pool_t *pool, float *y, size_t ldy, const float *x, size_t ldx,
                const float *w, size_t n_tok, size_t n_in, size_t n_out);

/* Dot product of two float vectors of length n. */
float eng_dot(const float *a, const float *b, size_t n);

/* y = x / sqrt(mean(x^2) + eps) * weight, over n values (x may equal y). */
void eng_rmsnorm(float *y, const float *x, const float *weight, size_t n, float eps);

/* x = silu(x) * g elementwise: x/(1+exp(-x)) * g. */
void eng_silu_mul(float *x, const float *g, size_t n);

/* The RoPE inverse frequencies (qk_rope/2 values), with YaRN's ramp between
 * the beta_fast/beta_slow correction dims when cfg->yarn. */
void eng_rope_inv_freq(const eng_config_t *cfg, float *inv_freq);

/* Rotates the dim-wide vector v at position pos: adjacent pairs (2i, 2i+1)
 * when interleave, else halves (i, i+dim/2); cos/sin scaled by attn_factor. */
void eng_rope_apply(float *v, int dim, const float *inv_freq, int pos, bool interleave,
                    float attn_factor);

/* In-place softmax over n values. */
void eng_softmax(float *x, size_t n);

#endif
