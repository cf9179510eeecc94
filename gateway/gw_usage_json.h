/* gw_usage_json: reads a provider's `usage` object into a usage record and
 * completes it with the equivalent fields of the other dialect (DeepSeek's
 * prompt_cache_hit/miss_tokens, OpenAI's prompt_tokens_details.cached_tokens).
 * Pure: no I/O. */
#ifndef GW_USAGE_JSON_H
#define GW_USAGE_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "gw_usage.h"

/* Fills the token fields of *rec from `usage` (a JSON object) and sets
 * usage_complete when prompt and completion counts are both present and sane.
 * Reasoning tokens are part of completion_tokens (never added twice). Fields
 * the provider did not report stay GW_USAGE_UNKNOWN. Returns false if `usage`
 * is not an object or holds a negative or non-integer count. */
bool gw_usage_from_json(const cJSON *usage, gw_usage_record_t *rec);

/* Adds to `usage` whichever of the two cache-hit dialects it lacks, computed
 * from the one it has. Returns true if it changed the object. */
bool gw_usage_json_complete(cJSON *usage);

#endif
