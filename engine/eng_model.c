/* eng_model: binds checkpoint tensors to the weight slots the config implies
 * (hub names, exact shapes), fills random models, and saves models. The single
 * enumeration eng_model_for_each_tensor keeps loading, random init and saving
 * in step. */
#include "eng_model.h"

#include "tg_log.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mlp_tensors(eng_tensor_fn fn, void *ctx, const char *prefix, int64_t hidden,
                       int64_t inter, eng_mlp_w_t *w, char *err, size_t errlen)
{
    char name[256];
    int64_t up_shape[2] = {inter, hidden}, down_shape[2] = {hidden, inter};
    snprintf(name, sizeof name, "%s.gate_proj.weight", prefix);
    if (fn(ctx, name, 2, up_shape, ENG_T_MATRIX, &w->gate, err, errlen))
        return -1;
    snprintf(name, sizeof name, "%s.up_proj.weight", prefix);
    if (fn(ctx, name, 2, up_shape, ENG_T_MATRIX, &w->up, err, errlen))
        return -1;
    snprintf(name, sizeof name, "%s.down_proj.weight", prefix);
    return fn(ctx, name, 2, down_shape, ENG_T_MATRIX, &w->down, err, errlen);
}

int eng_model_for_each_tensor(eng_model_t *m, eng_tensor_fn fn, void *ctx, char *err,
                              size_t errlen)
{
    const eng_config_t *c = &m->cfg;
    int64_t H = c->hidden, nh = c->n_heads, qk = c->qk_nope + c->qk_rope;
    char name[256], pre[128];
#define T1(NAME, D0, KIND, SLOT)                                                                   \
    do {                                                                                           \
        int64_t s_[1] = {(D0)};                                                                    \
        if (fn(ctx, NAME, 1, s_, KIND, SLOT, err, errlen))                                         \
            return -1;                                                                             \
    } while (0)
#define T2(NAME, D0, D1, KIND, SLOT)                                                               \
    do {                                                                                           \
        int64_t s_[2] = {(D0), (D1)};                                                              \
        if (fn(ctx, NAME, 2, s_, KIND, SLOT, err, errlen))                                         \
            return -1;                                                                             \
    } while (0)
#define NAMED(FMT) (snprintf(name, sizeof name, "%s." FMT, pre), name)
    T2("model.embed_tokens.weight", c->vocab, H, ENG_T_EMBED, &m->embed);
    for (int i = 0; i < c->n_layers; i++) {
        eng_layer_w_t *L = &m->layers[i];
        snprintf(pre, sizeof pre, "model.layers.%d", i);
        T1(NAMED("input_layernorm.weight"), H, ENG_T_NORM, &L->in_norm);
        if (c->q_lora_rank == 0) {
            T2(NAMED("self_attn.q_proj.weight"), nh * qk, H, ENG_T_MATRIX, &L->q_proj);
        } else {
            T2(NAMED("self_attn.q_a_proj.weight"), c->q_lora_rank, H, ENG_T_MATRIX, &L->q_a);
            T1(NAMED("self_attn.q_a_layernorm.weight"), c->q_lora_rank, ENG_T_NORM, &L->q_a_norm);
            T2(NAMED("self_attn.q_b_proj.weight"), nh * qk, c->q_lora_rank, ENG_T_MATRIX,
               &L->q_b);
        }
        T2(NAMED("self_attn.kv_a_proj_with_mqa.weight"), c->kv_lora_rank + c->qk_rope, H,
           ENG_T_MATRIX, &L->kv_a);
        T1(NAMED("self_attn.kv_a_layernorm.weight"), c->kv_lora_rank, ENG_T_NORM,
           &L->kv_a_norm);
        T2(NAMED("self_attn.kv_b_proj.weight"), nh * (c->qk_nope + c->v_head), c->kv_lora_rank,
           ENG_T_MATRIX, &L->kv_b);
        T2(NAMED("self_attn.o_proj.weight"), H, nh * c->v_head, ENG_T_MATRIX, &L->o);
        T1(NAMED("post_attention_layernorm.weight"), H, ENG_T_NORM, &L->post_norm);
        if (!L->moe) {
            snprintf(name, sizeof name, "%s.mlp", pre);
            if (mlp_tensors(fn, ctx, name, H, c->inter, &L->dense, err, errlen))
                return -1;
            continue;
        }
        T2(NAMED("mlp.gate.weight"), c->n_routed, H, ENG_T_MATRIX, &L->gate);
        if (c->score_bias)
            T1(NAMED("mlp.gate.e_score_correction_bias"), c->n_routed, ENG_T_BIAS,
               &L->gate_bias);
        for (int e = 0; e < c->n_routed; e++) {
            snprintf(name, sizeof name, "%s.mlp.experts.%d", pre, e);
            if (mlp_tensors(fn, ctx, name, H, c->moe_inter, &L->experts[e], err, errlen))
                return -1;
        }
        if (c->n_shared > 0) {
            snprintf(name, sizeof name, "%s.mlp.shared_experts", pre);
            if (mlp_tensors(fn, ctx, name, H, (int64_t)c->moe_inter * c->n_shared, &L->shared,
                            err, errlen))
                return -1;
        }
    }
    T1("model.norm.weight", H, ENG_T_NORM, &m->norm);
    T2("lm_head.weight", c->vocab, H, ENG_T_MATRIX, &m->lm_head);
#undef T1
#undef T2
#undef NAMED
    return 0;
}

/* Allocates the model shell (layers, experts) for cfg. */
static eng_model_t *model_alloc(const eng_config_t *cfg)
{
    eng_model_t *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->cfg = *cfg;
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->layers)
        abort();
    for (int i = 0; i < cfg->n_layers; i++) {
        m->layers[i].moe = eng_config_layer_is_moe(cfg, i);
        if (m->layers[i].moe) {
            m->layers[i].experts = calloc((size_t)cfg->n_routed, sizeof(eng_mlp_w_t));
            if (!m->layers[i].experts)
                abort();
        }
    }
    return m;
}

eng_model_t *eng_model_shell(const eng_config_t *cfg)
{
    return model_alloc(cfg);
}

/* Takes ownership of a buffer allocated for a weight. */
static float *model_own(eng_model_t *m, size_t n)
{
    float *p = malloc(n * sizeof(float) + 1);
    if (!p)
        abort();
    if (m->n_owned == m->cap_owned) {
        m->cap_owned = m->cap_owned ? m->cap_owned * 2 : 256;
        m->owned = realloc(m->owned, m->cap_owned * sizeof *m->owned);
        if (!m->owned)
            abort();
    }
    m->owned[m->n_owned++] = p;
    return p;
}

static size_t shape_numel(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    return n;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Binding callback: finds, checks and converts one checkpoint tensor. */
static int bind_tensor(void *ctx, const char *name, int ndim, const int64_t *shape,
                       eng_tkind_t kind, const float **slot, char *err, size_t errlen)
{
    (void)kind;
    eng_model_t *m = ctx;
    char want[96], got[96];
    shape_str(want, sizeof want, ndim, shape);
    eng_tensor_t *t = eng_tset_find(m->tset, name);
    if (!t) {
        snprintf(err, errlen, "missing tensor '%s' (expected shape %s)", name, want);
        return -1;
    }
    t->used = 1;
    if (t->dtype == ENG_DT_OTHER) {
        snprintf(err, errlen,
                 "tensor '%s' in %s has dtype %s; supported dtypes are F32, BF16 and F16", name,
                 t->file, t->dtype_name);
        return -1;
    }
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        shape_str(got, sizeof got, t->ndim, t->shape);
        snprintf(err, errlen, "tensor '%s' in %s has shape %s but the config implies %s", name,
                 t->file, got, want);
        return -1;
    }
    size_t n = shape_numel(ndim, shape);
    m->weight_bytes += n * sizeof(float);
    if (t->dtype == ENG_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *slot = t->data; /* zero copy */
        return 0;
    }
    float *buf = model_own(m, n);
    eng_dtype_to_f32(t->dtype, t->data, buf, n);
    *slot = buf;
    return 0;
}

/* Whether an unbound tensor belongs to a multi-token-prediction layer
 * (model.layers.N with n_layers <= N < n_layers + n_nextn), which the engine
 * does not run. */
static bool is_mtp_tensor(const eng_config_t *c, const char *name)
{
    int layer;
    if (c->n_nextn <= 0 || sscanf(name, "model.layers.%d.", &layer) != 1)
        return false;
    return layer >= c->n_layers && layer < c->n_layers + c->n_nextn;
}

eng_model_t *eng_model_load_cfg(const eng_config_t *cfg, const char *dir, char *err,
                                size_t errlen)
{
    eng_model_t *m = model_alloc(cfg);
    if (eng_tset_open_dir(dir, &m->tset, err, errlen))
        goto fail;
    if (eng_model_for_each_tensor(m, bind_tensor, m, err, errlen))
        goto fail;
    size_t ignored = 0;
    for (size_t i = 0; i < eng_tset_count(m->tset); i++) {
        eng_tensor_t *t = eng_tset_at(m->tset, i);
        if (t->used)
            continue;
        if (is_mtp_tensor(cfg, t->name)) {
            ignored++;
            continue;
        }
        snprintf(err, errlen,
                 "unexpected tensor '%s' in %s: not part of a deepseek_v%d model with this "
                 "config.json",
                 t->name, t->file, (int)cfg->arch);
        goto fail;
    }
    if (ignored)
        tg_info("engine: ignoring %zu multi-token-prediction tensors", ignored);
    return m;
fail:
    eng_model_free(m);
    return NULL;
}

eng_model_t *eng_model_load(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    eng_config_t cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (eng_config_load(path, &cfg, err, errlen))
        return NULL;
    return eng_model_load_cfg(&cfg, dir, err, errlen);
}

static int count_tensor(void *ctx, const char *name, int ndim, const int64_t *shape,
                        eng_tkind_t kind, const float **slot, char *err, size_t errlen)
{
    (void)name, (void)kind, (void)slot, (void)err, (void)errlen;
    *(size_t *)ctx += shape_numel(ndim, shape) * sizeof(float);
    return 0;
}

size_t eng_model_bytes_for(const eng_config_t *cfg)
{
    eng_model_t *m = model_alloc(cfg);
    size_t bytes = 0;
    char err[16];
    eng_model_for_each_tensor(m, count_tensor, &bytes, err, sizeof err);
    eng_model_free(m);
    return bytes;
}

/* splitmix64: a small, fast, seedable generator. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_unit(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

typedef struct {
    eng_model_t *m;
    uint64_t state;
} random_ctx_t;

static int random_tensor(void *ctx, const char *name, int ndim, const int64_t *shape,
                         eng_tkind_t kind, const float **slot, char *err, size_t errlen)
{
    (void)name, (void)err, (void)errlen;
    random_ctx_t *rc = ctx;
    size_t n = shape_numel(ndim, shape);
    float *buf = model_own(rc->m, n);
    rc->m->weight_bytes += n * sizeof(float);
    float amp = (float)(rc->m->cfg.init_range * sqrt(3.0)); /* uniform with that std */
    for (size_t i = 0; i < n; i++) {
        float u = rng_unit(&rc->state);
        switch (kind) {
        case ENG_T_NORM:
            buf[i] = 1.0f + 0.1f * u;
            break;
        case ENG_T_BIAS:
            buf[i] = 0.1f * u;
            break;
        default:
            buf[i] = amp * u;
        }
    }
    *slot = buf;
    return 0;
}

eng_model_t *eng_model_random(const eng_config_t *cfg, uint64_t seed)
{
    eng_model_t *m = model_alloc(cfg);
    random_ctx_t rc = {m, seed * 0x2545f4914f6cdd1dull + 1};
    char err[64];
    if (eng_model_for_each_tensor(m, random_tensor, &rc, err, sizeof err))
        abort(); /* random_tensor cannot fail */
    return m;
}

typedef struct {
    eng_st_item_t *items;
    size_t n, cap;
} collect_ctx_t;

static int collect_tensor(void *ctx, const char *name, int ndim, const int64_t *shape,
                          eng_tkind_t kind, const float **slot, char *err, size_t errlen)
{
    (void)kind, (void)err, (void)errlen;
    collect_ctx_t *cc = ctx;
    if (cc->n == cc->cap) {
        cc->cap = cc->cap ? cc->cap * 2 : 256;
        cc->items = realloc(cc->items, cc->cap * sizeof *cc->items);
        if (!cc->items)
            abort();
    }
    eng_st_item_t *it = &cc->items[cc->n++];
    memset(it, 0, sizeof *it);
    it->name = strdup(name);
    if (!it->name)
        abort();
    it->ndim = ndim;
    memcpy(it->shape, shape, (size_t)ndim * sizeof *shape);
    it->data = *slot;
    return 0;
}

int eng_model_save(eng_model_t *m, const char *dir, eng_dtype_t dtype, int n_shards, char *err,
                   size_t errlen)
{
    collect_ctx_t cc = {0};
    int rc = eng_model_for_each_tensor(m, collect_tensor, &cc, err, errlen);
    if (rc == 0)
        rc = eng_st_write(dir, cc.items, cc.n, dtype, n_shards, err, errlen);
    for (size_t i = 0; i < cc.n; i++)
        free((char *)cc.items[i].name);
    free(cc.items);
    return rc;
}

size_t eng_model_active_bytes(const eng_model_t *m)
{
    const eng_config_t *c = &m->cfg;
    size_t H = (size_t)c->hidden, nh = (size_t)c->n_heads, qk = (size_t)(c->qk_nope + c->qk_rope);
    size_t attn = c->q_lora_rank ? (size_t)c->q_lora_rank * (H + 1 + nh * qk) : nh * qk * H;
    attn += (size_t)(c->kv_lora_rank + c->qk_rope) * H + (size_t)c->kv_lora_rank +
            nh * (size_t)(c->qk_nope + c->v_head) * (size_t)c->kv_lora_rank +
            H * nh * (size_t)c->v_head + 2 * H;
    size_t total = H /* embedding row */ + H + (size_t)c->vocab * H;
    for (int i = 0; i < c->n_layers; i++) {
        total += attn;
        if (!m->layers[i].moe) {
            total += 3 * H * (size_t)c->inter;
            continue;
        }
        total += (size_t)c->n_routed * H + (c->score_bias ? (size_t)c->n_routed : 0);
        total += (size_t)c->top_k * 3 * H * (size_t)c->moe_inter;
        total += (size_t)c->n_shared * 3 * H * (size_t)c->moe_inter;
    }
    return total * sizeof(float);
}

void eng_model_free(eng_model_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    if (m->layers)
        for (int i = 0; i < m->cfg.n_layers; i++)
            free(m->layers[i].experts);
    free(m->layers);
    eng_tset_free(m->tset);
    free(m);
}
