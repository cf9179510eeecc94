/* Unit test of tollgatectl's price value parsers (no database): money in
 * decimal currency units, percentages, clock times, weekdays, ids, token
 * counts, and the amount/instant printers. Each bad input is refused with a
 * message that names the option. */
#include "ctl_price.h"

#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

int main(void)
{
    char err[512], buf[64];
    int64_t v;
    int32_t s;
    uint8_t m;

    CHECK(ctl_price_money_parse("--miss", "0.27", &v, err, sizeof err) == 0 && v == 270000);
    CHECK(ctl_price_money_parse("--miss", "2.19", &v, err, sizeof err) == 0 && v == 2190000);
    CHECK(ctl_price_money_parse("--miss", "0.000001", &v, err, sizeof err) == 0 && v == 1);
    CHECK(ctl_price_money_parse("--miss", "1000000", &v, err, sizeof err) == 0 &&
          v == PR_PRICE_MAX);
    const char *bad_money[] = {"-1", "1e3", "0.0000001", "1000000.000001", "", "abc", "+1", "1,5"};
    for (size_t i = 0; i < sizeof bad_money / sizeof bad_money[0]; i++) {
        err[0] = '\0';
        CHECK(ctl_price_money_parse("--hit", bad_money[i], &v, err, sizeof err) != 0);
        CHECK(strstr(err, "invalid --hit") != NULL);
    }

    int32_t bp;
    CHECK(ctl_price_percent_parse("50", &bp, err, sizeof err) == 0 && bp == 5000);
    CHECK(ctl_price_percent_parse("12.5", &bp, err, sizeof err) == 0 && bp == 1250);
    CHECK(ctl_price_percent_parse("0.01", &bp, err, sizeof err) == 0 && bp == 1);
    CHECK(ctl_price_percent_parse("100", &bp, err, sizeof err) == 0 && bp == 10000);
    CHECK(ctl_price_percent_parse("0", &bp, err, sizeof err) == 0 && bp == 0);
    const char *bad_pct[] = {"100.01", "150", "-5", "5.", ".5", "1.234", "12345", "5%", ""};
    for (size_t i = 0; i < sizeof bad_pct / sizeof bad_pct[0]; i++)
        CHECK(ctl_price_percent_parse(bad_pct[i], &bp, err, sizeof err) != 0 &&
              strstr(err, "--percent-off"));

    CHECK(ctl_price_clock_parse("--start", "16:30", false, &s, err, sizeof err) == 0 && s == 59400);
    CHECK(ctl_price_clock_parse("--end", "00:30", true, &s, err, sizeof err) == 0 && s == 1800);
    CHECK(ctl_price_clock_parse("--end", "24:00", true, &s, err, sizeof err) == 0 && s == 86400);
    CHECK(ctl_price_clock_parse("--end", "23:59:59", true, &s, err, sizeof err) == 0 && s == 86399);
    CHECK(ctl_price_clock_parse("--start", "24:00", false, &s, err, sizeof err) != 0);
    const char *bad_clock[] = {"25:00", "12:60", "1:30", "12:30:61", "24:01", "noon", ""};
    for (size_t i = 0; i < sizeof bad_clock / sizeof bad_clock[0]; i++)
        CHECK(ctl_price_clock_parse("--end", bad_clock[i], true, &s, err, sizeof err) != 0 &&
              strstr(err, "invalid --end"));

    CHECK(ctl_price_weekdays_parse("mon,tue,wed,thu,fri", &m, err, sizeof err) == 0 && m == 0x1f);
    CHECK(ctl_price_weekdays_parse("Sat,sun", &m, err, sizeof err) == 0 && m == 0x60);
    CHECK(ctl_price_weekdays_parse("weekends", &m, err, sizeof err) == 0 && m == 0x60);
    CHECK(ctl_price_weekdays_parse("all", &m, err, sizeof err) == 0 && m == 0x7f);
    const char *bad_days[] = {"funday", "mon,,tue", "", "monday", "mon,"};
    for (size_t i = 0; i < sizeof bad_days / sizeof bad_days[0]; i++)
        CHECK(ctl_price_weekdays_parse(bad_days[i], &m, err, sizeof err) != 0 &&
              strstr(err, "--weekdays"));

    CHECK(ctl_price_id_parse("--card", "42", &v, err, sizeof err) == 0 && v == 42);
    CHECK(ctl_price_id_parse("--card", "0", &v, err, sizeof err) != 0);
    CHECK(ctl_price_id_parse("--card", "-3", &v, err, sizeof err) != 0);
    CHECK(ctl_price_id_parse("--card", "12a", &v, err, sizeof err) != 0);
    CHECK(ctl_price_id_parse("--card", "99999999999999999999", &v, err, sizeof err) != 0);
    CHECK(ctl_price_int_parse("--precedence", "-7", -10, 10, &v, err, sizeof err) == 0 && v == -7);
    CHECK(ctl_price_tokens_parse("--hit", "1000000000000", &v, err, sizeof err) == 0);
    CHECK(ctl_price_tokens_parse("--hit", "1000000000001", &v, err, sizeof err) != 0);

    CHECK(ctl_price_instant_parse("--at", "2025-02-08T16:00:00Z", &v, err, sizeof err) == 0 &&
          v == INT64_C(1739030400000000));
    CHECK(ctl_price_instant_parse("--at", "2025-02-09T00:00:00+08:00", &v, err, sizeof err) == 0 &&
          v == INT64_C(1739030400000000));
    CHECK(ctl_price_instant_parse("--at", "2025-02-08 16:00", &v, err, sizeof err) != 0 &&
          strstr(err, "--at"));

    CHECK(strcmp(ctl_price_micro_format(270000, buf), "0.27") == 0);
    CHECK(strcmp(ctl_price_micro_format(0, buf), "0") == 0);
    CHECK(strcmp(ctl_price_micro_format(PR_PRICE_MAX, buf), "1000000") == 0);
    char t[40];
    CHECK(strcmp(ctl_price_instant_format(INT64_C(1739030400000000), t), "2025-02-08T16:00:00Z") ==
          0);
    CHECK(strcmp(ctl_price_instant_format(PR_FOREVER, t), "-") == 0);

    if (failures)
        fprintf(stderr, "test_ctl_price_parse: %d checks failed\n", failures);
    else
        printf("test_ctl_price_parse: all checks passed\n");
    return failures ? 1 : 0;
}
