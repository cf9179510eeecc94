/* Prefix cache: a warm run (prompt blocks reused from the cache) equals a cold
 * run and the golden reference; hits are whole 64-token blocks; blocks are
 * reference-counted, released blocks stay cached and are evicted least
 * recently released first (a prefix's tail before its head); a full cache is
 * a clear error that leaks nothing; truncating inside a shared block copies
 * it instead of corrupting other sequences. */
#include "eng_backend.h"
#include "eng_forward.h"
#include "eng_kvcache.h"
#include "eng_model.h"
#include "eng_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static eng_kvcache_stats_t stats(eng_kvcache_t *kc)
{
    eng_kvcache_stats_t st;
    eng_kvcache_stats(kc, &st);
    return st;
}

/* Golden v3_tiny L=300: cold then warm, through the sequence API. */
static void warm_vs_cold(const char *fixtures)
{
    char dir[4096], err[512];
    snprintf(dir, sizeof dir, "%s/v3_tiny", fixtures);
    eng_model_t *m = eng_model_load(dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "FAIL: %s\n", err);
        eng_test_failures++;
        return;
    }
    tu_case_t *cases;
    int nc = tu_load_cases(dir, &cases);
    CHECK(nc == 4);
    const tu_case_t *tc = NULL;
    for (int i = 0; i < nc; i++)
        if (cases[i].len == 300)
            tc = &cases[i];
    CHECK(tc != NULL);
    if (!tc)
        return;
    int V = m->cfg.vocab, L = tc->len;
    eng_kvcache_t *kc = eng_kvcache_create(m, 16);
    float *cold = calloc((size_t)L * V, sizeof(float)), *warm = calloc((size_t)L * V, sizeof(float));
    eng_seq_t *a = eng_seq_create_in(m, NULL, kc, L + 12);
    CHECK(eng_seq_attach_prefix(a, tc->prompt, L) == 0); /* empty cache: no hits */
    CHECK(eng_seq_forward(a, tc->prompt, L, ENG_ATTN_REFERENCE, cold, true, err, sizeof err) == 0);
    eng_seq_free(a);
    eng_kvcache_stats_t st = stats(kc);
    CHECK(st.cached == 4 && st.in_use == 0); /* blocks 0..3 full, the 44-token tail freed */

    eng_seq_t *b = eng_seq_create_in(m, NULL, kc, L + 12);
    int hits = eng_seq_attach_prefix(b, tc->prompt, L);
    CHECK(hits == 256 && eng_seq_len(b) == 256);
    CHECK(stats(kc).in_use == 4);
    CHECK(eng_seq_forward(b, tc->prompt + hits, L - hits, ENG_ATTN_REFERENCE, warm + hits * V,
                          true, err, sizeof err) == 0);
    double vs_cold = 0, vs_gold = 0;
    for (int t = hits; t < L; t++) {
        double e1 = tu_rel_err(warm + (size_t)t * V, cold + (size_t)t * V, (size_t)V);
        double e2 = tu_rel_err(warm + (size_t)t * V, tc->logits + (size_t)t * V, (size_t)V);
        vs_cold = e1 > vs_cold ? e1 : vs_cold;
        vs_gold = e2 > vs_gold ? e2 : vs_gold;
    }
    int32_t got[12], next = eng_argmax(warm + (size_t)(L - 1) * V, V);
    for (int i = 0; i < 12; i++) {
        got[i] = next;
        CHECK(eng_seq_forward(b, &next, 1, ENG_ATTN_ABSORBED, warm, false, err, sizeof err) == 0);
        next = eng_argmax(warm, V);
    }
    printf("warm run (256 of 300 tokens from cache): vs cold %.2e, vs golden %.2e, greedy %s\n",
           vs_cold, vs_gold, memcmp(got, tc->greedy, sizeof got) ? "DIFFERENT" : "identical");
    CHECK(vs_cold < 1e-5 && vs_gold < 1e-4);
    CHECK(memcmp(got, tc->greedy, sizeof got) == 0);
    eng_seq_free(b);

    /* the same through the backend interface, which reports the hits */
    eng_backend_t *be = eng_backend_cpu_create(m, 2, 1024);
    int32_t out1[12], out2[12];
    int h1 = -1, h2 = -1;
    CHECK(eng_generate_greedy(be, tc->prompt, L, 12, -1, out1, NULL, &h1, err, sizeof err) == 12);
    CHECK(eng_generate_greedy(be, tc->prompt, L, 12, -1, out2, NULL, &h2, err, sizeof err) == 12);
    printf("backend: cold hits %d, warm hits %d\n", h1, h2);
    CHECK(h1 == 0 && h2 == 256);
    CHECK(memcmp(out1, tc->greedy, sizeof out1) == 0 && memcmp(out2, out1, sizeof out1) == 0);
    be->ops->destroy(be);
    free(cold);
    free(warm);
    eng_kvcache_free(kc);
    tu_cases_free(cases, nc);
    eng_model_free(m);
}

static const char TINY[] =
    "{\"model_type\":\"deepseek_v3\",\"hidden_size\":16,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"vocab_size\":40,\"intermediate_size\":24,"
    "\"kv_lora_rank\":8,\"qk_nope_head_dim\":4,\"qk_rope_head_dim\":4,\"v_head_dim\":4,"
    "\"initializer_range\":0.3}";

static void lru_and_refcounts(void)
{
    char err[512];
    eng_config_t cfg;
    CHECK(eng_config_parse(TINY, &cfg, err, sizeof err) == 0);
    eng_model_t *m = eng_model_random(&cfg, 3);
    int V = cfg.vocab;
    int32_t p1[200], p2[200];
    for (int i = 0; i < 200; i++) {
        p1[i] = (i * 7 + 1) % V;
        p2[i] = (i * 11 + 5) % V;
    }
    eng_kvcache_t *kc = eng_kvcache_create(m, 3);
    eng_seq_t *s1 = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_forward(s1, p1, 129, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) == 0);
    eng_kvcache_stats_t st = stats(kc);
    CHECK(st.in_use == 3 && st.free == 0);
    /* a second reader of the same prefix shares blocks 0 and 1 */
    eng_seq_t *s2 = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_attach_prefix(s2, p1, 129) == 128);
    eng_seq_free(s1);
    st = stats(kc);
    CHECK(st.in_use == 2 && st.free == 1 && st.cached == 0);
    eng_seq_free(s2);
    st = stats(kc);
    CHECK(st.in_use == 0 && st.cached == 2 && st.free == 1);
    /* a new prompt needing two blocks takes the free one, then evicts the
     * least recently released: block 1 of p1 (its tail), not block 0 */
    eng_seq_t *s3 = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_attach_prefix(s3, p2, 100) == 0);
    CHECK(eng_seq_forward(s3, p2, 100, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) == 0);
    st = stats(kc);
    CHECK(st.evictions == 1 && st.in_use == 2 && st.cached == 1);
    eng_seq_t *s4 = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_attach_prefix(s4, p1, 129) == 64); /* the head survived */
    /* full cache: s4 needs 2 more blocks, none is free or evictable */
    CHECK(eng_seq_forward(s4, p1 + 64, 100, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) != 0);
    CHECK(strstr(err, "KV cache full") != NULL);
    CHECK(eng_seq_len(s4) == 64);
    st = stats(kc);
    CHECK(st.in_use == 3 && st.free == 0); /* nothing leaked by the failed step */
    eng_seq_free(s3);
    eng_seq_free(s4);
    st = stats(kc);
    CHECK(st.in_use == 0 && st.free + st.cached == 3);
    printf("refcounts and LRU: evictions %ld, cached %d, free %d\n", st.evictions, st.cached,
           st.free);
    eng_kvcache_free(kc);

    /* truncating inside a shared block copies it */
    kc = eng_kvcache_create(m, 8);
    float *ref = calloc((size_t)V, sizeof(float)), *got = calloc((size_t)V, sizeof(float));
    eng_seq_t *cold = eng_seq_create(m, NULL, 200);
    CHECK(eng_seq_forward(cold, p1, 129, ENG_ATTN_ABSORBED, ref, false, err, sizeof err) == 0);
    eng_seq_t *a = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_forward(a, p1, 128, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) == 0);
    eng_seq_t *b = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_attach_prefix(b, p1, 129) == 128);
    CHECK(eng_seq_truncate(b, 100, err, sizeof err) == 0 && eng_seq_len(b) == 100);
    CHECK(eng_seq_forward(b, p2, 28, ENG_ATTN_ABSORBED, NULL, false, err, sizeof err) == 0);
    eng_seq_t *c = eng_seq_create_in(m, NULL, kc, 200);
    CHECK(eng_seq_attach_prefix(c, p1, 129) == 128);
    CHECK(eng_seq_forward(c, p1 + 128, 1, ENG_ATTN_ABSORBED, got, false, err, sizeof err) == 0);
    double e = tu_rel_err(got, ref, (size_t)V);
    printf("after another sequence truncated into the shared prefix: rel err %.2e\n", e);
    CHECK(e < 1e-5);
    eng_seq_free(a);
    eng_seq_free(b);
    eng_seq_free(c);
    eng_seq_free(cold);
    st = stats(kc);
    CHECK(st.in_use == 0);
    eng_kvcache_free(kc);
    free(ref);
    free(got);
    eng_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_engine_kvcache FIXTURE_DIR\n");
        return 1;
    }
    warm_vs_cold(argv[1]);
    lru_and_refcounts();
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
