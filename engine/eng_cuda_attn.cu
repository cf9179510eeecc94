/* eng_cuda_attn: MLA attention on the GPU.
 * Decode (attn_absorbed of eng_forward.c): queries folded into the latent
 * space attend to the paged latent cache directly, split by 64-token cache
 * block so a small batch still fills the GPU, then the splits are merged.
 * Two kernels compute the same partial results: with bfloat16 weights the
 * block's cache rows are staged in shared memory once and both products run
 * on the tensor cores (WMMA, bf16 in, float32 accumulate); with float32
 * weights (the checking mode) a CUDA-core kernel keeps float32 throughout.
 * Prefill (attn_reference): latents gathered and expanded by a GEMM
 * (eng_cuda_forward.cu), scores and values through cuBLAS (eng_cuda_gemm.cu),
 * and the causal softmax here. */
#include "eng_cuda_dev.cuh"

#include <cuda_pipeline.h>
#include <math.h>
#include <mma.h>
#include <stdlib.h>
#include <string.h>

/* What a block of either decode kernel works on: grid (row, 16-head chunk,
 * split), split s = cached positions [64 s, 64 s + 64) of the row. */
typedef struct att_block {
    cu_att_row_t R;
    int h0, hc; /* first head, heads in the chunk */
    int cnt;    /* positions of the split inside the row's context */
    float *pm;  /* the chunk's (m, l) pairs of this split in pml */
} att_block_t;

/* Fills b for this block. A split past the row's context writes (-inf, 0)
 * for its heads (the merge skips it) and returns false: the block leaves. */
__device__ __forceinline__ bool att_block_begin(att_block_t *b, const cu_att_row_t *rows,
                                                float *pml, int nh, int max_splits)
{
    b->R = rows[blockIdx.x];
    b->h0 = blockIdx.y * CU_ATT_HEADS;
    b->hc = min(CU_ATT_HEADS, nh - b->h0);
    b->cnt = min(ENG_KV_BLOCK, b->R.n_ctx - (int)blockIdx.z * ENG_KV_BLOCK);
    b->pm = pml + (((size_t)blockIdx.x * max_splits + blockIdx.z) * nh + b->h0) * 2;
    if (b->cnt > 0)
        return true;
    if (threadIdx.x < (unsigned)b->hc) {
        b->pm[2 * threadIdx.x] = -INFINITY;
        b->pm[2 * threadIdx.x + 1] = 0.0f;
    }
    return false;
}

/* ---- absorbed decode attention (attn_absorbed) on CUDA cores ----
 * The float32 form (and any shape). Block (row, head chunk of 16, split): split s covers positions
 * [64 s, 64 s + 64) of the row's context = one cache block, read once for the
 * chunk's 16 heads (MQA: every head attends to the same 576-wide rows).
 *   pass 1: one warp per position: scores of 16 heads (q_lat | q_rot) . row
 *   pass 2: per head max and exp-sum over the split
 *   pass 3: one thread per latent dim: o[h][k] = sum_j p[h][j] c_j[k]
 * Partial (o, m, l) per split; k_att_combine merges them. */
template <typename T>
__global__ void k_att_absorbed(const T *kv, const float *qlat, float *po, float *pml,
                               const cu_att_row_t *rows, const int32_t *tables, int nh, int kvl,
                               int rope, int layer, int n_layers, float scale, int max_splits)
{
    extern __shared__ float smem[];
    const int row = kvl + rope;
    float *sq = smem;                          /* (16, row) */
    float *sp = smem + CU_ATT_HEADS * row;     /* (16, 64) */
    att_block_t B;
    if (!att_block_begin(&B, rows, pml, nh, max_splits))
        return;
    const cu_att_row_t R = B.R;
    const int h0 = B.h0, hc = B.hc, cnt = B.cnt, split = blockIdx.z;
    float *pm = B.pm;
    const float *qsrc = qlat + ((size_t)R.row * nh + h0) * row;
    for (int i = threadIdx.x; i < hc * row; i += blockDim.x)
        sq[i] = qsrc[i];
    __syncthreads();
    const T *base = kv_row(kv, tables[R.table + split], layer, 0, n_layers, row);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (int j = warp; j < cnt; j += nwarps) {
        const T *c = base + (size_t)j * row;
        float acc[CU_ATT_HEADS];
#pragma unroll
        for (int h = 0; h < CU_ATT_HEADS; h++)
            acc[h] = 0.0f;
        for (int d = lane; d < row; d += 32) {
            float cv = ld(c, d);
#pragma unroll
            for (int h = 0; h < CU_ATT_HEADS; h++)
                if (h < hc)
                    acc[h] += sq[h * row + d] * cv;
        }
#pragma unroll
        for (int h = 0; h < CU_ATT_HEADS; h++) {
            float v = acc[h];
            for (int o = 16; o > 0; o >>= 1)
                v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0 && h < hc)
                sp[h * ENG_KV_BLOCK + j] = v * scale;
        }
    }
    __syncthreads();
    if (threadIdx.x < (unsigned)hc) {
        float *p = sp + threadIdx.x * ENG_KV_BLOCK;
        float m = -INFINITY, l = 0.0f;
        for (int j = 0; j < cnt; j++)
            m = p[j] > m ? p[j] : m;
        for (int j = 0; j < cnt; j++) {
            p[j] = expf(p[j] - m);
            l += p[j];
        }
        pm[2 * threadIdx.x] = m;
        pm[2 * threadIdx.x + 1] = l;
    }
    __syncthreads();
    float *out = po + (((size_t)blockIdx.x * max_splits + split) * nh + h0) * kvl;
    for (int k = threadIdx.x; k < kvl; k += blockDim.x) {
        float acc[CU_ATT_HEADS];
#pragma unroll
        for (int h = 0; h < CU_ATT_HEADS; h++)
            acc[h] = 0.0f;
        for (int j = 0; j < cnt; j++) {
            float cv = ld(base, (size_t)j * row + k);
#pragma unroll
            for (int h = 0; h < CU_ATT_HEADS; h++)
                if (h < hc)
                    acc[h] += sp[h * ENG_KV_BLOCK + j] * cv;
        }
#pragma unroll
        for (int h = 0; h < CU_ATT_HEADS; h++)
            if (h < hc)
                out[(size_t)h * kvl + k] = acc[h];
    }
}

/* Merges the splits of one (row, head): o = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s.
 * The per-split weights e^(m_s - M) are computed once, in parallel, into
 * shared memory (S <= CU_ATT_COMBINE_SPLITS; longer rows loop in chunks of
 * that many), then each thread sums its columns over the splits. */
#define CU_ATT_COMBINE_SPLITS 2048
__global__ void k_att_combine(float *olat, const float *po, const float *pml,
                              const cu_att_row_t *rows, int nh, int kvl, int max_splits)
{
    __shared__ float wsh[CU_ATT_COMBINE_SPLITS], red[32];
    const cu_att_row_t R = rows[blockIdx.x];
    const int h = blockIdx.y;
    const int S = (R.n_ctx + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    const float *pm = pml + ((size_t)blockIdx.x * max_splits * nh + h) * 2;
    const size_t sstride = (size_t)nh * 2; /* between splits in pml */
    float M = -INFINITY;
    for (int s = threadIdx.x; s < S; s += blockDim.x)
        if (pm[s * sstride + 1] > 0.0f)
            M = fmaxf(M, pm[s * sstride]);
    for (int o = 16; o > 0; o >>= 1)
        M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = M;
    __syncthreads();
    M = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++)
        M = fmaxf(M, red[i]);
    float L = 0.0f;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        float l = pm[s * sstride + 1];
        if (l > 0.0f)
            L += l * expf(pm[s * sstride] - M);
    }
    L = block_sum(L, red);
    const float *o = po + ((size_t)blockIdx.x * max_splits * nh + h) * kvl;
    const size_t ostride = (size_t)nh * kvl;
    float *dst = olat + ((size_t)R.row * nh + h) * kvl;
    for (int k = threadIdx.x; k < kvl; k += blockDim.x)
        dst[k] = 0.0f;
    for (int s0 = 0; s0 < S; s0 += CU_ATT_COMBINE_SPLITS) {
        const int sn = min(CU_ATT_COMBINE_SPLITS, S - s0);
        __syncthreads(); /* the previous chunk's weights are used up */
        for (int s = threadIdx.x; s < sn; s += blockDim.x) {
            float l = pm[(s0 + s) * sstride + 1];
            wsh[s] = l > 0.0f ? expf(pm[(s0 + s) * sstride] - M) : 0.0f;
        }
        __syncthreads();
        /* loads unconditional (8 in flight per thread); a split whose weight
         * underflowed to 0 adds nothing (a select, so even a non-finite o
         * there could not leak in) */
        for (int k = threadIdx.x; k < kvl; k += blockDim.x) {
            float acc = 0.0f;
            int s = 0;
            for (; s + 8 <= sn; s += 8) {
                float v[8];
#pragma unroll
                for (int u = 0; u < 8; u++)
                    v[u] = o[(size_t)(s0 + s + u) * ostride + k];
#pragma unroll
                for (int u = 0; u < 8; u++)
                    acc += wsh[s + u] != 0.0f ? v[u] * wsh[s + u] : 0.0f;
            }
            for (; s < sn; s++)
                if (wsh[s] != 0.0f)
                    acc += o[(size_t)(s0 + s) * ostride + k] * wsh[s];
            dst[k] += acc / L;
        }
    }
}

/* ---- absorbed decode attention on the tensor cores (bfloat16) ----
 * Same grid, partial layout and meaning as k_att_absorbed. Per block:
 *   1. the split's cache rows (one 64-row block of one layer, contiguous in
 *      the pool) into shared memory with 16-byte asynchronous copies where
 *      aligned (all of a thread's copies in flight together); rows past the
 *      context and the padding columns zeroed (0 * garbage could be NaN);
 *      the chunk's q_lat rows (the bf16 copy the caller made, see
 *      cu_att_q_bf16) beside them the same way, zero-padded
 *   2. scores S = Q C^T (16 x 64, k = row padded to 16): warps 0-3, one 16x16
 *      tile each, WMMA 16x16x16
 *   3. per head: m = max, p = e^(s*scale - m) rounded to bf16, l = sum of the
 *      rounded p (so o / l uses exactly the weights that were multiplied)
 *   4. O = P C[:, :kvl] (16 x kvl, k = 64): 16x16 tiles spread over 8 warps,
 *      staged through shared memory (reusing the cache rows' space) so only
 *      the chunk's heads and kvl columns are written.
 * The tile is read from HBM once for 16 heads: the kernel is bound by that
 * read (64 x 576 x 2 = 72 KiB per block at V2-Lite shapes). */
#define TC_PAD 8          /* bf16 elements after each staged row: rows 4 banks apart */
#define TC_SLD (ENG_KV_BLOCK + 4)   /* float scores row */
#define TC_PLD (ENG_KV_BLOCK + 8)   /* bf16 probabilities row */
#define TC_MAX_OUT_TILES 6          /* 16-column output tiles per warp: kvl <= 8 * 6 * 16 */

__host__ __device__ static inline int tc_ld(int kvl, int rope)
{
    return ((kvl + rope + 15) & ~15) + TC_PAD;
}

static size_t tc_smem_bytes(int kvl, int rope)
{
    size_t ld = (size_t)tc_ld(kvl, rope);
    return (ENG_KV_BLOCK + CU_ATT_HEADS) * ld * 2 + CU_ATT_HEADS * TC_SLD * 4 +
           CU_ATT_HEADS * TC_PLD * 2;
}

/* Stages n rows of `row` bf16 values, contiguous at src, into dst rows ld
 * apart: 16-byte asynchronous copies when row % 8 == 0 and src is 16-byte
 * aligned (all of a thread's copies in flight together, committed as one
 * group: the caller waits), element copies otherwise; then zeroes columns
 * row..rowp of those rows and the whole of rows n..total (0 * garbage could
 * be NaN in the products). */
__device__ __forceinline__ void stage_rows(__nv_bfloat16 *dst, int ld, const __nv_bfloat16 *src,
                                           int n, int total, int row, int rowp)
{
    const __nv_bfloat16 zero = __float2bfloat16_rn(0.0f);
    if ((row & 7) == 0 && ((uintptr_t)src & 15) == 0) {
        const int vpr = row / 8;
        const uint4 *s4 = (const uint4 *)src;
        for (int i = threadIdx.x; i < n * vpr; i += blockDim.x) {
            int j = i / vpr, v = i - j * vpr;
            __pipeline_memcpy_async(dst + (size_t)j * ld + v * 8, s4 + i, 16);
        }
        __pipeline_commit();
    } else {
        for (int i = threadIdx.x; i < n * row; i += blockDim.x) {
            int j = i / row, d = i - j * row;
            dst[(size_t)j * ld + d] = src[i];
        }
    }
    const int padw = rowp - row;
    for (int i = threadIdx.x; i < n * padw; i += blockDim.x)
        dst[(size_t)(i / padw) * ld + row + i % padw] = zero;
    for (int i = threadIdx.x; i < (total - n) * rowp; i += blockDim.x)
        dst[(size_t)(n + i / rowp) * ld + i % rowp] = zero;
}

__global__ void __launch_bounds__(256)
    k_att_absorbed_tc(const __nv_bfloat16 *kv, const __nv_bfloat16 *qlat, float *po, float *pml,
                      const cu_att_row_t *rows, const int32_t *tables, int nh, int kvl, int rope,
                      int layer, int n_layers, float scale, int max_splits)
{
    using namespace nvcuda;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int row = kvl + rope, rowp = (row + 15) & ~15, kvlp = (kvl + 15) & ~15;
    const int ld = tc_ld(kvl, rope);
    __nv_bfloat16 *tile = (__nv_bfloat16 *)smem_raw;          /* (64, ld) */
    __nv_bfloat16 *sq = tile + ENG_KV_BLOCK * ld;              /* (16, ld) */
    float *ss = (float *)(sq + CU_ATT_HEADS * ld);             /* (16, TC_SLD) */
    __nv_bfloat16 *sp = (__nv_bfloat16 *)(ss + CU_ATT_HEADS * TC_SLD); /* (16, TC_PLD) */

    att_block_t B;
    if (!att_block_begin(&B, rows, pml, nh, max_splits))
        return;
    const cu_att_row_t R = B.R;
    const int h0 = B.h0, hc = B.hc, cnt = B.cnt, split = blockIdx.z;
    float *pm = B.pm;
    /* 1. stage the cache rows and the chunk's q_lat rows (bf16 already) */
    const __nv_bfloat16 *base = kv_row(kv, tables[R.table + split], layer, 0, n_layers, row);
    stage_rows(tile, ld, base, cnt, ENG_KV_BLOCK, row, rowp);
    stage_rows(sq, ld, qlat + ((size_t)R.row * nh + h0) * row, hc, CU_ATT_HEADS, row, rowp);
    __pipeline_wait_prior(0); /* this thread's copies (none on the scalar paths) */
    __syncthreads();
    /* 2. scores */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (warp < ENG_KV_BLOCK / 16) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int d0 = 0; d0 < rowp; d0 += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
            wmma::load_matrix_sync(a, sq + d0, ld);
            wmma::load_matrix_sync(b, tile + (size_t)warp * 16 * ld + d0, ld);
            wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(ss + warp * 16, acc, TC_SLD, wmma::mem_row_major);
    }
    __syncthreads();
    /* 3. softmax per head over the split (2 heads per warp, 2 positions per lane) */
    for (int h = warp; h < CU_ATT_HEADS; h += blockDim.x >> 5) {
        float s0 = lane < cnt ? ss[h * TC_SLD + lane] * scale : -INFINITY;
        float s1 = lane + 32 < cnt ? ss[h * TC_SLD + lane + 32] * scale : -INFINITY;
        float m = fmaxf(s0, s1);
        for (int o = 16; o > 0; o >>= 1)
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        __nv_bfloat16 p0 = __float2bfloat16_rn(lane < cnt ? expf(s0 - m) : 0.0f);
        __nv_bfloat16 p1 = __float2bfloat16_rn(lane + 32 < cnt ? expf(s1 - m) : 0.0f);
        float l = __bfloat162float(p0) + __bfloat162float(p1);
        for (int o = 16; o > 0; o >>= 1)
            l += __shfl_xor_sync(0xffffffffu, l, o);
        sp[h * TC_PLD + lane] = p0;
        sp[h * TC_PLD + lane + 32] = p1;
        if (lane == 0 && h < hc) {
            pm[2 * h] = m;
            pm[2 * h + 1] = l;
        }
    }
    __syncthreads();
    /* 4. values */
    const int nct = kvlp / 16, nw = blockDim.x >> 5;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> o[TC_MAX_OUT_TILES];
#pragma unroll
    for (int t = 0; t < TC_MAX_OUT_TILES; t++) {
        const int ct = warp + t * nw;
        if (ct < nct) {
            wmma::fill_fragment(o[t], 0.0f);
            for (int jj = 0; jj < ENG_KV_BLOCK; jj += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
                wmma::load_matrix_sync(a, sp + jj, TC_PLD);
                wmma::load_matrix_sync(b, tile + (size_t)jj * ld + ct * 16, ld);
                wmma::mma_sync(o[t], a, b, o[t]);
            }
        }
    }
    __syncthreads(); /* every warp is done reading the tile: stage the output there */
    float *stage = (float *)tile;
    const int sld = kvlp + 4;
#pragma unroll
    for (int t = 0; t < TC_MAX_OUT_TILES; t++) {
        const int ct = warp + t * nw;
        if (ct < nct)
            wmma::store_matrix_sync(stage + ct * 16, o[t], sld, wmma::mem_row_major);
    }
    __syncthreads();
    float *out = po + (((size_t)blockIdx.x * max_splits + split) * nh + h0) * kvl;
    for (int i = threadIdx.x; i < hc * kvl; i += blockDim.x) {
        int h = i / kvl, k = i - h * kvl;
        out[i] = stage[h * sld + k];
    }
}

int cu_att_setup(char *err, size_t errlen)
{
    size_t most = tc_smem_bytes(CU_MAX_ROW - 64, 64); /* the widest row the backend takes */
    CU_TRY(cudaFuncSetAttribute(k_att_absorbed_tc, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)most));
    return 0;
}

/* Whether the tensor-core kernel takes these shapes; TG_CUDA_ATT_CC=1 forces
 * the CUDA-core kernel (comparisons). */
static bool tc_fits(int kvl, int rope)
{
    static int force_cc = -1;
    if (force_cc < 0) {
        const char *e = getenv("TG_CUDA_ATT_CC");
        force_cc = e && !strcmp(e, "1");
    }
    int kvlp = (kvl + 15) & ~15;
    return !force_cc && kvlp / 16 <= 8 * TC_MAX_OUT_TILES && kvl + rope <= CU_MAX_ROW;
}

bool cu_att_q_bf16(cu_dtype_t dt, int kvl, int rope)
{
    return dt == CU_BF16 && tc_fits(kvl, rope);
}

int cu_att_absorbed(cudaStream_t s, cu_dtype_t dt, const void *kv, const float *qlat,
                    const void *qlat16, float *olat, float *po, float *pml,
                    const cu_att_row_t *rows, int n_rows, int max_splits, const int32_t *tables,
                    int nh, int kvl, int rope, int layer, int n_layers, float scale, char *err,
                    size_t errlen)
{
    if (n_rows == 0)
        return 0;
    int row = kvl + rope;
    dim3 grid((unsigned)n_rows, (unsigned)((nh + CU_ATT_HEADS - 1) / CU_ATT_HEADS),
              (unsigned)max_splits);
    if (cu_att_q_bf16(dt, kvl, rope)) {
        k_att_absorbed_tc<<<grid, 256, tc_smem_bytes(kvl, rope), s>>>(
            (const __nv_bfloat16 *)kv, (const __nv_bfloat16 *)qlat16, po, pml, rows, tables, nh,
            kvl, rope, layer, n_layers, scale, max_splits);
        CU_LAUNCHED("att_absorbed_tc");
    } else {
        size_t sm = (size_t)(CU_ATT_HEADS * row + CU_ATT_HEADS * ENG_KV_BLOCK) * sizeof(float);
        DISPATCH_T(dt, k_att_absorbed<T><<<grid, 256, sm, s>>>((const T *)kv, qlat, po, pml,
                                                               rows, tables, nh, kvl, rope,
                                                               layer, n_layers, scale,
                                                               max_splits));
        CU_LAUNCHED("att_absorbed");
    }
    /* a thread per latent column, up to 512 */
    const int ct = kvl < 512 ? ((kvl + 31) / 32) * 32 : 512;
    k_att_combine<<<dim3((unsigned)n_rows, (unsigned)nh), ct, 0, s>>>(olat, po, pml, rows, nh, kvl,
                                                                      max_splits);
    CU_LAUNCHED("att_combine");
    return 0;
}

/* ---- prefill: expanded keys/values (attn_reference) ---- */

template <typename T>
__global__ void k_gather_latent(T *lat, float *krot, const T *kv, const int32_t *table, int kvl,
                                int rope, int layer, int n_layers)
{
    int j = blockIdx.x, row = kvl + rope;
    const T *src = kv_row(kv, table[j / ENG_KV_BLOCK], layer, j % ENG_KV_BLOCK, n_layers, row);
    for (int d = threadIdx.x; d < row; d += blockDim.x) {
        if (d < kvl)
            lat[(size_t)j * kvl + d] = src[d];
        else
            krot[(size_t)j * rope + d - kvl] = ld(src, d);
    }
}

int cu_gather_latent(cudaStream_t s, cu_dtype_t dt, void *lat, float *krot, const void *kv,
                     const int32_t *table, int ctx, int kvl, int rope, int layer, int n_layers,
                     char *err, size_t errlen)
{
    if (ctx == 0)
        return 0;
    DISPATCH_T(dt, k_gather_latent<T><<<ctx, 128, 0, s>>>((T *)lat, krot, (const T *)kv, table,
                                                          kvl, rope, layer, n_layers));
    CU_LAUNCHED("gather_latent");
    return 0;
}

/* Causal softmax of a chunk of prefill scores: S holds, per head h, n rows
 * (queries p0 + t0 + t) of m keys, row-major, (h * n + t) * m; row t keeps
 * keys j <= first_last_key + t (eng_softmax over them) and gets zeros after,
 * so the values product can run over all m keys. P (same layout, element
 * type T) may alias S when T is float. Block per (row, head). */
template <typename T>
__global__ void k_causal_softmax(T *P, const float *S, int n, int m, int first_last_key)
{
    __shared__ float sh[32];
    const int t = blockIdx.x, h = blockIdx.y;
    const size_t off = ((size_t)h * n + t) * m;
    const float *r = S + off;
    T *p = P + off;
    const int keep = min(m, first_last_key + t + 1);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < keep; j += blockDim.x)
        mx = fmaxf(mx, r[j]);
    for (int o = 16; o > 0; o >>= 1)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0)
        sh[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++)
        mx = fmaxf(mx, sh[i]);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < keep; j += blockDim.x)
        sum += expf(r[j] - mx);
    sum = block_sum(sum, sh);
    for (int j = threadIdx.x; j < m; j += blockDim.x)
        st(p, j, j < keep ? expf(r[j] - mx) / sum : 0.0f);
}

int cu_causal_softmax(cudaStream_t s, cu_dtype_t dt, void *P, const float *S, int nh, int n,
                      int m, int first_last_key, char *err, size_t errlen)
{
    if (n == 0 || nh == 0)
        return 0;
    DISPATCH_T(dt, k_causal_softmax<T><<<dim3((unsigned)n, (unsigned)nh), 256, 0, s>>>(
                       (T *)P, S, n, m, first_last_key));
    CU_LAUNCHED("causal_softmax");
    return 0;
}
