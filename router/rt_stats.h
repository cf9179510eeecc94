/* rt_stats: what the router knows about one provider serving one model,
 * learned from finished attempts: decaying averages and a high percentile of
 * time to first token and output speed, error and 429 rates, requests in
 * flight, a circuit breaker and a Retry-After hold. Pure: every instant is a
 * parameter (unix microseconds); the caller does the locking. */
#ifndef RT_STATS_H
#define RT_STATS_H

#include <stdbool.h>
#include <stdint.h>

#define RT_RING 64 /* recent TTFT samples kept for the percentile */

typedef enum { RT_CLOSED = 0, RT_OPEN = 1, RT_HALF_OPEN = 2 } rt_breaker_state_t;

/* Circuit-breaker settings (rt_breaker_defaults gives sane ones). */
typedef struct rt_breaker_cfg {
    int failures;            /* consecutive failures that open the circuit (>= 1) */
    int error_rate_pct;      /* decayed error rate that opens it (1..100) ... */
    int min_samples;         /* ... once at least this many attempts were seen */
    int64_t cooldown_us;     /* open -> half-open after this long */
} rt_breaker_cfg_t;

typedef struct rt_stats {
    /* latency, milliseconds; valid when the count is > 0 */
    double ttft_avg_ms;
    uint32_t ttft_n;
    float ttft_ring[RT_RING];
    double tps_avg; /* output tokens per second after the first token */
    uint32_t tps_n;
    /* decayed rates in [0, 1] and the number of attempts seen */
    double err_rate, rate_429;
    uint64_t attempts;
    int in_flight;
    /* circuit breaker */
    rt_breaker_state_t state;
    int consecutive_failures;
    int64_t opened_at_us;
    int64_t probe_at_us; /* half-open: when the probe was handed out; 0 = none out */
    int64_t retry_until_us; /* Retry-After: not to be used before this */
} rt_stats_t;

/* One finished attempt, as the gateway saw it. */
typedef struct rt_observation {
    int64_t now_us;
    bool ok;              /* answered (not a connect error, timeout, 429 or 5xx) */
    int http_status;      /* 0 when no response */
    int64_t retry_after_s; /* from a 429/503's Retry-After; 0 when none */
    bool stream;
    int64_t ttft_us;      /* stream: sent -> first event; 0 = unknown */
    int64_t total_us;     /* sent -> last byte; 0 = unknown */
    int64_t completion_tokens; /* -1 = unknown */
    bool first_choice;    /* the attempt rt_stats_take counted (in flight - 1) */
} rt_observation_t;

void rt_breaker_defaults(rt_breaker_cfg_t *cfg);

/* Zeroes *s: closed circuit, nothing measured. */
void rt_stats_init(rt_stats_t *s);

/* Learns from one attempt: latency samples (successful attempts only), the
 * decayed error and 429 rates, the breaker's transitions (closed -> open after
 * cfg->failures consecutive failures or the error-rate threshold; half-open ->
 * closed on success, -> open on failure) and the Retry-After hold. */
void rt_stats_observe(rt_stats_t *s, const rt_breaker_cfg_t *cfg, const rt_observation_t *o);

/* Whether the provider may be tried at now_us, and if not why ("circuit_open",
 * "retry_after", "probe_in_flight"). Moves open -> half-open once the cool-down
 * has passed. Does not hand out the probe: see rt_stats_take. */
bool rt_stats_usable(rt_stats_t *s, const rt_breaker_cfg_t *cfg, int64_t now_us,
                     const char **why);

/* Records that a request was sent to this provider first (in flight + 1; in
 * half-open, it is the probe). */
void rt_stats_take(rt_stats_t *s, int64_t now_us);

/* The attempt rt_stats_take counted ended with nothing to learn from (the
 * gateway cancelled it: a hedge's loser, a client that left): in flight - 1,
 * nothing else. A probe cancelled this way is retried after the cool-down. */
void rt_stats_release(rt_stats_t *s);

/* An attempt the gateway cancelled after at_least_ttft_us without a first
 * byte, because a hedge answered first: recorded as a TTFT sample of that
 * value (a lower bound of the true one), so that the average and the
 * percentiles see the provider's slow tail. Error rates, the breaker and in
 * flight are untouched. */
void rt_stats_observe_late(rt_stats_t *s, int64_t at_least_ttft_us);

/* Expected TTFT in ms: the decayed average (p = 0) or the p-th percentile
 * (1..100) of the recent samples; `prior` when nothing has been measured. */
double rt_stats_ttft_ms(const rt_stats_t *s, int p, double prior);

/* Expected output tokens per second; `prior` when nothing was measured. */
double rt_stats_tps(const rt_stats_t *s, double prior);

const char *rt_breaker_state_name(rt_breaker_state_t st);

#endif
