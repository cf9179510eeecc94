/* eng_cuda_gemv: matrix-vector kernels for steps of few rows (decode): the
 * grouped per-expert product of the routed experts, and skinny forms of the
 * three dense products of eng_cuda_gemm.cu for n_tok <= CU_GEMV_MAX_TOK, where
 * cuBLAS runs far below the memory bandwidth. Each weight is read once per
 * call, several 16-byte loads in flight per lane, bypassing L1; the few
 * activation rows are read through L1. Float32 accumulation, y float32. */
#include "eng_cuda_priv.cuh"

/* Independent weight loads each thread issues before using any: 16-byte
 * vectors when the layout allows. 8 for products of 1-2 rows (a 4 KB bf16 row
 * of 2048 is one round of loads per warp), 4 when more rows need registers. */
#define GEMV_UNROLL(R) ((R) <= 2 ? 8 : 4)
/* Output columns (warps) per block: the dense products / the experts (a
 * block's work item is EXPERT_COLS columns of one expert). */
#define GEMV_COLS 4
#define EXPERT_COLS 8

/* ---- element access ---- */

static __device__ __forceinline__ float to_f(float v)
{
    return v;
}
static __device__ __forceinline__ float to_f(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

/* Eight bfloat16 (16 bytes) as floats: bf16 is the high half of a float. */
__device__ __forceinline__ void bf16x8(uint4 v, float *f)
{
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = __uint_as_float(w[k] << 16);
        f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
}

/* 16 bytes of element type T: N elements, unpacked to floats. */
template <typename T> struct vec16;
template <> struct vec16<__nv_bfloat16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void unpack(uint4 v, float *f)
    {
        bf16x8(v, f);
    }
};
template <> struct vec16<float> {
    static constexpr int N = 4;
    static __device__ __forceinline__ void unpack(uint4 v, float *f)
    {
        f[0] = __uint_as_float(v.x), f[1] = __uint_as_float(v.y);
        f[2] = __uint_as_float(v.z), f[3] = __uint_as_float(v.w);
    }
};

/* A 16-byte weight load that does not allocate in L1 (weights stream
 * through once; L1 keeps the activations). p read-only for the kernel. */
static __device__ __forceinline__ uint4 ld_weight(const uint4 *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* Whether p and the element offsets ld1, ld2 keep 16-byte alignment. */
static bool aligned16(const void *p, size_t es, long long ld1, long long ld2)
{
    return ((uintptr_t)p & 15) == 0 && (ld1 * (long long)es) % 16 == 0 &&
           (ld2 * (long long)es) % 16 == 0;
}

/* ---- one weight row against R activation rows (a warp) ---- */

/* acc[r] += wv . x_r[i*N .. i*N + N) for r < nr <= R (the weight vector i,
 * already loaded; x rows ldx elements apart, read through L1). */
template <typename T, int R>
__device__ __forceinline__ void fma_rows_vec(float (&acc)[R], uint4 wv, const T *x, int ldx,
                                             int nr, int i)
{
    constexpr int N = vec16<T>::N;
    float wf[N];
    vec16<T>::unpack(wv, wf);
#pragma unroll
    for (int r = 0; r < R; r++)
        if (R == 1 || r < nr) {
            float xf[N];
            vec16<T>::unpack(__ldg((const uint4 *)(x + (size_t)r * ldx) + i), xf);
#pragma unroll
            for (int k = 0; k < N; k++)
                acc[r] = fmaf(wf[k], xf[k], acc[r]);
        }
}

/* acc[r] += this lane's part of w . x_r for r < nr <= R (x rows ldx apart,
 * n_in elements). VEC: the lane takes 16-byte vectors lane, lane + 32, ...,
 * GEMV_UNROLL(R) of them loaded before any is used (w, x, ldx and n_in must keep
 * 16-byte alignment); else elements lane, lane + 32, ... The caller sums acc
 * over the warp. */
template <typename T, int R, bool VEC>
__device__ __forceinline__ void warp_dot_rows(float (&acc)[R], const T *w, const T *x, int ldx,
                                              int nr, int n_in, int lane)
{
    constexpr int U = GEMV_UNROLL(R);
    if constexpr (VEC) {
        const uint4 *w4 = (const uint4 *)w;
        const int nv = n_in / vec16<T>::N;
        int i0 = lane;
        for (; i0 + 32 * (U - 1) < nv; i0 += 32 * U) { /* U vectors, no bounds checks */
            uint4 wv[U];
#pragma unroll
            for (int u = 0; u < U; u++)
                wv[u] = ld_weight(w4 + i0 + 32 * u);
#pragma unroll
            for (int u = 0; u < U; u++)
                fma_rows_vec<T, R>(acc, wv[u], x, ldx, nr, i0 + 32 * u);
        }
        if (i0 < nv) { /* the last 1 .. U-1 vectors of this lane */
            uint4 wv[U - 1];
#pragma unroll
            for (int u = 0; u < U - 1; u++)
                wv[u] = i0 + 32 * u < nv ? ld_weight(w4 + i0 + 32 * u) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int u = 0; u < U - 1; u++)
                if (i0 + 32 * u < nv)
                    fma_rows_vec<T, R>(acc, wv[u], x, ldx, nr, i0 + 32 * u);
        }
    } else {
        for (int i0 = lane; i0 < n_in; i0 += 32 * U) {
            float wf[U];
#pragma unroll
            for (int u = 0; u < U; u++)
                wf[u] = i0 + 32 * u < n_in ? to_f(w[i0 + 32 * u]) : 0.0f;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int i = i0 + 32 * u;
                if (i >= n_in)
                    break;
#pragma unroll
                for (int r = 0; r < R; r++)
                    if (R == 1 || r < nr)
                        acc[r] = fmaf(wf[u], to_f(x[(size_t)r * ldx + i]), acc[r]);
            }
        }
    }
}

/* Sums acc over the warp and stores y[r*ldy] = sum_r (+ beta * y[r*ldy] when
 * beta != 0; y not read otherwise) for r < nr: lane r writes row r. */
template <int R>
__device__ __forceinline__ void warp_store_rows(float (&acc)[R], float *y, int ldy, int nr,
                                                float beta, int lane)
{
#pragma unroll
    for (int r = 0; r < R; r++) {
        float v = acc[r];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == r && r < nr) {
            float *p = y + (size_t)r * ldy;
            *p = beta != 0.0f ? v + beta * *p : v;
        }
    }
}

/* ---- grouped expert products ---- */

/* y[a][col] = W[e][col] . x[a] for the rows a in [first[e], first[e+1]) of
 * every expert e with rows (cu_moe_sort's list). Work items are (listed
 * expert, tile of EXPERT_COLS columns); a grid of about one wave of blocks
 * walks them (no block is launched for an expert without rows, no tail of a
 * second wave). One warp per output column: an expert's one or two rows (a
 * decode step of few tokens) with 8 weight loads in flight per lane; more
 * rows CU_GEMV_ROWS at a time, so each weight row is read once per
 * CU_GEMV_ROWS rows. VEC (decided by the launcher): 16-byte loads; else
 * element by element. Predicted at batch 1 on V2-Lite (6 experts of gate_up
 * 2816x2048 bf16 = 69 MB): bandwidth-bound, ~23 us at 3 TB/s. */
#define CU_GEMV_ROWS 8
template <typename T, bool VEC>
__global__ void __launch_bounds__(32 * EXPERT_COLS)
    k_expert_gemv(float *y, int ldy, const T *x, int ldx, const T *W, const int32_t *first,
                  int E, int n_in, int n_out)
{
    const int lane = threadIdx.x & 31;
    const int ctiles = (n_out + EXPERT_COLS - 1) / EXPERT_COLS;
    const int items = first[2 * E + 1] * ctiles;
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const int j = it / ctiles, col = (it - j * ctiles) * EXPERT_COLS + (threadIdx.x >> 5);
        if (col >= n_out)
            continue;
        const int e = first[E + 1 + j], a0 = first[e], a1 = first[e + 1];
        const T *w = W + ((size_t)e * n_out + col) * n_in;
        if (a1 - a0 <= 2) {
            float acc[2] = {0.0f, 0.0f};
            warp_dot_rows<T, 2, VEC>(acc, w, x + (size_t)a0 * ldx, ldx, a1 - a0, n_in, lane);
            warp_store_rows<2>(acc, y + (size_t)a0 * ldy + col, ldy, a1 - a0, 0.0f, lane);
            continue;
        }
        for (int r0 = a0; r0 < a1; r0 += CU_GEMV_ROWS) {
            const int nr = min(CU_GEMV_ROWS, a1 - r0);
            float acc[CU_GEMV_ROWS];
#pragma unroll
            for (int r = 0; r < CU_GEMV_ROWS; r++)
                acc[r] = 0.0f;
            warp_dot_rows<T, CU_GEMV_ROWS, VEC>(acc, w, x + (size_t)r0 * ldx, ldx, nr, n_in,
                                                lane);
            warp_store_rows<CU_GEMV_ROWS>(acc, y + (size_t)r0 * ldy + col, ldy, nr, 0.0f, lane);
        }
    }
}

/* Blocks of kernel k (threads each) that fit on the whole device at once:
 * the grid of a kernel that walks its work items. Asked once per kernel. */
int cu_resident_blocks(const void *k, int threads, int *cache)
{
    if (*cache > 0)
        return *cache;
    int dev = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, threads, 0) != cudaSuccess ||
        sms <= 0 || per_sm <= 0) {
        cudaGetLastError(); /* not the next launch's error */
        return 1024;        /* a plain guess still walks every item */
    }
    *cache = sms * per_sm;
    return *cache;
}

template <typename T>
static void launch_expert_gemv(cudaStream_t s, float *y, int ldy, const T *x, int ldx,
                               const T *W, const int32_t *first, int E, int slots, int n_in,
                               int n_out)
{
    static int resident[2];
    const int items = slots * ((n_out + EXPERT_COLS - 1) / EXPERT_COLS);
    const bool vec = n_in % vec16<T>::N == 0 && aligned16(W, sizeof(T), n_in, 0) &&
                     aligned16(x, sizeof(T), ldx, 0);
    const void *k = vec ? (const void *)k_expert_gemv<T, true>
                        : (const void *)k_expert_gemv<T, false>;
    int grid = cu_resident_blocks(k, 32 * EXPERT_COLS, &resident[vec]);
    grid = items < grid ? items : grid;
    if (vec)
        k_expert_gemv<T, true><<<grid, 32 * EXPERT_COLS, 0, s>>>(y, ldy, x, ldx, W, first, E,
                                                                 n_in, n_out);
    else
        k_expert_gemv<T, false><<<grid, 32 * EXPERT_COLS, 0, s>>>(y, ldy, x, ldx, W, first, E,
                                                                  n_in, n_out);
}

int cu_expert_gemv(cudaStream_t s, cu_dtype_t dt, float *y, int ldy, const void *x, int ldx,
                   const void *W, const int32_t *first, int E, int slots, int n_in, int n_out,
                   char *err, size_t errlen)
{
    if (E <= 0 || slots <= 0 || n_out <= 0)
        return 0;
    if (dt == CU_F32)
        launch_expert_gemv(s, y, ldy, (const float *)x, ldx, (const float *)W, first, E, slots,
                           n_in, n_out);
    else
        launch_expert_gemv(s, y, ldy, (const __nv_bfloat16 *)x, ldx, (const __nv_bfloat16 *)W,
                           first, E, slots, n_in, n_out);
    CU_LAUNCHED("expert_gemv");
    return 0;
}

/* ---- y = x W^T, few rows ---- */

/* y_b[t][o] = sum_i x_b[t][i] * W_b[o][i] (+ beta * y_b[t][o]) for t < n_tok
 * <= R: block (column tile of GEMV_COLS, batch b), one warp per column o,
 * the weight row read once for all rows. Predicted: q_proj 3072x2048 bf16
 * (12.6 MB) ~4.2 us at 3 TB/s; kv_a 576x2048 (2.4 MB) is latency-bound,
 * ~2-3 us (at 1-2 rows a warp loads its whole 4 KB row in one round). */
template <typename T, int R, bool VEC>
__global__ void __launch_bounds__(32 * GEMV_COLS)
    k_gemv_xwt(float *y, int ldy, long long sy, const T *x, int ldx, long long sx, const T *W,
               int ldw, long long sw, int n_tok, int n_in, int n_out, float beta)
{
    const int lane = threadIdx.x & 31;
    const int col = blockIdx.x * GEMV_COLS + (threadIdx.x >> 5);
    if (col >= n_out)
        return;
    const size_t b = blockIdx.y;
    const T *w = W + b * sw + (size_t)col * ldw;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        acc[r] = 0.0f;
    warp_dot_rows<T, R, VEC>(acc, w, x + b * sx, ldx, n_tok, n_in, lane);
    warp_store_rows<R>(acc, y + b * sy + col, ldy, n_tok, beta, lane);
}

template <typename T, int R>
static void launch_xwt(cudaStream_t s, bool vec, dim3 grid, float *y, int ldy, long long sy,
                       const T *x, int ldx, long long sx, const T *w, int ldw, long long sw,
                       int n_tok, int n_in, int n_out, float beta)
{
    if (vec)
        k_gemv_xwt<T, R, true><<<grid, 32 * GEMV_COLS, 0, s>>>(y, ldy, sy, x, ldx, sx, w, ldw, sw,
                                                               n_tok, n_in, n_out, beta);
    else
        k_gemv_xwt<T, R, false><<<grid, 32 * GEMV_COLS, 0, s>>>(y, ldy, sy, x, ldx, sx, w, ldw,
                                                                sw, n_tok, n_in, n_out, beta);
}

template <typename T>
static void gemv_xwt_t(cudaStream_t s, float *y, int ldy, long long sy, const T *x, int ldx,
                       long long sx, const T *w, int ldw, long long sw, int n_tok, int n_in,
                       int n_out, int batch, float beta)
{
    dim3 grid((unsigned)((n_out + GEMV_COLS - 1) / GEMV_COLS), (unsigned)batch);
    const bool vec = n_in % vec16<T>::N == 0 && aligned16(w, sizeof(T), ldw, sw) &&
                     aligned16(x, sizeof(T), ldx, sx);
    if (n_tok == 1)
        launch_xwt<T, 1>(s, vec, grid, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out,
                         beta);
    else if (n_tok == 2)
        launch_xwt<T, 2>(s, vec, grid, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out,
                         beta);
    else if (n_tok <= 4)
        launch_xwt<T, 4>(s, vec, grid, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out,
                         beta);
    else
        launch_xwt<T, 8>(s, vec, grid, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out,
                         beta);
}

int cu_gemv_xwt(cudaStream_t s, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
                int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok, int n_in,
                int n_out, int batch, float beta, char *err, size_t errlen)
{
    if (n_tok > CU_GEMV_MAX_TOK || batch > 65535) {
        snprintf(err, errlen, "cu_gemv_xwt: %d rows x %d batches (at most %d x 65535)", n_tok,
                 batch, CU_GEMV_MAX_TOK);
        return -1;
    }
    if (n_tok <= 0 || n_out <= 0 || batch <= 0)
        return 0;
    if (dt == CU_F32)
        gemv_xwt_t(s, y, ldy, sy, (const float *)x, ldx, sx, (const float *)w, ldw, sw, n_tok,
                   n_in, n_out, batch, beta);
    else
        gemv_xwt_t(s, y, ldy, sy, (const __nv_bfloat16 *)x, ldx, sx, (const __nv_bfloat16 *)w,
                   ldw, sw, n_tok, n_in, n_out, batch, beta);
    CU_LAUNCHED("gemv_xwt");
    return 0;
}

/* ---- y = x W, few rows (W row-major (n_in, n_out)) ---- */

/* Threads of a k_gemv_xw block: KS slices of the inputs i times OX threads
 * along the outputs o. */
#define XW_THREADS 256

/* f = the NV weights at p (one 16-byte vector when VEC, else one element). */
template <typename T, bool VEC>
__device__ __forceinline__ void load_cols(float *f, const T *p)
{
    if constexpr (VEC)
        vec16<T>::unpack(ld_weight((const uint4 *)p), f);
    else
        f[0] = to_f(*p);
}

/* acc[r][k] += wf[k] * x_r[i] for r < nr <= R, k < NV. */
template <typename T, int R, int NV>
__device__ __forceinline__ void fma_cols(float (&acc)[R][NV], const float *wf, const T *x,
                                         int ldx, int nr, int i)
{
#pragma unroll
    for (int r = 0; r < R; r++)
        if (R == 1 || r < nr) {
            const float xv = to_f(__ldg(x + (size_t)r * ldx + i));
#pragma unroll
            for (int k = 0; k < NV; k++)
                acc[r][k] = fmaf(wf[k], xv, acc[r][k]);
        }
}

/* y_b[t][o] = sum_i x_b[t][i] * W_b[i][o] for t < n_tok <= R. Block (column
 * tile of OX * NV outputs, batch b); thread (ox, ks) owns NV adjacent outputs
 * (one 16-byte vector when VEC, else one element) and the inputs i = ks,
 * ks + KS, ..., GEMV_UNROLL(R) weight loads in flight; adjacent ox read
 * adjacent bytes of a weight row (128 contiguous bytes per row when VEC). Sums
 * meet through warp shuffles across ks, then shared memory across warps.
 * Predicted: W_UK absorption (16 heads of 128x512 bf16, 2 MB) latency-bound
 * at ~2 us (every load of the call in one round). */
template <typename T, int R, bool VEC>
__global__ void __launch_bounds__(XW_THREADS)
    k_gemv_xw(float *y, int ldy, long long sy, const T *x, int ldx, long long sx, const T *W,
              int ldw, long long sw, int n_tok, int n_in, int n_out)
{
    constexpr int NV = VEC ? vec16<T>::N : 1, OX = VEC ? 8 : 32, KS = XW_THREADS / OX;
    constexpr int CB = OX * NV, NW = XW_THREADS / 32, U = GEMV_UNROLL(R);
    __shared__ float part[NW][R][CB];
    const int tid = threadIdx.x, ox = tid % OX, ks = tid / OX;
    const int lane = tid & 31, warp = tid >> 5;
    const size_t b = blockIdx.y;
    const int o0 = blockIdx.x * CB + ox * NV;
    const T *w = W + b * sw;
    x += b * sx;
    float acc[R][NV];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int k = 0; k < NV; k++)
            acc[r][k] = 0.0f;
    if (o0 < n_out) { /* VEC: n_out % NV == 0, so the whole vector is inside */
        int i0 = ks;
        for (; i0 + KS * (U - 1) < n_in; i0 += KS * U) { /* U rows of W, no bounds checks */
            float wf[U][NV];
#pragma unroll
            for (int u = 0; u < U; u++)
                load_cols<T, VEC>(wf[u], w + (size_t)(i0 + KS * u) * ldw + o0);
#pragma unroll
            for (int u = 0; u < U; u++)
                fma_cols<T, R, NV>(acc, wf[u], x, ldx, n_tok, i0 + KS * u);
        }
        if (i0 < n_in) { /* the last 1 .. U-1 rows of W of this slice */
            float wf[U - 1][NV];
#pragma unroll
            for (int u = 0; u < U - 1; u++)
                if (i0 + KS * u < n_in)
                    load_cols<T, VEC>(wf[u], w + (size_t)(i0 + KS * u) * ldw + o0);
#pragma unroll
            for (int u = 0; u < U - 1; u++)
                if (i0 + KS * u < n_in)
                    fma_cols<T, R, NV>(acc, wf[u], x, ldx, n_tok, i0 + KS * u);
        }
    }
    /* lanes ox, ox + OX, ... of a warp hold the same outputs */
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int k = 0; k < NV; k++) {
            float v = acc[r][k];
#pragma unroll
            for (int o = OX; o < 32; o <<= 1)
                v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane < OX)
                part[warp][r][lane * NV + k] = v;
        }
    __syncthreads();
    const int o = blockIdx.x * CB + tid;
    if (tid < CB && o < n_out)
#pragma unroll
        for (int r = 0; r < R; r++)
            if (r < n_tok) {
                float v = 0.0f;
#pragma unroll
                for (int j = 0; j < NW; j++)
                    v += part[j][r][tid];
                y[b * sy + (size_t)r * ldy + o] = v;
            }
}

template <typename T, int R>
static void launch_xw(cudaStream_t s, bool vec, float *y, int ldy, long long sy, const T *x,
                      int ldx, long long sx, const T *w, int ldw, long long sw, int n_tok,
                      int n_in, int n_out, int batch)
{
    const int cb = vec ? 8 * vec16<T>::N : 32;
    dim3 grid((unsigned)((n_out + cb - 1) / cb), (unsigned)batch);
    if (vec)
        k_gemv_xw<T, R, true><<<grid, XW_THREADS, 0, s>>>(y, ldy, sy, x, ldx, sx, w, ldw, sw,
                                                          n_tok, n_in, n_out);
    else
        k_gemv_xw<T, R, false><<<grid, XW_THREADS, 0, s>>>(y, ldy, sy, x, ldx, sx, w, ldw, sw,
                                                           n_tok, n_in, n_out);
}

template <typename T>
static void gemv_xw_t(cudaStream_t s, float *y, int ldy, long long sy, const T *x, int ldx,
                      long long sx, const T *w, int ldw, long long sw, int n_tok, int n_in,
                      int n_out, int batch)
{
    const bool vec = n_out % vec16<T>::N == 0 && aligned16(w, sizeof(T), ldw, sw);
    if (n_tok == 1)
        launch_xw<T, 1>(s, vec, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch);
    else if (n_tok == 2)
        launch_xw<T, 2>(s, vec, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch);
    else if (n_tok <= 4)
        launch_xw<T, 4>(s, vec, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch);
    else
        launch_xw<T, 8>(s, vec, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch);
}

int cu_gemv_xw(cudaStream_t s, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
               int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok, int n_in,
               int n_out, int batch, char *err, size_t errlen)
{
    if (n_tok > CU_GEMV_MAX_TOK || batch > 65535) {
        snprintf(err, errlen, "cu_gemv_xw: %d rows x %d batches (at most %d x 65535)", n_tok,
                 batch, CU_GEMV_MAX_TOK);
        return -1;
    }
    if (n_tok <= 0 || n_out <= 0 || batch <= 0)
        return 0;
    if (dt == CU_F32)
        gemv_xw_t(s, y, ldy, sy, (const float *)x, ldx, sx, (const float *)w, ldw, sw, n_tok,
                  n_in, n_out, batch);
    else
        gemv_xw_t(s, y, ldy, sy, (const __nv_bfloat16 *)x, ldx, sx, (const __nv_bfloat16 *)w,
                  ldw, sw, n_tok, n_in, n_out, batch);
    CU_LAUNCHED("gemv_xw");
    return 0;
}
