/* Unit tests for gateway/pg/gw_govern_admin's value checks (shared by the
 * admin HTTP API and tollgatectl): amounts (exact decimals to micro-units,
 * negatives, too many decimals, exponents, the CHECK's maximum), budgets
 * (defaults, soft against hard, currency, period, zone, policy, downgrade
 * mapping, webhook URL; each refusal names its field), limits and team names.
 * The writes themselves are tested against PostgreSQL by
 * tests/integration/govern_admin.mjs. */
#include <stdio.h>
#include <string.h>

#include "../gateway_core/check.h"
#include "gw_govern_admin.h"

static void test_amounts(void)
{
    int64_t v = -1;
    char err[256];
    CHECK(gw_gov_amount_parse("hard", "500", &v, err, sizeof err) == 0 && v == 500000000);
    CHECK(gw_gov_amount_parse("hard", "12.50", &v, err, sizeof err) == 0 && v == 12500000);
    CHECK(gw_gov_amount_parse("hard", "0.000001", &v, err, sizeof err) == 0 && v == 1);
    CHECK(gw_gov_amount_parse("hard", ".5", &v, err, sizeof err) == 0 && v == 500000);
    CHECK(gw_gov_amount_parse("hard", "0", &v, err, sizeof err) == 0 && v == 0);
    CHECK(gw_gov_amount_parse("hard", "3999999999.999999", &v, err, sizeof err) == 0 &&
          v == GW_GOV_AMOUNT_MAX);
    CHECK(gw_gov_amount_parse("hard", "4000000000", &v, err, sizeof err) == -1);
    CHECK(gw_gov_amount_parse("hard", "99999999999999999999999", &v, err, sizeof err) == -1);
    CHECK(gw_gov_amount_parse("hard", "-5", &v, err, sizeof err) == -1);
    CHECK(strstr(err, "negative") != NULL && strstr(err, "hard") == err);
    CHECK(gw_gov_amount_parse("soft", "1.0000001", &v, err, sizeof err) == -1);
    CHECK(strstr(err, "at most 6 decimals") != NULL);
    const char *bad[] = {"", ".", "12.", "1e3", "1,5", " 1", "1 ", "0x10", "1.2.3", "+1", NULL};
    for (int i = 0; bad[i]; i++)
        CHECK(gw_gov_amount_parse("hard", bad[i], &v, err, sizeof err) == -1);
}

static gw_gov_budget_spec_t budget(int64_t hard, int64_t soft)
{
    gw_gov_budget_spec_t b;
    memset(&b, 0, sizeof b);
    b.hard_micro = hard;
    b.soft_micro = soft;
    return b;
}

/* Whether spec b is refused on field `param`. */
static bool refused_on(gw_gov_budget_spec_t b, const char *param)
{
    const char *p = NULL;
    char err[256];
    int rc = gw_gov_budget_check(&b, &p, err, sizeof err);
    if (rc == 0 || !p || strcmp(p, param)) {
        fprintf(stderr, "expected a refusal on %s, got rc %d param %s (%s)\n", param, rc,
                p ? p : "-", rc ? err : "");
        return false;
    }
    return strncmp(err, param, strlen(param)) == 0; /* the message names the field first */
}

static void test_budgets(void)
{
    const char *p;
    char err[256];
    gw_gov_budget_spec_t b = budget(5000000, 0);
    CHECK(gw_gov_budget_check(&b, &p, err, sizeof err) == 0);
    CHECK_STR(b.currency, "USD");
    CHECK_STR(b.period, "month");
    CHECK_STR(b.zone, "UTC");
    CHECK_STR(b.policy, "alert");
    CHECK_STR(b.downgrades, "");
    CHECK(b.webhook == NULL);
    b = budget(5000000, 5000000); /* soft = hard is allowed */
    b.currency = "CNY";
    b.period = "day";
    b.zone = "Asia/Shanghai";
    b.policy = "downgrade";
    b.downgrades = "deepseek-reasoner=deepseek-chat,a/b:c=d.e";
    b.webhook = "http://alerts.internal:9000/tollgate?x=1";
    CHECK(gw_gov_budget_check(&b, &p, err, sizeof err) == 0);

    CHECK(refused_on(budget(0, 0), "hard"));
    CHECK(refused_on(budget(-1, 0), "hard"));
    CHECK(refused_on(budget(GW_GOV_AMOUNT_MAX + 1, 0), "hard"));
    CHECK(refused_on(budget(5, 6), "soft"));
    CHECK(refused_on(budget(5, -1), "soft"));
    b = budget(5, 0);
    b.currency = "XXZ";
    CHECK(refused_on(b, "currency"));
    b = budget(5, 0);
    b.period = "week";
    CHECK(refused_on(b, "period"));
    const char *zones[] = {"Mars/Olympus", "../../etc/passwd", "/UTC", "Europe//Paris", "", NULL};
    for (int i = 0; zones[i]; i++) {
        b = budget(5, 0);
        b.zone = zones[i];
        CHECK(refused_on(b, "zone"));
    }
    b = budget(5, 0);
    b.policy = "panic";
    CHECK(refused_on(b, "policy"));
    b = budget(5, 0);
    b.policy = "downgrade";
    CHECK(refused_on(b, "downgrades"));
    const char *maps[] = {"a=", "=b", "a=b,", "a=b,,c=d", "a b=c", "a=b=c", NULL};
    for (int i = 0; maps[i]; i++) {
        b = budget(5, 0);
        b.downgrades = maps[i];
        CHECK(refused_on(b, "downgrades"));
    }
    const char *hooks[] = {"https://x/y", "http://",      "http://x:0/", "http://x:123456/",
                           "http://x y/", "http://x/a b", "ftp://x",     NULL};
    for (int i = 0; hooks[i]; i++) {
        b = budget(5, 0);
        b.webhook = hooks[i];
        CHECK(refused_on(b, "webhook"));
    }
}

static void test_limits_and_names(void)
{
    const char *p;
    char err[256];
    gw_gov_limit_spec_t l = {600, 0, 0};
    CHECK(gw_gov_limit_check(&l, &p, err, sizeof err) == 0);
    l = (gw_gov_limit_spec_t){0, 0, 0};
    CHECK(gw_gov_limit_check(&l, &p, err, sizeof err) == -1 && strstr(err, "at least one"));
    l = (gw_gov_limit_spec_t){1, -1, 0};
    CHECK(gw_gov_limit_check(&l, &p, err, sizeof err) == -1);
    CHECK_STR(p, "tpm");
    l = (gw_gov_limit_spec_t){1, 0, GW_GOV_COUNT_MAX + 1};
    CHECK(gw_gov_limit_check(&l, &p, err, sizeof err) == -1);
    CHECK_STR(p, "concurrent");
    CHECK(gw_gov_team_name_ok("research"));
    CHECK(gw_gov_team_name_ok("a.b_c-9"));
    CHECK(!gw_gov_team_name_ok(""));
    CHECK(!gw_gov_team_name_ok("-x"));
    CHECK(!gw_gov_team_name_ok("bad name"));
    CHECK(!gw_gov_team_name_ok("a%20b"));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    CHECK(!gw_gov_team_name_ok(long_name));
}

int main(void)
{
    test_amounts();
    test_budgets();
    test_limits_and_names();
    return CHECK_DONE();
}
