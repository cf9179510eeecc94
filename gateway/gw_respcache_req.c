/* gw_respcache_req: the response cache on one request (see
 * gw_respcache_req.h): the opt-in decision, the lookup, storing a complete
 * answer, and the reply and usage record of a hit. The pure parts (key,
 * format, replay) are in gw_respcache.c, Redis in gw_respcache_store.c. */
#include "gw_respcache_req.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "gw_http.h"
#include "gw_metrics.h"
#include "gw_respcache_store.h"
#include "gw_server.h"
#include "tg_log.h"

#define REPLAY_CHUNK_BYTES 256 /* content bytes per replayed SSE event */

struct gw_rc_req {
    gw_worker_t *w;
    int64_t team_id;
    bool team_private;            /* the key may use in-house providers only */
    const gw_model_cfg_t *served; /* the model about to be served (lookup) */
    char model[128];              /* the requested model (part of the key) */
    char rkey[160];               /* tg:rc:<namespace>:<team>:<sha256 hex> */
    bool lookup;                  /* may be served from the cache (not Cache-Control: no-cache) */
    bool store;                   /* a fresh answer may be stored */
    gw_rc_builder_t b;            /* the provider's answer, assembled */
    gw_rcs_ticket_t *ticket;
    struct evhttp_request *client; /* while a lookup is pending */
    gw_rc_lookup_cb cb;
    void *arg;
    int64_t sent_us;
    bool have_hit;
    gw_rc_answer_t hit;
};

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void set_header(struct evhttp_request *client, const char *value)
{
    if (!client)
        return;
    struct evkeyvalq *h = evhttp_request_get_output_headers(client);
    evhttp_remove_header(h, "x-tollgate-cache");
    evhttp_add_header(h, "x-tollgate-cache", value);
}

/* Whether the comma-separated header value holds the directive (any case). */
static bool has_directive(const char *value, const char *directive)
{
    size_t dl = strlen(directive);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '=')
            end++;
        if ((size_t)(end - p) == dl && !strncasecmp(p, directive, dl))
            return true;
        p = strchr(end, ',');
    }
    return false;
}

gw_rc_req_t *gw_respcache_begin(gw_worker_t *w, const gw_key_info_t *key, bool chat,
                                const cJSON *body, struct evhttp_request *client)
{
    const gw_config_t *cfg = w->server->cfg;
    if (!cfg->respcache.enabled || !cfg->redis)
        return NULL;
    struct evkeyvalq *in = evhttp_request_get_input_headers(client);
    bool want = key->response_cache;
    const char *opt = evhttp_find_header(in, "x-tollgate-cache");
    if (opt && !strcasecmp(opt, "on"))
        want = true;
    else if (opt && !strcasecmp(opt, "off"))
        want = false;
    if (!want)
        return NULL;
    const char *cc = evhttp_find_header(in, "Cache-Control");
    if (cc && has_directive(cc, "no-store"))
        return NULL; /* neither served nor stored */
    char why[160];
    if (!gw_rc_eligible(body, why, sizeof why)) {
        tg_debug("response cache: request not cacheable: %s", why);
        set_header(client, "skip");
        return NULL;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    char hex[GW_RC_KEY_HEX];
    if (!cJSON_IsString(model) || gw_rc_key(key->team_id, chat ? GW_RC_CHAT : GW_RC_TEXT,
                                            model->valuestring, body, hex, why, sizeof why) < 0) {
        set_header(client, "skip");
        return NULL;
    }
    gw_rc_req_t *rc = calloc(1, sizeof *rc);
    if (!rc)
        abort();
    rc->w = w;
    rc->team_id = key->team_id;
    rc->team_private = key->team_private;
    snprintf(rc->model, sizeof rc->model, "%s", model->valuestring);
    snprintf(rc->rkey, sizeof rc->rkey, "tg:rc:%s:%" PRId64 ":%s", cfg->redis_namespace,
             key->team_id, hex);
    rc->lookup = !(cc && has_directive(cc, "no-cache"));
    rc->store = true;
    gw_rc_builder_init(&rc->b, chat ? GW_RC_CHAT : GW_RC_TEXT, (size_t)cfg->respcache.max_bytes);
    if (!rc->lookup)
        set_header(client, "refresh");
    return rc;
}

/* Whether this request may be given an answer that provider produced: one
 * of the model's routes, and in-house for a private team's key (the router's
 * rules, so that a cached answer never reaches a key the provider could not
 * have served, e.g. after a team became private). */
static bool provider_allowed(const gw_rc_req_t *rc, const gw_rc_answer_t *a)
{
    const gw_config_t *cfg = rc->w->server->cfg;
    for (int i = 0; rc->served && i < rc->served->n_routes; i++) {
        const gw_provider_cfg_t *p = &cfg->providers[rc->served->routes[i].provider];
        if (!strcmp(p->name, a->provider) && (!rc->team_private || p->kind == GW_PROVIDER_ENGINE))
            return true;
    }
    return false;
}

static void on_lookup(gw_rcs_outcome_t outcome, const char *data, size_t len, void *arg)
{
    gw_rc_req_t *rc = arg;
    rc->ticket = NULL;
    struct evhttp_request *client = rc->client;
    rc->client = NULL;
    double took = (double)(now_us() - rc->sent_us) / 1e6;
    const gw_rc_answer_t *hit = NULL;
    if (outcome == GW_RCS_FOUND) {
        char err[160];
        bool decoded = gw_rc_entry_decode(data, len, rc->team_id, &rc->hit, err, sizeof err) == 0;
        if (decoded && provider_allowed(rc, &rc->hit)) {
            rc->have_hit = true;
            hit = &rc->hit;
            gw_metrics_respcache(GW_M_RC_HIT);
            set_header(client, "hit");
        } else if (decoded) {
            tg_info("response cache: the answer under %s came from provider %s, which this "
                    "request may not use: treated as a miss",
                    rc->rkey, rc->hit.provider);
            gw_rc_answer_free(&rc->hit);
            gw_metrics_respcache(GW_M_RC_MISS);
            set_header(client, "miss");
        } else {
            tg_warn("response cache: the entry under %s cannot be read (%s, %zu bytes): treated "
                    "as a miss",
                    rc->rkey, err, len);
            gw_metrics_respcache(GW_M_RC_CORRUPT);
            gw_metrics_respcache(GW_M_RC_MISS);
            set_header(client, "miss");
        }
        gw_metrics_respcache_lookup(took);
    } else if (outcome == GW_RCS_ABSENT) {
        gw_metrics_respcache(GW_M_RC_MISS);
        gw_metrics_respcache_lookup(took);
        set_header(client, "miss");
    } else {
        gw_metrics_respcache(GW_M_RC_BYPASS);
        set_header(client, "bypass");
    }
    rc->cb(hit, rc->arg);
}

bool gw_respcache_lookup(gw_rc_req_t *rc, const gw_model_cfg_t *model,
                         struct evhttp_request *client, gw_rc_lookup_cb cb, void *arg)
{
    if (!rc)
        return false;
    rc->served = model;
    if (strcmp(model->name, rc->model)) { /* governance downgraded the model */
        rc->store = false;
        rc->lookup = false;
        set_header(client, "skip");
        return false;
    }
    if (!rc->lookup)
        return false;
    rc->cb = cb;
    rc->arg = arg;
    rc->client = client;
    rc->sent_us = now_us();
    rc->ticket = gw_rcs_get(rc->w, rc->rkey, on_lookup, rc);
    if (!rc->ticket) {
        rc->client = NULL;
        gw_metrics_respcache(GW_M_RC_BYPASS);
        set_header(client, "bypass");
        return false;
    }
    return true;
}

void gw_respcache_feed_event(gw_rc_req_t *rc, const char *event, size_t len)
{
    if (rc && rc->store)
        gw_rc_builder_feed_event(&rc->b, event, len);
}

void gw_respcache_feed_body(gw_rc_req_t *rc, const cJSON *body)
{
    if (rc && rc->store)
        gw_rc_builder_feed_body(&rc->b, body);
}

void gw_respcache_attempt_failed(gw_rc_req_t *rc)
{
    if (rc)
        gw_rc_builder_reset(&rc->b);
}

void gw_respcache_hit_record(const gw_rc_answer_t *a, gw_usage_record_t *rec)
{
    rec->response_cache_hit = true;
    rec->attempts = 0;
    snprintf(rec->provider, sizeof rec->provider, "%s", a->provider);
    snprintf(rec->upstream_model, sizeof rec->upstream_model, "%s", a->upstream_model);
    rec->prompt_tokens = a->prompt_tokens;
    rec->cache_hit_tokens = a->prompt_tokens; /* the whole prompt was served from a cache */
    rec->cache_miss_tokens = 0;
    rec->completion_tokens = a->completion_tokens;
    rec->reasoning_tokens = a->reasoning_tokens >= 0 ? a->reasoning_tokens : GW_USAGE_UNKNOWN;
    rec->usage_complete = true;
}

void gw_respcache_charge(const gw_config_t *cfg, gw_usage_record_t *rec)
{
    if (!rec->response_cache_hit || !rec->price_card_id ||
        cfg->respcache.charge != GW_RC_CHARGE_FREE)
        return;
    for (int i = 0; i < 4; i++)
        rec->cost_pico[i] = 0;
    rec->charge_pico = 0;
    rec->pricing_flags |= GW_RC_FLAG_FREE;
}

void gw_respcache_reply(struct evhttp_request *client, const gw_rc_answer_t *a, bool stream,
                        bool include_usage, const char *request_id, const char *charge)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(client);
    evhttp_add_header(h, "x-tollgate-provider", a->provider);
    evhttp_add_header(h, "x-tollgate-upstream-model", a->upstream_model);
    evhttp_add_header(h, "x-tollgate-attempts", "0");
    char id[80];
    snprintf(id, sizeof id, "%s-%s", a->kind == GW_RC_CHAT ? "chatcmpl" : "cmpl", request_id);
    struct evbuffer *out = evbuffer_new();
    if (!out)
        abort();
    if (stream) {
        size_t len;
        char *body = gw_rc_replay_sse(a, id, include_usage, REPLAY_CHUNK_BYTES, charge, &len);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evbuffer_add_reference(out, body, len, gw_evbuffer_free_data, NULL);
        evhttp_send_reply_start(client, 200, "OK");
        evhttp_send_reply_chunk(client, out);
        evhttp_send_reply_end(client);
    } else {
        char *body = gw_rc_replay_json(a, id);
        evhttp_add_header(h, "Content-Type", "application/json");
        if (charge && charge[0])
            evhttp_add_header(h, "x-tollgate-charge", charge);
        evbuffer_add_reference(out, body, strlen(body), gw_evbuffer_free_data, NULL);
        evhttp_send_reply(client, 200, "OK", out);
    }
    evbuffer_free(out);
}

/* Stores the assembled answer of a complete provider response. */
static void store_answer(gw_rc_req_t *rc, const gw_usage_record_t *rec)
{
    const gw_config_t *cfg = rc->w->server->cfg;
    gw_rc_answer_t a;
    int r = gw_rc_builder_finish(&rc->b, rec->provider, rec->upstream_model, rec->prompt_tokens,
                                 rec->completion_tokens,
                                 rec->reasoning_tokens >= 0 ? rec->reasoning_tokens : -1, &a);
    if (r < 0) {
        tg_debug("request %s: answer not stored in the response cache: %s", rec->request_id,
                 rc->b.why);
        return;
    }
    size_t len = 0;
    char *entry = r == 0 ? gw_rc_entry_encode(&a, rc->team_id, &len) : NULL;
    gw_rc_answer_free(&a);
    if (r == 1 || (int64_t)len > cfg->respcache.max_bytes) {
        tg_info("request %s: answer not stored in the response cache: over "
                "response_cache_max_bytes (%" PRId64 ")",
                rec->request_id, cfg->respcache.max_bytes);
        gw_metrics_respcache(GW_M_RC_TOO_BIG);
        free(entry);
        return;
    }
    if (!gw_rcs_set(rc->w, rc->rkey, entry, len, cfg->respcache.ttl_s))
        gw_metrics_respcache(GW_M_RC_BYPASS);
    free(entry);
}

void gw_respcache_end(gw_rc_req_t *rc, bool complete, const gw_usage_record_t *rec)
{
    if (!rc)
        return;
    if (rc->ticket)
        gw_rcs_cancel(rc->ticket);
    if (complete && rc->store && !rc->have_hit && !rec->response_cache_hit && rec->usage_complete &&
        rec->provider[0])
        store_answer(rc, rec);
    gw_rc_builder_free(&rc->b);
    gw_rc_answer_free(&rc->hit);
    free(rc);
}
