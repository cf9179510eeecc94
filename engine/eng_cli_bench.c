/* eng_cli_bench: `tollgate-engine bench` times prefill and batch-1 decode on
 * this machine and, in the same run, the memcpy bandwidth that bounds decode
 * (every active weight is read once per token). bench/engine.sh drives it. */
#include "eng_cli.h"

#include "eng_backend.h"
#include "eng_forward.h"
#include "eng_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Median of n (<= 8) values. */
static double median(const double *v, int n)
{
    double t[8];
    for (int i = 0; i < n; i++)
        t[i] = v[i];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

typedef struct {
    char *dst;
    const char *src;
} copy_ctx_t;

static void copy_range(void *arg, size_t lo, size_t hi)
{
    copy_ctx_t *c = arg;
    memcpy(c->dst + lo, c->src + lo, hi - lo);
}

/* Best copy rate (bytes copied per second) over a few runs of a buffer far
 * larger than the caches, copied by all threads of the pool. */
static double measure_copy_bw(eng_pool_t *pool, size_t bytes)
{
    char *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b)
        abort();
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    copy_ctx_t c = {b, a};
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        eng_pool_for(pool, bytes, 1 << 16, copy_range, &c);
        double dt = now_s() - t0;
        if ((double)bytes / dt > best)
            best = (double)bytes / dt;
    }
    free(a);
    free(b);
    return best;
}

/* Decode tokens/s with B sequences stepping together (each first prefilled
 * with a 16-token prompt), over `steps` steps. Returns -1 on error. */
static double batch_decode_tok_s(const eng_model_t *m, eng_pool_t *pool, int B, int steps,
                                 char *err, size_t errlen)
{
    int V = m->cfg.vocab, P = 16;
    eng_seq_t **seqs = calloc((size_t)B, sizeof *seqs);
    eng_fwd_item_t *it = calloc((size_t)B, sizeof *it);
    int32_t *prompt = calloc((size_t)B * P, sizeof *prompt), *next = calloc((size_t)B, sizeof *next);
    float *lg = calloc((size_t)B * V, sizeof *lg);
    if (!seqs || !it || !prompt || !next || !lg)
        abort();
    double rate = -1;
    for (int b = 0; b < B; b++) {
        seqs[b] = eng_seq_create(m, pool, P + steps);
        for (int i = 0; i < P; i++)
            prompt[b * P + i] = (int32_t)((b * 131 + i * 7919 + 13) % V);
        it[b] = (eng_fwd_item_t){seqs[b], prompt + b * P, P, ENG_ATTN_REFERENCE, lg + b * V, false};
    }
    if (eng_forward_batch(it, B, err, errlen))
        goto out;
    double t0 = now_s();
    for (int k = 0; k < steps; k++) {
        for (int b = 0; b < B; b++) {
            next[b] = eng_argmax(lg + (size_t)b * V, V);
            it[b] = (eng_fwd_item_t){seqs[b], &next[b], 1, ENG_ATTN_ABSORBED, lg + b * V, false};
        }
        if (eng_forward_batch(it, B, err, errlen))
            goto out;
    }
    rate = (double)B * steps / (now_s() - t0);
out:
    for (int b = 0; b < B; b++)
        eng_seq_free(seqs[b]);
    free(seqs);
    free(it);
    free(prompt);
    free(next);
    free(lg);
    return rate;
}

static const char BENCH_HELP[] =
    "usage: tollgate-engine bench (--model DIR | --random-init CONFIG [--seed N])\n"
    "                             [--prompt-len N] [--decode-tokens N] [--threads N]\n"
    "                             [--copy-mb N] [--batches 1,4,16] [--device cpu|cuda]\n"
    "\n"
    "Prints key=value lines: prefill and batch-1 decode tokens/s, the float32 bytes\n"
    "of weights one decode token reads, the memcpy rate measured in the same run\n"
    "(decode runs in 4 rounds, each followed by a copy measurement; medians are\n"
    "printed), decode's time over the bandwidth floor (active bytes / copy rate), and\n"
    "with\n"
    "--batches the decode tokens/s of that many sequences stepping together.\n"
    "With --device cuda it runs the GPU benchmark instead (see bench --device cuda --help).\n";

int eng_cli_bench(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--device") && !strcmp(argv[i + 1], "cuda"))
            return eng_cli_bench_gpu(argc, argv);
    const char *model_dir = NULL, *random_cfg = NULL, *batches = NULL;
    uint64_t seed = 0, prompt_len = 128, decode = 32, threads = 0, copy_mb = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(BENCH_HELP, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tollgate-engine bench: option %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--random-init"))
            random_cfg = v;
        else if (!strcmp(a, "--seed"))
            ok = eng_cli_parse_u64("bench", a, v, UINT64_MAX, &seed);
        else if (!strcmp(a, "--prompt-len"))
            ok = eng_cli_parse_u64("bench", a, v, 1000000, &prompt_len);
        else if (!strcmp(a, "--decode-tokens"))
            ok = eng_cli_parse_u64("bench", a, v, 1000000, &decode);
        else if (!strcmp(a, "--threads"))
            ok = eng_cli_parse_u64("bench", a, v, 64, &threads);
        else if (!strcmp(a, "--batches"))
            batches = v;
        else if (!strcmp(a, "--device")) {
            ok = !strcmp(v, "cpu");
            if (!ok)
                fprintf(stderr, "tollgate-engine bench: --device is cpu or cuda, got '%s'\n", v);
        }
        else if (!strcmp(a, "--copy-mb"))
            ok = eng_cli_parse_u64("bench", a, v, 65536, &copy_mb);
        else {
            fprintf(stderr, "tollgate-engine bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok)
            return 2;
    }
    if (prompt_len < 1 || decode < 1) {
        fprintf(stderr, "tollgate-engine bench: --prompt-len and --decode-tokens must be >= 1\n");
        return 2;
    }
    eng_model_t *m = eng_cli_open_model("bench", model_dir, random_cfg, seed);
    if (!m)
        return 1;
    eng_pool_t *pool = eng_pool_create((int)threads);
    int V = m->cfg.vocab, rc = 1;
    char err[1024];
    int32_t *ids = malloc(prompt_len * sizeof *ids);
    float *lg = malloc((size_t)V * sizeof(float));
    if (!ids || !lg)
        abort();
    for (uint64_t i = 0; i < prompt_len; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % (uint64_t)V);
    eng_seq_t *s = eng_seq_create(m, pool, (int)(prompt_len + decode));
    double t0 = now_s();
    if (eng_seq_forward(s, ids, (int)prompt_len, ENG_ATTN_REFERENCE, lg, false, err, sizeof err))
        goto fail;
    double t_prefill = now_s() - t0;
    /* Decode in rounds, each followed by a copy measurement, so both sides of
     * each round's ratio see the same load on this (shared) machine; the
     * median round is reported. */
    int32_t next = eng_argmax(lg, V);
    int rounds = decode >= 4 ? 4 : (int)decode;
    double tok_s[4], bw_r[4], ratio[4], t_decode = 0;
    size_t active = eng_model_active_bytes(m);
    uint64_t done = 0;
    for (int r = 0; r < rounds; r++) {
        uint64_t k = decode * (uint64_t)(r + 1) / (uint64_t)rounds - done;
        t0 = now_s();
        for (uint64_t i = 0; i < k; i++) {
            if (eng_seq_forward(s, &next, 1, ENG_ATTN_ABSORBED, lg, false, err, sizeof err))
                goto fail;
            next = eng_argmax(lg, V);
        }
        double dt = now_s() - t0;
        t_decode += dt;
        done += k;
        tok_s[r] = (double)k / dt;
        bw_r[r] = measure_copy_bw(pool, (size_t)copy_mb << 20);
        ratio[r] = (bw_r[r] / (double)active) / tok_s[r];
    }
    double bw = median(bw_r, rounds), decode_tok_s = median(tok_s, rounds);
    double floor_tok_s = bw / (double)active;
    printf("threads=%d\n", eng_pool_size(pool));
    printf("weight_bytes=%zu\n", m->weight_bytes);
    printf("active_bytes_per_token=%zu\n", active);
    printf("kv_bytes_per_token=%zu\n", eng_seq_cache_bytes_per_token(m));
    printf("copy_bytes_per_s=%.0f\n", bw);
    printf("prefill_tokens=%llu\nprefill_s=%.4f\nprefill_tok_s=%.1f\n",
           (unsigned long long)prompt_len, t_prefill, (double)prompt_len / t_prefill);
    printf("decode_tokens=%llu\ndecode_s=%.4f\ndecode_tok_s=%.2f\n", (unsigned long long)decode,
           t_decode, decode_tok_s);
    printf("decode_rounds=%d\n", rounds);
    printf("decode_floor_tok_s=%.2f\ndecode_time_vs_floor=%.2f\n", floor_tok_s,
           median(ratio, rounds));
    for (const char *p = batches; p && *p;) {
        char *end;
        long B = strtol(p, &end, 10);
        if (end == p || B < 1 || B > 1024 || (*end && *end != ',')) {
            snprintf(err, sizeof err, "--batches expects a list like 1,4,16, got '%s'", batches);
            goto fail;
        }
        double r = batch_decode_tok_s(m, pool, (int)B, (int)decode, err, sizeof err);
        if (r < 0)
            goto fail;
        printf("batch_%ld_decode_tok_s=%.2f\n", B, r);
        p = *end ? end + 1 : end;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "tollgate-engine bench: %s\n", err);
out:
    eng_seq_free(s);
    eng_pool_free(pool);
    eng_model_free(m);
    free(ids);
    free(lg);
    return rc;
}
