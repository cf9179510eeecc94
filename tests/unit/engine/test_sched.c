/* Continuous batching: requests of different lengths joining over time, with
 * a small token budget (chunked prefill) and limited concurrency, produce
 * exactly what each produces alone; stop tokens end a request; a repeated
 * prefix is served from the cache and reported as hits; cancelling frees the
 * request's blocks at once; with a cache too small for everyone at once,
 * requests wait for room and still match; a request larger than the whole
 * cache is refused with a clear error. */
#include "eng_backend.h"
#include "eng_config.h"
#include "eng_model.h"
#include "eng_sched.h"
#include "eng_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CFG[] =
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":32,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"vocab_size\":61,\"intermediate_size\":48,"
    "\"moe_intermediate_size\":16,\"q_lora_rank\":16,\"kv_lora_rank\":8,"
    "\"qk_nope_head_dim\":8,\"qk_rope_head_dim\":4,\"v_head_dim\":8,\"n_routed_experts\":4,"
    "\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"n_group\":2,\"topk_group\":1,\"norm_topk_prob\":true,\"initializer_range\":0.3}";

#define NREQ 6
static const int PLEN[NREQ] = {150, 3, 140, 70, 1, 200};
static const int MAXT[NREQ] = {8, 12, 5, 9, 4, 6};
static const int ARRIVE[NREQ] = {0, 0, 1, 3, 4, 6}; /* step at which it is submitted */

static int32_t prompts[NREQ][256];
static int32_t solo[NREQ][16];

static void make_prompts(int V)
{
    for (int r = 0; r < NREQ; r++)
        for (int i = 0; i < PLEN[r]; i++)
            /* requests 0, 2 and 5 share their first 130 tokens */
            prompts[r][i] = (r == 0 || r == 2 || r == 5) && i < 130 ? (i * 5 + 1) % V
                                                                    : (i * 3 + r * 17) % V;
}

/* Runs all requests through a scheduler; returns how many finished by length. */
static int run_all(eng_backend_t *be, int budget, int max_running, int *finish, int *hits,
                   int32_t out[NREQ][16], int *n_out)
{
    char err[256];
    eng_sched_t *s = eng_sched_create(be, budget, max_running);
    int ids[NREQ], submitted = 0, ok = 0;
    for (int step = 0; step < 2000 && (submitted < NREQ || eng_sched_active(s) > 0); step++) {
        while (submitted < NREQ && ARRIVE[submitted] <= step) {
            ids[submitted] = eng_sched_submit(s, prompts[submitted], PLEN[submitted],
                                              MAXT[submitted], -1, err, sizeof err);
            CHECK(ids[submitted] > 0);
            submitted++;
        }
        CHECK(eng_sched_step(s, err, sizeof err) >= 0);
    }
    for (int r = 0; r < NREQ; r++) {
        eng_req_info_t info;
        CHECK(eng_sched_info(s, ids[r], &info) == 0);
        CHECK(info.state == ENG_REQ_FINISHED && info.prompt_tokens == PLEN[r]);
        finish[r] = info.finish;
        hits[r] = info.cache_hits;
        n_out[r] = info.n_tokens;
        memcpy(out[r], info.tokens, (size_t)info.n_tokens * sizeof(int32_t));
        ok += info.finish == ENG_FINISH_LENGTH;
        eng_sched_release(s, ids[r]);
        CHECK(eng_sched_info(s, ids[r], &info) == -1);
    }
    eng_sched_free(s);
    return ok;
}

int main(void)
{
    char err[256];
    eng_config_t cfg;
    if (eng_config_parse(CFG, &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    eng_model_t *m = eng_model_random(&cfg, 5);
    make_prompts(cfg.vocab);
    for (int r = 0; r < NREQ; r++) {
        eng_backend_t *be = eng_backend_cpu_create(m, 1, 512);
        CHECK(eng_generate_greedy(be, prompts[r], PLEN[r], MAXT[r], -1, solo[r], NULL, NULL, err,
                                  sizeof err) == MAXT[r]);
        be->ops->destroy(be);
    }

    /* budget 32 tokens per step, 3 running at most */
    eng_backend_t *be = eng_backend_cpu_create(m, 2, 64 * 64);
    int finish[NREQ], hits[NREQ], n_out[NREQ];
    int32_t out[NREQ][16];
    CHECK(run_all(be, 32, 3, finish, hits, out, n_out) == NREQ);
    for (int r = 0; r < NREQ; r++) {
        CHECK(n_out[r] == MAXT[r] && memcmp(out[r], solo[r], (size_t)MAXT[r] * 4) == 0);
        printf("request %d: prompt %3d, cache hits %3d, %s\n", r, PLEN[r], hits[r],
               memcmp(out[r], solo[r], (size_t)MAXT[r] * 4) ? "DIFFERENT from solo"
                                                             : "same as solo");
    }
    /* request 0 (150 tokens) finished caching 2 blocks before 5 arrived; 2 ran
     * alongside 0 so it may or may not have found them: 5 must. */
    CHECK(hits[0] == 0 && hits[5] == 128);
    eng_kvcache_stats_t st;
    be->ops->cache_stats(be, &st);
    CHECK(st.in_use == 0);

    /* stop token and cancellation */
    eng_sched_t *s = eng_sched_create(be, 16, 4);
    int a = eng_sched_submit(s, prompts[1], PLEN[1], 12, solo[1][2], err, sizeof err);
    int b = eng_sched_submit(s, prompts[5], PLEN[5], 50, -1, err, sizeof err);
    for (int i = 0; i < 20; i++)
        eng_sched_step(s, err, sizeof err);
    eng_req_info_t ia, ib;
    CHECK(eng_sched_info(s, a, &ia) == 0 && ia.finish == ENG_FINISH_STOP && ia.n_tokens == 3);
    CHECK(eng_sched_info(s, b, &ib) == 0 && ib.state == ENG_REQ_DECODE);
    be->ops->cache_stats(be, &st);
    int in_use_before = st.in_use;
    eng_sched_cancel(s, b);
    be->ops->cache_stats(be, &st);
    printf("cancel: blocks in use %d -> %d\n", in_use_before, st.in_use);
    CHECK(in_use_before >= 3 && st.in_use == 0);
    CHECK(eng_sched_info(s, b, &ib) == 0 && ib.finish == ENG_FINISH_CANCELLED);
    CHECK(eng_sched_active(s) == 0);
    /* bad submissions */
    CHECK(eng_sched_submit(s, prompts[0], 0, 5, -1, err, sizeof err) < 0);
    int32_t bad = cfg.vocab;
    CHECK(eng_sched_submit(s, &bad, 1, 5, -1, err, sizeof err) < 0 && strstr(err, "vocabulary"));
    CHECK(eng_sched_submit(s, prompts[0], 3, 0, -1, err, sizeof err) < 0);
    eng_sched_free(s);
    be->ops->destroy(be);

    /* a cache of 4 blocks cannot hold everyone at once: requests wait for
     * room instead of failing, and all still match their solo runs */
    be = eng_backend_cpu_create(m, 2, 4 * 64);
    int ok = run_all(be, 64, 4, finish, hits, out, n_out);
    for (int r = 0; r < NREQ; r++)
        CHECK(finish[r] == ENG_FINISH_LENGTH &&
              memcmp(out[r], solo[r], (size_t)MAXT[r] * 4) == 0);
    printf("4-block cache: %d of %d finished, all same as solo\n", ok, NREQ);
    CHECK(ok == NREQ);
    be->ops->cache_stats(be, &st);
    CHECK(st.in_use == 0);
    /* a request larger than the whole cache is refused with the sizes */
    s = eng_sched_create(be, 64, 4);
    int big = eng_sched_submit(s, prompts[5], PLEN[5], 60, -1, err, sizeof err);
    int small = eng_sched_submit(s, prompts[1], PLEN[1], 4, -1, err, sizeof err);
    for (int i = 0; i < 10; i++)
        eng_sched_step(s, err, sizeof err);
    CHECK(eng_sched_info(s, big, &ia) == 0 && ia.finish == ENG_FINISH_ERROR);
    CHECK(strstr(ia.error, "needs 5 cache blocks") != NULL);
    printf("too big: %s\n", ia.error);
    CHECK(eng_sched_info(s, small, &ib) == 0 && ib.finish == ENG_FINISH_LENGTH);
    eng_sched_free(s);
    be->ops->destroy(be);
    eng_model_free(m);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
