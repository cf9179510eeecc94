/* eng_cuda_kernels: the CUDA backend's own kernels (everything but the
 * GEMMs): conversions, embedding, RMSNorm, RoPE (both layouts; yarn lives in
 * the inverse frequencies), SwiGLU, the MoE gate, expert gather/combine, the
 * latent-cache store and argmax (attention is in eng_cuda_attn.cu, the
 * shared device helpers in eng_cuda_dev.cuh). Each mirrors a CPU function
 * of eng_ops.c / eng_moe.c / eng_forward.c, named in its comment, and keeps
 * that function's float32 arithmetic order where it can. */
#include "eng_cuda_dev.cuh"

#include <math.h>

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

/* The same for rows of n = 4 * blockDim.x values or fewer, 16-byte aligned:
 * each thread loads its four values once, as one vector, and keeps them for
 * the second pass (a decode step's 2048-wide rows: one load per thread). */
__global__ void k_rmsnorm4(float *y, int ldy, const float *x, int ldx, const int32_t *rows,
                           const float *w, int n, float eps)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x, src = rows ? (size_t)rows[r] : r;
    const int i = threadIdx.x * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (i < n)
        v = *(const float4 *)(x + src * (size_t)ldx + i);
    float ss = v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    ss = block_sum(ss, sh);
    float rr = 1.0f / sqrtf(ss / (float)n + eps);
    if (i < n) {
        const float4 g = *(const float4 *)(w + i);
        *(float4 *)(y + r * (size_t)ldy + i) =
            make_float4(g.x * (v.x * rr), g.y * (v.y * rr), g.z * (v.z * rr), g.w * (v.w * rr));
    }
}

int cu_rmsnorm(cudaStream_t s, float *y, int ldy, const float *x, int ldx, const int32_t *rows,
               const float *w, int n_rows, int n, float eps, char *err, size_t errlen)
{
    if (n_rows == 0)
        return 0;
    if (n % 4 == 0 && n <= 4096 && ldx % 4 == 0 && ldy % 4 == 0 && ((uintptr_t)x & 15) == 0 &&
        ((uintptr_t)y & 15) == 0 && ((uintptr_t)w & 15) == 0) {
        int threads = ((n / 4 + 31) / 32) * 32;
        k_rmsnorm4<<<n_rows, threads, 0, s>>>(y, ldy, x, ldx, rows, w, n, eps);
        CU_LAUNCHED("rmsnorm4");
        return 0;
    }
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

/* A group's score for group-limited routing, as eng_moe_route: its largest
 * choice value (ENG_GROUP_MAX) or the sum of its two largest (top-2 sum; the
 * first index wins ties). */
__device__ __forceinline__ float group_score(const float *c, int per, int rank)
{
    if (rank == ENG_GROUP_MAX) {
        float m = c[0];
        for (int j = 1; j < per; j++)
            m = c[j] > m ? c[j] : m;
        return m;
    }
    int a = 0;
    for (int j = 1; j < per; j++)
        if (c[j] > c[a])
            a = j;
    int b = a == 0 ? 1 : 0;
    for (int j = 0; j < per; j++)
        if (j != a && c[j] > c[b])
            b = j;
    return c[a] + c[b];
}

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
            gscore[g] = group_score(choice + g * per, per, rc.group_rank);
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

/* The same routing with a warp per token (k_moe_route keeps one thread per
 * token, its arrays in local memory: ~30 us a call at batch 1). Lane l owns
 * experts l, l + 32, ...; the scores and choices sit in shared memory for the
 * group pass. Selections are those of best_untaken (largest value, lowest
 * index on ties); the softmax's sums are warp trees, so a weight may differ
 * from the CPU's in the last bit, never the choice of experts (the order of
 * exp(l - max) / s is that of the logits). Groups: n_group <= 32. */
#define ROUTE_WARPS 4
__device__ __forceinline__ void argmax_lane(float &v, int &i)
{
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) {
            v = ov;
            i = oi;
        }
    }
}

__global__ void __launch_bounds__(32 * ROUTE_WARPS)
    k_moe_route_warp(cu_route_cfg_t rc, const float *logits, const float *bias, int32_t *idx,
                     float *wout, int n)
{
    __shared__ float s_score[ROUTE_WARPS][CU_MAX_EXPERTS], s_choice[ROUTE_WARPS][CU_MAX_EXPERTS];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int t = blockIdx.x * ROUTE_WARPS + w;
    if (t >= n)
        return; /* the whole warp: no block-wide barrier below */
    const int E = rc.E, K = rc.K;
    const float *lg = logits + (size_t)t * E;
    float *score = s_score[w], *choice = s_choice[w];
    if (rc.softmax) {
        float mx = -INFINITY, sum = 0.0f;
        for (int e = lane; e < E; e += 32)
            mx = lg[e] > mx ? lg[e] : mx;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, mx, o);
            mx = ov > mx ? ov : mx;
        }
        for (int e = lane; e < E; e += 32)
            sum += (score[e] = expf(lg[e] - mx));
        for (int o = 16; o > 0; o >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        for (int e = lane; e < E; e += 32)
            score[e] /= sum;
    } else {
        for (int e = lane; e < E; e += 32)
            score[e] = 1.0f / (1.0f + expf(-lg[e]));
    }
    for (int e = lane; e < E; e += 32)
        choice[e] = score[e] + (bias ? bias[e] : 0.0f);
    __syncwarp();
    const int G = rc.n_group;
    if (rc.group_rank != ENG_GROUP_NONE && G > 1) {
        const int per = E / G;
        float gs = 0.0f;
        if (lane < G)
            gs = group_score(choice + lane * per, per, rc.group_rank);
        bool keep = false;
        for (int k = 0; k < rc.topk_group; k++) {
            float v = gs;
            int i = lane < G && !keep ? lane : -1;
            argmax_lane(v, i);
            keep = keep || lane == i;
        }
        const unsigned kept = __ballot_sync(0xffffffffu, keep);
        __syncwarp();
        for (int e = lane; e < E; e += 32)
            if (!(kept >> (e / per) & 1u))
                choice[e] = 0.0f;
        __syncwarp();
    }
    unsigned taken = 0; /* bit i: expert lane + 32 i */
    int id[CU_MAX_TOPK];
    for (int k = 0; k < K; k++) {
        float v = 0.0f;
        int i = -1;
        for (int e = lane, b = 0; e < E; e += 32, b++)
            if (!(taken >> b & 1u) && (i < 0 || choice[e] > v)) {
                v = choice[e];
                i = e;
            }
        argmax_lane(v, i);
        if ((i & 31) == lane)
            taken |= 1u << (i >> 5);
        id[k] = i;
    }
    if (lane != 0)
        return;
    for (int a = 1; a < K; a++) /* ascending expert order, as the CPU collects them */
        for (int b = a; b > 0 && id[b - 1] > id[b]; b--) {
            int x = id[b];
            id[b] = id[b - 1];
            id[b - 1] = x;
        }
    float sum = 0.0f, wk[CU_MAX_TOPK];
    for (int k = 0; k < K; k++)
        sum += (wk[k] = score[id[k]]);
    for (int k = 0; k < K; k++) {
        float v = wk[k];
        if (rc.norm_topk)
            v /= sum + 1e-20f;
        v *= rc.routed_scale;
        idx[(size_t)t * K + k] = id[k];
        wout[(size_t)t * K + k] = v;
    }
}

int cu_moe_route(cudaStream_t s, const cu_route_cfg_t *rc, const float *logits,
                 const float *bias, int32_t *idx, float *w, int n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (rc->n_group <= 32 && rc->E <= 32 * 8) {
        k_moe_route_warp<<<(n + ROUTE_WARPS - 1) / ROUTE_WARPS, 32 * ROUTE_WARPS, 0, s>>>(
            *rc, logits, bias, idx, w, n);
        CU_LAUNCHED("moe_route_warp");
    } else {
        k_moe_route<<<(n + 63) / 64, 64, 0, s>>>(*rc, logits, bias, idx, w, n);
        CU_LAUNCHED("moe_route");
    }
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
/* Block (token, 256 columns): one column per thread, the K rows' values
 * loaded together (a token's K loads in flight, not one after another). */
__global__ void k_moe_combine(float *resid, const float *yg, const int32_t *slot, const float *w,
                              int K, int H)
{
    const size_t t = blockIdx.x;
    const int d = blockIdx.y * blockDim.x + threadIdx.x;
    if (d >= H)
        return;
    float v[CU_MAX_TOPK];
#pragma unroll
    for (int k = 0; k < CU_MAX_TOPK; k++)
        if (k < K)
            v[k] = yg[(size_t)slot[t * K + k] * H + d];
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < CU_MAX_TOPK; k++)
        if (k < K)
            acc += w[t * K + k] * v[k];
    resid[t * H + d] += acc;
}

int cu_moe_combine(cudaStream_t s, float *resid, const float *yg, const int32_t *slot,
                   const float *w, int n, int K, int H, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    k_moe_combine<<<dim3((unsigned)n, (unsigned)((H + 255) / 256)), 256, 0, s>>>(resid, yg, slot,
                                                                               w, K, H);
    CU_LAUNCHED("moe_combine");
    return 0;
}

/* ---- routed experts without a host round trip (small steps) ---- */

/* One block of 1024: counts per expert (shared-memory atomics), the
 * exclusive scan into first[0..E] and the list of experts with rows
 * (first[E+1 ..], count first[2E+1]) by thread 0, then a stable placement:
 * a warp per expert walks the assignments 32 at a time, each hit's rank
 * among the expert's earlier hits from a ballot, so rows of an expert are in
 * (token, k) order as on the host path. */
__global__ void __launch_bounds__(1024)
    k_moe_sort(const int32_t *idx, int NK, int K, int E, int32_t *first, int32_t *src,
               int32_t *slot)
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
        int run = 0, na = 0;
        for (int e = 0; e < E; e++) {
            int c = cnt[e];
            cnt[e] = run;
            first[e] = run;
            if (c > 0)
                first[E + 1 + na++] = e;
            run += c;
        }
        first[E] = run;
        first[2 * E + 1] = na;
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int e = threadIdx.x >> 5; e < E; e += nw) {
        int base = cnt[e];
        for (int c0 = 0; c0 < NK; c0 += 32) {
            const int a = c0 + lane;
            const bool hit = a < NK && idx[a] == e;
            const unsigned m = __ballot_sync(0xffffffffu, hit);
            if (hit) {
                const int pos = base + __popc(m & ((1u << lane) - 1u));
                src[pos] = a / K;
                slot[a] = pos;
            }
            base += __popc(m);
        }
    }
}

int cu_moe_sort(cudaStream_t s, const int32_t *idx, int NK, int K, int E, int32_t *first,
                int32_t *src, int32_t *slot, char *err, size_t errlen)
{
    if (NK == 0)
        return 0;
    k_moe_sort<<<1, 1024, 0, s>>>(idx, NK, K, E, first, src, slot);
    CU_LAUNCHED("moe_sort");
    return 0;
}

/* ---- the latent cache ---- */

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
