/* End-to-end tests of tollgate-sim over real sockets: every endpoint streamed
 * and not, the usage and include_usage shapes, prefix-cache hit accounting
 * and key isolation, each fault header and rate, --api-key, --context, seed
 * determinism, bad input, and a clean (leak-free under ASan) shutdown.
 * usage: test_sim_http PATH-TO-tollgate-sim GROUP */
#include "sim_test_client.h"

#include <cjson/cJSON.h>

static const char *sim_bin;

/* ---- helpers --------------------------------------------------------- */

static cJSON *json_of(const t_resp_t *r)
{
    return r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
}

static double num_at(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsNumber(cur) ? cur->valuedouble : -1;
}

static const char *str_at(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

/* Requests counted for a key label in stats (labels contain dots). */
static double key_count(const cJSON *stats, const char *label)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(stats, "requests"),
                                         "by_key"),
        label);
    return cJSON_IsNumber(k) ? k->valuedouble : -1;
}

static const cJSON *choice0(const cJSON *o)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
}

/* Checks the DeepSeek usage invariants; returns the hit count. */
static double check_usage(const cJSON *u, double prompt, double completion)
{
    CHECK(cJSON_IsObject(u), "usage missing");
    if (!cJSON_IsObject(u))
        return -1;
    double p = num_at(u, "prompt_tokens"), c = num_at(u, "completion_tokens");
    double hit = num_at(u, "prompt_cache_hit_tokens"), miss = num_at(u, "prompt_cache_miss_tokens");
    if (prompt >= 0)
        CHECK(p == prompt, "prompt_tokens %g, want %g", p, prompt);
    if (completion >= 0)
        CHECK(c == completion, "completion_tokens %g, want %g", c, completion);
    CHECK(num_at(u, "total_tokens") == p + c, "total_tokens");
    CHECK(hit >= 0 && miss >= 0 && hit + miss == p, "hit %g + miss %g != prompt %g", hit, miss, p);
    CHECK(num_at(u, "prompt_tokens_details.cached_tokens") == hit, "cached_tokens != hit");
    CHECK((long long)hit % 64 == 0, "hit %g not in 64-token units", hit);
    return hit;
}

/* The SSE events of a body: "data: X" payloads, in order. */
typedef struct events {
    char *data[512];
    int n;
    bool well_formed; /* every event was "data: ...\n\n" */
} events_t;

static void events_parse(const char *body, events_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->well_formed = true;
    const char *p = body;
    while (*p && ev->n < 512) {
        const char *end = strstr(p, "\n\n");
        if (!end || strncmp(p, "data: ", 6) != 0) {
            ev->well_formed = false;
            break;
        }
        ev->data[ev->n++] = strndup(p + 6, (size_t)(end - p - 6));
        p = end + 2;
    }
}

static void events_free(events_t *ev)
{
    for (int i = 0; i < ev->n; i++)
        free(ev->data[i]);
}

/* Concatenates the streamed text (chat content or completions text) and
 * the streamed reasoning into the given buffers; returns the usage event
 * (parsed, caller frees) or NULL. Checks the shape of every chunk. */
static cJSON *stream_collect(const events_t *ev, const char *object, char *text, size_t tl,
                             char *reasoning, size_t rl, const char **finish,
                             bool expect_usage_null)
{
    text[0] = reasoning[0] = '\0';
    cJSON *usage_ev = NULL;
    static char fin[32];
    fin[0] = '\0';
    *finish = fin;
    for (int i = 0; i < ev->n; i++) {
        if (strcmp(ev->data[i], "[DONE]") == 0) {
            CHECK(i == ev->n - 1, "[DONE] is not last");
            continue;
        }
        cJSON *o = cJSON_Parse(ev->data[i]);
        CHECK(o != NULL, "event %d not JSON: %s", i, ev->data[i]);
        if (!o)
            continue;
        CHECK(str_at(o, "object") && strcmp(str_at(o, "object"), object) == 0, "object");
        CHECK(str_at(o, "id") != NULL && num_at(o, "created") > 0, "id/created");
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
        CHECK(cJSON_IsArray(choices), "choices not an array");
        const cJSON *usage = cJSON_GetObjectItemCaseSensitive(o, "usage");
        if (cJSON_GetArraySize(choices) == 0) {
            CHECK(cJSON_IsObject(usage), "choices [] without usage");
            CHECK(i == ev->n - 2, "usage event is not the one before [DONE]");
            usage_ev = cJSON_Duplicate(o, 1);
        } else {
            if (expect_usage_null)
                CHECK(cJSON_IsNull(usage), "chunk without usage:null");
            else
                CHECK(usage == NULL, "chunk carries usage without include_usage");
            const cJSON *c = cJSON_GetArrayItem(choices, 0);
            const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c, "finish_reason");
            if (cJSON_IsString(fr))
                snprintf(fin, sizeof(fin), "%s", fr->valuestring);
            const char *t = NULL, *r = NULL;
            if (strcmp(object, "chat.completion.chunk") == 0) {
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "delta");
                CHECK(cJSON_IsObject(d), "delta missing");
                if (i == 0)
                    CHECK(str_at(d, "role") && strcmp(str_at(d, "role"), "assistant") == 0,
                          "first delta has no role");
                t = str_at(d, "content");
                r = str_at(d, "reasoning_content");
            } else {
                t = str_at(c, "text");
            }
            if (t)
                strncat(text, t, tl - strlen(text) - 1);
            if (r)
                strncat(reasoning, r, rl - strlen(reasoning) - 1);
        }
        cJSON_Delete(o);
    }
    return usage_ev;
}

static int count_words(const char *s)
{
    int n = 0;
    bool in = false;
    for (; *s; s++) {
        if (*s != ' ' && !in)
            n++;
        in = *s != ' ';
    }
    return n;
}

static cJSON *get_stats(int port)
{
    t_resp_t r;
    if (t_http(port, "GET", "/sim/stats", NULL, NULL, 5000, &r) < 0)
        return NULL;
    cJSON *o = json_of(&r);
    t_resp_free(&r);
    return o;
}

static int start(t_sim_t *s, const char *const *args)
{
    if (t_sim_start(s, sim_bin, args) < 0) {
        fprintf(stderr, "cannot start %s\n", sim_bin);
        t_failures++;
        return -1;
    }
    return 0;
}

static void stop(t_sim_t *s)
{
    int rc = t_sim_stop(s);
    CHECK(rc == 0, "simulator exit status %d (nonzero: crash, leak or hang)", rc);
}

static double stat_of(int port, const char *path);

static const char *CHAT_HELLO =
    "{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}";

/* ---- groups ---------------------------------------------------------- */

static void test_api(void)
{
    t_sim_t s;
    const char *args[] = {"--seed", "7", "--name", "simA", NULL};
    if (start(&s, args) < 0)
        return;
    t_resp_t r;
    cJSON *o;

    t_http(s.port, "GET", "/healthz", NULL, NULL, 5000, &r);
    o = json_of(&r);
    CHECK(r.status == 200 && o && strcmp(str_at(o, "status"), "ok") == 0, "healthz");
    cJSON_Delete(o);
    t_resp_free(&r);

    t_http(s.port, "GET", "/v1/models", NULL, NULL, 5000, &r);
    o = json_of(&r);
    CHECK(r.status == 200 && o && strcmp(str_at(o, "object"), "list") == 0, "models");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    CHECK(cJSON_GetArraySize(data) == 2 &&
              strcmp(str_at(cJSON_GetArrayItem(data, 0), "id"), "deepseek-chat") == 0 &&
              strcmp(str_at(cJSON_GetArrayItem(data, 0), "object"), "model") == 0,
          "models data");
    cJSON_Delete(o);
    t_resp_free(&r);

    /* chat, not streamed: "hello there" = 11 bytes = 3 tokens + 4 overhead */
    t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 5000, &r);
    o = json_of(&r);
    CHECK(r.status == 200 && o, "chat status %d", r.status);
    CHECK(strcmp(t_header(&r, "Content-Type"), "application/json") == 0, "content type");
    CHECK(t_header(&r, "x-sim-name") && strcmp(t_header(&r, "x-sim-name"), "simA") == 0, "name");
    CHECK(str_at(o, "object") && strcmp(str_at(o, "object"), "chat.completion") == 0, "object");
    CHECK(str_at(o, "system_fingerprint") && strcmp(str_at(o, "system_fingerprint"), "simA") == 0,
          "fingerprint");
    CHECK(strcmp(str_at(o, "model"), "deepseek-chat") == 0, "model echoed");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice0(o), "message");
    CHECK(strcmp(str_at(msg, "role"), "assistant") == 0, "role");
    char whole[4096];
    snprintf(whole, sizeof(whole), "%s", str_at(msg, "content") ? str_at(msg, "content") : "");
    CHECK(count_words(whole) == 16, "16 words, got '%s'", whole);
    CHECK(cJSON_GetObjectItemCaseSensitive(msg, "reasoning_content") == NULL, "no reasoning");
    CHECK(strcmp(str_at(choice0(o), "finish_reason"), "stop") == 0, "finish stop");
    check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), 7, 16);
    cJSON_Delete(o);
    t_resp_free(&r);

    /* chat streamed without include_usage: same text, no usage anywhere */
    const char *chat_stream =
        "{\"model\":\"deepseek-chat\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hello there\"}]}";
    t_http(s.port, "POST", "/v1/chat/completions", NULL, chat_stream, 5000, &r);
    CHECK(r.status == 200 && r.chunked && r.complete, "stream status/complete");
    CHECK(strncmp(t_header(&r, "Content-Type"), "text/event-stream", 17) == 0, "sse type");
    events_t ev;
    events_parse(r.body, &ev);
    CHECK(ev.well_formed && ev.n >= 18, "events %d well formed %d", ev.n, ev.well_formed);
    CHECK(ev.n > 0 && strcmp(ev.data[ev.n - 1], "[DONE]") == 0, "last is [DONE]");
    char text[4096], reas[4096];
    const char *fin;
    cJSON *u = stream_collect(&ev, "chat.completion.chunk", text, sizeof(text), reas, sizeof(reas),
                              &fin, false);
    CHECK(u == NULL, "usage event without include_usage");
    CHECK(strcmp(text, whole) == 0, "streamed '%s' != whole '%s'", text, whole);
    CHECK(strcmp(fin, "stop") == 0, "stream finish '%s'", fin);
    cJSON_Delete(u);
    events_free(&ev);
    t_resp_free(&r);

    /* chat streamed with include_usage */
    const char *chat_iu = "{\"model\":\"deepseek-chat\",\"stream\":true,\"stream_options\":{"
                          "\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":"
                          "\"hello there\"}]}";
    t_http(s.port, "POST", "/v1/chat/completions", NULL, chat_iu, 5000, &r);
    events_parse(r.body, &ev);
    u = stream_collect(&ev, "chat.completion.chunk", text, sizeof(text), reas, sizeof(reas), &fin,
                       true);
    CHECK(u != NULL, "no usage event");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(u, "choices")) == 0, "choices []");
    check_usage(cJSON_GetObjectItemCaseSensitive(u, "usage"), 7, 16);
    CHECK(strcmp(text, whole) == 0, "include_usage text differs");
    cJSON_Delete(u);
    events_free(&ev);
    t_resp_free(&r);

    /* legacy completions: "abcdefghij" = 10 bytes = 3 tokens, no overhead */
    const char *cmpl = "{\"model\":\"m1\",\"prompt\":\"abcdefghij\",\"max_tokens\":5}";
    t_http(s.port, "POST", "/v1/completions", NULL, cmpl, 5000, &r);
    o = json_of(&r);
    CHECK(r.status == 200 && o && strcmp(str_at(o, "object"), "text_completion") == 0, "cmpl");
    snprintf(whole, sizeof(whole), "%s",
             str_at(choice0(o), "text") ? str_at(choice0(o), "text") : "");
    CHECK(count_words(whole) == 5, "max_tokens caps: '%s'", whole);
    CHECK(strcmp(str_at(choice0(o), "finish_reason"), "length") == 0, "finish length");
    check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), 3, 5);
    cJSON_Delete(o);
    t_resp_free(&r);

    const char *cmpl_s =
        "{\"model\":\"m1\",\"prompt\":[\"abcdefghij\"],\"max_tokens\":5,\"stream\":"
        "true,\"stream_options\":{\"include_usage\":true}}";
    t_http(s.port, "POST", "/v1/completions", NULL, cmpl_s, 5000, &r);
    events_parse(r.body, &ev);
    CHECK(ev.well_formed && ev.n == 8, "completions events %d",
          ev.n); /* 5 + finish + usage + done */
    u = stream_collect(&ev, "text_completion", text, sizeof(text), reas, sizeof(reas), &fin, true);
    CHECK(u != NULL, "completions usage event");
    check_usage(cJSON_GetObjectItemCaseSensitive(u, "usage"), 3, 5);
    CHECK(strcmp(text, whole) == 0, "completions stream text '%s' vs '%s'", text, whole);
    CHECK(strcmp(fin, "length") == 0, "completions stream finish");
    cJSON_Delete(u);
    events_free(&ev);
    t_resp_free(&r);

    /* max_completion_tokens, content parts, per-request completion override */
    const char *parts = "{\"model\":\"deepseek-chat\",\"max_completion_tokens\":2,\"messages\":[{"
                        "\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"12345678\"},"
                        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}";
    t_http(s.port, "POST", "/v1/chat/completions", NULL, parts, 5000, &r);
    o = json_of(&r);
    check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), 6, 2);
    cJSON_Delete(o);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-completion-tokens: 5\r\n", CHAT_HELLO,
           5000, &r);
    o = json_of(&r);
    check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), 7, 5);
    cJSON_Delete(o);
    t_resp_free(&r);

    /* reasoner: reasoning_content, reasoning_tokens inside completion_tokens */
    const char *reasoner = "{\"model\":\"deepseek-reasoner\",\"messages\":[{\"role\":\"user\","
                           "\"content\":\"hello there\"}]}";
    t_http(s.port, "POST", "/v1/chat/completions", NULL, reasoner, 5000, &r);
    o = json_of(&r);
    msg = cJSON_GetObjectItemCaseSensitive(choice0(o), "message");
    CHECK(str_at(msg, "reasoning_content") && count_words(str_at(msg, "reasoning_content")) == 8,
          "reasoning words");
    CHECK(str_at(msg, "content") && count_words(str_at(msg, "content")) == 8, "content words");
    check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), 7, 16);
    CHECK(num_at(o, "usage.completion_tokens_details.reasoning_tokens") == 8, "reasoning_tokens");
    char rwhole[4096], cwhole[4096];
    snprintf(rwhole, sizeof(rwhole), "%s", str_at(msg, "reasoning_content"));
    snprintf(cwhole, sizeof(cwhole), "%s", str_at(msg, "content"));
    cJSON_Delete(o);
    t_resp_free(&r);
    const char *reasoner_s = "{\"model\":\"deepseek-reasoner\",\"stream\":true,\"stream_options\":{"
                             "\"include_usage\":true},\"messages\":[{\"role\":\"user\","
                             "\"content\":\"hello there\"}]}";
    t_http(s.port, "POST", "/v1/chat/completions",
           "Authorization: Bearer sk-abcdefghijklmnop\r\nx-request-id: req-77\r\n", reasoner_s,
           5000, &r);
    events_parse(r.body, &ev);
    u = stream_collect(&ev, "chat.completion.chunk", text, sizeof(text), reas, sizeof(reas), &fin,
                       true);
    CHECK(strcmp(reas, rwhole) == 0 && strcmp(text, cwhole) == 0, "reasoner stream text");
    CHECK(num_at(u, "usage.completion_tokens_details.reasoning_tokens") == 8, "stream reasoning");
    cJSON_Delete(u);
    events_free(&ev);
    t_resp_free(&r);

    /* stats: endpoints, keys (truncated), last request */
    o = get_stats(s.port);
    CHECK(o != NULL, "stats");
    CHECK(strcmp(str_at(o, "name"), "simA") == 0, "stats name");
    CHECK(num_at(o, "requests.by_endpoint.chat_completions") == 7, "chat count %g",
          num_at(o, "requests.by_endpoint.chat_completions"));
    CHECK(num_at(o, "requests.by_endpoint.completions") == 2, "completions count");
    CHECK(num_at(o, "requests.by_endpoint.models") == 1, "models count");
    CHECK(num_at(o, "requests.by_endpoint.healthz") == 1, "healthz count");
    CHECK(num_at(o, "requests.streamed") == 4, "streamed");
    CHECK(num_at(o, "requests.by_fault.none") == 9, "by_fault none");
    CHECK(key_count(o, "(none)") == 8, "anonymous key count");
    CHECK(key_count(o, "sk-abcde...mnop") == 1, "truncated key label");
    CHECK(num_at(o, "tokens.completion") == 16 * 3 + 5 * 2 + 2 + 5 + 16 * 2, "completion total %g",
          num_at(o, "tokens.completion"));
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(o, "last_request");
    CHECK(strcmp(str_at(last, "model"), "deepseek-reasoner") == 0, "last model");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, "authorization")), "last auth");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, "stream")), "last stream");
    CHECK(str_at(last, "x_request_id") && strcmp(str_at(last, "x_request_id"), "req-77") == 0,
          "last x-request-id");
    CHECK(str_at(last, "key") && strcmp(str_at(last, "key"), "sk-abcde...mnop") == 0, "last key");
    CHECK(num_at(last, "prompt_tokens") == 7 && num_at(last, "status") == 200, "last counts");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(last, "stream_options"), "include_usage")),
          "last stream_options");
    char *printed = cJSON_PrintUnformatted(o);
    CHECK(strstr(printed, "sk-abcdefghijklmnop") == NULL, "a whole key leaked into stats");
    free(printed);
    cJSON_Delete(o);

    /* keep-alive: two requests on one connection count one connection */
    double conns = stat_of(s.port, "connections_accepted");
    CHECK(conns >= 10, "connections %g", conns);
    int fd = t_connect(s.port);
    char two[1024];
    int tl =
        snprintf(two, sizeof(two),
                 "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s"
                 "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 strlen(CHAT_HELLO), CHAT_HELLO);
    CHECK(send(fd, two, (size_t)tl, 0) == tl, "send two");
    char got[8192];
    size_t gl = 0;
    for (ssize_t k; gl < sizeof(got) - 1 && (k = recv(fd, got + gl, sizeof(got) - 1 - gl, 0)) > 0;)
        gl += (size_t)k;
    got[gl] = '\0';
    close(fd);
    char *second = strstr(got + 1, "HTTP/1.1 200");
    CHECK(strncmp(got, "HTTP/1.1 200", 12) == 0 && second && strstr(second, "\"status\":\"ok\""),
          "pipelined keep-alive answers: %s", got);
    o = get_stats(s.port);
    CHECK(num_at(o, "connections_accepted") == conns + 2, "one connection for two requests: %g",
          num_at(o, "connections_accepted"));
    cJSON_Delete(o);

    /* reset forgets */
    t_http(s.port, "POST", "/sim/reset", NULL, "", 5000, &r);
    CHECK(r.status == 200, "reset");
    t_resp_free(&r);
    o = get_stats(s.port);
    CHECK(num_at(o, "requests.by_endpoint.chat_completions") == 0 &&
              cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "last_request")),
          "reset cleared stats");
    cJSON_Delete(o);

    /* unknown URL and wrong method: OpenAI error shape */
    t_http(s.port, "GET", "/v2/nothing", NULL, NULL, 5000, &r);
    o = json_of(&r);
    CHECK(r.status == 404 && str_at(o, "error.message"), "404 shape");
    cJSON_Delete(o);
    t_resp_free(&r);
    t_http(s.port, "GET", "/v1/chat/completions", NULL, NULL, 5000, &r);
    CHECK(r.status == 405, "405 got %d", r.status);
    t_resp_free(&r);
    stop(&s);
}

static int hit_of(int port, const char *auth, const char *body, double *prompt)
{
    t_resp_t r;
    t_http(port, "POST", "/v1/completions", auth, body, 5000, &r);
    cJSON *o = json_of(&r);
    CHECK(r.status == 200 && o, "status %d", r.status);
    double hit = check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), -1, -1);
    if (prompt)
        *prompt = num_at(o, "usage.prompt_tokens");
    cJSON_Delete(o);
    t_resp_free(&r);
    return (int)hit;
}

static char *prompt_body(char fill, size_t shared, char tail, size_t tail_len)
{
    char *b = malloc(shared + tail_len + 128);
    int n = sprintf(b, "{\"model\":\"m\",\"max_tokens\":1,\"prompt\":\"");
    memset(b + n, fill, shared);
    memset(b + n + shared, tail, tail_len);
    strcpy(b + n + shared + tail_len, "\"}");
    return b;
}

static void test_cache(void)
{
    t_sim_t s;
    if (start(&s, NULL) < 0)
        return;
    const char *k1 = "Authorization: Bearer key-one\r\n", *k2 = "Authorization: Bearer key-two\r\n";
    /* 800 shared bytes = 200 tokens; 100 tail bytes = 25 tokens -> 225 */
    char *a = prompt_body('a', 800, 'x', 100), *b = prompt_body('a', 800, 'y', 100);
    double p;
    CHECK(hit_of(s.port, k1, a, &p) == 0, "first request hits nothing");
    CHECK(p == 225, "prompt %g", p);
    CHECK(hit_of(s.port, k1, b, NULL) == 192, "shared prefix: 3 whole blocks");
    CHECK(hit_of(s.port, k1, a, NULL) == 192, "same prompt again: 3 blocks");
    CHECK(hit_of(s.port, k2, a, NULL) == 0, "another key never shares");
    CHECK(hit_of(s.port, k2, a, NULL) == 192, "the other key's own memory");
    CHECK(hit_of(s.port, NULL, a, NULL) == 0, "no key is a key of its own");
    /* prefix differing in the first block: no hit at all */
    char *c = prompt_body('a', 800, 'x', 100);
    c[40] = 'Z';
    CHECK(hit_of(s.port, k1, c, NULL) == 0, "only a prefix from token 0 can hit");
    /* under 64 tokens is never cached */
    const char *small = "{\"model\":\"m\",\"prompt\":\"short prompt\"}";
    hit_of(s.port, k1, small, NULL);
    CHECK(hit_of(s.port, k1, small, NULL) == 0, "under 64 tokens never hits");
    /* chat: the same conversation again hits its whole blocks */
    char chat[2048];
    snprintf(chat, sizeof(chat),
             "{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"system\",\"content\":\"%0600d"
             "\"},{\"role\":\"user\",\"content\":\"hi\"}]}",
             0);
    t_resp_t r;
    t_http(s.port, "POST", "/v1/chat/completions", k1, chat, 5000, &r);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", k1, chat, 5000, &r);
    cJSON *o = json_of(&r);
    /* 4 + 150 + 4 + 1 = 159 tokens -> 2 whole blocks */
    CHECK(check_usage(cJSON_GetObjectItemCaseSensitive(o, "usage"), 159, 16) == 128, "chat hits");
    cJSON_Delete(o);
    t_resp_free(&r);
    o = get_stats(s.port);
    CHECK(num_at(o, "tokens.cache_hit") == 192 * 3 + 128, "stats hit total %g",
          num_at(o, "tokens.cache_hit"));
    CHECK(num_at(o, "tokens.cache_hit") + num_at(o, "tokens.cache_miss") ==
              num_at(o, "tokens.prompt"),
          "stats hit+miss");
    cJSON_Delete(o);
    t_http(s.port, "POST", "/sim/reset", NULL, "", 5000, &r);
    t_resp_free(&r);
    CHECK(hit_of(s.port, k1, a, NULL) == 0, "reset forgets the cache");
    stop(&s);

    /* bounded memory: 2 blocks kept, the leading ones */
    const char *args_cap[] = {"--cache-blocks", "2", NULL};
    if (start(&s, args_cap) < 0)
        goto out;
    char *big = prompt_body('q', 1024, 'q', 0); /* 256 tokens = 4 blocks */
    CHECK(hit_of(s.port, k1, big, NULL) == 0, "cap: first");
    CHECK(hit_of(s.port, k1, big, NULL) == 128, "cap keeps the 2 leading blocks");
    o = get_stats(s.port);
    CHECK(num_at(o, "cache.blocks") == 2, "cache blocks %g", num_at(o, "cache.blocks"));
    cJSON_Delete(o);
    free(big);
    stop(&s);

    const char *args_off[] = {"--cache", "off", NULL};
    if (start(&s, args_off) < 0)
        goto out;
    hit_of(s.port, k1, a, NULL);
    CHECK(hit_of(s.port, k1, a, NULL) == 0, "--cache off never hits");
    stop(&s);
out:
    free(a);
    free(b);
    free(c);
}

static void expect_error(const t_resp_t *r, int status, const char *code, const char *what)
{
    cJSON *o = json_of(r);
    CHECK(r->status == status, "%s: status %d, want %d", what, r->status, status);
    CHECK(o && str_at(o, "error.message") && str_at(o, "error.type"), "%s: error shape", what);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    CHECK(cJSON_GetObjectItemCaseSensitive(err, "param") != NULL, "%s: param field", what);
    if (code)
        CHECK(str_at(o, "error.code") && strcmp(str_at(o, "error.code"), code) == 0, "%s: code %s",
              what, str_at(o, "error.code") ? str_at(o, "error.code") : "(none)");
    cJSON_Delete(o);
}

static double stat_of(int port, const char *path)
{
    cJSON *o = get_stats(port);
    double v = num_at(o, path);
    cJSON_Delete(o);
    return v;
}

static void test_faults(void)
{
    t_sim_t s;
    const char *args[] = {"--slow-headers-ms", "300", NULL};
    if (start(&s, args) < 0)
        return;
    t_resp_t r;
    const char *stream_iu = "{\"model\":\"deepseek-chat\",\"stream\":true,\"stream_options\":{"
                            "\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":"
                            "\"hi\"}]}";

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: 429\r\n", CHAT_HELLO, 5000, &r);
    expect_error(&r, 429, "rate_limit_exceeded", "429");
    CHECK(t_header(&r, "Retry-After") && atoi(t_header(&r, "Retry-After")) >= 1, "Retry-After");
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: 500\r\n", CHAT_HELLO, 5000, &r);
    expect_error(&r, 500, NULL, "500");
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: 503\r\n", CHAT_HELLO, 5000, &r);
    expect_error(&r, 503, NULL, "503");
    CHECK(strstr(r.body, "server busy") != NULL, "503 says server busy");
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: reset\r\n", CHAT_HELLO, 5000, &r);
    CHECK(r.raw_len == 0 && !r.timed_out && r.status == 0, "reset: nothing, closed");
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: stall\r\n", CHAT_HELLO, 600, &r);
    CHECK(r.timed_out && r.raw_len == 0, "stall: no answer, still open");
    t_resp_free(&r);
    /* the stalled call is forgotten once its client has gone */
    double inflight = 1;
    for (int i = 0; i < 40 && inflight != 0; i++) {
        usleep(100000);
        inflight = stat_of(s.port, "requests.in_flight");
    }
    CHECK(inflight == 0, "stalled call still in flight after its client left");

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: garbage\r\n", CHAT_HELLO, 5000,
           &r);
    CHECK(r.status == 200, "garbage status");
    cJSON *o = json_of(&r);
    CHECK(o == NULL, "garbage parsed as JSON");
    cJSON_Delete(o);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: garbage\r\n", stream_iu, 5000, &r);
    events_t ev;
    events_parse(r.body, &ev);
    CHECK(r.status == 200 && (!ev.well_formed || ev.n == 0), "stream garbage is not SSE");
    events_free(&ev);
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: no-usage\r\n", CHAT_HELLO, 5000,
           &r);
    o = json_of(&r);
    CHECK(r.status == 200 && o && !cJSON_GetObjectItemCaseSensitive(o, "usage") &&
              choice0(o) != NULL,
          "no-usage body");
    cJSON_Delete(o);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: no-usage\r\n", stream_iu, 5000,
           &r);
    events_parse(r.body, &ev);
    char text[4096], reas[4096];
    const char *fin;
    cJSON *u = stream_collect(&ev, "chat.completion.chunk", text, sizeof(text), reas, sizeof(reas),
                              &fin, false);
    CHECK(u == NULL && ev.n > 0 && strcmp(ev.data[ev.n - 1], "[DONE]") == 0 && r.complete,
          "no-usage stream: [DONE], no usage event");
    cJSON_Delete(u);
    events_free(&ev);
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: cut\r\n", stream_iu, 5000, &r);
    events_parse(r.body, &ev);
    CHECK(r.status == 200 && r.chunked && !r.complete && !r.timed_out, "cut: incomplete stream");
    CHECK(ev.n == 8, "cut after half the tokens, got %d events", ev.n);
    bool done = false;
    for (int i = 0; i < ev.n; i++)
        done |= strcmp(ev.data[i], "[DONE]") == 0 || strstr(ev.data[i], "prompt_tokens") != NULL;
    CHECK(!done, "cut stream sent [DONE] or usage");
    events_free(&ev);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: cut\r\n", CHAT_HELLO, 5000, &r);
    o = json_of(&r);
    CHECK(r.status == 200 && !r.complete && o == NULL && r.body_len > 10, "cut body");
    cJSON_Delete(o);
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: slow-headers\r\n", CHAT_HELLO,
           5000, &r);
    o = json_of(&r);
    CHECK(r.status == 200 && o && r.first_byte_ms >= 290, "slow headers after %.0f ms",
          r.first_byte_ms);
    cJSON_Delete(o);
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-ttft-ms: 250\r\n", stream_iu, 5000, &r);
    CHECK(r.status == 200 && r.complete && r.total_ms >= 240, "ttft override %.0f", r.total_ms);
    t_resp_free(&r);

    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-fault: explode\r\n", CHAT_HELLO, 5000,
           &r);
    expect_error(&r, 400, NULL, "unknown fault");
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-ttft-ms: soon\r\n", CHAT_HELLO, 5000, &r);
    expect_error(&r, 400, NULL, "bad ttft header");
    t_resp_free(&r);

    o = get_stats(s.port);
    CHECK(num_at(o, "requests.by_fault.cut") == 2 && num_at(o, "requests.by_fault.reset") == 1 &&
              num_at(o, "requests.by_fault.stall") == 1 && num_at(o, "requests.by_fault.429") == 1,
          "faults counted");
    cJSON_Delete(o);

    /* a client leaving mid-stream is forgotten too */
    int fd = t_connect(s.port);
    char req[512];
    const char *slow = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"x\"}]}";
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-sim-tokens-per-s: 5\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(slow), slow);
    CHECK(send(fd, req, (size_t)n, 0) == n, "send");
    char buf[256];
    CHECK(recv(fd, buf, sizeof(buf), 0) > 0, "some of the stream");
    close(fd);
    inflight = 1;
    for (int i = 0; i < 40 && inflight != 0; i++) {
        usleep(100000);
        inflight = stat_of(s.port, "requests.in_flight");
    }
    CHECK(inflight == 0, "abandoned stream still in flight");
    CHECK(stat_of(s.port, "requests.cancelled") == 2, "stall and abandoned stream cancelled: %g",
          stat_of(s.port, "requests.cancelled"));

    /* a client leaving while a whole answer is being prepared (long ttft) */
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-ttft-ms: 5000\r\n", CHAT_HELLO, 200, &r);
    CHECK(r.timed_out && r.raw_len == 0, "long ttft: nothing yet");
    t_resp_free(&r);
    double cancelled = 0;
    for (int i = 0; i < 20 && cancelled != 3; i++) {
        usleep(50000);
        cancelled = stat_of(s.port, "requests.cancelled");
    }
    CHECK(cancelled == 3 && stat_of(s.port, "requests.in_flight") == 0,
          "waiting call not dropped after its client left: cancelled %g", cancelled);

    /* shutdown with a call in flight (stalled) is clean */
    fd = t_connect(s.port);
    n = snprintf(req, sizeof(req),
                 "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-sim-fault: stall\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 strlen(CHAT_HELLO), CHAT_HELLO);
    CHECK(send(fd, req, (size_t)n, 0) == n, "send");
    usleep(100000);
    stop(&s);
    close(fd);

    /* random faults from the seeded generator: reproducible */
    int seq1[30], seq2[30];
    const char *rate_args[] = {"--seed", "42", "--rate-429", "0.3", "--rate-503", "0.2", NULL};
    for (int run = 0; run < 2; run++) {
        if (start(&s, rate_args) < 0)
            return;
        int *seq = run ? seq2 : seq1;
        for (int i = 0; i < 30; i++) {
            t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 5000, &r);
            seq[i] = r.status;
            t_resp_free(&r);
        }
        stop(&s);
    }
    int c200 = 0, c429 = 0, c503 = 0;
    for (int i = 0; i < 30; i++) {
        CHECK(seq1[i] == seq2[i], "same seed, different outcome at %d", i);
        c200 += seq1[i] == 200;
        c429 += seq1[i] == 429;
        c503 += seq1[i] == 503;
    }
    CHECK(c200 > 0 && c429 > 0 && c503 > 0 && c200 + c429 + c503 == 30,
          "rates drawn: %d ok %d 429 %d 503", c200, c429, c503);
    const char *all_reset[] = {"--rate-reset", "1", NULL};
    if (start(&s, all_reset) < 0)
        return;
    t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 5000, &r);
    CHECK(r.raw_len == 0 && !r.timed_out, "--rate-reset 1 resets");
    t_resp_free(&r);
    t_http(s.port, "GET", "/healthz", NULL, NULL, 5000, &r);
    CHECK(r.status == 200, "health after resets");
    t_resp_free(&r);
    stop(&s);
}

static void test_auth(void)
{
    t_sim_t s;
    const char *args[] = {"--api-key", "sk-test-123456789", NULL};
    if (start(&s, args) < 0)
        return;
    t_resp_t r;
    t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 5000, &r);
    expect_error(&r, 401, "invalid_api_key", "no key");
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "Authorization: Bearer sk-wrong\r\n", CHAT_HELLO,
           5000, &r);
    expect_error(&r, 401, "invalid_api_key", "wrong key");
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/completions", "Authorization: Basic c2stdGVzdA==\r\n",
           "{\"model\":\"m\",\"prompt\":\"x\"}", 5000, &r);
    expect_error(&r, 401, "invalid_api_key", "not a bearer");
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "Authorization: Bearer sk-test-123456789\r\n",
           CHAT_HELLO, 5000, &r);
    CHECK(r.status == 200, "right key: %d", r.status);
    t_resp_free(&r);
    t_http(s.port, "GET", "/v1/models", NULL, NULL, 5000, &r);
    expect_error(&r, 401, "invalid_api_key", "models without key");
    t_resp_free(&r);
    t_http(s.port, "GET", "/v1/models", "Authorization: Bearer sk-test-123456789\r\n", NULL, 5000,
           &r);
    CHECK(r.status == 200, "models with key");
    t_resp_free(&r);
    t_http(s.port, "GET", "/healthz", NULL, NULL, 5000, &r);
    CHECK(r.status == 200, "healthz needs no key");
    t_resp_free(&r);
    cJSON *o = get_stats(s.port);
    CHECK(num_at(o, "errors.unauthorized") == 4, "unauthorized %g",
          num_at(o, "errors.unauthorized"));
    CHECK(key_count(o, "sk-test-...6789") == 1, "right key counted");
    CHECK(key_count(o, "sk-wrong") == 1, "short key counted");
    cJSON_Delete(o);
    stop(&s);
}

static void test_context(void)
{
    t_sim_t s;
    const char *args[] = {"--context", "100", NULL};
    if (start(&s, args) < 0)
        return;
    t_resp_t r;
    char *ok = prompt_body('c', 400, 'c', 0), *over = prompt_body('c', 401, 'c', 0);
    t_http(s.port, "POST", "/v1/completions", NULL, ok, 5000, &r);
    CHECK(r.status == 200, "100 tokens fit: %d", r.status);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/completions", NULL, over, 5000, &r);
    expect_error(&r, 400, "context_length_exceeded", "101 tokens");
    CHECK(strstr(r.body, "101") != NULL, "message names the count");
    t_resp_free(&r);
    cJSON *o = get_stats(s.port);
    CHECK(num_at(o, "errors.context_length_exceeded") == 1, "counted");
    CHECK(num_at(o, "tokens.prompt") == 100, "refused prompt not counted as served");
    cJSON_Delete(o);
    free(ok);
    free(over);
    stop(&s);
}

static void test_bad_input(void)
{
    t_sim_t s;
    const char *args[] = {"--max-body", "4096", NULL};
    if (start(&s, args) < 0)
        return;
    static const struct {
        const char *path, *body, *param;
    } cases[] = {
        {"/v1/chat/completions", "{\"model\":\"m\",\"messages\":[", NULL},
        {"/v1/chat/completions", "", NULL},
        {"/v1/chat/completions", "[1,2]", NULL},
        {"/v1/chat/completions", "{\"model\":\"m\"}", "messages"},
        {"/v1/chat/completions", "{\"model\":\"m\",\"messages\":\"hi\"}", "messages"},
        {"/v1/chat/completions", "{\"model\":\"m\",\"messages\":[]}", "messages"},
        {"/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
         "messages"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages"},
        {"/v1/chat/completions", "{\"model\":\"m\",\"messages\":[7]}", "messages"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"/v1/chat/completions",
         "{\"model\":3,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
         "}",
         "stream"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"stream_options\":\"u\",\"messages\":[{\"role\":\"user\",\"content\":"
         "\"x\"}]}",
         "stream_options"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"stream_options\":{\"include_usage\":1},\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "stream_options"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"max_tokens\":-1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
         "}",
         "max_tokens"},
        {"/v1/chat/completions",
         "{\"model\":\"m\",\"max_completion_tokens\":\"3\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "max_completion_tokens"},
        {"/v1/completions", "{\"model\":\"m\"}", "prompt"},
        {"/v1/completions", "{\"model\":\"m\",\"prompt\":12}", "prompt"},
        {"/v1/completions", "{\"model\":\"m\",\"prompt\":[\"a\",1]}", "prompt"},
        {"/v1/completions", "{\"model\":\"m\",\"prompt\":[]}", "prompt"},
    };
    t_resp_t r;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t_http(s.port, "POST", cases[i].path, NULL, cases[i].body, 5000, &r);
        cJSON *o = json_of(&r);
        CHECK(r.status == 400, "case %zu: status %d", i, r.status);
        CHECK(o && str_at(o, "error.message") &&
                  strcmp(str_at(o, "error.type"), "invalid_request_error") == 0,
              "case %zu: error shape", i);
        if (cases[i].param)
            CHECK(str_at(o, "error.param") && strcmp(str_at(o, "error.param"), cases[i].param) == 0,
                  "case %zu: param %s", i,
                  str_at(o, "error.param") ? str_at(o, "error.param") : "-");
        cJSON_Delete(o);
        t_resp_free(&r);
    }
    /* invalid UTF-8 is only bytes to count */
    t_http(s.port, "POST", "/v1/completions", NULL, "{\"model\":\"m\",\"prompt\":\"\xff\xfe\xc3\"}",
           5000, &r);
    CHECK(r.status == 200, "invalid UTF-8 prompt: %d", r.status);
    t_resp_free(&r);
    /* a model name needing escapes comes back escaped */
    t_http(s.port, "POST", "/v1/completions", NULL,
           "{\"model\":\"a\\\"b\\\\c\\n\",\"prompt\":\"x\"}", 5000, &r);
    cJSON *o = json_of(&r);
    CHECK(o && str_at(o, "model") && strcmp(str_at(o, "model"), "a\"b\\c\n") == 0, "model escaped");
    cJSON_Delete(o);
    t_resp_free(&r);
    /* body over the cap */
    char *big = prompt_body('b', 5000, 'b', 0);
    t_http(s.port, "POST", "/v1/completions", NULL, big, 5000, &r);
    CHECK(r.status == 413, "body cap: %d", r.status);
    t_resp_free(&r);
    free(big);
    /* headers over 64 KiB */
    char *hdr = malloc(70 * 1024);
    strcpy(hdr, "x-big: ");
    memset(hdr + 7, 'h', 69 * 1024);
    strcpy(hdr + 7 + 69 * 1024, "\r\n");
    t_http(s.port, "POST", "/v1/completions", hdr, "{}", 5000, &r);
    CHECK(r.status == 0 || r.status >= 400, "huge headers: %d", r.status);
    t_resp_free(&r);
    free(hdr);
    /* not HTTP at all */
    int fd = t_connect(s.port);
    const char junk[] = "\x16\x03\x01 hello\r\n\r\n";
    send(fd, junk, sizeof(junk) - 1, 0);
    char buf[512];
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 2000);
    ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
    CHECK(got <= 0 || strncmp(buf, "HTTP/1.1 400", 12) == 0, "junk answered %zd", got);
    close(fd);
    t_http(s.port, "GET", "/healthz", NULL, NULL, 5000, &r);
    CHECK(r.status == 200, "alive after bad input");
    t_resp_free(&r);
    CHECK(stat_of(s.port, "errors.bad_request") == 21, "bad requests counted %g",
          stat_of(s.port, "errors.bad_request"));
    stop(&s);

    /* bad command lines exit 2 with a message */
    static const char *const bad_args[][3] = {
        {"--rate-429", "1.5", NULL}, {"--threads", "0", NULL},  {"--listen", "nohost", NULL},
        {"--cache", "maybe", NULL},  {"--ttft-ms", "-3", NULL}, {"--bogus", NULL, NULL},
        {"--rate-slow", "1.5", NULL}, {"--rate-slow", "x", NULL}, {"--slow-ttft-ms", "-1", NULL},
        {"--slow-ttft-ms", "3600001", NULL},
    };
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 2);
            dup2(devnull, 1);
            const char *argv[] = {sim_bin, bad_args[i][0], bad_args[i][1], bad_args[i][2], NULL};
            execv(sim_bin, (char *const *)argv);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad args %zu: status %d", i, st);
    }
    /* --help documents every option */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "'%s' --help", sim_bin);
    FILE *hp = popen(cmd, "r");
    char help[8192];
    size_t hl = hp ? fread(help, 1, sizeof(help) - 1, hp) : 0;
    help[hl] = '\0';
    CHECK(hp && pclose(hp) == 0, "--help exit status");
    static const char *const options[] = {
        "--listen",
        "--port-file",
        "--threads",
        "--ttft-ms",
        "--tokens-per-s",
        "--completion-tokens",
        "--context",
        "--seed",
        "--rate-429",
        "--rate-500",
        "--rate-503",
        "--rate-reset",
        "--rate-stall",
        "--rate-slow",
        "--slow-ttft-ms",
        "--api-key",
        "--name",
        "--cache",
        "--cache-blocks",
        "--max-body",
        "--slow-headers-ms",
        "--retry-after",
        "--idle-timeout",
        "--models",
        "--log-level",
        "x-sim-fault",
        "x-sim-ttft-ms",
        "x-sim-completion-tokens",
    };
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        CHECK(strstr(help, options[i]) != NULL, "--help lacks %s", options[i]);

    const char *rates[] = {"--rate-429", "0.6", "--rate-500", "0.6", NULL};
    t_sim_t bad;
    CHECK(t_sim_start(&bad, sim_bin, rates) < 0, "rates over 1 accepted");
}

static char *content_of(int port, const char *body)
{
    t_resp_t r;
    t_http(port, "POST", "/v1/chat/completions", NULL, body, 5000, &r);
    cJSON *o = json_of(&r);
    const char *c = str_at(cJSON_GetObjectItemCaseSensitive(choice0(o), "message"), "content");
    char *out = strdup(c ? c : "");
    cJSON_Delete(o);
    t_resp_free(&r);
    return out;
}

static void test_seed(void)
{
    t_sim_t s;
    const char *a7[] = {"--seed", "7", NULL}, *a8[] = {"--seed", "8", NULL};
    const char *other = "{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"hello there!\"}]}";
    if (start(&s, a7) < 0)
        return;
    char *x1 = content_of(s.port, CHAT_HELLO), *x2 = content_of(s.port, CHAT_HELLO);
    char *y = content_of(s.port, other);
    stop(&s);
    if (start(&s, a7) < 0)
        return;
    char *x3 = content_of(s.port, CHAT_HELLO);
    stop(&s);
    if (start(&s, a8) < 0)
        return;
    char *z = content_of(s.port, CHAT_HELLO);
    stop(&s);
    CHECK(strlen(x1) > 0 && strcmp(x1, x2) == 0, "same request twice: '%s' vs '%s'", x1, x2);
    CHECK(strcmp(x1, x3) == 0, "same seed, new process");
    CHECK(strcmp(x1, y) != 0, "different prompt, same text");
    CHECK(strcmp(x1, z) != 0, "different seed, same text");
    free(x1);
    free(x2);
    free(x3);
    free(y);
    free(z);
}

static void test_timing(void)
{
    t_sim_t s;
    const char *args[] = {"--ttft-ms",
                          "100",
                          "--tokens-per-s",
                          "50",
                          "--completion-tokens",
                          "10",
                          "--threads",
                          "2",
                          "--port-file",
                          "sim-test.port",
                          NULL};
    if (start(&s, args) < 0)
        return;
    FILE *f = fopen("sim-test.port", "r");
    int pf = 0;
    CHECK(f && fscanf(f, "%d", &pf) == 1 && pf == s.port, "port file %d vs %d", pf, s.port);
    if (f)
        fclose(f);
    unlink("sim-test.port");
    t_resp_t r;
    const char *st =
        "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
        "\"x\"}]}";
    t_http(s.port, "POST", "/v1/chat/completions", NULL, st, 10000, &r);
    events_t ev;
    events_parse(r.body, &ev);
    CHECK(r.status == 200 && r.complete && ev.n == 12, "paced stream: %d events", ev.n);
    /* 100 ms to the first token, 9 more at 20 ms each */
    CHECK(r.total_ms >= 270 && r.total_ms < 3000, "paced stream took %.0f ms", r.total_ms);
    events_free(&ev);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 10000, &r);
    CHECK(r.status == 200 && r.total_ms >= 270, "whole answer waits for all tokens: %.0f",
          r.total_ms);
    t_resp_free(&r);
    for (int i = 0; i < 20; i++) {
        t_http(s.port, "POST", "/v1/chat/completions",
               "x-sim-ttft-ms: 0\r\nx-sim-tokens-per-s: 0\r\n", CHAT_HELLO, 5000, &r);
        CHECK(r.status == 200 && r.total_ms < 250, "unpaced override %.0f", r.total_ms);
        t_resp_free(&r);
    }
    CHECK(stat_of(s.port, "requests.by_endpoint.chat_completions") == 22, "all loops share stats");
    stop(&s);
}

/* --rate-slow / --slow-ttft-ms: a seeded heavy tail of slow first tokens */
static void test_slow(void)
{
    t_sim_t s;
    t_resp_t r;
    /* whole answers: which are slow follows the seed; the counter agrees; reset re-seeds */
    const char *args[] = {"--seed", "42", "--rate-slow", "0.3", "--slow-ttft-ms", "600", NULL};
    if (start(&s, args) < 0)
        return;
    bool seq[2][24];
    int nslow[2] = {0, 0};
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 24; i++) {
            t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 5000, &r);
            CHECK(r.status == 200, "slow-tail answer %d: status %d", i, r.status);
            seq[run][i] = r.total_ms >= 400;
            CHECK(r.total_ms < 400 || r.total_ms >= 590, "answer %d took %.0f ms", i, r.total_ms);
            nslow[run] += seq[run][i];
            t_resp_free(&r);
        }
        CHECK(stat_of(s.port, "requests.slow") == nslow[run], "requests.slow %g, seen %d",
              stat_of(s.port, "requests.slow"), nslow[run]);
        t_http(s.port, "POST", "/sim/reset", NULL, "", 5000, &r);
        CHECK(r.status == 200, "reset");
        t_resp_free(&r);
    }
    CHECK(nslow[0] > 0 && nslow[0] < 24, "slow draws: %d of 24 at rate 0.3", nslow[0]);
    for (int i = 0; i < 24; i++)
        CHECK(seq[0][i] == seq[1][i], "after reset, a different slow draw at %d", i);
    stop(&s);

    /* the tail has its own draws: the fault outcomes stay those of the seed */
    const char *faults[] = {"--seed", "42", "--rate-429", "0.3", NULL};
    const char *faults_slow[] = {"--seed",      "42", "--rate-429", "0.3",
                                 "--rate-slow", "0.5", "--slow-ttft-ms", "0", NULL};
    int st[2][20];
    for (int run = 0; run < 2; run++) {
        if (start(&s, run ? faults_slow : faults) < 0)
            return;
        for (int i = 0; i < 20; i++) {
            t_http(s.port, "POST", "/v1/chat/completions", NULL, CHAT_HELLO, 5000, &r);
            st[run][i] = r.status;
            t_resp_free(&r);
        }
        double n = stat_of(s.port, "requests.slow");
        CHECK(run ? n > 0 : n == 0, "run %d: requests.slow %g", run, n);
        stop(&s);
    }
    for (int i = 0; i < 20; i++)
        CHECK(st[0][i] == st[1][i], "the tail changed fault outcome %d: %d vs %d", i, st[0][i],
              st[1][i]);

    /* every answer slow: streams (headers at once, the first event late), the
     * completions endpoint; x-sim-ttft-ms overrides the draw */
    const char *all[] = {"--rate-slow", "1", "--slow-ttft-ms", "500", NULL};
    if (start(&s, all) < 0)
        return;
    const char *st_body = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                          "\"content\":\"x\"}]}";
    t_http(s.port, "POST", "/v1/chat/completions", NULL, st_body, 5000, &r);
    CHECK(r.status == 200 && r.complete && r.total_ms >= 490, "slow stream: %d in %.0f ms",
          r.status, r.total_ms);
    CHECK(r.first_byte_ms < 450, "slow stream's headers came after %.0f ms", r.first_byte_ms);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/completions", NULL, "{\"model\":\"m\",\"prompt\":\"hi\"}", 5000, &r);
    CHECK(r.status == 200 && r.total_ms >= 490, "slow completion: %d in %.0f ms", r.status,
          r.total_ms);
    t_resp_free(&r);
    t_http(s.port, "POST", "/v1/chat/completions", "x-sim-ttft-ms: 0\r\n", CHAT_HELLO, 5000, &r);
    CHECK(r.status == 200 && r.total_ms < 450, "x-sim-ttft-ms over a slow draw: %.0f ms",
          r.total_ms);
    t_resp_free(&r);
    CHECK(stat_of(s.port, "requests.slow") == 2, "requests.slow counts answers given the tail: %g",
          stat_of(s.port, "requests.slow"));
    stop(&s);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SIM-BINARY GROUP\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sim_bin = argv[1];
    const char *g = argv[2];
    if (strcmp(g, "api") == 0)
        test_api();
    else if (strcmp(g, "cache") == 0)
        test_cache();
    else if (strcmp(g, "faults") == 0)
        test_faults();
    else if (strcmp(g, "auth") == 0)
        test_auth();
    else if (strcmp(g, "context") == 0)
        test_context();
    else if (strcmp(g, "bad_input") == 0)
        test_bad_input();
    else if (strcmp(g, "seed") == 0)
        test_seed();
    else if (strcmp(g, "timing") == 0)
        test_timing();
    else if (strcmp(g, "slow") == 0)
        test_slow();
    else {
        fprintf(stderr, "unknown group %s\n", g);
        return 2;
    }
    if (t_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", g, t_failures);
        return 1;
    }
    printf("%s: all checks passed\n", g);
    return 0;
}
