/* eng_model: a DeepSeek-V2/V3 model in memory — its config and float32
 * weights — loaded from a checkpoint directory, or filled with random values
 * for tests and benchmarks; and saved back as safetensors. */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include "eng_config.h"
#include "eng_st.h"

#include <stdbool.h>
#include <stdint.h>

/* A SwiGLU MLP: down(silu(gate(x)) * up(x)). */
typedef struct eng_mlp_w {
    const float *gate; /* (inter, hidden) */
    const float *up;   /* (inter, hidden) */
    const float *down; /* (hidden, inter) */
} eng_mlp_w_t;

typedef struct eng_layer_w {
    const float *in_norm;   /* (hidden) */
    const float *post_norm; /* (hidden) */
    const float *q_proj;    /* (heads*(nope+rope), hidden) when q_lora_rank == 0 */
    const float *q_a;       /* (q_lora, hidden) */
    const float *q_a_norm;  /* (q_lora) */
    const float *q_b;       /* (heads*(nope+rope), q_lora) */
    const float *kv_a;      /* (kv_lora+rope, hidden) */
    const float *kv_a_norm; /* (kv_lora) */
    const float *kv_b;      /* (heads*(nope+v), kv_lora): per head nope rows then v rows */
    const float *o;         /* (hidden, heads*v) */
    bool moe;
    eng_mlp_w_t dense;      /* when !moe: width intermediate_size */
    const float *gate;      /* (n_routed, hidden) */
    const float *gate_bias; /* (n_routed) e_score_correction_bias, V3 */
    eng_mlp_w_t *experts;   /* n_routed, width moe_intermediate_size */
    eng_mlp_w_t shared;     /* width moe_inter * n_shared, when n_shared > 0 */
} eng_layer_w_t;

typedef struct eng_model {
    eng_config_t cfg;
    const float *embed;   /* (vocab, hidden) */
    const float *norm;    /* (hidden) */
    const float *lm_head; /* (vocab, hidden) */
    eng_layer_w_t *layers;
    /* ownership */
    eng_tset_t *tset; /* mappings behind zero-copy float32 tensors */
    float **owned;
    size_t n_owned, cap_owned;
    size_t weight_bytes; /* float32 bytes of all weights */
} eng_model_t;

/* What a tensor is, for random initialisation. */
typedef enum { ENG_T_MATRIX = 0, ENG_T_NORM, ENG_T_BIAS, ENG_T_EMBED } eng_tkind_t;

/* Called once per tensor the config implies, in a fixed order, with its hub
 * name, shape and the weight slot to fill or read. Returns 0 to go on. */
typedef int (*eng_tensor_fn)(void *ctx, const char *name, int ndim, const int64_t *shape,
                             eng_tkind_t kind, const float **slot, char *err, size_t errlen);

/* Enumerates every tensor of m->cfg (m->layers must be allocated). */
int eng_model_for_each_tensor(eng_model_t *m, eng_tensor_fn fn, void *ctx, char *err,
                              size_t errlen);

/* Loads config.json and the safetensors checkpoint from dir. float32 tensors
 * stay in the mapping (zero copy, when aligned); bfloat16/float16 ones are
 * converted to float32 at load. Missing, extra, wrong-shape or unsupported-
 * dtype tensors are errors naming the tensor. Returns a model (free with
 * eng_model_free) or NULL with err. */
eng_model_t *eng_model_load(const char *dir, char *err, size_t errlen);

/* Same with the config already parsed (the checkpoint is still read from dir). */
eng_model_t *eng_model_load_cfg(const eng_config_t *cfg, const char *dir, char *err,
                                size_t errlen);

/* Float32 bytes all weights of cfg take (nothing is allocated). */
size_t eng_model_bytes_for(const eng_config_t *cfg);

/* A model with random weights (deterministic for a seed): matrices uniform
 * with standard deviation initializer_range, norms 1 +- 0.1, biases +- 0.1. */
eng_model_t *eng_model_random(const eng_config_t *cfg, uint64_t seed);

/* A model with the config and layer layout of cfg but no weights (every
 * weight pointer NULL, weight_bytes 0): for the CUDA backend, which then
 * draws random weights of eng_model_random's distribution on the device (a
 * different generator: not the same values). The CPU backend cannot run it.
 * Free with eng_model_free. */
eng_model_t *eng_model_shell(const eng_config_t *cfg);

/* Writes all weights to dir as safetensors (dtype F32, BF16 or F16, n_shards as in
 * eng_st_write). config.json is the caller's business. Returns 0 or -1. */
int eng_model_save(eng_model_t *m, const char *dir, eng_dtype_t dtype, int n_shards, char *err,
                   size_t errlen);

/* Float32 bytes of weights read for one token at batch 1: embedding row,
 * attention, dense/shared MLPs, gate, top_k experts and the lm_head. */
size_t eng_model_active_bytes(const eng_model_t *m);

void eng_model_free(eng_model_t *m);

#endif
