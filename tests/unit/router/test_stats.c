/* Unit tests of rt_stats: decayed averages, percentiles, error rates, the
 * circuit breaker's transitions and Retry-After holds (time as data). */
#include "rt_stats.h"
#include "rt_test.h"

static rt_breaker_cfg_t bc;

static rt_observation_t ok_stream(int64_t now, int64_t ttft_ms, int64_t total_ms, int64_t toks)
{
    rt_observation_t o = {now, true, 200, 0, true, ttft_ms * 1000, total_ms * 1000, toks, false};
    return o;
}

static rt_observation_t failure(int64_t now, int status)
{
    rt_observation_t o = {now, false, status, 0, false, 0, 0, -1, false};
    return o;
}

static void test_latency(void)
{
    rt_stats_t s;
    rt_stats_init(&s);
    CHECK(rt_stats_ttft_ms(&s, 0, 777) == 777);
    CHECK(rt_stats_ttft_ms(&s, 90, 777) == 777);
    CHECK(rt_stats_tps(&s, 42) == 42);
    /* first sample taken as is: 100 ms TTFT, 11 tokens in 100 ms after -> 100 tok/s */
    rt_observation_t o = ok_stream(T0, 100, 200, 11);
    rt_stats_observe(&s, &bc, &o);
    CHECK(rt_stats_ttft_ms(&s, 0, 0) == 100);
    CHECK(rt_stats_tps(&s, 0) > 99.9 && rt_stats_tps(&s, 0) < 100.1);
    /* a second sample moves the average by ALPHA = 0.2 */
    o = ok_stream(T0, 200, 300, 11);
    rt_stats_observe(&s, &bc, &o);
    CHECK(rt_stats_ttft_ms(&s, 0, 0) > 119.9 && rt_stats_ttft_ms(&s, 0, 0) < 120.1);
    /* percentile over the ring: 1..100 ms -> p90 = 90 (nearest rank on the last 64) */
    rt_stats_init(&s);
    for (int i = 1; i <= 64; i++) {
        o = ok_stream(T0, i, i + 10, 2);
        rt_stats_observe(&s, &bc, &o);
    }
    CHECK(rt_stats_ttft_ms(&s, 90, 0) == 58); /* ceil(0.9*64) = 58th of 1..64 */
    CHECK(rt_stats_ttft_ms(&s, 100, 0) == 64);
    CHECK(rt_stats_ttft_ms(&s, 1, 0) == 1);
    /* the ring keeps only the last 64: 36 slow samples push the p90 up */
    for (int i = 0; i < 36; i++) {
        o = ok_stream(T0, 1000, 1010, 2);
        rt_stats_observe(&s, &bc, &o);
    }
    CHECK(rt_stats_ttft_ms(&s, 50, 0) == 1000);
    /* a non-streamed answer: its generation time is taken out at the measured speed */
    rt_stats_init(&s);
    o = ok_stream(T0, 100, 200, 11); /* 100 tok/s */
    rt_stats_observe(&s, &bc, &o);
    rt_observation_t whole = {T0, true, 200, 0, false, 0, 300 * 1000, 11, false};
    rt_stats_observe(&s, &bc, &whole); /* 300 - 10 tokens at 100/s = 200 ms TTFT sample */
    CHECK(rt_stats_ttft_ms(&s, 0, 0) > 119.9 && rt_stats_ttft_ms(&s, 0, 0) < 120.1);
    /* failures teach nothing about latency */
    rt_observation_t f = failure(T0, 500);
    rt_stats_observe(&s, &bc, &f);
    CHECK(s.ttft_n == 2);
}

static void test_breaker_consecutive(void)
{
    rt_stats_t s;
    rt_stats_init(&s);
    const char *why;
    for (int i = 0; i < bc.failures - 1; i++) {
        rt_observation_t f = failure(T0 + i, 503);
        rt_stats_observe(&s, &bc, &f);
    }
    CHECK(s.state == RT_CLOSED);
    CHECK(rt_stats_usable(&s, &bc, T0 + 10, &why));
    rt_observation_t f = failure(T0 + 10, 0); /* connect error */
    rt_stats_observe(&s, &bc, &f);
    CHECK(s.state == RT_OPEN);
    CHECK(!rt_stats_usable(&s, &bc, T0 + 11, &why));
    CHECK_STR(why, "circuit_open");
    /* cool-down over: half-open, one probe */
    int64_t t = T0 + 10 + bc.cooldown_us;
    CHECK(rt_stats_usable(&s, &bc, t, &why));
    CHECK(s.state == RT_HALF_OPEN);
    rt_stats_take(&s, t);
    CHECK(s.in_flight == 1);
    CHECK(!rt_stats_usable(&s, &bc, t + 1, &why));
    CHECK_STR(why, "probe_in_flight");
    /* a cancelled attempt releases its in-flight count and teaches nothing */
    rt_stats_t before = s;
    rt_stats_take(&s, t);
    CHECK(s.in_flight == 2);
    rt_stats_release(&s);
    CHECK(s.in_flight == 1 && s.state == RT_HALF_OPEN && s.attempts == before.attempts &&
          s.consecutive_failures == before.consecutive_failures);
    rt_stats_t idle;
    rt_stats_init(&idle);
    rt_stats_release(&idle); /* never below zero */
    CHECK(idle.in_flight == 0);
    /* a first attempt beaten by its hedge: a TTFT sample of at least its time */
    rt_stats_observe_late(&idle, 2500000);
    CHECK(idle.ttft_n == 1 && idle.ttft_avg_ms == 2500.0 && rt_stats_ttft_ms(&idle, 90, 1) == 2500.0);
    CHECK(idle.attempts == 0 && idle.err_rate == 0 && idle.state == RT_CLOSED && idle.in_flight == 0);
    rt_stats_observe_late(&idle, 0); /* nothing known: nothing learned */
    CHECK(idle.ttft_n == 1);
    /* the probe fails: open again, cool-down from now */
    f = failure(t + 5, 503);
    f.first_choice = true;
    rt_stats_observe(&s, &bc, &f);
    CHECK(s.in_flight == 0);
    CHECK(s.state == RT_OPEN);
    CHECK(!rt_stats_usable(&s, &bc, t + bc.cooldown_us - 1, &why));
    /* second probe succeeds: closed */
    t = t + 5 + bc.cooldown_us;
    CHECK(rt_stats_usable(&s, &bc, t, &why));
    rt_stats_take(&s, t);
    rt_observation_t o = ok_stream(t + 100, 50, 60, 2);
    rt_stats_observe(&s, &bc, &o);
    CHECK(s.state == RT_CLOSED);
    CHECK(s.consecutive_failures == 0);
    CHECK(rt_stats_usable(&s, &bc, t + 101, &why));
    /* a probe that never reports back is handed out again after a cool-down */
    rt_stats_init(&s);
    for (int i = 0; i < bc.failures; i++) {
        f = failure(T0, 500);
        rt_stats_observe(&s, &bc, &f);
    }
    t = T0 + bc.cooldown_us;
    CHECK(rt_stats_usable(&s, &bc, t, &why));
    rt_stats_take(&s, t);
    CHECK(!rt_stats_usable(&s, &bc, t + bc.cooldown_us - 1, &why));
    CHECK(rt_stats_usable(&s, &bc, t + bc.cooldown_us, &why));
}

static void test_breaker_rate(void)
{
    /* alternating failures never make 5 in a row, but the rate crosses 50% */
    rt_stats_t s;
    rt_stats_init(&s);
    int i = 0;
    for (; i < 200 && s.state == RT_CLOSED; i++) {
        rt_observation_t o = (i % 3 == 0) ? ok_stream(T0, 10, 20, 2) : failure(T0, 500);
        rt_stats_observe(&s, &bc, &o);
    }
    CHECK(s.state == RT_OPEN);
    CHECK(i >= bc.min_samples); /* not before enough samples */
    /* a healthy provider with a few errors stays closed */
    rt_stats_init(&s);
    for (i = 0; i < 200; i++) {
        rt_observation_t o = (i % 10 == 0) ? failure(T0, 500) : ok_stream(T0, 10, 20, 2);
        rt_stats_observe(&s, &bc, &o);
    }
    CHECK(s.state == RT_CLOSED);
    CHECK(s.err_rate > 0 && s.err_rate < 0.3);
}

static void test_retry_after(void)
{
    rt_stats_t s;
    rt_stats_init(&s);
    const char *why;
    rt_observation_t f = failure(T0, 429);
    f.retry_after_s = 2;
    rt_stats_observe(&s, &bc, &f);
    CHECK(s.rate_429 == 1.0);
    CHECK(!rt_stats_usable(&s, &bc, T0 + 2 * SEC - 1, &why));
    CHECK_STR(why, "retry_after");
    CHECK(rt_stats_usable(&s, &bc, T0 + 2 * SEC, &why));
    /* 429s alone never open the circuit */
    for (int i = 0; i < 20; i++) {
        f = failure(T0, 429);
        rt_stats_observe(&s, &bc, &f);
    }
    CHECK(s.state == RT_CLOSED);
    /* 503 server busy with Retry-After: held too; a huge value is bounded to an hour */
    rt_stats_init(&s);
    f = failure(T0, 503);
    f.retry_after_s = 99999999;
    rt_stats_observe(&s, &bc, &f);
    CHECK(s.retry_until_us == T0 + 3600 * SEC);
    /* Retry-After on a 500 is ignored */
    rt_stats_init(&s);
    f = failure(T0, 500);
    f.retry_after_s = 30;
    rt_stats_observe(&s, &bc, &f);
    CHECK(s.retry_until_us == 0);
    CHECK_STR(rt_breaker_state_name(RT_HALF_OPEN), "half_open");
}

int main(void)
{
    rt_breaker_defaults(&bc);
    test_latency();
    test_breaker_consecutive();
    test_breaker_rate();
    test_retry_after();
    return report("router_stats");
}
