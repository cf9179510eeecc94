/* eng_cuda_backend: the CUDA backend's life cycle and sequence table. Create
 * checks the device and the shapes, uploads every weight (converted to
 * bfloat16 on the device, or kept float32), then gives KV blocks what memory
 * is left (planned once, reported in eng_cuda_info_t). Sequences reuse the
 * CPU engine's block bookkeeping (eng_seq / eng_kvcache in metadata-only
 * mode: refcounts, chained hashes, LRU); the rows live in device memory.
 * Also: growable scratch buffers, the per-kernel profiler and the bench
 * helpers of eng_cuda.h. The forward step is in eng_cuda_forward.cu. */
#include "eng_cuda_priv.cuh"

extern "C" {
#include "eng_cuda.h"
#include "eng_ops.h"
}

#include <stdlib.h>
#include <string.h>

/* Memory kept free for scratch (activations, logits, cuBLAS workspace) when
 * the KV pool is sized from what is left. */
#define CU_SCRATCH_RESERVE ((size_t)3 << 30)
/* Steps with at most this many (token, expert) pairs run the routed experts
 * on the device without a host wait (decode; with the tensor-core kernel up
 * to 32 pairs per expert, see create); larger ones (prefill) sort on the host
 * and use one cuBLAS GEMM pair per expert. */
#define CU_MOE_DEVICE_MAX 1024
/* float32 scores of one prefill attention chunk at most (256 MB) */
#define CU_PREFILL_SCORES (64L << 20)
/* Upload staging: float32 values per chunk. */
#define CU_STAGE_FLOATS ((size_t)32 << 20)

int cu_step(eng_backend_t *be, eng_batch_item_t *items, int n_items, int32_t *next, char *err,
            size_t errlen);

/* ---- scratch and staging ---- */

long cu_buf_moves;

int cu_buf_ensure(cu_buf_t *b, size_t bytes, char *err, size_t errlen)
{
    if (bytes <= b->cap)
        return 0;
    if (b->p) {
        /* kernels queued earlier in this step may still read the old buffer */
        CU_TRY(cudaDeviceSynchronize());
        CU_TRY(cudaFree(b->p));
    }
    b->p = NULL;
    b->cap = 0;
    size_t want = bytes + bytes / 4; /* some headroom against regrowing every step */
    cu_buf_moves++; /* any captured graph now points at freed memory */
    CU_TRY(cudaMalloc(&b->p, want));
    /* zeroed: padding rows that kernels read past the end are finite */
    CU_TRY(cudaMemset(b->p, 0, want));
    b->cap = want;
    return 0;
}

void cu_buf_free(cu_buf_t *b)
{
    if (b->p)
        cudaFree(b->p);
    b->p = NULL;
    b->cap = 0;
}

int cu_meta_ensure(cu_backend_t *cb, size_t bytes, char *err, size_t errlen)
{
    if (bytes <= cb->h_meta_cap)
        return 0;
    if (cb->h_meta) {
        /* the previous contents may still feed an async copy */
        CU_TRY(cudaStreamSynchronize(cb->stream));
        CU_TRY(cudaFreeHost(cb->h_meta));
    }
    cb->h_meta = NULL;
    cb->h_meta_cap = 0;
    size_t want = bytes * 2 > 65536 ? bytes * 2 : 65536;
    CU_TRY(cudaMallocHost(&cb->h_meta, want));
    cb->h_meta_cap = want;
    return 0;
}

/* ---- profiler ---- */

int cu_prof_begin(cu_backend_t *cb, const char *name, double bytes, char *err, size_t errlen)
{
    if (!cb->profile)
        return 0;
    int e = 0;
    while (e < cb->n_prof && strcmp(cb->prof[e].name, name) != 0)
        e++;
    if (e == cb->n_prof && cb->n_prof == CU_PROF_MAX)
        e = CU_PROF_MAX - 1; /* table full (never with today's ~25 names): lumped */
    else if (e == cb->n_prof) {
        cu_prof_entry_t *p = &cb->prof[cb->n_prof++];
        p->name = name;
        p->ms = p->bytes = 0;
        p->calls = 0;
    }
    if (cb->n_marks == cb->cap_marks) {
        int cap = cb->cap_marks ? cb->cap_marks * 2 : 256;
        cu_prof_mark_t *m = (cu_prof_mark_t *)realloc(cb->marks, (size_t)cap * sizeof *m);
        if (!m)
            abort();
        for (int i = cb->cap_marks; i < cap; i++) {
            CU_TRY(cudaEventCreate(&m[i].e0));
            CU_TRY(cudaEventCreate(&m[i].e1));
        }
        cb->marks = m;
        cb->cap_marks = cap;
    }
    cu_prof_mark_t *mk = &cb->marks[cb->n_marks];
    mk->entry = e;
    mk->bytes = bytes;
    CU_TRY(cudaEventRecord(mk->e0, cb->stream));
    return 0;
}

int cu_prof_end(cu_backend_t *cb, char *err, size_t errlen)
{
    if (!cb->profile || cb->n_marks == cb->cap_marks)
        return 0;
    CU_TRY(cudaEventRecord(cb->marks[cb->n_marks].e1, cb->stream));
    cb->n_marks++;
    return 0;
}

int cu_prof_collect(cu_backend_t *cb, char *err, size_t errlen)
{
    for (int i = 0; i < cb->n_marks; i++) {
        float ms = 0;
        CU_TRY(cudaEventElapsedTime(&ms, cb->marks[i].e0, cb->marks[i].e1));
        cu_prof_entry_t *p = &cb->prof[cb->marks[i].entry];
        p->ms += ms;
        p->bytes += cb->marks[i].bytes;
        p->calls++;
    }
    cb->n_marks = 0;
    return 0;
}

/* ---- weights ---- */


typedef struct {
    cu_backend_t *cb;
    uint64_t fills; /* tensors filled on the device so far (their seeds) */
    float *stage; /* device float32 staging (bf16 mode) */
    void **allocs;
    int n_allocs, cap_allocs;
} uploader_t;

static int dev_alloc(uploader_t *u, void **p, size_t bytes, char *err, size_t errlen)
{
    *p = NULL;
    if (u->n_allocs == u->cap_allocs) {
        u->cap_allocs = u->cap_allocs ? 2 * u->cap_allocs : 256;
        u->allocs = (void **)realloc(u->allocs, (size_t)u->cap_allocs * sizeof(void *));
        if (!u->allocs)
            abort();
    }
    CU_TRY(cudaMalloc(p, bytes ? bytes : 1));
    u->allocs[u->n_allocs++] = *p;
    u->cb->weight_bytes += bytes;
    return 0;
}

/* Copies n float32 values to dst + elem_off (elements of type dt); with src
 * NULL (a shell model) fills them with random values of that kind. */
static int upload_into(uploader_t *u, cu_dtype_t dt, void *dst, size_t elem_off, const float *src,
                       size_t n, int kind, char *err, size_t errlen)
{
    char *d = (char *)dst + elem_off * cu_dtype_size(dt);
    if (!src) {
        float amp = (float)(u->cb->m->cfg.init_range * 1.7320508075688772);
        TRY(cu_fill_weights(u->cb->stream, dt, d, n, kind, amp, u->fills++, err, errlen));
        CU_TRY(cudaStreamSynchronize(u->cb->stream));
        return 0;
    }
    if (dt == CU_F32) {
        CU_TRY(cudaMemcpy(d, src, n * sizeof(float), cudaMemcpyHostToDevice));
        return 0;
    }
    for (size_t off = 0; off < n; off += CU_STAGE_FLOATS) {
        size_t c = n - off < CU_STAGE_FLOATS ? n - off : CU_STAGE_FLOATS;
        CU_TRY(cudaMemcpy(u->stage, src + off, c * sizeof(float), cudaMemcpyHostToDevice));
        TRY(cu_convert_f32(u->cb->stream, dt, d + off * 2, u->stage, c, err, errlen));
        CU_TRY(cudaStreamSynchronize(u->cb->stream)); /* the stage is reused next */
    }
    return 0;
}

static int upload(uploader_t *u, cu_dtype_t dt, void **dst, const float *src, size_t n, int kind,
                  char *err, size_t errlen)
{
    TRY(dev_alloc(u, dst, n * cu_dtype_size(dt), err, errlen));
    return upload_into(u, dt, *dst, 0, src, n, kind, err, errlen);
}

/* A SwiGLU MLP as two device matrices: gate rows then up rows, and down. */
static int upload_mlp(uploader_t *u, const eng_mlp_w_t *w, size_t H, size_t I, void *gu,
                      size_t gu_off, void *down, size_t down_off, char *err, size_t errlen)
{
    cu_dtype_t dt = u->cb->dt;
    TRY(upload_into(u, dt, gu, gu_off, w->gate, I * H, W_MATRIX, err, errlen));
    TRY(upload_into(u, dt, gu, gu_off + I * H, w->up, I * H, W_MATRIX, err, errlen));
    return upload_into(u, dt, down, down_off, w->down, H * I, W_MATRIX, err, errlen);
}

static int upload_model(cu_backend_t *cb, uploader_t *u, char *err, size_t errlen)
{
    const eng_model_t *m = cb->m;
    const eng_config_t *c = &m->cfg;
    cu_dtype_t dt = cb->dt;
    size_t H = (size_t)c->hidden, nh = (size_t)c->n_heads, qk = (size_t)(c->qk_nope + c->qk_rope);
    size_t kvl = (size_t)c->kv_lora_rank, row = kvl + (size_t)c->qk_rope;
    size_t kvw = (size_t)(c->qk_nope + c->v_head), E = (size_t)c->n_routed;
    size_t I = (size_t)c->moe_inter;
    bool shell = m->embed == NULL; /* eng_model_shell: weights drawn on the device */
    if (dt != CU_F32 && !shell)
        TRY(dev_alloc(u, (void **)&u->stage, CU_STAGE_FLOATS * sizeof(float), err, errlen));
    TRY(upload(u, dt, &cb->embed, m->embed, (size_t)c->vocab * H, W_MATRIX, err, errlen));
    TRY(upload(u, dt, &cb->lm_head, m->lm_head, (size_t)c->vocab * H, W_MATRIX, err, errlen));
    TRY(upload(u, CU_F32, (void **)&cb->final_norm, m->norm, H, W_NORM, err, errlen));
    for (int l = 0; l < c->n_layers; l++) {
        const eng_layer_w_t *L = &m->layers[l];
        cu_layer_t *D = &cb->layers[l];
        TRY(upload(u, CU_F32, (void **)&D->in_norm, L->in_norm, H, W_NORM, err, errlen));
        TRY(upload(u, CU_F32, (void **)&D->post_norm, L->post_norm, H, W_NORM, err, errlen));
        if (c->q_lora_rank == 0) {
            TRY(upload(u, dt, &D->q_proj, L->q_proj, nh * qk * H, W_MATRIX, err, errlen));
        } else {
            size_t r = (size_t)c->q_lora_rank;
            TRY(upload(u, dt, &D->q_a, L->q_a, r * H, W_MATRIX, err, errlen));
            TRY(upload(u, CU_F32, (void **)&D->q_a_norm, L->q_a_norm, r, W_NORM, err, errlen));
            TRY(upload(u, dt, &D->q_b, L->q_b, nh * qk * r, W_MATRIX, err, errlen));
        }
        TRY(upload(u, dt, &D->kv_a, L->kv_a, row * H, W_MATRIX, err, errlen));
        TRY(upload(u, CU_F32, (void **)&D->kv_a_norm, L->kv_a_norm, kvl, W_NORM, err, errlen));
        TRY(upload(u, dt, &D->kv_b, L->kv_b, nh * kvw * kvl, W_MATRIX, err, errlen));
        TRY(upload(u, dt, &D->o, L->o, H * nh * (size_t)c->v_head, W_MATRIX, err, errlen));
        D->moe = L->moe;
        size_t es = cu_dtype_size(dt);
        if (!L->moe) {
            size_t DI = (size_t)c->inter;
            TRY(dev_alloc(u, &D->dense_gu, 2 * DI * H * es, err, errlen));
            TRY(dev_alloc(u, &D->dense_down, H * DI * es, err, errlen));
            TRY(upload_mlp(u, &L->dense, H, DI, D->dense_gu, 0, D->dense_down, 0, err, errlen));
            continue;
        }
        TRY(upload(u, CU_F32, (void **)&D->gate, L->gate, E * H, W_MATRIX, err, errlen));
        if (L->gate_bias || (shell && c->score_bias))
            TRY(upload(u, CU_F32, (void **)&D->gate_bias, L->gate_bias, E, W_BIAS, err, errlen));
        TRY(dev_alloc(u, &D->exp_gu, E * 2 * I * H * es, err, errlen));
        TRY(dev_alloc(u, &D->exp_down, E * H * I * es, err, errlen));
        for (size_t e = 0; e < E; e++)
            TRY(upload_mlp(u, &L->experts[e], H, I, D->exp_gu, e * 2 * I * H, D->exp_down,
                           e * H * I, err, errlen));
        if (c->n_shared > 0) {
            size_t SI = I * (size_t)c->n_shared;
            TRY(dev_alloc(u, &D->sh_gu, 2 * SI * H * es, err, errlen));
            TRY(dev_alloc(u, &D->sh_down, H * SI * es, err, errlen));
            TRY(upload_mlp(u, &L->shared, H, SI, D->sh_gu, 0, D->sh_down, 0, err, errlen));
        }
    }
    float *inv = (float *)eng_xcalloc((size_t)c->qk_rope / 2, sizeof(float));
    eng_rope_inv_freq(c, inv);
    int rc =
        upload(u, CU_F32, (void **)&cb->inv_freq, inv, (size_t)c->qk_rope / 2, W_NORM, err, errlen);
    free(inv);
    if (rc)
        return -1;
    if (u->stage) {
        /* the stage was counted as weights; give it back now */
        for (int i = 0; i < u->n_allocs; i++)
            if (u->allocs[i] == u->stage)
                u->allocs[i] = NULL;
        CU_TRY(cudaFree(u->stage));
        cb->weight_bytes -= CU_STAGE_FLOATS * sizeof(float);
        u->stage = NULL;
    }
    return 0;
}

/* ---- the table ---- */

typedef struct {
    cu_backend_t cb;
    uploader_t up;
} cu_impl_t;

static cu_backend_t *CB(eng_backend_t *be)
{
    return &((cu_impl_t *)be->impl)->cb;
}

static int cu_seq_create(eng_backend_t *be, int max_tokens, eng_bseq_t **out, char *err,
                         size_t errlen)
{
    if (max_tokens <= 0) {
        snprintf(err, errlen, "sequence length must be positive");
        return -1;
    }
    *out = (eng_bseq_t *)eng_seq_create_in(be->model, NULL, CB(be)->kc, max_tokens);
    return 0;
}

static void cu_seq_free(eng_backend_t *be, eng_bseq_t *seq)
{
    (void)be;
    eng_seq_free((eng_seq_t *)seq);
}

static int cu_seq_len(eng_backend_t *be, const eng_bseq_t *seq)
{
    (void)be;
    return eng_seq_len((const eng_seq_t *)seq);
}

static int cu_seq_attach_prefix(eng_backend_t *be, eng_bseq_t *seq, const int32_t *tokens, int n)
{
    (void)be;
    return eng_seq_attach_prefix((eng_seq_t *)seq, tokens, n);
}

/* eng_seq_truncate with the shared partial block copied on the device. */
static int cu_seq_truncate(eng_backend_t *be, eng_bseq_t *seq, int n, char *err, size_t errlen)
{
    cu_backend_t *cb = CB(be);
    eng_seq_t *s = (eng_seq_t *)seq;
    if (n < 0 || n >= s->len)
        return 0;
    int keep = (n + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    if (n % ENG_KV_BLOCK != 0) {
        CU_TRY(cudaSetDevice(cb->device)); /* the server's worker thread calls this */
        int bi = keep - 1, old = s->blocks[bi];
        int fresh = eng_kvcache_alloc(s->kc);
        if (fresh < 0) {
            snprintf(err, errlen, "KV cache full: no block free to copy a shared block into");
            return -1;
        }
        size_t es = cu_dtype_size(cb->dt), row = (size_t)s->row;
        size_t blk = (size_t)cb->m->cfg.n_layers * ENG_KV_BLOCK * row * es;
        for (int l = 0; l < cb->m->cfg.n_layers; l++) {
            size_t lo = (size_t)l * ENG_KV_BLOCK * row * es;
            cudaError_t e = cudaMemcpyAsync((char *)cb->kv + (size_t)fresh * blk + lo,
                                            (char *)cb->kv + (size_t)old * blk + lo,
                                            (size_t)(n % ENG_KV_BLOCK) * row * es,
                                            cudaMemcpyDeviceToDevice, cb->stream);
            if (e == cudaSuccess)
                e = cudaStreamSynchronize(cb->stream);
            if (e != cudaSuccess) {
                eng_kvcache_release(s->kc, fresh);
                snprintf(err, errlen, "CUDA error copying a KV block: %s", cudaGetErrorString(e));
                return -1;
            }
        }
        eng_kvcache_release(s->kc, old);
        s->blocks[bi] = fresh;
    }
    for (int i = keep; i < s->n_blocks; i++)
        eng_kvcache_release(s->kc, s->blocks[i]);
    s->n_blocks = keep;
    s->len = n;
    return 0;
}

static int cu_step_logits(eng_backend_t *be, eng_batch_item_t *items, int n_items, char *err,
                          size_t errlen)
{
    return cu_step(be, items, n_items, NULL, err, errlen);
}

static int cu_step_greedy(eng_backend_t *be, eng_batch_item_t *items, int n_items, int32_t *next,
                          char *err, size_t errlen)
{
    return cu_step(be, items, n_items, next, err, errlen);
}

static void cu_cache_stats(eng_backend_t *be, eng_kvcache_stats_t *out)
{
    eng_kvcache_stats(CB(be)->kc, out);
}

static void cu_destroy(eng_backend_t *be)
{
    if (!be)
        return;
    cu_impl_t *ci = (cu_impl_t *)be->impl;
    cu_backend_t *cb = &ci->cb;
    cudaDeviceSynchronize();
    for (int i = 0; i < ci->up.n_allocs; i++)
        if (ci->up.allocs[i])
            cudaFree(ci->up.allocs[i]);
    free(ci->up.allocs);
    cu_buf_t *bufs[] = {&cb->b_x,    &cb->b_xn,    &cb->b_xt,    &cb->b_q,      &cb->b_qa,
                        &cb->b_rows, &cb->b_attn,  &cb->b_gu,    &cb->b_act,    &cb->b_glog,
                        &cb->b_idx,  &cb->b_wt,    &cb->b_xg,    &cb->b_gug,    &cb->b_actg,
                        &cb->b_yg,   &cb->b_slot,  &cb->b_src,   &cb->b_qlat,   &cb->b_olat,
                        &cb->b_po,   &cb->b_pml,   &cb->b_lat,   &cb->b_krot,   &cb->b_kvb,
                        &cb->b_lrows, &cb->b_lnorm, &cb->b_logits, &cb->b_amax, &cb->b_meta,
                        &cb->b_first, &cb->b_scores, &cb->b_p16, &cb->b_q16,
                        &cb->b_kvb16, &cb->b_krot16, &cb->b_qlat16};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        cu_buf_free(bufs[i]);
    if (cb->kv)
        cudaFree(cb->kv);
    for (int i = 0; i < CU_GRAPH_SLOTS; i++)
        if (cb->gexec[i])
            cudaGraphExecDestroy(cb->gexec[i]);
    if (cb->h_meta)
        cudaFreeHost(cb->h_meta);
    for (int i = 0; i < cb->cap_marks; i++) {
        cudaEventDestroy(cb->marks[i].e0);
        cudaEventDestroy(cb->marks[i].e1);
    }
    free(cb->marks);
    if (cb->blas)
        cublasDestroy(cb->blas);
    if (cb->blas_ws)
        cudaFree(cb->blas_ws); /* after the handle that uses it */
    if (cb->stream)
        cudaStreamDestroy(cb->stream);
    if (cb->kc)
        eng_kvcache_free(cb->kc);
    free(cb->layers);
    free(ci);
    free(be);
}

static const eng_backend_ops_t CUDA_OPS = {
    "cuda",
    cu_seq_create,
    cu_seq_free,
    cu_seq_len,
    cu_seq_attach_prefix,
    cu_seq_truncate,
    cu_step_logits,
    cu_step_greedy,
    cu_cache_stats,
    cu_destroy,
};

extern "C" bool eng_backend_cuda_built(void)
{
    return true;
}

extern "C" int eng_cuda_device_ok(char *err, size_t errlen)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "no usable CUDA device: %s", cudaGetErrorString(e));
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "no CUDA device present");
        return -1;
    }
    return 0;
}

/* Shapes the kernels are written for; the error names the field. */
static int check_shapes(const eng_config_t *c, char *err, size_t errlen)
{
    int row = c->kv_lora_rank + c->qk_rope;
    if (row > CU_MAX_ROW) {
        snprintf(err, errlen, "kv_lora_rank + qk_rope_head_dim = %d: the CUDA backend handles at "
                 "most %d", row, CU_MAX_ROW);
        return -1;
    }
    if (c->n_routed > CU_MAX_EXPERTS || c->top_k > CU_MAX_TOPK) {
        snprintf(err, errlen, "n_routed_experts %d / num_experts_per_tok %d: the CUDA backend "
                 "handles at most %d / %d", c->n_routed, c->top_k, CU_MAX_EXPERTS, CU_MAX_TOPK);
        return -1;
    }
    if (c->qk_rope % 2 != 0) {
        snprintf(err, errlen, "qk_rope_head_dim %d must be even", c->qk_rope);
        return -1;
    }
    return 0;
}

/* Everything after the impl exists; on failure the caller destroys. */
static int cuda_setup(eng_backend_t *be, const eng_cuda_opts_t *o, char *err, size_t errlen)
{
    cu_impl_t *ci = (cu_impl_t *)be->impl;
    cu_backend_t *cb = &ci->cb;
    const eng_config_t *c = &be->model->cfg;
    cudaDeviceProp prop;
    CU_TRY(cudaSetDevice(o->device));
    CU_TRY(cudaGetDeviceProperties(&prop, o->device));
    snprintf(cb->info.device, sizeof cb->info.device, "%.120s", prop.name);
    cb->info.sm_count = prop.multiProcessorCount;
    if (prop.major < 8) {
        snprintf(err, errlen, "CUDA device %d (%.120s) has compute capability %d.%d; bfloat16 needs 8.0 "
                 "or later (this build targets 9.0)", o->device, prop.name, prop.major, prop.minor);
        return -1;
    }
    CU_TRY(cudaStreamCreate(&cb->stream));
    CUBLAS_TRY(cublasCreate(&cb->blas));
    CUBLAS_TRY(cublasSetStream(cb->blas, cb->stream));
    /* CUBLAS_COMPUTE_32F in the default math mode: no TF32 (that needs
     * CUBLAS_TF32_TENSOR_OP_MATH or COMPUTE_32F_FAST_TF32) */
    CUBLAS_TRY(cublasSetMathMode(cb->blas, CUBLAS_DEFAULT_MATH));
    /* a fixed workspace (32 MiB, NVIDIA's advice for Hopper): no allocation
     * inside cuBLAS, which CUDA graph capture requires */
    CU_TRY(cudaMalloc(&cb->blas_ws, (size_t)32 << 20));
    CUBLAS_TRY(cublasSetWorkspace(cb->blas, cb->blas_ws, (size_t)32 << 20));
    TRY(cu_att_setup(err, errlen));
    ci->up.cb = cb;
    TRY(upload_model(cb, &ci->up, err, errlen));
    cb->info.weight_bytes = cb->weight_bytes;
    size_t row = (size_t)(c->kv_lora_rank + c->qk_rope), es = cu_dtype_size(cb->dt);
    size_t block_bytes = (size_t)c->n_layers * ENG_KV_BLOCK * row * es;
    cb->info.kv_bytes_per_token = block_bytes / ENG_KV_BLOCK;
    size_t free_b = 0, total_b = 0;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    cb->info.total_bytes = total_b;
    long blocks;
    if (o->cache_tokens > 0) {
        blocks = (o->cache_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    } else {
        double frac = o->mem_fraction > 0 && o->mem_fraction <= 1 ? o->mem_fraction : 0.85;
        double avail = free_b > CU_SCRATCH_RESERVE ? (double)(free_b - CU_SCRATCH_RESERVE) : 0.0;
        blocks = (long)(avail * frac / (double)block_bytes);
        if (blocks > (1L << 20))
            blocks = 1L << 20;
    }
    if (blocks < 1 || (size_t)blocks * block_bytes > free_b) {
        snprintf(err, errlen, "not enough device memory for the KV cache: %.2f GB free after %.2f "
                 "GB of weights, a 64-token block takes %.1f MB (asked for %ld blocks)",
                 (double)free_b / 1e9, (double)cb->weight_bytes / 1e9, (double)block_bytes / 1e6,
                 blocks);
        return -1;
    }
    CU_TRY(cudaMalloc(&cb->kv, (size_t)blocks * block_bytes));
    /* zeroed: a row read before it is written (never, by the bookkeeping) is 0, not NaN */
    CU_TRY(cudaMemset(cb->kv, 0, (size_t)blocks * block_bytes));
    cb->kc = eng_kvcache_create_meta(be->model, (int)blocks);
    cb->info.kv_blocks = (int)blocks;
    cb->info.kv_bytes = (size_t)blocks * block_bytes;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    cb->info.free_after = free_b;
    return 0;
}

extern "C" eng_backend_t *eng_backend_cuda_create(const eng_model_t *model,
                                                  const eng_cuda_opts_t *opts,
                                                  eng_cuda_info_t *info, char *err, size_t errlen)
{
    eng_cuda_opts_t o = {};
    if (opts)
        o = *opts;
    if (eng_cuda_device_ok(err, errlen))
        return NULL;
    int n = 0;
    cudaGetDeviceCount(&n);
    if (o.device < 0 || o.device >= n) {
        snprintf(err, errlen, "CUDA device %d does not exist (%d present)", o.device, n);
        return NULL;
    }
    if (check_shapes(&model->cfg, err, errlen))
        return NULL;
    eng_backend_t *be = (eng_backend_t *)calloc(1, sizeof *be);
    cu_impl_t *ci = (cu_impl_t *)calloc(1, sizeof *ci);
    if (!be || !ci)
        abort();
    be->ops = &CUDA_OPS;
    be->model = model;
    be->impl = ci;
    cu_backend_t *cb = &ci->cb;
    cb->m = model;
    cb->dt = o.f32_weights ? CU_F32 : CU_BF16;
    cb->device = o.device;
    cb->profile = o.profile;
    cb->scale = (float)eng_config_attn_scale(&model->cfg);
    /* decode steps captured and replayed as CUDA graphs unless TG_CUDA_GRAPH=0 */
    const char *gr = getenv("TG_CUDA_GRAPH");
    cb->graphs = !(gr && !strcmp(gr, "0"));
    /* TG_CUDA_MOE=host|device forces one expert path (checks, benchmarks) */
    const char *moe = getenv("TG_CUDA_MOE");
    /* bf16 experts on the tensor cores (TG_CUDA_EXPERTS=gemv: the CUDA-core
     * kernel); they keep steps on the device up to 32 rows per expert */
    const char *ex = getenv("TG_CUDA_EXPERTS");
    const eng_config_t *mc = &model->cfg;
    cb->expert_mma = cb->dt == CU_BF16 && !(ex && !strcmp(ex, "gemv")) &&
                     cu_expert_mma_fits(mc->hidden, 2 * mc->moe_inter, mc->hidden) &&
                     cu_expert_mma_fits(mc->moe_inter, mc->hidden, mc->moe_inter);
    cb->expert_mma_always = cb->expert_mma && ex && !strcmp(ex, "mma");
    int dev_max = CU_MOE_DEVICE_MAX;
    if (cb->expert_mma && 32 * mc->n_routed > dev_max)
        dev_max = 32 * mc->n_routed;
    cb->moe_device_max = moe && !strcmp(moe, "host")     ? 0
                         : moe && !strcmp(moe, "device") ? 1 << 30
                                                         : dev_max;
    /* TG_CUDA_PREFILL_SCORES=N bounds a prefill attention chunk's scores
     * (tests: many chunks on a tiny model) */
    const char *ps = getenv("TG_CUDA_PREFILL_SCORES");
    cb->prefill_scores = ps && atol(ps) > 0 ? atol(ps) : CU_PREFILL_SCORES;
    cb->layers = (cu_layer_t *)calloc((size_t)model->cfg.n_layers, sizeof(cu_layer_t));
    if (!cb->layers)
        abort();
    if (cuda_setup(be, &o, err, errlen)) {
        cu_destroy(be);
        return NULL;
    }
    if (info)
        *info = cb->info;
    return be;
}

/* ---- bench helpers ---- */

extern "C" int eng_cuda_seq_fill_synthetic(eng_backend_t *be, eng_bseq_t *seq, int n_tokens,
                                           uint64_t seed, char *err, size_t errlen)
{
    cu_backend_t *cb = CB(be);
    eng_seq_t *s = (eng_seq_t *)seq;
    if (s->len != 0 || n_tokens < 1 || n_tokens > s->max_tokens) {
        snprintf(err, errlen, "synthetic context: the sequence must be empty and hold %d tokens",
                 n_tokens);
        return -1;
    }
    TRY(eng_seq_reserve(s, n_tokens, err, errlen));
    size_t nb = (size_t)s->n_blocks;
    TRY(cu_buf_ensure(&cb->b_meta, nb * sizeof(int32_t), err, errlen));
    CU_TRY(cudaMemcpy(cb->b_meta.p, s->blocks, nb * sizeof(int32_t), cudaMemcpyHostToDevice));
    size_t block_elems = (size_t)cb->m->cfg.n_layers * ENG_KV_BLOCK * (size_t)s->row;
    TRY(cu_fill_blocks(cb->stream, cb->dt, cb->kv, (const int32_t *)cb->b_meta.p, (int)nb,
                       block_elems, seed, err, errlen));
    CU_TRY(cudaStreamSynchronize(cb->stream));
    s->len = n_tokens;
    return 0;
}

extern "C" int eng_cuda_copy_bandwidth(eng_backend_t *be, size_t bytes, double *bytes_per_s,
                                       char *err, size_t errlen)
{
    cu_backend_t *cb = CB(be);
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaError_t e = cudaMalloc(&a, bytes);
    if (e == cudaSuccess)
        e = cudaMalloc(&b, bytes);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e0);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e1);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(a, 1, bytes, cb->stream);
    double best = 0;
    for (int r = 0; r < 5 && e == cudaSuccess; r++) {
        float ms = 0;
        e = cudaEventRecord(e0, cb->stream);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cb->stream);
        if (e == cudaSuccess)
            e = cudaEventRecord(e1, cb->stream);
        if (e == cudaSuccess)
            e = cudaEventSynchronize(e1);
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&ms, e0, e1);
        if (e == cudaSuccess && ms > 0 && (double)bytes / (ms * 1e-3) > best)
            best = (double)bytes / (ms * 1e-3);
    }
    if (e != cudaSuccess)
        snprintf(err, errlen, "copy bandwidth: %s", cudaGetErrorString(e));
    cudaFree(a);
    cudaFree(b);
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    *bytes_per_s = best;
    return e == cudaSuccess ? 0 : -1;
}

extern "C" int eng_cuda_info(eng_backend_t *be, eng_cuda_info_t *out, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    *out = CB(be)->info;
    return 0;
}

extern "C" void eng_cuda_graph_stats(eng_backend_t *be, long *captures, long *replays,
                                     long *failures)
{
    cu_backend_t *cb = CB(be);
    *captures = cb->graph_captures;
    *replays = cb->graph_replays;
    *failures = cb->graph_failures;
}

extern "C" int eng_cuda_mem_used(eng_backend_t *be, size_t *used, size_t *total, char *err,
                                 size_t errlen)
{
    (void)be;
    size_t f = 0, t = 0;
    CU_TRY(cudaMemGetInfo(&f, &t));
    *used = t - f;
    *total = t;
    return 0;
}

extern "C" void eng_cuda_profile_reset(eng_backend_t *be)
{
    cu_backend_t *cb = CB(be);
    for (int i = 0; i < cb->n_prof; i++)
        cb->prof[i].ms = cb->prof[i].bytes = 0, cb->prof[i].calls = 0;
}

extern "C" void eng_cuda_profile_enable(eng_backend_t *be, bool on)
{
    CB(be)->profile = on;
    CB(be)->n_prof = 0;
}

extern "C" void eng_cuda_profile_print(eng_backend_t *be, FILE *f, int steps)
{
    cu_backend_t *cb = CB(be);
    if (!cb->profile)
        return;
    double total = 0;
    for (int i = 0; i < cb->n_prof; i++)
        total += cb->prof[i].ms;
    if (steps < 1)
        steps = 1;
    fprintf(f, "| kernel | calls/step | ms/step | share | GB/s |\n|---|---|---|---|---|\n");
    for (int i = 0; i < cb->n_prof; i++) {
        const cu_prof_entry_t *p = &cb->prof[i];
        if (!p->calls)
            continue;
        fprintf(f, "| %s | %.1f | %.3f | %.1f%% | %.0f |\n", p->name, (double)p->calls / steps,
                p->ms / steps, total > 0 ? 100.0 * p->ms / total : 0.0,
                p->ms > 0 ? p->bytes / (p->ms * 1e-3) / 1e9 : 0.0);
    }
    fprintf(f, "| (all timed kernels) | | %.3f | 100%% | |\n", total / steps);
}
