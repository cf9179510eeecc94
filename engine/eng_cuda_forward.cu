/* eng_cuda_forward: one batched step on the GPU, the same computation as
 * eng_forward_batch (eng_forward.c) in the same order: embed; per layer
 * norm -> MLA (absorbed decode over the paged latent cache, or expanded
 * prefill) -> o_proj into the residual, norm -> dense MLP or MoE (float32
 * gate and routing on the device; rows sorted by expert on the device and
 * grouped products for steps up to moe_device_max (token, expert) pairs, else
 * sorted on the host and one GEMM pair per used expert; combine per token)
 * into the residual; final norm and lm_head on the rows that want logits. All
 * work is queued on one stream; the host waits at the end, and once per MoE
 * layer on the host-sorted path (expert counts). */
#include "eng_cuda_priv.cuh"

extern "C" {
#include "eng_cuda.h"
}

#include <stdlib.h>
#include <string.h>

#define LORA_EPS 1e-6f
/* decode attention splits are planned in multiples of this many 64-token
 * blocks (see plan_step) */
#define CU_SPLIT_BUCKET (ENG_CUDA_SPLIT_SPAN_TOKENS / ENG_KV_BLOCK)

/* Profile a region: PROF("name", bytes, statements that may TRY). */
#define PROF(name, bytes, ...)                                                                     \
    do {                                                                                           \
        TRY(cu_prof_begin(cb, name, (double)(bytes), err, errlen));                                \
        __VA_ARGS__;                                                                               \
        TRY(cu_prof_end(cb, err, errlen));                                                         \
    } while (0)

/* What one step needs on the device besides the weights. */
typedef struct {
    int N;          /* rows (tokens) of the step */
    int n_items;
    int *off;       /* first row of item i (n_items + 1) */
    int *p0;        /* cached length before the step */
    int *table_off; /* item i's block table in d_tables */
    int n_abs;      /* rows attending the absorbed way */
    int max_splits;
    int R;          /* rows that want logits */
    int TB;         /* block-table entries of all items */
    int *lrow_item; /* item of each logits row */
    /* device arrays (in the meta buffer) */
    int32_t *d_tokens, *d_pos, *d_dblk, *d_dslot, *d_tables, *d_lrows;
    cu_att_row_t *d_att;
} step_plan_t;

static size_t es_of(const cu_backend_t *cb)
{
    return cu_dtype_size(cb->dt);
}

/* Bytes of a GEMM's operands: the weights once, the activations in and out. */
static double gemm_bytes(const cu_backend_t *cb, double n_tok, double n_in, double n_out)
{
    double es = (double)es_of(cb);
    return n_out * n_in * es + n_tok * (n_in * es + n_out * 4.0);
}

/* x (float32, rows of n) -> the element-type scratch b_xt; returns it. */
static int to_xt(cu_backend_t *cb, const float *x, size_t n, void **out, char *err,
                 size_t errlen)
{
    if (cb->dt == CU_F32) {
        *out = (void *)x;
        return 0;
    }
    TRY(cu_buf_ensure(&cb->b_xt, n * 2, err, errlen));
    TRY(cu_convert_f32(cb->stream, cb->dt, cb->b_xt.p, x, n, err, errlen));
    *out = cb->b_xt.p;
    return 0;
}

/* ---- attention ---- */

static int layer_attention(cu_backend_t *cb, const step_plan_t *sp, eng_batch_item_t *items,
                           int l, char *err, size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    const cu_layer_t *D = &cb->layers[l];
    cudaStream_t s = cb->stream;
    cublasHandle_t bl = cb->blas;
    const int N = sp->N, H = c->hidden, nh = c->n_heads, nope = c->qk_nope, rope = c->qk_rope;
    const int qk = nope + rope, vd = c->v_head, kvl = c->kv_lora_rank, row = kvl + rope;
    const int kvw = nope + vd;
    const size_t es = es_of(cb);
    float *xn = (float *)cb->b_xn.p, *x = (float *)cb->b_x.p;
    TRY(cu_buf_ensure(&cb->b_q, (size_t)N * nh * qk * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_rows, (size_t)N * row * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_attn, (size_t)N * nh * vd * 4, err, errlen));
    float *q = (float *)cb->b_q.p, *rows = (float *)cb->b_rows.p, *attn = (float *)cb->b_attn.p;
    void *xt;
    TRY(to_xt(cb, xn, (size_t)N * H, &xt, err, errlen));
    PROF("kv_a_proj", gemm_bytes(cb, N, H, row),
         TRY(cu_gemm_xwt(bl, cb->dt, rows, row, xt, H, D->kv_a, H, N, H, row, 0.0f, err, errlen)));
    if (c->q_lora_rank == 0) {
        PROF("q_proj", gemm_bytes(cb, N, H, nh * qk),
             TRY(cu_gemm_xwt(bl, cb->dt, q, nh * qk, xt, H, D->q_proj, H, N, H, nh * qk, 0.0f,
                             err, errlen)));
    } else {
        int r = c->q_lora_rank;
        TRY(cu_buf_ensure(&cb->b_qa, (size_t)N * r * 4, err, errlen));
        float *qa = (float *)cb->b_qa.p;
        PROF("q_a_proj", gemm_bytes(cb, N, H, r),
             TRY(cu_gemm_xwt(bl, cb->dt, qa, r, xt, H, D->q_a, H, N, H, r, 0.0f, err, errlen)));
        PROF("q_a_norm", (double)N * r * 8,
             TRY(cu_rmsnorm(s, qa, r, qa, r, NULL, D->q_a_norm, N, r, LORA_EPS, err, errlen)));
        TRY(to_xt(cb, qa, (size_t)N * r, &xt, err, errlen));
        PROF("q_b_proj", gemm_bytes(cb, N, r, nh * qk),
             TRY(cu_gemm_xwt(bl, cb->dt, q, nh * qk, xt, r, D->q_b, r, N, r, nh * qk, 0.0f, err,
                             errlen)));
    }
    /* new latent rows: norm(c) | rope(k_rot) into the cache */
    PROF("kv_store", (double)N * row * (4 + es),
         TRY(cu_kv_store(s, cb->dt, cb->kv, rows, N, kvl, rope, D->kv_a_norm, cb->inv_freq,
                         sp->d_pos, sp->d_dblk, sp->d_dslot, l, c->n_layers, c->rope_interleave,
                         (float)c->attention_factor, err, errlen)));
    PROF("rope_q", (double)N * nh * rope * 8,
         TRY(cu_rope(s, q + nope, N, nh, (long)nh * qk, qk, rope, cb->inv_freq, sp->d_pos,
                     c->rope_interleave, (float)c->attention_factor, err, errlen)));
    const void *w_uk = D->kv_b;
    const void *w_uv = (const char *)D->kv_b + (size_t)nope * kvl * es;
    if (sp->n_abs > 0) {
        /* q_lat = W_UK^T q_nope per head (all rows; only absorbed rows are read) */
        TRY(cu_buf_ensure(&cb->b_qlat, (size_t)N * nh * row * 4, err, errlen));
        TRY(cu_buf_ensure(&cb->b_olat, (size_t)N * nh * kvl * 4, err, errlen));
        TRY(cu_buf_ensure(&cb->b_po, (size_t)sp->n_abs * sp->max_splits * nh * kvl * 4, err,
                          errlen));
        TRY(cu_buf_ensure(&cb->b_pml, (size_t)sp->n_abs * sp->max_splits * nh * 2 * 4, err,
                          errlen));
        float *qlat = (float *)cb->b_qlat.p, *olat = (float *)cb->b_olat.p;
        TRY(to_xt(cb, q, (size_t)N * nh * qk, &xt, err, errlen));
        PROF("absorb_uk", (double)nh * nope * kvl * es + (double)N * nh * (nope * es + row * 4),
             TRY(cu_gemm_xw_batched(bl, cb->dt, qlat, nh * row, row, xt, nh * qk, qk, w_uk, kvl,
                                    (long long)kvw * kvl, N, nope, kvl, nh, err, errlen)));
        TRY(cu_qlat_rope(s, qlat, q, N, nh, nope, rope, kvl, err, errlen));
        const void *qlat16 = NULL;
        if (cu_att_q_bf16(cb->dt, kvl, rope)) {
            TRY(cu_buf_ensure(&cb->b_qlat16, (size_t)N * nh * row * 2, err, errlen));
            TRY(cu_convert_f32(s, cb->dt, cb->b_qlat16.p, qlat, (size_t)N * nh * row, err,
                               errlen));
            qlat16 = cb->b_qlat16.p;
        }
        /* rows that attend the expanded way get theirs later: zeros until then */
        if (sp->n_abs < N)
            CU_TRY(cudaMemsetAsync(olat, 0, (size_t)N * nh * kvl * 4, s));
        double ctx_rows = 0;
        for (int i = 0; i < sp->n_items; i++)
            if (!(items[i].flags & ENG_FWD_REFERENCE))
                for (int t = 0; t < items[i].n; t++)
                    ctx_rows += sp->p0[i] + t + 1;
        PROF("attn_decode", ctx_rows * row * es,
             TRY(cu_att_absorbed(s, cb->dt, cb->kv, qlat, qlat16, olat, (float *)cb->b_po.p,
                                 (float *)cb->b_pml.p, sp->d_att, sp->n_abs, sp->max_splits,
                                 sp->d_tables, nh, kvl, rope, l, c->n_layers, cb->scale, err,
                                 errlen)));
        TRY(to_xt(cb, olat, (size_t)N * nh * kvl, &xt, err, errlen));
        PROF("absorb_uv", (double)nh * vd * kvl * es + (double)N * nh * (kvl * es + vd * 4),
             TRY(cu_gemm_xwt_batched(bl, cb->dt, attn, nh * vd, vd, xt, nh * kvl, kvl, w_uv, kvl,
                                     (long long)kvw * kvl, N, kvl, vd, nh, err, errlen)));
    }
    /* reference items overwrite their rows of attn */
    for (int i = 0; i < sp->n_items; i++) {
        if (!(items[i].flags & ENG_FWD_REFERENCE))
            continue;
        int n = items[i].n, p0 = sp->p0[i], ctx = p0 + n;
        TRY(cu_buf_ensure(&cb->b_lat, (size_t)ctx * kvl * es, err, errlen));
        TRY(cu_buf_ensure(&cb->b_krot, (size_t)ctx * rope * 4, err, errlen));
        TRY(cu_buf_ensure(&cb->b_kvb, (size_t)ctx * nh * kvw * 4, err, errlen));
        float *kvb = (float *)cb->b_kvb.p, *krot = (float *)cb->b_krot.p;
        PROF("gather_latent", (double)ctx * row * es * 2,
             TRY(cu_gather_latent(s, cb->dt, cb->b_lat.p, krot, cb->kv,
                                  sp->d_tables + sp->table_off[i], ctx, kvl, rope, l, c->n_layers,
                                  err, errlen)));
        PROF("expand_kv", gemm_bytes(cb, ctx, kvl, nh * kvw),
             TRY(cu_gemm_xwt(bl, cb->dt, kvb, nh * kvw, cb->b_lat.p, kvl, D->kv_b, kvl, ctx, kvl,
                             nh * kvw, 0.0f, err, errlen)));
        /* The products take the element type: with bfloat16 weights, bf16
         * copies of q, k/v and k_rot (tensor cores; P in bf16 too). Queries
         * go in chunks so the scores (nh x rows x keys, float32) stay within
         * cb->prefill_scores floats; a chunk needs the keys up to its last row. */
        float *out = attn + (size_t)sp->off[i] * nh * vd;
        const float *qf = q + (size_t)sp->off[i] * nh * qk;
        const void *qi = qf, *kvi = kvb, *kri = krot;
        if (cb->dt != CU_F32) {
            TRY(cu_buf_ensure(&cb->b_q16, (size_t)n * nh * qk * es, err, errlen));
            TRY(cu_buf_ensure(&cb->b_kvb16, (size_t)ctx * nh * kvw * es, err, errlen));
            TRY(cu_buf_ensure(&cb->b_krot16, (size_t)ctx * rope * es, err, errlen));
            PROF("attn_prefill_bf16",
                 (double)(n * nh * qk + ctx * nh * kvw + ctx * rope) * (4 + es),
                 TRY(cu_convert_f32(s, cb->dt, cb->b_q16.p, qf, (size_t)n * nh * qk, err, errlen));
                 TRY(cu_convert_f32(s, cb->dt, cb->b_kvb16.p, kvb, (size_t)ctx * nh * kvw, err,
                                    errlen));
                 TRY(cu_convert_f32(s, cb->dt, cb->b_krot16.p, krot, (size_t)ctx * rope, err,
                                    errlen)));
            qi = cb->b_q16.p, kvi = cb->b_kvb16.p, kri = cb->b_krot16.p;
        }
        long per_row = (long)nh * ctx;
        long qcl = cb->prefill_scores / per_row;
        int qc = qcl < 1 ? 1 : qcl > n ? n : (int)qcl;
        TRY(cu_buf_ensure(&cb->b_scores, (size_t)qc * per_row * 4, err, errlen));
        float *S = (float *)cb->b_scores.p;
        void *P = S;
        if (cb->dt != CU_F32) {
            TRY(cu_buf_ensure(&cb->b_p16, (size_t)qc * per_row * es, err, errlen));
            P = cb->b_p16.p;
        }
        for (int t0 = 0; t0 < n; t0 += qc) {
            const int rows = n - t0 < qc ? n - t0 : qc, m = p0 + t0 + rows;
            PROF("attn_prefill", (double)rows * nh * (qk + vd) * es + (double)m * nh * kvw * es +
                                     (double)rows * nh * m * (12 + es),
                 TRY(cu_att_scores(bl, cb->dt, S, (const char *)qi + (size_t)t0 * nh * qk * es,
                                   kvi, kri, rows, m, nh, nope, rope, vd, cb->scale, err,
                                   errlen));
                 TRY(cu_causal_softmax(s, cb->dt, P, S, nh, rows, m, p0 + t0, err, errlen));
                 TRY(cu_att_values(bl, cb->dt, out + (size_t)t0 * nh * vd, P, kvi, rows, m, nh,
                                   nope, vd, err, errlen)));
        }
    }
    TRY(to_xt(cb, attn, (size_t)N * nh * vd, &xt, err, errlen));
    PROF("o_proj", gemm_bytes(cb, N, nh * vd, H),
         TRY(cu_gemm_xwt(bl, cb->dt, x, H, xt, nh * vd, D->o, nh * vd, N, nh * vd, H, 1.0f, err,
                         errlen)));
    return 0;
}

/* ---- feed-forward ---- */

/* x += down(silu(gate(xt)) * up(xt)) for n rows (gate/up in one matrix). */
static int mlp_add(cu_backend_t *cb, const char *name_gu, const char *name_down, const void *xt,
                   int n, int inter, const void *gu_w, const void *down_w, float *x, char *err,
                   size_t errlen)
{
    const int H = cb->m->cfg.hidden;
    TRY(cu_buf_ensure(&cb->b_gu, (size_t)n * 2 * inter * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_act, (size_t)n * inter * 4, err, errlen));
    float *gu = (float *)cb->b_gu.p;
    PROF(name_gu, gemm_bytes(cb, n, H, 2.0 * inter),
         TRY(cu_gemm_xwt(cb->blas, cb->dt, gu, 2 * inter, xt, H, gu_w, H, n, H, 2 * inter, 0.0f,
                         err, errlen)));
    TRY(cu_silu_mul(cb->stream, cb->dt, cb->b_act.p, gu, n, inter, err, errlen));
    PROF(name_down, gemm_bytes(cb, n, inter, H),
         TRY(cu_gemm_xwt(cb->blas, cb->dt, x, H, cb->b_act.p, inter, down_w, inter, n, inter, H,
                         1.0f, err, errlen)));
    return 0;
}

/* The routed experts of a step of at most moe_device_max pairs, all on the
 * device (no host wait, so graphs capture it): sort by expert (with the list
 * of experts that have rows), gather, grouped products (tensor cores from 2
 * rows per expert on average: weights read once per 32 rows; else the
 * CUDA-core kernel: once per 8 rows), SwiGLU, the same for down, combine. */
static int moe_device(cu_backend_t *cb, const step_plan_t *sp, int l, const void *xt, char *err,
                      size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    const cu_layer_t *D = &cb->layers[l];
    cudaStream_t s = cb->stream;
    const int N = sp->N, H = c->hidden, E = c->n_routed, K = c->top_k, I = c->moe_inter;
    const int NK = N * K;
    const size_t es = es_of(cb);
    float *x = (float *)cb->b_x.p, *xn = (float *)cb->b_xn.p;
    TRY(cu_buf_ensure(&cb->b_first, (size_t)CU_ROUTE_TABLE(E) * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_src, (size_t)NK * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_slot, (size_t)NK * 4, err, errlen));
    /* the tensor-core kernel reads up to CU_EXPERT_PAD_ROWS rows past the last */
    const size_t rows_in = (size_t)NK + CU_EXPERT_PAD_ROWS;
    TRY(cu_buf_ensure(&cb->b_xg, rows_in * H * es, err, errlen));
    TRY(cu_buf_ensure(&cb->b_gug, (size_t)NK * 2 * I * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_actg, rows_in * I * es, err, errlen));
    TRY(cu_buf_ensure(&cb->b_yg, (size_t)NK * H * 4, err, errlen));
    int32_t *first = (int32_t *)cb->b_first.p, *src = (int32_t *)cb->b_src.p;
    int32_t *slot = (int32_t *)cb->b_slot.p;
    PROF("moe_sort", (double)NK * 12,
         TRY(cu_moe_sort(s, (const int32_t *)cb->b_idx.p, NK, K, E, first, src, slot, err,
                         errlen)));
    if (c->n_shared > 0)
        TRY(mlp_add(cb, "shared_gate_up", "shared_down", xt, N, I * c->n_shared, D->sh_gu,
                    D->sh_down, x, err, errlen));
    TRY(cu_gather_rows(s, cb->dt, cb->b_xg.p, xn, src, NK, H, err, errlen));
    /* bytes: at most min(NK, E) experts' weights (exact count is on the device) */
    double used = NK < E ? NK : E;
    float *gug = (float *)cb->b_gug.p, *yg = (float *)cb->b_yg.p;
    /* tensor cores from 2 rows per expert on average (fewer: the CUDA-core
     * kernel reads the same bytes without an 8-row tile); slots = how many
     * experts can have rows (the kernels' work items) */
    const bool mma = cb->expert_mma && (NK >= 2 * E || cb->expert_mma_always);
    const int slots = NK < E ? NK : E;
    PROF("experts_gate_up", used * 2 * I * H * es + (double)NK * (H * es + 2 * I * 4),
         TRY(mma ? cu_expert_mma(s, gug, 2 * I, cb->b_xg.p, H, D->exp_gu, first, E, slots, H,
                                 2 * I, err, errlen)
                 : cu_expert_gemv(s, cb->dt, gug, 2 * I, cb->b_xg.p, H, D->exp_gu, first, E,
                                  slots, H, 2 * I, err, errlen)));
    TRY(cu_silu_mul(s, cb->dt, cb->b_actg.p, gug, NK, I, err, errlen));
    PROF("experts_down", used * H * I * es + (double)NK * (I * es + H * 4),
         TRY(mma ? cu_expert_mma(s, yg, H, cb->b_actg.p, I, D->exp_down, first, E, slots, I, H,
                                 err, errlen)
                 : cu_expert_gemv(s, cb->dt, yg, H, cb->b_actg.p, I, D->exp_down, first, E,
                                  slots, I, H, err, errlen)));
    PROF("moe_combine", (double)NK * H * 4 + (double)N * H * 8,
         TRY(cu_moe_combine(s, x, yg, slot, (const float *)cb->b_wt.p, N, K, H, err, errlen)));
    return 0;
}

static int layer_moe(cu_backend_t *cb, const step_plan_t *sp, int l, const void *xt, char *err,
                     size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    const cu_layer_t *D = &cb->layers[l];
    cudaStream_t s = cb->stream;
    const int N = sp->N, H = c->hidden, E = c->n_routed, K = c->top_k, I = c->moe_inter;
    const int NK = N * K;
    const size_t es = es_of(cb);
    float *x = (float *)cb->b_x.p, *xn = (float *)cb->b_xn.p;
    TRY(cu_buf_ensure(&cb->b_glog, (size_t)N * E * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_idx, (size_t)NK * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_wt, (size_t)NK * 4, err, errlen));
    float *glog = (float *)cb->b_glog.p, *wt = (float *)cb->b_wt.p;
    int32_t *idx = (int32_t *)cb->b_idx.p;
    /* the reference computes the router in float32: so do we, on xn itself */
    PROF("gate", (double)E * H * 4 + (double)N * (H + E) * 4,
         TRY(cu_gemm_xwt(cb->blas, CU_F32, glog, E, xn, H, D->gate, H, N, H, E, 0.0f, err,
                         errlen)));
    cu_route_cfg_t rc = {E,
                         K,
                         c->n_group,
                         c->topk_group,
                         c->scoring == ENG_SCORE_SOFTMAX,
                         (int)c->group_rank,
                         c->norm_topk,
                         c->routed_scale};
    PROF("route", (double)N * E * 4,
         TRY(cu_moe_route(s, &rc, glog, D->gate_bias, idx, wt, N, err, errlen)));
    if (NK <= cb->moe_device_max)
        return moe_device(cb, sp, l, xt, err, errlen);
    /* Expert counts come back to the host, which sorts the (token, k) pairs
     * by expert (stable: token order within an expert). */
    int32_t *h_idx = (int32_t *)cb->h_meta + (cb->h_meta_cap / 4 - 3 * (size_t)NK);
    int32_t *h_src = h_idx + NK, *h_slot = h_src + NK;
    CU_TRY(cudaMemcpyAsync(h_idx, idx, (size_t)NK * 4, cudaMemcpyDeviceToHost, s));
    CU_TRY(cudaStreamSynchronize(s));
    int *count = (int *)eng_xcalloc((size_t)E + 1, sizeof(int));
    int *first = (int *)eng_xcalloc((size_t)E + 1, sizeof(int));
    for (int a = 0; a < NK; a++) {
        int e = h_idx[a];
        if (e < 0 || e >= E) {
            free(count);
            free(first);
            snprintf(err, errlen, "MoE gate produced expert %d of %d (NaN in the gate logits?)",
                     e, E);
            return -1;
        }
        count[e]++;
    }
    for (int e = 0; e < E; e++)
        first[e + 1] = first[e] + count[e];
    memset(count, 0, (size_t)E * sizeof(int));
    for (int t = 0; t < N; t++)
        for (int k = 0; k < K; k++) {
            int e = h_idx[t * K + k], a = first[e] + count[e]++;
            h_src[a] = t;
            h_slot[t * K + k] = a;
        }
    TRY(cu_buf_ensure(&cb->b_src, (size_t)NK * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_slot, (size_t)NK * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_xg, (size_t)NK * H * es, err, errlen));
    TRY(cu_buf_ensure(&cb->b_gug, (size_t)NK * 2 * I * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_actg, (size_t)NK * I * es, err, errlen));
    TRY(cu_buf_ensure(&cb->b_yg, (size_t)NK * H * 4, err, errlen));
    int rc2 = 0;
    cudaError_t e1 = cudaMemcpyAsync(cb->b_src.p, h_src, (size_t)NK * 4, cudaMemcpyHostToDevice, s);
    cudaError_t e2 =
        cudaMemcpyAsync(cb->b_slot.p, h_slot, (size_t)NK * 4, cudaMemcpyHostToDevice, s);
    if (e1 != cudaSuccess || e2 != cudaSuccess) {
        snprintf(err, errlen, "CUDA error uploading expert rows: %s",
                 cudaGetErrorString(e1 != cudaSuccess ? e1 : e2));
        rc2 = -1;
    }
    /* shared experts see every row */
    if (!rc2 && c->n_shared > 0)
        rc2 = mlp_add(cb, "shared_gate_up", "shared_down", xt, N, I * c->n_shared, D->sh_gu,
                      D->sh_down, x, err, errlen);
    if (!rc2)
        rc2 = cu_gather_rows(s, cb->dt, cb->b_xg.p, xn, (const int32_t *)cb->b_src.p, NK, H, err,
                             errlen);
    float *gug = (float *)cb->b_gug.p, *yg = (float *)cb->b_yg.p;
    int used = 0;
    for (int e = 0; e < E; e++)
        used += count[e] > 0;
    if (!rc2 && cu_prof_begin(cb, "experts_gate_up", (double)used * 2 * I * H * es +
                                                         (double)NK * (H * es + 2 * I * 4),
                              err, errlen))
        rc2 = -1;
    for (int e = 0; e < E && !rc2; e++)
        if (count[e] > 0)
            rc2 = cu_gemm_xwt(cb->blas, cb->dt, gug + (size_t)first[e] * 2 * I, 2 * I,
                              (const char *)cb->b_xg.p + (size_t)first[e] * H * es, H,
                              (const char *)D->exp_gu + (size_t)e * 2 * I * H * es, H, count[e],
                              H, 2 * I, 0.0f, err, errlen);
    if (!rc2 && cu_prof_end(cb, err, errlen))
        rc2 = -1;
    if (!rc2)
        rc2 = cu_silu_mul(s, cb->dt, cb->b_actg.p, gug, NK, I, err, errlen);
    if (!rc2 && cu_prof_begin(cb, "experts_down", (double)used * H * I * es +
                                                      (double)NK * (I * es + H * 4),
                              err, errlen))
        rc2 = -1;
    for (int e = 0; e < E && !rc2; e++)
        if (count[e] > 0)
            rc2 = cu_gemm_xwt(cb->blas, cb->dt, yg + (size_t)first[e] * H, H,
                              (const char *)cb->b_actg.p + (size_t)first[e] * I * es, I,
                              (const char *)D->exp_down + (size_t)e * H * I * es, I, count[e], I,
                              H, 0.0f, err, errlen);
    if (!rc2 && cu_prof_end(cb, err, errlen))
        rc2 = -1;
    free(count);
    free(first);
    if (rc2)
        return -1;
    PROF("moe_combine", (double)NK * H * 4 + (double)N * H * 8,
         TRY(cu_moe_combine(s, x, yg, (const int32_t *)cb->b_slot.p, wt, N, K, H, err, errlen)));
    return 0;
}

/* ---- the step ---- */

/* Checks the items as eng_forward_batch does; nothing changes on failure. */
static int check_items(const cu_backend_t *cb, eng_batch_item_t *items, int n_items, char *err,
                       size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    if (n_items <= 0) {
        snprintf(err, errlen, "empty batch");
        return -1;
    }
    for (int i = 0; i < n_items; i++) {
        eng_seq_t *s = (eng_seq_t *)items[i].seq;
        if (s->m != cb->m || s->kc != cb->kc) {
            snprintf(err, errlen, "batch item %d belongs to another model or backend", i);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (items[j].seq == items[i].seq) {
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
    return 0;
}

/* Builds the step's metadata on the host (pinned) and queues one copy. The
 * pinned area's tail is left for layer_moe's expert lists. */
static int plan_step(cu_backend_t *cb, step_plan_t *sp, eng_batch_item_t *items, int n_items,
                     bool greedy, char *err, size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    int N = 0, TB = 0, A = 0, R = 0, ms = 0;
    for (int i = 0; i < n_items; i++) {
        eng_seq_t *s = (eng_seq_t *)items[i].seq;
        sp->off[i] = N;
        sp->p0[i] = s->len;
        sp->table_off[i] = TB;
        N += items[i].n;
        TB += s->n_blocks;
        if (!(items[i].flags & ENG_FWD_REFERENCE)) {
            A += items[i].n;
            int splits = (s->len + items[i].n + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
            ms = splits > ms ? splits : ms;
        }
        if (greedy)
            R += 1;
        else if (items[i].logits)
            R += (items[i].flags & ENG_FWD_ALL_LOGITS) ? items[i].n : 1;
    }
    sp->off[n_items] = N;
    sp->N = N;
    sp->n_items = n_items;
    sp->n_abs = A;
    /* the attention grid's splits, rounded up to CU_SPLIT_BUCKET: a graph
     * captured at one context serves the next 1,024 tokens (the extra
     * splits of a row leave at once) */
    sp->max_splits = ms > 0 ? (ms + CU_SPLIT_BUCKET - 1) / CU_SPLIT_BUCKET * CU_SPLIT_BUCKET : 0;
    sp->R = R;
    sp->TB = TB;
    size_t ints = (size_t)4 * N + 3 * (size_t)A + R + TB;
    size_t moe = 3 * (size_t)N * (c->top_k > 0 ? c->top_k : 1);
    TRY(cu_meta_ensure(cb, (ints + moe + 16) * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_meta, ints * 4 + 16, err, errlen));
    int32_t *h = (int32_t *)cb->h_meta, *d = (int32_t *)cb->b_meta.p;
    int32_t *h_tok = h, *h_pos = h + N, *h_dblk = h + 2 * N, *h_dslot = h + 3 * N;
    /* block tables last: every other array's offset depends on (N, A, R)
     * only, so a captured graph stays valid while sequences grow */
    int32_t *h_att = h + 4 * N, *h_lrows = h_att + 3 * A, *h_tab = h_lrows + R;
    int a = 0, r = 0;
    for (int i = 0; i < n_items; i++) {
        eng_seq_t *s = (eng_seq_t *)items[i].seq;
        memcpy(h_tab + sp->table_off[i], s->blocks, (size_t)s->n_blocks * sizeof(int32_t));
        for (int t = 0; t < items[i].n; t++) {
            int g = sp->off[i] + t, pos = sp->p0[i] + t;
            h_tok[g] = items[i].tokens[t];
            h_pos[g] = pos;
            h_dblk[g] = s->blocks[pos / ENG_KV_BLOCK];
            h_dslot[g] = pos % ENG_KV_BLOCK;
            if (!(items[i].flags & ENG_FWD_REFERENCE)) {
                h_att[3 * a] = g;
                h_att[3 * a + 1] = pos + 1;
                h_att[3 * a + 2] = sp->table_off[i];
                a++;
            }
        }
        bool want = greedy || items[i].logits;
        int first = greedy || !(items[i].flags & ENG_FWD_ALL_LOGITS) ? items[i].n - 1 : 0;
        for (int t = first; want && t < items[i].n; t++) {
            h_lrows[r] = sp->off[i] + t;
            sp->lrow_item[r++] = i;
        }
    }
    CU_TRY(cudaMemcpyAsync(d, h, ints * 4, cudaMemcpyHostToDevice, cb->stream));
    sp->d_tokens = d;
    sp->d_pos = d + N;
    sp->d_dblk = d + 2 * N;
    sp->d_dslot = d + 3 * N;
    sp->d_att = (cu_att_row_t *)(d + 4 * N);
    sp->d_lrows = d + 4 * N + 3 * A;
    sp->d_tables = d + 4 * N + 3 * A + R;
    return 0;
}

static int run_step(cu_backend_t *cb, step_plan_t *sp, eng_batch_item_t *items, int32_t *next,
                    char *err, size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    const int N = sp->N, H = c->hidden, V = c->vocab;
    cudaStream_t s = cb->stream;
    TRY(cu_buf_ensure(&cb->b_x, (size_t)N * H * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_xn, (size_t)N * H * 4, err, errlen));
    float *x = (float *)cb->b_x.p, *xn = (float *)cb->b_xn.p;
    PROF("embed", (double)N * H * (es_of(cb) + 4),
         TRY(cu_embed(s, cb->dt, x, cb->embed, sp->d_tokens, N, H, err, errlen)));
    for (int l = 0; l < c->n_layers; l++) {
        const cu_layer_t *D = &cb->layers[l];
        PROF("norm", (double)N * H * 8,
             TRY(cu_rmsnorm(s, xn, H, x, H, NULL, D->in_norm, N, H, c->rms_eps, err, errlen)));
        TRY(layer_attention(cb, sp, items, l, err, errlen));
        PROF("norm", (double)N * H * 8,
             TRY(cu_rmsnorm(s, xn, H, x, H, NULL, D->post_norm, N, H, c->rms_eps, err, errlen)));
        void *xt;
        TRY(to_xt(cb, xn, (size_t)N * H, &xt, err, errlen));
        if (D->moe)
            TRY(layer_moe(cb, sp, l, xt, err, errlen));
        else
            TRY(mlp_add(cb, "dense_gate_up", "dense_down", xt, N, c->inter, D->dense_gu,
                        D->dense_down, x, err, errlen));
    }
    if (sp->R == 0)
        return 0;
    const int R = sp->R;
    TRY(cu_buf_ensure(&cb->b_lnorm, (size_t)R * H * 4, err, errlen));
    TRY(cu_buf_ensure(&cb->b_logits, (size_t)R * V * 4, err, errlen));
    float *ln = (float *)cb->b_lnorm.p, *lg = (float *)cb->b_logits.p;
    PROF("norm", (double)R * H * 8,
         TRY(cu_rmsnorm(s, ln, H, x, H, sp->d_lrows, cb->final_norm, R, H, c->rms_eps, err,
                        errlen)));
    void *xt;
    TRY(to_xt(cb, ln, (size_t)R * H, &xt, err, errlen));
    PROF("lm_head", gemm_bytes(cb, R, H, V),
         TRY(cu_gemm_xwt(cb->blas, cb->dt, lg, V, xt, H, cb->lm_head, H, R, H, V, 0.0f, err,
                         errlen)));
    if (next) {
        TRY(cu_buf_ensure(&cb->b_amax, (size_t)R * 4, err, errlen));
        PROF("argmax", (double)R * V * 4,
             TRY(cu_argmax(s, (int32_t *)cb->b_amax.p, lg, R, V, err, errlen)));
    }
    return 0; /* the caller copies ids or logits back (outside any graph) */
}

/* Queues the copies of the step's logits rows to the items' host buffers. */
static int copy_logits(cu_backend_t *cb, const step_plan_t *sp, eng_batch_item_t *items,
                       char *err, size_t errlen)
{
    const int V = cb->m->cfg.vocab;
    const float *lg = (const float *)cb->b_logits.p;
    for (int r = 0; r < sp->R;) {
        int i = sp->lrow_item[r], cnt = 1;
        while (r + cnt < sp->R && sp->lrow_item[r + cnt] == i)
            cnt++;
        CU_TRY(cudaMemcpyAsync(items[i].logits, lg + (size_t)r * V, (size_t)cnt * V * 4,
                               cudaMemcpyDeviceToHost, cb->stream));
        r += cnt;
    }
    return 0;
}

/* The slot of the graph captured for key, or -1. */
static int graph_slot(const cu_backend_t *cb, const long long *key)
{
    for (int i = 0; i < CU_GRAPH_SLOTS; i++)
        if (cb->gexec[i] && !memcmp(key, cb->gkey[i], sizeof cb->gkey[i]))
            return i;
    return -1;
}

/* Drops the graph in slot i (its memory moved, or a replay failed). */
static void graph_drop(cu_backend_t *cb, int i)
{
    if (cb->gexec[i])
        cudaGraphExecDestroy(cb->gexec[i]);
    cb->gexec[i] = NULL;
}

/* Runs the planned step eagerly, or, for decode steps (one absorbed token
 * per item, routed experts on the device, no profiling; greedy or with
 * logits for the server's sampler) unless TG_CUDA_GRAPH=0, from a CUDA
 * graph. A graph is keyed by the step's shape: tokens, attention splits
 * (bucketed), logits rows, absorbed rows, greedy or not; not by the block
 * tables' length (they come last in the metadata), so sequences that grow
 * past a block keep their graph. The second step of a shape in a row is
 * captured, later ones replay it; CU_GRAPH_SLOTS shapes are kept, the least
 * recently used one is replaced. The metadata copy stays outside the graph
 * (same device addresses, new contents each step); a scratch buffer that
 * moved since a capture makes that graph stale (recaptured). A failed capture
 * runs the step eagerly and leaves graphs off; a failed replay drops that
 * graph and runs the step eagerly. */
static int run_planned(cu_backend_t *cb, step_plan_t *sp, eng_batch_item_t *items, int32_t *next,
                       char *err, size_t errlen)
{
    const eng_config_t *c = &cb->m->cfg;
    bool ok = cb->graphs && !cb->profile && cb->graph_failures == 0 &&
              (c->n_routed == 0 || sp->N * c->top_k <= cb->moe_device_max);
    for (int i = 0; ok && i < sp->n_items; i++)
        ok = items[i].n == 1 && !(items[i].flags & ENG_FWD_REFERENCE);
    if (!ok)
        return run_step(cb, sp, items, next, err, errlen);
    long long key[CU_GRAPH_KEY] = {sp->N, sp->max_splits, sp->R, sp->n_abs, next != NULL};
    int slot = graph_slot(cb, key);
    if (slot >= 0 && cb->graph_moves[slot] != cu_buf_moves) {
        graph_drop(cb, slot); /* a buffer it points into has moved */
        slot = -1;
    }
    if (slot >= 0) {
        cudaError_t e = cudaGraphLaunch(cb->gexec[slot], cb->stream);
        if (e == cudaSuccess) {
            cb->gused[slot] = ++cb->graph_clock;
            cb->graph_replays++;
            return 0;
        }
        fprintf(stderr, "tollgate-engine: CUDA graph replay failed (%s); that graph is dropped\n",
                cudaGetErrorString(e));
        cudaGetLastError();
        graph_drop(cb, slot);
        cb->graph_failures++;
        return run_step(cb, sp, items, next, err, errlen);
    }
    if (memcmp(key, cb->gcand, sizeof key) != 0) {
        /* first step of this shape in a row: eager, which also sizes every buffer */
        memcpy(cb->gcand, key, sizeof key);
        return run_step(cb, sp, items, next, err, errlen);
    }
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    long moves = cu_buf_moves;
    cudaError_t e = cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) { /* a device or driver that cannot capture: eager steps */
        cb->graph_failures++;
        fprintf(stderr, "tollgate-engine: CUDA graph capture unavailable (%s); decode steps run "
                        "without graphs\n",
                cudaGetErrorString(e));
        cudaGetLastError();
        return run_step(cb, sp, items, next, err, errlen);
    }
    int rc = run_step(cb, sp, items, next, err, errlen);
    e = cudaStreamEndCapture(cb->stream, &g);
    if (rc == 0 && e == cudaSuccess && moves == cu_buf_moves)
        e = cudaGraphInstantiate(&ex, g, 0);
    if (g)
        cudaGraphDestroy(g);
    if (rc != 0 || e != cudaSuccess || !ex || moves != cu_buf_moves) {
        cb->graph_failures++;
        fprintf(stderr, "tollgate-engine: CUDA graph capture failed (%s); decode steps run "
                        "without graphs\n",
                rc ? err : cudaGetErrorString(e != cudaSuccess ? e : cudaErrorUnknown));
        cudaGetLastError(); /* a capture error is not sticky: clear it */
        if (ex)
            cudaGraphExecDestroy(ex);
        return run_step(cb, sp, items, next, err, errlen);
    }
    slot = 0; /* an empty slot, else the least recently used */
    for (int i = 0; i < CU_GRAPH_SLOTS; i++) {
        if (!cb->gexec[i]) {
            slot = i;
            break;
        }
        if (cb->gused[i] < cb->gused[slot])
            slot = i;
    }
    graph_drop(cb, slot);
    cb->gexec[slot] = ex;
    memcpy(cb->gkey[slot], key, sizeof key);
    cb->graph_moves[slot] = moves;
    cb->gused[slot] = ++cb->graph_clock;
    cb->graph_captures++;
    CU_TRY(cudaGraphLaunch(ex, cb->stream));
    cb->graph_replays++;
    return 0;
}

/* The backend's step and step_greedy (next != NULL). On any failure the
 * sequences keep their length (blocks reserved for the step are given back);
 * rows written beyond a sequence's length are never read. */
int cu_step(eng_backend_t *be, eng_batch_item_t *items, int n_items, int32_t *next, char *err,
            size_t errlen)
{
    cu_backend_t *cb = (cu_backend_t *)be->impl; /* the impl starts with its cu_backend_t */
    TRY(check_items(cb, items, n_items, err, errlen));
    /* the current device is per thread: the server steps on its worker thread */
    CU_TRY(cudaSetDevice(cb->device));
    for (int i = 0; i < n_items; i++)
        if (eng_seq_reserve((eng_seq_t *)items[i].seq, items[i].n, err, errlen)) {
            while (--i >= 0)
                eng_seq_unreserve((eng_seq_t *)items[i].seq);
            return -1;
        }
    step_plan_t sp;
    memset(&sp, 0, sizeof sp);
    sp.off = (int *)eng_xcalloc((size_t)n_items + 1, sizeof(int));
    sp.p0 = (int *)eng_xcalloc((size_t)n_items, sizeof(int));
    sp.table_off = (int *)eng_xcalloc((size_t)n_items, sizeof(int));
    int total = 0;
    for (int i = 0; i < n_items; i++)
        total += items[i].n;
    sp.lrow_item = (int *)eng_xcalloc((size_t)total + 1, sizeof(int));
    int rc = plan_step(cb, &sp, items, n_items, next != NULL, err, errlen);
    if (!rc)
        rc = run_planned(cb, &sp, items, next, err, errlen);
    if (!rc && !next)
        rc = copy_logits(cb, &sp, items, err, errlen);
    if (!rc && next) {
        cudaError_t e = cudaMemcpyAsync(next, cb->b_amax.p, (size_t)sp.R * 4,
                                        cudaMemcpyDeviceToHost, cb->stream);
        if (e != cudaSuccess) {
            snprintf(err, errlen, "CUDA error copying the chosen tokens: %s",
                     cudaGetErrorString(e));
            rc = -1;
        }
    }
    if (!rc) {
        cudaError_t e = cudaStreamSynchronize(cb->stream);
        if (e != cudaSuccess) {
            snprintf(err, errlen, "CUDA error in the forward step: %s", cudaGetErrorString(e));
            rc = -1;
        }
    } else {
        cudaStreamSynchronize(cb->stream); /* nothing may still read our buffers */
    }
    if (!rc && cb->profile)
        rc = cu_prof_collect(cb, err, errlen);
    cb->n_marks = 0;
    for (int i = 0; i < n_items; i++) {
        eng_seq_t *s = (eng_seq_t *)items[i].seq;
        if (rc)
            eng_seq_unreserve(s);
        else
            eng_seq_commit(s, items[i].tokens, items[i].n);
    }
    free(sp.off);
    free(sp.p0);
    free(sp.table_off);
    free(sp.lrow_item);
    return rc;
}
