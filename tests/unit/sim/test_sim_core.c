/* Unit tests of the simulator's pure parts: the tokenization rule and block
 * hashes, the prefix cache (hits, key isolation, LRU bound), request
 * validation, reply shapes, stats labels and option parsing. */
#include "sim_cache.h"
#include "sim_opts.h"
#include "sim_reply.h"
#include "sim_request.h"
#include "sim_stats.h"
#include "sim_text.h"
#include "sim_tokens.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static void test_tokens(void)
{
    CHECK(sim_tokens_for_bytes(0) == 0 && sim_tokens_for_bytes(1) == 1 &&
              sim_tokens_for_bytes(4) == 1 && sim_tokens_for_bytes(5) == 2,
          "ceil(len/4)");
    sim_tokens_t a, b;
    sim_tokens_init(&a);
    sim_tokens_init(&b);
    char text[1000];
    memset(text, 'x', sizeof(text));
    sim_tokens_add_message_overhead(&a, "system");
    sim_tokens_add_text(&a, text, 1000);
    CHECK(a.count == 254 && a.nblocks == 3, "count %llu blocks %zu", (unsigned long long)a.count,
          a.nblocks);
    sim_tokens_add_message_overhead(&b, "system");
    text[999] = 'y'; /* differs only in the last token: blocks 0..2 equal */
    sim_tokens_add_text(&b, text, 1000);
    CHECK(memcmp(a.blocks, b.blocks, 3 * sizeof(uint64_t)) == 0, "shared prefix blocks equal");
    CHECK(a.all_hash != b.all_hash, "whole-prompt hash differs");
    sim_tokens_free(&b);
    sim_tokens_init(&b);
    sim_tokens_add_message_overhead(&b, "user"); /* a different role: different from token 0 */
    sim_tokens_add_text(&b, text, 1000);
    CHECK(b.nblocks == 3 && b.blocks[0] != a.blocks[0] && b.blocks[2] != a.blocks[2],
          "role changes the chain");
    sim_tokens_free(&a);
    sim_tokens_free(&b);
}

static void test_cache(void)
{
    uint64_t blocks[4] = {11, 22, 33, 44}, other[4] = {11, 22, 99, 44};
    sim_cache_t *c = sim_cache_new(100);
    CHECK(sim_cache_lookup(c, 1, blocks, 4) == 0, "empty");
    sim_cache_store(c, 1, blocks, 4);
    CHECK(sim_cache_lookup(c, 1, blocks, 4) == 4, "all four");
    CHECK(sim_cache_lookup(c, 1, other, 4) == 2, "stops at the first difference");
    CHECK(sim_cache_lookup(c, 2, blocks, 4) == 0, "key isolation");
    CHECK(sim_cache_size(c) == 4, "size");
    sim_cache_store(c, 1, blocks, 4);
    CHECK(sim_cache_size(c) == 4, "storing again adds nothing");
    sim_cache_clear(c);
    CHECK(sim_cache_size(c) == 0 && sim_cache_lookup(c, 1, blocks, 4) == 0, "clear");
    sim_cache_free(c);

    /* bounded: capacity 3 keeps the leading blocks of the last prompt */
    c = sim_cache_new(3);
    sim_cache_store(c, 1, blocks, 4);
    CHECK(sim_cache_size(c) == 3, "capped");
    CHECK(sim_cache_lookup(c, 1, blocks, 4) == 3, "leading three kept");
    /* many distinct prompts: memory stays at the cap, growth of buckets works */
    uint64_t many[64];
    for (uint64_t k = 0; k < 5000; k++) {
        for (int i = 0; i < 64; i++)
            many[i] = k * 1000 + (uint64_t)i;
        sim_cache_store(c, k, many, 64);
    }
    CHECK(sim_cache_size(c) == 3, "still capped");
    sim_cache_free(c);
    c = sim_cache_new(100000);
    for (uint64_t k = 0; k < 1000; k++) {
        for (int i = 0; i < 64; i++)
            many[i] = k * 1000 + (uint64_t)i;
        sim_cache_store(c, 7, many, 64);
    }
    CHECK(sim_cache_size(c) == 64000, "grows: %zu", sim_cache_size(c));
    for (int i = 0; i < 64; i++)
        many[i] = 500 * 1000 + (uint64_t)i;
    CHECK(sim_cache_lookup(c, 7, many, 64) == 64, "found after rehash");
    sim_cache_free(c);
}

static int parse(const char *body, sim_kind_t kind, sim_request_t *r, const char **param)
{
    char err[256];
    return sim_request_parse(body, strlen(body), kind, r, err, sizeof(err), param);
}

static void test_request(void)
{
    sim_request_t r;
    const char *param;
    int rc = parse("{\"model\":\"deepseek-chat\",\"stream\":true,\"stream_options\":{"
                   "\"include_usage\":true},\"max_tokens\":9,\"max_completion_tokens\":5,"
                   "\"messages\":[{\"role\":\"system\",\"content\":\"12345678\"},{\"role\":"
                   "\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":[{\"type\":"
                   "\"text\",\"text\":\"abc\"}]}]}",
                   SIM_KIND_CHAT, &r, &param);
    CHECK(rc == 0, "valid chat");
    CHECK(r.stream && r.include_usage && r.has_stream_options, "flags");
    CHECK(r.max_tokens == 5, "the smaller limit wins: %lld", r.max_tokens);
    CHECK(r.tokens.count == 3 * 4 + 2 + 0 + 1, "count %llu", (unsigned long long)r.tokens.count);
    CHECK(strcmp(r.model, "deepseek-chat") == 0, "model");
    CHECK(strcmp(r.stream_options_json, "{\"include_usage\":true}") == 0, "stream_options copy");
    sim_request_free(&r);

    rc = parse("{\"model\":\"m\",\"prompt\":[\"abcd\",\"e\"]}", SIM_KIND_COMPLETIONS, &r, &param);
    CHECK(rc == 0 && r.tokens.count == 2 && !r.stream && r.max_tokens == -1, "completions");
    sim_request_free(&r);

    static const struct {
        sim_kind_t kind;
        const char *body, *param;
    } bad[] = {
        {SIM_KIND_CHAT, "not json", NULL},
        {SIM_KIND_CHAT, "\"str\"", NULL},
        {SIM_KIND_CHAT, "{\"messages\":[{\"role\":\"u\"}]}", "model"},
        {SIM_KIND_CHAT, "{\"model\":\"\",\"messages\":[{\"role\":\"u\"}]}", "model"},
        {SIM_KIND_CHAT,
         "{\"model\":"
         "\"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
         "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
         "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
         "mmmmmmmmmmmmmmmmmm\",\"messages\":[{\"role\":\"u\"}]}",
         "model"},
        {SIM_KIND_CHAT, "{\"model\":\"m\"}", "messages"},
        {SIM_KIND_CHAT, "{\"model\":\"m\",\"messages\":{}}", "messages"},
        {SIM_KIND_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":1}]}", "messages"},
        {SIM_KIND_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"u\",\"content\":[1]}]}",
         "messages"},
        {SIM_KIND_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"u\",\"content\":[{\"text\":2}]}]}",
         "messages"},
        {SIM_KIND_CHAT, "{\"model\":\"m\",\"stream\":1,\"messages\":[{\"role\":\"u\"}]}", "stream"},
        {SIM_KIND_CHAT, "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"u\"}]}",
         "max_tokens"},
        {SIM_KIND_CHAT, "{\"model\":\"m\",\"max_tokens\":1e12,\"messages\":[{\"role\":\"u\"}]}",
         "max_tokens"},
        {SIM_KIND_COMPLETIONS, "{\"model\":\"m\",\"prompt\":null}", "prompt"},
        {SIM_KIND_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[[1,2]]}", "prompt"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        param = "unset";
        rc = parse(bad[i].body, bad[i].kind, &r, &param);
        CHECK(rc == -1, "bad %zu accepted", i);
        CHECK((bad[i].param == NULL && param == NULL) ||
                  (bad[i].param && param && strcmp(param, bad[i].param) == 0),
              "bad %zu: param %s", i, param ? param : "(null)");
    }
}

static char *drain(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static void test_reply(void)
{
    sim_answer_t a = {0};
    a.kind = SIM_KIND_CHAT;
    snprintf(a.id, sizeof(a.id), "chatcmpl-x");
    a.created = 1;
    snprintf(a.model, sizeof(a.model), "deep\"seek\x01");
    a.fingerprint = "sim";
    a.reasoner = true;
    a.with_usage = true;
    a.include_usage = true;
    a.finish_reason = "stop";
    a.usage = (sim_usage_t){.prompt = 130, .hit = 128, .miss = 2, .completion = 4, .reasoning = 2};
    a.n_reasoning = 2;
    a.n_content = 2;
    sim_text_seed(&a.rng_content, 1, a.model, 5, 1);
    sim_text_seed(&a.rng_reasoning, 1, a.model, 5, 2);
    sim_answer_t b = a;

    struct evbuffer *buf = evbuffer_new();
    sim_reply_full(buf, &a);
    char *s = drain(buf);
    cJSON *o = cJSON_Parse(s);
    CHECK(o != NULL, "full body is JSON: %s", s);
    cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
    CHECK(cJSON_GetObjectItemCaseSensitive(u, "prompt_cache_hit_tokens")->valuedouble == 128 &&
              cJSON_GetObjectItemCaseSensitive(u, "prompt_cache_miss_tokens")->valuedouble == 2 &&
              cJSON_GetObjectItemCaseSensitive(u, "total_tokens")->valuedouble == 134,
          "usage fields");
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(o, "model")->valuestring, a.model) == 0,
          "model escaped and restored");
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0), "message");
    char content[256], reasoning[256];
    snprintf(content, sizeof(content), "%s",
             cJSON_GetObjectItemCaseSensitive(msg, "content")->valuestring);
    snprintf(reasoning, sizeof(reasoning), "%s",
             cJSON_GetObjectItemCaseSensitive(msg, "reasoning_content")->valuestring);
    cJSON_Delete(o);
    free(s);

    /* the streamed events spell the same text */
    char sc[256] = "", sr[256] = "";
    for (uint64_t i = 0; i < 4; i++) {
        sim_reply_event_token(buf, &b, i);
        s = drain(buf);
        CHECK(strncmp(s, "data: ", 6) == 0 && strcmp(s + strlen(s) - 2, "\n\n") == 0, "SSE frame");
        o = cJSON_Parse(s + 6);
        CHECK(o != NULL, "event JSON");
        cJSON *d = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0), "delta");
        cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "content");
        cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "reasoning_content");
        if (cJSON_IsString(c))
            strcat(sc, c->valuestring);
        if (cJSON_IsString(r))
            strcat(sr, r->valuestring);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "usage")), "usage null");
        cJSON_Delete(o);
        free(s);
    }
    CHECK(strcmp(sc, content) == 0 && strcmp(sr, reasoning) == 0, "stream '%s'/'%s' vs '%s'/'%s'",
          sc, sr, content, reasoning);
    sim_reply_event_usage(buf, &b);
    s = drain(buf);
    o = cJSON_Parse(s + 6);
    CHECK(o && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "choices")) == 0 &&
              cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "usage")),
          "usage event");
    cJSON_Delete(o);
    free(s);

    sim_reply_error(buf, "bad \"thing\"", "invalid_request_error", NULL, "c");
    s = drain(buf);
    o = cJSON_Parse(s);
    CHECK(o && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetObjectItemCaseSensitive(o, "error"), "param")),
          "error shape: %s", s);
    cJSON_Delete(o);
    free(s);
    evbuffer_free(buf);
}

static void test_stats_and_text(void)
{
    char l[32];
    sim_stats_key_label(NULL, l, sizeof(l));
    CHECK(strcmp(l, "(none)") == 0, "none");
    sim_stats_key_label("short", l, sizeof(l));
    CHECK(strcmp(l, "short") == 0, "short");
    sim_stats_key_label("sk-0123456789abcdef", l, sizeof(l));
    CHECK(strcmp(l, "sk-01234...cdef") == 0, "long: %s", l);
    sim_fault_t f;
    CHECK(sim_fault_parse("no-usage", &f) == 0 && f == SIM_FAULT_NO_USAGE, "fault parse");
    CHECK(sim_fault_parse("none", &f) < 0 && sim_fault_parse("", &f) < 0, "fault bad");

    sim_rng_t a, b;
    sim_text_seed(&a, 3, "m", 9, 1);
    sim_text_seed(&b, 3, "m", 9, 1);
    int same = 1;
    for (int i = 0; i < 50; i++)
        same &= strcmp(sim_text_word(&a), sim_text_word(&b)) == 0;
    CHECK(same, "same seed, same words");
    sim_text_seed(&b, 4, "m", 9, 1);
    sim_text_seed(&a, 3, "m", 9, 1);
    int diff = 0;
    for (int i = 0; i < 50; i++)
        diff += strcmp(sim_text_word(&a), sim_text_word(&b)) != 0;
    CHECK(diff > 0, "another seed, other words");
}

static int opts_of(const char **argv, sim_opts_t *o)
{
    char err[256];
    int argc = 0;
    while (argv[argc])
        argc++;
    sim_opts_defaults(o);
    return sim_opts_parse(argc, (char **)argv, o, err, sizeof(err));
}

static void test_opts(void)
{
    sim_opts_t o;
    const char *ok[] = {"sim", "--listen",   "0.0.0.0:8099", "--ttft-ms", "5", "--tokens-per-s",
                        "100", "--rate-503", "0.25",         "--api-key", "k", "--cache",
                        "off", "--name",     "n1",           "--context", "0", NULL};
    CHECK(opts_of(ok, &o) == 0, "valid");
    CHECK(strcmp(o.host, "0.0.0.0") == 0 && o.port == 8099 && o.ttft_ms == 5 &&
              o.tokens_per_s == 100 && o.rate_503 == 0.25 && !o.cache && o.context == 0 &&
              strcmp(o.api_key, "k") == 0 && strcmp(o.name, "n1") == 0,
          "values");
    CHECK(o.rate_slow == 0 && o.slow_ttft_ms == 3000, "slow tail off by default");
    const char *tail[] = {"sim", "--rate-slow", "0.1", "--slow-ttft-ms", "2500", "--rate-429", "1", NULL};
    CHECK(opts_of(tail, &o) == 0 && o.rate_slow == 0.1 && o.slow_ttft_ms == 2500 && o.rate_429 == 1,
          "slow tail values (its rate is apart from the faults' sum)");
    const char *v6[] = {"sim", "--listen", "[::1]:0", NULL};
    CHECK(opts_of(v6, &o) == 0 && strcmp(o.host, "::1") == 0, "ipv6");
    const char *help[] = {"sim", "--help", NULL};
    CHECK(opts_of(help, &o) == 1, "help");
    const char *bad[][4] = {
        {"sim", "--listen", "x:70000", NULL}, {"sim", "--rate-stall", "-0.1", NULL},
        {"sim", "--seed", "abc", NULL},       {"sim", "--name", "a\"b", NULL},
        {"sim", "extra", NULL, NULL},         {"sim", "--max-body", "10", NULL},
        {"sim", "--rate-slow", "2", NULL},    {"sim", "--slow-ttft-ms", "9999999", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(opts_of(bad[i], &o) == -1, "bad %zu accepted", i);
}

int main(void)
{
    test_tokens();
    test_cache();
    test_request();
    test_reply();
    test_stats_and_text();
    test_opts();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("sim core: all checks passed\n");
    return 0;
}
