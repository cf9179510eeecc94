/* gw_prefix: the prefix index on the request path (gw_prefix.h): one Redis
 * connection per worker loop (gw_redis, its own timeout), the lookup before
 * routing, and at settle the prediction into the usage record, the optional
 * billing of the prediction, accuracy metrics and the record of the blocks.
 * Scripts and key layout: gw_prefix_lua.c; design: docs/cache.md. */
#include "gw_prefix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_metrics.h"
#include "gw_prefix_lua.h"
#include "gw_redis.h"
#include "gw_server.h"
#include "tg_log.h"

#define PFX_MAX_WORKERS 256
#define STARTUP_WINDOW_NS 2000000000LL /* a worker's first 2 s: wait for the first connect */

typedef struct pfx_worker {
    gw_redis_t *redis;
    int64_t created_ns;
    int64_t last_warn_ns; /* bad replies are logged at most once a second */
} pfx_worker_t;

static pfx_worker_t *g_workers[PFX_MAX_WORKERS]; /* slot i: worker i's thread only */

struct gw_prefix_lookup {
    pfx_worker_t *pw;
    gw_prefix_req_t *pfx;
    gw_prefix_cb cb;
    void *arg;
    const gw_config_t *cfg;
    gw_redis_ticket_t *rt;     /* the command in flight */
    struct event *wait_timer;  /* startup: polls for the first connect */
    int64_t started_ns;
    int n_routes;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The calling worker's prefix state (created, and its connection started,
 * at first use); NULL when the index is off. */
static pfx_worker_t *pfx_worker(gw_worker_t *w)
{
    const gw_config_t *cfg = w->server->cfg;
    if (!cfg->prefix_index || !cfg->redis || w->index < 0 || w->index >= PFX_MAX_WORKERS)
        return NULL;
    pfx_worker_t *pw = g_workers[w->index];
    if (pw)
        return pw;
    pw = calloc(1, sizeof *pw);
    if (!pw)
        abort();
    pw->created_ns = mono_ns();
    char err[256];
    pw->redis = gw_redis_new(w->base, cfg->redis, cfg->prefix_timeout_ms, gw_prefix_lua,
                             GW_PFX_LUA_COUNT, err, sizeof err);
    if (!pw->redis)
        tg_error("prefix index: %s", err);
    g_workers[w->index] = pw;
    return pw;
}

size_t gw_prefix_max_blocks(gw_worker_t *w, int mi)
{
    const gw_config_t *cfg = w->server->cfg;
    if (!cfg->prefix_index || !cfg->redis || mi < 0 || mi >= cfg->n_models ||
        !w->server->model_tokenizer[mi])
        return 0;
    return (size_t)cfg->prefix_max_blocks;
}

static void lookup_free(gw_prefix_lookup_t *l)
{
    if (l->wait_timer)
        event_free(l->wait_timer);
    free(l);
}

/* Cancels the lookup in flight, if any: its callback will not run. */
static void lookup_cancel(gw_prefix_req_t *pfx)
{
    gw_prefix_lookup_t *l = pfx->pending;
    if (!l)
        return;
    if (l->rt)
        gw_redis_cancel(l->rt);
    lookup_free(l);
    pfx->pending = NULL;
}

/* Ends a lookup: counts it, detaches it from the request and calls back. */
static void lookup_done(gw_prefix_lookup_t *l, gw_metrics_pfx_t outcome, bool round_trip)
{
    gw_metrics_prefix_lookup(outcome, round_trip ? (double)(mono_ns() - l->started_ns) / 1e9 : -1);
    l->pfx->pending = NULL;
    gw_prefix_cb cb = l->cb;
    void *arg = l->arg;
    lookup_free(l);
    cb(arg);
}

static void on_lookup_reply(redisReply *reply, void *arg)
{
    gw_prefix_lookup_t *l = arg;
    l->rt = NULL;
    gw_prefix_req_t *pfx = l->pfx;
    if (!reply) { /* timeout, lost connection or a script error (logged by gw_redis) */
        bool late = mono_ns() - l->started_ns >= (int64_t)l->cfg->prefix_timeout_ms * 1000000;
        lookup_done(l, late ? GW_PFX_BYPASS_TIMEOUT : GW_PFX_BYPASS_ERROR, true);
        return;
    }
    int64_t blocks[GW_MAX_ROUTES];
    char err[160];
    if (gw_prefix_reply_parse(reply, l->n_routes, pfx->blocks.n, blocks, err, sizeof err) != 0) {
        int64_t now = mono_ns();
        if (now - l->pw->last_warn_ns > 1000000000) {
            l->pw->last_warn_ns = now;
            tg_warn("prefix index: Redis answered a lookup with %s: no prediction", err);
        }
        lookup_done(l, GW_PFX_BYPASS_ERROR, true);
        return;
    }
    bool any = false;
    for (int r = 0; r < l->n_routes; r++) {
        int64_t t = blocks[r] * 64;
        pfx->hit_tokens[r] = t < pfx->prompt_tokens ? t : pfx->prompt_tokens;
        any |= blocks[r] > 0;
    }
    pfx->predicted = true;
    lookup_done(l, any ? GW_PFX_HIT : GW_PFX_MISS, true);
}

/* Sends the lookup. Returns false when Redis is not connected. */
static bool lookup_send(gw_prefix_lookup_t *l)
{
    gw_prefix_req_t *pfx = l->pfx;
    const gw_model_cfg_t *m = &l->cfg->models[pfx->model_index];
    char ids[GW_MAX_ROUTES][13];
    for (int r = 0; r < l->n_routes; r++)
        gw_prefix_route_id(l->cfg->providers[m->routes[r].provider].name,
                           m->routes[r].upstream_model, ids[r]);
    gw_prefix_args_t a;
    gw_prefix_args_lookup(&a, l->cfg->redis_namespace, pfx->team, (const char(*)[13])ids,
                          l->n_routes, pfx->blocks.hash, pfx->blocks.n);
    l->started_ns = mono_ns();
    l->rt = gw_redis_eval(l->pw->redis, GW_PFX_LUA_LOOKUP, a.argc, a.argv, a.lens,
                          on_lookup_reply, l);
    gw_prefix_args_free(&a);
    return l->rt != NULL;
}

/* Startup only: polls for the worker's first connect, up to the timeout. */
static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_prefix_lookup_t *l = arg;
    if (gw_redis_connected(l->pw->redis)) {
        if (lookup_send(l))
            return;
    } else if (mono_ns() - l->started_ns < (int64_t)l->cfg->prefix_timeout_ms * 1000000) {
        struct timeval tv = {0, 1000};
        evtimer_add(l->wait_timer, &tv);
        return;
    }
    lookup_done(l, GW_PFX_BYPASS_DOWN, false);
}

bool gw_prefix_lookup(gw_worker_t *w, gw_prefix_req_t *pfx, int mi, int64_t team,
                      int64_t prompt_tokens, bool exact, gw_prefix_cb cb, void *arg)
{
    pfx->model_index = mi;
    pfx->team = team;
    pfx->prompt_tokens = prompt_tokens;
    pfx->predicted = false;
    if (!exact || gw_prefix_max_blocks(w, mi) == 0)
        return false; /* no tokenizer for this model, or the index is off */
    const gw_config_t *cfg = w->server->cfg;
    int n_routes = cfg->models[mi].n_routes;
    if (pfx->blocks.n == 0 && prompt_tokens >= 64)
        return false; /* a completions batch or a mix of strings and ids: no one prefix */
    if (pfx->blocks.n == 0) { /* under 64 tokens: no provider can hit, no need to ask */
        memset(pfx->hit_tokens, 0, sizeof pfx->hit_tokens);
        pfx->predicted = true;
        gw_metrics_prefix_lookup(GW_PFX_SHORT, -1);
        return false;
    }
    pfx_worker_t *pw = pfx_worker(w);
    if (!pw || !pw->redis) {
        gw_metrics_prefix_lookup(GW_PFX_BYPASS_DOWN, -1);
        return false;
    }
    gw_prefix_lookup_t *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->pw = pw;
    l->pfx = pfx;
    l->cb = cb;
    l->arg = arg;
    l->cfg = cfg;
    l->n_routes = n_routes;
    if (gw_redis_connected(pw->redis)) {
        if (lookup_send(l)) {
            pfx->pending = l;
            return true;
        }
    } else if (mono_ns() - pw->created_ns < STARTUP_WINDOW_NS) {
        /* the worker's connection is still being made: wait for it, within
         * the lookup's own timeout */
        l->started_ns = mono_ns();
        l->wait_timer = evtimer_new(w->base, on_wait, l);
        if (!l->wait_timer)
            abort();
        struct timeval tv = {0, 1000};
        evtimer_add(l->wait_timer, &tv);
        pfx->pending = l;
        return true;
    }
    free(l);
    gw_metrics_prefix_lookup(GW_PFX_BYPASS_DOWN, -1);
    return false;
}

bool gw_prefix_usage_reports_hits(const cJSON *usage)
{
    if (!cJSON_IsObject(usage))
        return false;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(usage, "prompt_cache_hit_tokens")))
        return true;
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    return cJSON_IsObject(pd) &&
           cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(pd, "cached_tokens"));
}

static void on_record_reply(redisReply *reply, void *arg)
{
    (void)reply; /* fire-and-forget: a lost record only costs a later prediction */
    (void)arg;
}

/* Records the prompt's blocks for the route that served it. */
static void record_blocks(gw_worker_t *w, const gw_prefix_req_t *pfx, const gw_route_cfg_t *r,
                          int ttl_s, size_t known)
{
    const gw_config_t *cfg = w->server->cfg;
    pfx_worker_t *pw = pfx_worker(w);
    if (!pw || !gw_redis_connected(pw->redis)) {
        gw_metrics_prefix_record(0);
        return;
    }
    char id[13];
    gw_prefix_route_id(cfg->providers[r->provider].name, r->upstream_model, id);
    gw_prefix_args_t a;
    gw_prefix_args_record(&a, cfg->redis_namespace, pfx->team, id, (int64_t)ttl_s * 1000, known,
                          pfx->blocks.hash, pfx->blocks.n);
    gw_redis_ticket_t *t = gw_redis_eval(pw->redis, GW_PFX_LUA_RECORD, a.argc, a.argv, a.lens,
                                         on_record_reply, NULL);
    gw_prefix_args_free(&a);
    gw_metrics_prefix_record(t != NULL);
}

/* Puts "cache_billed":"predicted" first in the row's route_explain (room for
 * it is kept by gw_route when a prediction exists). */
static void explain_billed(gw_usage_record_t *rec)
{
    static const char note[] = "\"cache_billed\":\"predicted\"";
    const char *rest = rec->route_explain[0] == '{' ? rec->route_explain + 1 : "}";
    char out[sizeof rec->route_explain];
    int n = snprintf(out, sizeof out, "{%s%s%s", note, rest[0] == '}' ? "" : ",", rest);
    if (n > 0 && (size_t)n < sizeof out)
        memcpy(rec->route_explain, out, (size_t)n + 1);
}

void gw_prefix_settle(gw_worker_t *w, gw_prefix_req_t *pfx, int mi, int route, int status,
                      gw_usage_record_t *rec)
{
    lookup_cancel(pfx); /* none should be left: routing waited for it */
    const gw_config_t *cfg = w->server->cfg;
    if ((!pfx->predicted && pfx->blocks.n == 0) || mi != pfx->model_index || mi < 0 ||
        mi >= cfg->n_models || route < 0 || route >= cfg->models[mi].n_routes)
        return;
    const gw_route_cfg_t *r = &cfg->models[mi].routes[route];
    const gw_provider_cfg_t *p = &cfg->providers[r->provider];
    if (pfx->predicted) {
        int64_t pred = pfx->hit_tokens[route];
        rec->cache_predicted = true;
        rec->cache_hit_predicted_tokens = pred;
        if (pfx->usage_reported_hits) {
            if (rec->cache_hit_tokens >= 0)
                gw_metrics_prefix_accuracy(pred, rec->cache_hit_tokens);
        } else if (p->bill_predicted_cache && rec->prompt_tokens >= 0 && pred > 0) {
            /* the provider reports no hits: the admin chose to bill ours */
            int64_t hit = pred < rec->prompt_tokens ? pred : rec->prompt_tokens;
            rec->cache_hit_tokens = hit;
            rec->cache_miss_tokens = rec->prompt_tokens - hit;
            explain_billed(rec);
            gw_metrics_prefix_billed();
        }
    }
    int ttl = gw_config_cache_ttl_s(p);
    if (status == 200 && pfx->blocks.n > 0 && ttl > 0)
        record_blocks(w, pfx, r, ttl,
                      pfx->predicted ? (size_t)(pfx->hit_tokens[route] / 64) : 0);
}

void gw_prefix_release(gw_prefix_req_t *pfx)
{
    lookup_cancel(pfx);
    gw_prompt_blocks_free(&pfx->blocks);
}
