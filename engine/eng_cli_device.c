/* eng_cli_device: `--device cpu|cuda` for the subcommands: parses the name,
 * makes the backend and, for CUDA, prints the memory plan (weights, KV
 * blocks, what is left) on stderr before anything runs. */
#include "eng_cli.h"

#include <stdio.h>
#include <string.h>

bool eng_cli_parse_device(const char *cmd, const char *text, bool *cuda)
{
    if (!strcmp(text, "cpu") || !strcmp(text, "cuda")) {
        *cuda = !strcmp(text, "cuda");
        return true;
    }
    fprintf(stderr, "tollgate-engine %s: --device is cpu or cuda, got '%s'\n", cmd, text);
    return false;
}

eng_backend_t *eng_cli_backend(const char *cmd, bool cuda, const eng_model_t *m, int threads,
                               int cache_tokens, const eng_cuda_opts_t *gpu)
{
    if (!cuda)
        return eng_backend_cpu_create(m, threads, cache_tokens);
    char err[1024];
    eng_cuda_info_t info;
    eng_backend_t *be = eng_backend_cuda_create(m, gpu, &info, err, sizeof err);
    if (!be) {
        fprintf(stderr, "tollgate-engine %s: --device cuda: %s\n", cmd, err);
        return NULL;
    }
    fprintf(stderr,
            "tollgate-engine %s: cuda device %d (%s, %d SMs, %.1f GB): weights %.2f GB (%s), "
            "KV cache %.2f GB = %d blocks of 64 tokens (%zu B per token), %.2f GB left free\n",
            cmd, gpu ? gpu->device : 0, info.device, info.sm_count, (double)info.total_bytes / 1e9,
            (double)info.weight_bytes / 1e9, gpu && gpu->f32_weights ? "float32" : "bfloat16",
            (double)info.kv_bytes / 1e9, info.kv_blocks, info.kv_bytes_per_token,
            (double)info.free_after / 1e9);
    return be;
}
