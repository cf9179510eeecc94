/* Unit tests for gateway/gw_usage_json: DeepSeek and OpenAI usage dialects,
 * reasoning tokens never added twice, bad counts refused, completion of the
 * missing dialect. */
#include "gw_usage_json.h"

#include <stdlib.h>

#include "check.h"

static gw_usage_record_t parse(const char *json, bool *ok)
{
    gw_usage_record_t r;
    memset(&r, 0, sizeof r);
    cJSON *j = cJSON_Parse(json);
    *ok = gw_usage_from_json(j, &r);
    cJSON_Delete(j);
    return r;
}

int main(void)
{
    bool ok;
    /* DeepSeek's real example from the brief */
    gw_usage_record_t r = parse("{\"prompt_tokens\":102056,\"completion_tokens\":300,"
                                "\"prompt_cache_hit_tokens\":94464,"
                                "\"prompt_cache_miss_tokens\":7592,"
                                "\"completion_tokens_details\":{\"reasoning_tokens\":120}}",
                                &ok);
    CHECK(ok && r.usage_complete);
    CHECK(r.prompt_tokens == 102056 && r.cache_hit_tokens == 94464 &&
          r.cache_miss_tokens == 7592);
    CHECK(r.completion_tokens == 300 && r.reasoning_tokens == 120);

    /* OpenAI: cached_tokens is a subset of prompt_tokens */
    r = parse("{\"prompt_tokens\":2000,\"completion_tokens\":10,"
              "\"prompt_tokens_details\":{\"cached_tokens\":1024}}",
              &ok);
    CHECK(ok && r.usage_complete && r.cache_hit_tokens == 1024 && r.cache_miss_tokens == 976);
    CHECK(r.reasoning_tokens == GW_USAGE_UNKNOWN);

    /* no cache fields at all: every prompt token missed */
    r = parse("{\"prompt_tokens\":5,\"completion_tokens\":7}", &ok);
    CHECK(ok && r.usage_complete && r.cache_hit_tokens == 0 && r.cache_miss_tokens == 5);

    /* missing completion count: incomplete, never zero */
    r = parse("{\"prompt_tokens\":5}", &ok);
    CHECK(ok && !r.usage_complete && r.completion_tokens == GW_USAGE_UNKNOWN);

    /* inconsistent hit + miss != prompt: kept as reported, flagged incomplete */
    r = parse("{\"prompt_tokens\":10,\"completion_tokens\":1,\"prompt_cache_hit_tokens\":64,"
              "\"prompt_cache_miss_tokens\":1}",
              &ok);
    CHECK(ok && !r.usage_complete);

    /* bad values refused */
    parse("{\"prompt_tokens\":-1,\"completion_tokens\":1}", &ok);
    CHECK(!ok);
    parse("{\"prompt_tokens\":1.5,\"completion_tokens\":1}", &ok);
    CHECK(!ok);
    parse("{\"prompt_tokens\":\"12\",\"completion_tokens\":1}", &ok);
    CHECK(!ok);
    parse("[1,2]", &ok);
    CHECK(!ok);

    /* completing the other dialect */
    cJSON *u = cJSON_Parse("{\"prompt_tokens\":100,\"completion_tokens\":1,"
                           "\"prompt_cache_hit_tokens\":64,\"prompt_cache_miss_tokens\":36}");
    CHECK(gw_usage_json_complete(u));
    cJSON *pd = cJSON_GetObjectItem(u, "prompt_tokens_details");
    CHECK(pd && cJSON_GetObjectItem(pd, "cached_tokens")->valuedouble == 64);
    CHECK(!gw_usage_json_complete(u)); /* idempotent */
    cJSON_Delete(u);
    u = cJSON_Parse("{\"prompt_tokens\":100,\"completion_tokens\":1,"
                    "\"prompt_tokens_details\":{\"cached_tokens\":64}}");
    CHECK(gw_usage_json_complete(u));
    CHECK(cJSON_GetObjectItem(u, "prompt_cache_hit_tokens")->valuedouble == 64);
    CHECK(cJSON_GetObjectItem(u, "prompt_cache_miss_tokens")->valuedouble == 36);
    cJSON_Delete(u);
    return CHECK_DONE();
}
