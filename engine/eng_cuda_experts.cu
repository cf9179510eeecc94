/* eng_cuda_experts: the routed experts' grouped product on the tensor cores,
 * for bfloat16 weights. Rows (token, expert) pairs are sorted by expert on the
 * device (cu_moe_sort) and gathered (cu_gather_rows): expert e owns rows
 * first[e] .. first[e+1]-1 of x. One launch covers every expert, with no host
 * wait, so a decode step stays capturable in a CUDA graph.
 *
 * Work items are (tile of 4 x 32 output columns, the j-th expert of
 * cu_moe_sort's list of experts with rows); a grid of one wave of blocks walks
 * them (nothing for experts without rows, no tail wave). Each warp computes 32
 * columns for up to 32 of the expert's rows at a time with WMMA m32n8k16:
 * A = 32 weight rows x 16 inputs, B = 16 inputs x 8 token rows (x is tiny and
 * stays in L1/L2), float32 accumulation; each weight is read once per 32
 * rows. The weights stream through shared memory: each warp copies its 32
 * rows 64 inputs (128 bytes a row, whole cache lines) at a time with
 * asynchronous copies, the next chunk in flight while the tensor cores work
 * on this one (when n_in % 64 == 0; else, or with
 * TG_CUDA_EXPERTS=mma-direct, A fragments load straight from global memory).
 * Rows past the expert's last row are read (the next expert's, or the
 * buffer's zeroed padding: CU_EXPERT_PAD_ROWS) and their results dropped.
 * Needs n_in % 16 == 0, n_out % 32 == 0 and 16-element row strides (the
 * backend checks, else uses cu_expert_gemv). Predicted at V2-Lite shapes:
 * bound by the weight stream (gate_up 2816 x 2048 bf16 = 11.5 MB per
 * expert), ~3.8 us per used expert at 3 TB/s. */
#include "eng_cuda_priv.cuh"

#include <cuda_pipeline.h>
#include <mma.h>
#include <stdlib.h>
#include <string.h>

#define XM_WARPS 4
#define XM_COLS 32 /* output columns per warp: the m of m32n8k16 */
#define XM_RT 4    /* 8-row tiles per pass: 32 rows share one read of the weights */
#define XS_K 64    /* inputs per staged chunk: 128 bytes of each weight row */
#define XS_LD (XS_K + 8) /* staged row stride (bf16): rows 4 banks apart */

/* One warp's asynchronous copy of chunk ch of its 32 weight rows (rows n_in
 * apart from w) into dst: 32 rows x 128 bytes = 256 copies of 16 bytes, 8
 * per lane, committed as one group. */
__device__ __forceinline__ void fetch_chunk(__nv_bfloat16 *dst, const __nv_bfloat16 *w, int n_in,
                                            int ch, int lane)
{
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int p = lane + 32 * i, row = p >> 3, c16 = p & 7;
        __pipeline_memcpy_async(dst + row * XS_LD + c16 * 8,
                                w + (size_t)row * n_in + ch * XS_K + c16 * 8, 16);
    }
    __pipeline_commit();
}

template <bool STAGED>
__global__ void __launch_bounds__(32 * XM_WARPS, 4) /* 4 blocks (16 warps) per SM */
    k_expert_mma(float *y, int ldy, const __nv_bfloat16 *x, int ldx, const __nv_bfloat16 *W,
                 const int32_t *first, int E, int n_in, int n_out)
{
    using namespace nvcuda;
    __shared__ __align__(32) float stage[XM_WARPS][XM_COLS * 8]; /* WMMA stores: 32 B aligned */
    /* per warp two chunk buffers of 32 weight rows (36 KB per block) */
    __shared__ __align__(128) __nv_bfloat16 wsm[STAGED ? XM_WARPS : 1][2][XM_COLS * XS_LD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int ctiles = (n_out + XM_WARPS * XM_COLS - 1) / (XM_WARPS * XM_COLS);
    const int items = first[2 * E + 1] * ctiles;
    float *st = stage[warp];
    /* whole warps only below: nothing synchronises the block */
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const int j = it / ctiles;
        const int col0 = ((it - j * ctiles) * XM_WARPS + warp) * XM_COLS;
        if (col0 >= n_out)
            continue;
        const int e = first[E + 1 + j], a0 = first[e], a1 = first[e + 1];
        const __nv_bfloat16 *w = W + ((size_t)e * n_out + col0) * n_in;
        for (int r0 = a0; r0 < a1; r0 += 8 * XM_RT) {
            const int nrt = min(XM_RT, (a1 - r0 + 7) / 8);
            wmma::fragment<wmma::accumulator, 32, 8, 16, float> acc[XM_RT];
#pragma unroll
            for (int t = 0; t < XM_RT; t++)
                wmma::fill_fragment(acc[t], 0.0f);
            if constexpr (STAGED) {
                const int nch = n_in / XS_K;
                fetch_chunk(wsm[warp][0], w, n_in, 0, lane);
                for (int ch = 0; ch < nch; ch++) {
                    const __nv_bfloat16 *cur = wsm[warp][ch & 1];
                    if (ch + 1 < nch) { /* the other buffer: read by every lane a chunk ago */
                        fetch_chunk(wsm[warp][(ch + 1) & 1], w, n_in, ch + 1, lane);
                        __pipeline_wait_prior(1);
                    } else {
                        __pipeline_wait_prior(0);
                    }
                    __syncwarp(); /* every lane's copies of this chunk are in */
#pragma unroll
                    for (int kk = 0; kk < XS_K; kk += 16) {
                        wmma::fragment<wmma::matrix_a, 32, 8, 16, __nv_bfloat16, wmma::row_major> a;
                        wmma::load_matrix_sync(a, cur + kk, XS_LD);
                        const int k0 = ch * XS_K + kk;
#pragma unroll
                        for (int t = 0; t < XM_RT; t++)
                            if (t < nrt) {
                                wmma::fragment<wmma::matrix_b, 32, 8, 16, __nv_bfloat16,
                                               wmma::col_major>
                                    b;
                                wmma::load_matrix_sync(b, x + (size_t)(r0 + 8 * t) * ldx + k0,
                                                       ldx);
                                wmma::mma_sync(acc[t], a, b, acc[t]);
                            }
                    }
                    __syncwarp(); /* done reading cur before it is refilled */
                }
            } else {
#pragma unroll 4
                for (int k0 = 0; k0 < n_in; k0 += 16) {
                    wmma::fragment<wmma::matrix_a, 32, 8, 16, __nv_bfloat16, wmma::row_major> a;
                    wmma::load_matrix_sync(a, w + k0, n_in);
#pragma unroll
                    for (int t = 0; t < XM_RT; t++)
                        if (t < nrt) {
                            wmma::fragment<wmma::matrix_b, 32, 8, 16, __nv_bfloat16,
                                           wmma::col_major>
                                b;
                            wmma::load_matrix_sync(b, x + (size_t)(r0 + 8 * t) * ldx + k0, ldx);
                            wmma::mma_sync(acc[t], a, b, acc[t]);
                        }
                }
            }
#pragma unroll
            for (int t = 0; t < XM_RT; t++)
                if (t < nrt) {
                    /* (column c, row r) at st[r * 32 + c]; only the expert's rows go out */
                    wmma::store_matrix_sync(st, acc[t], XM_COLS, wmma::mem_col_major);
                    __syncwarp();
                    const int rt0 = r0 + 8 * t;
                    for (int i = lane; i < XM_COLS * 8; i += 32) {
                        const int r = i / XM_COLS, c = i % XM_COLS;
                        if (rt0 + r < a1)
                            y[(size_t)(rt0 + r) * ldy + col0 + c] = st[i];
                    }
                    __syncwarp();
                }
        }
    }
}

bool cu_expert_mma_fits(int n_in, int n_out, int ldx)
{
    return n_in % 16 == 0 && n_out % XM_COLS == 0 && ldx % 16 == 0;
}

int cu_expert_mma(cudaStream_t s, float *y, int ldy, const void *x, int ldx, const void *W,
                  const int32_t *first, int E, int slots, int n_in, int n_out, char *err,
                  size_t errlen)
{
    if (E <= 0 || slots <= 0 || n_out <= 0)
        return 0;
    static int resident[2], direct = -1;
    if (direct < 0) {
        const char *v = getenv("TG_CUDA_EXPERTS");
        direct = v && !strcmp(v, "mma-direct");
    }
    const bool staged = !direct && n_in % XS_K == 0;
    const void *k = staged ? (const void *)k_expert_mma<true> : (const void *)k_expert_mma<false>;
    const int items = slots * ((n_out + XM_WARPS * XM_COLS - 1) / (XM_WARPS * XM_COLS));
    int grid = cu_resident_blocks(k, 32 * XM_WARPS, &resident[staged]);
    grid = items < grid ? items : grid;
    if (staged)
        k_expert_mma<true><<<grid, 32 * XM_WARPS, 0, s>>>(y, ldy, (const __nv_bfloat16 *)x, ldx,
                                                          (const __nv_bfloat16 *)W, first, E, n_in,
                                                          n_out);
    else
        k_expert_mma<false><<<grid, 32 * XM_WARPS, 0, s>>>(y, ldy, (const __nv_bfloat16 *)x, ldx,
                                                           (const __nv_bfloat16 *)W, first, E,
                                                           n_in, n_out);
    CU_LAUNCHED("expert_mma");
    return 0;
}
