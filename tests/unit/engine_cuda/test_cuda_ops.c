/* Each CUDA kernel against its CPU twin (eng_ops.c, eng_moe.c) on random
 * inputs: RMSNorm, RoPE in both layouts with yarn frequencies and large
 * positions, SwiGLU, the MoE gate for V2 greedy, V2 group-limited and V3
 * (sigmoid + bias, groups, renorm, scale), the dense products in float32 and
 * bfloat16 on both paths (matrix-vector kernels up to 8 rows, cuBLAS above;
 * strided, batched, accumulating), the expert sort + grouped products (both
 * load paths), and argmax with ties. Without a CUDA device (or a build
 * without CUDA) it prints why and exits 77: skipped, never passed. */
#include "eng_cuda.h"
#include "eng_forward.h"
#include "eng_moe.h"
#include "eng_ops.h"
#include "eng_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x1234567;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *frandv(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    if (!v)
        abort();
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

/* Round to bfloat16 (nearest even), as the device's conversion does. */
static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static char err[1024];

static void check_rmsnorm(void)
{
    const int shapes[][2] = {{7, 2048}, {3, 5}, {1, 512}, {64, 7168}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        int rows = shapes[k][0], n = shapes[k][1];
        float *x = frandv((size_t)rows * n, 3.0f), *w = frandv((size_t)n, 1.0f);
        float *y = calloc((size_t)rows * n, sizeof *y), *ref = calloc((size_t)rows * n, 4);
        for (int r = 0; r < rows; r++)
            eng_rmsnorm(ref + (size_t)r * n, x + (size_t)r * n, w, (size_t)n, 1e-6f);
        CHECK(eng_cuda_op_rmsnorm(y, x, w, rows, n, 1e-6f, err, sizeof err) == 0);
        double e = tu_rel_err(y, ref, (size_t)rows * n);
        printf("rmsnorm %dx%d: rel err %.2e\n", rows, n, e);
        CHECK(e < 1e-6);
        free(x), free(w), free(y), free(ref);
    }
}

static void check_rope(void)
{
    eng_config_t c;
    memset(&c, 0, sizeof c);
    c.qk_rope = 64;
    c.rope_theta = 10000;
    for (int yarn = 0; yarn < 2; yarn++) {
        c.yarn = yarn;
        c.yarn_factor = 40;
        c.yarn_orig_max = 4096;
        c.beta_fast = 32;
        c.beta_slow = 1;
        c.yarn_truncate = true;
        float inv[32];
        eng_rope_inv_freq(&c, inv);
        for (int il = 0; il < 2; il++) {
            int rows = 300;
            float *v = frandv((size_t)rows * 64, 2.0f), *ref = malloc((size_t)rows * 64 * 4);
            int32_t *pos = malloc((size_t)rows * 4);
            memcpy(ref, v, (size_t)rows * 64 * 4);
            for (int r = 0; r < rows; r++) {
                pos[r] = r < 200 ? r : r * 517; /* up to ~154k: the large-argument path */
                eng_rope_apply(ref + (size_t)r * 64, 64, inv, pos[r], il, yarn ? 1.2f : 1.0f);
            }
            CHECK(eng_cuda_op_rope(v, rows, 64, inv, pos, il, yarn ? 1.2f : 1.0f, err,
                                   sizeof err) == 0);
            double e = max_abs_diff(v, ref, (size_t)rows * 64);
            printf("rope yarn=%d interleave=%d: max abs diff %.2e\n", yarn, il, e);
            CHECK(e < 2e-5);
            free(v), free(ref), free(pos);
        }
    }
}

static void check_silu(void)
{
    int rows = 9, inter = 1408;
    float *gu = frandv((size_t)rows * 2 * inter, 6.0f), *out = calloc((size_t)rows * inter, 4);
    float *ref = malloc((size_t)rows * inter * 4);
    for (int r = 0; r < rows; r++) {
        float *g = ref + (size_t)r * inter;
        memcpy(g, gu + (size_t)r * 2 * inter, (size_t)inter * 4);
        eng_silu_mul(g, gu + (size_t)r * 2 * inter + inter, (size_t)inter);
    }
    CHECK(eng_cuda_op_silu_mul(out, gu, rows, inter, err, sizeof err) == 0);
    double e = tu_rel_err(out, ref, (size_t)rows * inter);
    printf("silu_mul %dx%d: rel err %.2e\n", rows, inter, e);
    CHECK(e < 1e-6);
    free(gu), free(out), free(ref);
}

static void check_route(const char *name, eng_config_t *c, bool bias)
{
    int n = 500, E = c->n_routed, K = c->top_k;
    float *lg = frandv((size_t)n * E, 4.0f), *b = bias ? frandv((size_t)E, 0.1f) : NULL;
    int32_t *idx = calloc((size_t)n * K, 4);
    int *ridx = calloc((size_t)n * K, sizeof(int));
    float *w = calloc((size_t)n * K, 4), *rw = calloc((size_t)n * K, 4);
    for (int t = 0; t < n; t++)
        eng_moe_route(c, lg + (size_t)t * E, b, ridx + (size_t)t * K, rw + (size_t)t * K);
    CHECK(eng_cuda_op_moe_route(c, lg, b, n, idx, w, err, sizeof err) == 0);
    int same = 0;
    for (int i = 0; i < n * K; i++)
        same += idx[i] == ridx[i];
    double e = max_abs_diff(w, rw, (size_t)n * K);
    printf("moe route %s: %d/%d experts identical, weights max abs diff %.2e\n", name, same, n * K,
           e);
    CHECK(same == n * K);
    CHECK(e < 1e-5);
    free(lg), free(b), free(idx), free(ridx), free(w), free(rw);
}

static void check_routes(void)
{
    eng_config_t c;
    memset(&c, 0, sizeof c);
    c.n_routed = 64, c.top_k = 6, c.scoring = ENG_SCORE_SOFTMAX, c.group_rank = ENG_GROUP_NONE;
    c.n_group = 1, c.topk_group = 1, c.routed_scale = 1.0f;
    check_route("V2 greedy (64, top-6)", &c, false);
    c.group_rank = ENG_GROUP_MAX, c.n_group = 8, c.topk_group = 3, c.routed_scale = 16.0f;
    check_route("V2 group-limited (8 groups, keep 3)", &c, false);
    c.n_routed = 256, c.top_k = 8, c.scoring = ENG_SCORE_SIGMOID;
    c.group_rank = ENG_GROUP_TOP2_SUM, c.n_group = 8, c.topk_group = 4, c.norm_topk = true;
    c.routed_scale = 2.5f;
    check_route("V3 (256, top-8, sigmoid + bias, groups, renorm, x2.5)", &c, true);
}

static void check_matmul(void)
{
    const int shapes[][3] = {{1, 2048, 300}, {5, 70, 33}, {64, 512, 1024}, {130, 2048, 96}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        int T = shapes[k][0], I = shapes[k][1], O = shapes[k][2];
        for (int f32 = 0; f32 < 2; f32++) {
            float *x = frandv((size_t)T * I, 1.0f), *w = frandv((size_t)O * I, 0.05f);
            if (!f32)
                for (size_t i = 0; i < (size_t)T * I; i++)
                    x[i] = bf16_round(x[i]);
            if (!f32)
                for (size_t i = 0; i < (size_t)O * I; i++)
                    w[i] = bf16_round(w[i]);
            float *y = calloc((size_t)T * O, 4), *ref = calloc((size_t)T * O, 4);
            eng_matmul(NULL, ref, (size_t)O, x, (size_t)I, w, (size_t)T, (size_t)I, (size_t)O);
            CHECK(eng_cuda_op_matmul(y, x, w, T, I, O, f32, err, sizeof err) == 0);
            double e = tu_rel_err(y, ref, (size_t)T * O);
            printf("matmul %s %dx%d x %dx%d: rel err %.2e\n", f32 ? "f32 " : "bf16", T, I, O, I, e);
            /* bf16 inputs are exact and products exact in float32: only the
             * summation order (and tensor-core accumulation) differs */
            CHECK(e < (f32 ? 1e-5 : 1e-4));
            free(x), free(w), free(y), free(ref);
        }
    }
}

#ifdef ENG_CUDA_MOCK
/* mock_cuda.cpp: products run by its cuBLAS stand-ins / matrix-vector launchers */
extern long mock_cuda_cublas_calls, mock_cuda_gemv_calls;
#endif

/* Whether a product of n_tok rows should take the matrix-vector kernels. */
static bool gemv_expected(int n_tok)
{
    const char *v = getenv("TG_CUDA_GEMV");
    return n_tok <= 8 && !(v && !strcmp(v, "0"));
}

/* Elements of one operand's array for a layout: last batch, last row, row. */
static size_t span(int batch, long long sb, int rows, int ld, int row, int off)
{
    return (size_t)off + (size_t)(batch - 1) * (size_t)sb + (size_t)(rows - 1) * (size_t)ld +
           (size_t)row;
}

/* One product of eng_cuda_op_gemm against a double-precision loop over the
 * same layout: the product's elements (relative error), every other element
 * of y unchanged, y never read when beta is 0 (NaN there), and under the
 * mock the path the dispatch took. */
static void check_gemm_case(const char *what, eng_cuda_gemm_case_t c)
{
    const bool xw = c.form == ENG_CUDA_GEMM_XW_BATCHED;
    if (c.form == ENG_CUDA_GEMM_XWT)
        c.batch = 1, c.sx = c.sw = c.sy = 0;
    size_t nx = span(c.batch, c.sx, c.n_tok, c.ldx, c.n_in, c.x_off);
    size_t nw = xw ? span(c.batch, c.sw, c.n_in, c.ldw, c.n_out, c.w_off)
                   : span(c.batch, c.sw, c.n_out, c.ldw, c.n_in, c.w_off);
    size_t ny = span(c.batch, c.sy, c.n_tok, c.ldy, c.n_out, 0) + 3; /* + a tail */
    float *x = frandv(nx, 1.0f), *w = frandv(nw, 0.05f), *y = frandv(ny, 1.0f);
    float *y0 = malloc(ny * 4), *got = calloc((size_t)c.batch * c.n_tok * c.n_out, 4);
    float *ref = calloc((size_t)c.batch * c.n_tok * c.n_out, 4);
    char *in = calloc(ny, 1);
    if (!y0 || !got || !ref || !in)
        abort();
    if (!c.f32) {
        for (size_t i = 0; i < nx; i++)
            x[i] = bf16_round(x[i]);
        for (size_t i = 0; i < nw; i++)
            w[i] = bf16_round(w[i]);
    }
    size_t k = 0;
    for (int b = 0; b < c.batch; b++)
        for (int t = 0; t < c.n_tok; t++)
            for (int o = 0; o < c.n_out; o++, k++) {
                size_t yi = (size_t)b * c.sy + (size_t)t * c.ldy + o;
                double acc = c.beta * (double)y[yi];
                for (int i = 0; i < c.n_in; i++) {
                    size_t wi = (size_t)c.w_off + (size_t)b * c.sw +
                                (xw ? (size_t)i * c.ldw + o : (size_t)o * c.ldw + i);
                    acc += (double)x[c.x_off + (size_t)b * c.sx + (size_t)t * c.ldx + i] * w[wi];
                }
                ref[k] = (float)acc;
                in[yi] = 1;
                if (c.beta == 0.0f)
                    y[yi] = NAN;
            }
    memcpy(y0, y, ny * 4);
#ifdef ENG_CUDA_MOCK
    long blas0 = mock_cuda_cublas_calls, gemv0 = mock_cuda_gemv_calls;
#endif
    CHECK(eng_cuda_op_gemm(&c, y, ny, x, nx, w, nw, err, sizeof err) == 0);
    bool gemv = gemv_expected(c.n_tok);
#ifdef ENG_CUDA_MOCK
    CHECK(mock_cuda_gemv_calls - gemv0 == (gemv ? 1 : 0));
    CHECK(mock_cuda_cublas_calls - blas0 == (gemv ? 0 : 1));
#endif
    k = 0;
    size_t outside_changed = 0;
    for (int b = 0; b < c.batch; b++)
        for (int t = 0; t < c.n_tok; t++)
            for (int o = 0; o < c.n_out; o++)
                got[k++] = y[(size_t)b * c.sy + (size_t)t * c.ldy + o];
    for (size_t i = 0; i < ny; i++)
        if (!in[i] && memcmp(&y[i], &y0[i], 4))
            outside_changed++;
    double e = tu_rel_err(got, ref, k);
    printf("gemm %-24s %s %s tok %d in %d out %d batch %d ld %d/%d/%d off %d/%d beta %g: "
           "rel err %.2e, %zu outside changed\n",
           what, c.f32 ? "f32 " : "bf16", gemv ? "gemv  " : "cuBLAS", c.n_tok, c.n_in, c.n_out,
           c.batch, c.ldx, c.ldw, c.ldy, c.x_off, c.w_off, (double)c.beta, e, outside_changed);
    CHECK(e < (c.f32 ? 1e-5 : 1e-4)); /* NaN (a read of y at beta 0) fails too */
    CHECK(outside_changed == 0);
    free(x), free(w), free(y), free(y0), free(got), free(ref), free(in);
}

/* The dense products at few rows (matrix-vector kernels) and more (cuBLAS):
 * n_tok 1, 3, 8 | 9, 16, bf16 and float32, beta 1 into padded rows, leading
 * dimensions beyond the row, inputs whose layout forbids 16-byte loads
 * (element loads), lanes with a partial last group of loads, and both
 * batched forms with the absorption's layout (V2-Lite: 16 heads, nope 128,
 * kv_lora 512, v_head 128, kv_b rows of 256 per head). */
static void check_gemm_paths(void)
{
    const int toks[] = {1, 3, 8, 9, 16};
    for (int f32 = 0; f32 < 2; f32++)
        for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
            int T = toks[ti];
            eng_cuda_gemm_case_t c = {.form = ENG_CUDA_GEMM_XWT, .f32 = f32};
            /* tight rows; 2816 = 11 vectors per lane: two full groups + a partial one */
            c.n_tok = T, c.n_in = 2816, c.n_out = 300, c.ldx = 2816, c.ldw = 2816, c.ldy = 300;
            check_gemm_case("xwt", c);
            /* beta 1, every leading dimension beyond its row */
            c.n_in = 256, c.n_out = 77, c.ldx = 264, c.ldw = 272, c.ldy = 85, c.beta = 1.0f;
            check_gemm_case("xwt beta=1 padded", c);
            /* 296 = 37 bf16 vectors: some lanes 2, most 1 (partial group only) */
            c.n_in = 296, c.n_out = 40, c.ldx = 296, c.ldw = 296, c.ldy = 40, c.beta = 0.0f;
            check_gemm_case("xwt short rows", c);
            /* element loads: n_in not a multiple of a vector, an odd ldw, an odd offset */
            c.n_in = 70, c.n_out = 33, c.ldx = 70, c.ldw = 70, c.ldy = 33, c.beta = 1.0f;
            check_gemm_case("xwt n_in 70", c);
            c.n_in = 64, c.n_out = 33, c.ldx = 64, c.ldw = 65, c.ldy = 33, c.beta = 0.0f;
            check_gemm_case("xwt ldw 65", c);
            c.ldw = 64, c.x_off = 1, c.w_off = 3;
            check_gemm_case("xwt unaligned x, w", c);
            /* W_UV: 16 heads, x rows of 16 * 512, W_h (128, 512) in rows of 256 */
            c = (eng_cuda_gemm_case_t){.form = ENG_CUDA_GEMM_XWT_BATCHED, .f32 = f32};
            c.n_tok = T, c.n_in = 512, c.n_out = 128, c.batch = 16;
            c.ldx = 16 * 512, c.sx = 512, c.ldw = 512, c.sw = 256 * 512, c.ldy = 16 * 128,
            c.sy = 128;
            check_gemm_case("xwt batched (W_UV)", c);
            /* W_UK: 16 heads, x rows of 16 * 192, W_h (128, 512), y rows of 16 * 576 */
            c = (eng_cuda_gemm_case_t){.form = ENG_CUDA_GEMM_XW_BATCHED, .f32 = f32};
            c.n_tok = T, c.n_in = 128, c.n_out = 512, c.batch = 16;
            c.ldx = 16 * 192, c.sx = 192, c.ldw = 512, c.sw = 256 * 512, c.ldy = 16 * 576,
            c.sy = 576;
            check_gemm_case("xw batched (W_UK)", c);
            /* a partial column tile, 100 inputs (slices with 3 and 4 rows of W) */
            c.n_in = 100, c.n_out = 520, c.batch = 3, c.ldx = 3 * 100, c.sx = 100, c.ldw = 520,
            c.sw = 100 * 520, c.ldy = 3 * 530, c.sy = 530;
            check_gemm_case("xw batched partial tile", c);
            /* element loads: 33 outputs in rows of 40 */
            c.n_out = 33, c.ldw = 40, c.sw = 100 * 40, c.ldy = 3 * 33, c.sy = 33;
            check_gemm_case("xw batched 33 outputs", c);
        }
    /* the projections of a prefill step as the engine runs them through cuBLAS
     * (v2_tiny's kv_a at a 40-token prompt; V2-Lite's kv_a at 40 tokens).
     * With ENG_CHECK_FRESH_Y set, y is left unwritten on the device before
     * the product: under compute-sanitizer initcheck the copy back then shows
     * whether the tool sees cuBLAS's writes (bench/gpu-check.sh's probe) */
    const bool fresh = getenv("ENG_CHECK_FRESH_Y") != NULL;
    for (int f32 = 0; f32 <= 1; f32++) {
        eng_cuda_gemm_case_t c = {.form = ENG_CUDA_GEMM_XWT, .f32 = f32, .y_fresh = fresh};
        c.n_tok = 40, c.n_in = 64, c.n_out = 24, c.ldx = 64, c.ldw = 64, c.ldy = 24;
        check_gemm_case("xwt prefill, v2_tiny kv_a", c);
        c.n_tok = 40, c.n_in = 2048, c.n_out = 576, c.ldx = 2048, c.ldw = 2048, c.ldy = 576;
        check_gemm_case("xwt prefill, V2-Lite kv_a", c);
    }
}

/* Sort by expert (stable) + grouped products, both load paths of the kernel:
 * rows of a multiple of 16 bytes (16-byte loads; 64 bf16 values: 8 vectors,
 * a partial group per lane; 1056: 132 vectors, full groups of loads and a
 * partial one) and of 70 values (element loads), bf16 and float32; with 8
 * experts (at most 8 rows each) and with 2 (up to 18 rows: passes of 8). */
static void check_expert_rows(void)
{
    enum { N = 9, K = 3, EMAX = 8 };
    const int shapes[][4] = {{64, 48, 0, 8},   {70, 33, 0, 8},   {64, 48, 1, 8},
                             {70, 33, 1, 8},   {1056, 20, 0, 8}, {1056, 20, 1, 2},
                             {1056, 20, 0, 2}, {70, 9, 0, 2}};
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        int I = shapes[c][0], O = shapes[c][1], E = shapes[c][3];
        bool f32 = shapes[c][2];
        int32_t idx[N * K];
        for (int t = 0; t < N; t++)
            for (int k = 0; k < K; k++)
                idx[t * K + k] = (int32_t)((t * 5 + k * 3 + (t % 2)) % E);
        float *x = frandv((size_t)N * I, 1.0f), *w = frandv((size_t)E * O * I, 0.1f);
        if (!f32) {
            for (size_t i = 0; i < (size_t)N * I; i++)
                x[i] = bf16_round(x[i]);
            for (size_t i = 0; i < (size_t)E * O * I; i++)
                w[i] = bf16_round(w[i]);
        }
        int32_t first[2 * EMAX + 2], src[N * K], slot[N * K], rfirst[2 * EMAX + 2],
            rsrc[N * K], rslot[N * K];
        int most = 0;
        float *y = calloc((size_t)N * K * O, 4), *ref = calloc((size_t)N * K * O, 4);
        int run = 0;
        for (int e = 0; e < E; e++) {
            rfirst[e] = run;
            for (int a = 0; a < N * K; a++)
                if (idx[a] == e) {
                    rsrc[run] = a / K;
                    rslot[a] = run;
                    eng_matmul(NULL, ref + (size_t)run * O, (size_t)O, x + (size_t)(a / K) * I,
                               (size_t)I, w + (size_t)e * O * I, 1, (size_t)I, (size_t)O);
                    run++;
                }
        }
        rfirst[E] = run;
        int listed = 0; /* the experts with rows, ascending, then their count */
        for (int e = 0; e < E; e++) {
            most = rfirst[e + 1] - rfirst[e] > most ? rfirst[e + 1] - rfirst[e] : most;
            if (rfirst[e + 1] > rfirst[e])
                rfirst[E + 1 + listed++] = e;
        }
        rfirst[2 * E + 1] = listed;
        CHECK(eng_cuda_op_expert_rows(y, first, src, slot, idx, N, K, E, x, w, I, O, f32, false,
                                      err, sizeof err) == 0);
        bool same = !memcmp(first, rfirst, (size_t)(E + 1 + listed) * 4) &&
                    first[2 * E + 1] == listed &&
                    !memcmp(src, rsrc, sizeof src) && !memcmp(slot, rslot, sizeof slot);
        double e = tu_rel_err(y, ref, (size_t)N * K * O);
        printf("expert rows %s %dx%d, %d experts (up to %d rows): sort %s, products rel err "
               "%.2e\n",
               f32 ? "f32 " : "bf16", O, I, E, most, same ? "identical" : "DIFFERENT", e);
        CHECK(same);
        CHECK(e < 1e-5);
        CHECK(E != 2 || most > 8); /* the case meant to need two passes does */
        free(x), free(w), free(y), free(ref);
    }
}

/* The tensor-core expert kernel (bf16): rows not a multiple of its 8-row
 * tiles, experts without rows, more than 32 rows (two passes over the
 * weights), V2-Lite's gate_up / down widths (weights staged through shared
 * memory: n_in % 64 == 0), n_in = 80 (loaded straight from global memory),
 * and a batch-256 step of V2-Lite's routing (1,536 pairs over 64 experts:
 * the sort past 1,024 pairs). */
static void check_expert_mma(void)
{
    enum { NMAX = 256, KMAX = 6, EMAX = 64 };
    const int shapes[][5] = {{64, 64, 8, 9, 2},    {64, 32, 3, 7, 2},  {2048, 2816, 4, 12, 2},
                             {1408, 2048, 2, 24, 2}, {64, 96, 1, 40, 2}, {80, 64, 3, 9, 2},
                             {64, 32, 64, 256, 6}};
    static int32_t idx[NMAX * KMAX], src[NMAX * KMAX], slot[NMAX * KMAX];
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const int I = shapes[c][0], O = shapes[c][1], E = shapes[c][2], N = shapes[c][3];
        const int K = shapes[c][4];
        for (int t = 0; t < N; t++)
            for (int k = 0; k < K; k++) /* expert E-1 gets none when E > 2 */
                idx[t * K + k] = (int32_t)((t * 3 + k * 5 + (t % 3)) % (E > 2 ? E - 1 : E));
        float *x = frandv((size_t)N * I, 1.0f), *w = frandv((size_t)E * O * I, 0.05f);
        for (size_t i = 0; i < (size_t)N * I; i++)
            x[i] = bf16_round(x[i]);
        for (size_t i = 0; i < (size_t)E * O * I; i++)
            w[i] = bf16_round(w[i]);
        float *y = calloc((size_t)N * K * O, 4), *ref = calloc((size_t)N * K * O, 4);
        int32_t first[2 * EMAX + 2];
        int run = 0, most = 0, listed = 0;
        for (int e = 0; e < E; e++) {
            int start = run;
            for (int a = 0; a < N * K; a++)
                if (idx[a] == e) {
                    eng_matmul(NULL, ref + (size_t)run * O, (size_t)O, x + (size_t)(a / K) * I,
                               (size_t)I, w + (size_t)e * O * I, 1, (size_t)I, (size_t)O);
                    run++;
                }
            most = run - start > most ? run - start : most;
            listed += run > start;
        }
        CHECK(eng_cuda_op_expert_rows(y, first, src, slot, idx, N, K, E, x, w, I, O, false, true,
                                      err, sizeof err) == 0);
        double e = tu_rel_err(y, ref, (size_t)N * K * O);
        printf("expert rows mma %dx%d, %d pairs over %d experts (%d with rows, up to %d): "
               "products rel err %.2e\n",
               O, I, N * K, E, first[2 * E + 1], most, e);
        /* exact bf16 products, float32 sums in the tensor cores' order and
         * rounding (not the CPU's): 1e-4, where a wrong row or column is ~1 */
        CHECK(e < 1e-4);
        CHECK(first[2 * E + 1] == listed);
        free(x), free(w), free(y), free(ref);
    }
}

static void check_argmax(void)
{
    int rows = 5, n = 102400;
    float *x = frandv((size_t)rows * n, 1.0f);
    x[0 * n + 777] = 5.0f;                         /* one clear maximum */
    x[1 * n + 100] = x[1 * n + 90000] = 7.0f;      /* a tie: the first index wins */
    x[2 * n + n - 1] = 3.0f;                       /* at the end */
    x[3 * n + 0] = 9.0f;                           /* at the start */
    for (int i = 0; i < n; i++)                    /* all equal: index 0 */
        x[4 * (size_t)n + i] = 1.5f;
    int32_t got[5];
    CHECK(eng_cuda_op_argmax(got, x, rows, n, err, sizeof err) == 0);
    for (int r = 0; r < rows; r++) {
        int want = eng_argmax(x + (size_t)r * n, n);
        printf("argmax row %d: %d (CPU %d)\n", r, (int)got[r], want);
        CHECK(got[r] == want);
    }
    free(x);
}

int main(void)
{
    if (eng_cuda_device_ok(err, sizeof err)) {
        printf("skipped: no CUDA device (%s)\n", err);
        return 77;
    }
    check_rmsnorm();
    check_rope();
    check_silu();
    check_routes();
    check_matmul();
    check_gemm_paths();
    check_expert_rows();
    check_expert_mma();
    check_argmax();
    if (eng_test_failures)
        fprintf(stderr, "last error: %s\n", err);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
