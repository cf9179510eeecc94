/* eng_serve_cli: `tollgate-engine serve`: parses the options, loads (or
 * builds) the model, the tokenizer and its chat template, makes the CPU
 * backend and runs the server until SIGTERM. */
#include "eng_backend.h"
#include "eng_cli.h"
#include "eng_cuda.h"
#include "eng_serve.h"
#include "tg_log.h"
#include "tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char SERVE_HELP[] =
    "usage: tollgate-engine serve (--model DIR | --random-init CONFIG [--seed N])\n"
    "                             [--tokenizer DIR] [--listen HOST:PORT] [--port-file F]\n"
    "                             [--name ID] [--threads N] [--max-batch-tokens N]\n"
    "                             [--max-running N] [--kv-blocks N] [--default-max-tokens N]\n"
    "                             [--log-level L] [--device cpu|cuda] [--gpu-f32]\n"
    "                             [--gpu-device N] [--gpu-mem-fraction F]\n"
    "\n"
    "Serves the model over the OpenAI API: POST /v1/chat/completions and\n"
    "/v1/completions (streamed and not), GET /v1/models, /healthz and /metrics.\n"
    "The first stdout line is 'listening on HOST:PORT'. SIGTERM stops it.\n"
    "\n"
    "  --model DIR             config.json + safetensors (tokenizer.json and\n"
    "                          tokenizer_config.json too, unless --tokenizer)\n"
    "  --random-init CONFIG    a random-weight model of that config, built in memory\n"
    "  --seed N                seed for --random-init (default 0)\n"
    "  --tokenizer DIR         tokenizer.json + tokenizer_config.json (chat template)\n"
    "  --listen HOST:PORT      default 127.0.0.1:8000; port 0 picks a free port\n"
    "  --port-file F           also write the port to F (atomically)\n"
    "  --name ID               model id in /v1/models (default: the model folder's or\n"
    "                          config file's name); requests may name any model\n"
    "  --threads N             compute threads (default: all CPUs)\n"
    "  --max-batch-tokens N    tokens per scheduler step (default 256)\n"
    "  --max-running N         requests decoding together at most (default 32)\n"
    "  --kv-blocks N           KV cache size in 64-token blocks (default 1024)\n"
    "  --default-max-tokens N  completion length when a request gives none (default 256)\n"
    "  --log-level L           debug, info, warn (default), error\n"
    "  --device cpu|cuda       where the model runs (default cpu). With cuda the KV\n"
    "                          cache takes the GPU memory left after the weights\n"
    "                          unless --kv-blocks is given; the plan goes to stderr\n"
    "  --gpu-f32               with cuda: float32 weights and cache (default bfloat16)\n"
    "  --gpu-device N          with cuda: the CUDA device index (default 0)\n"
    "  --gpu-mem-fraction F    with cuda: share of the free memory for KV blocks\n"
    "                          (default 0.85)\n";

static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "tollgate-engine serve: option %s needs a value (see --help)\n",
                argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The last path component of p without a .json suffix, into out. */
static void base_name(const char *p, char *out, size_t n)
{
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && p[start - 1] != '/')
        start--;
    size_t l = len - start;
    if (l > 5 && !strncmp(p + start + l - 5, ".json", 5))
        l -= 5;
    snprintf(out, n, "%.*s", (int)l, p + start);
}

int eng_cli_serve(int argc, char **argv)
{
    const char *model_dir = NULL, *random_cfg = NULL, *tok_dir = NULL, *listen = "127.0.0.1:8000";
    const char *port_file = NULL, *name = NULL, *level = "warn";
    uint64_t seed = 0, threads = 0, budget = 256, running = 32, kv_blocks = 1024, dmax = 256;
    uint64_t gpu_dev = 0;
    bool cuda = false, kv_given = false;
    eng_cuda_opts_t gpu = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(SERVE_HELP, stdout);
            return 0;
        }
        if (!strcmp(a, "--gpu-f32")) {
            gpu.f32_weights = true;
            continue;
        }
        if (!strcmp(a, "--device") || !strcmp(a, "--gpu-device") ||
            !strcmp(a, "--gpu-mem-fraction")) {
            if (!(v = opt_value(argc, argv, &i)))
                return 2;
            if (!strcmp(a, "--device")) {
                if (!eng_cli_parse_device("serve", v, &cuda))
                    return 2;
            } else if (!strcmp(a, "--gpu-device")) {
                if (!eng_cli_parse_u64("serve", a, v, 64, &gpu_dev))
                    return 2;
                gpu.device = (int)gpu_dev;
            } else {
                char *end;
                double f = strtod(v, &end);
                if (end == v || *end || !(f > 0 && f <= 1)) {
                    fprintf(stderr, "tollgate-engine serve: --gpu-mem-fraction is a number in "
                                    "(0, 1], got '%s'\n", v);
                    return 2;
                }
                gpu.mem_fraction = f;
            }
            continue;
        }
        static const char *const with_value[] = {
            "--model",   "--random-init",      "--tokenizer",   "--listen",
            "--port-file", "--name",           "--seed",        "--threads",
            "--max-batch-tokens", "--max-running", "--kv-blocks", "--default-max-tokens",
            "--log-level"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            known |= !strcmp(a, with_value[k]);
        if (!known) {
            fprintf(stderr, "tollgate-engine serve: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = opt_value(argc, argv, &i)))
            return 2;
        bool ok = true;
        if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--random-init"))
            random_cfg = v;
        else if (!strcmp(a, "--tokenizer"))
            tok_dir = v;
        else if (!strcmp(a, "--listen"))
            listen = v;
        else if (!strcmp(a, "--port-file"))
            port_file = v;
        else if (!strcmp(a, "--name"))
            name = v;
        else if (!strcmp(a, "--log-level"))
            level = v;
        else if (!strcmp(a, "--seed"))
            ok = eng_cli_parse_u64("serve", a, v, UINT64_MAX, &seed);
        else if (!strcmp(a, "--threads"))
            ok = eng_cli_parse_u64("serve", a, v, 64, &threads);
        else if (!strcmp(a, "--max-batch-tokens"))
            ok = eng_cli_parse_u64("serve", a, v, 65536, &budget) && budget > 0;
        else if (!strcmp(a, "--max-running"))
            ok = eng_cli_parse_u64("serve", a, v, 4096, &running) && running > 0;
        else if (!strcmp(a, "--kv-blocks")) {
            ok = eng_cli_parse_u64("serve", a, v, 1 << 20, &kv_blocks) && kv_blocks > 0;
            kv_given = true;
        }
        else if (!strcmp(a, "--default-max-tokens"))
            ok = eng_cli_parse_u64("serve", a, v, 1 << 20, &dmax) && dmax > 0;
        if (!ok) {
            fprintf(stderr, "tollgate-engine serve: %s must be at least 1\n", a);
            return 2;
        }
    }
    tg_log_level_t lv;
    if (!strcmp(level, "debug"))
        lv = TG_LOG_DEBUG;
    else if (!strcmp(level, "info"))
        lv = TG_LOG_INFO;
    else if (!strcmp(level, "warn"))
        lv = TG_LOG_WARN;
    else if (!strcmp(level, "error"))
        lv = TG_LOG_ERROR;
    else {
        fprintf(stderr, "tollgate-engine serve: --log-level is debug, info, warn or error\n");
        return 2;
    }
    tg_log_init("engine", lv);
    char host[256];
    const char *colon = strrchr(listen, ':');
    uint64_t port = 0;
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host ||
        !eng_cli_parse_u64("serve", "--listen port", colon + 1, 65535, &port)) {
        fprintf(stderr, "tollgate-engine serve: --listen expects HOST:PORT, got '%s'\n", listen);
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    if (!tok_dir)
        tok_dir = model_dir;
    if (!tok_dir) {
        fprintf(stderr, "tollgate-engine serve: --random-init needs --tokenizer DIR (a folder "
                        "with tokenizer.json and tokenizer_config.json)\n");
        return 2;
    }
    char path[4096], err[1024];
    if (cuda && eng_cuda_device_ok(err, sizeof err)) {
        fprintf(stderr, "tollgate-engine serve: --device cuda: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", tok_dir);
    if (!is_file(path)) {
        fprintf(stderr, "tollgate-engine serve: no tokenizer at %s; give --tokenizer DIR\n", path);
        return 1;
    }
    tok_tokenizer_t *tok = tok_load_file(path, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "tollgate-engine serve: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tok_dir);
    tok_chat_t *chat = tok_chat_load_file(path, err, sizeof err);
    if (!chat) {
        fprintf(stderr, "tollgate-engine serve: %s\n", err);
        tok_free(tok);
        return 1;
    }
    eng_model_t *m = eng_cli_open_model("serve", model_dir, random_cfg, seed);
    if (!m) {
        tok_chat_free(chat);
        tok_free(tok);
        return 1;
    }
    char def_name[256];
    base_name(model_dir ? model_dir : random_cfg, def_name, sizeof def_name);
    gpu.cache_tokens = kv_given ? (int)kv_blocks * ENG_KV_BLOCK : 0;
    eng_backend_t *be =
        eng_cli_backend("serve", cuda, m, (int)threads, (int)kv_blocks * ENG_KV_BLOCK, &gpu);
    if (!be) {
        eng_model_free(m);
        tok_chat_free(chat);
        tok_free(tok);
        return 1;
    }
    eng_serve_opts_t o = {.host = host,
                          .port = (int)port,
                          .port_file = port_file,
                          .name = name ? name : def_name,
                          .max_batch_tokens = (int)budget,
                          .max_running = (int)running,
                          .default_max_tokens = (int)dmax,
                          .max_body = 8u << 20};
    int rc = eng_serve_run(&o, be, tok, chat);
    be->ops->destroy(be);
    eng_model_free(m);
    tok_chat_free(chat);
    tok_free(tok);
    return rc;
}
