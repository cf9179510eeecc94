/* gw_govern_calc: the arithmetic of governance, pure (no loop, no clock, no
 * I/O) so it is tested alone: budget periods aligned in a time zone, and the
 * worst-case cost of a request (its budget hold). Money is integers only. */
#ifndef GW_GOVERN_CALC_H
#define GW_GOVERN_CALC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_config.h"
#include "pr_book.h"
#include "pr_tz.h"

typedef enum { GW_PERIOD_DAY = 0, GW_PERIOD_MONTH, GW_PERIOD_TOTAL } gw_period_t;

/* Parses "day", "month" or "total". Returns 0, or -1. */
int gw_period_parse(const char *text, gw_period_t *out);

/* The period containing instant now_s (unix seconds) in zone tz: its start
 * and end (unix seconds; end = INT64_MAX for "total") and an id naming it
 * ("d2026-11-26", "m2026-11", "total"; 16 bytes suffice). Day and month
 * boundaries are local midnights (a 23- or 25-hour day across DST). */
void gw_period_bounds(const pr_tz_t *tz, gw_period_t period, int64_t now_s, int64_t *start_s,
                      int64_t *end_s, char *id, size_t idlen);

/* The worst-case cost of one request, rounded UP to micro-units of
 * `currency`: prompt tokens all at the cache-miss price plus max_tokens all
 * at the dearer of the output and reasoning prices, at the dearest of: each
 * route in routes[0..n) (any of them may serve it after failovers), the
 * card in force at now_us and the discount window in force then (windows
 * are allowed to cost more than the card). Routes priced in another currency
 * or without a card add nothing and are counted in *unpriced. Returns 0, or
 * -1 on overflow (err set). */
int gw_hold_micro(const pr_book_t *book, const gw_config_t *cfg, const gw_model_cfg_t *model,
                  const int *routes, int n, int64_t prompt_tokens, int64_t max_tokens,
                  const char *currency, int64_t now_us, int64_t *out_micro, int *unpriced,
                  char *err, size_t errlen);

/* Rounds a non-negative pico amount up to micro-units (the budget unit).
 * Returns -1 when it does not fit an int64. */
int gw_pico_to_micro_ceil(pr_pico_t pico, int64_t *out);

#endif
