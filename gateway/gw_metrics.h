/* gw_metrics: process-wide counters and histograms, rendered in Prometheus
 * text format on the admin listener. Lock-free (relaxed atomics): safe to
 * update from every worker thread on the hot path. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_config.h"

/* Must be called once before workers start; keeps a pointer to cfg. */
void gw_metrics_init(const gw_config_t *cfg);

/* One finished client request. model/provider are config indexes or -1;
 * ttft_s < 0 when no byte reached the client. */
void gw_metrics_request_done(int model, int provider, int status, double latency_s, double ttft_s);

void gw_metrics_inflight_add(int delta);
void gw_metrics_upstream_conns_add(int provider, int delta);
void gw_metrics_upstream_attempt(int provider, int ok);

/* Governance: a budget's soft threshold was crossed (once per budget and
 * period across all instances: counted by the instance whose request crossed
 * it). key_scope: the budget is a key's (else the team's); policy: the
 * budget's soft policy 0 alert, 1 downgrade, 2 cheaper, 3 refuse. No team
 * label: teams are unbounded, these 8 series are not. */
void gw_metrics_budget_alert(int key_scope, int policy);
/* The outcome of a budget alert's webhook POST (2xx = ok). */
void gw_metrics_budget_webhook(int ok);
/* Response cache (docs/response-cache.md): one event of the given kind. */
typedef enum {
    GW_M_RC_HIT = 0,   /* answered from the cache */
    GW_M_RC_MISS,      /* looked up, not there (or a corrupted entry) */
    GW_M_RC_STORE,     /* an answer stored */
    GW_M_RC_TOO_BIG,   /* an answer not stored: over response_cache_max_bytes */
    GW_M_RC_BYPASS,    /* Redis unreachable or slow: lookup or store skipped */
    GW_M_RC_CORRUPT,   /* an entry that could not be read (counted as a miss too) */
    GW_M_RC_COUNT
} gw_metrics_rc_t;
void gw_metrics_respcache(gw_metrics_rc_t what);
/* Time from sending a lookup to its answer (hits and misses). */
void gw_metrics_respcache_lookup(double seconds);
/* Back-pressure: a stream's upstream paused (+1) because its client reads
 * slower than the provider writes, or resumed (-1). */
void gw_metrics_stream_paused(int delta);
/* Hedging (docs/router.md): one event of a hedged request's race. */
typedef enum {
    GW_HEDGE_SENT = 0,  /* a second attempt was sent because the first byte was late */
    GW_HEDGE_WON,       /* the hedge answered first; the first attempt was cancelled */
    GW_HEDGE_LOST,      /* the first attempt answered first; the hedge was cancelled */
    GW_HEDGE_TOOK_OVER, /* the first attempt failed; the hedge went on alone */
    GW_HEDGE_FAILED,    /* the hedge failed on its own; the first attempt went on */
    GW_HEDGE_CAPPED,    /* due, but hedge_max_per_minute was spent: not sent */
    GW_HEDGE_EVENTS
} gw_metrics_hedge_t;
void gw_metrics_hedge(gw_metrics_hedge_t what);
/* Prefix index (docs/cache.md): how each lookup ended. */
typedef enum {
    GW_PFX_HIT = 0,        /* Redis answered; some route holds a prefix of the prompt */
    GW_PFX_MISS,           /* Redis answered; no route does */
    GW_PFX_SHORT,          /* no full 64-token block: predicted 0 without asking Redis */
    GW_PFX_BYPASS_DOWN,    /* Redis not connected: no prediction, no wait */
    GW_PFX_BYPASS_TIMEOUT, /* no answer within prefix_timeout_ms, or the connection was lost */
    GW_PFX_BYPASS_ERROR,   /* a script error or a reply of the wrong shape */
    GW_PFX_OUTCOMES
} gw_metrics_pfx_t;

/* One lookup; latency_s < 0 when no round trip was made. */
void gw_metrics_prefix_lookup(gw_metrics_pfx_t outcome, double latency_s);
/* One record of a served prompt's blocks: sent to Redis, or not (down). */
void gw_metrics_prefix_record(int sent);
/* A row where the serving provider reported its cache hits: the prediction
 * against the report. */
void gw_metrics_prefix_accuracy(int64_t predicted, int64_t reported);
/* A row billed with the gateway's prediction (bill_predicted_cache). */
void gw_metrics_prefix_billed(void);

typedef struct gw_metrics_extra {
    uint64_t spool_bytes, spool_corrupted, spool_torn, spool_refused;
    size_t usage_pending;
    uint64_t usage_written;
    uint64_t costs_written, costs_rejected; /* gateway_costs rows (docs/ledger.md) */
    size_t keys_loaded;
} gw_metrics_extra_t;

/* Appends the whole exposition to out. */
void gw_metrics_render(struct evbuffer *out, const gw_metrics_extra_t *extra);

#endif
