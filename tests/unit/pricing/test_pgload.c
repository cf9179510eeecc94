/* Integration test: builds a price book from the rows of migration 0002 as
 * seeded by etc/seed/deepseek-prices.sql in a real PostgreSQL (the loader the
 * gateway needs, in miniature), then prices the brief's worked examples and
 * checks that a charge recomputed by SQL from the stored prices is identical.
 * Usage: test_pricing_pgload CONNINFO */
#include "pr_book.h"
#include "pr_test.h"

#include <libpq-fe.h>
#include <stdlib.h>

static char err[512];

static PGresult *q(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "query failed: %s\n%s\n", PQerrorMessage(c), sql);
        PQclear(r);
        return NULL;
    }
    return r;
}

static int64_t i64(PGresult *r, int row, int col, int64_t if_null)
{
    return PQgetisnull(r, row, col) ? if_null : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

#define EPOCH_US(col) "(extract(epoch from " col ") * 1000000)::bigint"

/* Fills a book from the price tables. Returns 0, or -1 with err set. */
static int load_book(PGconn *c, pr_book_t *b)
{
    PGresult *r =
        q(c, "SELECT id, provider, model, currency, cache_hit_price, cache_miss_price,"
             " output_price, reasoning_price, " EPOCH_US("effective_from") " FROM price_cards");
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        pr_card_def_t d = {i64(r, i, 0, 0),
                           PQgetvalue(r, i, 1),
                           PQgetvalue(r, i, 2),
                           PQgetvalue(r, i, 3),
                           {i64(r, i, 4, 0), i64(r, i, 5, 0), i64(r, i, 6, 0), i64(r, i, 7, -1)},
                           i64(r, i, 8, 0)};
        if (pr_book_add_card(b, &d, err, sizeof err) != 0) {
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    r = q(c, "SELECT id, card_id, kind, precedence, " EPOCH_US("valid_from") ", " EPOCH_US(
                 "valid_until") ", zone, start_second, end_second, weekdays, calendar_id,"
                                " cache_hit_price, cache_miss_price, output_price, reasoning_price"
                                " FROM discount_windows");
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        pr_window_def_t w;
        memset(&w, 0, sizeof w);
        const char *kind = PQgetvalue(r, i, 2);
        w.id = i64(r, i, 0, 0);
        w.card_id = i64(r, i, 1, 0);
        w.kind = strcmp(kind, "once") == 0    ? PR_WIN_ONCE
                 : strcmp(kind, "daily") == 0 ? PR_WIN_DAILY
                                              : PR_WIN_HOLIDAY;
        w.precedence = (int32_t)i64(r, i, 3, 0);
        w.valid_from_us = i64(r, i, 4, 0);
        w.valid_until_us = i64(r, i, 5, PR_FOREVER);
        w.zone = PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6);
        w.start_sec = (int32_t)i64(r, i, 7, 0);
        w.end_sec = (int32_t)i64(r, i, 8, 0);
        w.weekdays = (uint8_t)i64(r, i, 9, 127);
        w.calendar_id = i64(r, i, 10, 0);
        w.prices =
            (pr_prices_t){i64(r, i, 11, 0), i64(r, i, 12, 0), i64(r, i, 13, 0), i64(r, i, 14, -1)};
        if (pr_book_add_window(b, &w, err, sizeof err) != 0) {
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    r = q(c, "SELECT id, zone FROM holiday_calendars");
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (pr_book_add_calendar(b, i64(r, i, 0, 0), PQgetvalue(r, i, 1), err, sizeof err) != 0) {
            PQclear(r);
            return -1;
        }
    PQclear(r);
    r = q(c, "SELECT calendar_id, extract(year from day)::int, extract(month from day)::int,"
             " extract(day from day)::int FROM holiday_dates");
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (pr_book_add_holiday(b, i64(r, i, 0, 0), (int)i64(r, i, 1, 0), (int)i64(r, i, 2, 0),
                                (int)i64(r, i, 3, 0), err, sizeof err) != 0) {
            PQclear(r);
            return -1;
        }
    PQclear(r);
    r = q(c, "SELECT provider, tier_instant FROM price_providers");
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (pr_book_set_tier(b, PQgetvalue(r, i, 0),
                             strcmp(PQgetvalue(r, i, 1), "start") == 0 ? PR_TIER_START
                                                                       : PR_TIER_COMPLETION,
                             err, sizeof err) != 0) {
            PQclear(r);
            return -1;
        }
    PQclear(r);
    if (pr_book_load_zones(b, NULL, err, sizeof err) != 0)
        return -1;
    return pr_book_finalize(b, err, sizeof err);
}

/* Exact total via the library, and via SQL numeric from the stored prices of
 * the card/window the library chose: both as decimal strings. */
static void check_example(PGconn *c, const pr_book_t *b, const char *prov, const char *model,
                          int64_t at, const char *want)
{
    pr_usage_t u = {1000000, 400000, 600000, 1000000, -1, true};
    pr_charge_t ch;
    if (pr_price_usage(b, prov, model, at, at, &u, &ch, err, sizeof err) != 0) {
        fprintf(stderr, "%s/%s: %s\n", prov, model, err);
        CHECK(0);
        return;
    }
    char got[64];
    pr_pico_format(ch.total, 0, got, sizeof got);
    CHECK_STR(got, want);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT trim_scale((400000 * p.cache_hit_price + 600000 * p.cache_miss_price"
             " + 1000000 * p.output_price)::numeric / 1000000000000)::text FROM %s p WHERE id = "
             "%lld",
             ch.window ? "discount_windows" : "price_cards",
             (long long)(ch.window ? ch.window->id : ch.card->id));
    PGresult *r = q(c, sql);
    CHECK(r != NULL && PQntuples(r) == 1);
    if (r && PQntuples(r) == 1)
        CHECK_STR(PQgetvalue(r, 0, 0), want);
    PQclear(r);
}

/* "NULL" for -1, else the number: a SQL literal. */
static const char *lit(int64_t v, char buf[32])
{
    if (v < 0)
        return "NULL";
    snprintf(buf, 32, "%lld", (long long)v);
    return buf;
}

/* Prices usages with the library, stores them as usage rows, and checks that
 * the view usage_charge_recomputed gets the same charge from the tables alone. */
static void check_recompute(PGconn *c, const pr_book_t *b)
{
    PGresult *r = PQexec(c, "INSERT INTO teams (name) VALUES ('fin');"
                            "INSERT INTO api_keys (team_id, key_sha256, display_prefix)"
                            " SELECT id, sha256('fin'), 'tg-fin' FROM teams WHERE name = 'fin'");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    const char *prov[] = {"deepseek", "deepseek-cny"};
    const char *model[] = {"deepseek-chat", "deepseek-reasoner"};
    srand(5);
    int stored = 0;
    for (int i = 0; i < 200; i++) {
        /* instants from the first card to 2026, all classes, some incomplete */
        int64_t at = utc_us(2024, 12, 26, 0, 0, 0) + (int64_t)(rand() % 400) * 86400000000LL +
                     (int64_t)(rand() % 86400) * 1000000;
        int64_t hit = rand() % 200000, miss = rand() % 200000, comp = rand() % 50000;
        int64_t reas = rand() % 3 ? comp / 2 : -1;
        pr_usage_t u = {hit + miss, hit, miss, comp, reas, true};
        if (i % 7 == 0)
            u.cache_miss = -1; /* derived from prompt - hit */
        if (i % 11 == 0)
            u.completion = -1, u.reasoning = -1, u.complete = false;
        pr_charge_t ch;
        const char *p = prov[i % 2], *m = model[(i / 2) % 2];
        if (pr_price_usage(b, p, m, at, at, &u, &ch, err, sizeof err) != 0)
            continue; /* before R1 existed: refused, as it should be */
        char sql[4096], when[40], total[64], l1[32], l2[32], l3[32], l4[32];
        pr_pico_format_int(ch.total, total, sizeof total);
        pr_instant_format(at, when, sizeof when);
        snprintf(sql, sizeof sql,
                 "INSERT INTO usage_events (request_id, team_id, key_id, model_requested, provider,"
                 " upstream_model, endpoint, streamed, http_status, received_at, completed_at,"
                 " prompt_tokens, cache_hit_tokens, cache_miss_tokens, completion_tokens,"
                 " reasoning_tokens, usage_complete, price_card_id, discount_window_id,"
                 " priced_at_instant, charge_currency, charge_pico, pricing_flags)"
                 " SELECT 'fin-%d', t.id, k.id, '%s', '%s', '%s', 'chat.completions', true, 200,"
                 " '%s', '%s', %lld, %lld, %s, %s, %s, %s, %lld, %s, '%s', '%s', %s, %u"
                 " FROM teams t JOIN api_keys k ON k.team_id = t.id WHERE t.name = 'fin'",
                 i, m, p, m, when, when, (long long)u.prompt, (long long)u.cache_hit,
                 lit(u.cache_miss, l1), lit(u.completion, l2), lit(u.reasoning, l3),
                 u.complete ? "true" : "false", (long long)ch.card->id,
                 lit(ch.window ? ch.window->id : -1, l4), when, ch.card->currency->code, total,
                 ch.flags);
        r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fprintf(stderr, "insert: %s", PQerrorMessage(c));
        else
            stored++;
        PQclear(r);
    }
    CHECK(stored > 150);
    r = q(c, "SELECT count(*), count(*) FILTER (WHERE recomputed_pico = charge_pico),"
             " count(*) FILTER (WHERE pricing_flags <> 0) FROM usage_charge_recomputed");
    CHECK(r != NULL);
    if (r) {
        printf("  usage rows: %s, recomputed equal: %s, flagged incomplete: %s\n",
               PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        CHECK(atoi(PQgetvalue(r, 0, 0)) == stored);
        CHECK(strcmp(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1)) == 0);
        CHECK(atoi(PQgetvalue(r, 0, 2)) > 0);
    }
    PQclear(r);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONNINFO\n", argv[0]);
        return 2;
    }
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    pr_book_t *b = pr_book_new();
    if (load_book(c, b) != 0) {
        fprintf(stderr, "loading the price book from PostgreSQL: %s\n", err);
        CHECK(0);
    } else {
        CHECK(pr_book_card_count(b) == 12 && pr_book_window_count(b) == 6);
        int64_t day = utc_us(2025, 3, 1, 12, 0, 0), night = utc_us(2025, 3, 1, 17, 0, 0);
        check_example(c, b, "deepseek", "deepseek-chat", day, "1.29");
        check_example(c, b, "deepseek-cny", "deepseek-chat", day, "9.4");
        check_example(c, b, "deepseek", "deepseek-reasoner", day, "2.576");
        check_example(c, b, "deepseek-cny", "deepseek-reasoner", day, "18.8");
        check_example(c, b, "deepseek", "deepseek-chat", night, "0.645");
        check_example(c, b, "deepseek-cny", "deepseek-chat", night, "4.7");
        check_example(c, b, "deepseek", "deepseek-reasoner", night, "0.645");
        check_example(c, b, "deepseek-cny", "deepseek-reasoner", night, "4.7");
        /* promotion's last and first instants, wrap edge, V3.1, V3.2 */
        int64_t promo_end = utc_us(2025, 2, 8, 16, 0, 0);
        check_example(c, b, "deepseek", "deepseek-chat", promo_end - 1, "0.3696");
        check_example(c, b, "deepseek", "deepseek-chat", promo_end, "1.29");
        check_example(c, b, "deepseek", "deepseek-chat", utc_us(2025, 3, 2, 0, 30, 0) - 1, "0.645");
        check_example(c, b, "deepseek", "deepseek-chat", utc_us(2025, 3, 2, 0, 30, 0), "1.29");
        check_example(c, b, "deepseek", "deepseek-reasoner", utc_us(2025, 9, 10, 0, 0, 0), "2.044");
        check_example(c, b, "deepseek", "deepseek-chat", utc_us(2025, 10, 1, 0, 0, 0), "0.5992");
        pr_card_t const *card;
        pr_window_t const *w;
        CHECK(pr_book_find(b, "deepseek", "deepseek-chat", utc_us(2024, 12, 25, 0, 0, 0), &card, &w,
                           err, sizeof err) != 0);
    }
    if (pr_book_card_count(b) > 0)
        check_recompute(c, b);
    /* The database's currency table is the library's list. */
    PGresult *r = q(c, "SELECT code, minor_units FROM currencies ORDER BY code");
    size_t n = 0;
    while (pr_currency_at(n))
        n++;
    CHECK(r != NULL && (size_t)PQntuples(r) == n);
    for (int i = 0; r && i < PQntuples(r); i++) {
        const pr_currency_t *cur = pr_currency_find(PQgetvalue(r, i, 0), err, sizeof err);
        CHECK(cur != NULL && cur->minor == atoi(PQgetvalue(r, i, 1)));
    }
    PQclear(r);
    /* SQL pricing_percent_off (used on insert) == library pr_price_percent_off. */
    srand(99);
    char sql[256];
    int mismatches = 0;
    for (int i = 0; i < 300; i++) {
        int64_t price = (i % 3 == 0) ? rand() % 100 : ((int64_t)rand() << 9) % PR_PRICE_MAX;
        int32_t bp = (i % 5 == 0) ? 5000 : rand() % 10001;
        int64_t want = -1;
        CHECK(pr_price_percent_off(price, bp, &want, err, sizeof err) == 0);
        snprintf(sql, sizeof sql, "SELECT pricing_percent_off(%lld, %d)", (long long)price, bp);
        r = q(c, sql);
        if (r == NULL || strtoll(PQgetvalue(r, 0, 0), NULL, 10) != want)
            mismatches++;
        PQclear(r);
    }
    CHECK(mismatches == 0);
    pr_book_free(b);
    PQfinish(c);
    return test_done("test_pgload");
}
