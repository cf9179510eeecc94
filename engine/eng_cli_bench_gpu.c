/* eng_cli_bench_gpu: `tollgate-engine bench --device cuda`: on one GPU, in
 * one process: the device-to-device copy rate (the bandwidth ceiling, the
 * peer every number is compared with), prefill tokens/s of one long prompt,
 * decode tokens/s at several batch sizes against a context of random latent
 * rows, memory used, and per-kernel time and bandwidth of decode steps.
 * Prints key=value lines and markdown kernel tables; bench/gpu-check.sh
 * drives it. */
#include "eng_cli.h"
#include "eng_cuda.h"

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

static const char HELP[] =
    "usage: tollgate-engine bench --device cuda (--model DIR | --random-init CONFIG [--seed N])\n"
    "                             [--context N] [--batches 1,16,64,256] [--decode-steps N]\n"
    "                             [--prefill-len N] [--profile-batches 1,64] [--copy-mb N]\n"
    "                             [--gpu-f32] [--gpu-device N] [--host-init]\n"
    "                             [--profile-prefill]\n"
    "\n"
    "GPU benchmark. Prints key=value lines: device, weights and KV plan, copy_bytes_per_s\n"
    "(device-to-device, the bandwidth ceiling), prefill_tok_s for one prompt of\n"
    "--prefill-len tokens (default 4096), batch_B_decode_tok_s and batch_B_step_ms for\n"
    "B sequences decoding together, each against --context random cached tokens\n"
    "(default 1000), mem_used_bytes; then, for each of --profile-batches, a table of\n"
    "decode-step kernels (ms per step, GB/s of the bytes each must move);\n"
    "--profile-prefill adds the same table for one more prefill (profile_prefill:).\n"
    "Decode steps are replayed from CUDA graphs unless TG_CUDA_GRAPH=0 is in the environment.\n"
    "With --random-init the weights are drawn on the GPU (same distribution as the CPU's\n"
    "generator, other values; no host copy of a 63 GB float32 model); --host-init builds\n"
    "them on the CPU with eng_model_random and uploads them instead.\n";

/* Parses "1,16,64" into out (at most max). Returns the count or -1. */
static int parse_list(const char *text, int *out, int max)
{
    int n = 0;
    for (const char *p = text; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',') || n == max)
            return -1;
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

/* Pseudo-random token ids, different per (seed, i). */
static int32_t tok_of(uint64_t seed, int i, int V)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0xbf58476d1ce4e5b9ull + 1;
    z ^= z >> 31;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 29;
    return (int32_t)(z % (uint64_t)V);
}

/* One prompt of len tokens through the expanded (prefill) path; seconds. */
static double run_prefill(eng_backend_t *be, int len, uint64_t seed, char *err, size_t errlen)
{
    int V = be->model->cfg.vocab;
    int32_t *ids = malloc((size_t)len * sizeof *ids), next;
    if (!ids)
        abort();
    for (int i = 0; i < len; i++)
        ids[i] = tok_of(seed, i, V);
    eng_bseq_t *s;
    double dt = -1;
    if (be->ops->seq_create(be, len + 1, &s, err, errlen) == 0) {
        eng_batch_item_t it = {s, ids, len, ENG_FWD_REFERENCE, NULL};
        double t0 = now_s();
        if (be->ops->step_greedy(be, &it, 1, &next, err, errlen) == 0)
            dt = now_s() - t0;
        be->ops->seq_free(be, s);
    }
    free(ids);
    return dt;
}

/* Warm-up decode steps before timing: at least 2 and until 0.3 s have
 * passed (an idle GPU's clocks take a moment to rise), then on past the next
 * multiple of ENG_CUDA_SPLIT_SPAN_TOKENS if the timed steps would cross it
 * (a recapture of the step's graph is not a decode step); at most this many. */
#define WARMUP_STEPS_MAX 64

/* B sequences with ctx synthetic tokens each; `steps` timed decode steps
 * after the warm-up (and `prof` more with the profiler on). Returns seconds
 * per step, or -1. */
static double run_decode(eng_backend_t *be, int B, int ctx, int steps, int prof, char *err,
                         size_t errlen)
{
    eng_bseq_t **seqs = calloc((size_t)B, sizeof *seqs);
    eng_batch_item_t *it = calloc((size_t)B, sizeof *it);
    int32_t *next = calloc((size_t)B, sizeof *next), *cur = calloc((size_t)B, sizeof *cur);
    if (!seqs || !it || !next || !cur)
        abort();
    double per_step = -1;
    int made = 0, V = be->model->cfg.vocab;
    for (; made < B; made++) {
        if (be->ops->seq_create(be, ctx + steps + prof + WARMUP_STEPS_MAX + 4, &seqs[made], err,
                                errlen))
            goto out;
        if (eng_cuda_seq_fill_synthetic(be, seqs[made], ctx, (uint64_t)made + 1, err, errlen)) {
            made++;
            goto out;
        }
        cur[made] = tok_of(7, made, V);
    }
    int warm = 0;
    const int span = ENG_CUDA_SPLIT_SPAN_TOKENS;
    for (double w0 = now_s(); warm < WARMUP_STEPS_MAX; warm++) {
        int len = ctx + warm; /* tokens cached before this step */
        bool crosses = len / span != (len + steps + prof) / span;
        if (warm >= 2 && now_s() - w0 >= 0.3 && !crosses)
            break;
        for (int b = 0; b < B; b++)
            it[b] = (eng_batch_item_t){seqs[b], &cur[b], 1, 0, NULL};
        if (be->ops->step_greedy(be, it, B, next, err, errlen))
            goto out;
        memcpy(cur, next, (size_t)B * sizeof *cur);
    }
    for (int k = 0; k < steps + prof; k++) {
        if (k == steps)
            eng_cuda_profile_enable(be, true);
        for (int b = 0; b < B; b++)
            it[b] = (eng_batch_item_t){seqs[b], &cur[b], 1, 0, NULL};
        double t0 = now_s();
        if (be->ops->step_greedy(be, it, B, next, err, errlen))
            goto out;
        if (k < steps)
            per_step = (per_step < 0 ? 0 : per_step) + (now_s() - t0) / steps;
        memcpy(cur, next, (size_t)B * sizeof *cur);
    }
out:
    for (int b = 0; b < made; b++)
        be->ops->seq_free(be, seqs[b]);
    free(seqs);
    free(it);
    free(next);
    free(cur);
    return per_step;
}

int eng_cli_bench_gpu(int argc, char **argv)
{
    const char *model_dir = NULL, *random_cfg = NULL, *batches = "1,16,64,256", *profs = "1,64";
    uint64_t seed = 0, ctx = 1000, steps = 16, prefill = 4096, copy_mb = 1024, dev = 0;
    eng_cuda_opts_t gpu = {0};
    bool host_init = false, prof_prefill = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return 0;
        }
        if (!strcmp(a, "--gpu-f32") || !strcmp(a, "--host-init") ||
            !strcmp(a, "--profile-prefill")) {
            if (!strcmp(a, "--gpu-f32"))
                gpu.f32_weights = true;
            else if (!strcmp(a, "--host-init"))
                host_init = true;
            else
                prof_prefill = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tollgate-engine bench: option %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(a, "--device"))
            ok = !strcmp(v, "cuda");
        else if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--random-init"))
            random_cfg = v;
        else if (!strcmp(a, "--batches"))
            batches = v;
        else if (!strcmp(a, "--profile-batches"))
            profs = v;
        else if (!strcmp(a, "--seed"))
            ok = eng_cli_parse_u64("bench", a, v, UINT64_MAX, &seed);
        else if (!strcmp(a, "--context"))
            ok = eng_cli_parse_u64("bench", a, v, 1 << 20, &ctx) && ctx >= 1;
        else if (!strcmp(a, "--decode-steps"))
            ok = eng_cli_parse_u64("bench", a, v, 100000, &steps) && steps >= 1;
        else if (!strcmp(a, "--prefill-len"))
            ok = eng_cli_parse_u64("bench", a, v, 1 << 20, &prefill) && prefill >= 1;
        else if (!strcmp(a, "--copy-mb"))
            ok = eng_cli_parse_u64("bench", a, v, 65536, &copy_mb) && copy_mb >= 1;
        else if (!strcmp(a, "--gpu-device")) {
            ok = eng_cli_parse_u64("bench", a, v, 64, &dev);
            gpu.device = (int)dev;
        } else {
            fprintf(stderr, "tollgate-engine bench: unknown option '%s' for --device cuda "
                            "(see bench --device cuda --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "tollgate-engine bench: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    int bl[16], pl[16];
    int nb = parse_list(batches, bl, 16), np = parse_list(profs, pl, 16);
    if (nb < 0 || np < 0) {
        fprintf(stderr, "tollgate-engine bench: --batches and --profile-batches expect lists like "
                        "1,16,64 (at most 16 values, each 1..4096)\n");
        return 2;
    }
    char err[1024];
    if (eng_cuda_device_ok(err, sizeof err)) {
        fprintf(stderr, "tollgate-engine bench: --device cuda: %s\n", err);
        return 1;
    }
    double t_load = now_s();
    eng_model_t *m = NULL;
    if (random_cfg && !model_dir && !host_init) {
        eng_config_t cfg;
        if (eng_config_load(random_cfg, &cfg, err, sizeof err)) {
            fprintf(stderr, "tollgate-engine bench: --random-init %s: %s\n", random_cfg, err);
            return 1;
        }
        m = eng_model_shell(&cfg);
    } else {
        m = eng_cli_open_model("bench", model_dir, random_cfg, seed);
    }
    if (!m)
        return 1;
    t_load = now_s() - t_load;
    double t_up = now_s();
    eng_backend_t *be = eng_cli_backend("bench", true, m, 0, 0, &gpu);
    t_up = now_s() - t_up;
    if (!be) {
        eng_model_free(m);
        return 1;
    }
    int rc = 1;
    double bw = 0;
    size_t used = 0, total = 0;
    size_t active = eng_model_active_bytes(m) / (gpu.f32_weights ? 1 : 2);
    printf("model_build_s=%.1f\nupload_s=%.1f\n", t_load, t_up);
    printf("weight_dtype=%s\nweights_from=%s\n", gpu.f32_weights ? "float32" : "bfloat16",
           model_dir ? "checkpoint" : host_init ? "host random init" : "device random init");
    printf("active_bytes_per_token=%zu\n", active);
    eng_cuda_info_t info;
    if (eng_cuda_info(be, &info, err, sizeof err))
        goto fail;
    printf("device=%s\nweight_bytes=%zu\nkv_blocks=%d\nkv_bytes=%zu\nkv_bytes_per_token=%zu\n",
           info.device, info.weight_bytes, info.kv_blocks, info.kv_bytes,
           info.kv_bytes_per_token);
    if (eng_cuda_copy_bandwidth(be, (size_t)copy_mb << 20, &bw, err, sizeof err))
        goto fail;
    /* bytes read + written per second: the traffic a kernel can move */
    printf("copy_bytes_per_s=%.0f\n", 2 * bw);
    printf("decode_floor_b1_tok_s=%.1f\n", 2 * bw / (double)active);
    if (run_prefill(be, 64, 99, err, sizeof err) < 0) /* warm-up: cuBLAS, scratch */
        goto fail;
    double best = 1e30;
    for (int r = 0; r < 2; r++) {
        double dt = run_prefill(be, (int)prefill, 1000 + (uint64_t)r, err, sizeof err);
        if (dt < 0)
            goto fail;
        best = dt < best ? dt : best;
    }
    printf("prefill_tokens=%llu\nprefill_s=%.4f\nprefill_tok_s=%.0f\n",
           (unsigned long long)prefill, best, (double)prefill / best);
    if (prof_prefill) {
        eng_cuda_profile_enable(be, true);
        if (run_prefill(be, (int)prefill, 2000, err, sizeof err) < 0)
            goto fail;
        printf("profile_prefill:\n");
        eng_cuda_profile_print(be, stdout, 1);
        eng_cuda_profile_enable(be, false);
    }
    printf("context=%llu\ndecode_steps=%llu\n", (unsigned long long)ctx,
           (unsigned long long)steps);
    fflush(stdout);
    for (int i = 0; i < nb; i++) {
        int prof = 0;
        for (int j = 0; j < np; j++)
            prof = pl[j] == bl[i] ? 4 : prof;
        double sps = run_decode(be, bl[i], (int)ctx, (int)steps, prof, err, sizeof err);
        if (sps < 0)
            goto fail;
        printf("batch_%d_step_ms=%.3f\nbatch_%d_decode_tok_s=%.1f\n", bl[i], sps * 1e3, bl[i],
               bl[i] / sps);
        if (prof) {
            printf("profile_batch_%d:\n", bl[i]);
            eng_cuda_profile_print(be, stdout, prof);
            eng_cuda_profile_enable(be, false);
        }
        if (eng_cuda_mem_used(be, &used, &total, err, sizeof err))
            goto fail;
        fflush(stdout);
    }
    printf("mem_used_bytes=%zu\nmem_total_bytes=%zu\n", used, total);
    long cap, rep, gfail;
    eng_cuda_graph_stats(be, &cap, &rep, &gfail);
    printf("graph_captures=%ld\ngraph_replays=%ld\ngraph_failures=%ld\n", cap, rep, gfail);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "tollgate-engine bench: %s\n", err);
out:
    be->ops->destroy(be);
    eng_model_free(m);
    return rc;
}
