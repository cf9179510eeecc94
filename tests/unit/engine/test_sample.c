/* Sampling: greedy is argmax; a fixed seed gives the same draws and the
 * draws follow softmax(logits / T) (checked against the exact probabilities
 * with a fixed seed); top-k and top-p keep exactly the expected candidates
 * and never draw outside them; ids beyond n_allowed are never chosen; the
 * scheduler with seeded sampling gives each request the same tokens in a
 * batch as alone, and different seeds give different tokens. */
#include "eng_backend.h"
#include "eng_config.h"
#include "eng_model.h"
#include "eng_sample.h"
#include "eng_sched.h"
#include "eng_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_rng(void)
{
    eng_rng_t a, b, c;
    eng_rng_seed(&a, 42);
    eng_rng_seed(&b, 42);
    eng_rng_seed(&c, 43);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = eng_rng_next(&a), y = eng_rng_next(&b), z = eng_rng_next(&c);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same);
    CHECK(differ == 100);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = eng_rng_uniform(&a);
        CHECK(u >= 0 && u < 1);
        sum += u;
    }
    CHECK(fabs(sum / 100000 - 0.5) < 0.01);
}

/* logits of 8 ids with known probabilities at T = 1: p ∝ w. */
static const double W[8] = {0.30, 0.05, 0.20, 0.10, 0.15, 0.02, 0.08, 0.10};

static void logits_of(float *l, double t)
{
    for (int i = 0; i < 8; i++)
        l[i] = (float)(log(W[i]) * t); /* softmax(l / t) = W */
}

static void test_greedy(void)
{
    float l[8];
    logits_of(l, 1.0);
    eng_sample_scratch_t *sc = eng_sample_scratch_new(8);
    eng_rng_t r;
    eng_rng_seed(&r, 1);
    eng_sample_params_t p = eng_sample_defaults();
    p.temperature = 0;
    for (int i = 0; i < 10; i++)
        CHECK(eng_sample(l, 8, &p, &r, sc) == 0);
    p.temperature = 1;
    p.top_k = 1;
    CHECK(eng_sample(l, 8, &p, &r, sc) == 0);
    /* ties: the first index, as torch.argmax */
    float t[4] = {1, 3, 3, 2};
    p.temperature = 0;
    CHECK(eng_sample(t, 4, &p, &r, sc) == 1);
    /* n_allowed hides the best id */
    p.n_allowed = 2;
    CHECK(eng_sample(t, 4, &p, &r, sc) == 1);
    p.n_allowed = 1;
    CHECK(eng_sample(t, 4, &p, &r, sc) == 0);
    eng_sample_scratch_free(sc);
}

/* Draws n tokens and checks each frequency against want[] (0 = never) with
 * a 5-sigma binomial bound. */
static void check_freq(const float *l, int V, const eng_sample_params_t *p, const double *want,
                       int n)
{
    eng_sample_scratch_t *sc = eng_sample_scratch_new(V);
    eng_rng_t r;
    eng_rng_seed(&r, p->seed);
    int count[64] = {0};
    for (int i = 0; i < n; i++) {
        int id = eng_sample(l, V, p, &r, sc);
        CHECK(id >= 0 && id < V);
        count[id]++;
    }
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / n, sd = sqrt(want[i] * (1 - want[i]) / n);
        if (want[i] == 0) {
            CHECK(count[i] == 0);
        } else if (fabs(f - want[i]) > 5 * sd + 1e-9) {
            fprintf(stderr, "id %d: frequency %.4f, expected %.4f (sd %.4f)\n", i, f, want[i], sd);
            CHECK(0);
        }
    }
    eng_sample_scratch_free(sc);
}

static void test_distribution(void)
{
    float l[8];
    eng_sample_params_t p = eng_sample_defaults();
    p.seed = 7;
    /* T = 1 and T = 0.5 (logits made so that softmax(l / T) = W) */
    logits_of(l, 1.0);
    check_freq(l, 8, &p, W, 40000);
    logits_of(l, 0.5);
    p.temperature = 0.5f;
    check_freq(l, 8, &p, W, 40000);
    /* T = 2 on the T = 1 logits: p ∝ sqrt(W) */
    logits_of(l, 1.0);
    p.temperature = 2.0f;
    double want[8], z = 0;
    for (int i = 0; i < 8; i++)
        z += sqrt(W[i]);
    for (int i = 0; i < 8; i++)
        want[i] = sqrt(W[i]) / z;
    check_freq(l, 8, &p, want, 40000);

    /* the same seed gives the same sequence */
    eng_sample_scratch_t *sc = eng_sample_scratch_new(8);
    eng_rng_t a, b;
    eng_rng_seed(&a, 99);
    eng_rng_seed(&b, 99);
    int same = 1;
    for (int i = 0; i < 200; i++)
        same &= eng_sample(l, 8, &p, &a, sc) == eng_sample(l, 8, &p, &b, sc);
    CHECK(same);
    eng_sample_scratch_free(sc);
}

static void test_masks(void)
{
    float l[8];
    logits_of(l, 1.0);
    eng_sample_scratch_t *sc = eng_sample_scratch_new(8);
    eng_sample_params_t p = eng_sample_defaults();
    int32_t ids[8];
    double pr[8];
    /* top-k 3: ids 0 (.30), 2 (.20), 4 (.15), renormalised over .65 */
    p.top_k = 3;
    int n = eng_sample_candidates(l, 8, &p, sc, ids, pr, 8);
    CHECK(n == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 4);
    CHECK(fabs(pr[0] - 0.30 / 0.65) < 1e-6 && fabs(pr[2] - 0.15 / 0.65) < 1e-6);
    double want[8] = {0.30 / 0.65, 0, 0.20 / 0.65, 0, 0.15 / 0.65, 0, 0, 0};
    p.seed = 3;
    check_freq(l, 8, &p, want, 20000);

    /* top-p 0.6: .30 + .20 = .50 < .6, + .15 = .65 >= .6 -> ids 0, 2, 4 */
    p = eng_sample_defaults();
    p.top_p = 0.6f;
    n = eng_sample_candidates(l, 8, &p, sc, ids, pr, 8);
    CHECK(n == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 4);
    check_freq(l, 8, &p, want, 20000);
    /* top-p 0.45: .30 + .20 reaches it -> ids 0, 2 */
    p.top_p = 0.45f;
    n = eng_sample_candidates(l, 8, &p, sc, ids, pr, 8);
    CHECK(n == 2 && ids[0] == 0 && ids[1] == 2);
    /* ties broken by id: ids 3 and 7 both .10; top-p 0.8 needs .30+.20+.15+.10+.10 */
    p.top_p = 0.8f;
    n = eng_sample_candidates(l, 8, &p, sc, ids, pr, 8);
    CHECK(n == 5 && ids[3] == 3 && ids[4] == 7);
    /* top-k then top-p on the renormalised top-k: k 4 keeps 0,2,4,3 (.75 in
     * all; 3 before 7 on the tie); p 0.7 of that is .525 -> 0,2,4 */
    p.top_k = 4;
    p.top_p = 0.7f;
    n = eng_sample_candidates(l, 8, &p, sc, ids, pr, 8);
    CHECK(n == 3 && ids[2] == 4);
    /* n_allowed 4: only ids 0..3 */
    p = eng_sample_defaults();
    p.n_allowed = 4;
    double w4[8] = {0};
    for (int i = 0; i < 4; i++)
        w4[i] = W[i] / (W[0] + W[1] + W[2] + W[3]);
    check_freq(l, 8, &p, w4, 20000);
    eng_sample_scratch_free(sc);

    /* a large vocabulary: top-p finds the nucleus among 100000 ids */
    int V = 100000;
    float *big = malloc((size_t)V * sizeof *big);
    for (int i = 0; i < V; i++)
        big[i] = (float)(-(double)((i * 7919) % V) / 2000.0); /* a permutation of a decay */
    eng_sample_scratch_t *sb = eng_sample_scratch_new(V);
    p = eng_sample_defaults();
    p.top_p = 0.9f;
    int32_t *bid = malloc((size_t)V * sizeof *bid);
    double *bpr = malloc((size_t)V * sizeof *bpr);
    n = eng_sample_candidates(big, V, &p, sb, bid, bpr, V);
    /* p_i ∝ exp(-r/2000) for rank r: the nucleus is the ranks whose mass reaches 0.9 */
    double z = 0, cum = 0;
    for (int r = 0; r < V; r++)
        z += exp(-r / 2000.0);
    int expect = 0;
    while (cum < 0.9 * z)
        cum += exp(-(expect++) / 2000.0);
    CHECK(abs(n - expect) <= 1);
    int sorted = 1;
    for (int i = 1; i < n; i++)
        sorted &= big[bid[i - 1]] >= big[bid[i]];
    CHECK(sorted);
    free(big);
    free(bid);
    free(bpr);
    eng_sample_scratch_free(sb);
}

static const char CFG[] =
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":32,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"vocab_size\":61,\"intermediate_size\":48,"
    "\"moe_intermediate_size\":16,\"q_lora_rank\":16,\"kv_lora_rank\":8,"
    "\"qk_nope_head_dim\":8,\"qk_rope_head_dim\":4,\"v_head_dim\":8,\"n_routed_experts\":4,"
    "\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"n_group\":2,\"topk_group\":1,\"norm_topk_prob\":true,\"initializer_range\":0.3}";

/* Runs n requests (prompt i = tokens (i*7+j)%61, seed seeds[i]) together or
 * one by one; out[i] gets 12 tokens. */
static void run_sched(eng_backend_t *be, int n, const uint64_t *seeds, bool together,
                      int32_t out[][12])
{
    char err[200];
    eng_sched_t *s = eng_sched_create(be, 64, 8);
    int ids[8];
    for (int i = 0; i < n; i++) {
        int32_t prompt[20];
        for (int j = 0; j < 20; j++)
            prompt[j] = (i * 7 + j) % 61;
        eng_req_params_t p = {.max_tokens = 12, .sample = eng_sample_defaults()};
        p.sample.seed = seeds[i];
        p.sample.top_p = 0.95f;
        p.sample.top_k = 40;
        ids[i] = eng_sched_submit_params(s, prompt, 20, &p, err, sizeof err);
        CHECK(ids[i] > 0);
        if (!together)
            while (eng_sched_active(s) > 0)
                CHECK(eng_sched_step(s, err, sizeof err) >= 0);
    }
    while (eng_sched_active(s) > 0)
        CHECK(eng_sched_step(s, err, sizeof err) >= 0);
    for (int i = 0; i < n; i++) {
        eng_req_info_t info;
        CHECK(eng_sched_info(s, ids[i], &info) == 0);
        CHECK(info.n_tokens == 12);
        memcpy(out[i], info.tokens, 12 * sizeof(int32_t));
    }
    eng_sched_free(s);
}

static void test_sched_seeded(void)
{
    eng_config_t cfg;
    char err[256];
    if (eng_config_parse(CFG, &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        CHECK(0);
        return;
    }
    eng_model_t *m = eng_model_random(&cfg, 5);
    eng_backend_t *be = eng_backend_cpu_create(m, 2, 64 * 16);
    uint64_t seeds[4] = {1, 2, 3, 1};
    int32_t alone[4][12], batch[4][12];
    run_sched(be, 4, seeds, false, alone);
    run_sched(be, 4, seeds, true, batch);
    CHECK(memcmp(alone, batch, sizeof alone) == 0);
    /* requests 0 and 3 differ in prompt; 0 with another seed differs */
    uint64_t other[1] = {1000};
    int32_t again[1][12];
    run_sched(be, 1, other, false, again);
    CHECK(memcmp(again[0], alone[0], sizeof again[0]) != 0);
    be->ops->destroy(be);
    eng_model_free(m);
}

int main(void)
{
    test_rng();
    test_greedy();
    test_distribution();
    test_masks();
    test_sched_seeded();
    if (eng_test_failures) {
        fprintf(stderr, "%d checks failed\n", eng_test_failures);
        return 1;
    }
    printf("sampling ok\n");
    return 0;
}
