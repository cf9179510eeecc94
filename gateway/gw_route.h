/* gw_route: the seam between the request path and routing policy. At the
 * start of an exchange the proxy asks for a plan: the model's routes in the
 * order to try them (the rest are the fallbacks), or, when none can serve the
 * request, the error to give, and the decision's explanation for the usage
 * row. After each attempt the proxy reports what it saw; the statistics
 * (latency, speed, errors, circuit breakers) are shared by all workers. The
 * policy is the pure library in router/ (docs/router.md); this file adapts
 * the gateway's config, keys, price book and request headers to it. */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "gw_config.h"
#include "gw_keystore.h"

typedef struct gw_worker gw_worker_t;
typedef struct gw_server gw_server_t;
struct evkeyvalq;
struct evhttp_request;

typedef struct gw_route_request {
    const gw_model_cfg_t *model;
    int model_index;
    const gw_key_info_t *key;
    int64_t prompt_tokens;
    bool prompt_exact;    /* false: an estimate, which never drops a route */
    int64_t max_tokens;   /* 0 when the request did not say */
    bool stream;
    int64_t now_us;
    const struct evkeyvalq *headers; /* the client's request headers (needs); NULL = none */
    /* The prefix index's prediction (gw_prefix, docs/cache.md): per route of
     * the model, the prompt tokens expected to hit that provider's cache.
     * NULL = no prediction: each provider's cache_hit_percent prior is used. */
    const int64_t *predicted_hits;
} gw_route_request_t;

typedef struct gw_route_plan {
    int routes[GW_MAX_ROUTES]; /* indexes into model->routes, in order */
    int n;
    /* when n == 0: the client's error */
    int status;
    char type[32], code[48], param[48], message[512];
    char explain[512]; /* compact JSON for the usage row's route_explain */
    int64_t latency_target_ms; /* the need as resolved (header > key > model); 0 = none */
} gw_route_plan_t;

/* Decides the order of routes for one request (see above). Reads the needs
 * from the headers x-tollgate-latency-target-ms, x-tollgate-max-cost and
 * x-tollgate-preference (a bad value: n = 0, status 400 naming the header).
 * Counts the first route as in flight until its outcome is observed. */
void gw_route_plan(gw_worker_t *w, const gw_route_request_t *rq, gw_route_plan_t *plan);

typedef struct gw_route_outcome {
    int provider;          /* config index */
    bool ok;               /* the attempt answered (any HTTP status but 429/5xx) */
    int http_status;       /* 0 when no response */
    int64_t first_byte_us; /* request sent -> response headers; 0 when none */
    int model_index;       /* which model and route the attempt used */
    int route;
    bool stream;
    int64_t sent_at_us;              /* when the attempt was sent */
    int64_t client_first_byte_at_us; /* streams: first event relayed; 0 = none */
    int64_t completion_tokens;       /* GW_USAGE_UNKNOWN (-1) when not reported */
    const char *retry_after;         /* the provider's Retry-After, "" or NULL = none */
    bool first_choice;               /* the attempt was the plan's first route */
    bool cancelled; /* the gateway cancelled it (hedge loser, client gone): nothing is
                       learned but late_us, and its in-flight count is released */
    int64_t late_us; /* cancelled: no first byte after this long because a hedge
                        answered first (a lower bound of its TTFT); 0 = none */
} gw_route_outcome_t;

/* Reports one finished attempt (for health and latency statistics), or one
 * the gateway cancelled (o->cancelled). */
void gw_route_observe(gw_worker_t *w, const gw_route_outcome_t *o);

/* The admin endpoint GET /route/explain?model=M&prompt_tokens=N&max_tokens=N
 * [&stream=1][&preference=P][&latency_target_ms=N][&max_cost=D]: each
 * candidate's expected cost and latency, its measured state, why it was
 * dropped, and the decision; nothing is counted as in flight. Answers req. */
void gw_route_explain_http(gw_server_t *s, struct evhttp_request *req);

#endif
