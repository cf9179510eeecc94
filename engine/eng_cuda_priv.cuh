/* eng_cuda_priv: what the CUDA backend's .cu files share and nothing else
 * sees: the error-checking macros (every CUDA and cuBLAS call returns an error
 * with the library's own message instead of exiting), the device weights, the
 * backend state, the growable scratch buffers, the profiler and the kernel
 * launchers. Weights and the KV cache have one element type per backend:
 * bfloat16 (default) or float32 (checks); activations are float32. */
#ifndef ENG_CUDA_PRIV_CUH
#define ENG_CUDA_PRIV_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "eng_backend.h"
#include "eng_kvcache.h"
#include "eng_seq_priv.h"
}

#include <stdint.h>
#include <stdio.h>

/* Functions using these have `char *err, size_t errlen` in scope and return
 * int (0 ok, -1 failed). */
#define CU_TRY(call)                                                                               \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            snprintf(err, errlen, "CUDA error in %s (%s:%d): %s", #call, __FILE__, __LINE__,      \
                     cudaGetErrorString(e_));                                                      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

#define CUBLAS_TRY(call)                                                                           \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            snprintf(err, errlen, "cuBLAS error in %s (%s:%d): %s", #call, __FILE__, __LINE__,    \
                     cublasGetStatusString(s_));                                                   \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* After a kernel launch: a bad configuration shows up here. */
#define CU_LAUNCHED(name) CU_TRY(cudaGetLastError())

/* Calls a function that returns 0 / -1 with err already set. */
#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return -1;                                                                             \
    } while (0)

/* Element type of weights and cache rows. */
typedef enum { CU_BF16 = 0, CU_F32 = 1 } cu_dtype_t;

static inline size_t cu_dtype_size(cu_dtype_t t)
{
    return t == CU_F32 ? 4 : 2;
}

/* Largest shapes the kernels are written for (checked at create). */
#define CU_MAX_EXPERTS 256
#define CU_MAX_TOPK 16
#define CU_ATT_HEADS 16   /* heads per block of the absorbed decode kernel */
#define CU_MAX_ROW 704    /* kv_lora + rope: q rows of 16 heads in 48 KB of shared memory */

typedef struct cu_layer {
    float *in_norm, *post_norm, *q_a_norm, *kv_a_norm; /* float32 always */
    void *q_proj, *q_a, *q_b, *kv_a, *kv_b, *o;         /* element type */
    bool moe;
    void *dense_gu, *dense_down;   /* (2*inter, H): gate rows then up rows; (H, inter) */
    float *gate;                   /* (E, H) float32: routing in float32 as the reference */
    float *gate_bias;              /* (E) or NULL */
    void *exp_gu, *exp_down;       /* (E, 2*I, H) and (E, H, I) */
    void *sh_gu, *sh_down;         /* shared experts, width I*n_shared */
} cu_layer_t;

/* A device buffer that grows on demand (contents not kept across growth). */
typedef struct cu_buf {
    void *p;
    size_t cap;
} cu_buf_t;

/* Per-kernel timing (profile mode). */
#define CU_PROF_MAX 64
typedef struct cu_prof_entry {
    const char *name;
    double ms, bytes;
    long calls;
} cu_prof_entry_t;

typedef struct cu_prof_mark {
    int entry;
    cudaEvent_t e0, e1;
    double bytes;
} cu_prof_mark_t;

typedef struct cu_backend {
    const eng_model_t *m;
    cu_dtype_t dt;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *embed, *lm_head;
    float *final_norm;
    cu_layer_t *layers;
    float *inv_freq; /* (rope/2) */
    float scale;     /* softmax scale */
    int moe_device_max; /* routed experts on the device (no host wait) when a step
                           has at most this many (token, expert) pairs */
    bool expert_mma;    /* the device path's products on the tensor cores */
    bool expert_mma_always; /* also for one-token steps (TG_CUDA_EXPERTS=mma) */
    long prefill_scores; /* float32 scores of one prefill attention chunk at most */
    /* KV cache: (n_blocks, n_layers, 64, row) elements; bookkeeping on the host */
    void *kv;
    eng_kvcache_t *kc;
    size_t weight_bytes;
    eng_cuda_info_t info;
    /* scratch */
    cu_buf_t b_x, b_xn, b_xt, b_q, b_qa, b_rows, b_attn, b_gu, b_act, b_glog, b_idx, b_wt,
        b_xg, b_gug, b_actg, b_yg, b_slot, b_src, b_qlat, b_olat, b_po, b_pml, b_lat, b_krot,
        b_kvb, b_scores, b_p16, b_q16, b_kvb16, b_krot16, b_qlat16, b_lrows, b_lnorm, b_logits,
        b_amax, b_meta, b_first;
    void *h_meta;      /* pinned host staging for per-step metadata */
    size_t h_meta_cap;
    /* CUDA graphs of decode steps (on unless TG_CUDA_GRAPH=0), one per step
     * shape, CU_GRAPH_SLOTS of them, least recently used replaced */
#define CU_GRAPH_SLOTS 4
#define CU_GRAPH_KEY 5
    cudaGraphExec_t gexec[CU_GRAPH_SLOTS];          /* NULL: empty slot */
    long long gkey[CU_GRAPH_SLOTS][CU_GRAPH_KEY];   /* the shape each one replays */
    long graph_moves[CU_GRAPH_SLOTS]; /* cu_buf_moves at capture: it must still match */
    long long gused[CU_GRAPH_SLOTS], graph_clock;   /* last use, for the replacement */
    long long gcand[CU_GRAPH_KEY];    /* the last shape run eagerly: seen twice = captured */
    void *blas_ws;     /* cuBLAS workspace, fixed (graph capture must not allocate) */
    bool graphs; /* decode steps replayed from CUDA graphs (above) */
    long graph_captures, graph_replays, graph_failures;
    /* profile */
    bool profile;
    cu_prof_entry_t prof[CU_PROF_MAX];
    int n_prof;
    cu_prof_mark_t *marks;
    int n_marks, cap_marks;
} cu_backend_t;

/* ---- helpers (eng_cuda_backend.cu) ---- */

/* Makes b hold at least bytes (a fresh allocation when it must grow, which
 * bumps cu_buf_moves: a captured graph pointing at the old one is stale). */
extern long cu_buf_moves;
int cu_buf_ensure(cu_buf_t *b, size_t bytes, char *err, size_t errlen);
void cu_buf_free(cu_buf_t *b);

/* Makes the pinned host staging area at least bytes. */
int cu_meta_ensure(cu_backend_t *cb, size_t bytes, char *err, size_t errlen);

/* Profile marks around a kernel (no-ops unless cb->profile). bytes: what the
 * kernel must move at least (weights + activations), for its bandwidth. */
int cu_prof_begin(cu_backend_t *cb, const char *name, double bytes, char *err, size_t errlen);
int cu_prof_end(cu_backend_t *cb, char *err, size_t errlen);
/* After the stream is synchronised: folds the marks into the table. */
int cu_prof_collect(cu_backend_t *cb, char *err, size_t errlen);

/* ---- GEMM (eng_cuda_gemm.cu) ---- */

/* y[t][o] = beta*y[t][o] + sum_i x[t][i] * w[o][i], t < n_tok, o < n_out (the CPU
 * eng_matmul contract). x and w have element type dt (y float32); rows ldx,
 * ldw, ldy elements apart. Float32 accumulation, no TF32. */
int cu_gemm_xwt(cublasHandle_t h, cu_dtype_t dt, float *y, int ldy, const void *x, int ldx,
                const void *w, int ldw, int n_tok, int n_in, int n_out, float beta, char *err,
                size_t errlen);

/* Batched over heads: y_h = x_h * W_h (W_h row-major (n_in, n_out), ldw), with
 * per-head strides; used to fold W_UK into the query. */
int cu_gemm_xw_batched(cublasHandle_t h, cu_dtype_t dt, float *y, int ldy, long long sy,
                       const void *x, int ldx, long long sx, const void *w, int ldw, long long sw,
                       int n_tok, int n_in, int n_out, int batch, char *err, size_t errlen);

/* Batched over heads: y_h = x_h * W_h^T (W_h row-major (n_out, n_in)); W_UV. */
int cu_gemm_xwt_batched(cublasHandle_t h, cu_dtype_t dt, float *y, int ldy, long long sy,
                        const void *x, int ldx, long long sx, const void *w, int ldw,
                        long long sw, int n_tok, int n_in, int n_out, int batch, char *err,
                        size_t errlen);

/* ---- matrix-vector kernels (eng_cuda_gemv.cu); all launch on stream s ---- */

/* Rows up to which cu_gemm_xwt / cu_gemm_xw(t)_batched use the kernels below
 * instead of cuBLAS (unless TG_CUDA_GEMV=0). */
#define CU_GEMV_MAX_TOK 8

/* y[a] = W[e] x[a] for the sorted rows of every expert e (W: (E, n_out,
 * n_in) element type dt; x rows ldx, y rows ldy apart; first: cu_moe_sort's
 * routing table, on the device). slots: how many experts at most have rows
 * (min(assignments, E)), which bounds the work items (listed expert, column
 * tile) that a grid of about one wave of blocks walks. */
int cu_expert_gemv(cudaStream_t s, cu_dtype_t dt, float *y, int ldy, const void *x, int ldx,
                   const void *W, const int32_t *first, int E, int slots, int n_in, int n_out,
                   char *err, size_t errlen);
/* y_b[t][o] = sum_i x_b[t][i] * w_b[o][i] (+ beta * y_b[t][o]; beta 0: y is
 * not read) for b < batch, t < n_tok <= CU_GEMV_MAX_TOK, o < n_out, with
 * x_b = x + b*sx (rows ldx apart), w_b = w + b*sw (rows ldw), y_b = y + b*sy
 * (rows ldy): cu_gemm_xwt (batch 1) and cu_gemm_xwt_batched. Float32
 * accumulation. -1 with err when n_tok or batch exceed the limits. */
int cu_gemv_xwt(cudaStream_t s, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
                int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok, int n_in,
                int n_out, int batch, float beta, char *err, size_t errlen);
/* y_b[t][o] = sum_i x_b[t][i] * w_b[i][o] (w_b row-major (n_in, n_out), rows
 * ldw apart), otherwise as cu_gemv_xwt with beta 0: cu_gemm_xw_batched. */
int cu_gemv_xw(cudaStream_t s, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
               int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok, int n_in,
               int n_out, int batch, char *err, size_t errlen);

/* ---- kernels (eng_cuda_kernels.cu, eng_cuda_attn.cu); all launch on stream s ---- */

/* Routing parameters for the gate kernel. */
typedef struct cu_route_cfg {
    int E, K, n_group, topk_group;
    int softmax;    /* 1: softmax scores (V2), 0: sigmoid (V3) */
    int group_rank; /* eng_group_rank_t */
    int norm_topk;
    float routed_scale;
} cu_route_cfg_t;

/* Per-row work of the absorbed decode attention. */
typedef struct cu_att_row {
    int row;     /* row of the step (index into q_lat / o_lat) */
    int n_ctx;   /* positions it attends to: 0..n_ctx-1 */
    int table;   /* offset of its sequence's block table in the tables array */
} cu_att_row_t;

int cu_convert_f32(cudaStream_t s, cu_dtype_t dt, void *dst, const float *src, size_t n,
                   char *err, size_t errlen);
int cu_to_f32(cudaStream_t s, cu_dtype_t dt, float *dst, const void *src, size_t n, char *err,
              size_t errlen);
int cu_embed(cudaStream_t s, cu_dtype_t dt, float *x, const void *table, const int32_t *tokens,
             int n, int H, char *err, size_t errlen);
/* y[r] = rmsnorm(x[rows ? rows[r] : r]) over n values; x rows ldx apart, y
 * rows ldy apart (y may equal x when rows is NULL). */
int cu_rmsnorm(cudaStream_t s, float *y, int ldy, const float *x, int ldx, const int32_t *rows,
               const float *w, int n_rows, int n, float eps, char *err, size_t errlen);
/* Rotates n_vec vectors of dim at v + r*ldr + h*ldh (h < heads) with the
 * position pos[r]. */
int cu_rope(cudaStream_t s, float *v, int n_rows, int heads, long ldr, int ldh, int dim,
            const float *inv_freq, const int32_t *pos, bool interleave, float attn_factor,
            char *err, size_t errlen);
/* out (element type dt, ldo) = silu(gu[:, :inter]) * gu[:, inter:] per row. */
int cu_silu_mul(cudaStream_t s, cu_dtype_t dt, void *out, const float *gu, int n_rows, int inter,
                char *err, size_t errlen);
int cu_moe_route(cudaStream_t s, const cu_route_cfg_t *rc, const float *logits,
                 const float *bias, int32_t *idx, float *w, int n, char *err, size_t errlen);
/* xg[a] = x[src[a]] converted to dt (n_assign rows of H). */
int cu_gather_rows(cudaStream_t s, cu_dtype_t dt, void *xg, const float *x, const int32_t *src,
                   int n_assign, int H, char *err, size_t errlen);
/* On the device: the routing table first (2E + 2 ints: first[0..E], rows of
 * expert e are first[e]..first[e+1]; first[E+1 ..] the experts that have
 * rows, ascending, first[2E+1] of them), src[a] (the token of sorted row a)
 * and slot[t*K+k] (the sorted row of assignment (t, k)), stable in token
 * order. The expert kernels' work items cover the listed experts only. */
#define CU_ROUTE_TABLE(E) (2 * (E) + 2)
int cu_moe_sort(cudaStream_t s, const int32_t *idx, int NK, int K, int E, int32_t *first,
                int32_t *src, int32_t *slot, char *err, size_t errlen);
/* Blocks of kernel k (threads per block, no dynamic shared memory) that are
 * resident on the whole device at once, asked once (*cache): the grid of the
 * expert kernels, which walk their work items. */
int cu_resident_blocks(const void *k, int threads, int *cache);
/* The same product on the tensor cores (eng_cuda_experts.cu), bfloat16 only,
 * when cu_expert_mma_fits: reads up to CU_EXPERT_PAD_ROWS rows past the last
 * sorted row of x, which must exist and be finite (their results are
 * dropped). */
#define CU_EXPERT_PAD_ROWS 32 /* 7 would do (an 8-row tile); generous on purpose */
bool cu_expert_mma_fits(int n_in, int n_out, int ldx);
int cu_expert_mma(cudaStream_t s, float *y, int ldy, const void *x, int ldx, const void *W,
                  const int32_t *first, int E, int slots, int n_in, int n_out, char *err,
                  size_t errlen);
/* resid[t] += sum_k w[t*K+k] * yg[slot[t*K+k]] for t < n. */
int cu_moe_combine(cudaStream_t s, float *resid, const float *yg, const int32_t *slot,
                   const float *w, int n, int K, int H, char *err, size_t errlen);
/* Normalises the first kvl values of each new latent row (eps 1e-6), rotates
 * its rope part at pos[r] and stores it (element type) into the cache at
 * block dst_block[r], slot dst_slot[r], layer. */
int cu_kv_store(cudaStream_t s, cu_dtype_t dt, void *kv, float *rows, int n, int kvl, int rope,
                const float *norm_w, const float *inv_freq, const int32_t *pos,
                const int32_t *dst_block, const int32_t *dst_slot, int layer, int n_layers,
                bool interleave, float attn_factor, char *err, size_t errlen);
/* q_lat[r][h][kvl..row) = q[r][h][nope..qk) (the rotated rope part). */
int cu_qlat_rope(cudaStream_t s, float *qlat, const float *q, int n, int nh, int nope, int rope,
                 int kvl, char *err, size_t errlen);
/* Whether cu_att_absorbed runs the tensor-core kernel for these shapes; it
 * then reads q_lat from qlat16, a bf16 copy of qlat the caller made. */
bool cu_att_q_bf16(cu_dtype_t dt, int kvl, int rope);
/* Absorbed decode attention over the paged cache, split by 64-token block,
 * then combined: o_lat[row][h] for every entry of rows. */
int cu_att_absorbed(cudaStream_t s, cu_dtype_t dt, const void *kv, const float *qlat,
                    const void *qlat16, float *olat, float *po, float *pml,
                    const cu_att_row_t *rows, int n_rows, int max_splits, const int32_t *tables,
                    int nh, int kvl, int rope, int layer, int n_layers, float scale, char *err,
                    size_t errlen);
/* Gathers positions [0, ctx) of one sequence's latents for a layer: lat
 * (element type, ctx x kvl) and k_rot (float32, ctx x rope). */
int cu_gather_latent(cudaStream_t s, cu_dtype_t dt, void *lat, float *krot, const void *kv,
                     const int32_t *table, int ctx, int kvl, int rope, int layer, int n_layers,
                     char *err, size_t errlen);
/* Prefill attention of n query rows against m keys (eng_forward.c's
 * attn_reference): S_h = scale * (q_nope k_nope^T + q_rot k_rot^T) per head,
 * S (nh, n, m) float32 row-major; q rows (t, h, nope + rope), kvb rows (j, h,
 * nope key values then vd values), krot (j, rope), all of element type dt.
 * Then cu_causal_softmax into P (element type dt, same layout; may be S when
 * dt is float32), then out (t, h, vd) float32 = P_h V_h. */
int cu_att_scores(cublasHandle_t h, cu_dtype_t dt, float *S, const void *q, const void *kvb,
                  const void *krot, int n, int m, int nh, int nope, int rope, int vd,
                  float scale, char *err, size_t errlen);
int cu_att_values(cublasHandle_t h, cu_dtype_t dt, float *out, const void *P, const void *kvb,
                  int n, int m, int nh, int nope, int vd, char *err, size_t errlen);
/* Row t of each head keeps keys j <= first_last_key + t, softmaxed as
 * eng_softmax does, and zeros after; written to P in element type dt. */
int cu_causal_softmax(cudaStream_t s, cu_dtype_t dt, void *P, const float *S, int nh, int n,
                      int m, int first_last_key, char *err, size_t errlen);
/* Once per process before decode attention: lets the tensor-core kernel use
 * more than 48 KB of shared memory. */
int cu_att_setup(char *err, size_t errlen);
/* What a weight is, for random fills. */
enum { W_MATRIX = 0, W_NORM, W_BIAS };
/* n random weights of that kind into dst (benchmarks: shell models). */
int cu_fill_weights(cudaStream_t s, cu_dtype_t dt, void *dst, size_t n, int kind, float amp,
                    uint64_t seed, char *err, size_t errlen);
/* Random latent rows into every element of the listed cache blocks. */
int cu_fill_blocks(cudaStream_t s, cu_dtype_t dt, void *kv, const int32_t *blocks, int n_blocks,
                   size_t block_elems, uint64_t seed, char *err, size_t errlen);
/* out[r] = argmax of x[r] (n values, first on ties). */
int cu_argmax(cudaStream_t s, int32_t *out, const float *x, int n_rows, int n, char *err,
              size_t errlen);

#endif
