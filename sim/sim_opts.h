/* sim_opts: tollgate-sim's command line. Every option is described by
 * sim_opts_usage (the --help text) and in docs/simulator.md. */
#ifndef SIM_OPTS_H
#define SIM_OPTS_H

#include "sim_stats.h"
#include "tg_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sim_opts {
    char host[256];
    int port;              /* 0 = pick a free one */
    char port_file[1024];  /* "" = none */
    int threads;           /* event loops (>= 1) */
    unsigned ttft_ms;      /* time to first token */
    unsigned tokens_per_s; /* 0 = all tokens at once */
    unsigned completion_tokens;
    unsigned long context; /* prompt tokens above this -> 400; 0 = no limit */
    uint64_t seed;
    double rate_429, rate_500, rate_503, rate_reset, rate_stall;
    double rate_slow;      /* --rate-slow: share of answers given slow_ttft_ms (own draw) */
    unsigned slow_ttft_ms; /* --slow-ttft-ms: the time to first token of those */
    char api_key[512]; /* "" = accept any bearer */
    char name[64];
    bool cache;
    size_t cache_blocks;
    size_t max_body;
    unsigned slow_headers_ms;
    unsigned retry_after_s;
    unsigned idle_timeout_s;
    char models[1024]; /* comma-separated, for GET /v1/models */
    tg_log_level_t log_level;
    sim_fault_t fault; /* --fault: injected into every request without x-sim-fault */
    char tokenizer[1024]; /* --tokenizer: exact DeepSeek tokenization; "" = 4-byte rule */
    bool hide_cache;      /* --report-cache off: usage without any cache-hit field */
} sim_opts_t;

/* Fills o with the defaults. */
void sim_opts_defaults(sim_opts_t *o);

/* Parses argv into o (call sim_opts_defaults first). Returns 0 on success,
 * 1 when --help was asked (nothing else to do), -1 with a message in err on
 * a bad option or value. */
int sim_opts_parse(int argc, char **argv, sim_opts_t *o, char *err, size_t errlen);

/* Writes the --help text. */
void sim_opts_usage(FILE *f);

#endif
