/* Checkpoint formats: a sharded checkpoint equals the unsharded one bit for
 * bit; bfloat16 and float16 checkpoints load (converted to float32) and match
 * float32 within their precision; random init is deterministic per seed. */
#include "eng_forward.h"
#include "eng_model.h"
#include "eng_st.h"
#include "eng_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int32_t PROMPT[] = {337, 403, 132, 143, 387, 91, 110, 5, 17, 42, 250, 499, 0, 1, 2};
#define PLEN ((int)(sizeof PROMPT / sizeof PROMPT[0]))

/* Logits (PLEN, vocab) of the prompt, malloc'd. */
static float *prompt_logits(const eng_model_t *m)
{
    char err[256];
    float *lg = calloc((size_t)PLEN * (size_t)m->cfg.vocab, sizeof(float));
    eng_seq_t *s = eng_seq_create(m, NULL, PLEN);
    if (eng_seq_forward(s, PROMPT, PLEN, ENG_ATTN_REFERENCE, lg, true, err, sizeof err)) {
        fprintf(stderr, "forward: %s\n", err);
        eng_test_failures++;
    }
    eng_seq_free(s);
    return lg;
}

/* Rounds every weight of m in place through bf16 (or f16) -- m must own its
 * buffers (a random model). */
typedef struct {
    eng_dtype_t dt;
} round_ctx_t;

static int round_tensor(void *ctx, const char *name, int ndim, const int64_t *shape,
                        eng_tkind_t kind, const float **slot, char *err, size_t errlen)
{
    (void)name, (void)kind, (void)err, (void)errlen;
    round_ctx_t *rc = ctx;
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    float *w = (float *)*slot;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = rc->dt == ENG_DT_BF16 ? eng_f32_to_bf16(w[i]) : eng_f32_to_f16(w[i]);
        eng_dtype_to_f32(rc->dt, &h, &w[i], 1);
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median over positions of the per-position relative error. A bf16 rounding
 * can flip one token's expert choice in a tiny MoE model, which moves that
 * position (and a little of what follows) far more than rounding alone; the
 * median measures the rounding, the exact check below proves the loader. */
static double median_row_err(const float *a, const float *b, int rows, int V)
{
    double *e = calloc((size_t)rows, sizeof *e);
    for (int t = 0; t < rows; t++)
        e[t] = tu_rel_err(a + (size_t)t * V, b + (size_t)t * V, (size_t)V);
    qsort(e, (size_t)rows, sizeof *e, cmp_double);
    double med = e[rows / 2];
    free(e);
    return med;
}

static double max_row_err(const float *a, const float *b, int rows, int V)
{
    double worst = 0;
    for (int t = 0; t < rows; t++) {
        double e = tu_rel_err(a + (size_t)t * V, b + (size_t)t * V, (size_t)V);
        worst = e > worst ? e : worst;
    }
    return worst;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_engine_formats FIXTURE_DIR\n");
        return 1;
    }
    char dir[4096], out[4096], err[1024];
    char *tmp = tu_mkdtemp();
    const char *models[] = {"v2_tiny", "v3_tiny"};
    for (int mi = 0; mi < 2; mi++) {
        snprintf(dir, sizeof dir, "%s/%s", argv[1], models[mi]);
        eng_model_t *m = eng_model_load(dir, err, sizeof err);
        if (!m) {
            fprintf(stderr, "FAIL %s: %s\n", dir, err);
            return 1;
        }
        int V = m->cfg.vocab;
        float *ref = prompt_logits(m);

        /* sharded == unsharded, bit for bit */
        snprintf(out, sizeof out, "%s/%s_sharded", tmp, models[mi]);
        CHECK(eng_model_save(m, out, ENG_DT_F32, 4, err, sizeof err) == 0);
        {
            char src[4096], dst[4200];
            snprintf(src, sizeof src, "%s/%s/config.json", argv[1], models[mi]);
            snprintf(dst, sizeof dst, "%s/config.json", out);
            size_t len;
            char *t = tu_read_file(src, &len);
            CHECK(t && tu_write_file(dst, t, len) == 0);
            free(t);
        }
        eng_model_t *ms = eng_model_load(out, err, sizeof err);
        CHECK(ms != NULL);
        if (ms) {
            float *lg = prompt_logits(ms);
            CHECK(memcmp(lg, ref, (size_t)PLEN * V * sizeof(float)) == 0);
            printf("%s sharded (4 files): logits %s\n", models[mi],
                   memcmp(lg, ref, (size_t)PLEN * V * sizeof(float)) ? "DIFFER" : "identical");
            free(lg);
        } else {
            fprintf(stderr, "sharded load: %s\n", err);
        }
        eng_model_free(ms);

        /* bf16 and f16: loads, matches float32 within the format's precision,
         * and equals float32 run on the rounded weights. */
        eng_dtype_t dts[2] = {ENG_DT_BF16, ENG_DT_F16};
        const char *names[2] = {"bf16", "f16"};
        /* bf16 keeps 8 significant bits (rounding error up to 2^-9 per weight);
         * through three layers of these deliberately wide random fixtures the
         * logits move by about 2e-2 (median); f16 keeps 11 bits. */
        double tol[2] = {5e-2, 4e-3};
        for (int k = 0; k < 2; k++) {
            snprintf(out, sizeof out, "%s/%s_%s", tmp, models[mi], names[k]);
            CHECK(eng_model_save(m, out, dts[k], 1, err, sizeof err) == 0);
            eng_model_t *mh = eng_model_load_cfg(&m->cfg, out, err, sizeof err);
            CHECK(mh != NULL);
            if (!mh) {
                fprintf(stderr, "%s load: %s\n", names[k], err);
                continue;
            }
            float *lg = prompt_logits(mh);
            double e = median_row_err(lg, ref, PLEN, V);
            printf("%s %s: median rel err vs float32 %.2e (tolerance %.0e), max %.2e\n",
                   models[mi], names[k], e, tol[k], max_row_err(lg, ref, PLEN, V));
            CHECK(e < tol[k]);
            CHECK(e > 0); /* the weights really were rounded */
            free(lg);
            eng_model_free(mh);
        }
        free(ref);
        eng_model_free(m);
    }

    /* random init: same seed same weights; a bf16 checkpoint equals float32
     * inference on bf16-rounded weights exactly; with no routing to flip (all
     * layers dense) every position is within bf16 tolerance of float32. */
    snprintf(dir, sizeof dir, "%s/v3_tiny/config.json", argv[1]);
    eng_config_t cfg;
    CHECK(eng_config_load(dir, &cfg, err, sizeof err) == 0);
    cfg.init_range = 0.1;
    cfg.n_routed = 0;
    eng_model_t *r1 = eng_model_random(&cfg, 7), *r2 = eng_model_random(&cfg, 7),
                *r3 = eng_model_random(&cfg, 8);
    size_t nb = (size_t)cfg.vocab * cfg.hidden * sizeof(float);
    CHECK(memcmp(r1->lm_head, r2->lm_head, nb) == 0);
    CHECK(memcmp(r1->lm_head, r3->lm_head, nb) != 0);
    snprintf(out, sizeof out, "%s/random_bf16", tmp);
    CHECK(eng_model_save(r1, out, ENG_DT_BF16, 2, err, sizeof err) == 0);
    eng_model_t *rb = eng_model_load_cfg(&cfg, out, err, sizeof err);
    CHECK(rb != NULL);
    round_ctx_t rc = {ENG_DT_BF16};
    CHECK(eng_model_for_each_tensor(r2, round_tensor, &rc, err, sizeof err) == 0);
    if (rb) {
        float *a = prompt_logits(rb), *b = prompt_logits(r2), *c = prompt_logits(r1);
        double same = max_row_err(a, b, PLEN, cfg.vocab), vs32 = max_row_err(a, c, PLEN, cfg.vocab);
        printf("random bf16 checkpoint: vs rounded float32 %.2e, vs float32 %.2e\n", same, vs32);
        CHECK(same < 1e-6);
        CHECK(vs32 < 2e-2);
        free(a);
        free(b);
        free(c);
    }
    eng_model_free(rb);
    eng_model_free(r1);
    eng_model_free(r2);
    eng_model_free(r3);
    tu_rmtree(tmp);
    free(tmp);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
