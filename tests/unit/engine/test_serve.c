/* tollgate-engine serve end to end: the real binary with the demo-tiny
 * random model and the DeepSeek V3 tokenizer, on a free port. Groups:
 *   api        shapes of chat/completions, streamed and not; usage; stream
 *              text = whole text (greedy); seeds; stop strings; max_tokens;
 *              /v1/models, /healthz, /metrics
 *   cache      a repeated long prompt hits in whole 64-token blocks and gives
 *              the cold run's output (greedy)
 *   batch      concurrent requests = the same requests alone (greedy)
 *   bad        every bad request is a 400 naming its field; too long is
 *              context_length_exceeded (context and KV cache)
 *   disconnect a client that goes away is cancelled and its blocks freed
 *              (streamed and not); SIGTERM with a request running exits 0
 * Usage: test_engine_serve BIN DEMO_CONFIG TOKENIZER_DIR GROUP */
#include "../sim/sim_test_client.h"

#include "tok.h"

#include <cjson/cJSON.h>
#include <pthread.h>

static const char *g_bin, *g_cfg, *g_tokdir;
static tok_tokenizer_t *g_tok;
static tok_chat_t *g_chat;

static int start(t_sim_t *s, const char *const *extra)
{
    const char *args[32] = {"serve",       "--random-init", g_cfg,    "--tokenizer", g_tokdir,
                            "--listen",    "127.0.0.1:0",   "--name", "tollgate-tiny"};
    int n = 9;
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return t_sim_start(s, g_bin, args);
}

/* POSTs body to path; returns the parsed JSON (or NULL) and the status. */
static cJSON *post_json(int port, const char *path, const char *body, int *status)
{
    t_resp_t r;
    if (t_http(port, "POST", path, NULL, body, 60000, &r) != 0) {
        *status = 0;
        return NULL;
    }
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    t_resp_free(&r);
    return j;
}

static const char *jstr(const cJSON *o, const char *path)
{
    /* path like "choices.0.message.content" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (tok[0] >= '0' && tok[0] <= '9') ? cJSON_GetArrayItem(cur, atoi(tok))
                                               : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static long jnum(const cJSON *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (tok[0] >= '0' && tok[0] <= '9') ? cJSON_GetArrayItem(cur, atoi(tok))
                                               : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsNumber(cur) ? (long)cur->valuedouble : -1;
}

/* The SSE events of a body: JSON objects, and a final "[DONE]" flag. */
typedef struct sse {
    cJSON *ev[4096];
    int n;
    bool done_last;
} sse_t;

static void sse_parse(const char *body, sse_t *s)
{
    memset(s, 0, sizeof *s);
    const char *p = body;
    while (p && *p) {
        const char *end = strstr(p, "\n\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 6 && !strncmp(p, "data: ", 6)) {
            if (len == 12 && !strncmp(p + 6, "[DONE]", 6)) {
                s->done_last = true;
            } else if (s->n < 4096) {
                s->done_last = false;
                s->ev[s->n++] = cJSON_ParseWithLength(p + 6, len - 6);
            }
        }
        p = end ? end + 2 : NULL;
    }
}

static void sse_free(sse_t *s)
{
    for (int i = 0; i < s->n; i++)
        cJSON_Delete(s->ev[i]);
}

/* Number of prompt tokens the chat template + tokenizer give one user message. */
static long chat_prompt_tokens(const char *content)
{
    cJSON *m = cJSON_CreateArray(), *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", content);
    cJSON_AddItemToArray(m, u);
    tok_buf_t t = {0};
    char err[200];
    long n = -1;
    if (tok_chat_render(g_chat, m, true, &t, err, sizeof err) == 0)
        n = (long)tok_count(g_tok, t.data, t.len);
    tok_buf_free(&t);
    cJSON_Delete(m);
    return n;
}

/* Reads one value of /metrics, e.g. "tollgate_engine_kv_blocks{state=\"used\"}". */
static long metric(int port, const char *name)
{
    t_resp_t r;
    if (t_http(port, "GET", "/metrics", NULL, NULL, 10000, &r) != 0)
        return -1;
    long v = -1;
    size_t nl = strlen(name);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, nl) && p[nl] == ' ') {
            v = atol(p + nl + 1);
            break;
        }
    t_resp_free(&r);
    return v;
}

static bool wait_metric(int port, const char *name, long want, int ms)
{
    for (int t = 0; t < ms; t += 50) {
        if (metric(port, name) == want)
            return true;
        usleep(50000);
    }
    return false;
}

static char *chat_body(const char *content, const char *extra)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", "tollgate-tiny");
    cJSON *m = cJSON_AddArrayToObject(b, "messages"), *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", content);
    cJSON_AddItemToArray(m, u);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    /* splice the extra fields before the closing brace */
    size_t len = strlen(s), el = extra ? strlen(extra) : 0;
    char *out = malloc(len + el + 2);
    memcpy(out, s, len - 1);
    size_t o = len - 1;
    if (el) {
        out[o++] = ',';
        memcpy(out + o, extra, el);
        o += el;
    }
    out[o++] = '}';
    out[o] = '\0';
    free(s);
    return out;
}

/* ---- api --------------------------------------------------------------- */

static void group_api(int port)
{
    t_resp_t r;
    CHECK(t_http(port, "GET", "/healthz", NULL, NULL, 5000, &r) == 0 && r.status == 200, "healthz");
    t_resp_free(&r);
    CHECK(t_http(port, "GET", "/v1/models", NULL, NULL, 5000, &r) == 0 && r.status == 200, "models");
    CHECK(strstr(r.body, "\"id\":\"tollgate-tiny\"") != NULL, "models lists the name: %s", r.body);
    t_resp_free(&r);

    const char *msg = "Hello there, how are you today?";
    int st;
    char *body = chat_body(msg, "\"temperature\":0,\"max_tokens\":12");
    cJSON *j = post_json(port, "/v1/chat/completions", body, &st);
    free(body);
    CHECK(st == 200 && j, "chat status %d", st);
    CHECK(jstr(j, "object") && !strcmp(jstr(j, "object"), "chat.completion"), "object");
    CHECK(jstr(j, "model") && !strcmp(jstr(j, "model"), "tollgate-tiny"), "model echoed");
    CHECK(jstr(j, "choices.0.message.role") && !strcmp(jstr(j, "choices.0.message.role"), "assistant"), "role");
    const char *content = jstr(j, "choices.0.message.content");
    CHECK(content && strlen(content) > 0, "content");
    char whole[4096];
    snprintf(whole, sizeof whole, "%s", content ? content : "");
    long pt = chat_prompt_tokens(msg);
    CHECK(pt > 5 && jnum(j, "usage.prompt_tokens") == pt, "prompt_tokens %ld vs %ld",
          jnum(j, "usage.prompt_tokens"), pt);
    long ct = jnum(j, "usage.completion_tokens");
    char fin_buf[16];
    snprintf(fin_buf, sizeof fin_buf, "%s", jstr(j, "choices.0.finish_reason") ? jstr(j, "choices.0.finish_reason") : "");
    const char *fin = fin_buf;
    CHECK(fin[0] && ((!strcmp(fin, "length") && ct == 12) || (!strcmp(fin, "stop") && ct <= 12)),
          "finish %s with %ld tokens", fin ? fin : "?", ct);
    CHECK(jnum(j, "usage.total_tokens") == pt + ct, "total");
    CHECK(jnum(j, "usage.prompt_tokens_details.cached_tokens") == 0, "cold: no hits");
    CHECK(jnum(j, "usage.prompt_cache_hit_tokens") == 0 && jnum(j, "usage.prompt_cache_miss_tokens") == pt,
          "hit/miss");
    cJSON_Delete(j);

    /* streamed with include_usage: same text, chunks per token, usage event, [DONE] */
    body = chat_body(msg, "\"temperature\":0,\"max_tokens\":12,\"stream\":true,"
                          "\"stream_options\":{\"include_usage\":true}");
    CHECK(t_http(port, "POST", "/v1/chat/completions", NULL, body, 60000, &r) == 0, "stream");
    free(body);
    CHECK(r.status == 200 && r.chunked && r.complete, "stream status %d", r.status);
    CHECK(t_header(&r, "Content-Type") && strstr(t_header(&r, "Content-Type"), "text/event-stream"), "sse");
    sse_t s;
    sse_parse(r.body, &s);
    CHECK(s.done_last && s.n >= 4, "events %d done %d", s.n, s.done_last);
    char streamed[4096] = "";
    int text_events = 0;
    for (int i = 0; i < s.n; i++) {
        cJSON *e = s.ev[i];
        CHECK(e && !strcmp(jstr(e, "object"), "chat.completion.chunk"), "chunk object");
        CHECK(cJSON_HasObjectItem(e, "usage"), "include_usage: every chunk has usage");
        if (i == 0)
            CHECK(jstr(e, "choices.0.delta.role") && !strcmp(jstr(e, "choices.0.delta.role"), "assistant"), "role first");
        const char *c = jstr(e, "choices.0.delta.content");
        if (c && *c) {
            strncat(streamed, c, sizeof streamed - strlen(streamed) - 1);
            text_events++;
        }
    }
    CHECK(!strcmp(streamed, whole), "stream text '%s' vs whole '%s'", streamed, whole);
    CHECK(text_events >= 3, "a chunk per token (%d)", text_events);
    cJSON *fe = s.ev[s.n - 2], *ue = s.ev[s.n - 1];
    CHECK(jstr(fe, "choices.0.finish_reason") && !strcmp(jstr(fe, "choices.0.finish_reason"), fin ? fin : ""), "finish event");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(ue, "choices")) == 0, "usage event has no choices");
    CHECK(jnum(ue, "usage.completion_tokens") == ct && jnum(ue, "usage.prompt_tokens") == pt,
          "usage event counts");
    CHECK(jnum(ue, "usage.prompt_tokens_details.cached_tokens") == 0, "short prompt: no hits");
    sse_free(&s);
    t_resp_free(&r);

    /* completions, token-id prompt, streamed without include_usage */
    const char *cb = "{\"model\":\"m\",\"prompt\":[100,200,300,400],\"max_tokens\":5,"
                     "\"temperature\":0,\"stream\":true}";
    CHECK(t_http(port, "POST", "/v1/completions", NULL, cb, 60000, &r) == 0 && r.status == 200, "compl stream");
    sse_parse(r.body, &s);
    CHECK(s.done_last && s.n >= 2, "events");
    for (int i = 0; i < s.n; i++) {
        CHECK(!strcmp(jstr(s.ev[i], "object"), "text_completion"), "text_completion");
        CHECK(!cJSON_HasObjectItem(s.ev[i], "usage"), "no usage without include_usage");
    }
    CHECK(jstr(s.ev[s.n - 1], "choices.0.finish_reason") != NULL, "finish last");
    sse_free(&s);
    t_resp_free(&r);
    /* completions, string prompt, not streamed */
    j = post_json(port, "/v1/completions",
                  "{\"model\":\"m\",\"prompt\":\"The quick brown fox\",\"max_tokens\":4,\"temperature\":0}", &st);
    CHECK(st == 200 && jstr(j, "object") && !strcmp(jstr(j, "object"), "text_completion"), "text_completion");
    CHECK(jnum(j, "usage.prompt_tokens") == (long)tok_count(g_tok, "The quick brown fox", 19), "prompt count");
    CHECK(jstr(j, "choices.0.text") != NULL, "text");
    cJSON_Delete(j);

    /* seeds: same seed same text, another seed another text */
    char a[4096] = "", b2[4096] = "", c[4096] = "";
    const char *seeds[3] = {"\"seed\":5", "\"seed\":5", "\"seed\":6"};
    char *outs[3] = {a, b2, c};
    for (int i = 0; i < 3; i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "\"temperature\":1.0,\"top_p\":0.9,\"max_tokens\":10,%s", seeds[i]);
        body = chat_body(msg, extra);
        j = post_json(port, "/v1/chat/completions", body, &st);
        free(body);
        const char *t = jstr(j, "choices.0.message.content");
        snprintf(outs[i], 4096, "%s", t ? t : "");
        cJSON_Delete(j);
    }
    CHECK(a[0] && !strcmp(a, b2), "same seed: '%s' vs '%s'", a, b2);
    CHECK(strcmp(a, c) != 0, "another seed, another text");
    CHECK(strcmp(a, whole) != 0, "sampling differs from greedy");

    /* stop string: take a piece from the middle of the greedy text */
    size_t wl = strlen(whole), p0 = wl / 2;
    while (p0 < wl && ((unsigned char)whole[p0] & 0xc0) == 0x80)
        p0++;
    size_t p1 = p0 + 1;
    while (p1 < wl && ((unsigned char)whole[p1] & 0xc0) == 0x80)
        p1++;
    if (p1 < wl) {
        p1++;
        while (p1 < wl && ((unsigned char)whole[p1] & 0xc0) == 0x80)
            p1++;
    }
    char stop[64];
    snprintf(stop, sizeof stop, "%.*s", (int)(p1 - p0), whole + p0);
    cJSON *stop_json = cJSON_CreateString(stop);
    char *stop_s = cJSON_PrintUnformatted(stop_json);
    cJSON_Delete(stop_json);
    char extra[256];
    snprintf(extra, sizeof extra, "\"temperature\":0,\"max_tokens\":12,\"stop\":[%s]", stop_s);
    free(stop_s);
    size_t cut = (size_t)(strstr(whole, stop) - whole);
    for (int streamed_mode = 0; streamed_mode < 2; streamed_mode++) {
        char ex2[600];
        snprintf(ex2, sizeof ex2, "%s%s", extra,
                 streamed_mode ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "");
        body = chat_body(msg, ex2);
        char got[4096] = "";
        long ctok = -1;
        const char *fr = NULL;
        char frb[16] = "";
        if (!streamed_mode) {
            j = post_json(port, "/v1/chat/completions", body, &st);
            snprintf(got, sizeof got, "%s", jstr(j, "choices.0.message.content") ? jstr(j, "choices.0.message.content") : "?");
            ctok = jnum(j, "usage.completion_tokens");
            fr = jstr(j, "choices.0.finish_reason");
            snprintf(frb, sizeof frb, "%s", fr ? fr : "");
            cJSON_Delete(j);
        } else {
            t_http(port, "POST", "/v1/chat/completions", NULL, body, 60000, &r);
            sse_parse(r.body, &s);
            for (int i = 0; i < s.n; i++) {
                const char *t = jstr(s.ev[i], "choices.0.delta.content");
                if (t)
                    strncat(got, t, sizeof got - strlen(got) - 1);
                if (jstr(s.ev[i], "choices.0.finish_reason"))
                    snprintf(frb, sizeof frb, "%s", jstr(s.ev[i], "choices.0.finish_reason"));
            }
            ctok = jnum(s.ev[s.n - 1], "usage.completion_tokens");
            sse_free(&s);
            t_resp_free(&r);
        }
        free(body);
        CHECK(strlen(got) == cut && !strncmp(got, whole, cut), "stop '%s': got '%s' from '%s'", stop, got, whole);
        CHECK(!strcmp(frb, "stop"), "finish stop (%s)", frb);
        CHECK(ctok > 0 && ctok < 12, "stopped early: %ld tokens", ctok);
    }

    /* metrics count what was served */
    CHECK(metric(port, "tollgate_engine_requests_total{endpoint=\"chat.completions\",outcome=\"ok\"}") >= 7, "chat count");
    CHECK(metric(port, "tollgate_engine_generated_tokens_total") > 30, "tokens");
    CHECK(wait_metric(port, "tollgate_engine_kv_blocks{state=\"used\"}", 0, 5000), "nothing in use");
    CHECK(metric(port, "tollgate_engine_kv_blocks_total") == 1024, "blocks total");
}

/* ---- cache ------------------------------------------------------------- */

static void group_cache(int port)
{
    char body[8192];
    int n = snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":8,\"temperature\":0,\"prompt\":[");
    for (int i = 0; i < 200; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "%s%d", i ? "," : "", 1000 + (i * 37) % 5000);
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    int st;
    cJSON *cold = post_json(port, "/v1/completions", body, &st);
    CHECK(st == 200, "cold");
    CHECK(jnum(cold, "usage.prompt_tokens") == 200, "200 prompt tokens");
    CHECK(jnum(cold, "usage.prompt_cache_hit_tokens") == 0, "cold: no hits");
    cJSON *warm = post_json(port, "/v1/completions", body, &st);
    CHECK(st == 200, "warm");
    /* whole 64-token blocks, never the last prompt token: 3 blocks of 200 */
    CHECK(jnum(warm, "usage.prompt_cache_hit_tokens") == 192, "hits %ld", jnum(warm, "usage.prompt_cache_hit_tokens"));
    CHECK(jnum(warm, "usage.prompt_cache_miss_tokens") == 8, "misses");
    CHECK(jnum(warm, "usage.prompt_tokens_details.cached_tokens") == 192, "cached_tokens");
    const char *a = jstr(cold, "choices.0.text"), *b = jstr(warm, "choices.0.text");
    CHECK(a && b && !strcmp(a, b), "warm = cold: '%s' vs '%s'", a ? a : "", b ? b : "");
    CHECK(jnum(cold, "usage.completion_tokens") == jnum(warm, "usage.completion_tokens"), "same length");
    cJSON_Delete(cold);
    cJSON_Delete(warm);

    /* a long chat conversation repeated: hits in 64s, streamed usage too */
    char content[4000] = "";
    for (int i = 0; i < 40; i++)
        strcat(content, "The gateway meters every request and routes it by cost. ");
    char *cb = chat_body(content, "\"temperature\":0,\"max_tokens\":6,\"stream\":true,"
                                  "\"stream_options\":{\"include_usage\":true}");
    long pt = chat_prompt_tokens(content), hits[2] = {-1, -1};
    char texts[2][2048] = {"", ""};
    for (int k = 0; k < 2; k++) {
        t_resp_t r;
        CHECK(t_http(port, "POST", "/v1/chat/completions", NULL, cb, 60000, &r) == 0, "chat");
        sse_t s;
        sse_parse(r.body, &s);
        for (int i = 0; i < s.n; i++) {
            const char *t = jstr(s.ev[i], "choices.0.delta.content");
            if (t)
                strncat(texts[k], t, sizeof texts[k] - strlen(texts[k]) - 1);
        }
        CHECK(jnum(s.ev[s.n - 1], "usage.prompt_tokens") == pt, "prompt tokens");
        hits[k] = jnum(s.ev[s.n - 1], "usage.prompt_cache_hit_tokens");
        sse_free(&s);
        t_resp_free(&r);
    }
    free(cb);
    CHECK(hits[0] == 0, "cold chat");
    CHECK(hits[1] == (pt - 1) / 64 * 64 && hits[1] >= 256, "warm chat hits %ld of %ld", hits[1], pt);
    CHECK(!strcmp(texts[0], texts[1]), "warm chat = cold");
    CHECK(metric(port, "tollgate_engine_cache_hit_tokens_total") == 192 + hits[1], "hit counter");
}

/* ---- batch ------------------------------------------------------------- */

typedef struct job {
    int port;
    char *body;
    char text[4096];
    long ct;
} job_t;

static void *run_job(void *arg)
{
    job_t *j = arg;
    int st;
    cJSON *r = post_json(j->port, "/v1/completions", j->body, &st);
    const char *t = jstr(r, "choices.0.text");
    snprintf(j->text, sizeof j->text, "%s", st == 200 && t ? t : "<error>");
    j->ct = jnum(r, "usage.completion_tokens");
    cJSON_Delete(r);
    return NULL;
}

static void group_batch(int port)
{
    enum { NJ = 4 };
    const int len[NJ] = {12, 90, 150, 3};
    job_t jobs[NJ];
    for (int k = 0; k < NJ; k++) {
        jobs[k].port = port;
        jobs[k].body = malloc(8192);
        int n = snprintf(jobs[k].body, 8192,
                         "{\"model\":\"m\",\"max_tokens\":%d,\"temperature\":0,\"prompt\":[", 10 + 3 * k);
        for (int i = 0; i < len[k]; i++)
            n += snprintf(jobs[k].body + n, 8192 - (size_t)n, "%s%d", i ? "," : "",
                          500 + (i * 13 + k * 101) % 9000);
        snprintf(jobs[k].body + n, 8192 - (size_t)n, "]}");
    }
    /* together (cold) */
    pthread_t th[NJ];
    for (int k = 0; k < NJ; k++)
        pthread_create(&th[k], NULL, run_job, &jobs[k]);
    for (int k = 0; k < NJ; k++)
        pthread_join(th[k], NULL);
    char together[NJ][4096];
    long ct[NJ];
    for (int k = 0; k < NJ; k++) {
        snprintf(together[k], sizeof together[k], "%s", jobs[k].text);
        ct[k] = jobs[k].ct;
    }
    CHECK(metric(port, "tollgate_engine_batch_size_max") >= 2, "requests shared steps");
    /* alone */
    for (int k = 0; k < NJ; k++) {
        run_job(&jobs[k]);
        CHECK(strcmp(jobs[k].text, "<error>") != 0, "job %d ok", k);
        CHECK(!strcmp(together[k], jobs[k].text), "job %d: batch '%s' vs alone '%s'", k,
              together[k], jobs[k].text);
        CHECK(ct[k] == jobs[k].ct, "job %d token count", k);
        free(jobs[k].body);
    }
}

/* ---- bad requests -------------------------------------------------------- */

static void expect_400(int port, const char *path, const char *body, const char *param,
                       const char *code)
{
    int st;
    cJSON *j = post_json(port, path, body, &st);
    CHECK(st == 400, "%s -> %d", body, st);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    const char *p = jstr(e, "param"), *c = jstr(e, "code"), *m = jstr(e, "message");
    CHECK(m && *m, "%s: message", body);
    CHECK(jstr(e, "type") && !strcmp(jstr(e, "type"), "invalid_request_error"), "%s: type", body);
    if (param)
        CHECK(p && !strcmp(p, param), "%s: param %s, want %s", body, p ? p : "null", param);
    else
        CHECK(!p, "%s: param null", body);
    if (code)
        CHECK(c && !strcmp(c, code), "%s: code %s, want %s", body, c ? c : "null", code);
    cJSON_Delete(j);
}

static void group_bad(int port)
{
    const char *C = "/v1/chat/completions", *P = "/v1/completions";
    const char *M = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    char b[8192];
    expect_400(port, C, "{not json", NULL, NULL);
    expect_400(port, C, "[1,2]", NULL, NULL);
    expect_400(port, C, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model", NULL);
    expect_400(port, C, "{\"model\":\"m\",\"messages\":\"hi\"}", "messages", NULL);
    expect_400(port, C, "{\"model\":\"m\",\"messages\":[]}", "messages", NULL);
    expect_400(port, C, "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", "messages", NULL);
    expect_400(port, C, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[1]}]}", "messages", NULL);
    const char *fields[][2] = {
        {"\"temperature\":3", "temperature"}, {"\"temperature\":\"hot\"", "temperature"},
        {"\"top_p\":0", "top_p"},             {"\"top_p\":1.5", "top_p"},
        {"\"top_k\":-5", "top_k"},            {"\"top_k\":1.5", "top_k"},
        {"\"max_tokens\":0", "max_tokens"},   {"\"max_tokens\":\"x\"", "max_tokens"},
        {"\"max_completion_tokens\":-1", "max_completion_tokens"},
        {"\"n\":2", "n"},                     {"\"seed\":\"x\"", "seed"},
        {"\"stream\":\"yes\"", "stream"},     {"\"stream_options\":{\"include_usage\":1}", "stream_options"},
        {"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop"}, {"\"stop\":7", "stop"},
        {"\"stop_token_ids\":[\"x\"]", "stop_token_ids"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        snprintf(b, sizeof b, "{\"model\":\"m\",%s,%s}", M, fields[i][0]);
        expect_400(port, C, b, fields[i][1], NULL);
    }
    expect_400(port, P, "{\"model\":\"m\"}", "prompt", NULL);
    expect_400(port, P, "{\"model\":\"m\",\"prompt\":[1,129279]}", "prompt", NULL);
    expect_400(port, P, "{\"model\":\"m\",\"prompt\":[1,-2]}", "prompt", NULL);
    expect_400(port, P, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", "prompt", NULL);
    expect_400(port, P, "{\"model\":\"m\",\"prompt\":\"\"}", "prompt", NULL);
    /* this server has --kv-blocks 4: 256 tokens of cache */
    int n = snprintf(b, sizeof b, "{\"model\":\"m\",\"prompt\":[");
    for (int i = 0; i < 300; i++)
        n += snprintf(b + n, sizeof b - (size_t)n, "%s%d", i ? "," : "", 100 + i);
    snprintf(b + n, sizeof b - (size_t)n, "]}");
    expect_400(port, P, b, "prompt", "context_length_exceeded");
    expect_400(port, P, "{\"model\":\"m\",\"prompt\":[1,2,3],\"max_tokens\":300}", "prompt",
               "context_length_exceeded");
    snprintf(b, sizeof b, "{\"model\":\"m\",%s,\"max_tokens\":5000}", M);
    expect_400(port, C, b, "messages", "context_length_exceeded");
    /* a prompt that fits runs; default max_tokens is cut to what is left */
    int st;
    cJSON *j = post_json(port, P, "{\"model\":\"m\",\"prompt\":[1,2,3],\"max_tokens\":250,\"temperature\":0,\"stop_token_ids\":[]}", &st);
    CHECK(st == 200, "fits: %d", st);
    cJSON_Delete(j);
    /* methods and paths */
    t_resp_t r;
    t_http(port, "GET", C, NULL, NULL, 5000, &r);
    CHECK(r.status == 405 && strstr(r.body, "\"error\""), "GET on a POST endpoint: %d", r.status);
    t_resp_free(&r);
    t_http(port, "GET", "/v2/nothing", NULL, NULL, 5000, &r);
    CHECK(r.status == 404 && strstr(r.body, "\"error\""), "unknown path: %d", r.status);
    t_resp_free(&r);
    CHECK(metric(port, "tollgate_engine_requests_total{endpoint=\"any\",outcome=\"bad_request\"}") >= 30, "bad counted");
}

/* ---- disconnect ------------------------------------------------------------ */

/* Sends a request on a new connection and returns the socket (open). */
static int send_open(int port, const char *body)
{
    int fd = t_connect(port);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", strlen(body));
    send(fd, head, (size_t)n, MSG_NOSIGNAL);
    send(fd, body, strlen(body), MSG_NOSIGNAL);
    return fd;
}

static void group_disconnect(int port)
{
    const char *USED = "tollgate_engine_kv_blocks{state=\"used\"}";
    const char *CANC = "tollgate_engine_requests_total{endpoint=\"any\",outcome=\"cancelled\"}";
    long before = metric(port, USED);
    CHECK(before == 0, "nothing in use at start (%ld)", before);
    char body[4096];
    int n = snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":3500,\"temperature\":0,%s\"prompt\":[",
                     "\"stream\":true,");
    for (int i = 0; i < 100; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "%s%d", i ? "," : "", 2000 + i);
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    /* streamed: read until a few events came, then leave */
    int fd = send_open(port, body);
    char buf[65536];
    size_t got = 0;
    int events = 0;
    for (int t = 0; t < 200 && events < 4; t++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (k <= 0)
                break;
            got += (size_t)k;
            buf[got] = '\0';
            events = 0;
            for (char *q = buf; (q = strstr(q, "data: ")); q += 6)
                events++;
        }
    }
    CHECK(events >= 4, "stream started (%d events)", events);
    long during = metric(port, USED);
    CHECK(during >= 2, "blocks in use while it runs (%ld)", during);
    close(fd);
    CHECK(wait_metric(port, USED, before, 5000), "blocks freed after the client left (%ld)", metric(port, USED));
    CHECK(metric(port, CANC) == 1, "counted as cancelled");
    CHECK(metric(port, "tollgate_engine_requests_running") == 0, "nothing running");

    /* not streamed: the client leaves while waiting for the whole answer */
    char *nb = strstr(body, "\"stream\":true,");
    memmove(nb, nb + 14, strlen(nb + 14) + 1);
    fd = send_open(port, body);
    bool seen = false;
    for (int t = 0; t < 100 && !seen; t++) {
        seen = metric(port, USED) > 0;
        usleep(20000);
    }
    CHECK(seen, "the non-streamed request holds blocks");
    close(fd);
    CHECK(wait_metric(port, USED, before, 5000), "blocks freed (non-streamed)");
    CHECK(metric(port, CANC) == 2, "second cancel counted");
    /* the server still answers */
    int st;
    cJSON *j = post_json(port, "/v1/completions", "{\"model\":\"m\",\"prompt\":[5,6],\"max_tokens\":3}", &st);
    CHECK(st == 200, "still serving");
    cJSON_Delete(j);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s BIN DEMO_CONFIG TOKENIZER_DIR GROUP\n", argv[0]);
        return 2;
    }
    g_bin = argv[1];
    g_cfg = argv[2];
    g_tokdir = argv[3];
    const char *group = argv[4];
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", g_tokdir);
    g_tok = tok_load_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", g_tokdir);
    g_chat = tok_chat_load_file(path, err, sizeof err);
    if (!g_tok || !g_chat) {
        fprintf(stderr, "FAIL: the DeepSeek V3 tokenizer is missing (%s); scripts/setup fetches it\n", err);
        return 1;
    }
    const char *kv_small[] = {"--kv-blocks", "4", NULL};
    t_sim_t srv;
    if (start(&srv, !strcmp(group, "bad") ? kv_small : NULL) != 0) {
        fprintf(stderr, "FAIL: the server did not start\n");
        return 1;
    }
    if (!strcmp(group, "api"))
        group_api(srv.port);
    else if (!strcmp(group, "cache"))
        group_cache(srv.port);
    else if (!strcmp(group, "batch"))
        group_batch(srv.port);
    else if (!strcmp(group, "bad"))
        group_bad(srv.port);
    else if (!strcmp(group, "disconnect")) {
        group_disconnect(srv.port);
        /* SIGTERM while a request runs: a clean stop */
        int fd = send_open(srv.port, "{\"model\":\"m\",\"prompt\":[7,8,9],\"max_tokens\":3000,\"stream\":true}");
        usleep(300000);
        int rc = t_sim_stop(&srv);
        close(fd);
        CHECK(rc == 0, "SIGTERM with a request running: exit %d", rc);
        srv.pid = 0;
    } else {
        fprintf(stderr, "unknown group %s\n", group);
        t_failures++;
    }
    if (srv.pid) {
        int rc = t_sim_stop(&srv);
        CHECK(rc == 0, "clean exit on SIGTERM: %d", rc);
    }
    tok_chat_free(g_chat);
    tok_free(g_tok);
    if (t_failures) {
        fprintf(stderr, "%d checks failed\n", t_failures);
        return 1;
    }
    printf("serve %s ok\n", group);
    return 0;
}
