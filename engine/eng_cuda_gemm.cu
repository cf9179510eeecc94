/* eng_cuda_gemm: the dense products of the CUDA backend through cuBLAS.
 * Row-major weights (out, in) as the checkpoint stores them are, to cuBLAS's
 * column-major view, (in, out) matrices: y^T = W x^T is OP_T on W. Inputs are
 * bfloat16 (or float32 in the checking mode), outputs and accumulation float32
 * (CUBLAS_COMPUTE_32F: no TF32, no reduced-precision reductions). Steps of at
 * most CU_GEMV_MAX_TOK rows (decode) go to the matrix-vector kernels of
 * eng_cuda_gemv.cu instead, on the handle's stream, unless TG_CUDA_GEMV=0.
 * The two products of prefill attention (scores, values) are here too. */
#include "eng_cuda_priv.cuh"

#include <stdlib.h>
#include <string.h>

/* Whether few-row products use our kernels: yes unless the environment has
 * TG_CUDA_GEMV=0 (cuBLAS for everything, to compare), read once. */
static bool gemv_on(void)
{
    static const bool on = [] {
        const char *v = getenv("TG_CUDA_GEMV");
        return !(v && !strcmp(v, "0"));
    }();
    return on;
}

/* The stream cuBLAS runs on (the backend's, or a check's own). */
static int blas_stream(cublasHandle_t h, cudaStream_t *s, char *err, size_t errlen)
{
    CUBLAS_TRY(cublasGetStream(h, s));
    return 0;
}

static cudaDataType_t cuda_type(cu_dtype_t dt)
{
    return dt == CU_F32 ? CUDA_R_32F : CUDA_R_16BF;
}

int cu_gemm_xwt(cublasHandle_t h, cu_dtype_t dt, float *y, int ldy, const void *x, int ldx,
                const void *w, int ldw, int n_tok, int n_in, int n_out, float beta, char *err,
                size_t errlen)
{
    if (n_tok <= 0 || n_out <= 0)
        return 0;
    if (n_tok <= CU_GEMV_MAX_TOK && gemv_on()) {
        cudaStream_t s;
        TRY(blas_stream(h, &s, err, errlen));
        return cu_gemv_xwt(s, dt, y, ldy, 0, x, ldx, 0, w, ldw, 0, n_tok, n_in, n_out, 1, beta,
                           err, errlen);
    }
    const float alpha = 1.0f;
    CUBLAS_TRY(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n_out, n_tok, n_in, &alpha, w,
                            cuda_type(dt), ldw, x, cuda_type(dt), ldx, &beta, y, CUDA_R_32F, ldy,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int cu_gemm_xw_batched(cublasHandle_t h, cu_dtype_t dt, float *y, int ldy, long long sy,
                       const void *x, int ldx, long long sx, const void *w, int ldw, long long sw,
                       int n_tok, int n_in, int n_out, int batch, char *err, size_t errlen)
{
    if (n_tok <= 0 || n_out <= 0 || batch <= 0)
        return 0;
    if (n_tok <= CU_GEMV_MAX_TOK && batch <= 65535 && gemv_on()) {
        cudaStream_t s;
        TRY(blas_stream(h, &s, err, errlen));
        return cu_gemv_xw(s, dt, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch,
                          err, errlen);
    }
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_TRY(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n_out, n_tok, n_in, &alpha,
                                          w, cuda_type(dt), ldw, sw, x, cuda_type(dt), ldx, sx,
                                          &beta, y, CUDA_R_32F, ldy, sy, batch,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int cu_gemm_xwt_batched(cublasHandle_t h, cu_dtype_t dt, float *y, int ldy, long long sy,
                        const void *x, int ldx, long long sx, const void *w, int ldw,
                        long long sw, int n_tok, int n_in, int n_out, int batch, char *err,
                        size_t errlen)
{
    if (n_tok <= 0 || n_out <= 0 || batch <= 0)
        return 0;
    if (n_tok <= CU_GEMV_MAX_TOK && batch <= 65535 && gemv_on()) {
        cudaStream_t s;
        TRY(blas_stream(h, &s, err, errlen));
        return cu_gemv_xwt(s, dt, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch,
                           0.0f, err, errlen);
    }
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_TRY(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n_out, n_tok, n_in, &alpha,
                                          w, cuda_type(dt), ldw, sw, x, cuda_type(dt), ldx, sx,
                                          &beta, y, CUDA_R_32F, ldy, sy, batch,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* Prefill attention's operands have the backend's element type: float32 in
 * the checking mode (exact float32 products), else bfloat16 copies of q, the
 * expanded keys/values and k_rot (tensor cores, float32 accumulation). The
 * scores are float32 either way. */
int cu_att_scores(cublasHandle_t h, cu_dtype_t dt, float *S, const void *q, const void *kvb,
                  const void *krot, int n, int m, int nh, int nope, int rope, int vd,
                  float scale, char *err, size_t errlen)
{
    if (n <= 0 || m <= 0)
        return 0;
    const int qk = nope + rope, kvw = nope + vd;
    const size_t es = cu_dtype_size(dt);
    const float zero = 0.0f, one = 1.0f;
    /* column-major C (m x n) per head = S_h row-major (n, m);
     * op(A) = K_h (m x d), op(B) = Q_h^T */
    CUBLAS_TRY(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, nope, &scale, kvb,
                                          cuda_type(dt), nh * kvw, kvw, q, cuda_type(dt), nh * qk,
                                          qk, &zero, S, CUDA_R_32F, m, (long long)n * m, nh,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (rope > 0)
        CUBLAS_TRY(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, rope, &scale,
                                              krot, cuda_type(dt), rope, 0,
                                              (const char *)q + nope * es, cuda_type(dt), nh * qk,
                                              qk, &one, S, CUDA_R_32F, m, (long long)n * m, nh,
                                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int cu_att_values(cublasHandle_t h, cu_dtype_t dt, float *out, const void *P, const void *kvb,
                  int n, int m, int nh, int nope, int vd, char *err, size_t errlen)
{
    if (n <= 0 || m <= 0)
        return 0;
    const int kvw = nope + vd;
    const size_t es = cu_dtype_size(dt);
    const float one = 1.0f, zero = 0.0f;
    /* column-major C (vd x n) per head = out rows (t, h, :);
     * op(A) = V_h^T (vd x m), op(B) = P_h^T */
    CUBLAS_TRY(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, vd, n, m, &one,
                                          (const char *)kvb + nope * es, cuda_type(dt), nh * kvw,
                                          kvw, P, cuda_type(dt), m, (long long)n * m, &zero, out,
                                          CUDA_R_32F, nh * vd, vd, nh, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
    return 0;
}
