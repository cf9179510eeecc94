/* Unit tests for gateway/gw_hedge: the hedge threshold from the model, the
 * latency need and the request header, and the per-minute cap. */
#include "gw_hedge.h"

#include "check.h"

static int threshold(const char *header, int model, int64_t target, int *out)
{
    char err[256] = "";
    int rc = gw_hedge_threshold(header, model, target, out, err, sizeof err);
    if (rc != 0)
        CHECK(strstr(err, GW_HEDGE_HEADER) != NULL); /* the error names the header */
    return rc;
}

int main(void)
{
    int after = -1;
    /* the model's threshold applies to a request with a latency need */
    CHECK(threshold(NULL, 200, 1500, &after) == 0 && after == 200);
    /* no latency need, or a model that is never hedged: no hedge */
    CHECK(threshold(NULL, 200, 0, &after) == 0 && after == 0);
    CHECK(threshold(NULL, 0, 1500, &after) == 0 && after == 0);
    CHECK(threshold("50", 0, 1500, &after) == 0 && after == 0); /* cannot turn it on */
    /* the header lowers, never raises, and 0 turns the hedge off */
    CHECK(threshold("80", 200, 1500, &after) == 0 && after == 80);
    CHECK(threshold("900", 200, 1500, &after) == 0 && after == 200);
    CHECK(threshold("0", 200, 1500, &after) == 0 && after == 0);
    /* bad values are refused, even where the model is never hedged */
    const char *bad[] = {"", "-1", "abc", "12ms", "600001", "+5", " 5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        after = 7;
        CHECK(threshold(bad[i], 200, 1500, &after) == -1 && after == 0);
        CHECK(threshold(bad[i], 0, 0, &after) == -1);
    }
    CHECK(threshold("600000", 600000, 1, &after) == 0 && after == 600000);

    /* the cap: max_per_minute per wall-clock minute, then a fresh budget */
    int64_t minute = 29000000LL * 60000000; /* some minute's first microsecond */
    CHECK(!gw_hedge_take(0, minute));
    int taken = 0;
    for (int i = 0; i < 5; i++)
        taken += gw_hedge_take(3, minute + i * 1000000);
    CHECK(taken == 3);
    CHECK(!gw_hedge_take(3, minute + 59999999));
    CHECK(gw_hedge_take(3, minute + 60000000)); /* the next minute */
    CHECK(gw_hedge_take(3, minute + 60000001));
    CHECK(gw_hedge_take(3, minute + 60000002));
    CHECK(!gw_hedge_take(3, minute + 60000003));
    return CHECK_DONE();
}
