/* eng_config: the DeepSeek-V2/V3 model configuration (config.json) as the
 * engine needs it. Both dialects are accepted: older files with `rope_scaling`
 * + top-level `rope_theta` + `torch_dtype`, newer ones with `rope_parameters` +
 * `dtype`. Options the engine cannot run are refused with an error naming the
 * field. */
#ifndef ENG_CONFIG_H
#define ENG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { ENG_ARCH_V2 = 2, ENG_ARCH_V3 = 3 } eng_arch_t;

/* How experts are scored: V2 softmax, V3 sigmoid (+ correction bias for selection). */
typedef enum { ENG_SCORE_SOFTMAX = 0, ENG_SCORE_SIGMOID } eng_score_t;

/* How groups are ranked before top-k: none (plain greedy), the best expert of
 * the group (V2 group_limited_greedy), the sum of the group's two best (V3). */
typedef enum { ENG_GROUP_NONE = 0, ENG_GROUP_MAX, ENG_GROUP_TOP2_SUM } eng_group_rank_t;

typedef struct eng_config {
    eng_arch_t arch;
    int hidden;       /* hidden_size */
    int n_layers;     /* num_hidden_layers */
    int n_heads;      /* num_attention_heads */
    int vocab;        /* vocab_size */
    int inter;        /* intermediate_size (dense layers) */
    int moe_inter;    /* moe_intermediate_size (one expert) */
    int q_lora_rank;  /* 0: plain q_proj */
    int kv_lora_rank; /* width of the latent c */
    int qk_nope;      /* qk_nope_head_dim */
    int qk_rope;      /* qk_rope_head_dim */
    int v_head;       /* v_head_dim */
    int n_routed;     /* n_routed_experts (0: every layer dense) */
    int n_shared;     /* n_shared_experts (0: none) */
    int top_k;        /* num_experts_per_tok */
    int first_dense;  /* first_k_dense_replace */
    int n_group, topk_group;
    eng_score_t scoring;
    eng_group_rank_t group_rank;
    bool score_bias; /* e_score_correction_bias present (V3) */
    bool norm_topk;  /* renormalise the chosen weights (V3 norm_topk_prob) */
    float routed_scale;
    float rms_eps;       /* rms_norm_eps (q_a/kv_a norms always use 1e-6) */
    int n_nextn;         /* num_nextn_predict_layers: MTP layers, ignored */
    int max_pos;         /* max_position_embeddings */
    double init_range;   /* initializer_range (random init only) */
    int bos_id, eos_id;  /* -1 when absent */
    char dtype[16];      /* dtype / torch_dtype, informational */
    /* RoPE */
    double rope_theta;
    bool rope_interleave; /* true: adjacent pairs; false: rotate-half */
    bool yarn;
    double yarn_factor;
    int yarn_orig_max;
    double beta_fast, beta_slow, mscale, mscale_all_dim;
    double attention_factor; /* scales cos/sin (transformers' attention_scaling) */
    bool yarn_truncate;
} eng_config_t;

/* Parses config.json text into *cfg. Returns 0, or -1 with a message naming
 * the offending field in err. */
int eng_config_parse(const char *json_text, eng_config_t *cfg, char *err, size_t errlen);

/* Reads and parses the file at path. Returns 0 or -1 with err set. */
int eng_config_load(const char *path, eng_config_t *cfg, char *err, size_t errlen);

/* The softmax scale of attention: (qk_nope + qk_rope)^-0.5, times m^2 when
 * yarn sets mscale_all_dim. */
double eng_config_attn_scale(const eng_config_t *cfg);

/* Whether layer i uses the MoE FFN (else a dense SwiGLU MLP). */
bool eng_config_layer_is_moe(const eng_config_t *cfg, int layer);

#endif
