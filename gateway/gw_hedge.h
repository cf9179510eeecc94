/* gw_hedge: when a request is hedged (docs/router.md, "Hedging"): the
 * threshold from the model's hedge_after_ms and the request's
 * x-tollgate-hedge-after-ms header, and the gateway-wide cap on hedged
 * attempts per minute. The race itself is run by gw_proxy.c. */
#ifndef GW_HEDGE_H
#define GW_HEDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_HEDGE_HEADER "x-tollgate-hedge-after-ms"
#define GW_HEDGE_MAX_AFTER_MS 600000

/* Decides a request's hedge threshold in milliseconds (*after_ms, 0 = not
 * hedged). model_after_ms: the model's hedge_after_ms (0 = the model is never
 * hedged: the header cannot turn it on). latency_target_ms: the request's
 * latency need as routing resolved it (0 = none: only latency-critical
 * requests are hedged). header: the client's x-tollgate-hedge-after-ms or
 * NULL; it can lower the model's threshold or turn hedging off with 0, never
 * raise it. Returns 0, or -1 with err set when the header is not an integer
 * in 0..600000. */
int gw_hedge_threshold(const char *header, int model_after_ms, int64_t latency_target_ms,
                       int *after_ms, char *err, size_t errlen);

/* Takes one hedged attempt from this process's budget of max_per_minute
 * (a fixed window per wall-clock minute; thread-safe). Returns false when the
 * minute's budget is spent (or max_per_minute is 0): the request is not
 * hedged. */
bool gw_hedge_take(int max_per_minute, int64_t now_us);

#endif
