/* gw_usage_json: provider usage objects -> usage records (both dialects). */
#include "gw_usage_json.h"

#include <math.h>

/* Reads a non-negative integer member; returns 1 found, 0 absent, -1 bad. */
static int get_count(const cJSON *obj, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9.0e15 || floor(d) != d)
        return -1;
    *out = (int64_t)d;
    return 1;
}

bool gw_usage_from_json(const cJSON *usage, gw_usage_record_t *rec)
{
    if (!cJSON_IsObject(usage))
        return false;
    int64_t prompt = GW_USAGE_UNKNOWN, completion = GW_USAGE_UNKNOWN, hit = GW_USAGE_UNKNOWN,
            miss = GW_USAGE_UNKNOWN, reasoning = GW_USAGE_UNKNOWN, cached = GW_USAGE_UNKNOWN;
    if (get_count(usage, "prompt_tokens", &prompt) < 0 ||
        get_count(usage, "completion_tokens", &completion) < 0 ||
        get_count(usage, "prompt_cache_hit_tokens", &hit) < 0 ||
        get_count(usage, "prompt_cache_miss_tokens", &miss) < 0)
        return false;
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    if (cJSON_IsObject(pd) && get_count(pd, "cached_tokens", &cached) < 0)
        return false;
    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details");
    if (cJSON_IsObject(cd) && get_count(cd, "reasoning_tokens", &reasoning) < 0)
        return false;
    /* DeepSeek's own fields win; OpenAI's cached_tokens is the same hit count. */
    if (hit == GW_USAGE_UNKNOWN && cached != GW_USAGE_UNKNOWN)
        hit = cached;
    if (miss == GW_USAGE_UNKNOWN && hit != GW_USAGE_UNKNOWN && prompt != GW_USAGE_UNKNOWN &&
        prompt >= hit)
        miss = prompt - hit;
    if (hit == GW_USAGE_UNKNOWN && miss == GW_USAGE_UNKNOWN && prompt != GW_USAGE_UNKNOWN) {
        hit = 0; /* the provider reported no cache at all: every prompt token missed */
        miss = prompt;
    }
    rec->prompt_tokens = prompt;
    rec->completion_tokens = completion;
    rec->cache_hit_tokens = hit;
    rec->cache_miss_tokens = miss;
    rec->reasoning_tokens = reasoning;
    rec->usage_complete = prompt != GW_USAGE_UNKNOWN && completion != GW_USAGE_UNKNOWN &&
                          (hit == GW_USAGE_UNKNOWN || miss == GW_USAGE_UNKNOWN ||
                           hit + miss == prompt) &&
                          (reasoning == GW_USAGE_UNKNOWN || reasoning <= completion);
    return true;
}

bool gw_usage_json_complete(cJSON *usage)
{
    if (!cJSON_IsObject(usage))
        return false;
    gw_usage_record_t rec;
    if (!gw_usage_from_json(usage, &rec) || rec.cache_hit_tokens == GW_USAGE_UNKNOWN)
        return false;
    bool changed = false;
    if (!cJSON_HasObjectItem(usage, "prompt_cache_hit_tokens")) {
        cJSON_AddNumberToObject(usage, "prompt_cache_hit_tokens", (double)rec.cache_hit_tokens);
        changed = true;
    }
    if (!cJSON_HasObjectItem(usage, "prompt_cache_miss_tokens") &&
        rec.cache_miss_tokens != GW_USAGE_UNKNOWN) {
        cJSON_AddNumberToObject(usage, "prompt_cache_miss_tokens", (double)rec.cache_miss_tokens);
        changed = true;
    }
    cJSON *pd = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    if (!cJSON_IsObject(pd)) {
        if (pd)
            return changed; /* something else under that name: leave it alone */
        pd = cJSON_AddObjectToObject(usage, "prompt_tokens_details");
    }
    if (pd && !cJSON_HasObjectItem(pd, "cached_tokens")) {
        cJSON_AddNumberToObject(pd, "cached_tokens", (double)rec.cache_hit_tokens);
        changed = true;
    }
    return changed;
}
