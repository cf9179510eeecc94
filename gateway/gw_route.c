/* gw_route: the adapter between the gateway and router/: builds candidates
 * from the config and shared statistics, reads the request's needs from its
 * headers, asks rt_route_decide, keeps the explanation for the usage row,
 * learns from each attempt, and serves GET /route/explain on the admin port.
 *
 * Statistics are one table shared by all workers behind one mutex (not one per
 * worker): a circuit breaker per worker would need workers x N failures to
 * open and each worker would learn latencies alone; the lock is held for a
 * few microseconds per plan and per attempt, no I/O under it. */
#include "gw_route.h"

#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_clock.h"
#include "gw_http.h"
#include "gw_server.h"
#include "rt_route.h"
#include "tg_log.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rt_stats_t stats[GW_MAX_MODELS][GW_MAX_ROUTES]; /* zero = closed, nothing measured */
static double out_avg[GW_MAX_MODELS];                  /* decayed completion tokens per model */
static uint32_t out_n[GW_MAX_MODELS];
static _Atomic uint64_t seq; /* seeds near-tie draws and round-robin */

/* The gateway's one clock (gw_clock): the proxy's instants come from it, so
 * durations measured here against them are right under a test clock too. */
static int64_t clock_us(void)
{
    return gw_clock_now_us();
}

static void breaker_cfg(const gw_config_t *cfg, rt_breaker_cfg_t *bc)
{
    rt_breaker_defaults(bc);
    bc->failures = cfg->breaker_failures;
    bc->cooldown_us = (int64_t)cfg->breaker_cooldown_ms * 1000;
}

static rt_policy_t model_policy(const gw_config_t *cfg, const gw_model_cfg_t *m)
{
    rt_policy_t p = RT_POLICY_CHEAPEST;
    if (rt_policy_parse(m->policy[0] ? m->policy : cfg->route_policy, &p) != 0)
        p = RT_POLICY_CHEAPEST; /* unreachable: the config parser checked the name */
    return p;
}

/* Fills cands from the model's routes; the caller holds mu. predicted: the
 * prefix index's hit tokens per route (NULL = the configured priors). */
static int candidates(const gw_config_t *cfg, int mi, rt_candidate_t *cands,
                      const int64_t *predicted, int64_t prompt_tokens)
{
    const gw_model_cfg_t *m = &cfg->models[mi];
    int n = m->n_routes < RT_MAX_CANDIDATES ? m->n_routes : RT_MAX_CANDIDATES;
    for (int i = 0; i < n; i++) {
        const gw_route_cfg_t *r = &m->routes[i];
        const gw_provider_cfg_t *p = &cfg->providers[r->provider];
        cands[i] = (rt_candidate_t){p->name,
                                    r->upstream_model,
                                    r->context_tokens,
                                    p->kind == GW_PROVIDER_ENGINE,
                                    p->cache_hit_percent * 100,
                                    (double)p->expect_ttft_ms,
                                    (double)p->expect_tokens_per_s,
                                    &stats[mi][i]};
        if (predicted) { /* the share of this prompt the index expects to hit there */
            int64_t hit = predicted[i] < prompt_tokens ? predicted[i] : prompt_tokens;
            cands[i].cache_hit_bp =
                prompt_tokens > 0 && hit > 0 ? (int)(hit * 10000 / prompt_tokens) : 0;
        }
    }
    return n;
}

#define PFX_EXPLAIN_ROOM 160 /* kept free in route_explain for the prefix notes */

/* Puts the prediction in front of the explanation:
 * {"pfx":{"<provider>":<hit tokens>,...},<the router's explanation>}. */
static void explain_prefix(const gw_config_t *cfg, const gw_model_cfg_t *m,
                           const int64_t *predicted, char *explain, size_t len)
{
    char head[PFX_EXPLAIN_ROOM];
    size_t pos = (size_t)snprintf(head, sizeof head, "{\"pfx\":{");
    int shown = 0;
    for (int i = 0; i < m->n_routes && i < RT_MAX_CANDIDATES; i++) {
        char name[80], item[120];
        size_t nl = 0; /* the name as a JSON string body: quotes, backslashes, controls escaped */
        for (const char *c = cfg->providers[m->routes[i].provider].name; *c && nl < 70; c++) {
            unsigned char ch = (unsigned char)*c;
            if (ch == '"' || ch == '\\')
                name[nl++] = '\\';
            if (ch < 0x20)
                ch = '?';
            name[nl++] = (char)ch;
        }
        name[nl] = '\0';
        int k = snprintf(item, sizeof item, "%s\"%s\":%lld", shown ? "," : "", name,
                         (long long)predicted[i]);
        if (k < 0 || pos + (size_t)k + 3 >= sizeof head - 40)
            break; /* room is kept for the billing note (gw_prefix) */
        memcpy(head + pos, item, (size_t)k);
        pos += (size_t)k;
        shown++;
    }
    head[pos++] = '}';
    head[pos] = '\0';
    const char *rest = explain[0] == '{' ? explain + 1 : "}";
    char out[512];
    snprintf(out, sizeof out, "%s%s%s", head, rest[0] == '}' ? "" : ",", rest);
    snprintf(explain, len, "%s", out);
}

static void plan_fail(gw_route_plan_t *plan, int status, const char *type, const char *code,
                      const char *param, const char *message)
{
    plan->n = 0;
    plan->status = status;
    snprintf(plan->type, sizeof plan->type, "%s", type);
    snprintf(plan->code, sizeof plan->code, "%s", code);
    snprintf(plan->param, sizeof plan->param, "%s", param ? param : "");
    snprintf(plan->message, sizeof plan->message, "%s", message);
}

/* Fails the plan with the 400 for a bad value of `header`; returns -1. */
static int header_fail(gw_route_plan_t *plan, const char *header, const char *err)
{
    char msg[512];
    snprintf(msg, sizeof msg, "Header %s %s.", header, err);
    plan_fail(plan, 400, "invalid_request_error", "invalid_header", header, msg);
    return -1;
}

/* Reads a request's own provider list (allow or deny) from header `name`
 * into *out (pointing into the headers; NULL when absent). Each name must be
 * a provider of this gateway: a typo in a deny list must not pass silently.
 * Returns 0, or -1 with the plan's 400 naming the header. */
static int read_provider_header(const gw_config_t *cfg, const struct evkeyvalq *h,
                                const char *name, const char **out, gw_route_plan_t *plan)
{
    char err[400];
    const char *v = evhttp_find_header(h, name);
    *out = NULL;
    if (!v)
        return 0;
    if (rt_parse_providers(v, err, sizeof err) != 0)
        return header_fail(plan, name, err);
    for (const char *p = v; *p;) {
        size_t len = strcspn(p, ",");
        bool known = false;
        for (int i = 0; i < cfg->n_providers && !known; i++)
            known = strlen(cfg->providers[i].name) == len &&
                    !memcmp(cfg->providers[i].name, p, len);
        if (!known) {
            char known_list[200] = "";
            size_t used = 0;
            for (int i = 0; i < cfg->n_providers; i++) {
                int w = snprintf(known_list + used, sizeof known_list - used, "%s%s",
                                 i ? ", " : "", cfg->providers[i].name);
                if (w < 0 || (size_t)w >= sizeof known_list - used)
                    break;
                used += (size_t)w;
            }
            snprintf(err, sizeof err, "names provider '%.*s', which this gateway does not have "
                     "(it has: %s)", (int)(len > 63 ? 63 : len), p, known_list);
            return header_fail(plan, name, err);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    *out = v;
    return 0;
}

/* Fills rq's needs and rules. Needs (latency target, cost ceiling,
 * preference) come from the request's headers, else the key's defaults, else
 * the model's (its policy is its preference); a header value "none" clears a
 * default latency target or ceiling. Rules (private, the key's allow and
 * deny lists) always apply, and the request's own x-tollgate-allow-providers
 * / x-tollgate-deny-providers only narrow them further. `key` and `h` may be
 * NULL. Returns 0, or -1 with the plan's 400 error naming the header. */
static int read_needs(const gw_config_t *cfg, const gw_model_cfg_t *m, const gw_key_info_t *key,
                      const struct evkeyvalq *h, rt_request_t *rq, gw_route_plan_t *plan)
{
    char err[200];
    /* the model's defaults, then the key's */
    if (m->latency_target_ms) {
        rq->latency_target_ms = m->latency_target_ms;
        rq->latency_from = RT_FROM_MODEL;
    }
    if (m->has_max_cost) {
        rq->has_max_cost = true;
        rq->max_cost = m->max_cost_pico;
        rq->cost_from = RT_FROM_MODEL;
    }
    /* the benchmark baselines (round_robin, list_price) are not overridden */
    bool overridable = rq->policy <= RT_POLICY_BALANCED || rq->policy == RT_POLICY_ORDERED;
    if (key) {
        rq->team_private = key->team_private;
        rq->key_private = key->key_private;
        rq->allow = key->allow_providers;
        rq->deny = key->deny_providers;
        if (key->latency_target_ms > 0) {
            rq->latency_target_ms = key->latency_target_ms;
            rq->latency_from = RT_FROM_KEY;
        }
        if (key->max_cost_pico >= 0) {
            rq->has_max_cost = true;
            rq->max_cost = key->max_cost_pico;
            rq->cost_from = RT_FROM_KEY;
        }
        rt_policy_t p;
        if (key->route_preference[0] &&
            rt_parse_preference(key->route_preference, &p, err, sizeof err) == 0 && overridable) {
            rq->policy = p;
            rq->preference_from = RT_FROM_KEY;
        }
    }
    if (h) {
        const char *v = evhttp_find_header(h, "x-tollgate-latency-target-ms");
        if (v && !strcmp(v, "none")) {
            rq->latency_target_ms = 0;
        } else if (v) {
            if (rt_parse_latency_ms(v, &rq->latency_target_ms, err, sizeof err) != 0)
                return header_fail(plan, "x-tollgate-latency-target-ms", err);
            rq->latency_from = RT_FROM_REQUEST;
        }
        v = evhttp_find_header(h, "x-tollgate-max-cost");
        if (v && !strcmp(v, "none")) {
            rq->has_max_cost = false;
        } else if (v) {
            if (rt_parse_cost(v, &rq->max_cost, err, sizeof err) != 0)
                return header_fail(plan, "x-tollgate-max-cost", err);
            rq->has_max_cost = true;
            rq->cost_from = RT_FROM_REQUEST;
        }
        v = evhttp_find_header(h, "x-tollgate-preference");
        if (v) {
            rt_policy_t p;
            if (rt_parse_preference(v, &p, err, sizeof err) != 0)
                return header_fail(plan, "x-tollgate-preference", err);
            if (overridable) {
                rq->policy = p;
                rq->preference_from = RT_FROM_REQUEST;
            }
        }
        if (read_provider_header(cfg, h, "x-tollgate-allow-providers", &rq->req_allow, plan) ||
            read_provider_header(cfg, h, "x-tollgate-deny-providers", &rq->req_deny, plan))
            return -1;
    }
    /* ordered (the default) cannot honour a need: a stated need is decided
     * by cost, so that it is never silently ignored */
    if (rq->policy == RT_POLICY_ORDERED && (rq->latency_target_ms || rq->has_max_cost))
        rq->policy = RT_POLICY_CHEAPEST;
    return 0;
}

static int64_t expected_output(int mi)
{
    return out_n[mi] ? (int64_t)(out_avg[mi] + 0.5) : 0;
}

void gw_route_plan(gw_worker_t *w, const gw_route_request_t *rq, gw_route_plan_t *plan)
{
    const gw_config_t *cfg = w->server->cfg;
    memset(plan, 0, sizeof *plan);
    rt_breaker_cfg_t bc;
    breaker_cfg(cfg, &bc);
    rt_request_t r = {0};
    r.now_us = rq->now_us;
    r.prompt_tokens = rq->prompt_tokens;
    r.prompt_exact = rq->prompt_exact;
    r.max_tokens = rq->max_tokens;
    r.stream = rq->stream;
    r.policy = model_policy(cfg, rq->model);
    r.seed = atomic_fetch_add(&seq, 1);
    r.percentile = cfg->route_percentile;
    r.target_margin_pct = cfg->route_target_margin_pct;
    r.breaker = &bc;
    if (read_needs(cfg, rq->model, rq->key, rq->headers, &r, plan) != 0)
        return;
    plan->latency_target_ms = r.latency_target_ms;
    const pr_book_t *book = gw_pricebook_acquire(w->server->prices);
    rt_candidate_t cands[RT_MAX_CANDIDATES];
    rt_decision_t d;
    pthread_mutex_lock(&mu);
    r.expected_output = expected_output(rq->model_index);
    int n = candidates(cfg, rq->model_index, cands, rq->predicted_hits, rq->prompt_tokens);
    rt_route_decide(&r, cands, n, book, &d);
    if (d.n > 0)
        rt_stats_take(&stats[rq->model_index][d.order[0]], r.now_us);
    pthread_mutex_unlock(&mu);
    gw_pricebook_release(w->server->prices, book);
    if (rq->predicted_hits) {
        rt_explain_compact(&d, plan->explain, sizeof plan->explain - PFX_EXPLAIN_ROOM);
        explain_prefix(cfg, rq->model, rq->predicted_hits, plan->explain, sizeof plan->explain);
    } else {
        rt_explain_compact(&d, plan->explain, sizeof plan->explain);
    }
    if (d.n == 0) {
        const char *type = d.status == 503   ? "api_error"
                           : d.status == 403 ? "permission_error"
                                             : "invalid_request_error";
        plan_fail(plan, d.status, type, d.code, d.param[0] ? d.param : NULL, d.message);
        return;
    }
    for (int i = 0; i < d.n; i++)
        plan->routes[plan->n++] = d.order[i];
}

void gw_route_observe(gw_worker_t *w, const gw_route_outcome_t *o)
{
    const gw_config_t *cfg = w->server->cfg;
    if (o->model_index < 0 || o->model_index >= cfg->n_models || o->route < 0 ||
        o->route >= cfg->models[o->model_index].n_routes)
        return;
    if (o->cancelled) {
        pthread_mutex_lock(&mu);
        if (o->first_choice)
            rt_stats_release(&stats[o->model_index][o->route]);
        rt_stats_observe_late(&stats[o->model_index][o->route], o->late_us);
        pthread_mutex_unlock(&mu);
        return;
    }
    int64_t now = clock_us();
    rt_observation_t ob = {0};
    ob.now_us = now;
    ob.ok = o->ok;
    ob.http_status = o->http_status;
    /* the proxy keeps the last 429's Retry-After for the exchange: only a 429
     * attempt's own value is this provider's */
    if (o->http_status == 429 && o->retry_after && *o->retry_after) {
        long long s = strtoll(o->retry_after, NULL, 10); /* delta-seconds; a date reads as 0 */
        ob.retry_after_s = s > 0 ? s : 0;
    }
    ob.stream = o->stream;
    ob.ttft_us = o->stream && o->client_first_byte_at_us > o->sent_at_us
                     ? o->client_first_byte_at_us - o->sent_at_us
                     : 0;
    ob.total_us = o->sent_at_us > 0 && now > o->sent_at_us ? now - o->sent_at_us : 0;
    ob.completion_tokens = o->completion_tokens;
    ob.first_choice = o->first_choice;
    rt_breaker_cfg_t bc;
    breaker_cfg(cfg, &bc);
    pthread_mutex_lock(&mu);
    rt_stats_t *s = &stats[o->model_index][o->route];
    rt_breaker_state_t before = s->state;
    rt_stats_observe(s, &bc, &ob);
    rt_breaker_state_t after = s->state;
    if (o->ok && o->completion_tokens > 0) {
        int mi = o->model_index;
        out_avg[mi] = out_n[mi] ? out_avg[mi] + 0.2 * ((double)o->completion_tokens - out_avg[mi])
                                : (double)o->completion_tokens;
        out_n[mi]++;
    }
    pthread_mutex_unlock(&mu);
    if (before != after) {
        const gw_model_cfg_t *m = &cfg->models[o->model_index];
        tg_warn("route: provider %s for model %s: circuit %s -> %s",
                cfg->providers[m->routes[o->route].provider].name, m->name,
                rt_breaker_state_name(before), rt_breaker_state_name(after));
    }
}

/* ---- admin: GET /route/explain ------------------------------------------- */

static bool query_int(const struct evkeyvalq *q, const char *name, int64_t *out, bool required,
                      struct evhttp_request *req)
{
    const char *v = evhttp_find_header(q, name);
    if (!v) {
        if (required)
            gw_http_send_error(req, 400, "invalid_request_error", "missing_parameter", name,
                               "Query parameter %s is required (a non-negative integer).", name);
        return !required;
    }
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < 0 || x > 1000000000) {
        gw_http_send_error(req, 400, "invalid_request_error", "invalid_parameter", name,
                           "Query parameter %s must be a non-negative integer.", name);
        return false;
    }
    *out = x;
    return true;
}

static cJSON *eval_json(const gw_config_t *cfg, const gw_model_cfg_t *m, int i,
                        const rt_eval_t *e, const rt_stats_t *s, const rt_decision_t *d)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "provider", e->provider);
    cJSON_AddStringToObject(c, "upstream_model", m->routes[i].upstream_model);
    cJSON_AddNumberToObject(c, "context_tokens", (double)m->routes[i].context_tokens);
    cJSON_AddBoolToObject(c, "in_house", cfg->providers[m->routes[i].provider].kind ==
                                             GW_PROVIDER_ENGINE);
    if (e->cost_known) {
        char amount[64], pico[48];
        pr_pico_format(e->cost, e->minor, amount, sizeof amount);
        pr_pico_format_int(e->cost, pico, sizeof pico);
        cJSON_AddStringToObject(c, "expected_cost", amount);
        cJSON_AddStringToObject(c, "expected_cost_pico", pico);
        cJSON_AddStringToObject(c, "currency", e->currency);
        if (e->window_id)
            cJSON_AddNumberToObject(c, "discount_window_id", (double)e->window_id);
        else
            cJSON_AddNullToObject(c, "discount_window_id");
    } else {
        cJSON_AddNullToObject(c, "expected_cost");
    }
    if (e->list_price >= 0)
        cJSON_AddNumberToObject(c, "list_price_micro_per_1m", (double)e->list_price);
    cJSON_AddNumberToObject(c, "expected_ttft_ms", (double)(int64_t)(e->ttft_ms + 0.5));
    cJSON_AddNumberToObject(c, "expected_total_ms", (double)(int64_t)(e->total_ms + 0.5));
    cJSON_AddNumberToObject(c, "latency_ms", (double)(int64_t)(e->latency_ms + 0.5));
    if (e->dropped)
        cJSON_AddStringToObject(c, "dropped", e->dropped);
    else
        cJSON_AddNullToObject(c, "dropped");
    int rank = -1;
    for (int k = 0; k < d->n; k++)
        if (d->order[k] == i)
            rank = k + 1;
    if (rank > 0) {
        cJSON_AddNumberToObject(c, "rank", rank);
        cJSON_AddNumberToObject(c, "score", (double)e->score);
    }
    cJSON *h = cJSON_AddObjectToObject(c, "state");
    cJSON_AddStringToObject(h, "circuit", rt_breaker_state_name(s->state));
    cJSON_AddNumberToObject(h, "attempts", (double)s->attempts);
    cJSON_AddNumberToObject(h, "error_rate", s->err_rate);
    cJSON_AddNumberToObject(h, "rate_429", s->rate_429);
    cJSON_AddNumberToObject(h, "in_flight", s->in_flight);
    cJSON_AddNumberToObject(h, "ttft_samples", s->ttft_n);
    cJSON_AddNumberToObject(h, "tps_samples", s->tps_n);
    return c;
}

void gw_route_explain_http(gw_server_t *srv, struct evhttp_request *req)
{
    const gw_config_t *cfg = srv->cfg;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && evhttp_parse_query_str(query, &q) != 0) {
        gw_http_send_error(req, 400, "invalid_request_error", "invalid_query", NULL,
                           "The query string could not be parsed.");
        return;
    }
    const char *model = evhttp_find_header(&q, "model");
    const gw_model_cfg_t *m = model ? gw_config_model(cfg, model) : NULL;
    int64_t prompt = 0, max_tokens = 0, stream = 0;
    if (!model) {
        gw_http_send_error(req, 400, "invalid_request_error", "missing_parameter", "model",
                           "Query parameter model is required.");
    } else if (!m) {
        gw_http_send_error(req, 404, "invalid_request_error", "model_not_found", "model",
                           "The model '%s' does not exist.", model);
    } else if (query_int(&q, "prompt_tokens", &prompt, true, req) &&
               query_int(&q, "max_tokens", &max_tokens, false, req) &&
               query_int(&q, "stream", &stream, false, req)) {
        /* the needs come as query parameters, parsed by the same rules as the headers */
        struct evkeyvalq needs;
        TAILQ_INIT(&needs);
        const char *v;
        if ((v = evhttp_find_header(&q, "latency_target_ms")))
            evhttp_add_header(&needs, "x-tollgate-latency-target-ms", v);
        if ((v = evhttp_find_header(&q, "max_cost")))
            evhttp_add_header(&needs, "x-tollgate-max-cost", v);
        if ((v = evhttp_find_header(&q, "preference")))
            evhttp_add_header(&needs, "x-tollgate-preference", v);
        if ((v = evhttp_find_header(&q, "allow_providers")))
            evhttp_add_header(&needs, "x-tollgate-allow-providers", v);
        if ((v = evhttp_find_header(&q, "deny_providers")))
            evhttp_add_header(&needs, "x-tollgate-deny-providers", v);
        int mi = (int)(m - cfg->models);
        rt_breaker_cfg_t bc;
        breaker_cfg(cfg, &bc);
        rt_request_t r = {0};
        r.now_us = clock_us();
        r.prompt_tokens = prompt;
        r.prompt_exact = true;
        r.max_tokens = max_tokens;
        r.stream = stream != 0;
        r.policy = model_policy(cfg, m);
        r.seed = atomic_load(&seq);
        r.percentile = cfg->route_percentile;
        r.target_margin_pct = cfg->route_target_margin_pct;
        r.breaker = &bc;
        gw_route_plan_t err;
        memset(&err, 0, sizeof err);
        if (read_needs(cfg, m, NULL, &needs, &r, &err) != 0) {
            gw_http_send_error(req, 400, err.type, err.code, err.param, "%s", err.message);
        } else {
            const pr_book_t *book = gw_pricebook_acquire(srv->prices);
            rt_candidate_t cands[RT_MAX_CANDIDATES];
            rt_stats_t snap[RT_MAX_CANDIDATES];
            rt_decision_t d;
            pthread_mutex_lock(&mu);
            r.expected_output = expected_output(mi);
            int n = candidates(cfg, mi, cands, NULL, prompt);
            rt_route_decide(&r, cands, n, book, &d);
            for (int i = 0; i < n; i++)
                snap[i] = *cands[i].stats;
            pthread_mutex_unlock(&mu);
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "model", m->name);
            cJSON_AddStringToObject(root, "policy", rt_policy_name(d.policy));
            cJSON_AddNumberToObject(root, "prompt_tokens", (double)prompt);
            cJSON_AddNumberToObject(root, "max_tokens", (double)max_tokens);
            cJSON_AddNumberToObject(root, "expected_output_tokens",
                                    (double)(r.expected_output ? r.expected_output
                                             : max_tokens ? max_tokens : 256));
            cJSON_AddBoolToObject(root, "stream", r.stream);
            cJSON *nd = cJSON_AddObjectToObject(root, "needs");
            if (d.latency_target_ms) {
                cJSON_AddNumberToObject(nd, "latency_target_ms", (double)d.latency_target_ms);
                cJSON_AddStringToObject(nd, "latency_target_from",
                                        rt_need_from_name(d.latency_from));
            }
            if (d.has_max_cost) {
                char amount[64];
                pr_pico_format(d.max_cost, 0, amount, sizeof amount);
                cJSON_AddStringToObject(nd, "max_cost", amount);
                cJSON_AddStringToObject(nd, "max_cost_from", rt_need_from_name(d.cost_from));
            }
            if (d.preference_from)
                cJSON_AddStringToObject(nd, "preference_from",
                                        rt_need_from_name(d.preference_from));
            cJSON *dec = cJSON_AddObjectToObject(root, "decision");
            if (d.n > 0) {
                cJSON_AddStringToObject(dec, "chosen", d.evals[d.chosen].provider);
                if (d.runner_up >= 0)
                    cJSON_AddStringToObject(dec, "runner_up", d.evals[d.runner_up].provider);
                else
                    cJSON_AddNullToObject(dec, "runner_up");
                cJSON_AddStringToObject(dec, "why", d.why ? d.why : "");
            } else {
                cJSON_AddNullToObject(dec, "chosen");
                cJSON_AddNumberToObject(dec, "status", d.status);
                cJSON_AddStringToObject(dec, "code", d.code);
                cJSON_AddStringToObject(dec, "message", d.message);
            }
            cJSON *arr = cJSON_AddArrayToObject(root, "candidates");
            for (int i = 0; i < n; i++)
                cJSON_AddItemToArray(arr, eval_json(cfg, m, i, &d.evals[i], &snap[i], &d));
            gw_http_send_json(req, 200, root);
            cJSON_Delete(root);
            gw_pricebook_release(srv->prices, book);
        }
        evhttp_clear_headers(&needs);
    }
    evhttp_clear_headers(&q);
}
