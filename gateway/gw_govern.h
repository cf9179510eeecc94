/* gw_govern: rate limits and budgets on the request path (docs/governance.md).
 * Admission is ONE Redis round trip (a Lua script run with EVALSHA): it checks
 * the team's and the key's requests/min, tokens/min and concurrent requests,
 * and places the budget hold (the request's worst-case cost) against every
 * budget that applies, all atomically for every gateway instance sharing the
 * Redis. Settling replaces the hold by the actual charge and counts the
 * completion tokens (fire and forget). A worker sends the admissions and
 * settles of one loop tick together, in one EVALSHA. Budgets and limits
 * come from PostgreSQL (gw_govern_store); spend lost by Redis is rebuilt from
 * the ledger before anything is admitted. The per-worker state is created on
 * the worker's thread at its first request. */
#ifndef GW_GOVERN_H
#define GW_GOVERN_H

#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_config.h"
#include "gw_keystore.h"
#include "gw_route.h"
#include "gw_usage.h"

typedef struct gw_worker gw_worker_t;
typedef struct gw_govern_ticket gw_govern_ticket_t;

#define GW_GOV_MAX_SCOPES 2  /* the team and the key */
#define GW_GOV_MAX_BUDGETS 4 /* team and key budgets that apply */

/* What an exchange keeps between admission and settle. Zeroed = nothing was
 * admitted (nothing to settle). */
typedef struct gw_govern_hold {
    bool active; /* a shared (Redis) admission to settle */
    bool local;  /* a fail-open local admission to settle */
    char request_id[40];
    int n_scopes;
    char scopes[GW_GOV_MAX_SCOPES][64];
    int scope_flags[GW_GOV_MAX_SCOPES];  /* 1: concurrency limited, 2: tokens limited */
    int local_scopes[GW_GOV_MAX_SCOPES]; /* local: slot indexes */
    int n_budgets;
    char bkeys[GW_GOV_MAX_BUDGETS][96]; /* "<namespace>:b:<id>:<period id>" */
    char currency[GW_GOV_MAX_BUDGETS][4];
    int64_t period_ttl_s[GW_GOV_MAX_BUDGETS];
    int64_t hold_micro;                /* the largest of holds[] */
    int64_t holds[GW_GOV_MAX_BUDGETS]; /* each budget's hold */
    int local_budgets[GW_GOV_MAX_BUDGETS];
    int64_t local_holds[GW_GOV_MAX_BUDGETS];
} gw_govern_hold_t;

/* The decision. On deny, status/type/code/message (and retry_after when
 * waiting helps) are the client's error. On allow, downgrade_to names the
 * model to use instead (soft threshold, policy downgrade), cheaper_only asks
 * for the cheapest route only, and header is the x-tollgate-budget value ("" =
 * none). */
typedef struct gw_govern_result {
    bool allow;
    int status;
    char type[32], code[40], message[320], retry_after[24];
    char downgrade_to[128];
    bool cheaper_only;
    char header[320];
} gw_govern_result_t;

typedef void (*gw_govern_cb)(const gw_govern_result_t *res, void *arg);

typedef struct gw_govern_request {
    const gw_key_info_t *key;
    const gw_model_cfg_t *model;
    const gw_route_plan_t *plan;
    int64_t prompt_tokens; /* counted against tokens/min */
    int64_t prompt_bound;  /* most prompt tokens the provider can bill (the hold):
                            * the exact count, or the body's bytes for an estimate */
    int64_t max_tokens;    /* 0 = not stated: the configured default maximum */
    const char *request_id;
    int64_t now_us;
} gw_govern_request_t;

/* Whether governance is on for this gateway (config governance = on). */
bool gw_govern_enabled(const gw_config_t *cfg);

/* Starts admission for one request. Returns NULL after filling *res when the
 * decision is immediate (no limits apply, Redis down and fail-closed/open,
 * bad state); else a ticket, and cb runs later on w's loop, exactly once,
 * unless gw_govern_cancel() is called first. *hold is filled for settle when
 * the request is admitted; it must stay valid (in the exchange) until the
 * callback or cancel. */
gw_govern_ticket_t *gw_govern_admit(gw_worker_t *w, const gw_govern_request_t *rq,
                                    gw_govern_hold_t *hold, gw_govern_cb cb, void *arg,
                                    gw_govern_result_t *res);

/* Cancels a pending admission (the client went away). If Redis admits it
 * anyway, the hold and the in-flight slot are released at once. */
void gw_govern_cancel(gw_worker_t *w, gw_govern_ticket_t *t);

/* Settles an admitted request: the hold is replaced by the record's charge
 * (in the budget's currency; rounded up to micro-units), the completion
 * tokens count against tokens/min, the in-flight slot is freed. Clears *hold.
 * Fire and forget (a failed settle is retried when Redis is back; holds
 * expire by themselves). */
void gw_govern_settle(gw_worker_t *w, gw_govern_hold_t *hold, const gw_usage_record_t *rec);

/* Soft threshold, policy "cheaper": keeps only the plan's routes with the
 * lowest worst-case cost for this request (by the live price book). */
void gw_govern_cheapest(gw_worker_t *w, const gw_model_cfg_t *model, gw_route_plan_t *plan,
                        int64_t prompt_tokens, int64_t max_tokens, int64_t now_us);

/* GET /v1/tollgate/budget: the caller's team (and key) budgets: spend, holds,
 * remaining, period. Authenticated by the caller's own key. */
void gw_govern_serve_budget(gw_worker_t *w, struct evhttp_request *req, const gw_key_info_t *key);

#endif
