/* Absorbed attention (W_UK folded into the query, W_UV after attention,
 * attention on the cached latent rows) equals the reference path (keys and
 * values expanded from the latents), step by step, on random models covering
 * what the fixtures do not: yarn with mscale != 1 on V2, rotate-half RoPE,
 * V2 group-limited greedy, dense-only models, multiple threads. Also:
 * incremental decode equals one prefill of the whole sequence, and the cache
 * holds exactly (kv_lora_rank + qk_rope) floats per token per layer. */
#include "eng_config.h"
#include "eng_forward.h"
#include "eng_model.h"
#include "eng_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CONFIGS[] = {
    /* V2-Lite-like: plain q_proj, yarn with mscale 0.707, group-limited greedy, 2 shared */
    "{\"model_type\":\"deepseek_v2\",\"hidden_size\":48,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":3,\"vocab_size\":97,\"intermediate_size\":80,"
    "\"moe_intermediate_size\":24,\"kv_lora_rank\":20,\"qk_nope_head_dim\":12,"
    "\"qk_rope_head_dim\":8,\"v_head_dim\":10,\"n_routed_experts\":8,\"n_shared_experts\":2,"
    "\"num_experts_per_tok\":3,\"first_k_dense_replace\":1,\"n_group\":4,\"topk_group\":2,"
    "\"topk_method\":\"group_limited_greedy\",\"initializer_range\":0.15,"
    "\"rope_theta\":10000,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,"
    "\"original_max_position_embeddings\":16,\"mscale\":0.707,\"mscale_all_dim\":0.707,"
    "\"beta_fast\":32,\"beta_slow\":1}}",
    /* V3-like with rotate-half RoPE and q_lora */
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":40,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"vocab_size\":64,\"intermediate_size\":64,"
    "\"moe_intermediate_size\":16,\"q_lora_rank\":24,\"kv_lora_rank\":12,"
    "\"qk_nope_head_dim\":8,\"qk_rope_head_dim\":6,\"v_head_dim\":8,\"n_routed_experts\":6,"
    "\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":0,"
    "\"n_group\":3,\"topk_group\":2,\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
    "\"rope_interleave\":false,\"initializer_range\":0.15,"
    "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500.0}}",
    /* dense only (no experts) */
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":32,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"vocab_size\":50,\"intermediate_size\":48,"
    "\"q_lora_rank\":16,\"kv_lora_rank\":8,\"qk_nope_head_dim\":4,\"qk_rope_head_dim\":4,"
    "\"v_head_dim\":6,\"initializer_range\":0.2}",
};

#define PROMPT 9
#define STEPS 12

static void run_config(const char *json, int threads)
{
    char err[512];
    eng_config_t cfg;
    if (eng_config_parse(json, &cfg, err, sizeof err)) {
        fprintf(stderr, "config: %s\n", err);
        eng_test_failures++;
        return;
    }
    eng_model_t *m = eng_model_random(&cfg, 42);
    eng_pool_t *pool = threads > 1 ? eng_pool_create(threads) : NULL;
    int V = cfg.vocab, total = PROMPT + STEPS;
    CHECK(eng_seq_cache_bytes_per_token(m) ==
          (size_t)cfg.n_layers * (size_t)(cfg.kv_lora_rank + cfg.qk_rope) * sizeof(float));
    int32_t ids[PROMPT + STEPS];
    for (int i = 0; i < PROMPT; i++)
        ids[i] = (i * 31 + 7) % V;
    eng_seq_t *ref = eng_seq_create(m, pool, total), *abs = eng_seq_create(m, pool, total);
    float *lr = calloc((size_t)PROMPT * V, sizeof(float)),
          *la = calloc((size_t)PROMPT * V, sizeof(float));
    float *steps_abs = calloc((size_t)total * V, sizeof(float));
    CHECK(eng_seq_forward(ref, ids, PROMPT, ENG_ATTN_REFERENCE, lr, true, err, sizeof err) == 0);
    CHECK(eng_seq_forward(abs, ids, PROMPT, ENG_ATTN_ABSORBED, la, true, err, sizeof err) == 0);
    double worst = 0;
    for (int t = 0; t < PROMPT; t++) {
        double e = tu_rel_err(la + (size_t)t * V, lr + (size_t)t * V, (size_t)V);
        worst = e > worst ? e : worst;
    }
    memcpy(steps_abs, la, (size_t)PROMPT * V * sizeof(float));
    /* decode: the reference path's token drives both, so they see the same input */
    for (int s = 0; s < STEPS; s++) {
        int32_t next = eng_argmax(lr + (size_t)(s == 0 ? PROMPT - 1 : 0) * V, V);
        ids[PROMPT + s] = next;
        CHECK(eng_seq_forward(ref, &next, 1, ENG_ATTN_REFERENCE, lr, false, err, sizeof err) == 0);
        CHECK(eng_seq_forward(abs, &next, 1, ENG_ATTN_ABSORBED, la, false, err, sizeof err) == 0);
        double e = tu_rel_err(la, lr, (size_t)V);
        worst = e > worst ? e : worst;
        memcpy(steps_abs + (size_t)(PROMPT + s) * V, la, (size_t)V * sizeof(float));
    }
    /* one prefill of the whole sequence == prompt + incremental decode */
    eng_seq_t *whole = eng_seq_create(m, pool, total);
    float *lw = calloc((size_t)total * V, sizeof(float));
    CHECK(eng_seq_forward(whole, ids, total - 1, ENG_ATTN_REFERENCE, lw, true, err, sizeof err) ==
          0);
    double worst_whole = 0;
    for (int t = 0; t < total - 1; t++) {
        double e = tu_rel_err(steps_abs + (size_t)t * V, lw + (size_t)t * V, (size_t)V);
        worst_whole = e > worst_whole ? e : worst_whole;
    }
    /* a sequence refuses what does not fit, and bad ids, and keeps its length */
    int32_t bad = V;
    CHECK(eng_seq_forward(whole, &bad, 1, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) != 0);
    CHECK(strstr(err, "outside the vocabulary") != NULL);
    CHECK(eng_seq_forward(whole, ids, 2, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) != 0);
    CHECK(strstr(err, "sequence full") != NULL && eng_seq_len(whole) == total - 1);
    printf("%s threads=%d: absorbed vs reference %.2e, incremental vs whole prefill %.2e\n",
           cfg.arch == ENG_ARCH_V2 ? "v2" : "v3", threads, worst, worst_whole);
    CHECK(worst < 1e-5);
    CHECK(worst_whole < 1e-5);
    free(lw);
    eng_seq_free(whole);
    free(steps_abs);
    free(lr);
    free(la);
    eng_seq_free(ref);
    eng_seq_free(abs);
    eng_pool_free(pool);
    eng_model_free(m);
}

int main(void)
{
    for (size_t i = 0; i < sizeof CONFIGS / sizeof CONFIGS[0]; i++) {
        run_config(CONFIGS[i], 1);
        run_config(CONFIGS[i], 3);
    }
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
