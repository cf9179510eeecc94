/* eng_forward: one sequence's forward pass on the CPU in float32. Every layer:
 * h = x + Attn(norm_in(x)); y = h + FFN(norm_post(h)). Attention is MLA with a
 * latent cache; the reference path expands keys/values (head dims
 * (nope+rope)/v), the absorbed path attends on the 576-style latent rows. */
#include "eng_forward.h"

#include "eng_kvcache.h"
#include "eng_moe.h"
#include "eng_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The q_a/kv_a norms use 1e-6 in the reference code whatever rms_norm_eps says. */
#define ENG_LORA_NORM_EPS 1e-6f

struct eng_seq {
    const eng_model_t *m;
    eng_pool_t *pool;
    eng_kvcache_t *kc;
    bool own_kc;
    int max_tokens, len;
    int row;          /* kv_lora_rank + qk_rope: floats per cached token per layer */
    int *blocks;      /* block ids of positions [64 i, 64 i + 64) */
    int n_blocks;
    uint64_t *hashes; /* chain hash of each full block */
    int32_t *tokens;  /* the max_tokens token history */
    float *inv_freq;  /* (qk_rope/2) */
    float scale;      /* softmax scale incl. yarn mscale^2 */
};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        abort();
    return p;
}

eng_seq_t *eng_seq_create_in(const eng_model_t *model, eng_pool_t *pool, eng_kvcache_t *kc,
                             int max_tokens)
{
    const eng_config_t *c = &model->cfg;
    eng_seq_t *s = xcalloc(1, sizeof *s);
    s->m = model;
    s->pool = pool;
    s->kc = kc;
    s->max_tokens = max_tokens;
    s->row = c->kv_lora_rank + c->qk_rope;
    int nb = (max_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    s->blocks = xcalloc((size_t)nb, sizeof(int));
    s->hashes = xcalloc((size_t)nb, sizeof(uint64_t));
    s->tokens = xcalloc((size_t)max_tokens, sizeof(int32_t));
    s->inv_freq = xcalloc((size_t)c->qk_rope / 2, sizeof(float));
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

/* The cached latent row of position pos in layer. */
static inline float *kv_row(const eng_seq_t *s, int layer, int pos)
{
    return eng_kvcache_row_ptr(s->kc, s->blocks[pos / ENG_KV_BLOCK], layer, pos % ENG_KV_BLOCK);
}

/* ---- attention ---- */

typedef struct {
    const eng_seq_t *s;
    int layer, n_new, p0;
    const float *q;   /* (n_new, heads*(nope+rope)), rope part rotated */
    const float *kvb; /* reference: (p0+n_new, heads*(nope+v)) expanded keys/values */
    float *out;       /* (n_new, heads*v) */
} attn_ctx_t;

/* Reference attention for items [lo, hi) of (token, head): ordinary softmax
 * attention against keys [k_nope | k_rot] and values expanded from the cache. */
static void attn_reference(void *arg, size_t lo, size_t hi)
{
    const attn_ctx_t *a = arg;
    const eng_config_t *c = &a->s->m->cfg;
    int nh = c->n_heads, nope = c->qk_nope, rope = c->qk_rope, vd = c->v_head;
    int qk = nope + rope, kvw = nope + vd, row = a->s->row, kvl = c->kv_lora_rank;
    (void)row;
    float *p = xcalloc((size_t)(a->p0 + a->n_new), sizeof(float));
    for (size_t it = lo; it < hi; it++) {
        int t = (int)(it / (size_t)nh), h = (int)(it % (size_t)nh), n_ctx = a->p0 + t + 1;
        const float *q = a->q + ((size_t)t * nh + h) * qk;
        for (int j = 0; j < n_ctx; j++) {
            const float *k_nope = a->kvb + ((size_t)j * nh + h) * kvw;
            const float *k_rot = kv_row(a->s, a->layer, j) + kvl;
            p[j] = (eng_dot(q, k_nope, (size_t)nope) + eng_dot(q + nope, k_rot, (size_t)rope)) *
                   a->s->scale;
        }
        eng_softmax(p, (size_t)n_ctx);
        float *o = a->out + ((size_t)t * nh + h) * vd;
        memset(o, 0, (size_t)vd * sizeof(float));
        for (int j = 0; j < n_ctx; j++) {
            const float *v = a->kvb + ((size_t)j * nh + h) * kvw + nope;
            for (int d = 0; d < vd; d++)
                o[d] += p[j] * v[d];
        }
    }
    free(p);
}

/* Absorbed attention for items [lo, hi) of (token, head):
 *   q_lat = W_UK[h]^T q_nope          (kv_lora)
 *   s_j   = q_lat . c_j + q_rot . k_rot_j   on the cached latent rows
 *   o_lat = sum_j softmax(s)_j c_j    (kv_lora)
 *   out   = W_UV[h] o_lat             (v_head)
 * Same scale as the reference; the nope part of the score is the same sum
 * regrouped: q_nope . (W_UK c_j) = (W_UK^T q_nope) . c_j. */
static void attn_absorbed(void *arg, size_t lo, size_t hi)
{
    const attn_ctx_t *a = arg;
    const eng_config_t *c = &a->s->m->cfg;
    const float *kv_b = a->s->m->layers[a->layer].kv_b;
    int nh = c->n_heads, nope = c->qk_nope, rope = c->qk_rope, vd = c->v_head;
    int qk = nope + rope, kvw = nope + vd, row = a->s->row, kvl = c->kv_lora_rank;
    float *p = xcalloc((size_t)(a->p0 + a->n_new), sizeof(float));
    float *q_lat = xcalloc((size_t)row, sizeof(float)); /* [q_lat | q_rot] */
    float *o_lat = xcalloc((size_t)kvl, sizeof(float));
    for (size_t it = lo; it < hi; it++) {
        int t = (int)(it / (size_t)nh), h = (int)(it % (size_t)nh), n_ctx = a->p0 + t + 1;
        const float *q = a->q + ((size_t)t * nh + h) * qk;
        const float *w_uk = kv_b + (size_t)h * kvw * kvl;      /* (nope, kvl) */
        const float *w_uv = w_uk + (size_t)nope * kvl;         /* (v, kvl) */
        memset(q_lat, 0, (size_t)kvl * sizeof(float));
        for (int n = 0; n < nope; n++) {
            const float *wr = w_uk + (size_t)n * kvl;
            for (int k = 0; k < kvl; k++)
                q_lat[k] += q[n] * wr[k];
        }
        memcpy(q_lat + kvl, q + nope, (size_t)rope * sizeof(float));
        for (int j = 0; j < n_ctx; j++)
            p[j] = eng_dot(q_lat, kv_row(a->s, a->layer, j), (size_t)row) * a->s->scale;
        eng_softmax(p, (size_t)n_ctx);
        memset(o_lat, 0, (size_t)kvl * sizeof(float));
        for (int j = 0; j < n_ctx; j++) {
            const float *cj = kv_row(a->s, a->layer, j);
            for (int k = 0; k < kvl; k++)
                o_lat[k] += p[j] * cj[k];
        }
        float *o = a->out + ((size_t)t * nh + h) * vd;
        for (int d = 0; d < vd; d++)
            o[d] = eng_dot(w_uv + (size_t)d * kvl, o_lat, (size_t)kvl);
    }
    free(p);
    free(q_lat);
    free(o_lat);
}

/* MLA for n new tokens of one layer: x is the normed input (n, hidden); adds
 * o_proj(attention) into resid (n, hidden). */
static void layer_attention(eng_seq_t *s, int layer, const float *x, int n, eng_attn_mode_t mode,
                            float *resid)
{
    const eng_config_t *c = &s->m->cfg;
    const eng_layer_w_t *L = &s->m->layers[layer];
    size_t H = (size_t)c->hidden, nh = (size_t)c->n_heads, qk = (size_t)(c->qk_nope + c->qk_rope);
    size_t kvl = (size_t)c->kv_lora_rank, row = (size_t)s->row, N = (size_t)n;
    int p0 = s->len;
    float *q = xcalloc(N * nh * qk, sizeof(float));
    if (c->q_lora_rank == 0) {
        eng_matmul(s->pool, q, nh * qk, x, H, L->q_proj, N, H, nh * qk);
    } else {
        size_t r = (size_t)c->q_lora_rank;
        float *qa = xcalloc(N * r, sizeof(float));
        eng_matmul(s->pool, qa, r, x, H, L->q_a, N, H, r);
        for (size_t t = 0; t < N; t++)
            eng_rmsnorm(qa + t * r, qa + t * r, L->q_a_norm, r, ENG_LORA_NORM_EPS);
        eng_matmul(s->pool, q, nh * qk, qa, r, L->q_b, N, r, nh * qk);
        free(qa);
    }
    /* New latent rows [norm(c) | rope(k_rot)] go into the cache blocks. */
    float *new_rows = xcalloc(N * row, sizeof(float));
    eng_matmul(s->pool, new_rows, row, x, H, L->kv_a, N, H, row);
    for (size_t t = 0; t < N; t++) {
        float *r = new_rows + t * row;
        eng_rmsnorm(r, r, L->kv_a_norm, kvl, ENG_LORA_NORM_EPS);
        eng_rope_apply(r + kvl, c->qk_rope, s->inv_freq, p0 + (int)t, c->rope_interleave,
                       (float)c->attention_factor);
        memcpy(kv_row(s, layer, p0 + (int)t), r, row * sizeof(float));
        for (size_t h = 0; h < nh; h++)
            eng_rope_apply(q + (t * nh + h) * qk + c->qk_nope, c->qk_rope, s->inv_freq,
                           p0 + (int)t, c->rope_interleave, (float)c->attention_factor);
    }
    float *out = xcalloc(N * nh * (size_t)c->v_head, sizeof(float));
    attn_ctx_t a = {s, layer, n, p0, q, NULL, out};
    float *kvb = NULL;
    if (mode == ENG_ATTN_REFERENCE) {
        size_t ctx = (size_t)p0 + N, kvw = nh * (size_t)(c->qk_nope + c->v_head);
        kvb = xcalloc(ctx * kvw, sizeof(float));
        /* expand block by block: rows are contiguous only within a block */
        for (size_t p = 0; p < ctx; p += ENG_KV_BLOCK) {
            size_t rows = ctx - p < ENG_KV_BLOCK ? ctx - p : ENG_KV_BLOCK;
            eng_matmul(s->pool, kvb + p * kvw, kvw, kv_row(s, layer, (int)p), row, L->kv_b, rows,
                       kvl, kvw);
        }
        a.kvb = kvb;
        eng_pool_for(s->pool, N * nh, 1, attn_reference, &a);
    } else {
        eng_pool_for(s->pool, N * nh, 1, attn_absorbed, &a);
    }
    float *o = xcalloc(N * H, sizeof(float));
    size_t vw = nh * (size_t)c->v_head;
    eng_matmul(s->pool, o, H, out, vw, L->o, N, vw, H);
    for (size_t i = 0; i < N * H; i++)
        resid[i] += o[i];
    free(o);
    free(kvb);
    free(out);
    free(new_rows);
    free(q);
}

/* ---- feed-forward ---- */

/* y[t] += scale_t * mlp(x[t]) for n rows (scale NULL: 1). */
static void mlp_add(eng_seq_t *s, const eng_mlp_w_t *w, size_t inter, const float *x, size_t n,
                    const float *scale, float *y, const int *rows)
{
    size_t H = (size_t)s->m->cfg.hidden;
    float *g = xcalloc(n * inter, sizeof(float)), *u = xcalloc(n * inter, sizeof(float));
    float *d = xcalloc(n * H, sizeof(float));
    eng_matmul(s->pool, g, inter, x, H, w->gate, n, H, inter);
    eng_matmul(s->pool, u, inter, x, H, w->up, n, H, inter);
    eng_silu_mul(g, u, n * inter);
    eng_matmul(s->pool, d, H, g, inter, w->down, n, inter, H);
    for (size_t t = 0; t < n; t++) {
        float k = scale ? scale[t] : 1.0f;
        float *dst = y + (rows ? (size_t)rows[t] : t) * H;
        for (size_t i = 0; i < H; i++)
            dst[i] += k * d[t * H + i];
    }
    free(g);
    free(u);
    free(d);
}

/* MoE for n tokens: route each, then run every chosen expert once on the rows
 * routed to it; shared experts see every row. Adds into resid. */
static void layer_moe(eng_seq_t *s, int layer, const float *x, int n, float *resid)
{
    const eng_config_t *c = &s->m->cfg;
    const eng_layer_w_t *L = &s->m->layers[layer];
    size_t H = (size_t)c->hidden, E = (size_t)c->n_routed, K = (size_t)c->top_k, N = (size_t)n;
    float *logits = xcalloc(N * E, sizeof(float));
    eng_matmul(s->pool, logits, E, x, H, L->gate, N, H, E);
    int *idx = xcalloc(N * K, sizeof(int));
    float *wt = xcalloc(N * K, sizeof(float));
    for (size_t t = 0; t < N; t++)
        eng_moe_route(c, logits + t * E, L->gate_bias, idx + t * K, wt + t * K);
    float *y = xcalloc(N * H, sizeof(float));
    float *xs = xcalloc(N * H, sizeof(float)), *ws = xcalloc(N, sizeof(float));
    int *rows = xcalloc(N, sizeof(int));
    for (size_t e = 0; e < E; e++) {
        size_t cnt = 0;
        for (size_t t = 0; t < N; t++)
            for (size_t k = 0; k < K; k++)
                if ((size_t)idx[t * K + k] == e) {
                    memcpy(xs + cnt * H, x + t * H, H * sizeof(float));
                    ws[cnt] = wt[t * K + k];
                    rows[cnt++] = (int)t;
                }
        if (cnt)
            mlp_add(s, &L->experts[e], (size_t)c->moe_inter, xs, cnt, ws, y, rows);
    }
    if (c->n_shared > 0)
        mlp_add(s, &L->shared, (size_t)c->moe_inter * (size_t)c->n_shared, x, N, NULL, y, NULL);
    for (size_t i = 0; i < N * H; i++)
        resid[i] += y[i];
    free(rows);
    free(ws);
    free(xs);
    free(y);
    free(wt);
    free(idx);
    free(logits);
}

int eng_seq_forward(eng_seq_t *s, const int32_t *tokens, int n, eng_attn_mode_t mode,
                    float *logits, bool all_positions, char *err, size_t errlen)
{
    const eng_model_t *m = s->m;
    const eng_config_t *c = &m->cfg;
    if (n <= 0) {
        snprintf(err, errlen, "no tokens to run");
        return -1;
    }
    if (n > s->max_tokens - s->len) {
        snprintf(err, errlen, "sequence full: %d tokens cached, %d more do not fit in %d", s->len,
                 n, s->max_tokens);
        return -1;
    }
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab) {
            snprintf(err, errlen, "token id %d at index %d is outside the vocabulary [0, %d)",
                     (int)tokens[t], t, c->vocab);
            return -1;
        }
    }
    int need = (s->len + n + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK, had = s->n_blocks;
    while (s->n_blocks < need) {
        int b = eng_kvcache_alloc(s->kc);
        if (b < 0) {
            while (s->n_blocks > had)
                eng_kvcache_release(s->kc, s->blocks[--s->n_blocks]);
            snprintf(err, errlen, "KV cache full: %d more blocks of %d tokens needed, none free",
                     need - s->n_blocks, ENG_KV_BLOCK);
            return -1;
        }
        s->blocks[s->n_blocks++] = b;
    }
    size_t H = (size_t)c->hidden, N = (size_t)n;
    float *x = xcalloc(N * H, sizeof(float)), *xn = xcalloc(N * H, sizeof(float));
    for (size_t t = 0; t < N; t++)
        memcpy(x + t * H, m->embed + (size_t)tokens[t] * H, H * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        const eng_layer_w_t *L = &m->layers[l];
        for (size_t t = 0; t < N; t++)
            eng_rmsnorm(xn + t * H, x + t * H, L->in_norm, H, c->rms_eps);
        layer_attention(s, l, xn, n, mode, x);
        for (size_t t = 0; t < N; t++)
            eng_rmsnorm(xn + t * H, x + t * H, L->post_norm, H, c->rms_eps);
        if (L->moe)
            layer_moe(s, l, xn, n, x);
        else
            mlp_add(s, &L->dense, (size_t)c->inter, xn, N, NULL, x, NULL);
    }
    /* Blocks that became full are registered for prefix reuse. */
    memcpy(s->tokens + s->len, tokens, (size_t)n * sizeof(int32_t));
    for (int bi = s->len / ENG_KV_BLOCK; (bi + 1) * ENG_KV_BLOCK <= s->len + n; bi++) {
        uint64_t parent = bi > 0 ? s->hashes[bi - 1] : 0;
        const int32_t *bt = s->tokens + bi * ENG_KV_BLOCK;
        eng_kvcache_register(s->kc, s->blocks[bi], parent, bt);
        s->hashes[bi] = eng_kvcache_chain_hash(parent, bt);
    }
    s->len += n;
    if (logits) {
        size_t first = all_positions ? 0 : N - 1, rows = N - first;
        for (size_t t = first; t < N; t++)
            eng_rmsnorm(xn + t * H, x + t * H, m->norm, H, c->rms_eps);
        eng_matmul(s->pool, logits, (size_t)c->vocab, xn + first * H, H, m->lm_head, rows, H,
                   (size_t)c->vocab);
    }
    free(x);
    free(xn);
    return 0;
}
