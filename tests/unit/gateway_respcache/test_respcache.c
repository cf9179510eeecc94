/* Unit tests for gateway/gw_respcache (the response cache's pure part):
 * which requests are eligible, canonical JSON and the cache key (what changes
 * it and what does not), assembling an answer from a body or SSE events
 * (and what is refused), the stored entry (round trip, every corruption
 * refused, never a crash), replay as JSON and as SSE, and the config keys. */
#include "gw_respcache.h"
#include "gw_config.h"
#include "gw_respcache_opts.h"

#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        fprintf(stderr, "test JSON does not parse: %s\n", text);
        abort();
    }
    return j;
}

static bool eligible(const char *text)
{
    cJSON *j = parse(text);
    char why[160];
    bool ok = gw_rc_eligible(j, why, sizeof why);
    cJSON_Delete(j);
    return ok;
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_eligible(void)
{
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0}"));
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0.0}"));
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"seed\":42}"));
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"seed\":42,\"temperature\":0.7}"));
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"n\":1}"));
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"logprobs\":false}"));
    CHECK(eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"tools\":[{\"type\":\"function\","
                   "\"function\":{\"name\":\"f\"}}]}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS "}"));                     /* default temperature 1 */
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0.7}")); /* sampled */
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":\"0\"}")); /* not a number */
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"seed\":1.5}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"seed\":\"7\"}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"n\":2}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"logprobs\":true}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"top_logprobs\":2}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"audio\":{}}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"x\":123456789012345678901}"));
    CHECK(!eligible("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"model\":\"other\"}"));
    CHECK(!eligible("[1,2]"));
}

static char *canon(const char *text, const char *const *skip)
{
    cJSON *j = parse(text);
    char err[128];
    char *c = gw_rc_canonical(j, skip, err, sizeof err);
    cJSON_Delete(j);
    return c;
}

static void test_canonical(void)
{
    char *c = canon("{ \"b\" : 1.0, \"a\": [1e0, -0, 0.5, 2e3, -7], \"c\": {\"z\":null,\"y\":true,"
                    "\"x\":false}, \"d\": \"\\u00e9\\n\\u0001\\\"\\\\/\"}",
                    NULL);
    CHECK_STR(c, "{\"a\":[1,0,0.5,2000,-7],\"b\":1,\"c\":{\"x\":false,\"y\":true,\"z\":null},"
                 "\"d\":\"\xc3\xa9\\n\\u0001\\\"\\\\/\"}");
    free(c);
    /* the same text however it was written */
    char *x = canon("{\"d\":\"\xc3\xa9\",\"a\":0.1}", NULL);
    char *y = canon("{ \"a\" : 1e-1 , \"d\" : \"\\u00E9\" }", NULL);
    CHECK_STR(x, y);
    free(x);
    free(y);
    /* skip applies to the top level only */
    static const char *const skip[] = {"stream", NULL};
    c = canon("{\"stream\":true,\"o\":{\"stream\":1}}", skip);
    CHECK_STR(c, "{\"o\":{\"stream\":1}}");
    free(c);
    CHECK(canon("{\"a\":1,\"a\":2}", NULL) == NULL);
    CHECK(canon("{\"o\":{\"k\":1,\"k\":1}}", NULL) == NULL);
    CHECK(canon("[9007199254740993]", NULL) == NULL);
    CHECK(canon("[9007199254740992]", NULL) == NULL);
    c = canon("[9007199254740991, -9007199254740991]", NULL);
    CHECK_STR(c, "[9007199254740991,-9007199254740991]");
    free(c);
    /* too deep */
    char deep[400] = "";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    CHECK(canon(deep, NULL) == NULL);
}

static void key_of(const char *text, int64_t team, gw_rc_kind_t kind, const char *model,
                   char out[GW_RC_KEY_HEX])
{
    cJSON *j = parse(text);
    char err[128];
    CHECK(gw_rc_key(team, kind, model, j, out, err, sizeof err) == 0);
    CHECK(strlen(out) == 64);
    cJSON_Delete(j);
}

static void test_key(void)
{
    const char *base = "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10}";
    char k0[GW_RC_KEY_HEX], k[GW_RC_KEY_HEX];
    key_of(base, 7, GW_RC_CHAT, "m", k0);
    /* the same key: formatting, order, and parameters that do not change the answer */
    const char *same[] = {
        "{ \"max_tokens\" : 10.0 , \"temperature\" : 0.0 , " MSGS ", \"model\" : \"m\" }",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"stream\":true}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"stream\":false,"
        "\"stream_options\":{\"include_usage\":true}}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"user\":\"u1\"}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"metadata\":{\"a\":\"b\"},"
        "\"store\":true}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"n\":1}",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        key_of(same[i], 7, GW_RC_CHAT, "m", k);
        if (strcmp(k, k0))
            fprintf(stderr, "key differs for %s\n", same[i]);
        CHECK_STR(k, k0);
    }
    /* a different key: the team, the endpoint, the model, every parameter that matters */
    key_of(base, 8, GW_RC_CHAT, "m", k);
    CHECK(strcmp(k, k0) != 0);
    key_of(base, 7, GW_RC_TEXT, "m", k);
    CHECK(strcmp(k, k0) != 0);
    key_of(base, 7, GW_RC_CHAT, "m2", k);
    CHECK(strcmp(k, k0) != 0);
    const char *diff[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}],\"temperature\":0,"
        "\"max_tokens\":10}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"hi\"}],\"temperature\":"
        "0,"
        "\"max_tokens\":10}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":11}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"seed\":1}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"top_p\":0.5}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"stop\":[\"x\"]}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"tools\":[]}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0,\"max_tokens\":10,\"response_format\":"
        "{\"type\":\"json_object\"}}",
        "{\"model\":\"m\"," MSGS ",\"temperature\":0}",
    };
    for (size_t i = 0; i < sizeof diff / sizeof diff[0]; i++) {
        key_of(diff[i], 7, GW_RC_CHAT, "m", k);
        if (!strcmp(k, k0))
            fprintf(stderr, "key is the same for %s\n", diff[i]);
        CHECK(strcmp(k, k0) != 0);
    }
    cJSON *dup = parse("{\"model\":\"m\",\"temperature\":0,\"temperature\":1}");
    char err[128];
    CHECK(gw_rc_key(7, GW_RC_CHAT, "m", dup, k, err, sizeof err) == -1);
    cJSON_Delete(dup);
}

static const char *body_chat =
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"up\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello \\u00e9 "
    "world\",\"reasoning_content\":\"think\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5}}";

static int build_body(const char *text, gw_rc_kind_t kind, size_t max, gw_rc_answer_t *a, char *why,
                      size_t whylen)
{
    gw_rc_builder_t b;
    gw_rc_builder_init(&b, kind, max);
    cJSON *j = parse(text);
    gw_rc_builder_feed_body(&b, j);
    cJSON_Delete(j);
    int r = gw_rc_builder_finish(&b, "prov", "up", 7, 5, 2, a);
    snprintf(why, whylen, "%s", b.why);
    gw_rc_builder_free(&b);
    return r;
}

static void test_builder_body(void)
{
    gw_rc_answer_t a;
    char why[96];
    CHECK(build_body(body_chat, GW_RC_CHAT, 1 << 20, &a, why, sizeof why) == 0);
    CHECK_STR(a.content, "Hello \xc3\xa9 world");
    CHECK_STR(a.reasoning, "think");
    CHECK_STR(a.finish_reason, "stop");
    CHECK_STR(a.provider, "prov");
    CHECK_STR(a.upstream_model, "up");
    CHECK(a.created == 1700000000 && a.prompt_tokens == 7 && a.completion_tokens == 5 &&
          a.reasoning_tokens == 2);
    gw_rc_answer_free(&a);
    /* over the size limit: 1, nothing kept */
    CHECK(build_body(body_chat, GW_RC_CHAT, 8, &a, why, sizeof why) == 1);
    CHECK(a.content == NULL);
    /* a completions body */
    CHECK(build_body("{\"choices\":[{\"index\":0,\"text\":\"abc\",\"finish_reason\":\"length\"}]}",
                     GW_RC_TEXT, 100, &a, why, sizeof why) == 0);
    CHECK_STR(a.content, "abc");
    CHECK(a.kind == GW_RC_TEXT && a.reasoning == NULL);
    gw_rc_answer_free(&a);
    /* null content is kept as null */
    CHECK(build_body("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "null},\"finish_reason\":\"stop\"}]}",
                     GW_RC_CHAT, 100, &a, why, sizeof why) == 0);
    CHECK(a.content == NULL);
    gw_rc_answer_free(&a);
    /* refused: tool calls, several choices, logprobs, no finish, odd shapes */
    const char *refused[] = {
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}",
        "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"a\",\"function_call\":{}},"
        "\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"a\"},\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"message\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"a\"},\"logprobs\":{\"content\":[]},"
        "\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"a\"},\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"message\":{\"content\":5},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"index\":0,\"message\":\"x\",\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[]}",
        "{\"choices\":{}}",
        "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"a\",\"refusal\":\"no\"},"
        "\"finish_reason\":\"stop\"}]}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int r = build_body(refused[i], GW_RC_CHAT, 1000, &a, why, sizeof why);
        if (r != -1)
            fprintf(stderr, "not refused: %s\n", refused[i]);
        CHECK(r == -1 && why[0]);
    }
    /* unknown counts are refused */
    gw_rc_builder_t b;
    gw_rc_builder_init(&b, GW_RC_CHAT, 1000);
    cJSON *j = parse(body_chat);
    gw_rc_builder_feed_body(&b, j);
    cJSON_Delete(j);
    CHECK(gw_rc_builder_finish(&b, "p", "u", -1, 5, -1, &a) == -1);
    gw_rc_builder_free(&b);
}

static const char *stream_events[] = {
    "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1700000001,\"choices\":"
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":"
    "\"th\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    ": keep-alive\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"ink\"},\"finish_reason\":"
    "null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello \\u00e9\"},\"finish_reason\":"
    "null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}]}"
    "\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}"
    "\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5}}\n\n",
    "data: [DONE]\n\n",
};
#define N_EVENTS (sizeof stream_events / sizeof stream_events[0])

static void test_builder_stream(void)
{
    gw_rc_builder_t b;
    gw_rc_answer_t a;
    gw_rc_builder_init(&b, GW_RC_CHAT, 1 << 20);
    for (size_t i = 0; i < N_EVENTS; i++)
        gw_rc_builder_feed_event(&b, stream_events[i], strlen(stream_events[i]));
    CHECK(gw_rc_builder_finish(&b, "prov", "up", 7, 5, 2, &a) == 0);
    CHECK_STR(a.content, "Hello \xc3\xa9 world");
    CHECK_STR(a.reasoning, "think");
    CHECK_STR(a.finish_reason, "stop");
    CHECK(a.created == 1700000001);
    /* the same answer as from the body */
    gw_rc_answer_t c;
    char why[96];
    CHECK(build_body(body_chat, GW_RC_CHAT, 1 << 20, &c, why, sizeof why) == 0);
    char *ja = gw_rc_replay_json(&a, "id"), *jc = gw_rc_replay_json(&c, "id");
    c.created = a.created;
    free(jc);
    jc = gw_rc_replay_json(&c, "id");
    CHECK_STR(ja, jc);
    free(ja);
    free(jc);
    gw_rc_answer_free(&a);
    gw_rc_answer_free(&c);
    gw_rc_builder_free(&b);
    /* no [DONE]: the stream was cut */
    gw_rc_builder_init(&b, GW_RC_CHAT, 1 << 20);
    for (size_t i = 0; i + 1 < N_EVENTS; i++)
        gw_rc_builder_feed_event(&b, stream_events[i], strlen(stream_events[i]));
    CHECK(gw_rc_builder_finish(&b, "p", "u", 7, 5, -1, &a) == -1);
    gw_rc_builder_free(&b);
    /* garbage in an event, and a reset after a failed attempt */
    gw_rc_builder_init(&b, GW_RC_CHAT, 1 << 20);
    gw_rc_builder_feed_event(&b, "data: {not json\n\n", 17);
    CHECK(b.refused);
    gw_rc_builder_reset(&b);
    CHECK(!b.refused && b.max_bytes == 1 << 20);
    for (size_t i = 0; i < N_EVENTS; i++)
        gw_rc_builder_feed_event(&b, stream_events[i], strlen(stream_events[i]));
    CHECK(gw_rc_builder_finish(&b, "p", "u", 7, 5, -1, &a) == 0);
    CHECK(a.reasoning_tokens == -1);
    gw_rc_answer_free(&a);
    gw_rc_builder_free(&b);
    /* a tool-call delta and a second choice are refused */
    const char *bad[] = {
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0}]}\n\n",
        "data: [1]\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_rc_builder_init(&b, GW_RC_CHAT, 1 << 20);
        gw_rc_builder_feed_event(&b, bad[i], strlen(bad[i]));
        CHECK(b.refused);
        gw_rc_builder_free(&b);
    }
    /* too big when streamed */
    gw_rc_builder_init(&b, GW_RC_CHAT, 10);
    for (size_t i = 0; i < N_EVENTS; i++)
        gw_rc_builder_feed_event(&b, stream_events[i], strlen(stream_events[i]));
    CHECK(gw_rc_builder_finish(&b, "p", "u", 7, 5, -1, &a) == 1);
    gw_rc_builder_free(&b);
}

static gw_rc_answer_t sample(void)
{
    gw_rc_answer_t a = {0};
    a.kind = GW_RC_CHAT;
    a.content = strdup("caf\xc3\xa9 \"quoted\"\n\xe2\x82\xac\xf0\x9f\x98\x80 end");
    a.reasoning = strdup("because");
    snprintf(a.finish_reason, sizeof a.finish_reason, "stop");
    snprintf(a.provider, sizeof a.provider, "deepseek");
    snprintf(a.upstream_model, sizeof a.upstream_model, "deepseek-chat");
    a.created = 1700000000;
    a.prompt_tokens = 100;
    a.completion_tokens = 20;
    a.reasoning_tokens = 4;
    return a;
}

static void test_entry(void)
{
    gw_rc_answer_t a = sample(), d;
    size_t len;
    char *e = gw_rc_entry_encode(&a, 42, &len);
    CHECK(e && strlen(e) == len);
    char err[160];
    CHECK(gw_rc_entry_decode(e, len, 42, &d, err, sizeof err) == 0);
    CHECK_STR(d.content, a.content);
    CHECK_STR(d.reasoning, a.reasoning);
    CHECK_STR(d.finish_reason, "stop");
    CHECK_STR(d.provider, "deepseek");
    CHECK_STR(d.upstream_model, "deepseek-chat");
    CHECK(d.kind == GW_RC_CHAT && d.created == a.created && d.prompt_tokens == 100 &&
          d.completion_tokens == 20 && d.reasoning_tokens == 4);
    gw_rc_answer_free(&d);
    /* another team's entry is refused */
    CHECK(gw_rc_entry_decode(e, len, 43, &d, err, sizeof err) == -1);
    CHECK(strstr(err, "team") != NULL);
    /* every truncation, and every single-byte corruption, decodes or is refused: no crash */
    for (size_t n = 0; n < len; n++) {
        CHECK(gw_rc_entry_decode(e, n, 42, &d, err, sizeof err) == -1);
    }
    char *m = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(m, e, len);
        m[i] ^= 0x5a;
        if (gw_rc_entry_decode(m, len, 42, &d, err, sizeof err) == 0)
            gw_rc_answer_free(&d);
    }
    /* random garbage */
    srand(7);
    for (int r = 0; r < 2000; r++) {
        size_t n = (size_t)(rand() % 64);
        for (size_t i = 0; i < n && i < len; i++)
            m[i] = (char)(rand() & 0xff);
        CHECK(gw_rc_entry_decode(m, n < len ? n : len, 42, &d, err, sizeof err) == -1);
    }
    free(m);
    free(e);
    /* wrong fields, each refused */
    const char *bad[] = {
        "{\"v\":2,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"img\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":7,\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":-1,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1,\"reasoning_tokens\":2}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"stop\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}"
        "}",
        "{\"v\":1,\"team\":42,\"kind\":\"text\",\"created\":1,\"content\":null,\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"finish_reason\":"
        "\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":{\"prompt_tokens\":1.5,"
        "\"completion_tokens\":1}}",
        "{\"v\":1,\"team\":42,\"kind\":\"chat\",\"created\":1,\"content\":\"a\",\"reasoning_"
        "content\":"
        "false,\"finish_reason\":\"stop\",\"provider\":\"p\",\"upstream_model\":\"u\",\"usage\":"
        "{\"prompt_tokens\":1,\"completion_tokens\":1}}",
        "\x80\x81garbage",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = gw_rc_entry_decode(bad[i], strlen(bad[i]), 42, &d, err, sizeof err);
        if (r != -1)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(r == -1 && err[0]);
    }
    gw_rc_answer_free(&a);
}

static void test_replay_json(void)
{
    gw_rc_answer_t a = sample();
    char *t = gw_rc_replay_json(&a, "chatcmpl-1");
    cJSON *j = parse(t);
    CHECK_STR(cJSON_GetObjectItem(j, "id")->valuestring, "chatcmpl-1");
    CHECK_STR(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    CHECK_STR(cJSON_GetObjectItem(j, "model")->valuestring, "deepseek-chat");
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *m = cJSON_GetObjectItem(c, "message");
    CHECK_STR(cJSON_GetObjectItem(m, "content")->valuestring, a.content);
    CHECK_STR(cJSON_GetObjectItem(m, "reasoning_content")->valuestring, "because");
    CHECK_STR(cJSON_GetObjectItem(m, "role")->valuestring, "assistant");
    CHECK_STR(cJSON_GetObjectItem(c, "finish_reason")->valuestring, "stop");
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    CHECK(cJSON_GetObjectItem(u, "prompt_tokens")->valuedouble == 100);
    CHECK(cJSON_GetObjectItem(u, "completion_tokens")->valuedouble == 20);
    CHECK(cJSON_GetObjectItem(u, "total_tokens")->valuedouble == 120);
    CHECK(cJSON_GetObjectItem(u, "prompt_cache_hit_tokens")->valuedouble == 100);
    CHECK(cJSON_GetObjectItem(u, "prompt_cache_miss_tokens")->valuedouble == 0);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(u, "prompt_tokens_details"), "cached_tokens")
              ->valuedouble == 100);
    CHECK(
        cJSON_GetObjectItem(cJSON_GetObjectItem(u, "completion_tokens_details"), "reasoning_tokens")
            ->valuedouble == 4);
    cJSON_Delete(j);
    free(t);
    /* completions */
    free(a.reasoning);
    a.reasoning = NULL;
    a.kind = GW_RC_TEXT;
    t = gw_rc_replay_json(&a, "cmpl-1");
    j = parse(t);
    CHECK_STR(cJSON_GetObjectItem(j, "object")->valuestring, "text_completion");
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    CHECK_STR(cJSON_GetObjectItem(c, "text")->valuestring, a.content);
    cJSON_Delete(j);
    free(t);
    gw_rc_answer_free(&a);
}

/* Replays as SSE, feeds the events back into a builder: the same answer. */
static void test_replay_sse(void)
{
    for (int with_usage = 0; with_usage < 2; with_usage++) {
        for (size_t chunk = 1; chunk <= 40; chunk += 13) {
            gw_rc_answer_t a = sample();
            size_t len;
            char *t = gw_rc_replay_sse(&a, "chatcmpl-2", with_usage, chunk, "0.0012 USD", &len);
            CHECK(strlen(t) == len);
            /* split into events and check each */
            gw_rc_builder_t b;
            gw_rc_builder_init(&b, GW_RC_CHAT, 1 << 20);
            int n = 0, usage_events = 0, role_events = 0;
            bool charge_before_done = false;
            const char *p = t, *end;
            const char *last = NULL;
            while ((end = strstr(p, "\n\n"))) {
                size_t el = (size_t)(end + 2 - p);
                if (!strncmp(p, ": x-tollgate-charge 0.0012 USD", 30))
                    charge_before_done = strstr(end, "data: [DONE]") == end + 2;
                if (!strncmp(p, "data: {", 7)) {
                    cJSON *j = cJSON_ParseWithLength(p + 6, el - 8);
                    CHECK(j != NULL);
                    CHECK_STR(cJSON_GetObjectItem(j, "object")->valuestring,
                              "chat.completion.chunk");
                    const cJSON *ch = cJSON_GetObjectItem(j, "choices");
                    if (cJSON_GetArraySize(ch) == 0 && cJSON_GetObjectItem(j, "usage"))
                        usage_events++;
                    const cJSON *d = cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 0), "delta");
                    if (cJSON_GetObjectItem(d, "role"))
                        role_events++;
                    const cJSON *ct = cJSON_GetObjectItem(d, "content");
                    /* a piece never starts inside a UTF-8 sequence */
                    if (cJSON_IsString(ct) && ct->valuestring[0])
                        CHECK(((unsigned char)ct->valuestring[0] & 0xC0) != 0x80);
                    cJSON_Delete(j);
                }
                gw_rc_builder_feed_event(&b, p, el);
                last = p;
                n++;
                p = end + 2;
            }
            CHECK(*p == '\0');
            CHECK(last && !strcmp(last, "data: [DONE]\n\n"));
            CHECK(usage_events == with_usage);
            CHECK(role_events == 1);
            CHECK(charge_before_done);
            gw_rc_answer_t r;
            CHECK(gw_rc_builder_finish(&b, "deepseek", "deepseek-chat", 100, 20, 4, &r) == 0);
            CHECK_STR(r.content, a.content);
            CHECK_STR(r.reasoning, a.reasoning);
            CHECK_STR(r.finish_reason, "stop");
            gw_rc_answer_free(&r);
            gw_rc_builder_free(&b);
            free(t);
            gw_rc_answer_free(&a);
        }
    }
    /* no charge: no comment line; text completions stream */
    gw_rc_answer_t a = sample();
    free(a.reasoning);
    a.reasoning = NULL;
    a.kind = GW_RC_TEXT;
    size_t len;
    char *t = gw_rc_replay_sse(&a, "cmpl-2", false, 8, "", &len);
    CHECK(strstr(t, "x-tollgate-charge") == NULL);
    CHECK(strstr(t, "\"object\":\"text_completion\"") != NULL);
    gw_rc_builder_t b;
    gw_rc_builder_init(&b, GW_RC_TEXT, 1 << 20);
    for (const char *p = t, *end; (end = strstr(p, "\n\n")); p = end + 2)
        gw_rc_builder_feed_event(&b, p, (size_t)(end + 2 - p));
    gw_rc_answer_t r;
    CHECK(gw_rc_builder_finish(&b, "p", "u", 1, 1, -1, &r) == 0);
    CHECK_STR(r.content, a.content);
    gw_rc_answer_free(&r);
    gw_rc_builder_free(&b);
    free(t);
    gw_rc_answer_free(&a);
}

static void test_opts(void)
{
    gw_rc_opts_t o;
    gw_rc_opts_default(&o);
    CHECK(!o.enabled && o.ttl_s == 3600 && o.max_bytes == 262144 && o.timeout_ms == 50 &&
          o.charge == GW_RC_CHARGE_CACHE_HIT_PRICE);
    char err[160];
    CHECK(gw_rc_opts_parse(&o, "response_cache", "on", err, sizeof err) == 0 && o.enabled);
    CHECK(gw_rc_opts_parse(&o, "response_cache", "yes", err, sizeof err) == -1);
    CHECK(strstr(err, "on or off") != NULL);
    CHECK(gw_rc_opts_parse(&o, "response_cache_ttl_s", "60", err, sizeof err) == 0 &&
          o.ttl_s == 60);
    CHECK(gw_rc_opts_parse(&o, "response_cache_ttl_s", "0", err, sizeof err) == -1);
    CHECK(gw_rc_opts_parse(&o, "response_cache_ttl_s", "1h", err, sizeof err) == -1);
    CHECK(gw_rc_opts_parse(&o, "response_cache_max_bytes", "4096", err, sizeof err) == 0 &&
          o.max_bytes == 4096);
    CHECK(gw_rc_opts_parse(&o, "response_cache_max_bytes", "10", err, sizeof err) == -1);
    CHECK(gw_rc_opts_parse(&o, "response_cache_timeout_ms", "20", err, sizeof err) == 0 &&
          o.timeout_ms == 20);
    CHECK(gw_rc_opts_parse(&o, "response_cache_timeout_ms", "-1", err, sizeof err) == -1);
    CHECK(gw_rc_opts_parse(&o, "response_cache_charge", "free", err, sizeof err) == 0 &&
          o.charge == GW_RC_CHARGE_FREE);
    CHECK(gw_rc_opts_parse(&o, "response_cache_charge", "half", err, sizeof err) == -1);
    CHECK(gw_rc_opts_parse(&o, "workers", "2", err, sizeof err) == 1);
}

/* The keys through the config file: errors name the file and line. */
static int load_conf(const char *text, gw_config_t *cfg, char *err, size_t errlen)
{
    char path[] = "/tmp/tg_rc_confXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    int rc = gw_config_load(path, cfg, err, errlen);
    unlink(path);
    return rc;
}

static void test_config_file(void)
{
    gw_config_t cfg;
    char err[512];
    CHECK(load_conf("[gateway]\npostgres = dbname=x\nredis = redis://127.0.0.1:6379\n"
                    "response_cache = on\nresponse_cache_ttl_s = 120\n"
                    "response_cache_charge = free\nresponse_cache_timeout_ms = 25\n"
                    "response_cache_max_bytes = 1000\n",
                    &cfg, err, sizeof err) == 0);
    CHECK(cfg.respcache.enabled && cfg.respcache.ttl_s == 120 &&
          cfg.respcache.charge == GW_RC_CHARGE_FREE && cfg.respcache.timeout_ms == 25 &&
          cfg.respcache.max_bytes == 1000);
    gw_config_free(&cfg);
    CHECK(load_conf("[gateway]\npostgres = dbname=x\n", &cfg, err, sizeof err) == 0);
    CHECK(!cfg.respcache.enabled); /* off by default */
    gw_config_free(&cfg);
    CHECK(load_conf("[gateway]\npostgres = dbname=x\n\nresponse_cache = maybe\n", &cfg, err,
                    sizeof err) == -1);
    CHECK(strstr(err, ":4: response_cache must be on or off") != NULL);
    CHECK(load_conf("[gateway]\nresponse_cache_ttl_s = -5\n", &cfg, err, sizeof err) == -1);
    CHECK(strstr(err, ":2: response_cache_ttl_s must be between") != NULL);
    CHECK(load_conf("[gateway]\npostgres = dbname=x\nresponse_cache = on\n", &cfg, err,
                    sizeof err) == -1);
    CHECK(strstr(err, "response_cache = on needs redis") != NULL);
}

int main(void)
{
    test_config_file();
    test_eligible();
    test_canonical();
    test_key();
    test_builder_body();
    test_builder_stream();
    test_entry();
    test_replay_json();
    test_replay_sse();
    test_opts();
    return CHECK_DONE();
}
