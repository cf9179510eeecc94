/* mock_cuda: a host-memory stand-in for the CUDA runtime, cuBLAS and the
 * backend's kernel launchers, so the CUDA backend's host code
 * (eng_cuda_backend/forward/gemm/check.cu, compiled here as C++) runs on a
 * machine without a GPU. "Device" memory is malloc'd, every call is
 * synchronous, cuBLAS GEMMs follow cuBLAS's column-major contract literally
 * (op, m/n/k, lda/ldb/ldc, batch strides) and each launcher does its kernel's
 * math in plain loops (the split-by-block decode attention transliterated
 * with its partial layout and combine). What this proves: the step's orchestration (buffers,
 * offsets, metadata, the two expert paths, cuBLAS argument mapping, the
 * sequence bookkeeping) computes the reference function. What it cannot
 * prove: the device kernels themselves (test_cuda_ops.c on a GPU does).
 * Graph capture is reported unsupported (the backend then runs eagerly). */
#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "eng_moe.h"
#include "eng_ops.h"
}
#include "eng_cuda_priv.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- bfloat16 on the host ---- */

static float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float ldt(cu_dtype_t dt, const void *p, size_t i)
{
    return dt == CU_F32 ? ((const float *)p)[i] : bf2f(((const uint16_t *)p)[i]);
}

static void stt(cu_dtype_t dt, void *p, size_t i, float v)
{
    if (dt == CU_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = f2bf(v);
}

static size_t esz(cu_dtype_t dt)
{
    return dt == CU_F32 ? 4 : 2;
}

/* ---- CUDA runtime ---- */

extern "C" {

const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess ? "no error" : "mock CUDA error";
}
cudaError_t cudaGetLastError(void)
{
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d)
{
    (void)d;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
    (void)d;
    memset(p, 0, sizeof *p);
    strcpy(p->name, "mock GPU (host memory)");
    p->major = 9;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    *free_b = (size_t)4 << 30;
    *total = (size_t)8 << 30;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = calloc(1, n ? n : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n)
{
    return cudaMalloc(p, n);
}
cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind k)
{
    (void)k;
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind k,
                            cudaStream_t st)
{
    (void)k, (void)st;
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    (void)st;
    memset(d, v, n);
    return cudaSuccess;
}
static int mock_stream;
cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    *s = (cudaStream_t)&mock_stream;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
    return cudaSuccess;
}
static int mock_event;
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    *e = (cudaEvent_t)&mock_event;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)e, (void)s;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    (void)a, (void)b;
    *ms = 0.001f;
    return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode m)
{
    (void)s, (void)m;
    return cudaErrorNotSupported;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    (void)s;
    *g = NULL;
    return cudaErrorNotSupported;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long f)
{
    (void)g, (void)f;
    *e = NULL;
    return cudaErrorNotSupported;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    (void)g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e)
{
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s)
{
    (void)e, (void)s;
    return cudaErrorNotSupported;
}

/* ---- cuBLAS ---- */

static int mock_handle;
cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
{
    *h = (cublasHandle_t)&mock_handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
    (void)h;
    return CUBLAS_STATUS_SUCCESS;
}
static cudaStream_t mock_blas_stream;
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
{
    (void)h;
    mock_blas_stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s)
{
    (void)h;
    *s = mock_blas_stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    (void)h, (void)m;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *w, size_t n)
{
    (void)h, (void)w, (void)n;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "mock cuBLAS error";
}

/* Products run so far by the cuBLAS stand-ins and by the matrix-vector
 * launchers (cu_gemv_*): the ops test checks which path a shape took. */
long mock_cuda_cublas_calls, mock_cuda_gemv_calls;

static cu_dtype_t dt_of(cudaDataType t)
{
    return t == CUDA_R_32F ? CU_F32 : CU_BF16;
}

/* C = alpha op(A) op(B) + beta C, column-major, as cuBLAS defines it. */
static cublasStatus_t gemm1(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            float alpha, const void *A, cudaDataType at, int lda, const void *B,
                            cudaDataType bt, int ldb, float beta, float *C, int ldc)
{
    if ((ta == CUBLAS_OP_N ? lda < m : lda < k) || (tb == CUBLAS_OP_N ? ldb < k : ldb < n) ||
        ldc < m)
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int p = 0; p < k; p++) {
                float a = ldt(dt_of(at), A,
                              ta == CUBLAS_OP_N ? (size_t)i + (size_t)p * lda
                                                : (size_t)p + (size_t)i * lda);
                float b = ldt(dt_of(bt), B,
                              tb == CUBLAS_OP_N ? (size_t)p + (size_t)j * ldb
                                                : (size_t)j + (size_t)p * ldb);
                acc += a * b;
            }
            float *c = C + (size_t)i + (size_t)j * ldc;
            *c = alpha * acc + (beta != 0.0f ? beta * *c : 0.0f);
        }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType at,
                            int lda, const void *B, cudaDataType bt, int ldb, const void *beta,
                            void *C, cudaDataType ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t algo)
{
    (void)h, (void)algo;
    if (ct != CUDA_R_32F || comp != CUBLAS_COMPUTE_32F || at != bt)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    mock_cuda_cublas_calls++;
    return gemm1(ta, tb, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb,
                 *(const float *)beta, (float *)C, ldc);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType at,
                                          int lda, long long sa, const void *B, cudaDataType bt,
                                          int ldb, long long sb, const void *beta, void *C,
                                          cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t comp, cublasGemmAlgo_t algo)
{
    (void)h, (void)algo;
    if (ct != CUDA_R_32F || comp != CUBLAS_COMPUTE_32F || at != bt)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    mock_cuda_cublas_calls++;
    for (int b = 0; b < batch; b++) {
        cublasStatus_t s = gemm1(ta, tb, m, n, k, *(const float *)alpha,
                                 (const char *)A + (size_t)(b * sa) * esz(dt_of(at)), at, lda,
                                 (const char *)B + (size_t)(b * sb) * esz(dt_of(bt)), bt, ldb,
                                 *(const float *)beta, (float *)C + b * sc, ldc);
        if (s != CUBLAS_STATUS_SUCCESS)
            return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */

/* ---- the kernel launchers, as plain loops ---- */

int cu_convert_f32(cudaStream_t, cu_dtype_t dt, void *dst, const float *src, size_t n, char *,
                   size_t)
{
    for (size_t i = 0; i < n; i++)
        stt(dt, dst, i, src[i]);
    return 0;
}

int cu_to_f32(cudaStream_t, cu_dtype_t dt, float *dst, const void *src, size_t n, char *, size_t)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ldt(dt, src, i);
    return 0;
}

int cu_embed(cudaStream_t, cu_dtype_t dt, float *x, const void *table, const int32_t *tokens,
             int n, int H, char *, size_t)
{
    for (int r = 0; r < n; r++)
        for (int d = 0; d < H; d++)
            x[(size_t)r * H + d] = ldt(dt, table, (size_t)tokens[r] * H + d);
    return 0;
}

int cu_rmsnorm(cudaStream_t, float *y, int ldy, const float *x, int ldx, const int32_t *rows,
               const float *w, int n_rows, int n, float eps, char *, size_t)
{
    for (int r = 0; r < n_rows; r++)
        eng_rmsnorm(y + (size_t)r * ldy, x + (size_t)(rows ? rows[r] : r) * ldx, w, (size_t)n,
                    eps);
    return 0;
}

int cu_rope(cudaStream_t, float *v, int n_rows, int heads, long ldr, int ldh, int dim,
            const float *inv_freq, const int32_t *pos, bool interleave, float af, char *, size_t)
{
    for (int r = 0; r < n_rows; r++)
        for (int h = 0; h < heads; h++)
            eng_rope_apply(v + r * ldr + (size_t)h * ldh, dim, inv_freq, pos[r], interleave, af);
    return 0;
}

int cu_silu_mul(cudaStream_t, cu_dtype_t dt, void *out, const float *gu, int n_rows, int inter,
                char *, size_t)
{
    for (int r = 0; r < n_rows; r++)
        for (int i = 0; i < inter; i++) {
            float g = gu[(size_t)r * 2 * inter + i], u = gu[(size_t)r * 2 * inter + inter + i];
            stt(dt, out, (size_t)r * inter + i, g / (1.0f + expf(-g)) * u);
        }
    return 0;
}

int cu_moe_route(cudaStream_t, const cu_route_cfg_t *rc, const float *logits, const float *bias,
                 int32_t *idx, float *w, int n, char *, size_t)
{
    eng_config_t c;
    memset(&c, 0, sizeof c);
    c.n_routed = rc->E, c.top_k = rc->K, c.n_group = rc->n_group, c.topk_group = rc->topk_group;
    c.scoring = rc->softmax ? ENG_SCORE_SOFTMAX : ENG_SCORE_SIGMOID;
    c.group_rank = (eng_group_rank_t)rc->group_rank;
    c.norm_topk = rc->norm_topk;
    c.routed_scale = rc->routed_scale;
    int id[CU_MAX_TOPK];
    for (int t = 0; t < n; t++) {
        eng_moe_route(&c, logits + (size_t)t * rc->E, bias, id, w + (size_t)t * rc->K);
        for (int k = 0; k < rc->K; k++)
            idx[(size_t)t * rc->K + k] = id[k];
    }
    return 0;
}

int cu_moe_sort(cudaStream_t, const int32_t *idx, int NK, int K, int E, int32_t *first,
                int32_t *src, int32_t *slot, char *, size_t)
{
    int run = 0, na = 0;
    for (int e = 0; e < E; e++) {
        first[e] = run;
        if (run < NK) { /* the list of experts with rows, as k_moe_sort */
            int had = run;
            for (int a = 0; a < NK; a++)
                if (idx[a] == e) {
                    src[run] = a / K;
                    slot[a] = run++;
                }
            if (run > had)
                first[E + 1 + na++] = e;
        }
    }
    first[E] = run;
    first[2 * E + 1] = na;
    return 0;
}

/* Only the listed experts (the kernels' block rows), and at most slots of
 * them: a list longer than the grid would be a bug the results then show. */
int cu_expert_gemv(cudaStream_t, cu_dtype_t dt, float *y, int ldy, const void *x, int ldx,
                   const void *W, const int32_t *first, int E, int slots, int n_in, int n_out,
                   char *, size_t)
{
    for (int j = 0; j < slots && j < first[2 * E + 1]; j++) {
        int e = first[E + 1 + j];
        for (int a = first[e]; a < first[e + 1]; a++)
            for (int o = 0; o < n_out; o++) {
                float acc = 0.0f;
                for (int i = 0; i < n_in; i++)
                    acc += ldt(dt, W, ((size_t)e * n_out + o) * n_in + i) *
                           ldt(dt, x, (size_t)a * ldx + i);
                y[(size_t)a * ldy + o] = acc;
            }
    }
    return 0;
}

/* k_expert_mma's contract: the same product (bf16), and it reads up to
 * CU_EXPERT_PAD_ROWS rows past the last sorted row, which must exist: the
 * stand-in reads them too (in the sanitizer build ASan reports a short
 * buffer) and counts the calls (the golden check asserts the path ran). */
long mock_cuda_expert_mma_calls;

bool cu_expert_mma_fits(int n_in, int n_out, int ldx)
{
    return n_in % 16 == 0 && n_out % 32 == 0 && ldx % 16 == 0;
}

int cu_expert_mma(cudaStream_t, float *y, int ldy, const void *x, int ldx, const void *W,
                  const int32_t *first, int E, int slots, int n_in, int n_out, char *err,
                  size_t errlen)
{
    mock_cuda_expert_mma_calls++;
    volatile float pad = 0.0f;
    for (int i = 0; i < n_in; i++)
        pad += ldt(CU_BF16, x, (size_t)(first[E] + CU_EXPERT_PAD_ROWS - 1) * ldx + i);
    (void)pad;
    return cu_expert_gemv(NULL, CU_BF16, y, ldy, x, ldx, W, first, E, slots, n_in, n_out, err,
                          errlen);
}

/* The matrix-vector launchers' contracts (eng_cuda_priv.cuh) as loops:
 * transposed (w_b[o][i]) or not (w_b[i][o]), beta 0 never reads y. */
static int mock_gemv(bool trans, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
                     int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok,
                     int n_in, int n_out, int batch, float beta, char *err, size_t errlen)
{
    if (n_tok > CU_GEMV_MAX_TOK || batch > 65535) {
        snprintf(err, errlen, "mock gemv: %d rows x %d batches", n_tok, batch);
        return -1;
    }
    mock_cuda_gemv_calls++;
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < n_tok; t++)
            for (int o = 0; o < n_out; o++) {
                float acc = 0.0f;
                for (int i = 0; i < n_in; i++)
                    acc += ldt(dt, w, (size_t)(b * sw) + (trans ? (size_t)o * ldw + i
                                                                 : (size_t)i * ldw + o)) *
                           ldt(dt, x, (size_t)(b * sx) + (size_t)t * ldx + i);
                float *p = y + b * sy + (size_t)t * ldy + o;
                *p = beta != 0.0f ? acc + beta * *p : acc;
            }
    return 0;
}

int cu_gemv_xwt(cudaStream_t, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
                int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok, int n_in,
                int n_out, int batch, float beta, char *err, size_t errlen)
{
    return mock_gemv(true, dt, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch,
                     beta, err, errlen);
}

int cu_gemv_xw(cudaStream_t, cu_dtype_t dt, float *y, int ldy, long long sy, const void *x,
               int ldx, long long sx, const void *w, int ldw, long long sw, int n_tok, int n_in,
               int n_out, int batch, char *err, size_t errlen)
{
    return mock_gemv(false, dt, y, ldy, sy, x, ldx, sx, w, ldw, sw, n_tok, n_in, n_out, batch,
                     0.0f, err, errlen);
}

int cu_gather_rows(cudaStream_t, cu_dtype_t dt, void *xg, const float *x, const int32_t *src,
                   int n_assign, int H, char *, size_t)
{
    for (int a = 0; a < n_assign; a++)
        for (int d = 0; d < H; d++)
            stt(dt, xg, (size_t)a * H + d, x[(size_t)src[a] * H + d]);
    return 0;
}

int cu_moe_combine(cudaStream_t, float *resid, const float *yg, const int32_t *slot,
                   const float *w, int n, int K, int H, char *, size_t)
{
    for (int t = 0; t < n; t++)
        for (int d = 0; d < H; d++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc += w[t * K + k] * yg[(size_t)slot[t * K + k] * H + d];
            resid[(size_t)t * H + d] += acc;
        }
    return 0;
}

static size_t kv_off(int blk, int layer, int slot, int n_layers, int row)
{
    return (((size_t)blk * n_layers + layer) * ENG_KV_BLOCK + slot) * (size_t)row;
}

int cu_kv_store(cudaStream_t, cu_dtype_t dt, void *kv, float *rows, int n, int kvl, int rope,
                const float *norm_w, const float *inv_freq, const int32_t *pos,
                const int32_t *dst_block, const int32_t *dst_slot, int layer, int n_layers,
                bool interleave, float af, char *, size_t)
{
    int row = kvl + rope;
    for (int r = 0; r < n; r++) {
        float *x = rows + (size_t)r * row;
        eng_rmsnorm(x, x, norm_w, (size_t)kvl, 1e-6f);
        eng_rope_apply(x + kvl, rope, inv_freq, pos[r], interleave, af);
        size_t o = kv_off(dst_block[r], layer, dst_slot[r], n_layers, row);
        for (int d = 0; d < row; d++)
            stt(dt, kv, o + d, x[d]);
    }
    return 0;
}

int cu_qlat_rope(cudaStream_t, float *qlat, const float *q, int n, int nh, int nope, int rope,
                 int kvl, char *, size_t)
{
    for (size_t rh = 0; rh < (size_t)n * nh; rh++)
        for (int d = 0; d < rope; d++)
            qlat[rh * (kvl + rope) + kvl + d] = q[rh * (nope + rope) + nope + d];
    return 0;
}

/* The absorbed decode attention as the device runs it: the same grid (row,
 * 16-head chunk, 64-token split), the same three passes per block, the same
 * partial (o, m, l) layout in po / pml and the same combine, one "block" at a
 * time with the thread loops written out; so the split/combine index
 * arithmetic of k_att_absorbed / k_att_combine is exercised here. */
bool cu_att_q_bf16(cu_dtype_t, int, int)
{
    return false; /* the CUDA-core kernel's arithmetic below reads float32 q_lat */
}

int cu_att_absorbed(cudaStream_t, cu_dtype_t dt, const void *kv, const float *qlat, const void *,
                    float *olat, float *po, float *pml, const cu_att_row_t *rows, int n_rows,
                    int max_splits, const int32_t *tables, int nh, int kvl, int rope, int layer,
                    int n_layers, float scale, char *, size_t)
{
    const int row = kvl + rope, HC = CU_ATT_HEADS;
    float *sq = (float *)calloc((size_t)HC * row, sizeof(float));
    float sp[CU_ATT_HEADS * ENG_KV_BLOCK];
    for (int bx = 0; bx < n_rows; bx++)
        for (int by = 0; by < (nh + HC - 1) / HC; by++)
            for (int split = 0; split < max_splits; split++) {
                const cu_att_row_t R = rows[bx];
                const int h0 = by * HC, hc = nh - h0 < HC ? nh - h0 : HC;
                const int j0 = split * ENG_KV_BLOCK;
                const int cnt = R.n_ctx - j0 < ENG_KV_BLOCK ? R.n_ctx - j0 : ENG_KV_BLOCK;
                float *pm = pml + (((size_t)bx * max_splits + split) * nh + h0) * 2;
                if (cnt <= 0) {
                    for (int h = 0; h < hc; h++) {
                        pm[2 * h] = -INFINITY;
                        pm[2 * h + 1] = 0.0f;
                    }
                    continue;
                }
                const float *qsrc = qlat + ((size_t)R.row * nh + h0) * row;
                for (int i = 0; i < hc * row; i++)
                    sq[i] = qsrc[i];
                size_t base = kv_off(tables[R.table + split], layer, 0, n_layers, row);
                for (int j = 0; j < cnt; j++)
                    for (int h = 0; h < hc; h++) {
                        float acc = 0.0f;
                        for (int d = 0; d < row; d++)
                            acc += sq[h * row + d] * ldt(dt, kv, base + (size_t)j * row + d);
                        sp[h * ENG_KV_BLOCK + j] = acc * scale;
                    }
                for (int h = 0; h < hc; h++) {
                    float *p = sp + h * ENG_KV_BLOCK, m = -INFINITY, l = 0.0f;
                    for (int j = 0; j < cnt; j++)
                        m = p[j] > m ? p[j] : m;
                    for (int j = 0; j < cnt; j++) {
                        p[j] = expf(p[j] - m);
                        l += p[j];
                    }
                    pm[2 * h] = m;
                    pm[2 * h + 1] = l;
                }
                float *out = po + (((size_t)bx * max_splits + split) * nh + h0) * kvl;
                for (int k = 0; k < kvl; k++)
                    for (int h = 0; h < hc; h++) {
                        float acc = 0.0f;
                        for (int j = 0; j < cnt; j++)
                            acc += sp[h * ENG_KV_BLOCK + j] * ldt(dt, kv, base + (size_t)j * row + k);
                        out[(size_t)h * kvl + k] = acc;
                    }
            }
    free(sq);
    /* k_att_combine */
    for (int bx = 0; bx < n_rows; bx++)
        for (int h = 0; h < nh; h++) {
            const cu_att_row_t R = rows[bx];
            const int S = (R.n_ctx + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
            const float *pm = pml + ((size_t)bx * max_splits * nh + h) * 2;
            const size_t sstride = (size_t)nh * 2;
            float M = -INFINITY, L = 0.0f;
            for (int s = 0; s < S; s++)
                if (pm[s * sstride + 1] > 0.0f && pm[s * sstride] > M)
                    M = pm[s * sstride];
            for (int s = 0; s < S; s++)
                if (pm[s * sstride + 1] > 0.0f)
                    L += pm[s * sstride + 1] * expf(pm[s * sstride] - M);
            const float *o = po + ((size_t)bx * max_splits * nh + h) * kvl;
            const size_t ostride = (size_t)nh * kvl;
            float *dst = olat + ((size_t)R.row * nh + h) * kvl;
            for (int k = 0; k < kvl; k++) {
                float acc = 0.0f;
                for (int s = 0; s < S; s++)
                    if (pm[s * sstride + 1] > 0.0f)
                        acc += o[s * ostride + k] * expf(pm[s * sstride] - M);
                dst[k] = acc / L;
            }
        }
    return 0;
}

int cu_gather_latent(cudaStream_t, cu_dtype_t dt, void *lat, float *krot, const void *kv,
                     const int32_t *table, int ctx, int kvl, int rope, int layer, int n_layers,
                     char *, size_t)
{
    int row = kvl + rope;
    for (int j = 0; j < ctx; j++) {
        size_t o = kv_off(table[j / ENG_KV_BLOCK], layer, j % ENG_KV_BLOCK, n_layers, row);
        for (int d = 0; d < kvl; d++)
            stt(dt, lat, (size_t)j * kvl + d, ldt(dt, kv, o + d));
        for (int d = 0; d < rope; d++)
            krot[(size_t)j * rope + d] = ldt(dt, kv, o + kvl + d);
    }
    return 0;
}

/* k_causal_softmax: row t of head h keeps keys j <= first_last_key + t;
 * P in element type dt (may alias S when float32). */
int cu_causal_softmax(cudaStream_t, cu_dtype_t dt, void *P, const float *S, int nh, int n, int m,
                      int first_last_key, char *, size_t)
{
    float *r = (float *)malloc((size_t)m * sizeof(float) + 1);
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < n; t++) {
            size_t off = ((size_t)h * n + t) * m;
            int keep = first_last_key + t + 1 < m ? first_last_key + t + 1 : m;
            memcpy(r, S + off, (size_t)m * sizeof(float));
            eng_softmax(r, (size_t)keep);
            for (int j = 0; j < m; j++)
                stt(dt, P, off + j, j < keep ? r[j] : 0.0f);
        }
    free(r);
    return 0;
}

int cu_att_setup(char *, size_t)
{
    return 0;
}

int cu_argmax(cudaStream_t, int32_t *out, const float *x, int n_rows, int n, char *, size_t)
{
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * n;
        int b = 0;
        for (int i = 1; i < n; i++)
            if (xr[i] > xr[b])
                b = i;
        out[r] = b;
    }
    return 0;
}

int cu_fill_weights(cudaStream_t, cu_dtype_t dt, void *dst, size_t n, int kind, float amp,
                    uint64_t seed, char *, size_t)
{
    for (size_t i = 0; i < n; i++) {
        float u = (float)((i * 2654435761u + seed) % 1000) / 500.0f - 1.0f;
        stt(dt, dst, i, kind == W_NORM ? 1.0f + 0.1f * u : kind == W_BIAS ? 0.1f * u : amp * u);
    }
    return 0;
}

int cu_fill_blocks(cudaStream_t, cu_dtype_t dt, void *kv, const int32_t *blocks, int n_blocks,
                   size_t block_elems, uint64_t seed, char *, size_t)
{
    for (int b = 0; b < n_blocks; b++)
        for (size_t i = 0; i < block_elems; i++)
            stt(dt, kv, (size_t)blocks[b] * block_elems + i,
                (float)((i * 2654435761u + seed) % 1000) / 500.0f - 1.0f);
    return 0;
}
