/* sim_stats: what the simulator has seen, for tests to assert on through
 * GET /sim/stats: requests by endpoint, fault and bearer key (keys shown
 * truncated, never whole), token totals, and the last /v1 request's
 * details. Not thread-safe: the caller serializes access. */
#ifndef SIM_STATS_H
#define SIM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SIM_EP_CHAT = 0,
    SIM_EP_COMPLETIONS,
    SIM_EP_MODELS,
    SIM_EP_HEALTHZ,
    SIM_EP_STATS,
    SIM_EP_RESET,
    SIM_EP_OTHER,
    SIM_EP_COUNT
} sim_endpoint_t;

typedef enum {
    SIM_FAULT_NONE = 0,
    SIM_FAULT_429,
    SIM_FAULT_500,
    SIM_FAULT_503,
    SIM_FAULT_RESET,
    SIM_FAULT_STALL,
    SIM_FAULT_GARBAGE,
    SIM_FAULT_NO_USAGE,
    SIM_FAULT_CUT,
    SIM_FAULT_SLOW_HEADERS,
    SIM_FAULT_COUNT
} sim_fault_t;

/* Name of a fault as written in x-sim-fault ("none" for SIM_FAULT_NONE). */
const char *sim_fault_name(sim_fault_t f);

/* Parses an x-sim-fault value. Returns 0 and sets *out, or -1. */
int sim_fault_parse(const char *text, sim_fault_t *out);

#define SIM_STATS_MAX_KEYS 256

typedef struct sim_stats_last {
    bool valid;
    sim_endpoint_t endpoint;
    char model[256];
    bool stream;
    char stream_options[256]; /* compact JSON, "" when absent */
    long long max_tokens;     /* -1 when absent */
    bool authorization;       /* an Authorization header was present */
    char key[32];             /* truncated bearer */
    char request_id[65];      /* x-request-id header as received, "" if none */
    sim_fault_t fault;
    int status; /* HTTP status answered (0 while in progress) */
    uint64_t prompt_tokens;
} sim_stats_last_t;

typedef struct sim_stats {
    uint64_t total;
    uint64_t by_endpoint[SIM_EP_COUNT];
    uint64_t by_fault[SIM_FAULT_COUNT];
    uint64_t streamed;
    uint64_t cancelled; /* calls whose client left before the answer was complete */
    uint64_t slow;      /* answers given --slow-ttft-ms by the --rate-slow draw */
    uint64_t connections; /* TCP connections accepted (keep-alive reuse shows here) */
    uint64_t bad_request, unauthorized, context_exceeded;
    uint64_t prompt_tokens, completion_tokens, reasoning_tokens, cache_hit_tokens,
        cache_miss_tokens;
    struct {
        char label[32];
        uint64_t count;
    } keys[SIM_STATS_MAX_KEYS];
    size_t nkeys;
    uint64_t keys_overflow; /* requests from keys beyond the table */
    sim_stats_last_t last;
} sim_stats_t;

/* Writes the display form of a bearer key into out: the whole key when it
 * has at most 8 characters, else its first 8 characters, "..." and its last
 * 4; "(none)" for no key. */
void sim_stats_key_label(const char *key, char *out, size_t outlen);

/* Counts one request for the key label. */
void sim_stats_count_key(sim_stats_t *s, const char *label);

/* Renders the stats as a JSON document (malloc'd, caller frees), or NULL on
 * out-of-memory. */
char *sim_stats_json(const sim_stats_t *s, const char *name, bool cache_on, size_t cache_blocks,
                     size_t cache_capacity, uint64_t in_flight);

#endif
