/* eng_backend: the plain C interface between the engine's drivers (generate,
 * the scheduler/server, bench) and a compute backend. The CPU backend
 * (eng_backend_cpu.c) and the CUDA backend (eng_cuda_*.cu) implement the same
 * table; every CUDA type stays inside the CUDA backend's own files.
 *
 * A backend owns the KV cache of MLA latent rows (64-token blocks, shared
 * across sequences for prefix reuse) and per-sequence state behind the opaque
 * eng_bseq_t. All calls on one backend come from one thread. */
#ifndef ENG_BACKEND_H
#define ENG_BACKEND_H

#include "eng_kvcache.h"
#include "eng_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct eng_backend eng_backend_t;
typedef struct eng_bseq eng_bseq_t;

/* forward flags */
#define ENG_FWD_ALL_LOGITS 1u /* logits for every new token, not just the last */
#define ENG_FWD_REFERENCE 2u  /* plain attention on keys/values expanded from the latents
                                 (the prefill path); without it: absorbed attention */

/* One entry of a batched step: n new tokens for one sequence. logits gets
 * (n, vocab) with ENG_FWD_ALL_LOGITS, else (vocab); may be NULL. */
typedef struct eng_batch_item {
    eng_bseq_t *seq;
    const int32_t *tokens;
    int n;
    unsigned flags;
    float *logits;
} eng_batch_item_t;

typedef struct eng_backend_ops {
    const char *name;
    /* A new empty sequence with room for max_tokens. 0 or -1 with err. */
    int (*seq_create)(eng_backend_t *be, int max_tokens, eng_bseq_t **out, char *err,
                      size_t errlen);
    void (*seq_free)(eng_backend_t *be, eng_bseq_t *seq);
    /* Tokens cached in the sequence. */
    int (*seq_len)(eng_backend_t *be, const eng_bseq_t *seq);
    /* On an empty sequence: reuses the backend's cached blocks that the
     * prompt starts with; returns the number of prompt tokens covered (cache
     * hits). The caller then runs tokens[hits..n). */
    int (*seq_attach_prefix)(eng_backend_t *be, eng_bseq_t *seq, const int32_t *tokens, int n);
    /* Drops cached tokens beyond the first n. 0 or -1 with err. */
    int (*seq_truncate)(eng_backend_t *be, eng_bseq_t *seq, int n, char *err, size_t errlen);
    /* Runs every item of the batch as one step (each appends its tokens to
     * its sequence; prefill and decode items may mix; a sequence appears at
     * most once). Returns 0, or -1 with err and no sequence changed. */
    int (*step)(eng_backend_t *be, eng_batch_item_t *items, int n_items, char *err,
                size_t errlen);
    /* As step, but each item's logits pointer is ignored and next[i] gets the
     * index of item i's largest last-position logit (first on ties), computed
     * by the backend (the GPU copies back one id, not the logits). */
    int (*step_greedy)(eng_backend_t *be, eng_batch_item_t *items, int n_items, int32_t *next,
                       char *err, size_t errlen);
    /* Block counts of the backend's KV cache. */
    void (*cache_stats)(eng_backend_t *be, eng_kvcache_stats_t *out);
    /* Releases the backend (the model is the caller's). */
    void (*destroy)(eng_backend_t *be);
} eng_backend_ops_t;

struct eng_backend {
    const eng_backend_ops_t *ops;
    const eng_model_t *model;
    void *impl;
};

/* The CPU backend over a loaded model with n_threads (<= 0: all CPUs) and a
 * latent cache of cache_tokens (rounded up to 64-token blocks) shared by its
 * sequences, with prefix reuse. The model must outlive the backend. Aborts
 * only on OOM. */
eng_backend_t *eng_backend_cpu_create(const eng_model_t *model, int n_threads, int cache_tokens);

/* Options of the CUDA backend (zeroed = defaults). */
typedef struct eng_cuda_opts {
    int device;          /* CUDA device index */
    bool f32_weights;    /* float32 weights and KV cache (for checks); default bfloat16 */
    int cache_tokens;    /* > 0: a KV cache of exactly this many tokens (rounded up to
                            64-token blocks); 0: sized from the memory left after weights */
    double mem_fraction; /* share of the memory left after weights and a reserve that
                            KV blocks take when cache_tokens is 0 (0: 0.85) */
    bool profile;        /* time every kernel with CUDA events (see eng_cuda.h) */
} eng_cuda_opts_t;

/* What the CUDA backend planned at start (bytes of device memory). */
typedef struct eng_cuda_info {
    char device[128];
    int sm_count;
    size_t total_bytes;   /* the device's memory */
    size_t weight_bytes;  /* weights as stored on the device */
    size_t kv_bytes;      /* the KV block pool */
    int kv_blocks;        /* blocks of 64 tokens */
    size_t kv_bytes_per_token;
    size_t free_after;    /* free memory once weights and KV blocks are allocated */
} eng_cuda_info_t;

/* The CUDA backend over a loaded model: uploads the weights (bfloat16, or
 * float32 with opts->f32_weights), then allocates the KV block pool; info
 * (may be NULL) receives the plan. Returns NULL with err when the engine was
 * built without CUDA, when no usable device is present (CUDA's own message)
 * or when the model does not fit. The model must outlive the backend. */
eng_backend_t *eng_backend_cuda_create(const eng_model_t *model, const eng_cuda_opts_t *opts,
                                       eng_cuda_info_t *info, char *err, size_t errlen);

/* Whether this binary was built with the CUDA backend. */
bool eng_backend_cuda_built(void);

/* Greedy generation on any backend: runs the prompt (logits for every
 * prompt position into prompt_logits (L, vocab) when not NULL; else cached
 * prefix blocks are reused and *cache_hits, when not NULL, says how many
 * prompt tokens they covered), then appends
 * up to max_new argmax tokens into out (stopping after eos_id when
 * eos_id >= 0). Returns the number generated, or -1 with err. */
int eng_generate_greedy(eng_backend_t *be, const int32_t *prompt, int n_prompt, int max_new,
                        int eos_id, int32_t *out, float *prompt_logits, int *cache_hits,
                        char *err, size_t errlen);

#endif
