/* Unit tests for gateway/gw_govern_calc and the downgrade mapping: budget
 * periods aligned in a zone (DST days, month and year ends), the worst-case
 * hold (miss price for the prompt, the dearer of output and reasoning for
 * max_tokens, the dearest of card and window and of every route, currency
 * filter, rounding up to micro-units), and overflow refused. */
#include <stdio.h>
#include <string.h>

#include "../gateway_core/check.h"
#include "gw_govern_calc.h"
#include "gw_govern_store.h"
#include "pr_tz.h"

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    return pr_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static void test_periods(void)
{
    pr_tz_t *paris;
    char err[256];
    if (pr_tz_load("Europe/Paris", NULL, &paris, err, sizeof err) < 0) {
        fprintf(stderr, "cannot load Europe/Paris: %s\n", err);
        check_failures++;
        return;
    }
    int64_t s, e;
    char id[16];
    /* 2026-03-29 is the spring-forward day in Paris: 23 hours long */
    gw_period_bounds(paris, GW_PERIOD_DAY, utc(2026, 3, 29, 12, 0), &s, &e, id, sizeof id);
    CHECK_STR(id, "d2026-03-29");
    CHECK(s == utc(2026, 3, 28, 23, 0)); /* local midnight, UTC+1 */
    CHECK(e == utc(2026, 3, 29, 22, 0)); /* next local midnight, UTC+2 */
    CHECK(e - s == 23 * 3600);
    /* 23:30 UTC on Nov 30 is already December 1 in Paris */
    gw_period_bounds(paris, GW_PERIOD_MONTH, utc(2026, 11, 30, 23, 30), &s, &e, id, sizeof id);
    CHECK_STR(id, "m2026-12");
    CHECK(s == utc(2026, 11, 30, 23, 0));
    CHECK(e == utc(2026, 12, 31, 23, 0));
    gw_period_bounds(paris, GW_PERIOD_MONTH, utc(2026, 12, 15, 0, 0), &s, &e, id, sizeof id);
    CHECK(e == utc(2026, 12, 31, 23, 0)); /* January 1 local midnight, across the year */
    gw_period_bounds(paris, GW_PERIOD_TOTAL, utc(2026, 1, 1, 0, 0), &s, &e, id, sizeof id);
    CHECK_STR(id, "total");
    CHECK(s == INT64_MIN && e == INT64_MAX);
    gw_period_t p;
    CHECK(gw_period_parse("day", &p) == 0 && p == GW_PERIOD_DAY);
    CHECK(gw_period_parse("month", &p) == 0 && p == GW_PERIOD_MONTH);
    CHECK(gw_period_parse("week", &p) == -1);
    pr_tz_free(paris);
}

static void test_hold(void)
{
    char err[256];
    pr_book_t *b = pr_book_new();
    /* card 1: provider a; reasoning dearer than output */
    pr_card_def_t c1 = {1, "a", "m", "USD", {70000, 280000, 420000, 1000000}, 0};
    /* card 2: provider b; a window that costs MORE than the card */
    pr_card_def_t c2 = {2, "b", "m", "USD", {70000, 200000, 300000, -1}, 0};
    /* card 3: provider c in CNY */
    pr_card_def_t c3 = {3, "c", "m", "CNY", {1, 9000000, 9000000, -1}, 0};
    CHECK(pr_book_add_card(b, &c1, err, sizeof err) == 0);
    CHECK(pr_book_add_card(b, &c2, err, sizeof err) == 0);
    CHECK(pr_book_add_card(b, &c3, err, sizeof err) == 0);
    pr_window_def_t w = {0};
    w.id = 1;
    w.card_id = 2;
    w.kind = PR_WIN_ONCE;
    w.valid_from_us = 0;
    w.valid_until_us = PR_FOREVER;
    w.prices = (pr_prices_t){70000, 900000, 800000, 800000};
    CHECK(pr_book_add_window(b, &w, err, sizeof err) == 0);
    if (pr_book_finalize(b, err, sizeof err) != 0) {
        fprintf(stderr, "finalize: %s\n", err);
        check_failures++;
        pr_book_free(b);
        return;
    }
    static gw_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.providers[0].name, sizeof cfg.providers[0].name, "a");
    snprintf(cfg.providers[1].name, sizeof cfg.providers[1].name, "b");
    snprintf(cfg.providers[2].name, sizeof cfg.providers[2].name, "c");
    snprintf(cfg.providers[3].name, sizeof cfg.providers[3].name, "unpriced");
    cfg.n_providers = 4;
    gw_model_cfg_t m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < 4; i++) {
        m.routes[i].provider = i;
        snprintf(m.routes[i].upstream_model, sizeof m.routes[i].upstream_model, "m");
    }
    m.n_routes = 4;
    int64_t now = (int64_t)utc(2026, 6, 1, 0, 0) * 1000000;
    int64_t hold;
    int unpriced;
    int r0[] = {0};
    /* 100 prompt x 280000 + 10 x max(420000, 1000000) = 28e6 + 10e6 = 38e6 pico = 38 micro */
    CHECK(gw_hold_micro(b, &cfg, &m, r0, 1, 100, 10, "USD", now, &hold, &unpriced, err,
                        sizeof err) == 0);
    CHECK(hold == 38 && unpriced == 0);
    /* one more prompt token: 38.28 micro, rounded up */
    CHECK(gw_hold_micro(b, &cfg, &m, r0, 1, 101, 10, "USD", now, &hold, &unpriced, err,
                        sizeof err) == 0 &&
          hold == 39);
    /* route b: the window (900000 / 800000) is dearer than the card: 100 x 900000 + 10 x 800000 */
    int r1[] = {1};
    CHECK(gw_hold_micro(b, &cfg, &m, r1, 1, 100, 10, "USD", now, &hold, &unpriced, err,
                        sizeof err) == 0 &&
          hold == 98);
    /* every route may serve it: the dearest counts; CNY and unpriced routes add nothing */
    int all[] = {0, 1, 2, 3};
    CHECK(gw_hold_micro(b, &cfg, &m, all, 4, 100, 10, "USD", now, &hold, &unpriced, err,
                        sizeof err) == 0 &&
          hold == 98 && unpriced == 2);
    CHECK(gw_hold_micro(b, &cfg, &m, all, 4, 100, 10, "CNY", now, &hold, &unpriced, err,
                        sizeof err) == 0 &&
          hold == 990 && unpriced == 3);
    /* no price book yet: nothing priced, hold 0 */
    CHECK(gw_hold_micro(NULL, &cfg, &m, all, 4, 100, 10, "USD", now, &hold, &unpriced, err,
                        sizeof err) == 0 &&
          hold == 0 && unpriced == 4);
    /* absurd token counts are refused, never wrapped */
    CHECK(gw_hold_micro(b, &cfg, &m, r0, 1, INT64_MAX, 10, "USD", now, &hold, &unpriced, err,
                        sizeof err) == -1);
    pr_book_free(b);
}

static void test_small(void)
{
    int64_t v;
    CHECK(gw_pico_to_micro_ceil(0, &v) == 0 && v == 0);
    CHECK(gw_pico_to_micro_ceil(1, &v) == 0 && v == 1);
    CHECK(gw_pico_to_micro_ceil(1000000, &v) == 0 && v == 1);
    CHECK(gw_pico_to_micro_ceil(1000001, &v) == 0 && v == 2);
    CHECK(gw_pico_to_micro_ceil((pr_pico_t)INT64_MAX * 1000000 * 4, &v) == -1);
    char out[64];
    CHECK(gw_gov_downgrade_lookup("deepseek-reasoner=deepseek-chat,big=small", "big", out,
                                  sizeof out));
    CHECK_STR(out, "small");
    CHECK(gw_gov_downgrade_lookup("deepseek-reasoner=deepseek-chat", "deepseek-reasoner", out,
                                  sizeof out));
    CHECK_STR(out, "deepseek-chat");
    CHECK(!gw_gov_downgrade_lookup("deepseek-reasoner=deepseek-chat", "deepseek", out, sizeof out));
    CHECK(!gw_gov_downgrade_lookup("", "x", out, sizeof out));
    CHECK(!gw_gov_downgrade_lookup("broken", "broken", out, sizeof out));
}

int main(void)
{
    test_periods();
    test_hold();
    test_small();
    return CHECK_DONE();
}
