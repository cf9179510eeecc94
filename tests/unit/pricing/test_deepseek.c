/* Unit test for pricing against DeepSeek's published history (PRICES.md):
 * the worked examples in USD and CNY, the promotion's first and last instants,
 * both edges of the daily off-peak window (inclusive start, exclusive end, wrap
 * past midnight), its validity start and end, a request that straddles the
 * window's start under both tier-instant settings, V3.1 and V3.2, reasoning
 * tokens, and incomplete usage. The book is built here as the seed builds it. */
#include "pr_test_book.h"

#define US(y, mo, d, h, mi, s) utc_us(y, mo, d, h, mi, s)

static const char *CHAT = "deepseek-chat", *R1 = "deepseek-reasoner";

/* One provider (billing account) per currency: "deepseek" (USD), "deepseek-cny" (CNY). */
static pr_book_t *build(pr_tier_t tier)
{
    pr_book_t *b = pr_book_new();
    int64_t promo_end = US(2025, 2, 8, 16, 0, 0), op_from = US(2025, 2, 26, 16, 30, 0),
            v31 = US(2025, 9, 5, 16, 0, 0);
    int rc = 0;
    /* USD */
    rc |= card(b, 1, "deepseek", CHAT, "USD", 70000, 270000, 1100000, US(2024, 12, 26, 0, 0, 0));
    rc |= window(b,
                 once_def(101, 1, 10, US(2024, 12, 26, 0, 0, 0), promo_end, 14000, 140000, 280000));
    rc |= card(b, 2, "deepseek", R1, "USD", 140000, 550000, 2190000, US(2025, 1, 20, 0, 0, 0));
    rc |= card(b, 3, "deepseek", CHAT, "USD", 70000, 270000, 1100000, promo_end);
    rc |= window(b, daily_def(102, 3, 10, "UTC", 16, 30, 0, 30, 0, op_from, v31, 5000));
    pr_window_def_t r1op = daily_def(103, 2, 10, "UTC", 16, 30, 0, 30, 0, op_from, v31, 0);
    r1op.use_percent = false; /* published: 0.035/0.135/0.55, not exactly 75% off */
    r1op.prices = (pr_prices_t){35000, 135000, 550000, -1};
    rc |= window(b, r1op);
    rc |= card(b, 4, "deepseek", CHAT, "USD", 70000, 560000, 1680000, v31);
    rc |= card(b, 5, "deepseek", R1, "USD", 70000, 560000, 1680000, v31);
    rc |= card(b, 6, "deepseek", CHAT, "USD", 28000, 280000, 420000, US(2025, 9, 29, 0, 0, 0));
    rc |= card(b, 7, "deepseek", R1, "USD", 28000, 280000, 420000, US(2025, 9, 29, 0, 0, 0));
    /* CNY */
    rc |= card(b, 11, "deepseek-cny", CHAT, "CNY", 500000, 2000000, 8000000,
               US(2024, 12, 26, 0, 0, 0));
    rc |= window(
        b, once_def(111, 11, 10, US(2024, 12, 26, 0, 0, 0), promo_end, 100000, 1000000, 2000000));
    rc |= card(b, 12, "deepseek-cny", R1, "CNY", 1000000, 4000000, 16000000,
               US(2025, 1, 20, 0, 0, 0));
    rc |= card(b, 13, "deepseek-cny", CHAT, "CNY", 500000, 2000000, 8000000, promo_end);
    rc |= window(b, daily_def(112, 13, 10, "UTC", 16, 30, 0, 30, 0, op_from, v31, 5000));
    rc |= window(b, daily_def(113, 12, 10, "UTC", 16, 30, 0, 30, 0, op_from, v31, 7500));
    rc |= card(b, 14, "deepseek-cny", CHAT, "CNY", 500000, 4000000, 12000000, v31);
    rc |= card(b, 15, "deepseek-cny", R1, "CNY", 500000, 4000000, 12000000, v31);
    if (tier == PR_TIER_START) {
        rc |= pr_book_set_tier(b, "deepseek", PR_TIER_START, berr, sizeof berr);
        rc |= pr_book_set_tier(b, "deepseek-cny", PR_TIER_START, berr, sizeof berr);
    }
    rc |= finish(b);
    CHECK(rc == 0);
    return b;
}

static const pr_usage_t example = {1000000, 400000, 600000, 1000000, -1, true};

/* Exact total of a usage at completion instant `at` (start = at - 1 minute). */
static const char *total(const pr_book_t *b, const char *prov, const char *model, int64_t at,
                         const pr_usage_t *u)
{
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    pr_charge_t c;
    if (pr_price_usage(b, prov, model, at - 60000000, at, u, &c, berr, sizeof berr) != 0) {
        snprintf(buf[k], sizeof buf[k], "error: %s", berr);
        return buf[k];
    }
    pr_pico_format(c.total, 0, buf[k], sizeof buf[k]);
    return buf[k];
}

static void test_worked_examples(const pr_book_t *b)
{
    int64_t day = US(2025, 3, 1, 12, 0, 0), night = US(2025, 3, 1, 17, 0, 0);
    CHECK_STR(total(b, "deepseek", CHAT, day, &example), "1.29");
    CHECK_STR(total(b, "deepseek-cny", CHAT, day, &example), "9.4");
    CHECK_STR(total(b, "deepseek", R1, day, &example), "2.576");
    CHECK_STR(total(b, "deepseek-cny", R1, day, &example), "18.8");
    CHECK_STR(total(b, "deepseek", CHAT, night, &example), "0.645");
    CHECK_STR(total(b, "deepseek-cny", CHAT, night, &example), "4.7");
    CHECK_STR(total(b, "deepseek", R1, night, &example), "0.645");
    CHECK_STR(total(b, "deepseek-cny", R1, night, &example), "4.7");

    /* Components and what applied, for finance. */
    pr_charge_t c;
    CHECK(pr_price_usage(b, "deepseek", CHAT, night, night, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.card->id == 3 && c.window && c.window->id == 102 && c.window->percent_off_bp == 5000);
    CHECK(c.prices.cache_hit == 35000 && c.prices.cache_miss == 135000 &&
          c.prices.output == 550000);
    char s[64];
    pr_pico_format(c.cost[PR_C_HIT], 0, s, sizeof s);
    CHECK_STR(s, "0.014");
    pr_pico_format(c.cost[PR_C_MISS], 0, s, sizeof s);
    CHECK_STR(s, "0.081");
    pr_pico_format(c.cost[PR_C_OUTPUT], 0, s, sizeof s);
    CHECK_STR(s, "0.55");
    CHECK(c.cost[PR_C_REASONING] == 0 && c.flags == 0 && c.decided_at_us == night);
    CHECK(strcmp(c.card->currency->code, "USD") == 0);
    /* Presentation: once, half-even to the cent. 2.576 -> 2.58; 0.645 -> 0.64. */
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &example, &c, berr, sizeof berr) == 0);
    pr_pico_t r;
    CHECK(pr_pico_round(c.total, c.card->currency->minor, &r) == 0);
    pr_pico_format(r, c.card->currency->minor, s, sizeof s);
    CHECK_STR(s, "2.58");
    CHECK(pr_price_usage(b, "deepseek", CHAT, night, night, &example, &c, berr, sizeof berr) == 0);
    CHECK(pr_pico_round(c.total, 2, &r) == 0);
    pr_pico_format(r, 2, s, sizeof s);
    CHECK_STR(s, "0.64");
}

static void test_promotion_edges(const pr_book_t *b)
{
    /* Promotion: 0.4M × 0.014 + 0.6M × 0.14 + 1M × 0.28 = 0.3696 */
    int64_t first = US(2024, 12, 26, 0, 0, 0), end = US(2025, 2, 8, 16, 0, 0);
    CHECK(win_at(b, "deepseek", CHAT, first) == 101);
    CHECK_STR(total(b, "deepseek", CHAT, first, &example), "0.3696");
    CHECK_STR(total(b, "deepseek-cny", CHAT, first, &example), "2.64");
    CHECK(win_at(b, "deepseek", CHAT, end - 1) == 101);
    CHECK(card_at(b, "deepseek", CHAT, end - 1) == 1);
    CHECK_STR(total(b, "deepseek", CHAT, end - 1, &example), "0.3696");
    CHECK(win_at(b, "deepseek", CHAT, end) == 0);
    CHECK(card_at(b, "deepseek", CHAT, end) == 3);
    CHECK_STR(total(b, "deepseek", CHAT, end, &example), "1.29");
    /* before the first card: refused, not priced at zero */
    CHECK(win_at(b, "deepseek", CHAT, first - 1) == -1 && strstr(berr, "no price card"));
    printf("  refused as expected: %s\n", berr);
    /* R1 was never in the promotion */
    CHECK(win_at(b, "deepseek", R1, US(2025, 1, 25, 0, 0, 0)) == 0);
    CHECK_STR(total(b, "deepseek", R1, US(2025, 1, 25, 0, 0, 0), &example), "2.576");
    CHECK(win_at(b, "deepseek", R1, US(2025, 1, 19, 23, 59, 59)) == -1);
}

static void test_window_edges(const pr_book_t *b)
{
    /* inclusive start, exclusive end, wrap past midnight (UTC 16:30 - 00:30) */
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 3, 1, 16, 30, 0)) == 102);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 3, 1, 16, 30, 0) - 1) == 0);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 3, 1, 23, 59, 59)) == 102);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 3, 2, 0, 0, 0)) == 102);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 3, 2, 0, 30, 0) - 1) == 102);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 3, 2, 0, 30, 0)) == 0);
    CHECK(win_at(b, "deepseek", R1, US(2025, 3, 2, 0, 30, 0) - 1) == 103);
    CHECK(win_at(b, "deepseek-cny", R1, US(2025, 3, 2, 0, 30, 0) - 1) == 113);
    /* validity: from 2025-02-26 16:30 (first night), until 2025-09-05 16:00 */
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 2, 26, 16, 30, 0) - 1) == 0);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 2, 26, 16, 30, 0)) == 102);
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 2, 26, 0, 15, 0)) == 0);   /* night before */
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 9, 5, 0, 29, 59)) == 102); /* last night */
    CHECK(win_at(b, "deepseek", CHAT, US(2025, 9, 5, 16, 30, 0)) == 0);   /* V3.1: ended */
    CHECK(card_at(b, "deepseek", CHAT, US(2025, 9, 5, 16, 0, 0)) == 4);
    CHECK(card_at(b, "deepseek", CHAT, US(2025, 9, 5, 16, 0, 0) - 1) == 3);
    /* V3.1 and V3.2 (USD): 0.4×0.07+0.6×0.56+1.68 = 2.044; 0.4×0.028+0.6×0.28+0.42 = 0.5992 */
    CHECK_STR(total(b, "deepseek", R1, US(2025, 9, 10, 17, 0, 0), &example), "2.044");
    CHECK_STR(total(b, "deepseek-cny", R1, US(2025, 9, 10, 17, 0, 0), &example), "14.6");
    CHECK_STR(total(b, "deepseek", CHAT, US(2025, 10, 1, 0, 0, 0), &example), "0.5992");
    CHECK(card_at(b, "deepseek", CHAT, US(2025, 9, 29, 0, 0, 0) - 1) == 4);
    CHECK(card_at(b, "deepseek", CHAT, US(2025, 9, 29, 0, 0, 0)) == 6);
    /* CNY has no V3.2 row in the brief: V3.1 stays in force */
    CHECK(card_at(b, "deepseek-cny", CHAT, US(2026, 1, 1, 0, 0, 0)) == 14);
}

static void test_straddle(void)
{
    pr_book_t *bc = build(PR_TIER_COMPLETION), *bs = build(PR_TIER_START);
    CHECK(pr_book_tier(bc, "deepseek") == PR_TIER_COMPLETION);
    CHECK(pr_book_tier(bs, "deepseek") == PR_TIER_START);
    pr_charge_t c;
    int64_t start = US(2025, 3, 1, 16, 29, 0), done = US(2025, 3, 1, 16, 31, 0);
    /* starts before the window, completes inside: completion rule -> off-peak */
    CHECK(pr_price_usage(bc, "deepseek", CHAT, start, done, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.window && c.window->id == 102 && c.decided_at_us == done);
    /* start rule -> standard */
    CHECK(pr_price_usage(bs, "deepseek", CHAT, start, done, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.window == NULL && c.decided_at_us == start);
    /* starts inside, completes after 00:30: the other way round */
    start = US(2025, 3, 2, 0, 29, 0), done = US(2025, 3, 2, 0, 31, 0);
    CHECK(pr_price_usage(bc, "deepseek", CHAT, start, done, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.window == NULL);
    CHECK(pr_price_usage(bs, "deepseek", CHAT, start, done, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.window && c.window->id == 102);
    /* straddling the promotion's end */
    start = US(2025, 2, 8, 15, 59, 0), done = US(2025, 2, 8, 16, 1, 0);
    CHECK(pr_price_usage(bc, "deepseek", CHAT, start, done, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.card->id == 3 && c.window == NULL);
    CHECK(pr_price_usage(bs, "deepseek", CHAT, start, done, &example, &c, berr, sizeof berr) == 0);
    CHECK(c.card->id == 1 && c.window && c.window->id == 101);
    pr_book_free(bc);
    pr_book_free(bs);
}

static void test_usage_fields(const pr_book_t *b)
{
    int64_t day = US(2025, 3, 1, 12, 0, 0);
    pr_charge_t c;
    /* real response: prompt 102056 = hit 94464 + miss 7592; reasoning inside completion */
    pr_usage_t u = {102056, 94464, 7592, 1000, 600, true};
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &u, &c, berr, sizeof berr) == 0);
    CHECK(c.tokens[PR_C_HIT] == 94464 && c.tokens[PR_C_MISS] == 7592 &&
          c.tokens[PR_C_OUTPUT] == 400 && c.tokens[PR_C_REASONING] == 600 && c.flags == 0);
    /* 94464×0.14 + 7592×0.55 + 1000×2.19 (micro per 1M) = 0.01322496+0.0041756+0.00219 */
    char s[64];
    pr_pico_format(c.total, 0, s, sizeof s);
    CHECK_STR(s, "0.01959056");
    /* reasoning is never added twice: same total as without the split */
    pr_usage_t u2 = {102056, 94464, 7592, 1000, -1, true};
    pr_charge_t c2;
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &u2, &c2, berr, sizeof berr) == 0);
    CHECK(c2.total == c.total && c2.flags == 0);
    /* hit only (OpenAI-style cached_tokens): miss derived exactly */
    pr_usage_t u3 = {102056, 94464, -1, 1000, -1, true};
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &u3, &c2, berr, sizeof berr) == 0);
    CHECK(c2.total == c.total && c2.tokens[PR_C_MISS] == 7592 && c2.flags == 0);
    /* incomplete: stream cut short, no usage at all -> zero but flagged */
    pr_usage_t none = {-1, -1, -1, -1, -1, false};
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &none, &c2, berr, sizeof berr) == 0);
    CHECK(c2.total == 0 && (c2.flags & PR_FLAG_REPORTED_INCOMPLETE) &&
          (c2.flags & PR_FLAG_PROMPT_UNKNOWN) && (c2.flags & PR_FLAG_COMPLETION_UNKNOWN));
    /* prompt known, completion unknown: prompt priced, flagged */
    pr_usage_t half = {102056, 94464, 7592, -1, -1, false};
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &half, &c2, berr, sizeof berr) == 0);
    CHECK(c2.total == c.cost[PR_C_HIT] + c.cost[PR_C_MISS] &&
          (c2.flags & PR_FLAG_COMPLETION_UNKNOWN) && (c2.flags & PR_FLAG_REPORTED_INCOMPLETE));
    /* no split reported: all prompt priced as miss, flagged */
    pr_usage_t nosplit = {1000, -1, -1, 0, -1, true};
    CHECK(pr_price_usage(b, "deepseek", R1, day, day, &nosplit, &c2, berr, sizeof berr) == 0);
    CHECK(c2.tokens[PR_C_MISS] == 1000 && c2.flags == PR_FLAG_CACHE_SPLIT_UNKNOWN);
    /* bad counts refused */
    pr_usage_t bad1 = {100, 60, 50, 0, -1, true};
    CHECK_ERR(pr_price_usage(b, "deepseek", R1, day, day, &bad1, &c2, berr, sizeof berr), berr,
              "!= prompt");
    pr_usage_t bad2 = {100, 60, 40, 10, 11, true};
    CHECK_ERR(pr_price_usage(b, "deepseek", R1, day, day, &bad2, &c2, berr, sizeof berr), berr,
              "reasoning 11 exceeds completion 10");
    pr_usage_t bad3 = {100, -5, 40, 10, 1, true};
    CHECK_ERR(pr_price_usage(b, "deepseek", R1, day, day, &bad3, &c2, berr, sizeof berr), berr,
              "cache-hit token count -5");
    pr_usage_t bad4 = {100, 60, 40, PR_TOKENS_MAX + 1, 1, true};
    CHECK_ERR(pr_price_usage(b, "deepseek", R1, day, day, &bad4, &c2, berr, sizeof berr), berr,
              "completion token count");
    pr_usage_t bad5 = {100, 160, -1, 10, 1, true};
    CHECK_ERR(pr_price_usage(b, "deepseek", R1, day, day, &bad5, &c2, berr, sizeof berr), berr,
              "exceeds prompt");
    CHECK_ERR(
        pr_price_usage(b, "deepseek", "deepseek-coder", day, day, &example, &c2, berr, sizeof berr),
        berr, "no price card for provider \"deepseek\" model \"deepseek-coder\"");
    CHECK_ERR(pr_price_usage(b, "openai", CHAT, day, day, &example, &c2, berr, sizeof berr), berr,
              "no price card");
    CHECK_ERR(pr_price_usage(b, "deepseek", CHAT, US(2020, 1, 1, 0, 0, 0), US(2020, 1, 1, 0, 0, 0),
                             &example, &c2, berr, sizeof berr),
              berr, "first card takes effect 2024-12-26T00:00:00Z");
}

int main(void)
{
    pr_book_t *b = build(PR_TIER_COMPLETION);
    CHECK(pr_book_card_count(b) == 12 && pr_book_window_count(b) == 6);
    test_worked_examples(b);
    test_promotion_edges(b);
    test_window_edges(b);
    test_usage_fields(b);
    test_straddle();
    pr_book_free(b);
    return test_done("test_deepseek");
}
