/* eng_ops: float32 kernels for the CPU path. The matmul keeps one weight row
 * in registers while it walks four tokens, so prefill reads each weight once
 * per four tokens; decode is a plain threaded matrix-vector product. */
#include "eng_ops.h"

#include <math.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
/* The same vector type allowed at any float alignment (unaligned loads). */
typedef float v8f_u __attribute__((vector_size(32), aligned(4)));

/* Macros, not functions: a 256-bit vector passed between the AVX2 clone of
 * mm_rows and a baseline helper would change the calling convention. */
#define load8(p) (*(const v8f_u *)(p))
#define hsum8(v) ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

float eng_dot(const float *a, const float *b, size_t n)
{
    v8f s0 = {0}, s1 = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 += load8(a + i) * load8(b + i);
        s1 += load8(a + i + 8) * load8(b + i + 8);
    }
    for (; i + 8 <= n; i += 8)
        s0 += load8(a + i) * load8(b + i);
    v8f s01 = s0 + s1;
    float s = hsum8(s01);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef struct {
    float *y;
    size_t ldy;
    const float *x;
    size_t ldx;
    const float *w;
    size_t n_tok, n_in;
} mm_ctx_t;

/* One weight row against one token (the decode case): four accumulators.
 * A macro-like always-inline helper, so it is compiled into each clone. */
static inline __attribute__((always_inline)) float dot_one(const float *w, const float *x0,
                                                           size_t n)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 += load8(w + i) * load8(x0 + i);
        a1 += load8(w + i + 8) * load8(x0 + i + 8);
        a2 += load8(w + i + 16) * load8(x0 + i + 16);
        a3 += load8(w + i + 24) * load8(x0 + i + 24);
    }
    for (; i + 8 <= n; i += 8)
        a0 += load8(w + i) * load8(x0 + i);
    v8f sum = (a0 + a1) + (a2 + a3);
    float s = hsum8(sum);
    for (; i < n; i++)
        s += w[i] * x0[i];
    return s;
}

/* Rows [lo, hi) of w against all tokens: two rows by four tokens at a time
 * for prefill, one row by one token for decode. */
/* -std=c17 turns floating-point contraction off; allowing it here lets the
 * AVX2 clone use FMA (one rounding instead of two per multiply-add). */
__attribute__((target_clones("arch=x86-64-v3", "default"), optimize("fp-contract=fast"))) static void
mm_rows(void *arg, size_t lo, size_t hi)
{
    const mm_ctx_t *c = arg;
    size_t n = c->n_in;
    size_t o = lo;
    /* Two weight rows x four tokens per pass: 8 accumulators, 6 loads per 8
     * multiply-adds. Each (row, token) sum is formed exactly as in the
     * one-row loop below, so the grouping does not change any result. */
    for (; o + 2 <= hi && c->n_tok >= 4; o += 2) {
        const float *w0 = c->w + o * n, *w1 = w0 + n;
        size_t t = 0;
        for (; t + 4 <= c->n_tok; t += 4) {
            const float *x0 = c->x + t * c->ldx, *x1 = x0 + c->ldx, *x2 = x1 + c->ldx,
                        *x3 = x2 + c->ldx;
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
            size_t i = 0;
            for (; i + 8 <= n; i += 8) {
                v8f u = load8(w0 + i), v = load8(w1 + i), x;
                x = load8(x0 + i);
                a0 += u * x;
                b0 += v * x;
                x = load8(x1 + i);
                a1 += u * x;
                b1 += v * x;
                x = load8(x2 + i);
                a2 += u * x;
                b2 += v * x;
                x = load8(x3 + i);
                a3 += u * x;
                b3 += v * x;
            }
            float s[8] = {hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3),
                          hsum8(b0), hsum8(b1), hsum8(b2), hsum8(b3)};
            for (; i < n; i++) {
                s[0] += w0[i] * x0[i];
                s[1] += w0[i] * x1[i];
                s[2] += w0[i] * x2[i];
                s[3] += w0[i] * x3[i];
                s[4] += w1[i] * x0[i];
                s[5] += w1[i] * x1[i];
                s[6] += w1[i] * x2[i];
                s[7] += w1[i] * x3[i];
            }
            for (int k = 0; k < 4; k++) {
                c->y[(t + (size_t)k) * c->ldy + o] = s[k];
                c->y[(t + (size_t)k) * c->ldy + o + 1] = s[4 + k];
            }
        }
        for (; t < c->n_tok; t++)
            for (size_t r = 0; r < 2; r++)
                c->y[t * c->ldy + o + r] = dot_one(c->w + (o + r) * n, c->x + t * c->ldx, n);
    }
    for (; o < hi; o++) {
        const float *w = c->w + o * n;
        size_t t = 0;
        for (; t + 4 <= c->n_tok; t += 4) {
            const float *x0 = c->x + t * c->ldx, *x1 = x0 + c->ldx, *x2 = x1 + c->ldx,
                        *x3 = x2 + c->ldx;
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            size_t i = 0;
            for (; i + 8 <= n; i += 8) {
                v8f wv = load8(w + i);
                a0 += wv * load8(x0 + i);
                a1 += wv * load8(x1 + i);
                a2 += wv * load8(x2 + i);
                a3 += wv * load8(x3 + i);
            }
            float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
            for (; i < n; i++) {
                s0 += w[i] * x0[i];
                s1 += w[i] * x1[i];
                s2 += w[i] * x2[i];
                s3 += w[i] * x3[i];
            }
            c->y[t * c->ldy + o] = s0;
            c->y[(t + 1) * c->ldy + o] = s1;
            c->y[(t + 2) * c->ldy + o] = s2;
            c->y[(t + 3) * c->ldy + o] = s3;
        }
        for (; t < c->n_tok; t++)
            c->y[t * c->ldy + o] = dot_one(w, c->x + t * c->ldx, n);
    }
}

void eng_matmul(eng_pool_t *pool, float *y, size_t ldy, const float *x, size_t ldx,
                const float *w, size_t n_tok, size_t n_in, size_t n_out)
{
    mm_ctx_t c = {y, ldy, x, ldx, w, n_tok, n_in};
    /* Small products are not worth waking the workers. */
    size_t work = n_tok * n_in * n_out;
    if (work < 32768)
        mm_rows(&c, 0, n_out);
    else
        eng_pool_for(pool, n_out, 16, mm_rows, &c);
}

void eng_rmsnorm(float *y, const float *x, const float *weight, size_t n, float eps)
{
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++)
        y[i] = weight[i] * (x[i] * r);
}

void eng_silu_mul(float *x, const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-x[i])) * g[i];
}

void eng_softmax(float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    for (size_t i = 0; i < n; i++)
        x[i] /= s;
}

/* YaRN's correction dim for a number of rotations (transformers' formula). */
static double yarn_correction_dim(double rot, int dim, double base, double max_pos)
{
    return (dim * log(max_pos / (rot * 2.0 * M_PI))) / (2.0 * log(base));
}

void eng_rope_inv_freq(const eng_config_t *cfg, float *inv_freq)
{
    int dim = cfg->qk_rope, half = dim / 2;
    float base = (float)cfg->rope_theta;
    for (int i = 0; i < half; i++)
        inv_freq[i] = 1.0f / powf(base, (float)(2 * i) / (float)dim);
    if (!cfg->yarn)
        return;
    double low = yarn_correction_dim(cfg->beta_fast, dim, cfg->rope_theta, cfg->yarn_orig_max);
    double high = yarn_correction_dim(cfg->beta_slow, dim, cfg->rope_theta, cfg->yarn_orig_max);
    if (cfg->yarn_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0)
        low = 0;
    if (high > dim - 1)
        high = dim - 1;
    if (low == high)
        high += 0.001; /* as transformers: avoid a zero-width ramp */
    float factor = (float)cfg->yarn_factor;
    for (int i = 0; i < half; i++) {
        float ramp = ((float)i - (float)low) / (float)(high - low);
        ramp = ramp < 0.0f ? 0.0f : (ramp > 1.0f ? 1.0f : ramp);
        float extra = 1.0f - ramp; /* weight of the unscaled frequency */
        float interp = inv_freq[i] / factor;
        inv_freq[i] = interp * (1.0f - extra) + inv_freq[i] * extra;
    }
}

void eng_rope_apply(float *v, int dim, const float *inv_freq, int pos, bool interleave,
                    float attn_factor)
{
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        float ang = (float)pos * inv_freq[i];
        float c = cosf(ang) * attn_factor, s = sinf(ang) * attn_factor;
        int a = interleave ? 2 * i : i, b = interleave ? 2 * i + 1 : i + half;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x1 * c + x0 * s;
    }
}
