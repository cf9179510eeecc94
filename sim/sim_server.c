/* sim_server: tollgate-sim's HTTP front: routes each request, checks the
 * key, injects the fault drawn or asked for, validates and tokenizes the
 * body, computes the usage (prefix-cache hits included) and hands the answer
 * to a sim_call. Also /v1/models, /healthz and the /sim endpoints. */
#include "sim_server.h"

#include "sim_call.h"
#include "sim_reply.h"
#include "sim_request.h"
#include "sim_text.h"
#include "sim_tokenize.h"
#include "tg_log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct sim_loop {
    struct evhttp *http;
    sim_calls_t calls; /* in flight on this loop */
};

/* ---- plain replies --------------------------------------------------- */

/* Sends a whole reply with body b (drained). The request is libevent's again
 * afterwards. */
static void send_body(struct evhttp_request *req, const sim_opts_t *o, int status,
                      const char *reason, const char *ctype, struct evbuffer *b)
{
    sim_shared_add_headers(o, req, ctype);
    evhttp_send_reply(req, status, reason, b);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* Sends OpenAI's error shape with the given status. */
static void send_error(struct evhttp_request *req, const sim_opts_t *o, int status,
                       const char *message, const char *type, const char *param, const char *code)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    sim_reply_error(b, message, type, param, code);
    if (status == 429) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%u", o->retry_after_s);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
    }
    send_body(req, o, status, reason_of(status), "application/json", b);
    evbuffer_free(b);
}

/* Records the refusal of the current /v1 request (status in last_request,
 * counter, if any, incremented) and sends the error. */
static void refuse(sim_shared_t *sh, struct evhttp_request *req, int status, uint64_t *counter,
                   const char *message, const char *type, const char *param, const char *code)
{
    pthread_mutex_lock(&sh->lock);
    sh->stats.last.status = status;
    if (counter)
        (*counter)++;
    pthread_mutex_unlock(&sh->lock);
    send_error(req, sh->opts, status, message, type, param, code);
}

/* ---- /v1 generation ---------------------------------------------------- */

/* Returns the bearer token of an Authorization header, or NULL. */
static const char *bearer_of(const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return NULL;
    auth += 7;
    while (*auth == ' ')
        auth++;
    return *auth ? auth : NULL;
}

/* Reads a per-request numeric override header. Returns 0 (absent leaves
 * *out alone) or -1 when malformed. */
static int header_uint(struct evkeyvalq *h, const char *name, unsigned max, unsigned *out)
{
    const char *v = evhttp_find_header(h, name);
    if (!v)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (end == v || *end || *v == '-' || n > max)
        return -1;
    *out = (unsigned)n;
    return 0;
}

static sim_fault_t draw_fault(const sim_opts_t *o, double u)
{
    double r[] = {o->rate_429, o->rate_500, o->rate_503, o->rate_reset, o->rate_stall};
    sim_fault_t f[] = {SIM_FAULT_429, SIM_FAULT_500, SIM_FAULT_503, SIM_FAULT_RESET,
                       SIM_FAULT_STALL};
    double acc = 0;
    for (int i = 0; i < 5; i++) {
        acc += r[i];
        if (u < acc)
            return f[i];
    }
    return SIM_FAULT_NONE;
}

/* Counts a /v1 generation request and starts its last_request record;
 * returns the uniform draw for the random faults and sets *slow to the
 * slow-tail draw (from its own generator, drawn only when --rate-slow > 0). */
static double note_request(sim_shared_t *sh, struct evkeyvalq *h, sim_kind_t kind, const char *auth,
                           const char *label, bool *slow)
{
    const char *rid = evhttp_find_header(h, "x-request-id");
    pthread_mutex_lock(&sh->lock);
    sim_stats_count_key(&sh->stats, label);
    sim_stats_last_t *last = &sh->stats.last;
    memset(last, 0, sizeof(*last));
    last->valid = true;
    last->endpoint = kind == SIM_KIND_CHAT ? SIM_EP_CHAT : SIM_EP_COMPLETIONS;
    last->authorization = auth != NULL;
    last->max_tokens = -1;
    snprintf(last->key, sizeof(last->key), "%s", label);
    snprintf(last->request_id, sizeof(last->request_id), "%s", rid ? rid : "");
    double u = sim_rng_unit(&sh->fault_rng);
    *slow = sh->opts->rate_slow > 0 && sim_rng_unit(&sh->slow_rng) < sh->opts->rate_slow;
    pthread_mutex_unlock(&sh->lock);
    return u;
}

/* Answers the faults that need no body: 429, 500, 503, reset, stall.
 * Returns true when the request was handled. */
static bool answer_early_fault(sim_loop_t *l, struct evhttp_request *req, sim_fault_t fault)
{
    sim_shared_t *sh = l->calls.sh;
    switch (fault) {
    case SIM_FAULT_429:
        refuse(sh, req, 429, NULL, "Rate limit reached for requests (simulated).",
               "rate_limit_error", NULL, "rate_limit_exceeded");
        return true;
    case SIM_FAULT_500:
        refuse(sh, req, 500, NULL,
               "The server had an error while processing your request (simulated).", "server_error",
               NULL, "internal_error");
        return true;
    case SIM_FAULT_503:
        refuse(sh, req, 503, NULL, "server busy, please try again later (simulated).",
               "server_error", NULL, "server_busy");
        return true;
    case SIM_FAULT_RESET:
        sim_call_reset(sim_call_new(&l->calls, req));
        return true;
    case SIM_FAULT_STALL:
        sim_call_stall(sim_call_new(&l->calls, req));
        return true;
    default:
        return false;
    }
}

/* Records the parsed request in last_request and, unless it is over the
 * context, reads and updates the prefix cache for key_hash, fills the hit
 * and miss counts of *u and adds the usage to the totals. Returns the id of
 * the answer. */
static uint64_t settle_usage(sim_shared_t *sh, const sim_request_t *r, uint64_t key_hash,
                             bool too_long, sim_usage_t *u)
{
    pthread_mutex_lock(&sh->lock);
    sim_stats_last_t *last = &sh->stats.last;
    snprintf(last->model, sizeof(last->model), "%s", r->model);
    last->stream = r->stream;
    memcpy(last->stream_options, r->stream_options_json, sizeof(last->stream_options));
    last->max_tokens = r->max_tokens;
    last->prompt_tokens = u->prompt;
    if (too_long) {
        sh->stats.context_exceeded++;
        last->status = 400;
    } else {
        if (sh->opts->cache) {
            size_t blocks =
                sim_cache_lookup(sh->cache, key_hash, r->tokens.blocks, r->tokens.nblocks);
            u->hit = (uint64_t)blocks * SIM_BLOCK_TOKENS;
            sim_cache_store(sh->cache, key_hash, r->tokens.blocks, r->tokens.nblocks);
        }
        u->miss = u->prompt - u->hit;
        last->status = 200;
        sh->stats.streamed += r->stream;
        sh->stats.prompt_tokens += u->prompt;
        sh->stats.completion_tokens += u->completion;
        sh->stats.reasoning_tokens += u->reasoning;
        sh->stats.cache_hit_tokens += u->hit;
        sh->stats.cache_miss_tokens += u->miss;
    }
    uint64_t id = ++sh->next_id;
    pthread_mutex_unlock(&sh->lock);
    return id;
}

/* The per-request settings: options, then the x-sim-* overrides. */
typedef struct sim_knobs {
    sim_fault_t fault;
    unsigned ttft_ms, completion_tokens, tokens_per_s;
} sim_knobs_t;

/* Reads x-sim-fault and the overrides into *k (which holds the defaults).
 * Returns NULL, or the name of the malformed header. */
static const char *read_knobs(struct evkeyvalq *h, sim_knobs_t *k)
{
    const char *fh = evhttp_find_header(h, "x-sim-fault");
    if (fh && sim_fault_parse(fh, &k->fault) < 0)
        return "x-sim-fault";
    if (header_uint(h, "x-sim-ttft-ms", 3600000, &k->ttft_ms) < 0)
        return "x-sim-ttft-ms";
    if (header_uint(h, "x-sim-completion-tokens", 1000000, &k->completion_tokens) < 0)
        return "x-sim-completion-tokens";
    if (header_uint(h, "x-sim-tokens-per-s", 10000000, &k->tokens_per_s) < 0)
        return "x-sim-tokens-per-s";
    return NULL;
}

static void handle_generate(sim_loop_t *l, struct evhttp_request *req, sim_kind_t kind)
{
    sim_shared_t *sh = l->calls.sh;
    const sim_opts_t *o = sh->opts;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(h, "Authorization");
    const char *key = bearer_of(auth);
    char label[32];
    sim_stats_key_label(key, label, sizeof(label));
    bool slow;
    double draw = note_request(sh, h, kind, auth, label, &slow);

    if (o->api_key[0] && (!key || strcmp(key, o->api_key) != 0)) {
        refuse(sh, req, 401, &sh->stats.unauthorized, "Incorrect API key provided.",
               "invalid_request_error", NULL, "invalid_api_key");
        return;
    }
    sim_knobs_t k = {o->fault != SIM_FAULT_NONE ? o->fault : draw_fault(o, draw),
                     slow ? o->slow_ttft_ms : o->ttft_ms, o->completion_tokens, o->tokens_per_s};
    /* x-sim-ttft-ms, when sent, overrides a slow draw too */
    slow = slow && !evhttp_find_header(h, "x-sim-ttft-ms");
    const char *bad_hdr = read_knobs(h, &k);
    if (bad_hdr) {
        refuse(sh, req, 400, &sh->stats.bad_request, "Malformed simulator header.",
               "invalid_request_error", bad_hdr, "invalid_value");
        return;
    }
    pthread_mutex_lock(&sh->lock);
    sh->stats.by_fault[k.fault]++;
    sh->stats.last.fault = k.fault;
    pthread_mutex_unlock(&sh->lock);
    if (answer_early_fault(l, req, k.fault))
        return;

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    sim_request_t r;
    char err[256];
    const char *param;
    if (sim_request_parse(body, len, kind, &r, err, sizeof(err), &param) < 0) {
        tg_info("400 on %s: %s", kind == SIM_KIND_CHAT ? "chat" : "completions", err);
        refuse(sh, req, 400, &sh->stats.bad_request, err, "invalid_request_error", param,
               "invalid_request_error");
        return;
    }
    if (sh->tokenizer) /* --tokenizer: exact DeepSeek counts and block boundaries */
        sim_tokenizer_apply(sh->tokenizer, body, len, &r);

    uint64_t n = k.completion_tokens;
    const char *finish = "stop";
    if (r.max_tokens >= 0 && (uint64_t)r.max_tokens < n) {
        n = (uint64_t)r.max_tokens;
        finish = "length";
    }
    bool reasoner = strstr(r.model, "reasoner") != NULL;
    sim_usage_t usage = {.prompt = r.tokens.count, .completion = n};
    usage.reasoning = reasoner ? n / 2 : 0;
    bool too_long = o->context && usage.prompt > o->context;
    uint64_t key_hash = sim_hash_bytes(0x6b6579ULL, key ? key : "", key ? strlen(key) : 0);
    uint64_t id = settle_usage(sh, &r, key_hash, too_long, &usage);
    if (too_long) {
        snprintf(err, sizeof(err),
                 "This model's maximum context length is %lu tokens. However, your messages "
                 "resulted in %llu tokens. Please reduce the length of the messages.",
                 o->context, (unsigned long long)usage.prompt);
        send_error(req, o, 400, err, "invalid_request_error",
                   kind == SIM_KIND_CHAT ? "messages" : "prompt", "context_length_exceeded");
        sim_request_free(&r);
        return;
    }

    if (slow) {
        pthread_mutex_lock(&sh->lock);
        sh->stats.slow++;
        pthread_mutex_unlock(&sh->lock);
    }
    sim_call_t *c = sim_call_new(&l->calls, req);
    c->fault = k.fault;
    c->stream = r.stream;
    c->tps = k.tokens_per_s;
    c->total = n;
    c->limit = k.fault == SIM_FAULT_CUT ? (n > 1 ? n / 2 : n) : n;
    c->delay_us = (uint64_t)k.ttft_ms * 1000u;
    if (!r.stream && c->tps > 0 && n > 1)
        c->delay_us += (n - 1) * 1000000u / c->tps;
    sim_answer_t *a = &c->ans;
    a->kind = kind;
    snprintf(a->id, sizeof(a->id), "%s-sim%llu", kind == SIM_KIND_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)id);
    a->created = (long long)time(NULL);
    snprintf(a->model, sizeof(a->model), "%s", r.model);
    a->fingerprint = o->name;
    a->reasoner = reasoner;
    a->include_usage = r.include_usage;
    a->with_usage = k.fault != SIM_FAULT_NO_USAGE;
    a->hide_cache = o->hide_cache;
    a->finish_reason = finish;
    a->usage = usage;
    a->n_reasoning = usage.reasoning;
    a->n_content = n - usage.reasoning;
    sim_text_seed(&a->rng_content, o->seed, r.model, r.tokens.all_hash, 1);
    sim_text_seed(&a->rng_reasoning, o->seed, r.model, r.tokens.all_hash, 2);
    sim_request_free(&r);
    sim_call_answer(c);
}

/* ---- other endpoints --------------------------------------------------- */

static void handle_models(sim_loop_t *l, struct evhttp_request *req)
{
    const sim_opts_t *o = l->calls.sh->opts;
    const char *key =
        bearer_of(evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"));
    if (o->api_key[0] && (!key || strcmp(key, o->api_key) != 0)) {
        pthread_mutex_lock(&l->calls.sh->lock);
        l->calls.sh->stats.unauthorized++;
        pthread_mutex_unlock(&l->calls.sh->lock);
        send_error(req, o, 401, "Incorrect API key provided.", "invalid_request_error", NULL,
                   "invalid_api_key");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[");
    const char *p = o->models;
    bool first = true;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            evbuffer_add_printf(b,
                                "%s{\"id\":\"%.*s\",\"object\":\"model\",\"created\":0,"
                                "\"owned_by\":\"%s\"}",
                                first ? "" : ",", (int)n, p, o->name);
            first = false;
        }
        p += n + (p[n] == ',');
    }
    evbuffer_add_printf(b, "]}");
    send_body(req, o, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void handle_stats(sim_loop_t *l, struct evhttp_request *req)
{
    sim_shared_t *sh = l->calls.sh;
    pthread_mutex_lock(&sh->lock);
    char *json = sim_stats_json(&sh->stats, sh->opts->name, sh->opts->cache,
                                sim_cache_size(sh->cache), sh->opts->cache_blocks, sh->in_flight);
    pthread_mutex_unlock(&sh->lock);
    if (!json)
        abort();
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add(b, json, strlen(json));
    free(json);
    send_body(req, sh->opts, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void handle_reset(sim_loop_t *l, struct evhttp_request *req)
{
    sim_shared_t *sh = l->calls.sh;
    pthread_mutex_lock(&sh->lock);
    memset(&sh->stats, 0, sizeof(sh->stats));
    sim_cache_clear(sh->cache);
    sim_shared_seed(sh);
    pthread_mutex_unlock(&sh->lock);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(b, "{\"reset\":true}");
    send_body(req, sh->opts, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sim_loop_t *l = arg;
    const sim_opts_t *o = l->calls.sh->opts;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    sim_endpoint_t ep = SIM_EP_OTHER;
    int want = EVHTTP_REQ_POST;
    if (strcmp(path, "/v1/chat/completions") == 0) {
        ep = SIM_EP_CHAT;
    } else if (strcmp(path, "/v1/completions") == 0) {
        ep = SIM_EP_COMPLETIONS;
    } else if (strcmp(path, "/v1/models") == 0) {
        ep = SIM_EP_MODELS;
        want = EVHTTP_REQ_GET;
    } else if (strcmp(path, "/healthz") == 0) {
        ep = SIM_EP_HEALTHZ;
        want = EVHTTP_REQ_GET;
    } else if (strcmp(path, "/sim/stats") == 0) {
        ep = SIM_EP_STATS;
        want = EVHTTP_REQ_GET;
    } else if (strcmp(path, "/sim/reset") == 0) {
        ep = SIM_EP_RESET;
    }
    if (ep != SIM_EP_RESET) {
        pthread_mutex_lock(&l->calls.sh->lock);
        l->calls.sh->stats.total++;
        l->calls.sh->stats.by_endpoint[ep]++;
        pthread_mutex_unlock(&l->calls.sh->lock);
    }
    if (ep == SIM_EP_OTHER) {
        send_error(req, o, 404, "Unknown request URL.", "invalid_request_error", NULL,
                   "unknown_url");
        return;
    }
    if ((int)cmd != want) {
        send_error(req, o, 405, "Method not allowed for this URL.", "invalid_request_error", NULL,
                   "method_not_allowed");
        return;
    }
    switch (ep) {
    case SIM_EP_CHAT:
        handle_generate(l, req, SIM_KIND_CHAT);
        break;
    case SIM_EP_COMPLETIONS:
        handle_generate(l, req, SIM_KIND_COMPLETIONS);
        break;
    case SIM_EP_MODELS:
        handle_models(l, req);
        break;
    case SIM_EP_STATS:
        handle_stats(l, req);
        break;
    case SIM_EP_RESET:
        handle_reset(l, req);
        break;
    default: {
        struct evbuffer *b = evbuffer_new();
        if (!b)
            abort();
        evbuffer_add_printf(b, "{\"status\":\"ok\",\"name\":\"%s\"}", o->name);
        send_body(req, o, 200, "OK", "application/json", b);
        evbuffer_free(b);
    }
    }
}

/* Called by evhttp for each accepted connection to make its bufferevent
 * (the socket is attached afterwards): counts the connection. */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
    sim_loop_t *l = arg;
    pthread_mutex_lock(&l->calls.sh->lock);
    l->calls.sh->stats.connections++;
    pthread_mutex_unlock(&l->calls.sh->lock);
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/* ---- loops ----------------------------------------------------------------- */

sim_loop_t *sim_loop_new(sim_shared_t *sh, struct event_base *base, evutil_socket_t fd, char *err,
                         size_t errlen)
{
    sim_loop_t *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    l->calls.sh = sh;
    l->calls.base = base;
    l->http = evhttp_new(base);
    if (!l->http) {
        snprintf(err, errlen, "evhttp_new failed");
        goto fail;
    }
    evhttp_set_max_body_size(l->http, (ev_ssize_t)sh->opts->max_body);
    evhttp_set_max_headers_size(l->http, 64 * 1024);
    evhttp_set_timeout(l->http, (int)sh->opts->idle_timeout_s);
    evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(l->http, on_request, l);
    evhttp_set_bevcb(l->http, on_accept, l);
    if (!evhttp_accept_socket_with_handle(l->http, fd)) {
        snprintf(err, errlen, "cannot serve on the listening socket");
        goto fail;
    }
    return l;
fail:
    if (l->http)
        evhttp_free(l->http);
    evutil_closesocket(fd);
    free(l);
    return NULL;
}

void sim_loop_free(sim_loop_t *l)
{
    if (!l)
        return;
    sim_calls_drop_all(&l->calls);
    evhttp_free(l->http);
    free(l);
}
