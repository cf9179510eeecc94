/* gw_proxy: the request path of the gateway (see gw_proxy.h) from the client
 * to the first upstream attempt: authentication, the body's validation, the
 * prompt count, the prefix lookup, the route plan and the hedge threshold,
 * governance's admission, the response cache; and the client's close. The
 * exchange, its attempts and the hedge are gw_exchange.h's. */
#include "gw_proxy.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_clock.h"
#include "gw_exchange.h"
#include "gw_hedge.h"
#include "gw_http.h"
#include "tg_log.h"

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
            BAD("stream_options.include_usage",
                "'stream_options.include_usage' must be a boolean.");
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
        gw_keystore_lookup(w->server->keystore, token, strlen(token), gw_clock_now_us(), key);
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

/* Plans the request for model m (the request's needs from its headers, its
 * key's rules), with the prefix index's prediction for m or NULL. */
static void plan_model(gw_exchange_t *ex, const gw_model_cfg_t *m, const int64_t *predicted,
                       gw_route_plan_t *plan)
{
    gw_route_request_t rq = {m,
                             (int)(m - ex->w->server->cfg->models),
                             &ex->key,
                             ex->prompt.tokens,
                             ex->prompt.exact,
                             ex->max_tokens,
                             ex->stream,
                             gw_clock_now_us(),
                             ex->client ? evhttp_request_get_input_headers(ex->client) : NULL,
                             predicted};
    gw_route_plan(ex->w, &rq, plan);
    gw_exchange_hold_inflight(ex, rq.model_index, plan);
}

/* Soft threshold, policy downgrade: serve `to` instead of the requested
 * model (same body; the row keeps the requested model, the upstream model
 * actually used, and the reason in route_explain). */
static void governance_downgrade(gw_exchange_t *ex, const char *to)
{
    const gw_config_t *cfg = ex->w->server->cfg;
    const gw_model_cfg_t *m = gw_config_model(cfg, to);
    gw_route_plan_t plan;
    if (m) /* the prefix prediction was for the other model */
        plan_model(ex, m, NULL, &plan);
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

/* A hit: the stored answer, priced by the configured rule, no provider. */
static void respcache_serve(gw_exchange_t *ex, const gw_rc_answer_t *a)
{
    gw_respcache_hit_record(a, &ex->rec);
    ex->rec.first_byte_at_us = gw_clock_now_us();
    ex->client_started = true;
    gw_exchange_detach_client(ex);
    gw_exchange_settle(ex, 200, NULL);
    if (ex->unmetered) {
        gw_exchange_refuse_unmetered(ex);
    } else {
        char charge[96];
        gw_exchange_charge_text(ex, charge, sizeof charge);
        gw_respcache_reply(ex->client, a, ex->stream, ex->client_wants_usage, ex->rec.request_id,
                           charge);
    }
    ex->client = NULL;
    gw_exchange_finish(ex, 200, NULL);
}

static void on_respcache(const gw_rc_answer_t *hit, void *arg)
{
    gw_exchange_t *ex = arg;
    if (hit)
        respcache_serve(ex, hit);
    else
        gw_attempt_next(ex);
}

/* Looks the answer up when the response cache applies; else (or on a miss,
 * or with Redis unavailable) goes on to the first attempt. */
static void respcache_or_attempt(gw_exchange_t *ex)
{
    if (!ex->rc || ex->plan.n == 0 ||
        !gw_respcache_lookup(ex->rc, ex->model, ex->client, on_respcache, ex))
        gw_attempt_next(ex);
}

static void on_governed(const gw_govern_result_t *res, void *arg)
{
    gw_exchange_t *ex = arg;
    ex->gov_ticket = NULL;
    if (res->header[0] && ex->client)
        evhttp_add_header(evhttp_request_get_output_headers(ex->client), "x-tollgate-budget",
                          res->header);
    if (!res->allow) {
        gw_record_nothing_used(&ex->rec);
        snprintf(ex->retry_after, sizeof ex->retry_after, "%s", res->retry_after);
        gw_exchange_fail(ex, res->status, res->type, res->code, NULL, res->message);
        return;
    }
    if (res->downgrade_to[0])
        governance_downgrade(ex, res->downgrade_to);
    if (res->cheaper_only)
        gw_govern_cheapest(ex->w, ex->model, &ex->plan, ex->prompt.tokens, ex->max_tokens,
                           gw_clock_now_us());
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
    gw_govern_request_t rq = {&ex->key, ex->model,      &ex->plan,          ex->prompt.tokens,
                              bound,    ex->max_tokens, ex->rec.request_id, gw_clock_now_us()};
    gw_govern_result_t res;
    ex->gov_ticket = gw_govern_admit(ex->w, &rq, &ex->gov_hold, on_governed, ex, &res);
    if (!ex->gov_ticket)
        on_governed(&res, ex);
}

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
        gw_hedge_explain(ex, "client_gone", ex->hedge);
    if (ex->hedge)
        gw_attempt_cancel_loser(ex->hedge);
    gw_attempt_cancel_current(ex);
    struct evhttp_request *req = ex->client;
    ex->client = NULL;
    if (req)
        evhttp_send_reply_end(req); /* frees the detached request */
    if (ex->rec.attempts == 0)
        gw_record_nothing_used(&ex->rec); /* gone before anything was forwarded */
    else
        ex->rec.usage_complete = false;
    gw_exchange_finish(ex, 499, "client_closed");
}

static void exchange_plan(gw_exchange_t *ex);
static void on_prefix_known(void *arg);

void gw_proxy_handle(gw_worker_t *w, struct evhttp_request *req, gw_endpoint_t endpoint)
{
    gw_key_info_t key;
    memset(&key, 0, sizeof key);
    if (!authenticate(w, req, &key))
        return;
    gw_exchange_t *ex = gw_exchange_new(w, req, endpoint);
    ex->key = key;
    snprintf(ex->rec.model_requested, sizeof ex->rec.model_requested, "%s", "");
    gw_record_nothing_used(&ex->rec);

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > (size_t)w->server->cfg->max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "Request body is %zu bytes; the limit is %d.", n,
                 w->server->cfg->max_body_bytes);
        gw_exchange_fail(ex, 413, "invalid_request_error", "request_too_large", NULL, msg);
        return;
    }
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    if (!gw_utf8_valid(bytes, n)) {
        gw_exchange_fail(ex, 400, "invalid_request_error", "invalid_utf8", NULL,
                         "The request body is not valid UTF-8.");
        return;
    }
    ex->body = cJSON_ParseWithLength(bytes, n);
    if (!ex->body) {
        gw_exchange_fail(ex, 400, "invalid_request_error", "invalid_json", NULL,
                         "We could not parse the JSON body of your request.");
        return;
    }
    char param[64], msg[256];
    if (!body_validate(ex->body, endpoint, param, sizeof param, msg, sizeof msg)) {
        gw_exchange_fail(ex, 400, "invalid_request_error", "invalid_value", param[0] ? param : NULL,
                         msg);
        return;
    }
    const char *model = cJSON_GetObjectItemCaseSensitive(ex->body, "model")->valuestring;
    snprintf(ex->rec.model_requested, sizeof ex->rec.model_requested, "%s", model);
    ex->model = gw_config_model(w->server->cfg, model);
    if (!ex->model) {
        snprintf(msg, sizeof msg, "The model '%s' does not exist.", model);
        gw_exchange_fail(ex, 404, "invalid_request_error", "model_not_found", "model", msg);
        return;
    }
    ex->model_index = (int)(ex->model - w->server->cfg->models);
    if (!gw_key_allows_model(&ex->key, model)) {
        snprintf(msg, sizeof msg, "This API key may not use the model '%s'.", model);
        gw_exchange_fail(ex, 403, "permission_error", "model_not_allowed", "model", msg);
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
        gw_exchange_fail(ex, 503, "api_error", "usage_ledger_full", NULL,
                         "The gateway cannot record usage right now (its usage journal is full). "
                         "Retry later.");
        return;
    }
    evhttp_connection_set_closecb(ex->client_conn, on_client_close, ex);
    gw_exchange_watch_client(ex);
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
    plan_model(ex, ex->model, ex->pfx.predicted ? ex->pfx.hit_tokens : NULL, &ex->plan);
    snprintf(ex->rec.route_explain, sizeof ex->rec.route_explain, "%s", ex->plan.explain);
    if (ex->plan.n > 0) {
        char err[200];
        const char *hv =
            evhttp_find_header(evhttp_request_get_input_headers(ex->client), GW_HEDGE_HEADER);
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
    governance_admit(ex); /* then the response cache, then gw_attempt_next() */
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
            gw_attempt_cancel_loser(ex->hedge);
        gw_attempt_cancel_current(ex);
        if (ex->rec.attempts == 0)
            gw_record_nothing_used(&ex->rec);
        else
            ex->rec.usage_complete = false;
        gw_exchange_fail(ex, 503, "api_error", "gateway_shutting_down", NULL,
                         "The gateway is shutting down.");
    }
}
