/* eng_cli: the subcommands of tollgate-engine. Each takes argv starting at
 * the subcommand's name and returns the process exit status (0 ok, 1 failed,
 * 2 usage error). */
#ifndef ENG_CLI_H
#define ENG_CLI_H

int eng_cli_generate(int argc, char **argv);
int eng_cli_init_random(int argc, char **argv);
int eng_cli_bench(int argc, char **argv);
int eng_cli_serve(int argc, char **argv);


#include "eng_backend.h"
#include "eng_model.h"

#include <stdbool.h>
#include <stdint.h>

/* Loads the model named by --model DIR or builds --random-init CONFIG (with
 * seed). Exactly one must be given. Prints the error and returns NULL. */
eng_model_t *eng_cli_open_model(const char *cmd, const char *model_dir, const char *random_cfg,
                                uint64_t seed);

/* Whether a random model of cfg fits in this machine's memory; prints an
 * error naming both sizes when not. */
bool eng_cli_fits_memory(const char *cmd, const eng_config_t *cfg);

/* Parses a non-negative integer option value; prints an error naming opt. */
bool eng_cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t max,
                       uint64_t *out);

/* Parses --device: "cpu" or "cuda" (prints the error otherwise). */
bool eng_cli_parse_device(const char *cmd, const char *text, bool *cuda);

/* The CPU backend (threads, cache_tokens), or the CUDA one with gpu's options
 * (NULL: defaults; its plan is printed on stderr). Prints CUDA's error and
 * returns NULL when that fails (built without CUDA, no device, no room). */
eng_backend_t *eng_cli_backend(const char *cmd, bool cuda, const eng_model_t *m, int threads,
                               int cache_tokens, const eng_cuda_opts_t *gpu);

/* `bench --device cuda`: the GPU benchmark (eng_cli_bench_gpu.c). argv as
 * eng_cli_bench's. */
int eng_cli_bench_gpu(int argc, char **argv);

#endif /* ENG_CLI_H */
