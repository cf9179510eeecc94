/* eng_cuda_check: single kernels on host arrays (eng_cuda.h), so the tests in
 * tests/unit/engine_cuda can hold each one against its CPU twin on random
 * inputs. Each call allocates, copies in, runs on its own stream, copies out
 * and frees; none of this is on the serving path. */
#include "eng_cuda_priv.cuh"

extern "C" {
#include "eng_cuda.h"
}

#include <stdlib.h>

/* Device allocations of one op, freed together. */
struct op_mem {
    void *p[16];
    int n = 0;
    cudaStream_t s = NULL;
    ~op_mem()
    {
        if (s)
            cudaStreamSynchronize(s);
        for (int i = 0; i < n; i++)
            cudaFree(p[i]);
        if (s)
            cudaStreamDestroy(s);
    }
};

static int op_start(op_mem *m, char *err, size_t errlen)
{
    TRY(eng_cuda_device_ok(err, errlen));
    CU_TRY(cudaStreamCreate(&m->s));
    return 0;
}

/* A device copy of bytes from src (NULL: uninitialised, zeroed). */
static int op_in(op_mem *m, void **d, const void *src, size_t bytes, char *err, size_t errlen)
{
    CU_TRY(cudaMalloc(d, bytes ? bytes : 1));
    m->p[m->n++] = *d;
    if (src)
        CU_TRY(cudaMemcpy(*d, src, bytes, cudaMemcpyHostToDevice));
    else
        CU_TRY(cudaMemset(*d, 0, bytes));
    return 0;
}

static int op_out(op_mem *m, void *dst, const void *d, size_t bytes, char *err, size_t errlen)
{
    CU_TRY(cudaStreamSynchronize(m->s));
    CU_TRY(cudaMemcpy(dst, d, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int eng_cuda_op_rmsnorm(float *y, const float *x, const float *w, int rows, int n,
                                   float eps, char *err, size_t errlen)
{
    op_mem m;
    void *dx, *dw, *dy;
    size_t b = (size_t)rows * n * 4;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dx, x, b, err, errlen));
    TRY(op_in(&m, &dw, w, (size_t)n * 4, err, errlen));
    TRY(op_in(&m, &dy, NULL, b, err, errlen));
    TRY(cu_rmsnorm(m.s, (float *)dy, n, (const float *)dx, n, NULL, (const float *)dw, rows, n,
                   eps, err, errlen));
    return op_out(&m, y, dy, b, err, errlen);
}

extern "C" int eng_cuda_op_rope(float *v, int rows, int dim, const float *inv_freq,
                                const int32_t *pos, bool interleave, float attn_factor, char *err,
                                size_t errlen)
{
    op_mem m;
    void *dv, *df, *dp;
    size_t b = (size_t)rows * dim * 4;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dv, v, b, err, errlen));
    TRY(op_in(&m, &df, inv_freq, (size_t)dim / 2 * 4, err, errlen));
    TRY(op_in(&m, &dp, pos, (size_t)rows * 4, err, errlen));
    TRY(cu_rope(m.s, (float *)dv, rows, 1, dim, 0, dim, (const float *)df, (const int32_t *)dp,
                interleave, attn_factor, err, errlen));
    return op_out(&m, v, dv, b, err, errlen);
}

extern "C" int eng_cuda_op_silu_mul(float *out, const float *gu, int rows, int inter, char *err,
                                    size_t errlen)
{
    op_mem m;
    void *dg, *dout;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dg, gu, (size_t)rows * 2 * inter * 4, err, errlen));
    TRY(op_in(&m, &dout, NULL, (size_t)rows * inter * 4, err, errlen));
    TRY(cu_silu_mul(m.s, CU_F32, dout, (const float *)dg, rows, inter, err, errlen));
    return op_out(&m, out, dout, (size_t)rows * inter * 4, err, errlen);
}

extern "C" int eng_cuda_op_moe_route(const eng_config_t *cfg, const float *logits,
                                     const float *bias, int n, int32_t *idx, float *w, char *err,
                                     size_t errlen)
{
    if (cfg->n_routed > CU_MAX_EXPERTS || cfg->top_k > CU_MAX_TOPK) {
        snprintf(err, errlen, "too many experts for the CUDA gate");
        return -1;
    }
    op_mem m;
    void *dl, *db = NULL, *di, *dw;
    size_t E = (size_t)cfg->n_routed, K = (size_t)cfg->top_k;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dl, logits, (size_t)n * E * 4, err, errlen));
    if (bias)
        TRY(op_in(&m, &db, bias, E * 4, err, errlen));
    TRY(op_in(&m, &di, NULL, (size_t)n * K * 4, err, errlen));
    TRY(op_in(&m, &dw, NULL, (size_t)n * K * 4, err, errlen));
    cu_route_cfg_t rc = {cfg->n_routed,
                         cfg->top_k,
                         cfg->n_group,
                         cfg->topk_group,
                         cfg->scoring == ENG_SCORE_SOFTMAX,
                         (int)cfg->group_rank,
                         cfg->norm_topk,
                         cfg->routed_scale};
    TRY(cu_moe_route(m.s, &rc, (const float *)dl, (const float *)db, (int32_t *)di, (float *)dw,
                     n, err, errlen));
    TRY(op_out(&m, idx, di, (size_t)n * K * 4, err, errlen));
    return op_out(&m, w, dw, (size_t)n * K * 4, err, errlen);
}

extern "C" int eng_cuda_op_matmul(float *y, const float *x, const float *w, int n_tok, int n_in,
                                  int n_out, bool f32, char *err, size_t errlen)
{
    op_mem m;
    cu_dtype_t dt = f32 ? CU_F32 : CU_BF16;
    size_t es = cu_dtype_size(dt);
    void *dxf, *dwf, *dx, *dw, *dy;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dxf, x, (size_t)n_tok * n_in * 4, err, errlen));
    TRY(op_in(&m, &dwf, w, (size_t)n_out * n_in * 4, err, errlen));
    TRY(op_in(&m, &dx, NULL, (size_t)n_tok * n_in * es, err, errlen));
    TRY(op_in(&m, &dw, NULL, (size_t)n_out * n_in * es, err, errlen));
    TRY(op_in(&m, &dy, NULL, (size_t)n_tok * n_out * 4, err, errlen));
    TRY(cu_convert_f32(m.s, dt, dx, (const float *)dxf, (size_t)n_tok * n_in, err, errlen));
    TRY(cu_convert_f32(m.s, dt, dw, (const float *)dwf, (size_t)n_out * n_in, err, errlen));
    cublasHandle_t h;
    CUBLAS_TRY(cublasCreate(&h));
    int rc = cublasSetStream(h, m.s) == CUBLAS_STATUS_SUCCESS ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "cublasSetStream failed");
    if (!rc)
        rc = cu_gemm_xwt(h, dt, (float *)dy, n_out, dx, n_in, dw, n_in, n_tok, n_in, n_out, 0.0f,
                         err, errlen);
    if (!rc)
        rc = op_out(&m, y, dy, (size_t)n_tok * n_out * 4, err, errlen);
    cublasDestroy(h);
    return rc;
}

extern "C" int eng_cuda_op_gemm(const eng_cuda_gemm_case_t *c, float *y, size_t ny,
                                const float *x, size_t nx, const float *w, size_t nw, char *err,
                                size_t errlen)
{
    op_mem m;
    cu_dtype_t dt = c->f32 ? CU_F32 : CU_BF16;
    size_t es = cu_dtype_size(dt);
    void *dxf, *dwf, *dx, *dw, *dy;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dxf, x, nx * 4, err, errlen));
    TRY(op_in(&m, &dwf, w, nw * 4, err, errlen));
    TRY(op_in(&m, &dx, NULL, nx * es, err, errlen));
    TRY(op_in(&m, &dw, NULL, nw * es, err, errlen));
    const bool fresh = c->y_fresh && c->form == ENG_CUDA_GEMM_XWT && c->beta == 0.0f &&
                       c->ldy == c->n_out;
    if (fresh) {
        CU_TRY(cudaMalloc(&dy, ny * 4)); /* deliberately not written before the product */
        m.p[m.n++] = dy;
        ny = (size_t)c->n_tok * c->n_out;
    } else {
        TRY(op_in(&m, &dy, y, ny * 4, err, errlen));
    }
    TRY(cu_convert_f32(m.s, dt, dx, (const float *)dxf, nx, err, errlen));
    TRY(cu_convert_f32(m.s, dt, dw, (const float *)dwf, nw, err, errlen));
    const void *xp = (const char *)dx + (size_t)c->x_off * es;
    const void *wp = (const char *)dw + (size_t)c->w_off * es;
    cublasHandle_t h;
    CUBLAS_TRY(cublasCreate(&h));
    int rc = cublasSetStream(h, m.s) == CUBLAS_STATUS_SUCCESS ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "cublasSetStream failed");
    if (!rc && c->form == ENG_CUDA_GEMM_XWT)
        rc = cu_gemm_xwt(h, dt, (float *)dy, c->ldy, xp, c->ldx, wp, c->ldw, c->n_tok, c->n_in,
                         c->n_out, c->beta, err, errlen);
    else if (!rc && c->form == ENG_CUDA_GEMM_XWT_BATCHED)
        rc = cu_gemm_xwt_batched(h, dt, (float *)dy, c->ldy, c->sy, xp, c->ldx, c->sx, wp, c->ldw,
                                 c->sw, c->n_tok, c->n_in, c->n_out, c->batch, err, errlen);
    else if (!rc)
        rc = cu_gemm_xw_batched(h, dt, (float *)dy, c->ldy, c->sy, xp, c->ldx, c->sx, wp, c->ldw,
                                c->sw, c->n_tok, c->n_in, c->n_out, c->batch, err, errlen);
    if (!rc)
        rc = op_out(&m, y, dy, ny * 4, err, errlen);
    cublasDestroy(h);
    return rc;
}

extern "C" int eng_cuda_op_expert_rows(float *y, int32_t *first, int32_t *src, int32_t *slot,
                                       const int32_t *idx, int n, int K, int E, const float *x,
                                       const float *W, int n_in, int n_out, bool f32, bool mma,
                                       char *err, size_t errlen)
{
    if (E > CU_MAX_EXPERTS) {
        snprintf(err, errlen, "too many experts");
        return -1;
    }
    if (mma && (f32 || !cu_expert_mma_fits(n_in, n_out, n_in))) {
        snprintf(err, errlen, "the tensor-core expert kernel takes bf16, n_in %% 16, n_out %% 32");
        return -1;
    }
    op_mem m;
    cu_dtype_t dt = f32 ? CU_F32 : CU_BF16;
    size_t es = cu_dtype_size(dt), NK = (size_t)n * K;
    const int slots = NK < (size_t)E ? (int)NK : E;
    void *di, *dfirst, *dsrc, *dslot, *dxf, *dwf, *dx, *dw, *dxg, *dy;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &di, idx, NK * 4, err, errlen));
    TRY(op_in(&m, &dfirst, NULL, (size_t)CU_ROUTE_TABLE(E) * 4, err, errlen));
    TRY(op_in(&m, &dsrc, NULL, NK * 4, err, errlen));
    TRY(op_in(&m, &dslot, NULL, NK * 4, err, errlen));
    /* float32 staging, then the element-type copies (8 slots in op_mem: reuse) */
    TRY(op_in(&m, &dxf, x, (size_t)n * n_in * 4, err, errlen));
    TRY(op_in(&m, &dwf, W, (size_t)E * n_out * n_in * 4, err, errlen));
    /* x, the gathered rows plus the zeroed rows the tensor-core kernel reads
     * past the last, the weights */
    const size_t rows_g = NK + CU_EXPERT_PAD_ROWS;
    TRY(op_in(&m, &dx, NULL,
              (size_t)n * n_in * es + rows_g * n_in * es + (size_t)E * n_out * n_in * es, err,
              errlen));
    dxg = (char *)dx + (size_t)n * n_in * es;
    dw = (char *)dxg + rows_g * n_in * es;
    void *dyy;
    CU_TRY(cudaMalloc(&dyy, NK * n_out * 4 + 4));
    dy = dyy;
    int rc = cu_convert_f32(m.s, dt, dx, (const float *)dxf, (size_t)n * n_in, err, errlen);
    if (!rc)
        rc = cu_convert_f32(m.s, dt, dw, (const float *)dwf, (size_t)E * n_out * n_in, err,
                            errlen);
    if (!rc)
        rc = cu_moe_sort(m.s, (const int32_t *)di, (int)NK, K, E, (int32_t *)dfirst,
                         (int32_t *)dsrc, (int32_t *)dslot, err, errlen);
    /* gather in the element type: rows of x by src (the backend gathers from float32) */
    if (!rc)
        rc = cu_to_f32(m.s, dt, (float *)dxf, dx, (size_t)n * n_in, err, errlen);
    if (!rc)
        rc = cu_gather_rows(m.s, dt, dxg, (const float *)dxf, (const int32_t *)dsrc, (int)NK,
                            n_in, err, errlen);
    if (!rc && mma)
        rc = cu_expert_mma(m.s, (float *)dy, n_out, dxg, n_in, dw, (const int32_t *)dfirst, E,
                           slots, n_in, n_out, err, errlen);
    else if (!rc)
        rc = cu_expert_gemv(m.s, dt, (float *)dy, n_out, dxg, n_in, dw, (const int32_t *)dfirst,
                            E, slots, n_in, n_out, err, errlen);
    if (!rc)
        rc = op_out(&m, y, dy, NK * n_out * 4, err, errlen);
    if (!rc)
        rc = op_out(&m, first, dfirst, (size_t)CU_ROUTE_TABLE(E) * 4, err, errlen);
    if (!rc)
        rc = op_out(&m, src, dsrc, NK * 4, err, errlen);
    if (!rc)
        rc = op_out(&m, slot, dslot, NK * 4, err, errlen);
    cudaStreamSynchronize(m.s);
    cudaFree(dyy);
    return rc;
}

extern "C" int eng_cuda_op_argmax(int32_t *out, const float *x, int rows, int n, char *err,
                                  size_t errlen)
{
    op_mem m;
    void *dx, *dout;
    TRY(op_start(&m, err, errlen));
    TRY(op_in(&m, &dx, x, (size_t)rows * n * 4, err, errlen));
    TRY(op_in(&m, &dout, NULL, (size_t)rows * 4, err, errlen));
    TRY(cu_argmax(m.s, (int32_t *)dout, (const float *)dx, rows, n, err, errlen));
    return op_out(&m, out, dout, (size_t)rows * 4, err, errlen);
}
