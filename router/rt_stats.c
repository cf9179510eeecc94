/* rt_stats: per provider+model measurements, decayed averages, a TTFT
 * percentile over recent samples, and the circuit breaker (see rt_stats.h). */
#include "rt_stats.h"

#include <stdlib.h>
#include <string.h>

#define ALPHA 0.2 /* weight of a new sample in the decayed averages */

void rt_breaker_defaults(rt_breaker_cfg_t *cfg)
{
    cfg->failures = 5;
    cfg->error_rate_pct = 50;
    cfg->min_samples = 20;
    cfg->cooldown_us = 10 * 1000000LL;
}

void rt_stats_init(rt_stats_t *s)
{
    memset(s, 0, sizeof *s);
    s->state = RT_CLOSED;
}

static double decay(double avg, uint32_t n, double sample)
{
    return n == 0 ? sample : avg + ALPHA * (sample - avg);
}

static void open_circuit(rt_stats_t *s, int64_t now_us)
{
    s->state = RT_OPEN;
    s->opened_at_us = now_us;
    s->probe_at_us = 0;
}

static void learn_latency(rt_stats_t *s, const rt_observation_t *o)
{
    double ttft_ms = -1;
    if (o->stream && o->ttft_us > 0) {
        ttft_ms = (double)o->ttft_us / 1000.0;
        if (o->total_us > o->ttft_us && o->completion_tokens > 1) {
            /* tokens after the first, over the time after the first */
            double tps = (double)(o->completion_tokens - 1) * 1e6 / (double)(o->total_us - o->ttft_us);
            s->tps_avg = decay(s->tps_avg, s->tps_n, tps);
            s->tps_n++;
        }
    } else if (!o->stream && o->total_us > 0) {
        /* A whole answer mixes TTFT and generation: take the generation out at
         * the speed measured on streams, else count it all as TTFT (pessimistic). */
        ttft_ms = (double)o->total_us / 1000.0;
        if (s->tps_n > 0 && s->tps_avg > 0 && o->completion_tokens > 1)
            ttft_ms -= (double)(o->completion_tokens - 1) * 1000.0 / s->tps_avg;
        if (ttft_ms < 0)
            ttft_ms = 0;
    }
    if (ttft_ms < 0)
        return;
    s->ttft_avg_ms = decay(s->ttft_avg_ms, s->ttft_n, ttft_ms);
    s->ttft_ring[s->ttft_n % RT_RING] = (float)ttft_ms;
    s->ttft_n++;
}

void rt_stats_observe(rt_stats_t *s, const rt_breaker_cfg_t *cfg, const rt_observation_t *o)
{
    if (o->first_choice && s->in_flight > 0)
        s->in_flight--;
    bool is_429 = o->http_status == 429;
    s->err_rate = s->attempts == 0 ? (o->ok ? 0.0 : 1.0) : s->err_rate + ALPHA * ((o->ok ? 0.0 : 1.0) - s->err_rate);
    s->rate_429 = s->attempts == 0 ? (is_429 ? 1.0 : 0.0) : s->rate_429 + ALPHA * ((is_429 ? 1.0 : 0.0) - s->rate_429);
    s->attempts++;
    if ((o->http_status == 429 || o->http_status == 503) && o->retry_after_s > 0) {
        int64_t s_ = o->retry_after_s > 3600 ? 3600 : o->retry_after_s; /* bound a hostile value */
        int64_t until = o->now_us + s_ * 1000000;
        if (until > s->retry_until_us)
            s->retry_until_us = until;
    }
    if (o->ok) {
        learn_latency(s, o);
        s->consecutive_failures = 0;
        if (s->state != RT_CLOSED) {
            s->state = RT_CLOSED; /* the probe (or a late answer) succeeded */
            s->probe_at_us = 0;
            s->err_rate = 0;
        }
        return;
    }
    s->consecutive_failures++;
    if (is_429)
        return; /* rate limiting is a hold (Retry-After), not ill health */
    if (s->state == RT_HALF_OPEN) {
        open_circuit(s, o->now_us);
        return;
    }
    if (s->state == RT_CLOSED &&
        (s->consecutive_failures >= cfg->failures ||
         (s->attempts >= (uint64_t)cfg->min_samples && s->err_rate * 100.0 >= cfg->error_rate_pct)))
        open_circuit(s, o->now_us);
}

bool rt_stats_usable(rt_stats_t *s, const rt_breaker_cfg_t *cfg, int64_t now_us,
                     const char **why)
{
    if (s->state == RT_OPEN && now_us - s->opened_at_us >= cfg->cooldown_us) {
        s->state = RT_HALF_OPEN;
        s->probe_at_us = 0;
    }
    if (s->state == RT_OPEN) {
        *why = "circuit_open";
        return false;
    }
    if (s->state == RT_HALF_OPEN && s->probe_at_us != 0 &&
        now_us - s->probe_at_us < cfg->cooldown_us) {
        *why = "probe_in_flight"; /* one probe at a time; a lost one is retried */
        return false;
    }
    if (now_us < s->retry_until_us) {
        *why = "retry_after";
        return false;
    }
    *why = NULL;
    return true;
}

void rt_stats_take(rt_stats_t *s, int64_t now_us)
{
    s->in_flight++;
    if (s->state == RT_HALF_OPEN)
        s->probe_at_us = now_us;
}

void rt_stats_release(rt_stats_t *s)
{
    if (s->in_flight > 0)
        s->in_flight--;
}

void rt_stats_observe_late(rt_stats_t *s, int64_t at_least_ttft_us)
{
    if (at_least_ttft_us <= 0)
        return;
    double ttft_ms = (double)at_least_ttft_us / 1000.0;
    s->ttft_avg_ms = decay(s->ttft_avg_ms, s->ttft_n, ttft_ms);
    s->ttft_ring[s->ttft_n % RT_RING] = (float)ttft_ms;
    s->ttft_n++;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double rt_stats_ttft_ms(const rt_stats_t *s, int p, double prior)
{
    if (s->ttft_n == 0)
        return prior;
    if (p <= 0)
        return s->ttft_avg_ms;
    uint32_t n = s->ttft_n < RT_RING ? s->ttft_n : RT_RING;
    float v[RT_RING];
    memcpy(v, s->ttft_ring, n * sizeof v[0]);
    qsort(v, n, sizeof v[0], cmp_float);
    uint32_t k = (uint32_t)((p * (int)n + 99) / 100); /* nearest rank */
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

double rt_stats_tps(const rt_stats_t *s, double prior)
{
    return s->tps_n > 0 && s->tps_avg > 0 ? s->tps_avg : prior;
}

const char *rt_breaker_state_name(rt_breaker_state_t st)
{
    switch (st) {
    case RT_OPEN:
        return "open";
    case RT_HALF_OPEN:
        return "half_open";
    default:
        return "closed";
    }
}
