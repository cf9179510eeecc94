/* gw_proxy: the request path of the gateway (see gw_proxy.h). An exchange is
 * one client request; an attempt is one upstream request made for it. Every
 * exchange ends in exchange_finish(), which answers the client if nobody has,
 * writes the usage record and frees the exchange, exactly once. The usage
 * record is settled (submitted to the writer) before the response's last
 * byte is handed to libevent, so an answered request always has its record. */
#include "gw_proxy.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "gw_govern.h"
#include "gw_clock.h"
#include "gw_hedge.h"
#include "gw_http.h"
#include "gw_respcache_req.h"
#include "gw_route.h"
#include "gw_metrics.h"
#include "gw_prefix.h"
#include "pr_book.h"
#include "gw_sse.h"
#include "gw_usage_json.h"
#include "tg_log.h"

#define SSE_MAX_EVENT (1 << 20) /* an upstream event larger than this is garbage */

typedef enum {
    FAIL_NONE = 0,
    FAIL_CONNECT,   /* connect error, reset, EOF before a response */
    FAIL_TIMEOUT,   /* no response headers in time, or idle too long */
    FAIL_STATUS,    /* 429 or 5xx */
    FAIL_GARBAGE,   /* a 200 whose body is not what the protocol says */
} fail_kind_t;

typedef struct attempt attempt_t;

struct gw_exchange {
    gw_worker_t *w;
    gw_exchange_t *prev, *next;
    struct evhttp_request *client; /* NULL once answered or gone */
    struct evhttp_connection *client_conn;
    bool client_gone;
    bool client_started; /* response headers sent: no more failover */
    gw_endpoint_t endpoint;
    gw_key_info_t key;
    int model_index;
    const gw_model_cfg_t *model;
    cJSON *body;
    bool stream;
    bool client_wants_usage;
    gw_route_plan_t plan;     /* routes in the order to try (gw_route) */
    int next_in_plan;         /* index into plan.routes of the next attempt */
    gw_prompt_count_t prompt; /* prompt tokens, exact or estimated */
    int64_t max_tokens;       /* the request's max_tokens, 0 when not given */
    /* the attempts (docs/router.md): the one whose answer the client gets,
     * and a hedge racing it before either has produced a byte */
    int route;      /* the current attempt's route (the last tried when none) */
    attempt_t *cur;
    attempt_t *hedge;
    int hedge_after_ms;         /* 0 = not hedged */
    struct event *hedge_timer;  /* fires hedge_after_ms after the first attempt */
    const char *hedge_outcome;  /* "won", "lost", ... once decided; NULL = none */
    bool maybe_billed; /* an attempt failed in a way a provider may still bill */
    gw_sse_splitter_t sse;
    bool saw_usage;
    bool saw_done; /* the upstream's [DONE]: held back, sent after settling */
    bool settled;  /* the usage record has been submitted */
    int charge_minor; /* decimals of the charge's currency */
    bool unmetered;   /* the usage writer refused the record (spool full) */
    fail_kind_t last_fail;
    int last_fail_status;
    char last_fail_msg[160];
    char retry_after[32];
    gw_usage_record_t rec;
    /* governance (gw_govern): the admission waiting for Redis (cancelled in
     * exchange_finish) and what settle gives back */
    gw_govern_ticket_t *gov_ticket;
    gw_govern_hold_t gov_hold;
    gw_rc_req_t *rc;     /* response cache (gw_respcache_req); NULL = not used */
    gw_prefix_req_t pfx; /* prefix index (gw_prefix): the prompt's blocks, the prediction */
};

/* One upstream request made for an exchange. libevent's callbacks get the
 * attempt (a request's callback argument cannot change), and reach the
 * exchange through it; only the exchange's current attempt relays. */
struct attempt {
    gw_exchange_t *ex;
    int route;          /* index into the model's routes */
    int number;         /* 1-based: which attempt of the exchange */
    bool first_choice;  /* the plan's first route (routing counts it in flight) */
    gw_upstream_conn_t *conn;
    struct evhttp_request *up; /* NULL once finished or cancelled */
    struct event *first_byte_timer;
    struct event *deferred; /* runs the garbage failure outside libevent's callbacks */
    bool cancelling;
    int status;                      /* the response's HTTP status; 0 = none yet */
    enum evhttp_request_error error; /* why libevent failed it */
    bool failed;                     /* error is set */
    bool discard; /* a retryable error response: its body is dropped */
    bool garbage; /* a 200 stream turned out not to be SSE: dropped, then failed */
    struct evbuffer *error_body;
    int64_t sent_us, header_us; /* sent; response headers arrived (0 = not yet) */
    char retry_after[32];       /* a 429's Retry-After */
};

static int64_t now_us(void)
{
    return gw_clock_now_us();
}

static void attempt_next(gw_exchange_t *ex);
static void client_first_byte(gw_exchange_t *ex);
static void on_up_done(struct evhttp_request *up, void *arg);
static void attempt_cancel_loser(attempt_t *a);
static void attempt_cancel_current(gw_exchange_t *ex);
static void hedge_explain(gw_exchange_t *ex, const char *outcome, const attempt_t *hedge);
static void on_client_close(struct evhttp_connection *evcon, void *arg);

/* ---- exchange lifetime ------------------------------------------------- */

static gw_exchange_t *exchange_new(gw_worker_t *w, struct evhttp_request *req,
                                   gw_endpoint_t endpoint)
{
    gw_exchange_t *ex = calloc(1, sizeof *ex);
    if (!ex)
        abort();
    ex->w = w;
    ex->client = req;
    ex->client_conn = evhttp_request_get_connection(req);
    ex->endpoint = endpoint;
    ex->model_index = -1;
    ex->route = -1;
    gw_request_id_new(ex->rec.request_id);
    ex->rec.received_at_us = now_us();
    ex->rec.prompt_tokens = ex->rec.cache_hit_tokens = ex->rec.cache_miss_tokens =
        ex->rec.completion_tokens = ex->rec.reasoning_tokens = GW_USAGE_UNKNOWN;
    snprintf(ex->rec.endpoint, sizeof ex->rec.endpoint, "%s",
             endpoint == GW_ENDPOINT_CHAT ? "chat.completions" : "completions");
    gw_sse_init(&ex->sse, SSE_MAX_EVENT);
    ex->next = w->exchanges;
    if (w->exchanges)
        w->exchanges->prev = ex;
    w->exchanges = ex;
    w->n_exchanges++;
    gw_metrics_inflight_add(1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "x-request-id",
                      ex->rec.request_id);
    return ex;
}

/* Marks every token count known-zero: the request never reached a provider. */
/* Stops watching the client's connection: called before the final answer is
 * handed to libevent, which may close the connection and must not call back
 * into an exchange that is about to be freed. */
static void client_detach(gw_exchange_t *ex)
{
    if (ex->client_conn && !ex->client_gone)
        evhttp_connection_set_closecb(ex->client_conn, NULL, NULL);
    ex->client_conn = NULL;
}

static void usage_nothing_used(gw_usage_record_t *rec)
{
    rec->prompt_tokens = rec->cache_hit_tokens = rec->cache_miss_tokens = 0;
    rec->completion_tokens = rec->reasoning_tokens = 0;
    rec->usage_complete = true;
}

/* Prices the record with the current price book: the card in force for this
 * provider and upstream model at the provider's tier instant, the window that
 * applies, each component and the exact total. A record with no card stays
 * unpriced (logged); never priced at zero silently. */
static void exchange_price(gw_exchange_t *ex)
{
    gw_usage_record_t *r = &ex->rec;
    if (!r->provider[0] || r->prompt_tokens == GW_USAGE_UNKNOWN)
        return; /* nothing reached a provider, or nothing is known to price */
    const pr_book_t *book = gw_pricebook_acquire(ex->w->server->prices);
    if (!book) {
        tg_warn("request %s: price book not loaded: row left unpriced", r->request_id);
        return;
    }
    pr_usage_t u = {r->prompt_tokens, r->cache_hit_tokens, r->cache_miss_tokens,
                    r->completion_tokens, r->reasoning_tokens, r->usage_complete};
    pr_charge_t c;
    char err[256];
    if (pr_price_usage(book, r->provider, r->upstream_model, r->received_at_us, r->completed_at_us,
                       &u, &c, err, sizeof err) == 0) {
        r->price_card_id = c.card->id;
        r->discount_window_id = c.window ? c.window->id : 0;
        r->priced_at_us = c.decided_at_us;
        snprintf(r->charge_currency, sizeof r->charge_currency, "%s", c.card->currency->code);
        for (int i = 0; i < PR_C_COUNT; i++)
            r->cost_pico[i] = c.cost[i];
        r->charge_pico = c.total;
        r->pricing_flags = c.flags;
        ex->charge_minor = c.card->currency->minor;
    } else {
        tg_warn("request %s: not priced: %s", r->request_id, err);
    }
    gw_pricebook_release(ex->w->server->prices, book);
}

/* Writes the charge as "AMOUNT CURRENCY" (exact, at least the currency's
 * minor-unit decimals); "" when the record is not priced. */
static void charge_text(const gw_exchange_t *ex, char *out, size_t len)
{
    out[0] = '\0';
    if (!ex->rec.price_card_id)
        return;
    char amount[64];
    if (pr_pico_format(ex->rec.charge_pico, ex->charge_minor, amount, sizeof amount))
        snprintf(out, len, "%s %s", amount, ex->rec.charge_currency);
}

/* Completes the usage record (status, completion instant, price) and submits
 * it, once. Authenticated requests only: an unauthenticated one has no row. */
static void exchange_settle(gw_exchange_t *ex, int status, const char *error_type)
{
    if (ex->settled)
        return;
    ex->settled = true;
    ex->rec.completed_at_us = now_us();
    ex->rec.http_status = status;
    if (error_type)
        snprintf(ex->rec.error_type, sizeof ex->rec.error_type, "%s", error_type);
    gw_prefix_settle(ex->w, &ex->pfx, ex->model_index, ex->route, status, &ex->rec);
    exchange_price(ex);
    if (ex->rec.response_cache_hit)
        gw_respcache_charge(ex->w->server->cfg, &ex->rec); /* the configured rule */
    gw_govern_settle(ex->w, &ex->gov_hold, &ex->rec); /* hold -> actual charge */
    if (ex->key.key_id) {
        ex->rec.team_id = ex->key.team_id;
        ex->rec.key_id = ex->key.key_id;
        if (gw_usage_writer_submit(ex->w->server->usage, &ex->rec) < 0) {
            ex->unmetered = true; /* logged by the writer; the answer is withheld */
            tg_error("request %s: its usage record could not be stored (spool full or disk "
                     "error)", ex->rec.request_id);
        }
    }
}

/* Ends the exchange: settles it if nobody has, records metrics and frees it.
 * The client must already have been answered or be gone. */
static void exchange_finish(gw_exchange_t *ex, int status, const char *error_type)
{
    gw_worker_t *w = ex->w;
    if (ex->gov_ticket) { /* the client left while Redis was deciding */
        gw_govern_cancel(w, ex->gov_ticket);
        ex->gov_ticket = NULL;
    }
    client_detach(ex);
    if (ex->hedge) /* the race was never decided (e.g. the client left) */
        attempt_cancel_loser(ex->hedge);
    attempt_cancel_current(ex); /* callers free a finished attempt; this is a safety net */
    if (ex->hedge_timer)
        event_free(ex->hedge_timer);
    exchange_settle(ex, status, error_type);
    status = ex->rec.http_status;
    if (ex->rc) /* stores a complete fresh answer, cancels a pending lookup */
        gw_respcache_end(ex->rc, status == 200 && !ex->unmetered && !ex->client_gone &&
                                     !strcmp(ex->model->name, ex->rec.model_requested),
                         &ex->rec);
    double ttft = ex->rec.first_byte_at_us
                      ? (double)(ex->rec.first_byte_at_us - ex->rec.received_at_us) / 1e6
                      : -1;
    gw_metrics_request_done(ex->model_index, ex->route >= 0 ? ex->model->routes[ex->route].provider
                                                            : -1,
                            status, (double)(ex->rec.completed_at_us - ex->rec.received_at_us) / 1e6,
                            ttft);
    gw_metrics_inflight_add(-1);
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        w->exchanges = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    w->n_exchanges--;
    gw_prefix_release(&ex->pfx);
    cJSON_Delete(ex->body);
    gw_sse_free(&ex->sse);
    free(ex);
}

/* Answers the client with an OpenAI error (if it is still there and nothing
 * was sent yet) and finishes the exchange. */
static void exchange_fail(gw_exchange_t *ex, int status, const char *type, const char *code,
                          const char *param, const char *message)
{
    client_detach(ex);
    exchange_settle(ex, status, code ? code : type);
    if (ex->client && !ex->client_started) {
        if (ex->retry_after[0])
            evhttp_add_header(evhttp_request_get_output_headers(ex->client), "Retry-After",
                              ex->retry_after);
        gw_http_send_error(ex->client, status, type, code, param, "%s", message);
    } else if (ex->client) {
        evhttp_send_reply_end(ex->client);
    }
    ex->client = NULL;
    exchange_finish(ex, status, code ? code : type);
}

/* ---- request validation ------------------------------------------------ */

/* Checks the body's fields; on a problem fills param and message and
 * returns false. */
static bool body_validate(const cJSON *body, gw_endpoint_t endpoint, char *param, size_t plen,
                          char *msg, size_t mlen)
{
#define BAD(p, ...)                                                                                \
    do {                                                                                           \
        snprintf(param, plen, "%s", p);                                                            \
        snprintf(msg, mlen, __VA_ARGS__);                                                          \
        return false;                                                                              \
    } while (0)
    if (!cJSON_IsObject(body))
        BAD("", "The request body must be a JSON object.");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (!model)
        BAD("model", "Missing required parameter: 'model'.");
    if (!cJSON_IsString(model) || !model->valuestring[0])
        BAD("model", "'model' must be a non-empty string.");
    if (endpoint == GW_ENDPOINT_CHAT) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
        if (!msgs)
            BAD("messages", "Missing required parameter: 'messages'.");
        if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
            BAD("messages", "'messages' must be a non-empty array.");
        int i = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs)
        {
            char p[48];
            snprintf(p, sizeof p, "messages[%d]", i);
            if (!cJSON_IsObject(m))
                BAD(p, "'%s' must be an object.", p);
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            snprintf(p, sizeof p, "messages[%d].role", i);
            if (!cJSON_IsString(role))
                BAD(p, "'%s' must be a string.", p);
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            snprintf(p, sizeof p, "messages[%d].content", i);
            if (content && !cJSON_IsString(content) && !cJSON_IsArray(content) &&
                !cJSON_IsNull(content))
                BAD(p, "'%s' must be a string, an array of parts or null.", p);
            i++;
        }
    } else {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
        if (!prompt)
            BAD("prompt", "Missing required parameter: 'prompt'.");
        if (!cJSON_IsString(prompt) && !cJSON_IsArray(prompt))
            BAD("prompt", "'prompt' must be a string or an array.");
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(body, "stream");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream))
        BAD("stream", "'stream' must be a boolean.");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsObject(so) && !cJSON_IsNull(so))
        BAD("stream_options", "'stream_options' must be an object.");
    if (cJSON_IsObject(so)) {
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
        if (iu && !cJSON_IsBool(iu))
            BAD("stream_options.include_usage", "'stream_options.include_usage' must be a boolean.");
    }
    static const char *const int_fields[] = {"max_tokens", "max_completion_tokens", "n", "seed"};
    for (size_t f = 0; f < sizeof int_fields / sizeof *int_fields; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, int_fields[f]);
        if (v && !cJSON_IsNull(v) &&
            (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble ||
             (strcmp(int_fields[f], "seed") && v->valuedouble < 1)))
            BAD(int_fields[f], "'%s' must be %s integer.", int_fields[f],
                strcmp(int_fields[f], "seed") ? "a positive" : "an");
    }
    static const char *const num_fields[] = {"temperature", "top_p", "presence_penalty",
                                             "frequency_penalty"};
    for (size_t f = 0; f < sizeof num_fields / sizeof *num_fields; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, num_fields[f]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsNumber(v))
            BAD(num_fields[f], "'%s' must be a number.", num_fields[f]);
    }
    return true;
#undef BAD
}

/* Authenticates the bearer key. On failure answers the client (401/503) and
 * returns false. */
static bool authenticate(gw_worker_t *w, struct evhttp_request *req, gw_key_info_t *key)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
        gw_http_send_error(req, 401, "authentication_error", "missing_api_key", NULL,
                           "You didn't provide an API key. Send it as 'Authorization: Bearer "
                           "<key>'.");
        return false;
    }
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    gw_key_status_t st =
        gw_keystore_lookup(w->server->keystore, token, strlen(token), now_us(), key);
    switch (st) {
    case GW_KEY_OK:
        return true;
    case GW_KEY_REVOKED:
        tg_info("refused revoked key %s", key->display_prefix);
        gw_http_send_error(req, 401, "authentication_error", "key_revoked", NULL,
                           "This API key has been revoked.");
        return false;
    case GW_KEY_EXPIRED:
        tg_info("refused expired key %s", key->display_prefix);
        gw_http_send_error(req, 401, "authentication_error", "key_expired", NULL,
                           "This API key has expired.");
        return false;
    case GW_KEY_NOT_LOADED:
        gw_http_send_error(req, 503, "api_error", "key_store_unavailable", NULL,
                           "The gateway has not loaded its key table yet (database unreachable). "
                           "Retry shortly.");
        return false;
    default:
        gw_http_send_error(req, 401, "authentication_error", "invalid_api_key", NULL,
                           "Incorrect API key provided.");
        return false;
    }
}

/* ---- answering the client ---------------------------------------------- */

static void add_served_by_headers(gw_exchange_t *ex)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    const gw_route_cfg_t *r = &ex->model->routes[ex->route];
    evhttp_add_header(h, "x-tollgate-provider", ex->w->server->cfg->providers[r->provider].name);
    evhttp_add_header(h, "x-tollgate-upstream-model", r->upstream_model);
    char num[24];
    snprintf(num, sizeof num, "%d", ex->rec.attempts);
    evhttp_add_header(h, "x-tollgate-attempts", num);
    snprintf(num, sizeof num, "%lld", (long long)ex->prompt.tokens);
    evhttp_add_header(h, "x-tollgate-prompt-tokens", num);
    evhttp_add_header(h, "x-tollgate-prompt-tokens-source",
                      ex->prompt.exact ? "tokenizer" : "estimate");
    if (ex->hedge_outcome)
        evhttp_add_header(h, "x-tollgate-hedge", ex->hedge_outcome);
}

static void client_start_stream(gw_exchange_t *ex)
{
    client_first_byte(ex);
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    add_served_by_headers(ex);
    evhttp_send_reply_start(ex->client, 200, "OK");
}

/* ---- the upstream attempts ---------------------------------------------- */

/* Ends an attempt's life: its timers, its connection (given back as broken
 * when the request failed or was cancelled), its stashed error body; clears
 * the exchange's pointer to it and frees it. The attempt's request must be
 * finished (done callback running) or cancelled already. */
static void attempt_free(attempt_t *a, bool broken)
{
    gw_exchange_t *ex = a->ex;
    if (a->first_byte_timer)
        event_free(a->first_byte_timer);
    if (a->deferred)
        event_free(a->deferred);
    if (a->conn)
        gw_upstream_release(a->conn, broken);
    if (a->error_body)
        evbuffer_free(a->error_body);
    if (ex->cur == a)
        ex->cur = NULL;
    if (ex->hedge == a)
        ex->hedge = NULL;
    free(a);
}

/* Reports the end of an attempt to the metrics and the routing policy. Only
 * the exchange's current attempt has relayed anything (TTFT, output tokens). */
static void attempt_report(attempt_t *a, bool ok)
{
    gw_exchange_t *ex = a->ex;
    bool cur = ex->cur == a;
    int provider = ex->model->routes[a->route].provider;
    gw_metrics_upstream_attempt(provider, ok);
    gw_route_outcome_t o = {provider, ok, a->status,
                            a->header_us ? a->header_us - a->sent_us : 0,
                            ex->model_index, a->route, ex->stream, a->sent_us,
                            cur ? ex->rec.first_byte_at_us : 0,
                            cur ? ex->rec.completion_tokens : GW_USAGE_UNKNOWN,
                            a->retry_after, a->first_choice, false};
    gw_route_observe(ex->w, &o);
}

/* Stops the attempt's request (from a timer, the client's close, or the
 * callbacks of ANOTHER attempt: never from its own, which libevent is still
 * running). The attempt itself stays for attempt_free. */
static void attempt_stop(attempt_t *a)
{
    if (!a->up)
        return;
    a->cancelling = true;
    /* libevent 2.1 runs only the error callback here (which just notes the
     * error); should a version run the done callback too, `cancelling`
     * makes on_up_done ignore it */
    evhttp_cancel_request(a->up);
    a->up = NULL;
    a->cancelling = false;
}

/* Makes a the attempt whose answer the client gets: the usage row names its
 * provider. */
static void attempt_make_current(attempt_t *a)
{
    gw_exchange_t *ex = a->ex;
    const gw_route_cfg_t *r = &ex->model->routes[a->route];
    ex->cur = a;
    ex->route = a->route;
    snprintf(ex->rec.provider, sizeof ex->rec.provider, "%s",
             ex->w->server->cfg->providers[r->provider].name);
    snprintf(ex->rec.upstream_model, sizeof ex->rec.upstream_model, "%s", r->upstream_model);
}

/* Forgets what an abandoned attempt relayed into the exchange's parser and
 * record (nothing of it reached the client). */
static void exchange_relay_reset(gw_exchange_t *ex)
{
    gw_sse_free(&ex->sse);
    gw_sse_init(&ex->sse, SSE_MAX_EVENT);
    ex->saw_usage = ex->saw_done = false;
    ex->pfx.usage_reported_hits = false; /* a failed attempt's usage does not count */
    gw_respcache_attempt_failed(ex->rc);
    ex->rec.prompt_tokens = ex->rec.cache_hit_tokens = ex->rec.cache_miss_tokens =
        ex->rec.completion_tokens = ex->rec.reasoning_tokens = GW_USAGE_UNKNOWN;
    ex->rec.usage_complete = false;
}

/* ---- hedging (docs/router.md): a second attempt races a late first one --- */

/* Notes the race's outcome in the usage row's route_explain (the first
 * decisive event only) and in the client's x-tollgate-hedge header. */
static void hedge_explain(gw_exchange_t *ex, const char *outcome, const attempt_t *hedge)
{
    if (ex->hedge_outcome)
        return;
    ex->hedge_outcome = outcome;
    char add[200];
    if (hedge)
        snprintf(add, sizeof add, "\"hedge\":{\"after_ms\":%d,\"provider\":\"%s\",\"outcome\":\"%s\"}",
                 ex->hedge_after_ms,
                 ex->w->server->cfg->providers[ex->model->routes[hedge->route].provider].name,
                 outcome);
    else
        snprintf(add, sizeof add, "\"hedge\":{\"after_ms\":%d,\"outcome\":\"%s\"}",
                 ex->hedge_after_ms, outcome);
    char *e = ex->rec.route_explain;
    size_t len = strlen(e);
    if (len >= 2 && e[len - 1] == '}' && len + strlen(add) + 1 < sizeof ex->rec.route_explain) {
        snprintf(e + len - 1, sizeof ex->rec.route_explain - (len - 1), "%s%s}",
                 e[len - 2] == '{' ? "" : ",", add);
    } else if (len == 0) {
        snprintf(e, sizeof ex->rec.route_explain, "{%s}", add);
    } else {
        tg_warn("request %s: route_explain full; hedge outcome '%s' not recorded there",
                ex->rec.request_id, outcome);
    }
}

/* The gateway's own cost of a cancelled attempt (a hedge's loser): its
 * prompt priced as cache misses, no output, usage marked incomplete, written
 * to gateway_costs through the usage writer, never to the team. */
static void attempt_bill_gateway(attempt_t *a)
{
    gw_exchange_t *ex = a->ex;
    const gw_route_cfg_t *r = &ex->model->routes[a->route];
    gw_gateway_cost_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.request_id, sizeof c.request_id, "%s", ex->rec.request_id);
    c.attempt = a->number;
    snprintf(c.reason, sizeof c.reason, "%s", "hedge_loser");
    c.team_id = ex->key.team_id;
    c.key_id = ex->key.key_id;
    snprintf(c.model_requested, sizeof c.model_requested, "%s", ex->rec.model_requested);
    snprintf(c.provider, sizeof c.provider, "%s", ex->w->server->cfg->providers[r->provider].name);
    snprintf(c.upstream_model, sizeof c.upstream_model, "%s", r->upstream_model);
    c.sent_at_us = a->sent_us;
    c.cancelled_at_us = now_us();
    c.prompt_tokens = ex->prompt.tokens;
    c.prompt_exact = ex->prompt.exact;
    c.usage_complete = false;
    const pr_book_t *book = gw_pricebook_acquire(ex->w->server->prices);
    if (book) {
        pr_usage_t u = {c.prompt_tokens, 0, c.prompt_tokens, 0, 0, false};
        pr_charge_t ch;
        char err[256];
        if (pr_price_usage(book, c.provider, c.upstream_model, c.sent_at_us, c.cancelled_at_us, &u,
                           &ch, err, sizeof err) == 0) {
            c.price_card_id = ch.card->id;
            c.discount_window_id = ch.window ? ch.window->id : 0;
            snprintf(c.charge_currency, sizeof c.charge_currency, "%s", ch.card->currency->code);
            c.charge_pico = ch.total;
        } else {
            tg_warn("request %s: hedge loser's cost not priced: %s", c.request_id, err);
        }
        gw_pricebook_release(ex->w->server->prices, book);
    }
    if (gw_usage_writer_submit_cost(ex->w->server->usage, &c) < 0)
        tg_error("request %s: the gateway cost of attempt %d could not be stored (spool full or "
                 "disk error)", c.request_id, c.attempt);
}

/* Cancels an attempt that lost the race (or whose client left) and is not
 * the one the client's row is for: billed to the gateway, nothing learned
 * by routing but its in-flight count. */
static void attempt_cancel_loser(attempt_t *a)
{
    tg_info("request %s: cancelling attempt %d (provider %s): %s", a->ex->rec.request_id,
            a->number, a->ex->w->server->cfg->providers[a->ex->model->routes[a->route].provider].name,
            a->ex->client_gone ? "the client left" : "the other attempt answered first");
    attempt_bill_gateway(a);
    attempt_stop(a);
    gw_route_outcome_t o = {0};
    o.model_index = a->ex->model_index;
    o.route = a->route;
    o.first_choice = a->first_choice;
    o.cancelled = true;
    gw_route_observe(a->ex->w, &o);
    attempt_free(a, true);
}

/* Cancels the exchange's current attempt because the client left or the
 * gateway is stopping (its cost stays on the team's row, marked incomplete). */
static void attempt_cancel_current(gw_exchange_t *ex)
{
    attempt_t *a = ex->cur;
    if (!a)
        return;
    attempt_stop(a);
    gw_route_outcome_t o = {0};
    o.model_index = ex->model_index;
    o.route = a->route;
    o.first_choice = a->first_choice;
    o.cancelled = true;
    gw_route_observe(ex->w, &o);
    attempt_free(a, true);
}

/* The current attempt produced the first byte for the client: the race is
 * over and a hedge still out lost. */
static void race_current_won(gw_exchange_t *ex)
{
    if (ex->hedge_timer)
        evtimer_del(ex->hedge_timer);
    if (!ex->hedge)
        return;
    gw_metrics_hedge(GW_HEDGE_LOST);
    hedge_explain(ex, "lost", ex->hedge);
    attempt_cancel_loser(ex->hedge);
}

/* The hedge produced its first byte first: the first attempt is cancelled
 * (billed to the gateway) and the hedge becomes the exchange's attempt. */
static void race_hedge_won(attempt_t *h)
{
    gw_exchange_t *ex = h->ex;
    attempt_t *first = ex->cur;
    ex->hedge = NULL;
    gw_metrics_hedge(GW_HEDGE_WON);
    hedge_explain(ex, "won", h);
    if (first) {
        ex->cur = NULL;
        attempt_cancel_loser(first);
    }
    exchange_relay_reset(ex);
    attempt_make_current(h);
}

/* ---- the attempt's libevent callbacks (arg: the attempt) ------------------ */

/* Marks the first byte sent to the client (headers of a stream, or the whole
 * answer): no more failover, and the hedge race is decided. */
static void client_first_byte(gw_exchange_t *ex)
{
    ex->rec.first_byte_at_us = now_us();
    ex->client_started = true;
    race_current_won(ex);
}

/* The attempt failed before anything reached the client. A hedge that failed
 * is dropped and the first attempt goes on; a current attempt that failed
 * hands over to the hedge when one is out, else the next route is tried, or
 * the client is told what the last failure was. Frees a (broken: give its
 * connection back as broken). */
static void attempt_failed(attempt_t *a, bool broken, fail_kind_t kind, int status,
                           const char *msg)
{
    gw_exchange_t *ex = a->ex;
    const gw_route_cfg_t *r = &ex->model->routes[a->route];
    const char *pname = ex->w->server->cfg->providers[r->provider].name;
    bool hedge = ex->hedge == a;
    tg_warn("request %s: provider %s failed (attempt %d%s): %s", ex->rec.request_id, pname,
            a->number, hedge ? ", the hedge" : "", msg);
    attempt_report(a, false);
    if (a->retry_after[0])
        snprintf(ex->retry_after, sizeof ex->retry_after, "%s", a->retry_after);
    if (hedge) {
        gw_metrics_hedge(GW_HEDGE_FAILED);
        hedge_explain(ex, "failed", a);
        attempt_free(a, broken);
        return;
    }
    ex->last_fail = kind;
    ex->last_fail_status = status;
    snprintf(ex->last_fail_msg, sizeof ex->last_fail_msg, "provider %s: %s", pname, msg);
    /* 429 and 5xx answers are refusals; a timeout, a reset or a malformed
     * answer may come after the provider did (and billed) the work. */
    if (kind != FAIL_STATUS)
        ex->maybe_billed = true;
    attempt_free(a, broken);
    exchange_relay_reset(ex);
    if (ex->hedge) {
        attempt_t *h = ex->hedge;
        ex->hedge = NULL;
        gw_metrics_hedge(GW_HEDGE_TOOK_OVER);
        hedge_explain(ex, "took_over", h);
        attempt_make_current(h);
        return;
    }
    attempt_next(ex);
}

static void on_first_byte_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    attempt_stop(a);
    if (ex->cur == a && ex->client_started) {
        attempt_report(a, false);
        attempt_free(a, true);
        exchange_fail(ex, 504, "api_error", "upstream_timeout", NULL, "upstream timed out");
        return;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "no response within %d ms",
             ex->w->server->cfg->providers[ex->model->routes[a->route].provider]
                 .first_byte_timeout_ms);
    attempt_failed(a, true, FAIL_TIMEOUT, 504, msg);
}

/* Garbage inside a 200 stream is noticed in the chunk callback, where the
 * request cannot be cancelled: this runs just after, from the loop. Only the
 * current attempt relays, so only it can find garbage. */
static void on_deferred_garbage(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    if (!a->up)
        return;
    attempt_stop(a);
    if (ex->client_started) {
        tg_warn("request %s: upstream sent malformed SSE mid-stream; ending the stream",
                ex->rec.request_id);
        ex->rec.usage_complete = false;
        attempt_report(a, false);
        attempt_free(a, true);
        exchange_fail(ex, 502, "api_error", "upstream_bad_response", NULL, "");
        return;
    }
    attempt_failed(a, true, FAIL_GARBAGE, 502, "malformed event stream");
}

/* libevent calls this just before the done callback of a failed attempt. */
static void on_up_error(enum evhttp_request_error error, void *arg)
{
    attempt_t *a = arg;
    a->error = error;
    a->failed = true;
}

static int on_up_header(struct evhttp_request *up, void *arg)
{
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    a->status = evhttp_request_get_response_code(up);
    a->header_us = now_us();
    if (a->first_byte_timer)
        evtimer_del(a->first_byte_timer);
    a->discard = a->status == 429 || a->status >= 500;
    if (a->status == 429) {
        const char *ra = evhttp_find_header(evhttp_request_get_input_headers(up), "Retry-After");
        snprintf(a->retry_after, sizeof a->retry_after, "%s", ra ? ra : "");
    }
    /* a whole answer is on its way: no reason to hedge any more */
    if (ex->cur == a && !ex->stream && a->status == 200 && ex->hedge_timer)
        evtimer_del(ex->hedge_timer);
    return 0;
}

typedef struct relay_batch {
    gw_exchange_t *ex;
    struct evbuffer *out;
} relay_batch_t;

/* Handles one complete upstream SSE event: reads the usage, hides the usage
 * event from clients that did not ask for it, and queues the rest. */
static int on_sse_event(void *arg, const char *event, size_t len)
{
    relay_batch_t *b = arg;
    gw_exchange_t *ex = b->ex;
    gw_respcache_feed_event(ex->rc, event, len);
    if (len > 9 && memmem(event, len, "\"usage\"", 7)) {
        char *data = malloc(len + 1);
        if (!data)
            abort();
        long dl = gw_sse_event_data(event, len, data, len + 1);
        cJSON *j = dl > 0 ? cJSON_ParseWithLength(data, (size_t)dl) : NULL;
        free(data);
        cJSON *usage = j ? cJSON_GetObjectItemCaseSensitive(j, "usage") : NULL;
        if (cJSON_IsObject(usage) && gw_usage_from_json(usage, &ex->rec)) {
            ex->saw_usage = true;
            ex->pfx.usage_reported_hits = gw_prefix_usage_reports_hits(usage);
            const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
            bool usage_only = cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0;
            if (usage_only && !ex->client_wants_usage) {
                cJSON_Delete(j);
                return 0;
            }
            if (gw_usage_json_complete(usage)) {
                char *text = cJSON_PrintUnformatted(j);
                evbuffer_add_printf(b->out, "data: %s\n\n", text);
                free(text);
                cJSON_Delete(j);
                return 0;
            }
        }
        cJSON_Delete(j);
    } else if (len >= 12 && memmem(event, len, "[DONE]", 6)) {
        char data[8];
        if (gw_sse_event_data(event, len, data, sizeof data) == 6 && !memcmp(data, "[DONE]", 6)) {
            ex->saw_done = true; /* held back: sent after the record is settled */
            return 0;
        } /* else "[DONE]" inside content: an ordinary event */
    }
    evbuffer_add(b->out, event, len);
    return 0;
}

static void on_up_chunk(struct evhttp_request *up, void *arg)
{
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    if (a->discard || a->garbage || ex->client_gone) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (a->status != 200) {
        if (!a->error_body)
            a->error_body = evbuffer_new();
        if (evbuffer_get_length(a->error_body) < 65536)
            evbuffer_add_buffer(a->error_body, in);
        else
            evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return;
    if (ex->hedge == a)
        race_hedge_won(a); /* the hedge's stream carries data first */
    relay_batch_t b = {ex, evbuffer_new()};
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    int rc = gw_sse_feed(&ex->sse, bytes, n, on_sse_event, &b);
    if (evbuffer_get_length(b.out) > 0) {
        if (!ex->client_started)
            client_start_stream(ex);
        evhttp_send_reply_chunk(ex->client, b.out);
    }
    evbuffer_free(b.out);
    if (rc == -2) {
        a->garbage = true;
        if (!a->deferred)
            a->deferred = evtimer_new(ex->w->base, on_deferred_garbage, a);
        struct timeval zero = {0, 0};
        evtimer_add(a->deferred, &zero);
    }
}

/* Flags the record incomplete when the provider never reported usage or the
 * stream never finished. Called once the upstream answer has ended. */
static void usage_close(gw_exchange_t *ex)
{
    if (!ex->saw_usage) {
        tg_warn("request %s: provider sent no usage; row marked incomplete", ex->rec.request_id);
        ex->rec.usage_complete = false;
    }
    if (ex->stream && !ex->saw_done) {
        tg_warn("request %s: stream ended without [DONE]", ex->rec.request_id);
        ex->rec.usage_complete = false;
    }
}

/* The non-streamed answer arrived whole. Returns false if it is not a JSON
 * object (garbage): the caller fails over. */
static bool relay_whole(gw_exchange_t *ex, struct evhttp_request *up)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    size_t n = evbuffer_get_length(in);
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    cJSON *j = cJSON_ParseWithLength(bytes, n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return false;
    }
    gw_respcache_feed_body(ex->rc, j);
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    bool changed = false;
    if (usage && gw_usage_from_json(usage, &ex->rec)) {
        ex->saw_usage = true;
        ex->pfx.usage_reported_hits = gw_prefix_usage_reports_hits(usage);
        changed = gw_usage_json_complete(usage);
    }
    client_first_byte(ex);
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    evhttp_add_header(h, "Content-Type", "application/json");
    add_served_by_headers(ex);
    client_detach(ex);
    usage_close(ex);
    exchange_settle(ex, 200, NULL);
    if (ex->unmetered) {
        /* spool_full = refuse: an answer that cannot be metered is not given */
        gw_http_send_error(ex->client, 503, "api_error", "usage_ledger_full", NULL,
                           "The gateway cannot record usage right now (its usage journal is "
                           "full). Retry later.");
        ex->client = NULL;
        cJSON_Delete(j);
        return true;
    }
    char charge[96];
    charge_text(ex, charge, sizeof charge);
    if (charge[0])
        evhttp_add_header(h, "x-tollgate-charge", charge);
    if (changed) {
        char *text = cJSON_PrintUnformatted(j);
        struct evbuffer *out = evbuffer_new();
        evbuffer_add_reference(out, text, strlen(text), gw_evbuffer_free_data, NULL);
        evhttp_send_reply(ex->client, 200, "OK", out);
        evbuffer_free(out);
    } else {
        evhttp_send_reply(ex->client, 200, "OK", in);
    }
    ex->client = NULL;
    cJSON_Delete(j);
    return true;
}

/* A non-retryable upstream error (4xx other than 429): relay it as is. */
static void relay_upstream_error(gw_exchange_t *ex, attempt_t *a, struct evhttp_request *up)
{
    struct evbuffer *body = ex->stream ? a->error_body : evhttp_request_get_input_buffer(up);
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(up), "Content-Type");
    evhttp_add_header(h, "Content-Type", ct ? ct : "application/json");
    client_first_byte(ex);
    add_served_by_headers(ex);
    client_detach(ex);
    exchange_settle(ex, a->status, "upstream_error");
    evhttp_send_reply(ex->client, a->status, gw_http_reason(a->status), body);
    ex->client = NULL;
}

/* A hedge's upstream answer ended before the hedge produced any byte for the
 * client: a failure drops it (the first attempt goes on); a complete 200
 * answer (not streamed) wins the race and is relayed as the exchange's. */
static void hedge_done(attempt_t *a, struct evhttp_request *up)
{
    if (!up || a->status == 0) {
        bool timeout = a->failed && a->error == EVREQ_HTTP_TIMEOUT;
        attempt_failed(a, true, timeout ? FAIL_TIMEOUT : FAIL_CONNECT, timeout ? 504 : 502,
                       timeout ? "idle timeout (no bytes for idle_timeout_ms)"
                               : "connection failed, reset or closed early");
        return;
    }
    if (a->garbage || a->discard || a->status != 200 || a->ex->stream) {
        char msg[64];
        snprintf(msg, sizeof msg, a->status != 200 ? "HTTP %d" : "no answer before it ended",
                 a->status);
        attempt_failed(a, a->garbage, a->discard ? FAIL_STATUS : FAIL_GARBAGE, a->status, msg);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    size_t n = evbuffer_get_length(in);
    cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n);
    bool whole = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!whole) {
        attempt_failed(a, false, FAIL_GARBAGE, 502, "response body is not a JSON object");
        return;
    }
    race_hedge_won(a);
    on_up_done(up, a); /* now the exchange's attempt: relayed like any answer */
}

static void on_up_done(struct evhttp_request *up, void *arg)
{
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    if (a->cancelling)
        return; /* attempt_stop() is on the stack and cleans up */
    if (a->deferred)
        evtimer_del(a->deferred);
    if (ex->hedge == a) {
        hedge_done(a, up);
        return;
    }
    if (!up || a->status == 0) {
        if (ex->client_started) {
            /* the stream broke after bytes reached the client: it cannot be retried */
            tg_warn("request %s: upstream connection lost mid-stream", ex->rec.request_id);
            ex->rec.usage_complete = false;
            attempt_report(a, false);
            attempt_free(a, true);
            exchange_fail(ex, 502, "api_error", "upstream_stream_cut", NULL, "");
            return;
        }
        if (a->failed && a->error == EVREQ_HTTP_TIMEOUT)
            attempt_failed(a, true, FAIL_TIMEOUT, 504,
                           "idle timeout (no bytes for idle_timeout_ms)");
        else
            attempt_failed(a, true, FAIL_CONNECT, 502, "connection failed, reset or closed early");
        return;
    }
    int status = a->status;
    if (a->garbage) {
        /* malformed SSE in the last read: the deferred cancel never ran */
        if (ex->client_started) {
            tg_warn("request %s: upstream sent malformed SSE mid-stream; ending the stream",
                    ex->rec.request_id);
            ex->rec.usage_complete = false;
            attempt_report(a, false);
            attempt_free(a, true);
            exchange_fail(ex, 502, "api_error", "upstream_bad_response", NULL, "");
            return;
        }
        attempt_failed(a, true, FAIL_GARBAGE, 502, "malformed event stream");
        return;
    }
    if (a->discard) {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP %d", status);
        attempt_failed(a, false, FAIL_STATUS, status, msg);
        return;
    }
    if (status != 200) {
        attempt_report(a, true);
        relay_upstream_error(ex, a, up);
        attempt_free(a, false);
        exchange_finish(ex, status, "upstream_error");
        return;
    }
    if (!ex->stream) {
        if (!relay_whole(ex, up)) {
            attempt_failed(a, false, FAIL_GARBAGE, 502, "response body is not a JSON object");
            return;
        }
    } else {
        if (!ex->client_started && !ex->saw_done) {
            /* 200 with an empty or unterminated stream: nothing reached the client */
            attempt_failed(a, false, FAIL_GARBAGE, 502, "event stream ended before any event");
            return;
        }
        if (!ex->client_started)
            client_start_stream(ex);
        client_detach(ex);
        usage_close(ex);
        exchange_settle(ex, 200, NULL);
        if (ex->saw_done) {
            struct evbuffer *tail = evbuffer_new();
            char charge[96];
            charge_text(ex, charge, sizeof charge);
            if (charge[0]) /* an SSE comment: clients ignore it, people can read it */
                evbuffer_add_printf(tail, ": x-tollgate-charge %s\n\n", charge);
            evbuffer_add_printf(tail, "data: [DONE]\n\n");
            evhttp_send_reply_chunk(ex->client, tail);
            evbuffer_free(tail);
        }
        evhttp_send_reply_end(ex->client);
        ex->client = NULL;
    }
    attempt_report(a, true);
    attempt_free(a, false);
    exchange_finish(ex, 200, NULL);
}

/* Builds the upstream body for route r: the provider's model name, usage
 * forced on streams. Edits the parsed body in place (the client's own values
 * that matter were read before the first attempt) and prints it. Returns a
 * malloc'd string. */
static char *upstream_body(gw_exchange_t *ex, const gw_route_cfg_t *r)
{
    cJSON *body = ex->body;
    cJSON_ReplaceItemInObjectCaseSensitive(body, "model", cJSON_CreateString(r->upstream_model));
    if (ex->stream) {
        cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
        if (!cJSON_IsObject(so)) {
            cJSON_DeleteItemFromObjectCaseSensitive(body, "stream_options");
            so = cJSON_AddObjectToObject(body, "stream_options");
        }
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"))) {
            cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
            cJSON_AddTrueToObject(so, "include_usage");
        }
    }
    char *text = cJSON_PrintUnformatted(body);
    if (!text)
        abort();
    return text;
}

/* Sends one attempt of the exchange to its route `route`. Returns the new
 * attempt (its first-byte timer armed), or NULL when no connection could be
 * had or the request could not be sent (logged; the attempt number is used
 * up either way, as it is in x-tollgate-attempts). */
static attempt_t *attempt_start(gw_exchange_t *ex, int route)
{
    const gw_config_t *cfg = ex->w->server->cfg;
    const gw_route_cfg_t *r = &ex->model->routes[route];
    const gw_provider_cfg_t *p = &cfg->providers[r->provider];
    gw_upstream_conn_t *conn = gw_upstream_acquire(&ex->w->pools[r->provider]);
    if (!conn)
        return NULL;
    attempt_t *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->ex = ex;
    a->route = route;
    a->conn = conn;
    a->first_choice = ex->rec.attempts == 0 && ex->plan.n > 0 && ex->plan.routes[0] == route;
    struct evhttp_request *up = evhttp_request_new(on_up_done, a);
    evhttp_request_set_header_cb(up, on_up_header);
    evhttp_request_set_error_cb(up, on_up_error);
    evhttp_request_set_chunked_cb(up, ex->stream ? on_up_chunk : NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(up);
    char hostport[300];
    if ((p->tls && p->port == 443) || (!p->tls && p->port == 80))
        snprintf(hostport, sizeof hostport, "%s", p->host);
    else
        snprintf(hostport, sizeof hostport, "%s:%d", p->host, p->port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Accept", ex->stream ? "text/event-stream" : "application/json");
    evhttp_add_header(h, "x-request-id", ex->rec.request_id);
    if (p->api_key) {
        char bearer[4200];
        snprintf(bearer, sizeof bearer, "Bearer %s", p->api_key);
        evhttp_add_header(h, "Authorization", bearer);
    }
    char *body = upstream_body(ex, r);
    evbuffer_add_reference(evhttp_request_get_output_buffer(up), body, strlen(body),
                           gw_evbuffer_free_data, NULL);
    char uri[400];
    snprintf(uri, sizeof uri, "%s/%s", p->base_path,
             ex->endpoint == GW_ENDPOINT_CHAT ? "chat/completions" : "completions");
    a->number = ++ex->rec.attempts;
    if (evhttp_make_request(conn->evcon, up, EVHTTP_REQ_POST, uri) != 0) {
        /* libevent 2.1 unlinks the request on this path but does not free it */
        evhttp_request_free(up);
        tg_warn("request %s: cannot send to provider %s", ex->rec.request_id, p->name);
        attempt_free(a, true);
        return NULL;
    }
    a->up = up;
    a->sent_us = now_us();
    a->first_byte_timer = evtimer_new(ex->w->base, on_first_byte_timeout, a);
    struct timeval tv = {p->first_byte_timeout_ms / 1000,
                         (p->first_byte_timeout_ms % 1000) * 1000};
    evtimer_add(a->first_byte_timer, &tv);
    return a;
}

/* The first attempt's first byte is late (hedge_after_ms): send the next
 * route in the plan as a hedge, unless the race is already decided, no route
 * is left, the gateway is stopping or the per-minute cap is spent. */
static void on_hedge_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_exchange_t *ex = arg;
    attempt_t *first = ex->cur;
    if (!first || ex->hedge || ex->client_started || ex->client_gone || ex->w->stopping ||
        first->discard || (!ex->stream && first->status == 200) ||
        ex->next_in_plan >= ex->plan.n)
        return;
    if (!gw_hedge_take(ex->w->server->cfg->hedge_max_per_minute, now_us())) {
        gw_metrics_hedge(GW_HEDGE_CAPPED);
        hedge_explain(ex, "capped", NULL);
        tg_info("request %s: hedge due but hedge_max_per_minute is spent", ex->rec.request_id);
        return;
    }
    while (ex->next_in_plan < ex->plan.n) {
        attempt_t *h = attempt_start(ex, ex->plan.routes[ex->next_in_plan++]);
        if (!h)
            continue;
        ex->hedge = h;
        gw_metrics_hedge(GW_HEDGE_SENT);
        tg_info("request %s: no first byte from %s after %d ms: hedging to %s (attempt %d)",
                ex->rec.request_id, ex->rec.provider, ex->hedge_after_ms,
                ex->w->server->cfg->providers[ex->model->routes[h->route].provider].name,
                h->number);
        return;
    }
}

/* Starts the attempt on the next route, or fails the exchange when none is
 * left. Never called with an attempt in flight. The first attempt of a
 * hedged exchange also arms its hedge timer. */
static void attempt_next(gw_exchange_t *ex)
{
    if (ex->client_gone) {
        ex->rec.usage_complete = false;
        exchange_fail(ex, 499, "api_error", "client_closed", NULL, "");
        return;
    }
    while (ex->next_in_plan < ex->plan.n) {
        if (ex->w->stopping && ex->rec.attempts > 0)
            break; /* shutting down: no new attempts */
        attempt_t *a = attempt_start(ex, ex->plan.routes[ex->next_in_plan++]);
        if (!a)
            continue;
        attempt_make_current(a);
        if (ex->hedge_after_ms > 0 && a->number == 1 && ex->next_in_plan < ex->plan.n) {
            ex->hedge_timer = evtimer_new(ex->w->base, on_hedge_due, ex);
            struct timeval tv = {ex->hedge_after_ms / 1000, (ex->hedge_after_ms % 1000) * 1000};
            evtimer_add(ex->hedge_timer, &tv);
        }
        return;
    }
    /* no route left */
    if (ex->plan.n == 0) {
        usage_nothing_used(&ex->rec);
        exchange_fail(ex, ex->plan.status, ex->plan.type, ex->plan.code,
                      ex->plan.param[0] ? ex->plan.param : NULL, ex->plan.message);
        return;
    }
    int status = 502;
    const char *code = "upstream_unavailable";
    if (ex->last_fail == FAIL_TIMEOUT) {
        status = 504;
        code = "upstream_timeout";
    } else if (ex->last_fail == FAIL_STATUS && ex->last_fail_status == 429) {
        status = 429;
        code = "upstream_rate_limited";
    } else if (ex->last_fail == FAIL_STATUS && ex->last_fail_status == 503) {
        status = 503;
        code = "upstream_overloaded";
    }
    char msg[512];
    snprintf(msg, sizeof msg, "No provider could serve model %s (last: %s).", ex->model->name,
             ex->last_fail_msg[0] ? ex->last_fail_msg : "none reachable");
    if (!ex->maybe_billed) {
        usage_nothing_used(&ex->rec); /* every provider refused (429/5xx) or none was tried */
    } else {
        /* some attempt may have been done and billed upstream: unknown, not zero */
        ex->rec.usage_complete = false;
    }
    exchange_fail(ex, status, "api_error", code, NULL, msg);
}

/* ---- governance: admission between the route plan and the first attempt - */

/* Soft threshold, policy downgrade: serve `to` instead of the requested
 * model (same body; the row keeps the requested model, the upstream model
 * actually used, and the reason in route_explain). */
static void governance_downgrade(gw_exchange_t *ex, const char *to)
{
    const gw_config_t *cfg = ex->w->server->cfg;
    const gw_model_cfg_t *m = gw_config_model(cfg, to);
    gw_route_plan_t plan;
    if (m) {
        gw_route_request_t rq = {m,
                                 (int)(m - cfg->models),
                                 &ex->key,
                                 ex->prompt.tokens,
                                 ex->prompt.exact,
                                 ex->max_tokens,
                                 ex->stream,
                                 now_us(),
                                 ex->client ? evhttp_request_get_input_headers(ex->client) : NULL,
                                 NULL /* the prefix prediction was for the other model */};
        gw_route_plan(ex->w, &rq, &plan);
    }
    if (!m || plan.n == 0) {
        tg_warn("request %s: budget downgrade to '%s' impossible (%s); keeping %s",
                ex->rec.request_id, to, m ? "no route can take it" : "no such model",
                ex->model->name);
        return;
    }
    ex->model = m;
    ex->model_index = (int)(m - cfg->models);
    ex->plan = plan;
    char why[sizeof ex->rec.route_explain];
    const char *rest = ex->rec.route_explain[0] == '{' ? ex->rec.route_explain + 1 : "}";
    snprintf(why, sizeof why, "{\"budget\":\"downgraded %s -> %s (soft threshold)\"%s%s",
             ex->rec.model_requested, to, rest[0] == '}' ? "" : ",", rest);
    snprintf(ex->rec.route_explain, sizeof ex->rec.route_explain, "%s", why);
}

/* ---- response cache: after admission, before the first attempt ---------- */

/* A hit: the stored answer, priced by the configured rule, no provider. */
static void respcache_serve(gw_exchange_t *ex, const gw_rc_answer_t *a)
{
    gw_respcache_hit_record(a, &ex->rec);
    ex->rec.first_byte_at_us = now_us();
    ex->client_started = true;
    client_detach(ex);
    exchange_settle(ex, 200, NULL);
    if (ex->unmetered) {
        gw_http_send_error(ex->client, 503, "api_error", "usage_ledger_full", NULL,
                           "The gateway cannot record usage right now (its usage journal is "
                           "full). Retry later.");
    } else {
        char charge[96];
        charge_text(ex, charge, sizeof charge);
        gw_respcache_reply(ex->client, a, ex->stream, ex->client_wants_usage, ex->rec.request_id,
                           charge);
    }
    ex->client = NULL;
    exchange_finish(ex, 200, NULL);
}

static void on_respcache(const gw_rc_answer_t *hit, void *arg)
{
    gw_exchange_t *ex = arg;
    if (hit)
        respcache_serve(ex, hit);
    else
        attempt_next(ex);
}

/* Looks the answer up when the response cache applies; else (or on a miss,
 * or with Redis unavailable) goes on to the first attempt. */
static void respcache_or_attempt(gw_exchange_t *ex)
{
    if (!ex->rc || ex->plan.n == 0 ||
        !gw_respcache_lookup(ex->rc, ex->model, ex->client, on_respcache, ex))
        attempt_next(ex);
}

static void on_governed(const gw_govern_result_t *res, void *arg)
{
    gw_exchange_t *ex = arg;
    ex->gov_ticket = NULL;
    if (res->header[0] && ex->client)
        evhttp_add_header(evhttp_request_get_output_headers(ex->client), "x-tollgate-budget",
                          res->header);
    if (!res->allow) {
        usage_nothing_used(&ex->rec);
        snprintf(ex->retry_after, sizeof ex->retry_after, "%s", res->retry_after);
        exchange_fail(ex, res->status, res->type, res->code, NULL, res->message);
        return;
    }
    if (res->downgrade_to[0])
        governance_downgrade(ex, res->downgrade_to);
    if (res->cheaper_only)
        gw_govern_cheapest(ex->w, ex->model, &ex->plan, ex->prompt.tokens, ex->max_tokens,
                           now_us());
    respcache_or_attempt(ex);
}

/* Rate limits and the budget hold, one Redis round trip (gw_govern); the
 * exchange waits for the answer, or goes on at once when none is needed. */
static void governance_admit(gw_exchange_t *ex)
{
    if (!gw_govern_enabled(ex->w->server->cfg) || ex->plan.n == 0) {
        respcache_or_attempt(ex);
        return;
    }
    /* an estimated count is no bound: a token is at least one byte of the body */
    int64_t bound = ex->prompt.tokens;
    size_t body = evbuffer_get_length(evhttp_request_get_input_buffer(ex->client));
    if (!ex->prompt.exact && (int64_t)body > bound)
        bound = (int64_t)body;
    gw_govern_request_t rq = {&ex->key, ex->model, &ex->plan, ex->prompt.tokens, bound,
                              ex->max_tokens, ex->rec.request_id, now_us()};
    gw_govern_result_t res;
    ex->gov_ticket = gw_govern_admit(ex->w, &rq, &ex->gov_hold, on_governed, ex, &res);
    if (!ex->gov_ticket)
        on_governed(&res, ex);
}

/* ---- the client side ---------------------------------------------------- */

/* The client's connection closed before we finished: stop the upstream work
 * and record what is known. libevent keeps the detached request for us to
 * free through evhttp_send_reply_end(). */
static void on_client_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    gw_exchange_t *ex = arg;
    ex->client_gone = true;
    tg_info("request %s: client went away", ex->rec.request_id);
    if (ex->hedge)
        hedge_explain(ex, "client_gone", ex->hedge);
    if (ex->hedge)
        attempt_cancel_loser(ex->hedge);
    attempt_cancel_current(ex);
    struct evhttp_request *req = ex->client;
    ex->client = NULL;
    if (req)
        evhttp_send_reply_end(req); /* frees the detached request */
    if (ex->rec.attempts == 0)
        usage_nothing_used(&ex->rec); /* gone before anything was forwarded */
    else
        ex->rec.usage_complete = false;
    exchange_finish(ex, 499, "client_closed");
}

static void exchange_plan(gw_exchange_t *ex);
static void on_prefix_known(void *arg);

void gw_proxy_handle(gw_worker_t *w, struct evhttp_request *req, gw_endpoint_t endpoint)
{
    gw_key_info_t key;
    memset(&key, 0, sizeof key);
    if (!authenticate(w, req, &key))
        return;
    gw_exchange_t *ex = exchange_new(w, req, endpoint);
    ex->key = key;
    snprintf(ex->rec.model_requested, sizeof ex->rec.model_requested, "%s", "");
    usage_nothing_used(&ex->rec);

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > (size_t)w->server->cfg->max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "Request body is %zu bytes; the limit is %d.", n,
                 w->server->cfg->max_body_bytes);
        exchange_fail(ex, 413, "invalid_request_error", "request_too_large", NULL, msg);
        return;
    }
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    if (!gw_utf8_valid(bytes, n)) {
        exchange_fail(ex, 400, "invalid_request_error", "invalid_utf8", NULL,
                      "The request body is not valid UTF-8.");
        return;
    }
    ex->body = cJSON_ParseWithLength(bytes, n);
    if (!ex->body) {
        exchange_fail(ex, 400, "invalid_request_error", "invalid_json", NULL,
                      "We could not parse the JSON body of your request.");
        return;
    }
    char param[64], msg[256];
    if (!body_validate(ex->body, endpoint, param, sizeof param, msg, sizeof msg)) {
        exchange_fail(ex, 400, "invalid_request_error", "invalid_value", param[0] ? param : NULL,
                      msg);
        return;
    }
    const char *model = cJSON_GetObjectItemCaseSensitive(ex->body, "model")->valuestring;
    snprintf(ex->rec.model_requested, sizeof ex->rec.model_requested, "%s", model);
    ex->model = gw_config_model(w->server->cfg, model);
    if (!ex->model) {
        snprintf(msg, sizeof msg, "The model '%s' does not exist.", model);
        exchange_fail(ex, 404, "invalid_request_error", "model_not_found", "model", msg);
        return;
    }
    ex->model_index = (int)(ex->model - w->server->cfg->models);
    if (!gw_key_allows_model(&ex->key, model)) {
        snprintf(msg, sizeof msg, "This API key may not use the model '%s'.", model);
        exchange_fail(ex, 403, "permission_error", "model_not_allowed", "model", msg);
        return;
    }
    ex->prompt = gw_prompt_count_blocks(w->server->model_tokenizer[ex->model_index], ex->body,
                                        endpoint == GW_ENDPOINT_CHAT,
                                        gw_prefix_max_blocks(w, ex->model_index), &ex->pfx.blocks);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(ex->body, "max_completion_tokens");
    if (!cJSON_IsNumber(mt))
        mt = cJSON_GetObjectItemCaseSensitive(ex->body, "max_tokens");
    ex->max_tokens = cJSON_IsNumber(mt) ? (int64_t)mt->valuedouble : 0;
    ex->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ex->body, "stream"));
    const gw_spool_opts_t *spool = &w->server->cfg->spool;
    if (spool->dir[0] && spool->full == GW_SPOOL_FULL_REFUSE &&
        gw_usage_writer_spool_bytes(w->server->usage) >= spool->max_bytes) {
        exchange_fail(ex, 503, "api_error", "usage_ledger_full", NULL,
                      "The gateway cannot record usage right now (its usage journal is full). "
                      "Retry later.");
        return;
    }
    evhttp_connection_set_closecb(ex->client_conn, on_client_close, ex);
    if (!gw_prefix_lookup(w, &ex->pfx, ex->model_index, ex->key.team_id, ex->prompt.tokens,
                          ex->prompt.exact, on_prefix_known, ex))
        exchange_plan(ex); /* else when Redis has answered (or timed out) */
}

/* Routes the exchange (with the prefix index's prediction, when one was
 * made) and goes on to governance. */
static void exchange_plan(gw_exchange_t *ex)
{
    gw_worker_t *w = ex->w;
    gw_endpoint_t endpoint = ex->endpoint;
    gw_route_request_t rq = {ex->model, ex->model_index, &ex->key, ex->prompt.tokens,
                             ex->prompt.exact, ex->max_tokens, ex->stream, now_us(),
                             evhttp_request_get_input_headers(ex->client),
                             ex->pfx.predicted ? ex->pfx.hit_tokens : NULL};
    gw_route_plan(w, &rq, &ex->plan);
    snprintf(ex->rec.route_explain, sizeof ex->rec.route_explain, "%s", ex->plan.explain);
    if (ex->plan.n > 0) {
        char err[200];
        const char *hv = evhttp_find_header(evhttp_request_get_input_headers(ex->client),
                                            GW_HEDGE_HEADER);
        if (gw_hedge_threshold(hv, ex->model->hedge_after_ms, ex->plan.latency_target_ms,
                               &ex->hedge_after_ms, err, sizeof err) != 0) {
            ex->plan.n = 0; /* answered below, after admission, like any plan error */
            ex->plan.status = 400;
            snprintf(ex->plan.type, sizeof ex->plan.type, "invalid_request_error");
            snprintf(ex->plan.code, sizeof ex->plan.code, "invalid_header");
            snprintf(ex->plan.param, sizeof ex->plan.param, "%s", GW_HEDGE_HEADER);
            snprintf(ex->plan.message, sizeof ex->plan.message, "%s", err);
        }
    }
    if (ex->plan.n == 0 && !ex->plan.param[0])
        snprintf(ex->plan.param, sizeof ex->plan.param, "%s",
                 endpoint == GW_ENDPOINT_CHAT ? "messages" : "prompt");
    ex->rec.streamed = ex->stream;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(ex->body, "stream_options");
    ex->client_wants_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    ex->rec.prompt_tokens = ex->rec.cache_hit_tokens = ex->rec.cache_miss_tokens =
        ex->rec.completion_tokens = ex->rec.reasoning_tokens = GW_USAGE_UNKNOWN;
    ex->rec.usage_complete = false;
    ex->rc = gw_respcache_begin(w, &ex->key, endpoint == GW_ENDPOINT_CHAT, ex->body, ex->client);
    governance_admit(ex); /* then the response cache, then attempt_next() */
}

static void on_prefix_known(void *arg)
{
    exchange_plan(arg);
}

void gw_proxy_budget(gw_worker_t *w, struct evhttp_request *req)
{
    gw_key_info_t key;
    if (!authenticate(w, req, &key))
        return;
    gw_govern_serve_budget(w, req, &key);
}

void gw_proxy_list_models(gw_worker_t *w, struct evhttp_request *req)
{
    gw_key_info_t key;
    if (!authenticate(w, req, &key))
        return;
    const gw_config_t *cfg = w->server->cfg;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (int i = 0; i < cfg->n_models; i++) {
        if (!gw_key_allows_model(&key, cfg->models[i].name))
            continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", cfg->models[i].name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "tollgate");
        cJSON_AddItemToArray(data, m);
    }
    gw_http_send_json(req, 200, root);
    cJSON_Delete(root);
}

void gw_proxy_abort_all(gw_worker_t *w)
{
    while (w->exchanges) {
        gw_exchange_t *ex = w->exchanges;
        tg_warn("request %s: shutdown deadline reached; ending it", ex->rec.request_id);
        if (ex->hedge)
            attempt_cancel_loser(ex->hedge);
        attempt_cancel_current(ex);
        if (ex->rec.attempts == 0)
            usage_nothing_used(&ex->rec);
        else
            ex->rec.usage_complete = false;
        exchange_fail(ex, 503, "api_error", "gateway_shutting_down", NULL,
                      "The gateway is shutting down.");
    }
}
