/* eng_cuda: the CUDA backend's extras in plain C (no CUDA types): device
 * presence, the benchmark's helpers (synthetic context, copy bandwidth,
 * per-kernel profile) and single-op entry points that run one kernel on
 * host arrays, so tests can hold each kernel against its CPU twin in
 * eng_ops.c / eng_moe.c. Built without CUDA, every function fails with
 * "built without CUDA" (and eng_cuda_device_ok says so). */
#ifndef ENG_CUDA_H
#define ENG_CUDA_H

#include "eng_backend.h"
#include "eng_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* 0 when a CUDA device can be used, else -1 with why (CUDA's message, or
 * "built without CUDA"). */
int eng_cuda_device_ok(char *err, size_t errlen);

/* Benchmarks: gives the (empty) sequence n_tokens positions of random latent
 * rows without running the model (a context to decode against). The blocks
 * are not registered for prefix reuse. 0 or -1 with err. */
int eng_cuda_seq_fill_synthetic(eng_backend_t *be, eng_bseq_t *seq, int n_tokens, uint64_t seed,
                                char *err, size_t errlen);

/* Device-to-device copy rate (bytes copied per second, best of a few runs of
 * a buffer of `bytes`): the bandwidth ceiling to compare kernels with. */
int eng_cuda_copy_bandwidth(eng_backend_t *be, size_t bytes, double *bytes_per_s, char *err,
                            size_t errlen);

/* The plan made at create (weights, KV pool). 0 or -1 with err. */
int eng_cuda_info(eng_backend_t *be, eng_cuda_info_t *out, char *err, size_t errlen);

/* CUDA graphs of decode steps (on unless TG_CUDA_GRAPH=0 at create): steps
 * captured, steps replayed from a graph, captures or replays that failed
 * (then the step ran eagerly; after a failed capture graphs stay off). */
void eng_cuda_graph_stats(eng_backend_t *be, long *captures, long *replays, long *failures);
/* Decode attention plans its splits in spans of this many cached tokens: a
 * decode step's graph serves a sequence until its length crosses a multiple
 * of it (then one more capture). */
#define ENG_CUDA_SPLIT_SPAN_TOKENS 1024

/* Device memory in use now (total - free) and the total. */
int eng_cuda_mem_used(eng_backend_t *be, size_t *used, size_t *total, char *err, size_t errlen);

/* Per-kernel timing (backend created with opts.profile): clears the table /
 * prints one line per kernel: name, calls, ms per call, share of the time, and
 * GB/s of the bytes the kernel must move at least. Prints nothing without
 * profile mode. */
void eng_cuda_profile_reset(eng_backend_t *be);
/* Turns per-kernel timing on (table cleared) or off. */
void eng_cuda_profile_enable(eng_backend_t *be, bool on);
void eng_cuda_profile_print(eng_backend_t *be, FILE *f, int steps);

/* ---- single ops on host arrays (tests); each returns 0 or -1 with err ---- */

/* eng_rmsnorm on rows x (rows, n) into y. */
int eng_cuda_op_rmsnorm(float *y, const float *x, const float *w, int rows, int n, float eps,
                        char *err, size_t errlen);
/* eng_rope_apply on rows v (rows, dim), row r at position pos[r]. */
int eng_cuda_op_rope(float *v, int rows, int dim, const float *inv_freq, const int32_t *pos,
                     bool interleave, float attn_factor, char *err, size_t errlen);
/* out (rows, inter) = silu(gu[:, :inter]) * gu[:, inter:], in float32. */
int eng_cuda_op_silu_mul(float *out, const float *gu, int rows, int inter, char *err,
                         size_t errlen);
/* eng_moe_route on n rows of logits (n, n_routed). */
int eng_cuda_op_moe_route(const eng_config_t *cfg, const float *logits, const float *bias, int n,
                          int32_t *idx, float *w, char *err, size_t errlen);
/* eng_matmul: y (n_tok, n_out) = x w^T with bf16 (f32 false) or float32 operands. */
int eng_cuda_op_matmul(float *y, const float *x, const float *w, int n_tok, int n_in, int n_out,
                       bool f32, char *err, size_t errlen);
/* The three dense products of the backend (eng_cuda_priv.cuh: cu_gemm_xwt,
 * cu_gemm_xwt_batched, cu_gemm_xw_batched; n_tok <= 8 takes the
 * matrix-vector kernels unless TG_CUDA_GEMV=0), with any layout. */
typedef enum {
    ENG_CUDA_GEMM_XWT = 0,     /* y_t = x_t W^T, W (n_out, n_in), beta 0 or 1 */
    ENG_CUDA_GEMM_XWT_BATCHED, /* the same per batch b, beta 0 */
    ENG_CUDA_GEMM_XW_BATCHED   /* y_t = x_t W per batch b, W (n_in, n_out), beta 0 */
} eng_cuda_gemm_form_t;

typedef struct eng_cuda_gemm_case {
    eng_cuda_gemm_form_t form;
    int n_tok, n_in, n_out, batch;
    int ldx, ldw, ldy;    /* row strides in elements */
    long long sx, sw, sy; /* batch strides in elements (batched forms) */
    int x_off, w_off;     /* x and w start this many elements into their arrays */
    float beta;
    bool f32; /* float32 operands, else bfloat16 */
    /* y on the device left unwritten before the product (form XWT, beta 0,
     * ldy = n_out): only the product comes back. Under compute-sanitizer
     * initcheck, the copy back then shows whether the tool saw the writes. */
    bool y_fresh;
} eng_cuda_gemm_case_t;

/* Runs c on host arrays: x (nx floats) and w (nw) rounded to the element
 * type on the device, y (ny floats) copied in and back whole, so elements
 * outside the product must come back as they went. */
int eng_cuda_op_gemm(const eng_cuda_gemm_case_t *c, float *y, size_t ny, const float *x,
                     size_t nx, const float *w, size_t nw, char *err, size_t errlen);
/* The routed-expert kernels of small steps: sorts the n*K expert ids in idx
 * by expert (first (2E+2: offsets, then the experts with rows and their
 * count), src (n*K), slot (n*K) as cu_moe_sort), then
 * y (n*K, n_out) = W[e] x[src[a]] for each sorted row a of expert e, with W
 * (E, n_out, n_in) and x (n, n_in) rounded to bf16 unless f32; mma: the
 * tensor-core kernel (bf16, n_in % 16 == 0, n_out % 32 == 0). */
int eng_cuda_op_expert_rows(float *y, int32_t *first, int32_t *src, int32_t *slot,
                            const int32_t *idx, int n, int K, int E, const float *x,
                            const float *W, int n_in, int n_out, bool f32, bool mma, char *err,
                            size_t errlen);
/* eng_argmax per row of x (rows, n). */
int eng_cuda_op_argmax(int32_t *out, const float *x, int rows, int n, char *err, size_t errlen);

#endif
