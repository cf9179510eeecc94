/* eng_cli: the generate and init-random subcommands and the option helpers
 * the subcommands share. */
#include "eng_cli.h"

#include "eng_backend.h"
#include "eng_cuda.h"
#include "eng_forward.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool eng_cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t max,
                       uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!text[0] || *end || errno || text[0] == '-' || v > max) {
        fprintf(stderr, "tollgate-engine %s: %s expects an integer from 0 to %llu, got '%s'\n",
                cmd, opt, (unsigned long long)max, text);
        return false;
    }
    *out = v;
    return true;
}

bool eng_cli_fits_memory(const char *cmd, const eng_config_t *cfg)
{
    double need = (double)eng_model_bytes_for(cfg);
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (have > 0 && need > 0.9 * have) {
        fprintf(stderr,
                "tollgate-engine %s: this config needs %.1f GB of float32 weights but the machine "
                "has %.1f GB of memory; use a smaller config\n",
                cmd, need / 1e9, have / 1e9);
        return false;
    }
    return true;
}

eng_model_t *eng_cli_open_model(const char *cmd, const char *model_dir, const char *random_cfg,
                                uint64_t seed)
{
    char err[1024];
    if ((model_dir != NULL) == (random_cfg != NULL)) {
        fprintf(stderr,
                "tollgate-engine %s: give exactly one of --model DIR or --random-init CONFIG\n",
                cmd);
        return NULL;
    }
    if (model_dir) {
        eng_model_t *m = eng_model_load(model_dir, err, sizeof err);
        if (!m)
            fprintf(stderr,
                    "tollgate-engine %s: cannot load model from %s: %s\n"
                    "  (a model directory holds config.json and model.safetensors or sharded "
                    "files with model.safetensors.index.json)\n",
                    cmd, model_dir, err);
        return m;
    }
    eng_config_t cfg;
    if (eng_config_load(random_cfg, &cfg, err, sizeof err)) {
        fprintf(stderr, "tollgate-engine %s: --random-init %s: %s\n", cmd, random_cfg, err);
        return NULL;
    }
    if (!eng_cli_fits_memory(cmd, &cfg))
        return NULL;
    return eng_model_random(&cfg, seed);
}

/* Parses "5,17,42" into a malloc'd array. Prints an error and returns -1. */
static int parse_ids(const char *text, int32_t **out)
{
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        abort();
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',') ||
            (*end == ',' && !end[1])) {
            fprintf(stderr,
                    "tollgate-engine generate: --ids expects comma-separated non-negative token "
                    "ids like 5,17,42; got '%s'\n",
                    text);
            free(ids);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            ids = realloc(ids, cap * sizeof *ids);
            if (!ids)
                abort();
        }
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        fprintf(stderr, "tollgate-engine generate: --ids is empty; give at least one token id\n");
        free(ids);
        return -1;
    }
    *out = ids;
    return (int)n;
}

static const char GENERATE_HELP[] =
    "usage: tollgate-engine generate (--model DIR | --random-init CONFIG [--seed N])\n"
    "                                --ids 5,17,42 --greedy [--max-tokens N]\n"
    "                                [--logits-out FILE] [--threads N] [--ignore-eos]\n"
    "                                [--device cpu|cuda] [--gpu-f32] [--gpu-device N]\n"
    "\n"
    "Runs the prompt's token ids through the model and prints the greedily\n"
    "generated ids, comma-separated, on one line. Generation stops after max-tokens\n"
    "(default 16) or after the model's eos_token_id (unless --ignore-eos).\n"
    "\n"
    "  --model DIR          config.json + model.safetensors (or shards with the index)\n"
    "  --random-init CONFIG build a random-weight model of that config in memory\n"
    "  --seed N             seed for --random-init (default 0)\n"
    "  --ids LIST           prompt token ids, comma-separated\n"
    "  --greedy             argmax decoding (the only decoding this version has)\n"
    "  --max-tokens N       tokens to generate (default 16)\n"
    "  --logits-out FILE    write the prompt's logits, float32 little-endian [L, vocab]\n"
    "  --threads N          worker threads (default: all CPUs)\n"
    "  --device cpu|cuda    where the forward pass runs (default cpu); cuda keeps\n"
    "                       bfloat16 weights on the GPU and prints its memory plan\n"
    "  --gpu-f32            with --device cuda: float32 weights and cache (checks)\n"
    "  --gpu-device N       with --device cuda: the CUDA device index (default 0)\n";

/* Fetches the value of option argv[*i]; prints an error when it is missing. */
static const char *opt_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "tollgate-engine %s: option %s needs a value (see --help)\n", cmd,
                argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int eng_cli_generate(int argc, char **argv)
{
    const char *model_dir = NULL, *random_cfg = NULL, *ids_text = NULL, *logits_out = NULL;
    uint64_t seed = 0, max_tokens = 16, threads = 0, gpu_dev = 0;
    bool greedy = false, ignore_eos = false, cuda = false;
    eng_cuda_opts_t gpu = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(GENERATE_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--gpu-f32")) {
            gpu.f32_weights = true;
        } else if (!strcmp(a, "--device") || !strcmp(a, "--gpu-device")) {
            if (!(v = opt_value("generate", argc, argv, &i)))
                return 2;
            if (!strcmp(a, "--device") ? !eng_cli_parse_device("generate", v, &cuda)
                                       : !eng_cli_parse_u64("generate", a, v, 64, &gpu_dev))
                return 2;
            gpu.device = (int)gpu_dev;
        } else if (!strcmp(a, "--greedy")) {
            greedy = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--random-init") || !strcmp(a, "--ids") ||
                   !strcmp(a, "--logits-out") || !strcmp(a, "--seed") ||
                   !strcmp(a, "--max-tokens") || !strcmp(a, "--threads")) {
            if (!(v = opt_value("generate", argc, argv, &i)))
                return 2;
            if (!strcmp(a, "--model"))
                model_dir = v;
            else if (!strcmp(a, "--random-init"))
                random_cfg = v;
            else if (!strcmp(a, "--ids"))
                ids_text = v;
            else if (!strcmp(a, "--logits-out"))
                logits_out = v;
            else if (!strcmp(a, "--seed") ? !eng_cli_parse_u64("generate", a, v, UINT64_MAX, &seed)
                     : !strcmp(a, "--max-tokens")
                         ? !eng_cli_parse_u64("generate", a, v, 1000000, &max_tokens)
                         : !eng_cli_parse_u64("generate", a, v, 64, &threads))
                return 2;
        } else {
            fprintf(stderr, "tollgate-engine generate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!ids_text) {
        fprintf(stderr, "tollgate-engine generate: --ids is required, e.g. --ids 5,17,42\n");
        return 2;
    }
    if (!greedy) {
        fprintf(stderr, "tollgate-engine generate: only greedy decoding is available; pass "
                        "--greedy\n");
        return 2;
    }
    char derr[512];
    if (cuda && eng_cuda_device_ok(derr, sizeof derr)) {
        fprintf(stderr, "tollgate-engine generate: --device cuda: %s\n", derr);
        return 1;
    }
    int32_t *ids;
    int n = parse_ids(ids_text, &ids);
    if (n < 0)
        return 2;
    eng_model_t *m = eng_cli_open_model("generate", model_dir, random_cfg, seed);
    if (!m) {
        free(ids);
        return 1;
    }
    int rc = 1;
    float *logits = NULL;
    int32_t *out = calloc(max_tokens + 1, sizeof *out);
    gpu.cache_tokens = n + (int)max_tokens; /* one sequence: no need for a larger cache */
    eng_backend_t *be =
        eng_cli_backend("generate", cuda, m, (int)threads, n + (int)max_tokens, &gpu);
    if (!be) {
        eng_model_free(m);
        free(out);
        free(ids);
        return 1;
    }
    if (logits_out) {
        logits = calloc((size_t)n * (size_t)m->cfg.vocab, sizeof(float));
        if (!logits)
            abort();
    }
    char err[1024];
    int got = eng_generate_greedy(be, ids, n, (int)max_tokens, ignore_eos ? -1 : m->cfg.eos_id,
                                  out, logits, NULL, err, sizeof err);
    if (got < 0) {
        fprintf(stderr, "tollgate-engine generate: %s\n", err);
        goto done;
    }
    if (logits_out) {
        /* float32 little-endian: this engine only builds for little-endian hosts. */
        FILE *f = fopen(logits_out, "wb");
        size_t cnt = (size_t)n * (size_t)m->cfg.vocab;
        if (!f || fwrite(logits, sizeof(float), cnt, f) != cnt || fclose(f) != 0) {
            fprintf(stderr, "tollgate-engine generate: cannot write --logits-out %s: %s\n",
                    logits_out, strerror(errno));
            goto done;
        }
    }
    for (int i = 0; i < got; i++)
        printf("%s%d", i ? "," : "", (int)out[i]);
    printf("\n");
    rc = 0;
done:
    be->ops->destroy(be);
    eng_model_free(m);
    free(logits);
    free(out);
    free(ids);
    return rc;
}

static const char INIT_HELP[] =
    "usage: tollgate-engine init-random --config FILE --out DIR [--dtype f32|bf16|f16]\n"
    "                                   [--seed N] [--shards N]\n"
    "\n"
    "Writes a model of the shape in FILE (a DeepSeek-V2/V3 config.json, either dialect)\n"
    "with random weights: DIR/config.json and DIR/model.safetensors (or N shards with\n"
    "model.safetensors.index.json). Same seed, same weights.\n";

/* Writes cfg_text to dir/config.json with its dtype field set to dtype_name. */
static int write_config(const char *cfg_text, const char *dir, const char *dtype_name)
{
    cJSON *root = cJSON_Parse(cfg_text);
    if (!root)
        return -1;
    const char *key = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype") &&
                              !cJSON_GetObjectItemCaseSensitive(root, "dtype")
                          ? "torch_dtype"
                          : "dtype";
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddStringToObject(root, key, dtype_name);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    int rc = (f && fputs(text, f) >= 0 && fputc('\n', f) != EOF) ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(text);
    return rc;
}

int eng_cli_init_random(int argc, char **argv)
{
    const char *cfg_path = NULL, *out_dir = NULL, *dtype = "f32";
    uint64_t seed = 0, shards = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(INIT_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--config") && strcmp(a, "--out") && strcmp(a, "--dtype") &&
            strcmp(a, "--seed") && strcmp(a, "--shards")) {
            fprintf(stderr, "tollgate-engine init-random: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = opt_value("init-random", argc, argv, &i)))
            return 2;
        if (!strcmp(a, "--config"))
            cfg_path = v;
        else if (!strcmp(a, "--out"))
            out_dir = v;
        else if (!strcmp(a, "--dtype"))
            dtype = v;
        else if (!strcmp(a, "--seed") ? !eng_cli_parse_u64("init-random", a, v, UINT64_MAX, &seed)
                                      : !eng_cli_parse_u64("init-random", a, v, 1000, &shards))
            return 2;
    }
    if (!cfg_path || !out_dir) {
        fprintf(stderr, "tollgate-engine init-random: --config FILE and --out DIR are required\n");
        return 2;
    }
    eng_dtype_t dt;
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "float32"))
        dt = ENG_DT_F32;
    else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16"))
        dt = ENG_DT_BF16;
    else if (!strcmp(dtype, "f16") || !strcmp(dtype, "float16"))
        dt = ENG_DT_F16;
    else {
        fprintf(stderr,
                "tollgate-engine init-random: --dtype must be f32, bf16 or f16, got '%s'\n",
                dtype);
        return 2;
    }
    char err[1024];
    eng_config_t cfg;
    if (eng_config_load(cfg_path, &cfg, err, sizeof err)) {
        fprintf(stderr, "tollgate-engine init-random: %s: %s\n", cfg_path, err);
        return 1;
    }
    FILE *f = fopen(cfg_path, "rb");
    char *text = NULL;
    size_t len = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        text = calloc(len + 1, 1);
        if (!text || fread(text, 1, len, f) != len) {
            free(text);
            text = NULL;
        }
        fclose(f);
    }
    if (!text) {
        fprintf(stderr, "tollgate-engine init-random: cannot read %s\n", cfg_path);
        return 1;
    }
    const char *dt_name = dt == ENG_DT_F32 ? "float32" : dt == ENG_DT_BF16 ? "bfloat16" : "float16";
    if (!eng_cli_fits_memory("init-random", &cfg)) {
        free(text);
        return 1;
    }
    eng_model_t *m = eng_model_random(&cfg, seed);
    int rc = 1;
    if (eng_model_save(m, out_dir, dt, (int)shards, err, sizeof err)) {
        fprintf(stderr, "tollgate-engine init-random: %s\n", err);
    } else if (write_config(text, out_dir, dt_name)) {
        fprintf(stderr, "tollgate-engine init-random: cannot write %s/config.json\n", out_dir);
    } else {
        printf("wrote %s: %.1f MB of float32 weights as %s\n", out_dir,
               (double)m->weight_bytes / 1e6, dt_name);
        rc = 0;
    }
    eng_model_free(m);
    free(text);
    return rc;
}
