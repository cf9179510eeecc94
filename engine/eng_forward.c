/* eng_forward: the CPU forward pass in float32 for a batch of sequences.
 * Every layer: h = x + Attn(norm_in(x)); y = h + FFN(norm_post(h)). The
 * batch's tokens share every weight read (projections, experts, lm_head);
 * attention runs per sequence on its latent cache, either the reference way
 * (keys/values expanded, head dims (nope+rope)/v) or absorbed (on the latent
 * rows directly). */
#include "eng_forward.h"

#include "eng_moe.h"
#include "eng_ops.h"
#include "eng_seq_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The q_a/kv_a norms use 1e-6 in the reference code whatever rms_norm_eps says. */
#define ENG_LORA_NORM_EPS 1e-6f

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
    int qk = nope + rope, kvw = nope + vd, kvl = c->kv_lora_rank;
    float *p = eng_xcalloc((size_t)(a->p0 + a->n_new), sizeof(float));
    for (size_t it = lo; it < hi; it++) {
        int t = (int)(it / (size_t)nh), h = (int)(it % (size_t)nh), n_ctx = a->p0 + t + 1;
        const float *q = a->q + ((size_t)t * nh + h) * qk;
        for (int j = 0; j < n_ctx; j++) {
            const float *k_nope = a->kvb + ((size_t)j * nh + h) * kvw;
            const float *k_rot = eng_seq_kv_row(a->s, a->layer, j) + kvl;
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
    float *p = eng_xcalloc((size_t)(a->p0 + a->n_new), sizeof(float));
    float *q_lat = eng_xcalloc((size_t)row, sizeof(float)); /* [q_lat | q_rot] */
    float *o_lat = eng_xcalloc((size_t)kvl, sizeof(float));
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
            p[j] = eng_dot(q_lat, eng_seq_kv_row(a->s, a->layer, j), (size_t)row) * a->s->scale;
        eng_softmax(p, (size_t)n_ctx);
        memset(o_lat, 0, (size_t)kvl * sizeof(float));
        for (int j = 0; j < n_ctx; j++) {
            const float *cj = eng_seq_kv_row(a->s, a->layer, j);
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

/* One step of the batch: items and where their rows sit in the stacked
 * activations. */
typedef struct {
    const eng_model_t *m;
    eng_pool_t *pool;
    eng_fwd_item_t *items;
    int n_items;
    size_t *off; /* first row of item i; off[n_items] = total rows */
    int *p0;     /* cached length of item i's sequence before the step */
} step_t;

/* MLA for all rows of the step in one layer: x is the normed input (N,
 * hidden); adds o_proj(attention) into resid (N, hidden). Projections run on
 * all rows at once; attention per sequence. */
static void layer_attention(const step_t *st, int layer, const float *x, float *resid)
{
    const eng_config_t *c = &st->m->cfg;
    const eng_layer_w_t *L = &st->m->layers[layer];
    eng_pool_t *pool = st->pool;
    size_t H = (size_t)c->hidden, nh = (size_t)c->n_heads, qk = (size_t)(c->qk_nope + c->qk_rope);
    size_t kvl = (size_t)c->kv_lora_rank, row = kvl + (size_t)c->qk_rope;
    size_t N = st->off[st->n_items], vw = nh * (size_t)c->v_head;
    float *q = eng_xcalloc(N * nh * qk, sizeof(float));
    if (c->q_lora_rank == 0) {
        eng_matmul(pool, q, nh * qk, x, H, L->q_proj, N, H, nh * qk);
    } else {
        size_t r = (size_t)c->q_lora_rank;
        float *qa = eng_xcalloc(N * r, sizeof(float));
        eng_matmul(pool, qa, r, x, H, L->q_a, N, H, r);
        for (size_t t = 0; t < N; t++)
            eng_rmsnorm(qa + t * r, qa + t * r, L->q_a_norm, r, ENG_LORA_NORM_EPS);
        eng_matmul(pool, q, nh * qk, qa, r, L->q_b, N, r, nh * qk);
        free(qa);
    }
    /* New latent rows [norm(c) | rope(k_rot)] go into each sequence's blocks. */
    float *new_rows = eng_xcalloc(N * row, sizeof(float));
    eng_matmul(pool, new_rows, row, x, H, L->kv_a, N, H, row);
    float *out = eng_xcalloc(N * vw, sizeof(float));
    for (int i = 0; i < st->n_items; i++) {
        eng_seq_t *s = st->items[i].seq;
        int p0 = st->p0[i], n = st->items[i].n;
        for (int t = 0; t < n; t++) {
            size_t g = st->off[i] + (size_t)t;
            float *r = new_rows + g * row;
            eng_rmsnorm(r, r, L->kv_a_norm, kvl, ENG_LORA_NORM_EPS);
            eng_rope_apply(r + kvl, c->qk_rope, s->inv_freq, p0 + t, c->rope_interleave,
                           (float)c->attention_factor);
            memcpy(eng_seq_kv_row(s, layer, p0 + t), r, row * sizeof(float));
            for (size_t h = 0; h < nh; h++)
                eng_rope_apply(q + (g * nh + h) * qk + c->qk_nope, c->qk_rope, s->inv_freq, p0 + t,
                               c->rope_interleave, (float)c->attention_factor);
        }
        attn_ctx_t a = {s, layer, n, p0, q + st->off[i] * nh * qk, NULL, out + st->off[i] * vw};
        if (st->items[i].mode == ENG_ATTN_REFERENCE) {
            size_t ctx = (size_t)p0 + (size_t)n, kvw = nh * (size_t)(c->qk_nope + c->v_head);
            float *kvb = eng_xcalloc(ctx * kvw, sizeof(float));
            /* expand block by block: rows are contiguous only within a block */
            for (size_t p = 0; p < ctx; p += ENG_KV_BLOCK) {
                size_t rows = ctx - p < ENG_KV_BLOCK ? ctx - p : ENG_KV_BLOCK;
                eng_matmul(pool, kvb + p * kvw, kvw, eng_seq_kv_row(s, layer, (int)p), row, L->kv_b,
                           rows, kvl, kvw);
            }
            a.kvb = kvb;
            eng_pool_for(pool, (size_t)n * nh, 1, attn_reference, &a);
            free(kvb);
        } else {
            eng_pool_for(pool, (size_t)n * nh, 1, attn_absorbed, &a);
        }
    }
    float *o = eng_xcalloc(N * H, sizeof(float));
    eng_matmul(pool, o, H, out, vw, L->o, N, vw, H);
    for (size_t i = 0; i < N * H; i++)
        resid[i] += o[i];
    free(o);
    free(out);
    free(new_rows);
    free(q);
}

/* ---- feed-forward ---- */

/* y[t] += scale_t * mlp(x[t]) for n rows (scale NULL: 1). */
static void mlp_add(const step_t *st, const eng_mlp_w_t *w, size_t inter, const float *x,
                    size_t n, const float *scale, float *y, const int *rows)
{
    eng_pool_t *pool = st->pool;
    size_t H = (size_t)st->m->cfg.hidden;
    float *g = eng_xcalloc(n * inter, sizeof(float)), *u = eng_xcalloc(n * inter, sizeof(float));
    float *d = eng_xcalloc(n * H, sizeof(float));
    eng_matmul(pool, g, inter, x, H, w->gate, n, H, inter);
    eng_matmul(pool, u, inter, x, H, w->up, n, H, inter);
    eng_silu_mul(g, u, n * inter);
    eng_matmul(pool, d, H, g, inter, w->down, n, inter, H);
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
static void layer_moe(const step_t *st, int layer, const float *x, int n, float *resid)
{
    const eng_config_t *c = &st->m->cfg;
    const eng_layer_w_t *L = &st->m->layers[layer];
    size_t H = (size_t)c->hidden, E = (size_t)c->n_routed, K = (size_t)c->top_k, N = (size_t)n;
    float *logits = eng_xcalloc(N * E, sizeof(float));
    eng_matmul(st->pool, logits, E, x, H, L->gate, N, H, E);
    int *idx = eng_xcalloc(N * K, sizeof(int));
    float *wt = eng_xcalloc(N * K, sizeof(float));
    for (size_t t = 0; t < N; t++)
        eng_moe_route(c, logits + t * E, L->gate_bias, idx + t * K, wt + t * K);
    float *y = eng_xcalloc(N * H, sizeof(float));
    float *xs = eng_xcalloc(N * H, sizeof(float)), *ws = eng_xcalloc(N, sizeof(float));
    int *rows = eng_xcalloc(N, sizeof(int));
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
            mlp_add(st, &L->experts[e], (size_t)c->moe_inter, xs, cnt, ws, y, rows);
    }
    if (c->n_shared > 0)
        mlp_add(st, &L->shared, (size_t)c->moe_inter * (size_t)c->n_shared, x, N, NULL, y, NULL);
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

int eng_forward_batch(eng_fwd_item_t *items, int n_items, char *err, size_t errlen)
{
    if (n_items <= 0) {
        snprintf(err, errlen, "empty batch");
        return -1;
    }
    const eng_model_t *m = items[0].seq->m;
    const eng_config_t *c = &m->cfg;
    for (int i = 0; i < n_items; i++) {
        eng_seq_t *s = items[i].seq;
        if (s->m != m) {
            snprintf(err, errlen, "batch item %d belongs to another model", i);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (items[j].seq == s) {
                snprintf(err, errlen, "batch items %d and %d are the same sequence", j, i);
                return -1;
            }
        if (items[i].n <= 0) {
            snprintf(err, errlen, "batch item %d: no tokens to run", i);
            return -1;
        }
        if (items[i].n > s->max_tokens - s->len) {
            snprintf(err, errlen, "sequence full: %d tokens cached, %d more do not fit in %d",
                     s->len, items[i].n, s->max_tokens);
            return -1;
        }
        for (int t = 0; t < items[i].n; t++)
            if (items[i].tokens[t] < 0 || items[i].tokens[t] >= c->vocab) {
                snprintf(err, errlen, "token id %d at index %d is outside the vocabulary [0, %d)",
                         (int)items[i].tokens[t], t, c->vocab);
                return -1;
            }
    }
    for (int i = 0; i < n_items; i++)
        if (eng_seq_reserve(items[i].seq, items[i].n, err, errlen)) {
            while (--i >= 0)
                eng_seq_unreserve(items[i].seq);
            return -1;
        }
    step_t st = {m, items[0].seq->pool, items, n_items,
                 eng_xcalloc((size_t)n_items + 1, sizeof(size_t)),
                 eng_xcalloc((size_t)n_items, sizeof(int))};
    for (int i = 0; i < n_items; i++) {
        st.off[i + 1] = st.off[i] + (size_t)items[i].n;
        st.p0[i] = items[i].seq->len;
    }
    size_t H = (size_t)c->hidden, N = st.off[n_items];
    float *x = eng_xcalloc(N * H, sizeof(float)), *xn = eng_xcalloc(N * H, sizeof(float));
    for (int i = 0; i < n_items; i++)
        for (int t = 0; t < items[i].n; t++)
            memcpy(x + (st.off[i] + (size_t)t) * H, m->embed + (size_t)items[i].tokens[t] * H,
                   H * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        const eng_layer_w_t *L = &m->layers[l];
        for (size_t t = 0; t < N; t++)
            eng_rmsnorm(xn + t * H, x + t * H, L->in_norm, H, c->rms_eps);
        layer_attention(&st, l, xn, x);
        for (size_t t = 0; t < N; t++)
            eng_rmsnorm(xn + t * H, x + t * H, L->post_norm, H, c->rms_eps);
        if (L->moe)
            layer_moe(&st, l, xn, (int)N, x);
        else
            mlp_add(&st, &L->dense, (size_t)c->inter, xn, N, NULL, x, NULL);
    }
    for (int i = 0; i < n_items; i++)
        eng_seq_commit(items[i].seq, items[i].tokens, items[i].n);
    /* Final norm and lm_head on the rows that want logits, in one matmul. */
    size_t R = 0, V = (size_t)c->vocab;
    for (int i = 0; i < n_items; i++)
        if (items[i].logits)
            R += items[i].all_positions ? (size_t)items[i].n : 1;
    if (R > 0) {
        float *rows = eng_xcalloc(R * H, sizeof(float)), *lg = eng_xcalloc(R * V, sizeof(float));
        size_t r = 0;
        for (int i = 0; i < n_items; i++) {
            if (!items[i].logits)
                continue;
            size_t first = items[i].all_positions ? 0 : (size_t)items[i].n - 1;
            for (size_t t = first; t < (size_t)items[i].n; t++, r++)
                eng_rmsnorm(rows + r * H, x + (st.off[i] + t) * H, m->norm, H, c->rms_eps);
        }
        eng_matmul(st.pool, lg, V, rows, H, m->lm_head, R, H, V);
        r = 0;
        for (int i = 0; i < n_items; i++) {
            if (!items[i].logits)
                continue;
            size_t cnt = items[i].all_positions ? (size_t)items[i].n : 1;
            memcpy(items[i].logits, lg + r * V, cnt * V * sizeof(float));
            r += cnt;
        }
        free(rows);
        free(lg);
    }
    free(x);
    free(xn);
    free(st.off);
    free(st.p0);
    return 0;
}

int eng_seq_forward(eng_seq_t *s, const int32_t *tokens, int n, eng_attn_mode_t mode,
                    float *logits, bool all_positions, char *err, size_t errlen)
{
    eng_fwd_item_t it = {s, tokens, n, mode, logits, all_positions};
    return eng_forward_batch(&it, 1, err, errlen);
}
