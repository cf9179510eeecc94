/* gw_respcache_req: the response cache's part of one request on the proxy
 * path (docs/response-cache.md): whether it applies (deployment switch, the
 * key's opt-in, x-tollgate-cache and Cache-Control headers, eligibility), the
 * lookup after governance admitted the request, the answer assembled on the
 * way back and stored when complete, the usage record and reply of a hit, and
 * the charging rule. gw_proxy calls these at a few fixed points. */
#ifndef GW_RESPCACHE_REQ_H
#define GW_RESPCACHE_REQ_H

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdbool.h>

#include "gw_config.h"
#include "gw_keystore.h"
#include "gw_respcache.h"
#include "gw_usage.h"

typedef struct gw_worker gw_worker_t;
typedef struct gw_rc_req gw_rc_req_t;

/* A lookup's outcome: the stored answer (owned by the request object, valid
 * until gw_respcache_end) or NULL to go on to a provider. */
typedef void (*gw_rc_lookup_cb)(const gw_rc_answer_t *hit, void *arg);

/* Decides whether the cache applies to this request and computes its key
 * (the body must be the client's, before any rewrite). Adds the response
 * header x-tollgate-cache when the answer is already known ("skip": opted in
 * but not cacheable). Returns NULL when the cache plays no part. */
gw_rc_req_t *gw_respcache_begin(gw_worker_t *w, const gw_key_info_t *key, bool chat,
                                const cJSON *body, struct evhttp_request *client);

/* Looks the answer up (after admission). model is the model about to be
 * served: when governance changed it, the cache is skipped. A stored answer
 * is served only if its provider is one of model's routes that this key may
 * use (a private team's keys: in-house only); else it is a miss. Returns
 * true when cb will run later (exactly once, unless gw_respcache_end comes
 * first), false when the caller goes on at once. Sets x-tollgate-cache to
 * hit, miss or bypass on client. */
bool gw_respcache_lookup(gw_rc_req_t *rc, const gw_model_cfg_t *model,
                         struct evhttp_request *client, gw_rc_lookup_cb cb, void *arg);

/* The provider's answer on its way: one whole SSE event, or the whole body. */
void gw_respcache_feed_event(gw_rc_req_t *rc, const char *event, size_t len);
void gw_respcache_feed_body(gw_rc_req_t *rc, const cJSON *body);

/* An attempt failed before reaching the client: forget what it fed. */
void gw_respcache_attempt_failed(gw_rc_req_t *rc);

/* Fills the usage record of a hit: response_cache_hit, the stored answer's
 * provider, upstream model and counts, every prompt token a cache hit, no
 * attempt, complete usage. */
void gw_respcache_hit_record(const gw_rc_answer_t *a, gw_usage_record_t *rec);

/* Applies the charging rule to a priced hit's record (response_cache_charge):
 * `free` zeroes the costs and sets pricing flag GW_RC_FLAG_FREE;
 * `cache_hit_price` keeps the price of gw_respcache_hit_record's counts. */
void gw_respcache_charge(const gw_config_t *cfg, gw_usage_record_t *rec);

/* Answers the client with the stored answer: a JSON body, or an SSE stream
 * (usage event only if include_usage), with the x-tollgate-* headers and the
 * charge (header or SSE comment; "" = none). */
void gw_respcache_reply(struct evhttp_request *client, const gw_rc_answer_t *a, bool stream,
                        bool include_usage, const char *request_id, const char *charge);

/* Ends the cache's part: cancels a pending lookup; when `complete` (a 200
 * from a provider with complete usage, the client still there) stores the
 * answer if it may and can be; frees rc. */
void gw_respcache_end(gw_rc_req_t *rc, bool complete, const gw_usage_record_t *rec);

#endif
