/* eng_backend_nocuda: the CUDA entry points of a build without nvcc. Every
 * call fails with one clear message, so `--device cuda` says what to do and
 * the GPU tests skip instead of failing to link. */
#include "eng_backend.h"
#include "eng_cuda.h"

#include <stdio.h>

#define NO_CUDA_MSG                                                                                \
    "this tollgate-engine was built without CUDA (nvcc was not found when meson configured the "  \
    "build: put /usr/local/cuda/bin on PATH and run meson setup again, or use --device cpu)"

static int no_cuda(char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", NO_CUDA_MSG);
    return -1;
}

bool eng_backend_cuda_built(void)
{
    return false;
}

eng_backend_t *eng_backend_cuda_create(const eng_model_t *model, const eng_cuda_opts_t *opts,
                                       eng_cuda_info_t *info, char *err, size_t errlen)
{
    (void)model, (void)opts, (void)info;
    no_cuda(err, errlen);
    return NULL;
}

int eng_cuda_device_ok(char *err, size_t errlen)
{
    return no_cuda(err, errlen);
}

int eng_cuda_seq_fill_synthetic(eng_backend_t *be, eng_bseq_t *seq, int n_tokens, uint64_t seed,
                                char *err, size_t errlen)
{
    (void)be, (void)seq, (void)n_tokens, (void)seed;
    return no_cuda(err, errlen);
}

int eng_cuda_copy_bandwidth(eng_backend_t *be, size_t bytes, double *bytes_per_s, char *err,
                            size_t errlen)
{
    (void)be, (void)bytes;
    *bytes_per_s = 0;
    return no_cuda(err, errlen);
}

int eng_cuda_info(eng_backend_t *be, eng_cuda_info_t *out, char *err, size_t errlen)
{
    (void)be, (void)out;
    return no_cuda(err, errlen);
}

void eng_cuda_graph_stats(eng_backend_t *be, long *captures, long *replays, long *failures)
{
    (void)be;
    *captures = *replays = *failures = 0;
}

int eng_cuda_mem_used(eng_backend_t *be, size_t *used, size_t *total, char *err, size_t errlen)
{
    (void)be;
    *used = *total = 0;
    return no_cuda(err, errlen);
}

void eng_cuda_profile_reset(eng_backend_t *be)
{
    (void)be;
}

void eng_cuda_profile_enable(eng_backend_t *be, bool on)
{
    (void)be, (void)on;
}

void eng_cuda_profile_print(eng_backend_t *be, FILE *f, int steps)
{
    (void)be, (void)f, (void)steps;
}

int eng_cuda_op_rmsnorm(float *y, const float *x, const float *w, int rows, int n, float eps,
                        char *err, size_t errlen)
{
    (void)y, (void)x, (void)w, (void)rows, (void)n, (void)eps;
    return no_cuda(err, errlen);
}

int eng_cuda_op_rope(float *v, int rows, int dim, const float *inv_freq, const int32_t *pos,
                     bool interleave, float attn_factor, char *err, size_t errlen)
{
    (void)v, (void)rows, (void)dim, (void)inv_freq, (void)pos, (void)interleave,
        (void)attn_factor;
    return no_cuda(err, errlen);
}

int eng_cuda_op_silu_mul(float *out, const float *gu, int rows, int inter, char *err,
                         size_t errlen)
{
    (void)out, (void)gu, (void)rows, (void)inter;
    return no_cuda(err, errlen);
}

int eng_cuda_op_moe_route(const eng_config_t *cfg, const float *logits, const float *bias, int n,
                          int32_t *idx, float *w, char *err, size_t errlen)
{
    (void)cfg, (void)logits, (void)bias, (void)n, (void)idx, (void)w;
    return no_cuda(err, errlen);
}

int eng_cuda_op_matmul(float *y, const float *x, const float *w, int n_tok, int n_in, int n_out,
                       bool f32, char *err, size_t errlen)
{
    (void)y, (void)x, (void)w, (void)n_tok, (void)n_in, (void)n_out, (void)f32;
    return no_cuda(err, errlen);
}

int eng_cuda_op_gemm(const eng_cuda_gemm_case_t *c, float *y, size_t ny, const float *x,
                     size_t nx, const float *w, size_t nw, char *err, size_t errlen)
{
    (void)c, (void)y, (void)ny, (void)x, (void)nx, (void)w, (void)nw;
    return no_cuda(err, errlen);
}

int eng_cuda_op_expert_rows(float *y, int32_t *first, int32_t *src, int32_t *slot,
                            const int32_t *idx, int n, int K, int E, const float *x,
                            const float *W, int n_in, int n_out, bool f32, bool mma, char *err,
                            size_t errlen)
{
    (void)y, (void)first, (void)src, (void)slot, (void)idx, (void)n, (void)K, (void)E, (void)x,
        (void)W, (void)n_in, (void)n_out, (void)f32, (void)mma;
    return no_cuda(err, errlen);
}

int eng_cuda_op_argmax(int32_t *out, const float *x, int rows, int n, char *err, size_t errlen)
{
    (void)out, (void)x, (void)rows, (void)n;
    return no_cuda(err, errlen);
}
