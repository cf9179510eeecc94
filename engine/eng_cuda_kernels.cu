/* eng_cuda_kernels: the CUDA backend's own kernels (everything but the
 * GEMMs): conversions, embedding, RMSNorm, RoPE (both layouts; yarn lives in
 * the inverse frequencies), SwiGLU, the MoE gate, expert gather/combine, the
 * latent-cache store, MLA decode attention over the paged latent cache with
 * weight absorption (split by 64-token block, then combined), prefill
 * attention on expanded keys/values, and argmax. Each mirrors a CPU function
 * of eng_ops.c / eng_moe.c / eng_forward.c, named in its comment, and keeps
 * that function's float32 arithmetic order where it can. */
#include "eng_cuda_priv.cuh"

#include <math.h>

/* ---- element access: weights/cache are float or bfloat16, math is float ---- */

__device__ __forceinline__ float ld(const float *p, size_t i)
{
    return p[i];
}
__device__ __forceinline__ float ld(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}
__device__ __forceinline__ void st(float *p, size_t i, float v)
{
    p[i] = v;
}
__device__ __forceinline__ void st(__nv_bfloat16 *p, size_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

/* Runs the statement with T bound to the element type of dt. */
#define DISPATCH_T(dt, ...)                                                                        \
    do {                                                                                           \
        if ((dt) == CU_F32) {                                                                      \
            typedef float T;                                                                       \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            typedef __nv_bfloat16 T;                                                               \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
    } while (0)

static unsigned grid_for(size_t n, unsigned block)
{
    size_t g = (n + block - 1) / block;
    return (unsigned)(g > 65535u * 8u ? 65535u * 8u : (g ? g : 1));
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result. sh: 32 floats of shared memory. */
__device__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < nw; i++)
        s += sh[i];
    return s;
}

/* ---- conversions and embedding ---- */

template <typename T> __global__ void k_convert(T *dst, const float *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        st(dst, i, src[i]);
}

template <typename T> __global__ void k_to_f32(float *dst, const T *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = ld(src, i);
}

int cu_convert_f32(cudaStream_t s, cu_dtype_t dt, void *dst, const float *src, size_t n,
                   char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    DISPATCH_T(dt, k_convert<T><<<grid_for(n, 256), 256, 0, s>>>((T *)dst, src, n));
    CU_LAUNCHED("convert");
    return 0;
}

int cu_to_f32(cudaStream_t s, cu_dtype_t dt, float *dst, const void *src, size_t n, char *err,
              size_t errlen)
{
    if (n == 0)
        return 0;
    DISPATCH_T(dt, k_to_f32<T><<<grid_for(n, 256), 256, 0, s>>>(dst, (const T *)src, n));
    CU_LAUNCHED("to_f32");
    return 0;
}

/* The CPU copies embed rows (eng_forward_batch). */
template <typename T>
__global__ void k_embed(float *x, const T *table, const int32_t *tokens, int H)
{
    size_t r = blockIdx.x;
    const size_t base = (size_t)tokens[r] * (size_t)H;
    for (int d = threadIdx.x; d < H; d += blockDim.x)
        x[r * H + d] = ld(table, base + d);
}

int cu_embed(cudaStream_t s, cu_dtype_t dt, float *x, const void *table, const int32_t *tokens,
             int n, int H, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    DISPATCH_T(dt, k_embed<T><<<n, 256, 0, s>>>(x, (const T *)table, tokens, H));
    CU_LAUNCHED("embed");
    return 0;
}

/* ---- RMSNorm (eng_rmsnorm) ---- */

__global__ void k_rmsnorm(float *y, int ldy, const float *x, int ldx, const int32_t *rows,
                          const float *w, int n, float eps)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x, src = rows ? (size_t)rows[r] : r;
    const float *xr = x + src * (size_t)ldx;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_sum(ss, sh);
    float rr = 1.0f / sqrtf(ss / (float)n + eps);
    float *yr = y + r * (size_t)ldy;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = w[i] * (xr[i] * rr);
}

int cu_rmsnorm(cudaStream_t s, float *y, int ldy, const float *x, int ldx, const int32_t *rows,
               const float *w, int n_rows, int n, float eps, char *err, size_t errlen)
{
    if (n_rows == 0)
        return 0;
    k_rmsnorm<<<n_rows, 256, 0, s>>>(y, ldy, x, ldx, rows, w, n, eps);
    CU_LAUNCHED("rmsnorm");
    return 0;
}

/* ---- RoPE (eng_rope_apply) ---- */

__device__ __forceinline__ void rope_pair(float *v, int i, int half, const float *inv_freq,
                                          int pos, bool interleave, float af)
{
    float ang = (float)pos * inv_freq[i];
    float c = cosf(ang) * af, sn = sinf(ang) * af;
    int a = interleave ? 2 * i : i, b = interleave ? 2 * i + 1 : i + half;
    float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * sn;
    v[b] = x1 * c + x0 * sn;
}

__global__ void k_rope(float *v, int n_rows, int heads, long ldr, int ldh, int dim,
                       const float *inv_freq, const int32_t *pos, bool interleave, float af)
{
    int half = dim / 2;
    size_t total = (size_t)n_rows * heads * half;
    for (size_t it = blockIdx.x * (size_t)blockDim.x + threadIdx.x; it < total;
         it += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(it % half);
        size_t rh = it / half;
        int h = (int)(rh % heads);
        size_t r = rh / heads;
        rope_pair(v + r * ldr + (size_t)h * ldh, i, half, inv_freq, pos[r], interleave, af);
    }
}

int cu_rope(cudaStream_t s, float *v, int n_rows, int heads, long ldr, int ldh, int dim,
            const float *inv_freq, const int32_t *pos, bool interleave, float attn_factor,
            char *err, size_t errlen)
{
    size_t total = (size_t)n_rows * heads * (dim / 2);
    if (total == 0)
        return 0;
    k_rope<<<grid_for(total, 256), 256, 0, s>>>(v, n_rows, heads, ldr, ldh, dim, inv_freq, pos,
                                                interleave, attn_factor);
    CU_LAUNCHED("rope");
    return 0;
}

/* ---- SwiGLU (eng_silu_mul on the gate and up halves) ---- */

template <typename T> __global__ void k_silu_mul(T *out, const float *gu, int n_rows, int inter)
{
    size_t total = (size_t)n_rows * inter;
    for (size_t it = blockIdx.x * (size_t)blockDim.x + threadIdx.x; it < total;
         it += (size_t)gridDim.x * blockDim.x) {
        size_t r = it / inter, i = it % inter;
        float g = gu[r * 2 * inter + i], u = gu[r * 2 * inter + inter + i];
        st(out, it, g / (1.0f + expf(-g)) * u);
    }
}

int cu_silu_mul(cudaStream_t s, cu_dtype_t dt, void *out, const float *gu, int n_rows, int inter,
                char *err, size_t errlen)
{
    size_t total = (size_t)n_rows * inter;
    if (total == 0)
        return 0;
    DISPATCH_T(dt, k_silu_mul<T><<<grid_for(total, 256), 256, 0, s>>>((T *)out, gu, n_rows, inter));
    CU_LAUNCHED("silu_mul");
    return 0;
}

/* ---- MoE gate (eng_moe_route, line for line; one thread per token) ---- */

__device__ int best_untaken(const float *x, const bool *taken, int n)
{
    int b = -1;
    for (int i = 0; i < n; i++)
        if (!taken[i] && (b < 0 || x[i] > x[b]))
            b = i;
    return b;
}

__global__ void k_moe_route(cu_route_cfg_t rc, const float *logits, const float *bias,
                            int32_t *idx, float *wout, int n)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n)
        return;
    const int E = rc.E, K = rc.K;
    const float *lg = logits + (size_t)t * E;
    float scores[CU_MAX_EXPERTS], choice[CU_MAX_EXPERTS];
    bool taken[CU_MAX_EXPERTS];
    for (int e = 0; e < E; e++)
        taken[e] = false;
    if (rc.softmax) {
        float mx = -INFINITY, s = 0.0f;
        for (int e = 0; e < E; e++)
            mx = lg[e] > mx ? lg[e] : mx;
        for (int e = 0; e < E; e++)
            s += (scores[e] = expf(lg[e] - mx));
        for (int e = 0; e < E; e++)
            scores[e] /= s;
    } else {
        for (int e = 0; e < E; e++)
            scores[e] = 1.0f / (1.0f + expf(-lg[e]));
    }
    for (int e = 0; e < E; e++)
        choice[e] = scores[e] + (bias ? bias[e] : 0.0f);
    int G = rc.n_group;
    if (rc.group_rank != ENG_GROUP_NONE && G > 1) {
        int per = E / G;
        float gscore[CU_MAX_EXPERTS];
        bool gtaken[CU_MAX_EXPERTS], keep[CU_MAX_EXPERTS];
        for (int g = 0; g < G; g++) {
            gtaken[g] = keep[g] = false;
            const float *c = choice + g * per;
            if (rc.group_rank == ENG_GROUP_MAX) {
                float m = c[0];
                for (int j = 1; j < per; j++)
                    m = c[j] > m ? c[j] : m;
                gscore[g] = m;
            } else {
                int a = 0;
                for (int j = 1; j < per; j++)
                    if (c[j] > c[a])
                        a = j;
                int b = a == 0 ? 1 : 0;
                for (int j = 0; j < per; j++)
                    if (j != a && c[j] > c[b])
                        b = j;
                gscore[g] = c[a] + c[b];
            }
        }
        for (int k = 0; k < rc.topk_group; k++) {
            int g = best_untaken(gscore, gtaken, G);
            gtaken[g] = keep[g] = true;
        }
        for (int e = 0; e < E; e++)
            if (!keep[e / per])
                choice[e] = 0.0f;
    }
    for (int k = 0; k < K; k++) {
        int e = best_untaken(choice, taken, E);
        taken[e] = true;
    }
    float sum = 0.0f, w[CU_MAX_TOPK];
    int id[CU_MAX_TOPK];
    for (int e = 0, k = 0; e < E; e++) {
        if (!taken[e])
            continue;
        id[k] = e;
        w[k] = scores[e];
        sum += w[k];
        k++;
    }
    for (int k = 0; k < K; k++) {
        if (rc.norm_topk)
            w[k] /= sum + 1e-20f;
        w[k] *= rc.routed_scale;
        idx[(size_t)t * K + k] = id[k];
        wout[(size_t)t * K + k] = w[k];
    }
}

int cu_moe_route(cudaStream_t s, const cu_route_cfg_t *rc, const float *logits,
                 const float *bias, int32_t *idx, float *w, int n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    k_moe_route<<<(n + 63) / 64, 64, 0, s>>>(*rc, logits, bias, idx, w, n);
    CU_LAUNCHED("moe_route");
    return 0;
}

/* ---- expert rows: gather by expert, combine per token ---- */

template <typename T>
__global__ void k_gather_rows(T *xg, const float *x, const int32_t *src, int H)
{
    size_t a = blockIdx.x;
    const float *xr = x + (size_t)src[a] * H;
    for (int d = threadIdx.x; d < H; d += blockDim.x)
        st(xg, a * H + d, xr[d]);
}

int cu_gather_rows(cudaStream_t s, cu_dtype_t dt, void *xg, const float *x, const int32_t *src,
                   int n_assign, int H, char *err, size_t errlen)
{
    if (n_assign == 0)
        return 0;
    DISPATCH_T(dt, k_gather_rows<T><<<n_assign, 256, 0, s>>>((T *)xg, x, src, H));
    CU_LAUNCHED("gather_rows");
    return 0;
}

/* The CPU adds weight * expert output per expert (ascending; the router
 * lists a token's experts ascending) into y, then y into the residual. */
__global__ void k_moe_combine(float *resid, const float *yg, const int32_t *slot, const float *w,
                              int K, int H)
{
    size_t t = blockIdx.x;
    for (int d = threadIdx.x; d < H; d += blockDim.x) {
        float acc = 0.0f;
        for (int k = 0; k < K; k++)
            acc += w[t * K + k] * yg[(size_t)slot[t * K + k] * H + d];
        resid[t * H + d] += acc;
    }
}

int cu_moe_combine(cudaStream_t s, float *resid, const float *yg, const int32_t *slot,
                   const float *w, int n, int K, int H, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    k_moe_combine<<<n, 256, 0, s>>>(resid, yg, slot, w, K, H);
    CU_LAUNCHED("moe_combine");
    return 0;
}

/* ---- routed experts without a host round trip (small steps) ---- */

/* One block: counts per expert, exclusive scan into first[0..E], then a
 * stable placement (thread e walks the assignments in (token, k) order), so
 * rows of an expert are in token order as on the host path. */
__global__ void k_moe_sort(const int32_t *idx, int NK, int K, int E, int32_t *first,
                           int32_t *src, int32_t *slot)
{
    __shared__ int cnt[CU_MAX_EXPERTS + 1];
    for (int e = threadIdx.x; e <= E; e += blockDim.x)
        cnt[e] = 0;
    __syncthreads();
    for (int a = threadIdx.x; a < NK; a += blockDim.x) {
        int e = idx[a];
        if (e >= 0 && e < E)
            atomicAdd(&cnt[e], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0;
        for (int e = 0; e < E; e++) {
            int c = cnt[e];
            cnt[e] = run;
            first[e] = run;
            run += c;
        }
        cnt[E] = run;
        first[E] = run;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int pos = cnt[e];
        for (int a = 0; a < NK; a++)
            if (idx[a] == e) {
                src[pos] = a / K;
                slot[a] = pos++;
            }
    }
}

int cu_moe_sort(cudaStream_t s, const int32_t *idx, int NK, int K, int E, int32_t *first,
                int32_t *src, int32_t *slot, char *err, size_t errlen)
{
    if (NK == 0)
        return 0;
    k_moe_sort<<<1, 256, 0, s>>>(idx, NK, K, E, first, src, slot);
    CU_LAUNCHED("moe_sort");
    return 0;
}

/* ---- the latent cache ---- */

/* Row pointer of (block, layer, slot) in the (blocks, layers, 64, row) pool. */
template <typename T>
__device__ __forceinline__ T *kv_row(T *kv, int blk, int layer, int slot, int n_layers, int row)
{
    return kv + (((size_t)blk * n_layers + layer) * ENG_KV_BLOCK + slot) * (size_t)row;
}

/* layer_attention's per-row work on the CPU: rmsnorm(c, kv_a_norm, 1e-6),
 * rope(k_rot at pos), then the row goes into the cache. */
template <typename T>
__global__ void k_kv_store(T *kv, float *rows, int kvl, int rope, const float *norm_w,
                           const float *inv_freq, const int32_t *pos, const int32_t *dst_block,
                           const int32_t *dst_slot, int layer, int n_layers, bool interleave,
                           float af)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    int row = kvl + rope;
    float *x = rows + r * row;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < kvl; i += blockDim.x)
        ss += x[i] * x[i];
    ss = block_sum(ss, sh);
    float rr = 1.0f / sqrtf(ss / (float)kvl + 1e-6f);
    T *dst = kv_row(kv, dst_block[r], layer, dst_slot[r], n_layers, row);
    for (int i = threadIdx.x; i < kvl; i += blockDim.x)
        st(dst, i, norm_w[i] * (x[i] * rr));
    int half = rope / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x)
        rope_pair(x + kvl, i, half, inv_freq, pos[r], interleave, af);
    __syncthreads();
    for (int i = threadIdx.x; i < rope; i += blockDim.x)
        st(dst, kvl + i, x[kvl + i]);
}

int cu_kv_store(cudaStream_t s, cu_dtype_t dt, void *kv, float *rows, int n, int kvl, int rope,
                const float *norm_w, const float *inv_freq, const int32_t *pos,
                const int32_t *dst_block, const int32_t *dst_slot, int layer, int n_layers,
                bool interleave, float attn_factor, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    DISPATCH_T(dt, k_kv_store<T><<<n, 256, 0, s>>>((T *)kv, rows, kvl, rope, norm_w, inv_freq,
                                                   pos, dst_block, dst_slot, layer, n_layers,
                                                   interleave, attn_factor));
    CU_LAUNCHED("kv_store");
    return 0;
}

__global__ void k_qlat_rope(float *qlat, const float *q, int n, int nh, int nope, int rope,
                            int kvl)
{
    size_t total = (size_t)n * nh * rope;
    int qk = nope + rope, row = kvl + rope;
    for (size_t it = blockIdx.x * (size_t)blockDim.x + threadIdx.x; it < total;
         it += (size_t)gridDim.x * blockDim.x) {
        size_t rh = it / rope;
        int d = (int)(it % rope);
        qlat[rh * row + kvl + d] = q[rh * qk + nope + d];
    }
}

int cu_qlat_rope(cudaStream_t s, float *qlat, const float *q, int n, int nh, int nope, int rope,
                 int kvl, char *err, size_t errlen)
{
    size_t total = (size_t)n * nh * rope;
    if (total == 0)
        return 0;
    k_qlat_rope<<<grid_for(total, 256), 256, 0, s>>>(qlat, q, n, nh, nope, rope, kvl);
    CU_LAUNCHED("qlat_rope");
    return 0;
}

/* ---- absorbed decode attention (attn_absorbed) ----
 * Block (row, head chunk of 16, split): split s covers positions
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
    const cu_att_row_t R = rows[blockIdx.x];
    const int h0 = blockIdx.y * CU_ATT_HEADS, split = blockIdx.z;
    const int hc = min(CU_ATT_HEADS, nh - h0);
    const int j0 = split * ENG_KV_BLOCK, cnt = min(ENG_KV_BLOCK, R.n_ctx - j0);
    float *pm = pml + (((size_t)blockIdx.x * max_splits + split) * nh + h0) * 2;
    if (cnt <= 0) {
        if (threadIdx.x < (unsigned)hc) {
            pm[2 * threadIdx.x] = -INFINITY;
            pm[2 * threadIdx.x + 1] = 0.0f;
        }
        return;
    }
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

/* Merges the splits of one (row, head): o = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s. */
__global__ void k_att_combine(float *olat, const float *po, const float *pml,
                              const cu_att_row_t *rows, int nh, int kvl, int max_splits)
{
    const cu_att_row_t R = rows[blockIdx.x];
    const int h = blockIdx.y;
    const int S = (R.n_ctx + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    const float *pm = pml + ((size_t)blockIdx.x * max_splits * nh + h) * 2;
    const size_t sstride = (size_t)nh * 2; /* between splits in pml */
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < S; s++)
        if (pm[s * sstride + 1] > 0.0f && pm[s * sstride] > M)
            M = pm[s * sstride];
    for (int s = 0; s < S; s++)
        if (pm[s * sstride + 1] > 0.0f)
            L += pm[s * sstride + 1] * expf(pm[s * sstride] - M);
    const float *o = po + ((size_t)blockIdx.x * max_splits * nh + h) * kvl;
    const size_t ostride = (size_t)nh * kvl;
    float *dst = olat + ((size_t)R.row * nh + h) * kvl;
    for (int k = threadIdx.x; k < kvl; k += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < S; s++)
            if (pm[s * sstride + 1] > 0.0f)
                acc += o[s * ostride + k] * expf(pm[s * sstride] - M);
        dst[k] = acc / L;
    }
}

int cu_att_absorbed(cudaStream_t s, cu_dtype_t dt, const void *kv, const float *qlat,
                    float *olat, float *po, float *pml, const cu_att_row_t *rows, int n_rows,
                    int max_splits, const int32_t *tables, int nh, int kvl, int rope, int layer,
                    int n_layers, float scale, char *err, size_t errlen)
{
    if (n_rows == 0)
        return 0;
    int row = kvl + rope;
    size_t sm = (size_t)(CU_ATT_HEADS * row + CU_ATT_HEADS * ENG_KV_BLOCK) * sizeof(float);
    dim3 grid((unsigned)n_rows, (unsigned)((nh + CU_ATT_HEADS - 1) / CU_ATT_HEADS),
              (unsigned)max_splits);
    DISPATCH_T(dt, k_att_absorbed<T><<<grid, 256, sm, s>>>((const T *)kv, qlat, po, pml, rows,
                                                           tables, nh, kvl, rope, layer,
                                                           n_layers, scale, max_splits));
    CU_LAUNCHED("att_absorbed");
    k_att_combine<<<dim3((unsigned)n_rows, (unsigned)nh), 128, 0, s>>>(olat, po, pml, rows, nh,
                                                                       kvl, max_splits);
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

/* One warp per (query row, head), online softmax over keys 0..p0+t. */
__global__ void k_att_prefill(float *out, const float *q, const float *kvb, const float *krot,
                              int p0, int nh, int nope, int rope, int vd, float scale)
{
    const int lane = threadIdx.x & 31, h = blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int t = blockIdx.x;
    if (h >= nh)
        return;
    const int qk = nope + rope, kvw = nope + vd, n_ctx = p0 + t + 1;
    const float *qr = q + ((size_t)t * nh + h) * qk;
    float qv[CU_MAX_QK / 32], acc[CU_MAX_VHEAD / 32];
#pragma unroll
    for (int i = 0; i < CU_MAX_QK / 32; i++) {
        int d = lane + 32 * i;
        qv[i] = d < qk ? qr[d] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < CU_MAX_VHEAD / 32; i++)
        acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < n_ctx; j++) {
        const float *kr = kvb + ((size_t)j * nh + h) * kvw;
        float sc = 0.0f;
#pragma unroll
        for (int i = 0; i < CU_MAX_QK / 32; i++) {
            int d = lane + 32 * i;
            if (d < nope)
                sc += qv[i] * kr[d];
            else if (d < qk)
                sc += qv[i] * krot[(size_t)j * rope + (d - nope)];
        }
        for (int o = 16; o > 0; o >>= 1)
            sc += __shfl_xor_sync(0xffffffffu, sc, o);
        sc *= scale;
        float mn = sc > m ? sc : m;
        float corr = expf(m - mn), e = expf(sc - mn);
        l = l * corr + e;
#pragma unroll
        for (int i = 0; i < CU_MAX_VHEAD / 32; i++) {
            int d = lane + 32 * i;
            if (d < vd)
                acc[i] = acc[i] * corr + e * kr[nope + d];
        }
        m = mn;
    }
    float *o = out + ((size_t)t * nh + h) * vd;
#pragma unroll
    for (int i = 0; i < CU_MAX_VHEAD / 32; i++) {
        int d = lane + 32 * i;
        if (d < vd)
            o[d] = acc[i] / l;
    }
}

int cu_att_prefill(cudaStream_t s, float *out, const float *q, const float *kvb,
                   const float *krot, int n, int p0, int nh, int nope, int rope, int vd,
                   float scale, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    dim3 grid((unsigned)n, (unsigned)((nh + 3) / 4));
    k_att_prefill<<<grid, 128, 0, s>>>(out, q, kvb, krot, p0, nh, nope, rope, vd, scale);
    CU_LAUNCHED("att_prefill");
    return 0;
}

/* ---- argmax (eng_argmax: first index on ties) ---- */

__global__ void k_argmax(int32_t *out, const float *x, int n)
{
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *xr = x + (size_t)blockIdx.x * n;
    float bv = -INFINITY;
    int bi = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (bi < 0 || xr[i] > bv) {
            bv = xr[i];
            bi = i;
        }
    /* within a thread indices ascend, so '>' kept the first of equal values */
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
            bv = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++)
            if (si[k] >= 0 && (bi < 0 || sv[k] > bv || (sv[k] == bv && si[k] < bi))) {
                bv = sv[k];
                bi = si[k];
            }
        out[blockIdx.x] = bi < 0 ? 0 : bi;
    }
}

int cu_argmax(cudaStream_t s, int32_t *out, const float *x, int n_rows, int n, char *err,
              size_t errlen)
{
    if (n_rows == 0)
        return 0;
    k_argmax<<<n_rows, 256, 0, s>>>(out, x, n);
    CU_LAUNCHED("argmax");
    return 0;
}

/* ---- random fills (benchmarks) ---- */

/* Uniform random weights of eng_model_random's distribution (matrices with
 * standard deviation init_range, norms 1 +- 0.1, biases +- 0.1), from a
 * counter-based hash instead of the CPU's sequential generator. */
template <typename T>
__global__ void k_fill_weights(T *dst, size_t n, int kind, float amp, uint64_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (seed + 1) * 0xd1b54a32d192ed03ull + i * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        float uu = (float)(z >> 40) / 16777216.0f * 2.0f - 1.0f;
        st(dst, i, kind == W_NORM ? 1.0f + 0.1f * uu : kind == W_BIAS ? 0.1f * uu : amp * uu);
    }
}

int cu_fill_weights(cudaStream_t s, cu_dtype_t dt, void *dst, size_t n, int kind, float amp,
                    uint64_t seed, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    DISPATCH_T(dt, k_fill_weights<T><<<grid_for(n, 256), 256, 0, s>>>((T *)dst, n, kind, amp,
                                                                      seed));
    CU_LAUNCHED("fill_weights");
    return 0;
}

/* Random latent rows (standard deviation ~1) into whole cache blocks. */
template <typename T>
__global__ void k_fill_blocks(T *kv, const int32_t *blocks, size_t block_elems, uint64_t seed)
{
    size_t b = (size_t)blocks[blockIdx.y];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < block_elems;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + (b * block_elems + i) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        st(kv, b * block_elems + i, ((float)(z >> 40) / 16777216.0f * 2.0f - 1.0f) * 1.7f);
    }
}

int cu_fill_blocks(cudaStream_t s, cu_dtype_t dt, void *kv, const int32_t *blocks, int n_blocks,
                   size_t block_elems, uint64_t seed, char *err, size_t errlen)
{
    if (n_blocks == 0)
        return 0;
    DISPATCH_T(dt, k_fill_blocks<T><<<dim3(64, (unsigned)n_blocks), 256, 0, s>>>(
                       (T *)kv, blocks, block_elems, seed));
    CU_LAUNCHED("fill_blocks");
    return 0;
}
