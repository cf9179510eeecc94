/* sim_stats: counters and their JSON rendering for GET /sim/stats. */
#include "sim_stats.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const char *const fault_names[SIM_FAULT_COUNT] = {
    "none", "429", "500", "503", "reset", "stall", "garbage", "no-usage", "cut", "slow-headers",
};
static const char *const endpoint_names[SIM_EP_COUNT] = {
    "chat_completions", "completions", "models", "healthz", "stats", "reset", "other",
};

const char *sim_fault_name(sim_fault_t f)
{
    return f < SIM_FAULT_COUNT ? fault_names[f] : "?";
}

int sim_fault_parse(const char *text, sim_fault_t *out)
{
    for (int i = 1; i < SIM_FAULT_COUNT; i++) {
        if (strcmp(text, fault_names[i]) == 0) {
            *out = (sim_fault_t)i;
            return 0;
        }
    }
    return -1;
}

void sim_stats_key_label(const char *key, char *out, size_t outlen)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0)
        snprintf(out, outlen, "(none)");
    else if (n <= 8)
        snprintf(out, outlen, "%s", key);
    else
        snprintf(out, outlen, "%.8s...%s", key, key + n - 4);
}

void sim_stats_count_key(sim_stats_t *s, const char *label)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        if (strcmp(s->keys[i].label, label) == 0) {
            s->keys[i].count++;
            return;
        }
    }
    if (s->nkeys == SIM_STATS_MAX_KEYS) {
        s->keys_overflow++;
        return;
    }
    snprintf(s->keys[s->nkeys].label, sizeof(s->keys[0].label), "%s", label);
    s->keys[s->nkeys++].count = 1;
}

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
    cJSON_AddNumberToObject(o, name, (double)v);
}

static void add_last(cJSON *root, const sim_stats_last_t *l)
{
    if (!l->valid) {
        cJSON_AddNullToObject(root, "last_request");
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(root, "last_request");
    cJSON_AddStringToObject(o, "endpoint", endpoint_names[l->endpoint]);
    cJSON_AddStringToObject(o, "model", l->model);
    cJSON_AddBoolToObject(o, "stream", l->stream);
    cJSON *so = l->stream_options[0] ? cJSON_Parse(l->stream_options) : NULL;
    if (so)
        cJSON_AddItemToObject(o, "stream_options", so);
    else
        cJSON_AddNullToObject(o, "stream_options");
    if (l->max_tokens >= 0)
        cJSON_AddNumberToObject(o, "max_tokens", (double)l->max_tokens);
    else
        cJSON_AddNullToObject(o, "max_tokens");
    cJSON_AddBoolToObject(o, "authorization", l->authorization);
    cJSON_AddStringToObject(o, "key", l->key);
    if (l->request_id[0])
        cJSON_AddStringToObject(o, "x_request_id", l->request_id);
    else
        cJSON_AddNullToObject(o, "x_request_id");
    cJSON_AddStringToObject(o, "fault", sim_fault_name(l->fault));
    cJSON_AddNumberToObject(o, "status", l->status);
    add_u64(o, "prompt_tokens", l->prompt_tokens);
}

char *sim_stats_json(const sim_stats_t *s, const char *name, bool cache_on, size_t cache_blocks,
                     size_t cache_capacity, uint64_t in_flight)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "name", name);
    cJSON *req = cJSON_AddObjectToObject(root, "requests");
    add_u64(req, "total", s->total);
    add_u64(req, "streamed", s->streamed);
    add_u64(req, "in_flight", in_flight);
    add_u64(req, "cancelled", s->cancelled);
    add_u64(req, "slow", s->slow);
    add_u64(root, "connections_accepted", s->connections);
    cJSON *ep = cJSON_AddObjectToObject(req, "by_endpoint");
    for (int i = 0; i < SIM_EP_COUNT; i++)
        add_u64(ep, endpoint_names[i], s->by_endpoint[i]);
    cJSON *fa = cJSON_AddObjectToObject(req, "by_fault");
    for (int i = 0; i < SIM_FAULT_COUNT; i++)
        add_u64(fa, fault_names[i], s->by_fault[i]);
    cJSON *keys = cJSON_AddObjectToObject(req, "by_key");
    for (size_t i = 0; i < s->nkeys; i++)
        add_u64(keys, s->keys[i].label, s->keys[i].count);
    if (s->keys_overflow)
        add_u64(keys, "(other)", s->keys_overflow);
    cJSON *err = cJSON_AddObjectToObject(root, "errors");
    add_u64(err, "bad_request", s->bad_request);
    add_u64(err, "unauthorized", s->unauthorized);
    add_u64(err, "context_length_exceeded", s->context_exceeded);
    cJSON *tok = cJSON_AddObjectToObject(root, "tokens");
    add_u64(tok, "prompt", s->prompt_tokens);
    add_u64(tok, "completion", s->completion_tokens);
    add_u64(tok, "reasoning", s->reasoning_tokens);
    add_u64(tok, "cache_hit", s->cache_hit_tokens);
    add_u64(tok, "cache_miss", s->cache_miss_tokens);
    cJSON *cache = cJSON_AddObjectToObject(root, "cache");
    cJSON_AddBoolToObject(cache, "enabled", cache_on);
    add_u64(cache, "blocks", cache_blocks);
    add_u64(cache, "capacity", cache_capacity);
    add_last(root, &s->last);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
