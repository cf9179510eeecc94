/* eng_seq: a sequence's view of the latent KV cache — its block table, its
 * token history and the chained hashes of its full blocks — with prefix
 * reuse on attach and copy-on-write when truncating into a shared block. */
#include "eng_seq_priv.h"

#include "eng_ops.h"

#include <stdio.h>
#include <string.h>

eng_seq_t *eng_seq_create_in(const eng_model_t *model, eng_pool_t *pool, eng_kvcache_t *kc,
                             int max_tokens)
{
    const eng_config_t *c = &model->cfg;
    eng_seq_t *s = eng_xcalloc(1, sizeof *s);
    s->m = model;
    s->pool = pool;
    s->kc = kc;
    s->max_tokens = max_tokens;
    s->row = c->kv_lora_rank + c->qk_rope;
    int nb = (max_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    s->blocks = eng_xcalloc((size_t)nb, sizeof(int));
    s->hashes = eng_xcalloc((size_t)nb, sizeof(uint64_t));
    s->tokens = eng_xcalloc((size_t)max_tokens, sizeof(int32_t));
    s->inv_freq = eng_xcalloc((size_t)c->qk_rope / 2, sizeof(float));
    eng_rope_inv_freq(c, s->inv_freq);
    s->scale = (float)eng_config_attn_scale(c);
    return s;
}

eng_seq_t *eng_seq_create(const eng_model_t *model, eng_pool_t *pool, int max_tokens)
{
    int nb = (max_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    eng_seq_t *s =
        eng_seq_create_in(model, pool, eng_kvcache_create(model, nb > 0 ? nb : 1), max_tokens);
    s->own_kc = true;
    return s;
}

void eng_seq_free(eng_seq_t *s)
{
    if (!s)
        return;
    /* Last block first: the LRU then evicts a prefix's tail before its head,
     * so shorter shared prefixes stay reusable longest. */
    for (int i = s->n_blocks - 1; i >= 0; i--)
        eng_kvcache_release(s->kc, s->blocks[i]);
    if (s->own_kc)
        eng_kvcache_free(s->kc);
    free(s->blocks);
    free(s->hashes);
    free(s->tokens);
    free(s->inv_freq);
    free(s);
}

int eng_seq_len(const eng_seq_t *s)
{
    return s->len;
}

int eng_seq_attach_prefix(eng_seq_t *s, const int32_t *tokens, int n)
{
    if (s->len != 0)
        return 0;
    uint64_t parent = 0;
    int k = 0;
    /* Whole blocks only, and never the last prompt token: its logits are needed. */
    while ((k + 1) * ENG_KV_BLOCK <= n - 1 && (k + 1) * ENG_KV_BLOCK <= s->max_tokens) {
        uint64_t h;
        int b = eng_kvcache_lookup(s->kc, parent, tokens + k * ENG_KV_BLOCK, &h);
        if (b < 0)
            break;
        s->blocks[k] = b;
        s->hashes[k] = h;
        parent = h;
        k++;
    }
    s->n_blocks = k;
    s->len = k * ENG_KV_BLOCK;
    memcpy(s->tokens, tokens, (size_t)s->len * sizeof(int32_t));
    return s->len;
}

int eng_seq_truncate(eng_seq_t *s, int n, char *err, size_t errlen)
{
    if (n < 0 || n >= s->len)
        return 0;
    int keep = (n + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    if (n % ENG_KV_BLOCK != 0) {
        /* The kept partial block will be written again: copy it first when
         * other sequences may read it (shared or registered). */
        int bi = keep - 1, old = s->blocks[bi];
        int fresh = eng_kvcache_alloc(s->kc);
        if (fresh < 0) {
            snprintf(err, errlen, "KV cache full: no block free to copy a shared block into");
            return -1;
        }
        for (int l = 0; l < s->m->cfg.n_layers; l++)
            memcpy(eng_kvcache_row_ptr(s->kc, fresh, l, 0), eng_kvcache_row_ptr(s->kc, old, l, 0),
                   (size_t)(n % ENG_KV_BLOCK) * (size_t)s->row * sizeof(float));
        eng_kvcache_release(s->kc, old);
        s->blocks[bi] = fresh;
    }
    for (int i = keep; i < s->n_blocks; i++)
        eng_kvcache_release(s->kc, s->blocks[i]);
    s->n_blocks = keep;
    s->len = n;
    return 0;
}

size_t eng_seq_cache_bytes_per_token(const eng_model_t *model)
{
    const eng_config_t *c = &model->cfg;
    return (size_t)c->n_layers * (size_t)(c->kv_lora_rank + c->qk_rope) * sizeof(float);
}

int eng_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

int eng_seq_reserve(eng_seq_t *s, int n, char *err, size_t errlen)
{
    int need = (s->len + n + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    while (s->n_blocks < need) {
        int b = eng_kvcache_alloc(s->kc);
        if (b < 0) {
            int missing = need - s->n_blocks;
            eng_seq_unreserve(s);
            snprintf(err, errlen, "KV cache full: %d more blocks of %d tokens needed, none free",
                     missing, ENG_KV_BLOCK);
            return -1;
        }
        s->blocks[s->n_blocks++] = b;
    }
    return 0;
}

void eng_seq_unreserve(eng_seq_t *s)
{
    int keep = (s->len + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    while (s->n_blocks > keep)
        eng_kvcache_release(s->kc, s->blocks[--s->n_blocks]);
}

void eng_seq_commit(eng_seq_t *s, const int32_t *tokens, int n)
{
    memcpy(s->tokens + s->len, tokens, (size_t)n * sizeof(int32_t));
    for (int bi = s->len / ENG_KV_BLOCK; (bi + 1) * ENG_KV_BLOCK <= s->len + n; bi++) {
        uint64_t parent = bi > 0 ? s->hashes[bi - 1] : 0;
        const int32_t *bt = s->tokens + bi * ENG_KV_BLOCK;
        eng_kvcache_register(s->kc, s->blocks[bi], parent, bt);
        s->hashes[bi] = eng_kvcache_chain_hash(parent, bt);
    }
    s->len += n;
}
