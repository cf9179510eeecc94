/* tollgate-engine: command line of the in-house DeepSeek-V2/V3 engine.
 *   generate     run a prompt of token ids, print the greedy continuation
 *   init-random  write a random-weight model of any shape
 *   bench        time prefill and decode on this machine (used by bench/engine.sh)
 *   serve        the OpenAI-compatible HTTP server
 * Every error says what was wrong and what to do; exit status 2 for usage. */
#include "eng_backend.h"
#include "eng_cli.h"
#include "eng_model.h"

#include "tg_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: tollgate-engine COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  generate     run token ids through a model and print the greedy continuation\n"
    "  init-random  write a random-weight model (safetensors + config.json)\n"
    "  bench        measure prefill and decode tokens/s and memory bandwidth\n"
    "  serve        serve a model over the OpenAI API (chat and completions)\n"
    "\n"
    "Run 'tollgate-engine COMMAND --help' for a command's options.\n";

int main(int argc, char **argv)
{
    tg_log_init("engine", TG_LOG_WARN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "generate"))
        return eng_cli_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "init-random"))
        return eng_cli_init_random(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve"))
        return eng_cli_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench"))
        return eng_cli_bench(argc - 1, argv + 1);
    fprintf(stderr, "tollgate-engine: unknown command '%s'\n\n%s", argv[1], USAGE);
    return 2;
}
