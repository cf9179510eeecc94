/* gw_route: today's routing policy (configured order, context-window filter)
 * behind the seam described in gw_route.h. */
#include "gw_route.h"

#include <stdio.h>
#include <string.h>

void gw_route_plan(gw_worker_t *w, const gw_route_request_t *rq, gw_route_plan_t *plan)
{
    (void)w;
    memset(plan, 0, sizeof *plan);
    const gw_model_cfg_t *m = rq->model;
    int64_t need = rq->prompt_tokens + rq->max_tokens, largest = 0;
    for (int i = 0; i < m->n_routes; i++) {
        if (m->routes[i].context_tokens > largest)
            largest = m->routes[i].context_tokens;
        if (rq->prompt_exact && m->routes[i].context_tokens < need)
            continue; /* the count is exact: this window cannot hold the request */
        plan->routes[plan->n++] = i;
    }
    if (plan->n > 0)
        return;
    plan->status = 400;
    snprintf(plan->type, sizeof plan->type, "invalid_request_error");
    snprintf(plan->code, sizeof plan->code, "context_length_exceeded");
    snprintf(plan->message, sizeof plan->message,
             "This model's maximum context length is %lld tokens. However, you requested %lld "
             "tokens (%lld in the messages, %lld in the completion). Please reduce the length "
             "of the messages or completion.",
             (long long)largest, (long long)need, (long long)rq->prompt_tokens,
             (long long)rq->max_tokens);
}

void gw_route_observe(gw_worker_t *w, const gw_route_outcome_t *o)
{
    (void)w;
    (void)o; /* no statistics kept yet: the router issue adds them */
}
