/* gw_route: the seam between the request path and routing policy. At the
 * start of an exchange the proxy asks for a plan: the model's routes in the
 * order to try them (the rest are the fallbacks), or, when none can serve the
 * request, the error to give. After each attempt the proxy reports what it
 * saw, so that a policy can learn from live traffic. Today's policy: the
 * configured order, minus routes whose context window cannot hold an exactly
 * counted prompt + max_tokens. The cost/latency router (issue 7) plugs in
 * here, on top of the pure library in router/. */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "gw_config.h"
#include "gw_keystore.h"

typedef struct gw_worker gw_worker_t;

typedef struct gw_route_request {
    const gw_model_cfg_t *model;
    int model_index;
    const gw_key_info_t *key;
    int64_t prompt_tokens;
    bool prompt_exact;    /* false: an estimate, which never drops a route */
    int64_t max_tokens;   /* 0 when the request did not say */
    bool stream;
    int64_t now_us;
} gw_route_request_t;

typedef struct gw_route_plan {
    int routes[GW_MAX_ROUTES]; /* indexes into model->routes, in order */
    int n;
    /* when n == 0: the client's error */
    int status;
    char type[32], code[48], param[16], message[320];
} gw_route_plan_t;

/* Decides the order of routes for one request (see above). */
void gw_route_plan(gw_worker_t *w, const gw_route_request_t *rq, gw_route_plan_t *plan);

typedef struct gw_route_outcome {
    int provider;          /* config index */
    bool ok;               /* the attempt answered (any HTTP status but 429/5xx) */
    int http_status;       /* 0 when no response */
    int64_t first_byte_us; /* request sent -> response headers; 0 when none */
} gw_route_outcome_t;

/* Reports one finished attempt (for health and latency statistics). */
void gw_route_observe(gw_worker_t *w, const gw_route_outcome_t *o);

#endif
