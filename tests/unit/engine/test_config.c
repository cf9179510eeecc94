/* Config tests: both dialects give the same config, the real DeepSeek-V2-Lite
 * and V3 configs parse with the documented gating and yarn scale, and every
 * unsupported or malformed option is refused with its field named. */
#include "eng_config.h"
#include "eng_test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* DeepSeek-V2-Lite's hub config (old dialect), trimmed to the fields that matter. */
static const char V2_LITE[] =
    "{\"model_type\":\"deepseek_v2\",\"hidden_size\":2048,\"num_hidden_layers\":27,"
    "\"num_attention_heads\":16,\"num_key_value_heads\":16,\"vocab_size\":102400,"
    "\"intermediate_size\":10944,\"moe_intermediate_size\":1408,\"q_lora_rank\":null,"
    "\"kv_lora_rank\":512,\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,\"v_head_dim\":128,"
    "\"n_routed_experts\":64,\"n_shared_experts\":2,\"num_experts_per_tok\":6,"
    "\"first_k_dense_replace\":1,\"moe_layer_freq\":1,\"n_group\":1,\"topk_group\":1,"
    "\"topk_method\":\"greedy\",\"scoring_func\":\"softmax\",\"norm_topk_prob\":false,"
    "\"routed_scaling_factor\":1.0,\"rms_norm_eps\":1e-06,\"rope_theta\":10000,"
    "\"max_position_embeddings\":163840,\"hidden_act\":\"silu\",\"torch_dtype\":\"bfloat16\","
    "\"bos_token_id\":100000,\"eos_token_id\":100001,\"tie_word_embeddings\":false,"
    "\"attention_bias\":false,\"rope_scaling\":{\"beta_fast\":32,\"beta_slow\":1,\"factor\":40,"
    "\"mscale\":0.707,\"mscale_all_dim\":0.707,\"original_max_position_embeddings\":4096,"
    "\"type\":\"yarn\"}}";

/* DeepSeek-V3's hub config (old dialect) without its quantization_config. */
static const char V3_FULL[] =
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":7168,\"num_hidden_layers\":61,"
    "\"num_attention_heads\":128,\"vocab_size\":129280,\"intermediate_size\":18432,"
    "\"moe_intermediate_size\":2048,\"q_lora_rank\":1536,\"kv_lora_rank\":512,"
    "\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,\"v_head_dim\":128,"
    "\"n_routed_experts\":256,\"n_shared_experts\":1,\"num_experts_per_tok\":8,"
    "\"first_k_dense_replace\":3,\"moe_layer_freq\":1,\"n_group\":8,\"topk_group\":4,"
    "\"topk_method\":\"noaux_tc\",\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,"
    "\"routed_scaling_factor\":2.5,\"rms_norm_eps\":1e-06,\"rope_theta\":10000,"
    "\"num_nextn_predict_layers\":1,\"max_position_embeddings\":163840,"
    "\"torch_dtype\":\"bfloat16\",\"bos_token_id\":0,\"eos_token_id\":1,"
    "\"rope_scaling\":{\"beta_fast\":32,\"beta_slow\":1,\"factor\":40,\"mscale\":1.0,"
    "\"mscale_all_dim\":1.0,\"original_max_position_embeddings\":4096,\"type\":\"yarn\"}}";

/* A small V3 config in the new dialect; %s is spliced in before the last brace. */
static const char SMALL_NEW[] =
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":64,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"vocab_size\":100,\"intermediate_size\":128,"
    "\"moe_intermediate_size\":32,\"q_lora_rank\":32,\"kv_lora_rank\":16,"
    "\"qk_nope_head_dim\":16,\"qk_rope_head_dim\":8,\"v_head_dim\":16,\"n_routed_experts\":8,"
    "\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"n_group\":2,\"topk_group\":1,\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
    "\"dtype\":\"float32\",\"rope_parameters\":{\"rope_theta\":5000.0,\"rope_type\":\"yarn\","
    "\"factor\":4.0,\"original_max_position_embeddings\":256,\"mscale\":1.0,"
    "\"mscale_all_dim\":1.0}%s}";

/* The same in the old dialect. */
static const char SMALL_OLD[] =
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":64,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"vocab_size\":100,\"intermediate_size\":128,"
    "\"moe_intermediate_size\":32,\"q_lora_rank\":32,\"kv_lora_rank\":16,"
    "\"qk_nope_head_dim\":16,\"qk_rope_head_dim\":8,\"v_head_dim\":16,\"n_routed_experts\":8,"
    "\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"n_group\":2,\"topk_group\":1,\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
    "\"torch_dtype\":\"float32\",\"rope_theta\":5000.0,\"rope_scaling\":{\"type\":\"yarn\","
    "\"factor\":4.0,\"original_max_position_embeddings\":256,\"mscale\":1.0,"
    "\"mscale_all_dim\":1.0}}";

/* Parses SMALL_NEW with extra fields; expects failure with `needle` in the message. */
static void expect_refused(const char *extra, const char *needle)
{
    char text[4096], err[512] = "";
    snprintf(text, sizeof text, SMALL_NEW, extra);
    eng_config_t c;
    int rc = eng_config_parse(text, &c, err, sizeof err);
    if (rc == 0 || !strstr(err, needle)) {
        fprintf(stderr, "extra %s: rc=%d err='%s' (wanted '%s')\n", extra, rc, err, needle);
        eng_test_failures++;
    }
}

/* Replaces the first occurrence of `from` in SMALL_NEW (with nothing spliced)
 * and expects a refusal naming `needle`. */
static void expect_refused_edit(const char *from, const char *to, const char *needle)
{
    char base[4096], text[4096], err[512] = "";
    snprintf(base, sizeof base, SMALL_NEW, "");
    char *at = strstr(base, from);
    if (!at) {
        fprintf(stderr, "test bug: '%s' not in config\n", from);
        eng_test_failures++;
        return;
    }
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    eng_config_t c;
    int rc = eng_config_parse(text, &c, err, sizeof err);
    if (rc == 0 || !strstr(err, needle)) {
        fprintf(stderr, "edit %s->%s: rc=%d err='%s' (wanted '%s')\n", from, to, rc, err, needle);
        eng_test_failures++;
    }
}

int main(void)
{
    char err[512];
    eng_config_t a, b;
    CHECK(eng_config_parse(V2_LITE, &a, err, sizeof err) == 0);
    CHECK(a.arch == ENG_ARCH_V2 && a.q_lora_rank == 0 && a.scoring == ENG_SCORE_SOFTMAX);
    CHECK(a.group_rank == ENG_GROUP_NONE && !a.norm_topk && !a.score_bias);
    CHECK(a.yarn && a.yarn_factor == 40 && a.yarn_orig_max == 4096);
    CHECK(fabs(a.attention_factor - 1.0) < 1e-12);
    CHECK(strcmp(a.dtype, "bfloat16") == 0 && a.eos_id == 100001);
    /* (qk_nope + qk_rope)^-0.5 * m^2 with m = 0.1 * 0.707 * ln 40 + 1: m^2 ~ 1.5896 */
    double m2 = eng_config_attn_scale(&a) * sqrt(192.0);
    CHECK(fabs(m2 - 1.5896) < 1e-4);
    CHECK(eng_config_layer_is_moe(&a, 1) && !eng_config_layer_is_moe(&a, 0));

    CHECK(eng_config_parse(V3_FULL, &b, err, sizeof err) == 0);
    CHECK(b.arch == ENG_ARCH_V3 && b.q_lora_rank == 1536 && b.scoring == ENG_SCORE_SIGMOID);
    CHECK(b.group_rank == ENG_GROUP_TOP2_SUM && b.n_group == 8 && b.topk_group == 4);
    CHECK(b.norm_topk && b.score_bias && fabsf(b.routed_scale - 2.5f) < 1e-6f);
    CHECK(b.n_nextn == 1 && b.rope_interleave && b.first_dense == 3);
    CHECK(!eng_config_layer_is_moe(&b, 2) && eng_config_layer_is_moe(&b, 3));

    /* Both dialects, same model. */
    char text[4096];
    snprintf(text, sizeof text, SMALL_NEW, "");
    CHECK(eng_config_parse(text, &a, err, sizeof err) == 0);
    CHECK(eng_config_parse(SMALL_OLD, &b, err, sizeof err) == 0);
    CHECK(a.rope_theta == 5000.0 && b.rope_theta == 5000.0);
    CHECK(a.yarn && b.yarn && a.yarn_factor == b.yarn_factor && a.yarn_orig_max == 256);
    CHECK(strcmp(a.dtype, "float32") == 0 && strcmp(b.dtype, "float32") == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);

    /* V2 group-limited greedy, explicit rotate-half layout. */
    snprintf(text, sizeof text, "%s", V2_LITE);
    char *p = strstr(text, "\"greedy\"");
    {
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s\"group_limited_greedy\",\"rope_interleave\":false%s",
                 (int)(p - text), text, p + strlen("\"greedy\""));
        char *g = strstr(buf, "\"n_group\":1,\"topk_group\":1");
        memcpy(g, "\"n_group\":8,\"topk_group\":3", strlen("\"n_group\":8,\"topk_group\":3"));
        CHECK(eng_config_parse(buf, &a, err, sizeof err) == 0);
        CHECK(a.group_rank == ENG_GROUP_MAX && a.n_group == 8 && a.topk_group == 3);
        CHECK(!a.rope_interleave);
    }

    /* Refusals, each naming its field. */
    expect_refused(",\"quantization_config\":{\"quant_method\":\"fp8\"}", "quantization_config");
    expect_refused(",\"hidden_act\":\"gelu\"", "hidden_act");
    expect_refused(",\"attention_bias\":true", "attention_bias");
    expect_refused(",\"tie_word_embeddings\":true", "tie_word_embeddings");
    expect_refused(",\"moe_layer_freq\":2", "moe_layer_freq");
    expect_refused(",\"scoring_func\":\"softmax\"", "scoring_func");
    expect_refused(",\"topk_method\":\"greedy\"", "topk_method");
    expect_refused(",\"rope_interleave\":\"yes\"", "rope_interleave");
    expect_refused_edit("\"rope_type\":\"yarn\"", "\"rope_type\":\"dynamic\"", "rope_type");
    expect_refused_edit("\"factor\":4.0", "\"factor\":-1", "factor");
    expect_refused_edit("\"factor\":4.0", "\"factor\":\"4\"", "inside 'rope_parameters'");
    expect_refused_edit("\"model_type\":\"deepseek_v3\"", "\"model_type\":\"llama\"",
                        "model_type");
    expect_refused_edit("\"hidden_size\":64,", "", "hidden_size");
    expect_refused_edit("\"hidden_size\":64", "\"hidden_size\":6.5", "hidden_size");
    expect_refused_edit("\"kv_lora_rank\":16", "\"kv_lora_rank\":\"16\"", "kv_lora_rank");
    expect_refused_edit("\"qk_rope_head_dim\":8", "\"qk_rope_head_dim\":7", "qk_rope_head_dim");
    expect_refused_edit("\"n_group\":2", "\"n_group\":3", "n_group");
    expect_refused_edit("\"topk_group\":1", "\"topk_group\":4", "topk_group");
    expect_refused_edit("\"num_experts_per_tok\":2", "\"num_experts_per_tok\":9",
                        "num_experts_per_tok");
    expect_refused_edit("\"num_experts_per_tok\":2,", "", "num_experts_per_tok");
    {
        /* V2 with renormalisation and V2 with sigmoid scoring are refused. */
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", V2_LITE);
        char *n = strstr(buf, "\"norm_topk_prob\":false");
        memcpy(n, "\"norm_topk_prob\":true ", strlen("\"norm_topk_prob\":true "));
        CHECK(eng_config_parse(buf, &a, err, sizeof err) != 0 && strstr(err, "norm_topk_prob"));
        snprintf(buf, sizeof buf, "%s", V2_LITE);
        n = strstr(buf, "\"softmax\"");
        memcpy(n, "\"sigmoid\"", strlen("\"sigmoid\""));
        CHECK(eng_config_parse(buf, &a, err, sizeof err) != 0 && strstr(err, "scoring_func"));
    }
    CHECK(eng_config_parse("{\"model_type\": ", &a, err, sizeof err) != 0 &&
          strstr(err, "not a valid JSON"));
    CHECK(eng_config_parse("[1,2]", &a, err, sizeof err) != 0);
    CHECK(eng_config_load("/nonexistent/config.json", &a, err, sizeof err) != 0 &&
          strstr(err, "/nonexistent/config.json"));
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
