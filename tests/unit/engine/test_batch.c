/* Batching: a batch of mixed requests equals the same requests run alone.
 * Four sequences of different prompt lengths prefill together, decode
 * together, a fifth joins mid-flight with its prefill while the others decode
 * (mixed prefill/decode step, mixed attention modes) and one leaves early;
 * every logit row must match its solo run. Runs through the backend API. */
#include "eng_backend.h"
#include "eng_config.h"
#include "eng_forward.h"
#include "eng_model.h"
#include "eng_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CFG[] =
    "{\"model_type\":\"deepseek_v2\",\"hidden_size\":48,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":3,\"vocab_size\":97,\"intermediate_size\":80,"
    "\"moe_intermediate_size\":24,\"kv_lora_rank\":20,\"qk_nope_head_dim\":12,"
    "\"qk_rope_head_dim\":8,\"v_head_dim\":10,\"n_routed_experts\":8,\"n_shared_experts\":2,"
    "\"num_experts_per_tok\":3,\"first_k_dense_replace\":1,\"initializer_range\":0.15}";

#define NSEQ 5
#define STEPS 6
static const int PLEN[NSEQ] = {5, 70, 1, 130, 9};
static const int JOIN[NSEQ] = {0, 0, 0, 0, 3};      /* step at which it prefills */
static const int LEAVE[NSEQ] = {STEPS, STEPS, 4, STEPS, STEPS}; /* decode steps it runs until */

int main(void)
{
    char err[512];
    eng_config_t cfg;
    if (eng_config_parse(CFG, &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    eng_model_t *m = eng_model_random(&cfg, 11);
    int V = cfg.vocab;
    int32_t prompts[NSEQ][200];
    for (int s = 0; s < NSEQ; s++)
        for (int i = 0; i < PLEN[s]; i++)
            prompts[s][i] = (i * (s + 3) + 7 * s) % V;
    /* solo runs: prefill logits of the last position, then greedy decode logits */
    float solo[NSEQ][STEPS + 1][97];
    int32_t solo_tok[NSEQ][STEPS + 1];
    for (int s = 0; s < NSEQ; s++) {
        eng_backend_t *be = eng_backend_cpu_create(m, 1, 512);
        eng_bseq_t *q;
        CHECK(be->ops->seq_create(be, 256, &q, err, sizeof err) == 0);
        eng_batch_item_t it = {q, prompts[s], PLEN[s], ENG_FWD_REFERENCE, solo[s][0]};
        CHECK(be->ops->step(be, &it, 1, err, sizeof err) == 0);
        for (int k = 0; k < STEPS; k++) {
            solo_tok[s][k] = eng_argmax(solo[s][k], V);
            eng_batch_item_t d = {q, &solo_tok[s][k], 1, 0, solo[s][k + 1]};
            CHECK(be->ops->step(be, &d, 1, err, sizeof err) == 0);
        }
        be->ops->seq_free(be, q);
        be->ops->destroy(be);
    }
    /* batched: one backend, steps mixing prefill and decode */
    eng_backend_t *be = eng_backend_cpu_create(m, 3, 4096);
    eng_bseq_t *q[NSEQ];
    int done[NSEQ] = {0}; /* decode steps taken; -1 before prefill */
    float got[NSEQ][STEPS + 1][97];
    int32_t tok[NSEQ][STEPS + 1];
    for (int s = 0; s < NSEQ; s++) {
        CHECK(be->ops->seq_create(be, 256, &q[s], err, sizeof err) == 0);
        done[s] = -1;
    }
    double worst = 0;
    int max_batch = 0;
    for (int step = 0; step <= STEPS + 3; step++) {
        eng_batch_item_t items[NSEQ];
        int n = 0, who[NSEQ];
        for (int s = 0; s < NSEQ; s++) {
            if (done[s] < 0 && step == JOIN[s]) {
                items[n] = (eng_batch_item_t){q[s], prompts[s], PLEN[s], ENG_FWD_REFERENCE,
                                              got[s][0]};
                who[n++] = s;
            } else if (done[s] >= 0 && done[s] < LEAVE[s]) {
                int k = done[s];
                tok[s][k] = eng_argmax(got[s][k], V);
                items[n] = (eng_batch_item_t){q[s], &tok[s][k], 1, 0, got[s][k + 1]};
                who[n++] = s;
            }
        }
        if (n == 0)
            continue;
        max_batch = n > max_batch ? n : max_batch;
        CHECK(be->ops->step(be, items, n, err, sizeof err) == 0);
        for (int i = 0; i < n; i++)
            done[who[i]]++;
    }
    for (int s = 0; s < NSEQ; s++) {
        CHECK(done[s] == LEAVE[s]);
        for (int k = 0; k <= LEAVE[s]; k++) {
            double e = tu_rel_err(got[s][k], solo[s][k], (size_t)V);
            worst = e > worst ? e : worst;
            if (k < LEAVE[s])
                CHECK(tok[s][k] == solo_tok[s][k]);
        }
        be->ops->seq_free(be, q[s]);
    }
    printf("batched (up to %d sequences per step) vs solo: max rel err %.2e\n", max_batch, worst);
    CHECK(worst < 1e-5);
    /* a bad item fails the whole step and changes nothing */
    eng_bseq_t *a, *b;
    CHECK(be->ops->seq_create(be, 16, &a, err, sizeof err) == 0);
    CHECK(be->ops->seq_create(be, 16, &b, err, sizeof err) == 0);
    int32_t ok_tok = 3, bad_tok = 1000;
    eng_batch_item_t bad[2] = {{a, &ok_tok, 1, 0, NULL}, {b, &bad_tok, 1, 0, NULL}};
    CHECK(be->ops->step(be, bad, 2, err, sizeof err) != 0 && strstr(err, "vocabulary"));
    CHECK(be->ops->seq_len(be, a) == 0 && be->ops->seq_len(be, b) == 0);
    eng_batch_item_t twice[2] = {{a, &ok_tok, 1, 0, NULL}, {a, &ok_tok, 1, 0, NULL}};
    CHECK(be->ops->step(be, twice, 2, err, sizeof err) != 0 && strstr(err, "same sequence"));
    be->ops->seq_free(be, a);
    be->ops->seq_free(be, b);
    be->ops->destroy(be);
    eng_model_free(m);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
