/* gw_govern_calc: budget periods in a time zone and the worst-case cost of a
 * request (see gw_govern_calc.h). Pure functions: the caller passes the time,
 * the price book and the zone. */
#include "gw_govern_calc.h"

#include <stdio.h>
#include <string.h>

#include "pr_money.h"

int gw_period_parse(const char *text, gw_period_t *out)
{
    if (!strcmp(text, "day"))
        *out = GW_PERIOD_DAY;
    else if (!strcmp(text, "month"))
        *out = GW_PERIOD_MONTH;
    else if (!strcmp(text, "total"))
        *out = GW_PERIOD_TOTAL;
    else
        return -1;
    return 0;
}

/* The UTC instant of local midnight starting local day `days` in tz. The
 * offset is looked up at the guessed instant and once more (DST changes
 * never happen twice within a few hours). */
static int64_t local_midnight(const pr_tz_t *tz, int64_t days)
{
    int64_t local = days * 86400;
    int64_t t = local - pr_tz_offset(tz, local);
    return local - pr_tz_offset(tz, t);
}

void gw_period_bounds(const pr_tz_t *tz, gw_period_t period, int64_t now_s, int64_t *start_s,
                      int64_t *end_s, char *id, size_t idlen)
{
    if (period == GW_PERIOD_TOTAL) {
        *start_s = INT64_MIN;
        *end_s = INT64_MAX;
        snprintf(id, idlen, "total");
        return;
    }
    pr_local_t loc;
    pr_tz_local(tz, now_s, &loc);
    int64_t y;
    int m, d;
    pr_civil_from_days(loc.days, &y, &m, &d);
    if (period == GW_PERIOD_DAY) {
        *start_s = local_midnight(tz, loc.days);
        *end_s = local_midnight(tz, loc.days + 1);
        snprintf(id, idlen, "d%04lld-%02d-%02d", (long long)y, m, d);
        return;
    }
    *start_s = local_midnight(tz, pr_days_from_civil(y, m, 1));
    *end_s = local_midnight(tz, m == 12 ? pr_days_from_civil(y + 1, 1, 1)
                                        : pr_days_from_civil(y, m + 1, 1));
    snprintf(id, idlen, "m%04lld-%02d", (long long)y, m);
}

int gw_pico_to_micro_ceil(pr_pico_t pico, int64_t *out)
{
    if (pico < 0)
        pico = 0;
    pr_pico_t micro = (pico + 999999) / 1000000;
    if (micro > (pr_pico_t)INT64_MAX)
        return -1;
    *out = (int64_t)micro;
    return 0;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

int gw_hold_micro(const pr_book_t *book, const gw_config_t *cfg, const gw_model_cfg_t *model,
                  const int *routes, int n, int64_t prompt_tokens, int64_t max_tokens,
                  const char *currency, int64_t now_us, int64_t *out_micro, int *unpriced,
                  char *err, size_t errlen)
{
    pr_pico_t worst = 0;
    *unpriced = 0;
    if (prompt_tokens < 0)
        prompt_tokens = 0;
    for (int i = 0; i < n; i++) {
        const gw_route_cfg_t *r = &model->routes[routes[i]];
        const pr_card_t *card = NULL;
        const pr_window_t *win = NULL;
        char ferr[160];
        if (!book ||
            pr_book_find(book, cfg->providers[r->provider].name, r->upstream_model, now_us, &card,
                         &win, ferr, sizeof ferr) != 0 ||
            strcmp(card->currency->code, currency) != 0) {
            (*unpriced)++;
            continue;
        }
        int64_t miss = card->prices.cache_miss;
        int64_t out = max64(card->prices.output, card->prices.reasoning);
        if (win) {
            miss = max64(miss, win->prices.cache_miss);
            out = max64(out, max64(win->prices.output, win->prices.reasoning));
        }
        pr_pico_t a, b, sum;
        if (pr_cost(prompt_tokens, miss, &a, err, errlen) < 0 ||
            pr_cost(max_tokens, out, &b, err, errlen) < 0 ||
            pr_pico_add(a, b, &sum, err, errlen) < 0)
            return -1;
        if (sum > worst)
            worst = sum;
    }
    if (gw_pico_to_micro_ceil(worst, out_micro) < 0) {
        snprintf(err, errlen, "hold does not fit 64 bits");
        return -1;
    }
    return 0;
}
