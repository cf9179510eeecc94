/* gw_metrics: request counters by model, provider and status; latency and
 * time-to-first-token histograms; in-flight and upstream pool gauges. */
#include "gw_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const int status_codes[] = {200, 400, 401, 403, 404, 405, 413, 429,
                                   499, 500, 502, 503, 504, 0};
#define N_STATUS ((int)(sizeof status_codes / sizeof status_codes[0]))
static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,   0.5,   1,      2.5,   5,    10,    30,    60};
#define N_BUCKETS ((int)(sizeof bucket_bounds / sizeof bucket_bounds[0]))

typedef struct histogram {
    _Atomic uint64_t buckets[N_BUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
} histogram_t;

static const gw_config_t *metrics_cfg;
static _Atomic uint64_t requests[GW_MAX_MODELS + 1][GW_MAX_PROVIDERS + 1][N_STATUS];
static _Atomic int64_t inflight;
static _Atomic int64_t upstream_conns[GW_MAX_PROVIDERS];
static _Atomic uint64_t upstream_attempts[GW_MAX_PROVIDERS][2];
static histogram_t latency_hist, ttft_hist;
static _Atomic uint64_t budget_alerts[2][4]; /* [key scope][soft policy] */
static _Atomic uint64_t budget_webhooks[2];  /* [ok] */
static const char *const budget_policies[4] = {"alert", "downgrade", "cheaper", "refuse"};
/* response cache: counters and a lookup-latency histogram with finer buckets */
static _Atomic uint64_t rc_events[GW_M_RC_COUNT];
static const double rc_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                   0.01,   0.025,   0.05,   0.1,   0.25,   1};
#define N_RC_BUCKETS ((int)(sizeof rc_bounds / sizeof rc_bounds[0]))
static _Atomic uint64_t rc_buckets[N_RC_BUCKETS + 1], rc_count, rc_sum_us;

/* prefix index (docs/cache.md): lookups by outcome, their latency with
 * buckets fine enough to read a p99 near 0.3 ms, records, accuracy */
static const double pfx_bounds[] = {0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.00025, 0.0003,
                                    0.0004,   0.0005,  0.00075, 0.001, 0.0025, 0.005, 0.01,
                                    0.025,    0.05,    0.1};
#define N_PFX_BUCKETS ((int)(sizeof pfx_bounds / sizeof pfx_bounds[0]))
static const char *const pfx_outcome_names[GW_PFX_OUTCOMES] = {
    "hit", "miss", "short", "bypass_down", "bypass_timeout", "bypass_error"};
static _Atomic uint64_t pfx_lookups[GW_PFX_OUTCOMES];
static _Atomic uint64_t pfx_buckets[N_PFX_BUCKETS + 1], pfx_count, pfx_sum_ns;
static _Atomic uint64_t pfx_records[2], pfx_compared, pfx_exact, pfx_billed;
static _Atomic uint64_t pfx_predicted_tokens, pfx_reported_tokens;

void gw_metrics_prefix_lookup(gw_metrics_pfx_t outcome, double latency_s)
{
    if ((int)outcome < 0 || outcome >= GW_PFX_OUTCOMES)
        return;
    atomic_fetch_add_explicit(&pfx_lookups[outcome], 1, memory_order_relaxed);
    if (latency_s < 0)
        return;
    int b = 0;
    while (b < N_PFX_BUCKETS && latency_s > pfx_bounds[b])
        b++;
    atomic_fetch_add_explicit(&pfx_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pfx_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pfx_sum_ns, (uint64_t)(latency_s * 1e9), memory_order_relaxed);
}

void gw_metrics_prefix_record(int sent)
{
    atomic_fetch_add_explicit(&pfx_records[sent ? 1 : 0], 1, memory_order_relaxed);
}

void gw_metrics_prefix_accuracy(int64_t predicted, int64_t reported)
{
    if (predicted < 0 || reported < 0)
        return;
    atomic_fetch_add_explicit(&pfx_compared, 1, memory_order_relaxed);
    if (predicted == reported)
        atomic_fetch_add_explicit(&pfx_exact, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pfx_predicted_tokens, (uint64_t)predicted, memory_order_relaxed);
    atomic_fetch_add_explicit(&pfx_reported_tokens, (uint64_t)reported, memory_order_relaxed);
}

void gw_metrics_prefix_billed(void)
{
    atomic_fetch_add_explicit(&pfx_billed, 1, memory_order_relaxed);
}

static unsigned long long load(_Atomic uint64_t *v)
{
    return (unsigned long long)atomic_load_explicit(v, memory_order_relaxed);
}

static void render_prefix(struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP tollgate_prefix_lookups_total Prefix-index lookups by "
                             "outcome (bypass_*: no prediction, normal cost).\n"
                             "# TYPE tollgate_prefix_lookups_total counter\n");
    for (int o = 0; o < GW_PFX_OUTCOMES; o++)
        evbuffer_add_printf(out, "tollgate_prefix_lookups_total{outcome=\"%s\"} %llu\n",
                            pfx_outcome_names[o], load(&pfx_lookups[o]));
    evbuffer_add_printf(out, "# HELP tollgate_prefix_lookup_seconds Prefix-index lookup round "
                             "trips (request to Redis answer, on the worker's loop).\n"
                             "# TYPE tollgate_prefix_lookup_seconds histogram\n");
    unsigned long long cum = 0;
    for (int b = 0; b <= N_PFX_BUCKETS; b++) {
        cum += load(&pfx_buckets[b]);
        if (b < N_PFX_BUCKETS)
            evbuffer_add_printf(out, "tollgate_prefix_lookup_seconds_bucket{le=\"%g\"} %llu\n",
                                pfx_bounds[b], cum);
        else
            evbuffer_add_printf(out, "tollgate_prefix_lookup_seconds_bucket{le=\"+Inf\"} %llu\n",
                                cum);
    }
    evbuffer_add_printf(out, "tollgate_prefix_lookup_seconds_sum %.9f\n"
                             "tollgate_prefix_lookup_seconds_count %llu\n",
                        (double)load(&pfx_sum_ns) / 1e9, load(&pfx_count));
    evbuffer_add_printf(
        out,
        "# HELP tollgate_prefix_records_total Served prompts whose blocks were recorded "
        "(outcome sent) or not (Redis down: skipped).\n"
        "# TYPE tollgate_prefix_records_total counter\n"
        "tollgate_prefix_records_total{outcome=\"sent\"} %llu\n"
        "tollgate_prefix_records_total{outcome=\"skipped\"} %llu\n"
        "# HELP tollgate_prefix_compared_total Rows with a prediction whose provider reported "
        "its cache hits.\n# TYPE tollgate_prefix_compared_total counter\n"
        "tollgate_prefix_compared_total %llu\n"
        "# HELP tollgate_prefix_exact_total Of those, rows where prediction = report.\n"
        "# TYPE tollgate_prefix_exact_total counter\ntollgate_prefix_exact_total %llu\n"
        "# HELP tollgate_prefix_predicted_tokens_total Predicted cache-hit tokens of the "
        "compared rows.\n# TYPE tollgate_prefix_predicted_tokens_total counter\n"
        "tollgate_prefix_predicted_tokens_total %llu\n"
        "# HELP tollgate_prefix_reported_tokens_total Reported cache-hit tokens of the "
        "compared rows.\n# TYPE tollgate_prefix_reported_tokens_total counter\n"
        "tollgate_prefix_reported_tokens_total %llu\n"
        "# HELP tollgate_prefix_billed_predicted_total Rows billed with the prediction "
        "(bill_predicted_cache).\n# TYPE tollgate_prefix_billed_predicted_total counter\n"
        "tollgate_prefix_billed_predicted_total %llu\n",
        load(&pfx_records[1]), load(&pfx_records[0]), load(&pfx_compared), load(&pfx_exact),
        load(&pfx_predicted_tokens), load(&pfx_reported_tokens), load(&pfx_billed));
}

void gw_metrics_init(const gw_config_t *cfg)
{
    metrics_cfg = cfg;
}

static int status_index(int status)
{
    for (int i = 0; i < N_STATUS - 1; i++)
        if (status_codes[i] == status)
            return i;
    return N_STATUS - 1;
}

static void histogram_observe(histogram_t *h, double v)
{
    int b = 0;
    while (b < N_BUCKETS && v > bucket_bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(v * 1e6), memory_order_relaxed);
}

void gw_metrics_request_done(int model, int provider, int status, double latency_s, double ttft_s)
{
    int m = model >= 0 && model < GW_MAX_MODELS ? model : GW_MAX_MODELS;
    int p = provider >= 0 && provider < GW_MAX_PROVIDERS ? provider : GW_MAX_PROVIDERS;
    atomic_fetch_add_explicit(&requests[m][p][status_index(status)], 1, memory_order_relaxed);
    histogram_observe(&latency_hist, latency_s);
    if (ttft_s >= 0)
        histogram_observe(&ttft_hist, ttft_s);
}

void gw_metrics_inflight_add(int delta)
{
    atomic_fetch_add_explicit(&inflight, delta, memory_order_relaxed);
}

void gw_metrics_upstream_conns_add(int provider, int delta)
{
    if (provider >= 0 && provider < GW_MAX_PROVIDERS)
        atomic_fetch_add_explicit(&upstream_conns[provider], delta, memory_order_relaxed);
}

void gw_metrics_upstream_attempt(int provider, int ok)
{
    if (provider >= 0 && provider < GW_MAX_PROVIDERS)
        atomic_fetch_add_explicit(&upstream_attempts[provider][ok ? 1 : 0], 1,
                                  memory_order_relaxed);
}

void gw_metrics_budget_alert(int key_scope, int policy)
{
    if (policy < 0 || policy > 3)
        policy = 0;
    atomic_fetch_add_explicit(&budget_alerts[key_scope ? 1 : 0][policy], 1, memory_order_relaxed);
}

void gw_metrics_budget_webhook(int ok)
{
    atomic_fetch_add_explicit(&budget_webhooks[ok ? 1 : 0], 1, memory_order_relaxed);
}

static _Atomic int64_t streams_paused;  /* now */
static _Atomic uint64_t stream_pauses; /* since start */

void gw_metrics_stream_paused(int delta)
{
    atomic_fetch_add_explicit(&streams_paused, delta, memory_order_relaxed);
    if (delta > 0)
        atomic_fetch_add_explicit(&stream_pauses, 1, memory_order_relaxed);
}

static void render_back_pressure(struct evbuffer *out)
{
    evbuffer_add_printf(out,
                        "# HELP tollgate_streams_paused Streams whose upstream is paused until "
                        "their slow client has read what is queued (stream_buffer_bytes).\n"
                        "# TYPE tollgate_streams_paused gauge\n"
                        "tollgate_streams_paused %lld\n"
                        "# HELP tollgate_stream_pauses_total Times a stream's upstream was paused "
                        "for a slow client.\n"
                        "# TYPE tollgate_stream_pauses_total counter\n"
                        "tollgate_stream_pauses_total %llu\n",
                        (long long)atomic_load(&streams_paused),
                        (unsigned long long)atomic_load(&stream_pauses));
}

static _Atomic uint64_t hedge_events[GW_HEDGE_EVENTS];
static const char *const hedge_event_names[GW_HEDGE_EVENTS] = {"sent",      "won",    "lost",
                                                                "took_over", "failed", "capped"};

void gw_metrics_hedge(gw_metrics_hedge_t what)
{
    if (what >= 0 && what < GW_HEDGE_EVENTS)
        atomic_fetch_add_explicit(&hedge_events[what], 1, memory_order_relaxed);
}

/* The hedge counters (every series, zeros included: 6). */
static void render_hedges(struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP tollgate_hedges_total Hedged requests' races by event "
                             "(docs/router.md).\n"
                             "# TYPE tollgate_hedges_total counter\n");
    for (int e = 0; e < GW_HEDGE_EVENTS; e++)
        evbuffer_add_printf(out, "tollgate_hedges_total{event=\"%s\"} %llu\n",
                            hedge_event_names[e],
                            (unsigned long long)atomic_load(&hedge_events[e]));
}

/* Governance's alert counters (every series, zeros included: 8 + 2). */
static void render_budget_alerts(struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP tollgate_budget_alerts_total Budget soft-threshold "
                             "crossings seen by this instance, by budget scope and soft policy.\n"
                             "# TYPE tollgate_budget_alerts_total counter\n");
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < 4; p++)
            evbuffer_add_printf(out,
                                "tollgate_budget_alerts_total{scope=\"%s\",policy=\"%s\"} %llu\n",
                                k ? "key" : "team", budget_policies[p],
                                (unsigned long long)atomic_load(&budget_alerts[k][p]));
    evbuffer_add_printf(out, "# HELP tollgate_budget_alert_webhooks_total Budget alert webhook "
                             "POSTs by outcome.\n"
                             "# TYPE tollgate_budget_alert_webhooks_total counter\n");
    for (int ok = 1; ok >= 0; ok--)
        evbuffer_add_printf(out, "tollgate_budget_alert_webhooks_total{outcome=\"%s\"} %llu\n",
                            ok ? "ok" : "failed",
                            (unsigned long long)atomic_load(&budget_webhooks[ok]));
}

void gw_metrics_respcache(gw_metrics_rc_t what)
{
    if (what >= 0 && what < GW_M_RC_COUNT)
        atomic_fetch_add_explicit(&rc_events[what], 1, memory_order_relaxed);
}

void gw_metrics_respcache_lookup(double v)
{
    int b = 0;
    while (b < N_RC_BUCKETS && v > rc_bounds[b])
        b++;
    atomic_fetch_add_explicit(&rc_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rc_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rc_sum_us, (uint64_t)(v * 1e6), memory_order_relaxed);
}

static void render_respcache(struct evbuffer *out)
{
    static const char *const names[GW_M_RC_COUNT] = {"hit",     "miss",   "store",
                                                     "too_big", "bypass", "corrupt"};
    evbuffer_add_printf(out, "# HELP tollgate_response_cache_events_total Response cache: hits, "
                             "misses, stores, answers too big to store, Redis bypasses, corrupted "
                             "entries.\n# TYPE tollgate_response_cache_events_total counter\n");
    for (int i = 0; i < GW_M_RC_COUNT; i++)
        evbuffer_add_printf(out, "tollgate_response_cache_events_total{event=\"%s\"} %llu\n",
                            names[i], (unsigned long long)atomic_load(&rc_events[i]));
    evbuffer_add_printf(out, "# HELP tollgate_response_cache_lookup_seconds Response cache lookup "
                             "latency (Redis round trip).\n"
                             "# TYPE tollgate_response_cache_lookup_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b <= N_RC_BUCKETS; b++) {
        cum += atomic_load_explicit(&rc_buckets[b], memory_order_relaxed);
        if (b < N_RC_BUCKETS)
            evbuffer_add_printf(out, "tollgate_response_cache_lookup_seconds_bucket{le=\"%g\"} %llu\n",
                                rc_bounds[b], (unsigned long long)cum);
        else
            evbuffer_add_printf(out,
                                "tollgate_response_cache_lookup_seconds_bucket{le=\"+Inf\"} %llu\n",
                                (unsigned long long)cum);
    }
    evbuffer_add_printf(out,
                        "tollgate_response_cache_lookup_seconds_sum %.6f\n"
                        "tollgate_response_cache_lookup_seconds_count %llu\n",
                        (double)atomic_load(&rc_sum_us) / 1e6,
                        (unsigned long long)atomic_load(&rc_count));
}

static void render_histogram(struct evbuffer *out, const char *name, const char *help,
                             histogram_t *h)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b <= N_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (b < N_BUCKETS)
            evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_bounds[b],
                                (unsigned long long)cum);
        else
            evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                                (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                        (double)atomic_load(&h->sum_us) / 1e6, name,
                        (unsigned long long)atomic_load(&h->count));
}

void gw_metrics_render(struct evbuffer *out, const gw_metrics_extra_t *extra)
{
    const gw_config_t *c = metrics_cfg;
    evbuffer_add_printf(out, "# HELP tollgate_requests_total Client requests by model, provider "
                             "and HTTP status.\n# TYPE tollgate_requests_total counter\n");
    for (int m = 0; m <= GW_MAX_MODELS; m++) {
        if (m < GW_MAX_MODELS && (!c || m >= c->n_models))
            continue;
        for (int p = 0; p <= GW_MAX_PROVIDERS; p++) {
            if (p < GW_MAX_PROVIDERS && (!c || p >= c->n_providers))
                continue;
            for (int s = 0; s < N_STATUS; s++) {
                uint64_t v = atomic_load_explicit(&requests[m][p][s], memory_order_relaxed);
                if (!v)
                    continue;
                const char *mn = m < GW_MAX_MODELS ? c->models[m].name : "";
                const char *pn = p < GW_MAX_PROVIDERS ? c->providers[p].name : "";
                char st[8];
                if (status_codes[s])
                    snprintf(st, sizeof st, "%d", status_codes[s]);
                else
                    strcpy(st, "other");
                evbuffer_add_printf(out,
                                    "tollgate_requests_total{model=\"%s\",provider=\"%s\","
                                    "status=\"%s\"} %llu\n",
                                    mn, pn, st, (unsigned long long)v);
            }
        }
    }
    render_budget_alerts(out);
    render_hedges(out);
    render_back_pressure(out);
    render_respcache(out);
    render_histogram(out, "tollgate_request_duration_seconds",
                     "Time from request received to last byte sent.", &latency_hist);
    render_histogram(out, "tollgate_time_to_first_byte_seconds",
                     "Time from request received to the first response byte sent.", &ttft_hist);
    evbuffer_add_printf(out, "# HELP tollgate_requests_in_flight Client requests being served.\n"
                             "# TYPE tollgate_requests_in_flight gauge\n"
                             "tollgate_requests_in_flight %lld\n",
                        (long long)atomic_load(&inflight));
    evbuffer_add_printf(out, "# HELP tollgate_upstream_connections Open upstream connections.\n"
                             "# TYPE tollgate_upstream_connections gauge\n");
    for (int p = 0; c && p < c->n_providers; p++)
        evbuffer_add_printf(out, "tollgate_upstream_connections{provider=\"%s\"} %lld\n",
                            c->providers[p].name, (long long)atomic_load(&upstream_conns[p]));
    evbuffer_add_printf(out, "# HELP tollgate_upstream_attempts_total Upstream attempts by "
                             "outcome.\n# TYPE tollgate_upstream_attempts_total counter\n");
    for (int p = 0; c && p < c->n_providers; p++)
        for (int ok = 0; ok < 2; ok++)
            evbuffer_add_printf(out,
                                "tollgate_upstream_attempts_total{provider=\"%s\",outcome=\"%s\"} "
                                "%llu\n",
                                c->providers[p].name, ok ? "ok" : "failed",
                                (unsigned long long)atomic_load(&upstream_attempts[p][ok]));
    evbuffer_add_printf(out,
                        "# HELP tollgate_usage_rows_pending Usage rows not yet in PostgreSQL.\n"
                        "# TYPE tollgate_usage_rows_pending gauge\n"
                        "tollgate_usage_rows_pending %zu\n"
                        "# HELP tollgate_usage_rows_written_total Usage rows committed.\n"
                        "# TYPE tollgate_usage_rows_written_total counter\n"
                        "tollgate_usage_rows_written_total %llu\n"
                        "# HELP tollgate_api_keys_loaded API keys in the in-memory table.\n"
                        "# TYPE tollgate_api_keys_loaded gauge\n"
                        "tollgate_api_keys_loaded %zu\n",
                        extra->usage_pending, (unsigned long long)extra->usage_written,
                        extra->keys_loaded);
    evbuffer_add_printf(out,
                        "# HELP tollgate_gateway_cost_rows_written_total Rows committed to "
                        "gateway_costs (the gateway's own costs, e.g. hedge losers).\n"
                        "# TYPE tollgate_gateway_cost_rows_written_total counter\n"
                        "tollgate_gateway_cost_rows_written_total %llu\n"
                        "# HELP tollgate_gateway_cost_rows_rejected_total Gateway cost records "
                        "PostgreSQL refused or had no table for (each logged whole).\n"
                        "# TYPE tollgate_gateway_cost_rows_rejected_total counter\n"
                        "tollgate_gateway_cost_rows_rejected_total %llu\n",
                        (unsigned long long)extra->costs_written,
                        (unsigned long long)extra->costs_rejected);
    evbuffer_add_printf(out,
                        "# HELP tollgate_spool_bytes Bytes of the usage journal on disk.\n"
                        "# TYPE tollgate_spool_bytes gauge\ntollgate_spool_bytes %llu\n"
                        "# HELP tollgate_spool_corrupted_total Damaged journal regions skipped.\n"
                        "# TYPE tollgate_spool_corrupted_total counter\n"
                        "tollgate_spool_corrupted_total %llu\n"
                        "# HELP tollgate_spool_torn_total Torn journal tails truncated at start.\n"
                        "# TYPE tollgate_spool_torn_total counter\ntollgate_spool_torn_total %llu\n"
                        "# HELP tollgate_spool_refused_total Usage records the journal refused.\n"
                        "# TYPE tollgate_spool_refused_total counter\n"
                        "tollgate_spool_refused_total %llu\n",
                        (unsigned long long)extra->spool_bytes,
                        (unsigned long long)extra->spool_corrupted,
                        (unsigned long long)extra->spool_torn,
                        (unsigned long long)extra->spool_refused);
    render_prefix(out);
}
