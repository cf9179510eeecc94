/* gw_prefix: the prefix index on the request path (docs/cache.md). Before
 * routing, one Redis round trip on the worker's own connection finds, for
 * each provider of the model, how many leading 64-token blocks of this
 * prompt it served recently FOR THIS TEAM (keys are scoped by team and
 * namespace: one team's prompts never move another team's routing, timing
 * or price). The router then weighs each provider's expected cache hits.
 * After a provider answered, the prompt's blocks are recorded for it
 * (fire-and-forget, with the provider's TTL). Redis down, slow or answering
 * nonsense: no prediction, requests go on at once at normal cost. */
#ifndef GW_PREFIX_H
#define GW_PREFIX_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_config.h"
#include "gw_prompt.h"
#include "gw_usage.h"

typedef struct gw_worker gw_worker_t;
typedef struct gw_prefix_lookup gw_prefix_lookup_t;

/* One request's prefix state; lives in the exchange, zero-initialised. */
typedef struct gw_prefix_req {
    gw_prompt_blocks_t blocks;         /* the prompt's block hashes (owned) */
    int model_index;                   /* the model the blocks and predictions are for */
    int64_t team;                      /* the team whose index is read and written */
    int64_t prompt_tokens;
    bool predicted;                    /* hit_tokens holds a prediction */
    int64_t hit_tokens[GW_MAX_ROUTES]; /* per route: predicted cache-hit tokens */
    bool usage_reported_hits;          /* the provider's usage carried a cache-hit count */
    gw_prefix_lookup_t *pending;       /* the lookup waiting for Redis */
} gw_prefix_req_t;

/* How many blocks to hash for model mi: prefix_max_blocks when the index is
 * on and the model has a tokenizer, else 0 (no prediction for that model). */
size_t gw_prefix_max_blocks(gw_worker_t *w, int mi);

typedef void (*gw_prefix_cb)(void *arg);

/* Starts the lookup for the prompt whose blocks are in pfx->blocks (counted
 * exactly: prompt_tokens, for model mi, for team `team`). Returns true when
 * it waits for Redis: cb(arg) runs once, when the answer came or the timeout
 * passed (with or without a prediction), unless gw_prefix_cancel came first.
 * Returns false when decided at once (index off, prompt under 64 tokens:
 * predicted 0, Redis down: no prediction); cb is not called then. */
bool gw_prefix_lookup(gw_worker_t *w, gw_prefix_req_t *pfx, int mi, int64_t team,
                      int64_t prompt_tokens, bool exact, gw_prefix_cb cb, void *arg);

/* Reads whether a provider usage object reports cache hits at all
 * (prompt_cache_hit_tokens or prompt_tokens_details.cached_tokens). Call it
 * on the usage as received, before it is completed for the client. */
bool gw_prefix_usage_reports_hits(const cJSON *usage);

/* At settle, for the route that served (model mi, route index, or -1):
 * writes the prediction into the record (cache_predicted,
 * cache_hit_predicted_tokens), counts accuracy where the provider reported
 * hits, bills the prediction where the provider opted in
 * (bill_predicted_cache) and reported none, and, on status 200, records the
 * prompt's blocks for that provider (fire-and-forget). Before pricing. */
void gw_prefix_settle(gw_worker_t *w, gw_prefix_req_t *pfx, int mi, int route, int status,
                      gw_usage_record_t *rec);

/* Cancels a pending lookup and frees the blocks; pfx may be reused after
 * zeroing. Safe to call twice. */
void gw_prefix_release(gw_prefix_req_t *pfx);

#endif
