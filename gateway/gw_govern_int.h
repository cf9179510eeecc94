/* gw_govern_int: what the governance files share (not for the rest of the
 * gateway): the per-worker state, the fail-open local limits and alerts. */
#ifndef GW_GOVERN_INT_H
#define GW_GOVERN_INT_H

#include <event2/http.h>

#include "gw_govern.h"
#include "gw_govern_store.h"
#include "gw_redis.h"

#define GW_GOV_MAX_WORKERS 256
#define GOV_LOCAL_SCOPES 256
#define GOV_LOCAL_BUDGETS 64

typedef struct gov_budget_ref {
    const gw_gov_budget_t *b; /* into a snapshot, or &copy */
    gw_gov_budget_t copy;
    int64_t hold;
} gov_budget_ref_t;

/* Fail-open counters of one worker for one scope (fixed one-minute window). */
typedef struct gov_local_scope {
    char name[64];
    int64_t minute;
    int64_t requests, tokens;
    int64_t inflight;
} gov_local_scope_t;

typedef struct gov_local_budget {
    int64_t id;
    int64_t held; /* holds of this worker's locally admitted requests in flight */
} gov_local_budget_t;

typedef struct gov_worker {
    gw_worker_t *w;
    gw_redis_t *redis;
    int64_t created_us;
    struct pending_cmd **queued; /* settles waiting for Redis */
    int n_queued, cap_queued;
    struct event *flush_timer; /* sends them once Redis is back */
    struct gov_batch *batch;   /* admissions and settles of this tick, not sent yet */
    struct event *batch_ev;    /* sends the batch at the end of the tick */
    gov_local_scope_t scopes[GOV_LOCAL_SCOPES];
    int n_scopes;
    gov_local_budget_t budgets[GOV_LOCAL_BUDGETS];
    int n_budgets;
} gov_worker_t;

/* Redis did not answer: refuse (fail closed) or admit under local limits
 * (fail open), per the configuration. */
void gov_unavailable(gov_worker_t *gw, const gw_govern_request_t *rq, gw_govern_hold_t *hold,
                     gw_govern_result_t *res);

/* Fail-open admission under this worker's share of the limits (or a 503
 * when the deployment fails closed). Fills *hold when admitted locally. */
void gov_local_admit(gov_worker_t *gw, const gw_gov_snapshot_t *snap, const gw_govern_request_t *rq,
                     gw_govern_hold_t *hold, gw_govern_result_t *res);

/* Releases a local admission's counters. */
void gov_local_settle(gov_worker_t *gw, const gw_govern_hold_t *hold, int64_t completion_tokens,
                      const int64_t *charge_micro);

/* A soft threshold was crossed (once per crossing, decided by Redis): log
 * line, counter, and the budget's webhook if it has one. */
void gov_alert(gov_worker_t *gw, const gw_gov_budget_t *b, int64_t spent_micro, int64_t held_micro);

/* Alerts fired by this process (for tests and metrics). */
unsigned long gw_govern_alerts_fired(void);

#endif
