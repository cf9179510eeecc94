/* Unit test for pricing/pr_book rules beyond DeepSeek's history: daily windows
 * in DST zones across the change, weekday masks with wrap, holiday calendars
 * (off-peak dates and exclusions), a leap day, precedence between matching
 * windows, percent conversion, ambiguity refused at finalize, and every bad
 * definition refused with a message. Also a consistency check of the indexed
 * lookup against a brute-force scan over a random book. */
#include "pr_test_book.h"

#include <stdlib.h>

#define US(y, mo, d, h, mi, s) utc_us(y, mo, d, h, mi, s)
#define FOREVER PR_FOREVER

static void test_dst_daily(void)
{
    pr_book_t *b = pr_book_new();
    CHECK(card(b, 1, "p", "m", "USD", 100, 200, 300, 0) == 0);
    /* Business hours 09:00-17:00 New York, weekdays, 20% off (test only). */
    CHECK(window(b, daily_def(10, 1, 5, "America/New_York", 9, 0, 17, 0, WEEKDAYS, 0, FOREVER,
                              2000)) == 0);
    /* Night 22:00-06:00 Berlin, every day. */
    CHECK(card(b, 2, "p", "night", "EUR", 100, 200, 300, 0) == 0);
    CHECK(window(b, daily_def(20, 2, 5, "Europe/Berlin", 22, 0, 6, 0, 0, 0, FOREVER, 5000)) == 0);
    CHECK(finish(b) == 0);
    /* Fri 2025-03-07 (EST, UTC-5): 09:00 local = 14:00Z */
    CHECK(win_at(b, "p", "m", US(2025, 3, 7, 14, 0, 0)) == 10);
    CHECK(win_at(b, "p", "m", US(2025, 3, 7, 14, 0, 0) - 1) == 0);
    CHECK(win_at(b, "p", "m", US(2025, 3, 7, 22, 0, 0) - 1) == 10);
    CHECK(win_at(b, "p", "m", US(2025, 3, 7, 22, 0, 0)) == 0);
    /* Sat 2025-03-08: weekend, not in the mask */
    CHECK(win_at(b, "p", "m", US(2025, 3, 8, 15, 0, 0)) == 0);
    /* Mon 2025-03-10 (EDT, UTC-4 since Sunday): 09:00 local = 13:00Z */
    CHECK(win_at(b, "p", "m", US(2025, 3, 10, 13, 0, 0)) == 10);
    CHECK(win_at(b, "p", "m", US(2025, 3, 10, 13, 0, 0) - 1) == 0);
    CHECK(win_at(b, "p", "m", US(2025, 3, 10, 21, 0, 0) - 1) == 10);
    CHECK(win_at(b, "p", "m", US(2025, 3, 10, 21, 0, 0)) == 0);
    /* percent converted to explicit prices at finalize: 80% of 100/200/300 */
    const pr_card_t *c;
    const pr_window_t *w;
    CHECK(pr_book_find(b, "p", "m", US(2025, 3, 10, 13, 0, 0), &c, &w, berr, sizeof berr) == 0);
    CHECK(w && w->prices.cache_hit == 80 && w->prices.cache_miss == 160 &&
          w->prices.output == 240 && w->prices.reasoning == 240 && w->percent_off_bp == 2000);
    /* Berlin fall back 2025-10-26 03:00 CEST -> 02:00 CET (01:00Z) */
    CHECK(win_at(b, "p", "night", US(2025, 10, 25, 20, 0, 0)) == 20); /* 22:00 CEST */
    CHECK(win_at(b, "p", "night", US(2025, 10, 25, 20, 0, 0) - 1) == 0);
    CHECK(win_at(b, "p", "night", US(2025, 10, 26, 4, 59, 59)) == 20); /* 05:59:59 CET */
    CHECK(win_at(b, "p", "night", US(2025, 10, 26, 5, 0, 0)) == 0);    /* 06:00 CET */
    /* the night before (CEST): 06:00 local = 04:00Z */
    CHECK(win_at(b, "p", "night", US(2025, 10, 25, 4, 0, 0)) == 0);
    CHECK(win_at(b, "p", "night", US(2025, 10, 25, 4, 0, 0) - 1) == 20);
    /* Berlin spring forward 2025-03-30: 22:00 CET on the 29th = 21:00Z */
    CHECK(win_at(b, "p", "night", US(2025, 3, 29, 21, 0, 0)) == 20);
    CHECK(win_at(b, "p", "night", US(2025, 3, 30, 4, 0, 0)) == 0); /* 06:00 CEST */
    CHECK(win_at(b, "p", "night", US(2025, 3, 30, 4, 0, 0) - 1) == 20);
    pr_book_free(b);
}

static void test_weekday_wrap_holiday_leap(void)
{
    pr_book_t *b = pr_book_new();
    CHECK(card(b, 1, "p", "fri", "USD", 100, 200, 300, 0) == 0);
    /* Friday nights only, 22:00-02:00 UTC: the mask is the day the night starts */
    CHECK(window(b, daily_def(1, 1, 1, "UTC", 22, 0, 2, 0, FRI, 0, FOREVER, 5000)) == 0);
    /* Leap day promotion and a leap-day holiday in Berlin */
    CHECK(card(b, 2, "p", "leap", "USD", 100, 200, 300, 0) == 0);
    CHECK(window(b, once_def(2, 2, 1, US(2024, 2, 29, 0, 0, 0), US(2024, 3, 1, 0, 0, 0), 1, 2,
                             3)) == 0);
    CHECK(pr_book_add_calendar(b, 7, "Europe/Berlin", berr, sizeof berr) == 0);
    CHECK(pr_book_add_holiday(b, 7, 2024, 2, 29, berr, sizeof berr) == 0);
    CHECK(pr_book_add_holiday(b, 7, 2024, 2, 29, berr, sizeof berr) == 0); /* repeat: harmless */
    CHECK(card(b, 3, "p", "hol", "EUR", 100, 200, 300, 0) == 0);
    pr_window_def_t h = once_def(3, 3, 1, 0, FOREVER, 10, 20, 30);
    h.kind = PR_WIN_HOLIDAY, h.calendar_id = 7;
    CHECK(window(b, h) == 0);
    /* Weekday business window 08:00-18:00 Berlin excluding the calendar's dates */
    pr_window_def_t ex =
        daily_def(4, 3, 1, "Europe/Berlin", 8, 0, 18, 0, WEEKDAYS, 0, FOREVER, 1000);
    ex.calendar_id = 7;
    CHECK(window(b, ex) == 0); /* same precedence as the holiday window: provably disjoint */
    /* the exclusion alone, without a holiday window to mask it */
    CHECK(card(b, 4, "p", "excl", "EUR", 100, 200, 300, 0) == 0);
    ex.id = 5, ex.card_id = 4;
    CHECK(window(b, ex) == 0);
    CHECK(finish(b) == 0);
    /* 2025-03-07 is a Friday */
    CHECK(win_at(b, "p", "fri", US(2025, 3, 7, 22, 0, 0)) == 1);
    CHECK(win_at(b, "p", "fri", US(2025, 3, 8, 1, 59, 59)) == 1); /* Sat early: Friday's night */
    CHECK(win_at(b, "p", "fri", US(2025, 3, 8, 2, 0, 0)) == 0);
    CHECK(win_at(b, "p", "fri", US(2025, 3, 8, 22, 30, 0)) == 0); /* Saturday night */
    CHECK(win_at(b, "p", "fri", US(2025, 3, 7, 1, 0, 0)) == 0);   /* Thursday's night */
    CHECK(win_at(b, "p", "fri", US(2025, 3, 7, 21, 59, 59)) == 0);
    /* leap day */
    CHECK(win_at(b, "p", "leap", US(2024, 2, 28, 23, 59, 59)) == 0);
    CHECK(win_at(b, "p", "leap", US(2024, 2, 29, 0, 0, 0)) == 2);
    CHECK(win_at(b, "p", "leap", US(2024, 2, 29, 23, 59, 59)) == 2);
    CHECK(win_at(b, "p", "leap", US(2024, 3, 1, 0, 0, 0)) == 0);
    /* holiday 2024-02-29 in Berlin (CET, UTC+1): [02-28 23:00Z, 02-29 23:00Z) */
    CHECK(win_at(b, "p", "hol", US(2024, 2, 28, 23, 0, 0) - 1) == 0);
    CHECK(win_at(b, "p", "hol", US(2024, 2, 28, 23, 0, 0)) == 3);
    CHECK(win_at(b, "p", "hol", US(2024, 2, 29, 12, 0, 0)) == 3); /* Thu 13:00: not business */
    CHECK(win_at(b, "p", "hol", US(2024, 2, 29, 23, 0, 0) - 1) == 3);
    CHECK(win_at(b, "p", "hol", US(2024, 2, 29, 23, 0, 0)) == 0);
    CHECK(win_at(b, "p", "hol", US(2024, 3, 1, 12, 0, 0)) == 4); /* Fri, ordinary day */
    CHECK(win_at(b, "p", "hol", US(2024, 2, 28, 12, 0, 0)) == 4);
    CHECK(win_at(b, "p", "hol", US(2024, 3, 2, 12, 0, 0)) == 0);   /* Saturday */
    CHECK(win_at(b, "p", "excl", US(2024, 2, 29, 12, 0, 0)) == 0); /* excluded date */
    CHECK(win_at(b, "p", "excl", US(2024, 2, 28, 12, 0, 0)) == 5);
    CHECK(win_at(b, "p", "excl", US(2024, 3, 1, 7, 0, 0)) == 5); /* 08:00 CET */
    CHECK(win_at(b, "p", "excl", US(2024, 3, 1, 7, 0, 0) - 1) == 0);
    pr_book_free(b);
}

/* DeepSeek's reported 2026 scheme: peak 01:00-04:00 and 06:00-10:00 UTC on
 * weekdays; the rest off-peak at half price; weekends off-peak from 2026-08-23;
 * Chinese statutory holidays off-peak (calendar in Asia/Shanghai). */
static void test_peak_scheme(void)
{
    int64_t from = US(2026, 8, 16, 16, 0, 0), wk = US(2026, 8, 23, 0, 0, 0);
    for (int attempt = 0; attempt < 2; attempt++) {
        pr_book_t *b = pr_book_new();
        CHECK(card(b, 1, "ds", "deepseek-flash", "USD", 6000, 300000, 1200000, from) == 0);
        CHECK(window(b, daily_def(1, 1, 10, "UTC", 4, 0, 6, 0, WEEKDAYS, from, FOREVER, 5000)) ==
              0);
        CHECK(window(b, daily_def(2, 1, 10, "UTC", 10, 0, 1, 0, WEEKDAYS, from, FOREVER, 5000)) ==
              0);
        /* Friday's 10:00-01:00 night reaches into Saturday 00:00-01:00: the weekend
         * window overlaps it. With equal precedence that is ambiguous. */
        CHECK(window(b, daily_def(3, 1, attempt == 0 ? 10 : 11, "UTC", 0, 0, 24, 0, WEEKEND, wk,
                                  FOREVER, 5000)) == 0);
        CHECK(pr_book_add_calendar(b, 1, "Asia/Shanghai", berr, sizeof berr) == 0);
        for (int d = 1; d <= 7; d++)
            CHECK(pr_book_add_holiday(b, 1, 2026, 10, d, berr, sizeof berr) == 0);
        pr_window_def_t h = once_def(4, 1, 20, from, FOREVER, 0, 0, 0);
        h.kind = PR_WIN_HOLIDAY, h.calendar_id = 1, h.use_percent = true, h.percent_off_bp = 5000;
        CHECK(window(b, h) == 0);
        if (attempt == 0) {
            CHECK_ERR(finish(b), berr, "windows 2 and 3 of card 1 (ds/deepseek-flash) can overlap");
            pr_book_free(b);
            continue;
        }
        CHECK(finish(b) == 0);
        const char *m = "deepseek-flash";
        CHECK(win_at(b, "ds", m, US(2026, 8, 17, 2, 0, 0)) == 0); /* Mon peak */
        CHECK(win_at(b, "ds", m, US(2026, 8, 17, 4, 0, 0)) == 1); /* Mon 04:00 off */
        CHECK(win_at(b, "ds", m, US(2026, 8, 17, 6, 0, 0)) == 0); /* peak again */
        CHECK(win_at(b, "ds", m, US(2026, 8, 17, 10, 0, 0)) == 2);
        CHECK(win_at(b, "ds", m, US(2026, 8, 18, 0, 59, 59)) == 2); /* Tue 00:59 (Mon's) */
        CHECK(win_at(b, "ds", m, US(2026, 8, 18, 1, 0, 0)) == 0);
        CHECK(win_at(b, "ds", m, US(2026, 8, 22, 2, 0, 0)) == 0);  /* Sat before 08-23: peak hrs */
        CHECK(win_at(b, "ds", m, US(2026, 8, 22, 0, 30, 0)) == 2); /* Fri's night */
        CHECK(win_at(b, "ds", m, US(2026, 8, 29, 0, 30, 0)) == 3); /* weekend outranks */
        CHECK(win_at(b, "ds", m, US(2026, 8, 29, 2, 0, 0)) == 3);
        CHECK(win_at(b, "ds", m, US(2026, 10, 1, 2, 0, 0)) == 4);     /* holiday, Thu peak hour */
        CHECK(win_at(b, "ds", m, US(2026, 9, 30, 17, 0, 0)) == 4);    /* Oct 1 01:00 Beijing */
        CHECK(win_at(b, "ds", m, US(2026, 9, 30, 15, 59, 59)) == 2);  /* Sep 30 23:59 Beijing */
        CHECK(win_at(b, "ds", m, US(2026, 10, 8, 2, 0, 0)) == 0);     /* ordinary Thu peak */
        CHECK(win_at(b, "ds", m, US(2026, 8, 16, 15, 59, 59)) == -1); /* before the card */
        pr_book_free(b);
    }
}

static void test_bad_definitions(void)
{
    pr_book_t *b = pr_book_new();
    pr_card_def_t cd = {1, "p", "m", "USD", {1, 2, 3, -1}, 0};
    CHECK(pr_book_add_card(b, &cd, berr, sizeof berr) == 0);
    pr_card_def_t bad = cd;
    bad.prices.cache_hit = -1;
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "cache-hit price -1 is negative");
    bad = cd, bad.prices.output = PR_PRICE_MAX + 1;
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "exceeds the cap");
    bad = cd, bad.prices.reasoning = -2;
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "reasoning price -2");
    bad = cd, bad.currency = "ABC";
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "unknown currency \"ABC\"");
    bad = cd, bad.id = 0;
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "id must be positive");
    bad = cd, bad.provider = "";
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "provider is empty");
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    bad = cd, bad.model = longname;
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "longer than 127");
    bad = cd, bad.effective_from_us = PR_FOREVER;
    CHECK_ERR(pr_book_add_card(b, &bad, berr, sizeof berr), berr, "effective-from");

    pr_window_def_t w = once_def(1, 1, 0, 100, 50, 1, 1, 1);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "ends before it starts");
    w = once_def(1, 1, 0, 100, 100, 1, 1, 1);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "ends before it starts");
    w = once_def(1, 1, 0, 0, 100, -7, 1, 1);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "cache-hit price -7");
    w = daily_def(1, 1, 0, "UTC", 5, 0, 5, 0, 0, 0, FOREVER, 10);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "start equals end");
    w = daily_def(1, 1, 0, "UTC", 24, 0, 5, 0, 0, 0, FOREVER, 10);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "daily start must be");
    w = daily_def(1, 1, 0, "UTC", 1, 0, 5, 0, 0x80, 0, FOREVER, 10);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "weekday mask");
    w = daily_def(1, 1, 0, "UTC", 1, 0, 5, 0, 0, 0, FOREVER, 10001);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "basis points");
    w = daily_def(1, 1, 0, NULL, 1, 0, 5, 0, 0, 0, FOREVER, 10);
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "zone is empty");
    w = once_def(1, 1, 0, 0, 100, 1, 1, 1);
    w.kind = PR_WIN_HOLIDAY;
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "needs a calendar");
    w.kind = (pr_window_kind_t)9;
    CHECK_ERR(pr_book_add_window(b, &w, berr, sizeof berr), berr, "unknown kind");
    CHECK_ERR(pr_book_add_holiday(b, 99, 2025, 1, 1, berr, sizeof berr), berr, "unknown calendar");
    CHECK(pr_book_add_calendar(b, 5, "UTC", berr, sizeof berr) == 0);
    CHECK_ERR(pr_book_add_calendar(b, 5, "UTC", berr, sizeof berr), berr, "defined twice");
    CHECK_ERR(pr_book_add_holiday(b, 5, 2025, 2, 29, berr, sizeof berr), berr,
              "2025-02-29 is not a valid date");
    CHECK_ERR(pr_book_add_holiday(b, 5, 2025, 13, 1, berr, sizeof berr), berr, "not a valid date");
    CHECK(pr_book_add_holiday(b, 5, 2024, 2, 29, berr, sizeof berr) == 0);
    CHECK_ERR(pr_book_set_tier(b, "p", (pr_tier_t)7, berr, sizeof berr), berr, "tier");
    CHECK_ERR(pr_book_set_tier(b, "", PR_TIER_START, berr, sizeof berr), berr, "empty");
    CHECK(finish(b) == 0);
    CHECK_ERR(pr_book_add_card(b, &cd, berr, sizeof berr), berr, "already finalized");
    pr_book_free(b);

    /* cross-checks at finalize: each its own book */
    struct {
        const char *needle;
        int what;
    } cases[] = {
        {"both take effect at 2025-01-01T00:00:00Z", 0},
        {"card id 1 used twice", 1},
        {"window 1 refers to unknown card 9", 2},
        {"window 1 refers to unknown calendar 4", 3},
        {"unknown time zone \"Mars/Base\"", 4},
        {"windows 1 and 2 of card 1 (p/m) can overlap with the same precedence 3", 5},
        {"windows 1 and 2 of card 1 (p/m) can overlap", 6},
        {"windows 1 and 2 of card 1 (p/m) can overlap", 7},
        {"window 1 (zone Europe/Berlin) excludes calendar 4 of another zone (UTC)", 8},
        {"window id 1 used twice", 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b = pr_book_new();
        int64_t t0 = US(2025, 1, 1, 0, 0, 0);
        CHECK(card(b, 1, "p", "m", "USD", 1, 2, 3, t0) == 0);
        switch (cases[i].what) {
        case 0:
            card(b, 2, "p", "m", "CNY", 1, 2, 3, t0);
            break;
        case 1:
            card(b, 1, "p", "other", "USD", 1, 2, 3, t0);
            break;
        case 2:
            window(b, once_def(1, 9, 0, 0, 10, 1, 1, 1));
            break;
        case 3: {
            pr_window_def_t h = once_def(1, 1, 0, 0, 10, 1, 1, 1);
            h.kind = PR_WIN_HOLIDAY, h.calendar_id = 4;
            window(b, h);
            break;
        }
        case 4:
            window(b, daily_def(1, 1, 0, "Mars/Base", 1, 0, 2, 0, 0, 0, FOREVER, 1));
            break;
        case 5: /* two promotions overlapping by one microsecond */
            window(b, once_def(1, 1, 3, t0, t0 + 10, 1, 1, 1));
            window(b, once_def(2, 1, 3, t0 + 9, t0 + 20, 1, 1, 1));
            break;
        case 6: /* same zone, overlapping hours on a shared weekday */
            window(b, daily_def(1, 1, 3, "UTC", 22, 0, 2, 0, SUN, 0, FOREVER, 1));
            window(b, daily_def(2, 1, 3, "UTC", 1, 0, 3, 0, MON, 0, FOREVER, 1));
            break;
        case 7: /* different zones: cannot be proven disjoint */
            window(b, daily_def(1, 1, 3, "UTC", 1, 0, 2, 0, 0, 0, FOREVER, 1));
            window(b, daily_def(2, 1, 3, "Asia/Shanghai", 1, 0, 2, 0, 0, 0, FOREVER, 1));
            break;
        case 8: {
            pr_book_add_calendar(b, 4, "UTC", berr, sizeof berr);
            pr_window_def_t d = daily_def(1, 1, 0, "Europe/Berlin", 1, 0, 2, 0, 0, 0, FOREVER, 1);
            d.calendar_id = 4;
            window(b, d);
            break;
        }
        case 9:
            window(b, once_def(1, 1, 0, 0, 10, 1, 1, 1));
            window(b, once_def(1, 1, 1, 0, 10, 1, 1, 1));
            break;
        }
        if (cases[i].what == 4) {
            CHECK_ERR(pr_book_load_zones(b, NULL, berr, sizeof berr), berr, cases[i].needle);
            CHECK_ERR(pr_book_finalize(b, berr, sizeof berr), berr, "was not loaded");
        } else {
            CHECK_ERR(finish(b), berr, cases[i].needle);
        }
        /* a failed book never answers */
        const pr_card_t *c;
        const pr_window_t *w2;
        CHECK(pr_book_find(b, "p", "m", t0, &c, &w2, berr, sizeof berr) != 0);
        pr_book_free(b);
    }

    /* Accepted: equal precedence but disjoint (hours, weekdays, or outside the card). */
    b = pr_book_new();
    CHECK(card(b, 1, "p", "m", "USD", 1, 2, 3, US(2025, 1, 1, 0, 0, 0)) == 0);
    CHECK(card(b, 2, "p", "m", "USD", 1, 2, 3, US(2025, 6, 1, 0, 0, 0)) == 0);
    CHECK(window(b, daily_def(1, 1, 3, "UTC", 22, 0, 2, 0, SUN, 0, FOREVER, 1)) == 0);
    CHECK(window(b, daily_def(2, 1, 3, "UTC", 2, 0, 3, 0, MON, 0, FOREVER, 1)) == 0);
    CHECK(window(b, daily_def(3, 1, 3, "UTC", 22, 0, 2, 0, TUE, 0, FOREVER, 1)) == 0);
    /* overlap only before card 1 takes effect: not ambiguous */
    CHECK(window(b, once_def(4, 1, 7, 0, US(2025, 1, 1, 0, 0, 0), 1, 1, 1)) == 0);
    CHECK(window(b, once_def(5, 1, 7, 0, US(2025, 1, 1, 0, 0, 0), 1, 1, 1)) == 0);
    /* higher precedence wins over an overlapping one */
    CHECK(window(b, once_def(6, 1, 8, US(2025, 2, 1, 0, 0, 0), US(2025, 3, 1, 0, 0, 0), 9, 9, 9)) ==
          0);
    CHECK(finish(b) == 0);
    CHECK(win_at(b, "p", "m", US(2025, 2, 2, 23, 0, 0)) == 6); /* Sun night: 6 outranks 1 */
    CHECK(win_at(b, "p", "m", US(2025, 3, 2, 23, 0, 0)) == 1);
    CHECK(win_at(b, "p", "m", US(2025, 3, 3, 2, 0, 0)) == 2);
    CHECK(win_at(b, "p", "m", US(2025, 6, 1, 23, 0, 0)) == 0); /* card 2 has no windows */
    pr_book_free(b);
}

/* Random book: the indexed lookup must agree with a brute-force scan. */
static void test_index_vs_scan(void)
{
    srand(7);
    pr_book_t *b = pr_book_new();
    char prov[8][8], model[16][8];
    for (int i = 0; i < 8; i++)
        snprintf(prov[i], sizeof prov[i], "p%d", i);
    for (int i = 0; i < 16; i++)
        snprintf(model[i], sizeof model[i], "m%d", i);
    int64_t id = 1, wid = 1, base = US(2024, 1, 1, 0, 0, 0);
    typedef struct {
        int p, m;
        int64_t from, id;
    } ref_card_t;
    static ref_card_t ref[2000];
    int nref = 0;
    for (int p = 0; p < 8; p++)
        for (int m = 0; m < 16; m++)
            for (int k = 0; k < 15; k++) {
                int64_t from =
                    base + (int64_t)k * 86400 * 30 * 1000000 + (rand() % 1000) * 1000000LL;
                CHECK(card(b, id, prov[p], model[m], "USD", 1, 2, 3, from) == 0);
                ref[nref++] = (ref_card_t){p, m, from, id};
                /* one promotion per card, in its first day */
                CHECK(window(b, once_def(wid++, id, 1, from, from + 86400000000LL, 1, 1, 1)) == 0);
                id++;
            }
    CHECK(finish(b) == 0);
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        int p = rand() % 8, m = rand() % 16;
        int64_t at = base - 86400000000LL + (int64_t)(rand() % 480) * 86400 * 1000000 +
                     (rand() % 86400) * 1000000LL;
        int64_t want = -1, wfrom = INT64_MIN;
        for (int k = 0; k < nref; k++)
            if (ref[k].p == p && ref[k].m == m && ref[k].from <= at && ref[k].from > wfrom)
                want = ref[k].id, wfrom = ref[k].from;
        int64_t got = card_at(b, prov[p], model[m], at);
        int64_t wgot = win_at(b, prov[p], model[m], at);
        int64_t wwant = want < 0 ? -1 : (at < wfrom + 86400000000LL ? want : 0);
        if (got != want || wgot != wwant)
            bad++;
    }
    CHECK(bad == 0);
    pr_book_free(b);
}

/* A card with its own reasoning price; charges additive over random usages. */
static void test_reasoning_and_additivity(void)
{
    pr_book_t *b = pr_book_new();
    pr_card_def_t d = {1, "p", "think", "USD", {100, 1000, 2000, 5000}, 0};
    CHECK(pr_book_add_card(b, &d, berr, sizeof berr) == 0);
    pr_window_def_t w =
        once_def(1, 1, 1, US(2025, 1, 1, 0, 0, 0), US(2025, 2, 1, 0, 0, 0), 0, 0, 0);
    w.use_percent = true, w.percent_off_bp = 2500;
    CHECK(window(b, w) == 0);
    CHECK(finish(b) == 0);
    int64_t at = US(2024, 6, 1, 0, 0, 0);
    pr_charge_t c;
    pr_usage_t u = {10, 4, 6, 100, 30, true};
    CHECK(pr_price_usage(b, "p", "think", at, at, &u, &c, berr, sizeof berr) == 0);
    CHECK(c.cost[PR_C_OUTPUT] == (pr_pico_t)70 * 2000 && c.cost[PR_C_REASONING] == 30 * 5000);
    CHECK(c.total == 4 * 100 + 6 * 1000 + 70 * 2000 + 30 * 5000 && c.flags == 0);
    u.reasoning = -1; /* split unknown and priced differently: flagged, all as output */
    CHECK(pr_price_usage(b, "p", "think", at, at, &u, &c, berr, sizeof berr) == 0);
    CHECK(c.flags == PR_FLAG_REASONING_UNKNOWN && c.cost[PR_C_OUTPUT] == 100 * 2000);
    /* the percent window discounts the reasoning price too: 5000 -> 3750 */
    at = US(2025, 1, 15, 0, 0, 0);
    u.reasoning = 30;
    CHECK(pr_price_usage(b, "p", "think", at, at, &u, &c, berr, sizeof berr) == 0);
    CHECK(c.window && c.prices.reasoning == 3750 && c.cost[PR_C_REASONING] == 30 * 3750);
    /* additivity and monotonicity of whole records */
    srand(11);
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        int64_t h1 = rand() % 1000000, m1 = rand() % 1000000, c1 = rand() % 100000;
        int64_t h2 = rand() % 1000000, m2 = rand() % 1000000, c2 = rand() % 100000;
        int64_t r1 = c1 ? rand() % (c1 + 1) : 0, r2 = c2 ? rand() % (c2 + 1) : 0;
        pr_usage_t a = {h1 + m1, h1, m1, c1, r1, true}, bb = {h2 + m2, h2, m2, c2, r2, true};
        pr_usage_t s2 = {h1 + m1 + h2 + m2, h1 + h2, m1 + m2, c1 + c2, r1 + r2, true};
        pr_usage_t more = {h1 + m1 + 1, h1, m1 + 1, c1 + 1, r1, true};
        pr_charge_t ca, cb, cs, cm;
        int64_t t = (i % 2) ? at : US(2024, 6, 1, 0, 0, 0);
        if (pr_price_usage(b, "p", "think", t, t, &a, &ca, berr, sizeof berr) ||
            pr_price_usage(b, "p", "think", t, t, &bb, &cb, berr, sizeof berr) ||
            pr_price_usage(b, "p", "think", t, t, &s2, &cs, berr, sizeof berr) ||
            pr_price_usage(b, "p", "think", t, t, &more, &cm, berr, sizeof berr) ||
            ca.total + cb.total != cs.total || cm.total < ca.total)
            bad++;
    }
    CHECK(bad == 0);
    pr_book_free(b);
}

int main(void)
{
    test_dst_daily();
    test_weekday_wrap_holiday_leap();
    test_peak_scheme();
    test_bad_definitions();
    test_index_vs_scan();
    test_reasoning_and_additivity();
    return test_done("test_book");
}
