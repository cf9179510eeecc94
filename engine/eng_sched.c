/* eng_sched: continuous batching. Each step: every decoding request gets one
 * token, then admitted prompts fill the rest of the token budget in chunks
 * (oldest first). Admission reserves cache blocks for a request's whole
 * length, so a step does not run out of blocks; should one still fail for a
 * full cache, prompt chunks wait and, if decoding alone does not fit, the
 * newest request is ended with an error so the others go on. */
#include "eng_sched.h"

#include "eng_forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct req {
    int id;
    eng_req_state_t state;
    eng_finish_t finish;
    int32_t *prompt;
    int n_prompt, done_prompt; /* prompt tokens in the cache */
    eng_req_params_t p;
    eng_rng_t rng;
    int blocks_need; /* cache blocks it can occupy at most: prompt + max_tokens */
    int32_t *out;
    int n_out;
    int cache_hits;
    eng_bseq_t *seq;
    float *logits; /* (vocab) */
    char error[160];
    struct req *next;
} req_t;

struct eng_sched {
    eng_backend_t *be;
    int budget, max_running, running, next_id, active;
    int reserved; /* sum of blocks_need over admitted requests */
    eng_sample_scratch_t *scratch;
    req_t *head, *tail;
};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        abort();
    return p;
}

eng_sched_t *eng_sched_create(eng_backend_t *be, int token_budget, int max_running)
{
    eng_sched_t *s = xcalloc(1, sizeof *s);
    s->be = be;
    s->budget = token_budget > 0 ? token_budget : 1;
    s->max_running = max_running > 0 ? max_running : 1;
    s->next_id = 1;
    s->scratch = eng_sample_scratch_new(be->model->cfg.vocab);
    return s;
}

/* Ends r: releases its sequence (cache blocks) and buffers it no longer needs. */
static void finish(eng_sched_t *s, req_t *r, eng_finish_t why, const char *msg)
{
    if (r->state == ENG_REQ_FINISHED)
        return;
    if (r->seq) {
        s->be->ops->seq_free(s->be, r->seq);
        r->seq = NULL;
    }
    if (r->state == ENG_REQ_PREFILL || r->state == ENG_REQ_DECODE) {
        s->running--;
        s->reserved -= r->blocks_need;
    }
    r->state = ENG_REQ_FINISHED;
    r->finish = why;
    if (msg)
        snprintf(r->error, sizeof r->error, "%s", msg);
    free(r->logits);
    r->logits = NULL;
    s->active--;
}

static void req_free(req_t *r)
{
    free(r->prompt);
    free(r->out);
    free(r->logits);
    free(r);
}

void eng_sched_free(eng_sched_t *s)
{
    if (!s)
        return;
    for (req_t *r = s->head, *n; r; r = n) {
        n = r->next;
        finish(s, r, ENG_FINISH_CANCELLED, NULL);
        req_free(r);
    }
    eng_sample_scratch_free(s->scratch);
    free(s);
}

int eng_sched_submit(eng_sched_t *s, const int32_t *prompt, int n_prompt, int max_tokens,
                     int stop_id, char *err, size_t errlen)
{
    eng_req_params_t p = {.max_tokens = max_tokens, .sample = eng_sample_defaults()};
    p.sample.temperature = 0;
    if (stop_id >= 0)
        p.stop_ids[p.n_stop_ids++] = stop_id;
    return eng_sched_submit_params(s, prompt, n_prompt, &p, err, errlen);
}

int eng_sched_submit_params(eng_sched_t *s, const int32_t *prompt, int n_prompt,
                            const eng_req_params_t *p, char *err, size_t errlen)
{
    int V = s->be->model->cfg.vocab;
    int max_tokens = p->max_tokens;
    if (p->n_stop_ids < 0 || p->n_stop_ids > ENG_MAX_STOP_IDS) {
        snprintf(err, errlen, "at most %d stop token ids", ENG_MAX_STOP_IDS);
        return -1;
    }
    if (n_prompt < 1) {
        snprintf(err, errlen, "the prompt is empty");
        return -1;
    }
    if (max_tokens < 1) {
        snprintf(err, errlen, "max_tokens must be at least 1");
        return -1;
    }
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V) {
            snprintf(err, errlen, "prompt token %d at index %d is outside the vocabulary [0, %d)",
                     (int)prompt[i], i, V);
            return -1;
        }
    req_t *r = xcalloc(1, sizeof *r);
    r->id = s->next_id++;
    r->prompt = xcalloc((size_t)n_prompt, sizeof(int32_t));
    memcpy(r->prompt, prompt, (size_t)n_prompt * sizeof(int32_t));
    r->n_prompt = n_prompt;
    r->p = *p;
    eng_rng_seed(&r->rng, p->sample.seed);
    r->blocks_need = (n_prompt + max_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    r->out = xcalloc((size_t)max_tokens, sizeof(int32_t));
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    s->active++;
    return r->id;
}

static req_t *find(eng_sched_t *s, int id)
{
    for (req_t *r = s->head; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

void eng_sched_cancel(eng_sched_t *s, int id)
{
    req_t *r = find(s, id);
    if (r)
        finish(s, r, ENG_FINISH_CANCELLED, NULL);
}

/* Admits waiting requests in arrival order while there is room: a running
 * slot, and cache blocks for the whole request (prompt + max_tokens) next to
 * the worst case of those already running. With that reservation a step can
 * never run out of blocks: whatever is not reserved is free or evictable.
 * A request larger than the whole cache is ended with an error. Admission
 * creates the sequence and reuses cached prefix blocks. */
static void admit(eng_sched_t *s)
{
    eng_backend_t *be = s->be;
    char err[160];
    eng_kvcache_stats_t st;
    be->ops->cache_stats(be, &st);
    for (req_t *r = s->head; r && s->running < s->max_running; r = r->next) {
        if (r->state != ENG_REQ_WAITING)
            continue;
        if (r->blocks_need > st.n_blocks) {
            snprintf(err, sizeof err,
                     "request needs %d cache blocks of %d tokens (prompt + max_tokens) but the "
                     "cache holds %d",
                     r->blocks_need, ENG_KV_BLOCK, st.n_blocks);
            finish(s, r, ENG_FINISH_ERROR, err);
            continue;
        }
        if (s->reserved + r->blocks_need > st.n_blocks)
            break; /* wait for running requests to finish; keep arrival order */
        s->running++;
        s->reserved += r->blocks_need;
        r->state = ENG_REQ_PREFILL;
        if (be->ops->seq_create(be, r->n_prompt + r->p.max_tokens, &r->seq, err, sizeof err)) {
            finish(s, r, ENG_FINISH_ERROR, err);
            continue;
        }
        r->cache_hits = be->ops->seq_attach_prefix(be, r->seq, r->prompt, r->n_prompt);
        r->done_prompt = r->cache_hits;
        r->logits = xcalloc((size_t)be->model->cfg.vocab, sizeof(float));
    }
}

/* Records a generated token and ends the request when it is done. */
static void emit(eng_sched_t *s, req_t *r, int32_t tok)
{
    r->out[r->n_out++] = tok;
    for (int i = 0; i < r->p.n_stop_ids; i++)
        if (tok == r->p.stop_ids[i]) {
            finish(s, r, ENG_FINISH_STOP, NULL);
            return;
        }
    if (r->n_out >= r->p.max_tokens)
        finish(s, r, ENG_FINISH_LENGTH, NULL);
}

int eng_sched_step(eng_sched_t *s, char *err, size_t errlen)
{
    eng_backend_t *be = s->be;
    int V = be->model->cfg.vocab;
    admit(s);
    int cap = s->running > 0 ? s->running : 1;
    eng_batch_item_t *items = xcalloc((size_t)cap, sizeof *items);
    req_t **who = xcalloc((size_t)cap, sizeof *who);
    int n = 0, n_decode = 0, budget = s->budget, advanced = -1;
    for (req_t *r = s->head; r; r = r->next)
        if (r->state == ENG_REQ_DECODE) {
            items[n] = (eng_batch_item_t){r->seq, &r->out[r->n_out - 1], 1, 0, r->logits};
            who[n++] = r;
            budget--;
        }
    n_decode = n;
    for (req_t *r = s->head; r && (budget > 0 || n == 0); r = r->next) {
        if (r->state != ENG_REQ_PREFILL)
            continue;
        int left = r->n_prompt - r->done_prompt;
        int chunk = left < budget ? left : (budget > 0 ? budget : 1);
        items[n] = (eng_batch_item_t){r->seq, r->prompt + r->done_prompt, chunk,
                                      ENG_FWD_REFERENCE, chunk == left ? r->logits : NULL};
        who[n++] = r;
        budget -= chunk;
    }
    if (n == 0) {
        advanced = 0;
        goto out;
    }
    if (be->ops->step(be, items, n, err, errlen) != 0) {
        if (!strstr(err, "KV cache full")) {
            for (int i = 0; i < n; i++)
                finish(s, who[i], ENG_FINISH_ERROR, err);
            goto out;
        }
        /* Prompt chunks wait for blocks; decoding goes on without them. */
        n = n_decode;
        if (n > 0 && be->ops->step(be, items, n, err, errlen) == 0)
            goto ran;
        /* Decoding alone does not fit: end the newest request to free room. */
        req_t *victim = NULL;
        for (req_t *r = s->head; r; r = r->next)
            if (r->state == ENG_REQ_DECODE || r->state == ENG_REQ_PREFILL)
                victim = r;
        if (victim)
            finish(s, victim, ENG_FINISH_ERROR, "KV cache full: request ended to free room");
        advanced = 0;
        goto out;
    }
ran:
    for (int i = 0; i < n; i++) {
        req_t *r = who[i];
        if (r->state == ENG_REQ_DECODE) {
            emit(s, r, eng_sample(r->logits, V, &r->p.sample, &r->rng, s->scratch));
            continue;
        }
        r->done_prompt += items[i].n;
        if (r->done_prompt == r->n_prompt) {
            r->state = ENG_REQ_DECODE;
            emit(s, r, eng_sample(r->logits, V, &r->p.sample, &r->rng, s->scratch));
        }
    }
    advanced = n;
out:
    free(items);
    free(who);
    return advanced;
}

int eng_sched_info(eng_sched_t *s, int id, eng_req_info_t *out)
{
    req_t *r = find(s, id);
    if (!r)
        return -1;
    memset(out, 0, sizeof *out);
    out->state = r->state;
    out->finish = r->finish;
    out->tokens = r->out;
    out->n_tokens = r->n_out;
    out->prompt_tokens = r->n_prompt;
    out->cache_hits = r->cache_hits;
    snprintf(out->error, sizeof out->error, "%s", r->error);
    return 0;
}

void eng_sched_release(eng_sched_t *s, int id)
{
    req_t *prev = NULL;
    for (req_t *r = s->head; r; prev = r, r = r->next) {
        if (r->id != id)
            continue;
        finish(s, r, ENG_FINISH_CANCELLED, NULL);
        if (prev)
            prev->next = r->next;
        else
            s->head = r->next;
        if (s->tail == r)
            s->tail = prev;
        req_free(r);
        return;
    }
}

int eng_sched_active(const eng_sched_t *s)
{
    return s->active;
}

int eng_sched_running(const eng_sched_t *s)
{
    return s->running;
}
