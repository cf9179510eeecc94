/* eng_cuda_dev: device-side helpers the CUDA backend's kernel files share:
 * element access (weights and cache rows are float or bfloat16, arithmetic is
 * float), the element-type dispatch of a launch, grid sizing, a block-wide sum
 * and the address of a row of the paged latent cache. */
#ifndef ENG_CUDA_DEV_CUH
#define ENG_CUDA_DEV_CUH

#include "eng_cuda_priv.cuh"

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

static inline unsigned grid_for(size_t n, unsigned block)
{
    size_t g = (n + block - 1) / block;
    return (unsigned)(g > 65535u * 8u ? 65535u * 8u : (g ? g : 1));
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result. sh: 32 floats of shared memory. */
__device__ __forceinline__ float block_sum(float v, float *sh)
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

/* Row pointer of (block, layer, slot) in the (blocks, layers, 64, row) pool. */
template <typename T>
__device__ __forceinline__ T *kv_row(T *kv, int blk, int layer, int slot, int n_layers, int row)
{
    return kv + (((size_t)blk * n_layers + layer) * ENG_KV_BLOCK + slot) * (size_t)row;
}

#endif
