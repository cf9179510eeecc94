/* eng_config: reads a DeepSeek-V2/V3 config.json (either dialect) into
 * eng_config_t and checks it. Every refusal names the field, so an operator can
 * see at once which option the engine does not run. */
#include "eng_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Present and not JSON null. */
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

/* Reads an integer field. Absent/null: *out = def, or an error when required.
 * A value below min, fractional or not a number is an error naming the field. */
static int get_int(const cJSON *obj, const char *name, bool required, int def, int min, int *out,
                   char *err, size_t errlen)
{
    const cJSON *it = field(obj, name);
    if (!it) {
        if (required) {
            snprintf(err, errlen, "config.json: missing required field '%s'", name);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        it->valuedouble < min || it->valuedouble > 1e9) {
        snprintf(err, errlen, "config.json: field '%s' must be an integer >= %d", name, min);
        return -1;
    }
    *out = (int)it->valuedouble;
    return 0;
}

/* Reads a number field; absent/null gives def. */
static int get_num(const cJSON *obj, const char *name, double def, double *out, char *err,
                   size_t errlen)
{
    const cJSON *it = field(obj, name);
    if (!it) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        snprintf(err, errlen, "config.json: field '%s' must be a number", name);
        return -1;
    }
    *out = it->valuedouble;
    return 0;
}

/* Reads a boolean field; absent/null gives def. */
static int get_bool(const cJSON *obj, const char *name, bool def, bool *out, char *err,
                    size_t errlen)
{
    const cJSON *it = field(obj, name);
    if (!it) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(it)) {
        snprintf(err, errlen, "config.json: field '%s' must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(it);
    return 0;
}

/* Returns the string value of a field, NULL when absent/null; a non-string is
 * an error (*bad set). */
static const char *get_str(const cJSON *obj, const char *name, bool *bad, char *err, size_t errlen)
{
    const cJSON *it = field(obj, name);
    if (!it)
        return NULL;
    if (!cJSON_IsString(it)) {
        snprintf(err, errlen, "config.json: field '%s' must be a string", name);
        *bad = true;
        return NULL;
    }
    return it->valuestring;
}

/* bos/eos may be a number or a list of numbers (first one taken). */
static int get_token_id(const cJSON *obj, const char *name, int *out)
{
    const cJSON *it = field(obj, name);
    *out = -1;
    if (it && cJSON_IsArray(it))
        it = cJSON_GetArrayItem(it, 0);
    if (it && cJSON_IsNumber(it) && it->valuedouble >= 0)
        *out = (int)it->valuedouble;
    return 0;
}

static double yarn_get_mscale(double scale, double mscale)
{
    if (scale <= 1.0)
        return 1.0;
    return 0.1 * mscale * log(scale) + 1.0;
}

/* Reads the RoPE settings from either dialect: `rope_parameters` (theta
 * inside) or `rope_scaling` + top-level `rope_theta`. `where` names the
 * object for error messages. */
static int parse_rope(const cJSON *root, eng_config_t *cfg, char *err, size_t errlen)
{
    const cJSON *rp = field(root, "rope_parameters");
    const char *where = "rope_parameters";
    double theta_top;
    if (get_num(root, "rope_theta", 10000.0, &theta_top, err, errlen))
        return -1;
    if (!rp) {
        rp = field(root, "rope_scaling");
        where = "rope_scaling";
    }
    cfg->rope_theta = theta_top;
    cfg->yarn = false;
    cfg->attention_factor = 1.0;
    if (!rp)
        return 0;
    if (!cJSON_IsObject(rp)) {
        snprintf(err, errlen, "config.json: field '%s' must be an object", where);
        return -1;
    }
    if (get_num(rp, "rope_theta", theta_top, &cfg->rope_theta, err, errlen))
        return -1;
    bool bad = false;
    const char *type = get_str(rp, "rope_type", &bad, err, errlen);
    if (bad)
        return -1;
    if (!type)
        type = get_str(rp, "type", &bad, err, errlen);
    if (bad)
        return -1;
    if (!type || strcmp(type, "default") == 0)
        return 0;
    if (strcmp(type, "yarn") != 0) {
        snprintf(err, errlen,
                 "config.json: %s.rope_type '%s' is not supported (supported: default, yarn)",
                 where, type);
        return -1;
    }
    cfg->yarn = true;
    double orig, af;
    if (get_num(rp, "factor", 0.0, &cfg->yarn_factor, err, errlen) ||
        get_num(rp, "original_max_position_embeddings", cfg->max_pos, &orig, err, errlen) ||
        get_num(rp, "beta_fast", 32.0, &cfg->beta_fast, err, errlen) ||
        get_num(rp, "beta_slow", 1.0, &cfg->beta_slow, err, errlen) ||
        get_num(rp, "mscale", 0.0, &cfg->mscale, err, errlen) ||
        get_num(rp, "mscale_all_dim", 0.0, &cfg->mscale_all_dim, err, errlen) ||
        get_num(rp, "attention_factor", -1.0, &af, err, errlen) ||
        get_bool(rp, "truncate", true, &cfg->yarn_truncate, err, errlen)) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, errlen, "%s (inside '%s')", inner, where);
        return -1;
    }
    if (!(cfg->yarn_factor > 0.0)) {
        snprintf(err, errlen, "config.json: %s.factor must be a positive number for yarn", where);
        return -1;
    }
    if (!(orig >= 1.0)) {
        snprintf(err, errlen, "config.json: %s.original_max_position_embeddings must be >= 1",
                 where);
        return -1;
    }
    cfg->yarn_orig_max = (int)orig;
    /* transformers: explicit attention_factor wins; else ratio of mscales when
     * both are set, else get_mscale(factor). */
    if (af >= 0.0)
        cfg->attention_factor = af;
    else if (cfg->mscale != 0.0 && cfg->mscale_all_dim != 0.0)
        cfg->attention_factor = yarn_get_mscale(cfg->yarn_factor, cfg->mscale) /
                                yarn_get_mscale(cfg->yarn_factor, cfg->mscale_all_dim);
    else
        cfg->attention_factor = yarn_get_mscale(cfg->yarn_factor, 1.0);
    return 0;
}

/* Refuses options that change the computation in ways the engine does not
 * implement. */
static int refuse_unsupported(const cJSON *root, char *err, size_t errlen)
{
    bool b = false, bad = false;
    const char *act = get_str(root, "hidden_act", &bad, err, errlen);
    if (bad)
        return -1;
    if (act && strcmp(act, "silu") != 0) {
        snprintf(err, errlen, "config.json: hidden_act '%s' is not supported (only silu)", act);
        return -1;
    }
    static const char *const no_flags[] = {"attention_bias", "mlp_bias", "tie_word_embeddings"};
    for (size_t i = 0; i < sizeof no_flags / sizeof no_flags[0]; i++) {
        if (get_bool(root, no_flags[i], false, &b, err, errlen))
            return -1;
        if (b) {
            snprintf(err, errlen, "config.json: %s=true is not supported", no_flags[i]);
            return -1;
        }
    }
    if (field(root, "quantization_config")) {
        snprintf(err, errlen,
                 "config.json: quantization_config is not supported (convert the checkpoint to "
                 "bf16 or float32 first)");
        return -1;
    }
    int freq;
    if (get_int(root, "moe_layer_freq", false, 1, 0, &freq, err, errlen))
        return -1;
    if (freq != 1) {
        snprintf(err, errlen, "config.json: moe_layer_freq=%d is not supported (only 1)", freq);
        return -1;
    }
    return 0;
}

/* Reads the MoE gating fields and checks they fit the architecture. */
static int parse_gating(const cJSON *root, eng_config_t *cfg, char *err, size_t errlen)
{
    bool bad = false;
    const char *score = get_str(root, "scoring_func", &bad, err, errlen);
    if (bad)
        return -1;
    const char *method = get_str(root, "topk_method", &bad, err, errlen);
    if (bad)
        return -1;
    double rs;
    if (get_num(root, "routed_scaling_factor", 1.0, &rs, err, errlen) ||
        get_bool(root, "norm_topk_prob", false, &cfg->norm_topk, err, errlen))
        return -1;
    cfg->routed_scale = (float)rs;
    if (cfg->arch == ENG_ARCH_V2) {
        if (score && strcmp(score, "softmax") != 0) {
            snprintf(err, errlen,
                     "config.json: scoring_func '%s' is not supported for deepseek_v2 (only "
                     "softmax)",
                     score);
            return -1;
        }
        cfg->scoring = ENG_SCORE_SOFTMAX;
        cfg->score_bias = false;
        if (!method || strcmp(method, "greedy") == 0)
            cfg->group_rank = ENG_GROUP_NONE;
        else if (strcmp(method, "group_limited_greedy") == 0)
            cfg->group_rank = ENG_GROUP_MAX;
        else {
            snprintf(err, errlen,
                     "config.json: topk_method '%s' is not supported for deepseek_v2 (greedy, "
                     "group_limited_greedy)",
                     method);
            return -1;
        }
        /* The reference V2 MoE never renormalises; a checkpoint that asks for
         * it would not match it, so it is refused rather than ignored. */
        if (cfg->norm_topk) {
            snprintf(err, errlen,
                     "config.json: norm_topk_prob=true is not supported for deepseek_v2");
            return -1;
        }
    } else {
        if (score && strcmp(score, "sigmoid") != 0) {
            snprintf(err, errlen,
                     "config.json: scoring_func '%s' is not supported for deepseek_v3 (only "
                     "sigmoid)",
                     score);
            return -1;
        }
        if (method && strcmp(method, "noaux_tc") != 0) {
            snprintf(err, errlen,
                     "config.json: topk_method '%s' is not supported for deepseek_v3 (only "
                     "noaux_tc)",
                     method);
            return -1;
        }
        cfg->scoring = ENG_SCORE_SIGMOID;
        cfg->score_bias = true;
        cfg->group_rank = ENG_GROUP_TOP2_SUM;
    }
    if (cfg->n_routed == 0)
        return 0;
    if (cfg->n_routed > 1024) {
        snprintf(err, errlen, "config.json: n_routed_experts=%d exceeds the engine's limit 1024",
                 cfg->n_routed);
        return -1;
    }
    if (cfg->top_k < 1 || cfg->top_k > cfg->n_routed) {
        snprintf(err, errlen, "config.json: num_experts_per_tok=%d must be in 1..n_routed_experts",
                 cfg->top_k);
        return -1;
    }
    if (cfg->n_routed % cfg->n_group != 0) {
        snprintf(err, errlen, "config.json: n_group=%d must divide n_routed_experts=%d",
                 cfg->n_group, cfg->n_routed);
        return -1;
    }
    if (cfg->topk_group > cfg->n_group) {
        snprintf(err, errlen, "config.json: topk_group=%d must not exceed n_group=%d",
                 cfg->topk_group, cfg->n_group);
        return -1;
    }
    if (cfg->group_rank == ENG_GROUP_TOP2_SUM && cfg->n_routed / cfg->n_group < 2) {
        snprintf(err, errlen, "config.json: n_group=%d leaves fewer than 2 experts per group",
                 cfg->n_group);
        return -1;
    }
    if (cfg->topk_group * (cfg->n_routed / cfg->n_group) < cfg->top_k &&
        cfg->group_rank != ENG_GROUP_NONE) {
        snprintf(err, errlen,
                 "config.json: topk_group=%d groups hold fewer experts than "
                 "num_experts_per_tok=%d",
                 cfg->topk_group, cfg->top_k);
        return -1;
    }
    return 0;
}

int eng_config_parse(const char *json_text, eng_config_t *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json_text);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        snprintf(err, errlen, "config.json: not a valid JSON object (near '%.20s')",
                 at ? at : "?");
        cJSON_Delete(root);
        return -1;
    }
    int rc = -1;
    bool bad = false;
    const char *mt = get_str(root, "model_type", &bad, err, errlen);
    if (bad)
        goto out;
    if (!mt) {
        snprintf(err, errlen, "config.json: missing required field 'model_type'");
        goto out;
    }
    if (strcmp(mt, "deepseek_v2") == 0)
        cfg->arch = ENG_ARCH_V2;
    else if (strcmp(mt, "deepseek_v3") == 0)
        cfg->arch = ENG_ARCH_V3;
    else {
        snprintf(err, errlen,
                 "config.json: model_type '%s' is not supported (deepseek_v2, deepseek_v3)", mt);
        goto out;
    }
    if (refuse_unsupported(root, err, errlen))
        goto out;
    double eps;
    if (get_int(root, "hidden_size", true, 0, 1, &cfg->hidden, err, errlen) ||
        get_int(root, "num_hidden_layers", true, 0, 1, &cfg->n_layers, err, errlen) ||
        get_int(root, "num_attention_heads", true, 0, 1, &cfg->n_heads, err, errlen) ||
        get_int(root, "vocab_size", true, 0, 1, &cfg->vocab, err, errlen) ||
        get_int(root, "intermediate_size", true, 0, 1, &cfg->inter, err, errlen) ||
        get_int(root, "kv_lora_rank", true, 0, 1, &cfg->kv_lora_rank, err, errlen) ||
        get_int(root, "qk_nope_head_dim", true, 0, 1, &cfg->qk_nope, err, errlen) ||
        get_int(root, "qk_rope_head_dim", true, 0, 2, &cfg->qk_rope, err, errlen) ||
        get_int(root, "v_head_dim", true, 0, 1, &cfg->v_head, err, errlen) ||
        get_int(root, "q_lora_rank", false, 0, 1, &cfg->q_lora_rank, err, errlen) ||
        get_int(root, "n_routed_experts", false, 0, 1, &cfg->n_routed, err, errlen) ||
        get_int(root, "n_shared_experts", false, 0, 0, &cfg->n_shared, err, errlen) ||
        get_int(root, "num_experts_per_tok", cfg->n_routed > 0, 0, 1, &cfg->top_k, err, errlen) ||
        get_int(root, "moe_intermediate_size", cfg->n_routed > 0, 0, 1, &cfg->moe_inter, err,
                errlen) ||
        get_int(root, "first_k_dense_replace", false, 0, 0, &cfg->first_dense, err, errlen) ||
        get_int(root, "n_group", false, 1, 1, &cfg->n_group, err, errlen) ||
        get_int(root, "topk_group", false, 1, 1, &cfg->topk_group, err, errlen) ||
        get_int(root, "num_nextn_predict_layers", false, 0, 0, &cfg->n_nextn, err, errlen) ||
        get_int(root, "max_position_embeddings", false, 4096, 1, &cfg->max_pos, err, errlen) ||
        get_num(root, "rms_norm_eps", 1e-6, &eps, err, errlen) ||
        get_num(root, "initializer_range", 0.02, &cfg->init_range, err, errlen))
        goto out;
    if (cfg->qk_rope % 2 != 0) {
        snprintf(err, errlen, "config.json: qk_rope_head_dim=%d must be even", cfg->qk_rope);
        goto out;
    }
    if (!(eps > 0.0)) {
        snprintf(err, errlen, "config.json: field 'rms_norm_eps' must be positive");
        goto out;
    }
    cfg->rms_eps = (float)eps;
    if (cfg->n_routed > 0 && cfg->n_shared > 0 && cfg->moe_inter == 0) {
        snprintf(err, errlen, "config.json: missing required field 'moe_intermediate_size'");
        goto out;
    }
    if (parse_gating(root, cfg, err, errlen))
        goto out;
    if (parse_rope(root, cfg, err, errlen))
        goto out;
    if (get_bool(root, "rope_interleave", true, &cfg->rope_interleave, err, errlen))
        goto out;
    const char *dt = get_str(root, "dtype", &bad, err, errlen);
    if (bad)
        goto out;
    if (!dt)
        dt = get_str(root, "torch_dtype", &bad, err, errlen);
    if (bad)
        goto out;
    snprintf(cfg->dtype, sizeof cfg->dtype, "%s", dt ? dt : "");
    get_token_id(root, "bos_token_id", &cfg->bos_id);
    get_token_id(root, "eos_token_id", &cfg->eos_id);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int eng_config_load(const char *path, eng_config_t *cfg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) {
                fclose(f);
                free(buf);
                snprintf(err, errlen, "%s: config file larger than 64 MiB", path);
                return -1;
            }
            char *nb = realloc(buf, cap);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    bool ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    buf[len] = '\0';
    int rc = eng_config_parse(buf, cfg, err, errlen);
    free(buf);
    return rc;
}

double eng_config_attn_scale(const eng_config_t *cfg)
{
    double s = 1.0 / sqrt((double)(cfg->qk_nope + cfg->qk_rope));
    if (cfg->yarn && cfg->mscale_all_dim != 0.0) {
        double m = yarn_get_mscale(cfg->yarn_factor, cfg->mscale_all_dim);
        s *= m * m;
    }
    return s;
}

bool eng_config_layer_is_moe(const eng_config_t *cfg, int layer)
{
    return cfg->n_routed > 0 && layer >= cfg->first_dense;
}
