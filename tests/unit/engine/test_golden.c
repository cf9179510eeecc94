/* Golden test: every fixture model and every case of
 * ../shared/fixtures/engine-golden must match transformers' float32 logits to
 * 1e-4 relative at every position (reference prefill and absorbed prefill),
 * and greedy decoding (absorbed decode after a reference prefill) must
 * reproduce its 12-token continuation. A missing fixture directory fails. */
#include "eng_forward.h"
#include "eng_model.h"
#include "eng_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const MODELS[] = {"v2_tiny", "v3_tiny", "v3_tiny_yarn"};

/* Runs one case in one prefill mode; returns the worst per-position rel err. */
static double run_case(const eng_model_t *m, eng_pool_t *pool, const tu_case_t *tc,
                       eng_attn_mode_t prefill_mode, int32_t *greedy_out)
{
    char err[512];
    int V = m->cfg.vocab;
    eng_seq_t *s = eng_seq_create(m, pool, tc->len + 16);
    float *lg = calloc((size_t)tc->len * (size_t)V, sizeof(float));
    double worst = 1e9;
    if (eng_seq_forward(s, tc->prompt, tc->len, prefill_mode, lg, true, err, sizeof err)) {
        fprintf(stderr, "forward: %s\n", err);
        goto out;
    }
    worst = 0;
    for (int t = 0; t < tc->len; t++) {
        double e = tu_rel_err(lg + (size_t)t * V, tc->logits + (size_t)t * V, (size_t)V);
        worst = e > worst ? e : worst;
    }
    int32_t next = eng_argmax(lg + (size_t)(tc->len - 1) * V, V);
    for (int i = 0; i < 12; i++) {
        greedy_out[i] = next;
        if (eng_seq_forward(s, &next, 1, ENG_ATTN_ABSORBED, lg, false, err, sizeof err)) {
            fprintf(stderr, "decode: %s\n", err);
            worst = 1e9;
            goto out;
        }
        next = eng_argmax(lg, V);
    }
out:
    free(lg);
    eng_seq_free(s);
    return worst;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_engine_golden FIXTURE_DIR\n");
        return 1;
    }
    eng_pool_t *pool = eng_pool_create(2);
    for (size_t mi = 0; mi < sizeof MODELS / sizeof MODELS[0]; mi++) {
        char dir[4096], err[512];
        snprintf(dir, sizeof dir, "%s/%s", argv[1], MODELS[mi]);
        eng_model_t *m = eng_model_load(dir, err, sizeof err);
        if (!m) {
            fprintf(stderr, "FAIL %s: %s\n", MODELS[mi], err);
            eng_test_failures++;
            continue;
        }
        tu_case_t *cases;
        int nc = tu_load_cases(dir, &cases);
        CHECK(nc >= 1);
        for (int c = 0; c < nc; c++) {
            CHECK(cases[c].vocab == m->cfg.vocab);
            for (int mode = 0; mode < 2; mode++) {
                int32_t got[12];
                double e = run_case(m, pool, &cases[c], (eng_attn_mode_t)mode, got);
                bool same = memcmp(got, cases[c].greedy, sizeof got) == 0;
                printf("%-13s L=%-3d prefill=%-9s max rel err %.2e  greedy %s\n", MODELS[mi],
                       cases[c].len, mode ? "absorbed" : "reference", e,
                       same ? "identical" : "DIFFERENT");
                CHECK(e <= 1e-4);
                CHECK(same);
            }
        }
        if (nc > 0)
            tu_cases_free(cases, nc);
        eng_model_free(m);
    }
    eng_pool_free(pool);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
