/* eng_backend_cpu: the eng_backend_t table for the CPU forward pass
 * (eng_forward.c) with its thread pool, and greedy generation written against
 * the backend interface so a GPU backend reuses it. */
#include "eng_backend.h"

#include "eng_forward.h"
#include "eng_kvcache.h"
#include "eng_pool.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    eng_pool_t *pool;
    eng_kvcache_t *kc;
} cpu_impl_t;

static int cpu_seq_create(eng_backend_t *be, int max_tokens, eng_bseq_t **out, char *err,
                          size_t errlen)
{
    if (max_tokens <= 0) {
        snprintf(err, errlen, "sequence length must be positive");
        return -1;
    }
    cpu_impl_t *ci = be->impl;
    *out = (eng_bseq_t *)eng_seq_create_in(be->model, ci->pool, ci->kc, max_tokens);
    return 0;
}

static void cpu_seq_free(eng_backend_t *be, eng_bseq_t *seq)
{
    (void)be;
    eng_seq_free((eng_seq_t *)seq);
}

static int cpu_seq_len(eng_backend_t *be, const eng_bseq_t *seq)
{
    (void)be;
    return eng_seq_len((const eng_seq_t *)seq);
}

static int cpu_seq_attach_prefix(eng_backend_t *be, eng_bseq_t *seq, const int32_t *tokens,
                                 int n)
{
    (void)be;
    return eng_seq_attach_prefix((eng_seq_t *)seq, tokens, n);
}

static int cpu_seq_truncate(eng_backend_t *be, eng_bseq_t *seq, int n, char *err, size_t errlen)
{
    (void)be;
    return eng_seq_truncate((eng_seq_t *)seq, n, err, errlen);
}

/* One batched forward step: the items' tokens share every weight read. */
static int cpu_step(eng_backend_t *be, eng_batch_item_t *items, int n_items, char *err,
                    size_t errlen)
{
    (void)be;
    if (n_items <= 0) {
        snprintf(err, errlen, "empty batch");
        return -1;
    }
    eng_fwd_item_t *fi = calloc((size_t)n_items, sizeof *fi);
    if (!fi)
        abort();
    for (int i = 0; i < n_items; i++) {
        fi[i].seq = (eng_seq_t *)items[i].seq;
        fi[i].tokens = items[i].tokens;
        fi[i].n = items[i].n;
        fi[i].mode = (items[i].flags & ENG_FWD_REFERENCE) ? ENG_ATTN_REFERENCE : ENG_ATTN_ABSORBED;
        fi[i].logits = items[i].logits;
        fi[i].all_positions = (items[i].flags & ENG_FWD_ALL_LOGITS) != 0;
    }
    int rc = eng_forward_batch(fi, n_items, err, errlen);
    free(fi);
    return rc;
}

/* Greedy step on the CPU: logits into a scratch buffer, argmax per item. */
static int cpu_step_greedy(eng_backend_t *be, eng_batch_item_t *items, int n_items,
                           int32_t *next, char *err, size_t errlen)
{
    if (n_items <= 0) {
        snprintf(err, errlen, "empty batch");
        return -1;
    }
    int V = be->model->cfg.vocab;
    float *lg = malloc((size_t)n_items * (size_t)V * sizeof(float));
    eng_batch_item_t *it = malloc((size_t)n_items * sizeof *it);
    if (!lg || !it)
        abort();
    for (int i = 0; i < n_items; i++) {
        it[i] = items[i];
        it[i].flags &= ~ENG_FWD_ALL_LOGITS;
        it[i].logits = lg + (size_t)i * V;
    }
    int rc = cpu_step(be, it, n_items, err, errlen);
    for (int i = 0; rc == 0 && i < n_items; i++)
        next[i] = eng_argmax(lg + (size_t)i * V, V);
    free(it);
    free(lg);
    return rc;
}

static void cpu_cache_stats(eng_backend_t *be, eng_kvcache_stats_t *out)
{
    eng_kvcache_stats(((cpu_impl_t *)be->impl)->kc, out);
}

static void cpu_destroy(eng_backend_t *be)
{
    if (!be)
        return;
    cpu_impl_t *ci = be->impl;
    eng_pool_free(ci->pool);
    eng_kvcache_free(ci->kc);
    free(ci);
    free(be);
}

static const eng_backend_ops_t CPU_OPS = {
    .name = "cpu",
    .seq_create = cpu_seq_create,
    .seq_free = cpu_seq_free,
    .seq_len = cpu_seq_len,
    .seq_attach_prefix = cpu_seq_attach_prefix,
    .seq_truncate = cpu_seq_truncate,
    .step = cpu_step,
    .step_greedy = cpu_step_greedy,
    .cache_stats = cpu_cache_stats,
    .destroy = cpu_destroy,
};

eng_backend_t *eng_backend_cpu_create(const eng_model_t *model, int n_threads, int cache_tokens)
{
    eng_backend_t *be = calloc(1, sizeof *be);
    cpu_impl_t *ci = calloc(1, sizeof *ci);
    if (!be || !ci)
        abort();
    ci->pool = eng_pool_create(n_threads);
    int blocks = (cache_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    ci->kc = eng_kvcache_create(model, blocks > 0 ? blocks : 1);
    be->ops = &CPU_OPS;
    be->model = model;
    be->impl = ci;
    return be;
}

int eng_generate_greedy(eng_backend_t *be, const int32_t *prompt, int n_prompt, int max_new,
                        int eos_id, int32_t *out, float *prompt_logits, int *cache_hits,
                        char *err, size_t errlen)
{
    int V = be->model->cfg.vocab;
    if (n_prompt <= 0) {
        snprintf(err, errlen, "the prompt is empty: give at least one token id");
        return -1;
    }
    if (max_new < 0) {
        snprintf(err, errlen, "max tokens must not be negative");
        return -1;
    }
    eng_bseq_t *seq;
    if (be->ops->seq_create(be, n_prompt + max_new, &seq, err, errlen))
        return -1;
    float *last = malloc((size_t)V * sizeof(float));
    if (!last)
        abort();
    int produced = -1;
    /* Prefill expands keys/values (ENG_FWD_REFERENCE); decode steps attend on
     * the latent rows (absorbed). */
    eng_batch_item_t it = {seq, prompt, n_prompt, ENG_FWD_REFERENCE, last};
    if (prompt_logits) {
        it.flags |= ENG_FWD_ALL_LOGITS;
        it.logits = prompt_logits;
    } else {
        int hits = be->ops->seq_attach_prefix(be, seq, prompt, n_prompt);
        it.tokens += hits;
        it.n -= hits;
        if (cache_hits)
            *cache_hits = hits;
    }
    if (be->ops->step(be, &it, 1, err, errlen))
        goto out;
    const float *lg = prompt_logits ? prompt_logits + (size_t)(n_prompt - 1) * V : last;
    produced = 0;
    while (produced < max_new) {
        int32_t next = eng_argmax(lg, V);
        out[produced++] = next;
        if (next == eos_id || produced == max_new)
            break;
        eng_batch_item_t d = {seq, &out[produced - 1], 1, 0, last};
        if (be->ops->step(be, &d, 1, err, errlen)) {
            produced = -1;
            goto out;
        }
        lg = last;
    }
out:
    free(last);
    be->ops->seq_free(be, seq);
    return produced;
}
