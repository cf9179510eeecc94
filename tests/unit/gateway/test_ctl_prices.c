/* Integration test of tollgatectl's price administration ("price", "window",
 * "provider", "calendar") on a fresh database: the seed command, the brief's
 * worked examples through "price preview", list/history/quote, every bad input
 * refused with a clear message and exit status 1 with nothing half-saved (all
 * price tables and the audit log counted before and after), charged history
 * kept immutable, and an audit row (who, when, before, after) per change. */
#include "tg_testdb.h"

#include <stdlib.h>
#include <string.h>

static char out[32768], err[16384];
static PGconn *conn;

/* Row counts of every price table and the audit log. */
static char *snapshot(void)
{
    return tdb_value(
        conn,
        "SELECT (SELECT count(*) FROM price_cards) || '/' ||"
        " (SELECT count(*) FROM discount_windows) || '/' ||"
        " (SELECT count(*) FROM holiday_calendars) || '/' ||"
        " (SELECT count(*) FROM holiday_dates) || '/' ||"
        " (SELECT count(*) FROM price_providers) || '/' ||"
        " (SELECT string_agg(tier_instant, ',' ORDER BY provider) FROM price_providers)"
        " || '/' || (SELECT count(*) FROM audit_log) || '/' ||"
        " (SELECT COALESCE(max(valid_until)::text, '') FROM discount_windows)",
        0, NULL);
}

/* Runs a command that must be refused: exit 1, `want` in stderr, no row
 * changed anywhere. */
#define REFUSED(want, ...)                                                                         \
    do {                                                                                           \
        char *before_ = snapshot();                                                                \
        int rc_ = tdb_ctl(out, sizeof out, err, sizeof err, __VA_ARGS__);                          \
        char *after_ = snapshot();                                                                 \
        if (rc_ != 1 || !strstr(err, want))                                                        \
            fprintf(stderr, "%s:%d: want exit 1 and '%s', got %d: %s%s\n", __FILE__, __LINE__,     \
                    want, rc_, out, err);                                                          \
        CHECK(rc_ == 1 && strstr(err, want));                                                      \
        CHECK(before_ &&after_ &&strcmp(before_, after_) == 0);                                    \
        free(before_);                                                                             \
        free(after_);                                                                              \
    } while (0)

#define OK(...)                                                                                    \
    do {                                                                                           \
        int rc_ = tdb_ctl(out, sizeof out, err, sizeof err, __VA_ARGS__);                          \
        if (rc_ != 0)                                                                              \
            fprintf(stderr, "%s:%d: failed (%d): %s%s\n", __FILE__, __LINE__, rc_, out, err);      \
        CHECK(rc_ == 0);                                                                           \
    } while (0)

static void expect_value(const char *sql, const char *want)
{
    char *v = tdb_value(conn, sql, 0, NULL);
    if (!v || strcmp(v, want) != 0)
        fprintf(stderr, "query %s: got '%s', want '%s'\n", sql, v ? v : "(error)", want);
    CHECK(v && strcmp(v, want) == 0);
    free(v);
}

/* The brief's worked example at an instant: exact total line. */
static void example(const char *provider, const char *model, const char *at, const char *want)
{
    OK("price preview --provider %s --model %s --at %s --hit 400000 --miss 600000 "
       "--output 1000000",
       provider, model, at);
    char line[128];
    snprintf(line, sizeof line, "total:     %s (exact)", want);
    if (!strstr(out, line))
        fprintf(stderr, "preview %s/%s at %s: want '%s' in:\n%s", provider, model, at, line, out);
    CHECK(strstr(out, line) != NULL);
}

static void test_seed_and_examples(void)
{
    OK("--actor admin price seed");
    CHECK(strstr(out, "12 new price cards, 6 new windows"));
    OK("price seed '%s/etc/seed/deepseek-prices.sql'", getenv("TG_SOURCE_ROOT"));
    CHECK(strstr(out, "0 new price cards, 0 new windows"));
    expect_value("SELECT count(*) FROM price_cards", "12");
    const char *day = "2025-03-01T12:00:00Z", *night = "2025-03-01T17:00:00Z";
    example("deepseek", "deepseek-chat", day, "1.29 USD");
    example("deepseek-cny", "deepseek-chat", day, "9.4 CNY");
    example("deepseek", "deepseek-reasoner", day, "2.576 USD");
    CHECK(strstr(out, "rounded:   2.58 USD"));
    example("deepseek-cny", "deepseek-reasoner", day, "18.8 CNY");
    example("deepseek", "deepseek-chat", night, "0.645 USD");
    CHECK(strstr(out, "window:    ") && strstr(out, "(daily, precedence 10)"));
    CHECK(strstr(out, "rounded:   0.64 USD"));
    example("deepseek-cny", "deepseek-chat", night, "4.7 CNY");
    /* reasoning tokens priced separately only when a card says so */
    OK("price preview --provider deepseek --model deepseek-reasoner --at %s --hit 0 --miss 0 "
       "--output 1000000 --reasoning 1000000",
       day);
    CHECK(strstr(out, "total:     4.38 USD (exact)"));
}

static void test_list_history_quote(void)
{
    OK("price list --at 2025-03-01");
    CHECK(strstr(out, "in force at 2025-03-01T00:00:00Z"));
    CHECK(strstr(out, "deepseek-chat") && strstr(out, "deepseek-reasoner"));
    CHECK(strstr(out, "2025-02-08T16:00:00Z   2025-09-05T16:00:00Z"));
    OK("price list --provider deepseek --model deepseek-chat --at 2025-10-01");
    CHECK(strstr(out, "0.028") && strstr(out, "0.42") && !strstr(out, "deepseek-cny"));
    OK("price history --provider deepseek --model deepseek-chat");
    const char *c1 = strstr(out, "2024-12-26T00:00:00Z"), *c2 = strstr(out, "2025-09-29T00:00:00Z");
    CHECK(c1 && c2 && c1 < c2);
    CHECK(strstr(out, "UTC 16:30-00:30") && strstr(out, "50.00%") && strstr(out, "once"));
    REFUSED("no price card for nobody/none", "price history --provider nobody --model none");
    /* worst case: 1000 prompt at miss 0.27 + 500 at output 1.1 (standard) */
    OK("price quote --provider deepseek --model deepseek-chat --prompt-tokens 1000 "
       "--max-tokens 500 --at 2025-03-01T12:00:00Z");
    CHECK(strstr(out, "total:     0.00082 USD (exact, at most)"));
    /* inside the off-peak window the card's dearer prices are still the bound */
    OK("price quote --provider deepseek --model deepseek-chat --prompt-tokens 1000 "
       "--max-tokens 500 --at 2025-03-01T17:00:00Z");
    CHECK(strstr(out, "total:     0.00082 USD") && strstr(out, "card's own prices"));
    /* during the promotion the window is cheaper too */
    OK("price quote --provider deepseek --model deepseek-chat --prompt-tokens 1000000 "
       "--max-tokens 1000000 --at 2025-01-01");
    CHECK(strstr(out, "total:     1.37 USD"));
    REFUSED("no price card", "price quote --provider deepseek --model deepseek-chat "
                             "--prompt-tokens 1 --max-tokens 1 --at 2024-01-01");
    REFUSED("invalid --max-tokens", "price quote --provider deepseek --model deepseek-chat "
                                    "--prompt-tokens 1 --max-tokens -5");
}

static void test_price_add(void)
{
    OK("--actor alice price add --provider acme --model m1 --currency EUR --hit 0.1 --miss 0.25 "
       "--output 2 --reasoning 3.5 --from 2026-01-01T00:00:00Z --note first");
    CHECK(strstr(out, "added price card"));
    expect_value(
        "SELECT cache_hit_price || '/' || cache_miss_price || '/' || output_price || '/'"
        " || reasoning_price || '/' || created_by FROM price_cards WHERE provider = 'acme'",
        "100000/250000/2000000/3500000/alice");
    /* who, when, before, after */
    expect_value(
        "SELECT actor || '|' || action || '|' || (before IS NULL) || '|' ||"
        " (after->>'cache_miss_price') || '|' || (at > now() - interval '1 minute')"
        " FROM audit_log WHERE object LIKE 'price_cards/%' AND after->>'provider' = 'acme'",
        "alice|insert|true|250000|true");
    const char *card = "price add --provider acme --model m2 --currency USD";
    REFUSED("invalid --hit '-1'", "%s --hit -1 --miss 1 --output 1 --from 2026-01-01", card);
    REFUSED("invalid --miss '1000000.000001'",
            "%s --hit 1 --miss 1000000.000001 --output 1 --from 2026-01-01", card);
    REFUSED("invalid --output '1e3'", "%s --hit 1 --miss 1 --output 1e3 --from 2026-01-01", card);
    REFUSED("invalid --output '0.0000001'",
            "%s --hit 1 --miss 1 --output 0.0000001 --from 2026-01-01", card);
    REFUSED("unknown currency \"XYZ\"",
            "price add --provider acme --model m2 --currency XYZ --hit 1 --miss 1 --output 1 "
            "--from 2026-01-01");
    REFUSED("unknown currency",
            "price add --provider acme --model m2 --currency usd --hit 1 --miss 1 --output 1 "
            "--from 2026-01-01");
    REFUSED("invalid date '2026-02-30'", "%s --hit 1 --miss 1 --output 1 --from 2026-02-30", card);
    REFUSED("invalid date '2026-01-01T10:00:00'",
            "%s --hit 1 --miss 1 --output 1 --from 2026-01-01T10:00:00", card);
    REFUSED("invalid date 'yesterday'", "%s --hit 1 --miss 1 --output 1 --from yesterday", card);
    REFUSED("already exists",
            "price add --provider acme --model m1 --currency EUR --hit 1 --miss 1 --output 1 "
            "--from 2026-01-01T00:00:00Z");
    int rc = tdb_ctl(out, sizeof out, err, sizeof err, "%s --hit 1 --miss 1 --output 1", card);
    CHECK(rc == 2 && strstr(err, "--from is required"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "price add --help");
    CHECK(rc == 0 && strstr(out, "usage: tollgatectl price add"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "price frob");
    CHECK(rc == 2 && strstr(err, "unknown command 'frob'"));
}

/* Id of acme/m1's card, as text. */
static char *acme_card(void)
{
    return tdb_value(conn, "SELECT id FROM price_cards WHERE provider = 'acme' AND model = 'm1'", 0,
                     NULL);
}

static void test_windows_and_calendars(void)
{
    char *card = acme_card();
    OK("--actor bob window add --card %s --daily --zone Europe/Paris --start 22:00 --end 06:00 "
       "--weekdays mon,tue,wed,thu,fri --precedence 10 --percent-off 50",
       card);
    CHECK(strstr(out, "added daily window") && strstr(out, "hit 0.05, miss 0.125, output 1,"));
    /* overlapping, same precedence: the library's message, nothing saved */
    REFUSED("can overlap with the same precedence 10",
            "window add --card %s --daily --zone Europe/Paris --start 05:00 --end 07:00 "
            "--precedence 10 --percent-off 10",
            card);
    REFUSED("can overlap with the same precedence 10",
            "window add --card %s --once --from 2026-03-02T04:00:00Z --until 2026-03-03 "
            "--precedence 10 --hit 0 --miss 0 --output 0",
            card);
    /* a higher precedence is fine */
    OK("window add --card %s --once --from 2026-03-02T04:00:00Z --until 2026-03-03 "
       "--precedence 20 --hit 0 --miss 0.01 --output 0.02",
       card);
    OK("price preview --provider acme --model m1 --at 2026-03-02T05:00:00Z --hit 0 --miss "
       "1000000 --output 0");
    CHECK(strstr(out, "total:     0.01 EUR (exact)") && strstr(out, "(once, precedence 20)"));
    OK("price preview --provider acme --model m1 --at 2026-03-03T22:00:00Z --hit 0 --miss "
       "1000000 --output 0");
    CHECK(strstr(out, "total:     0.125 EUR (exact)"));
    REFUSED("must be after --from",
            "window add --card %s --once --from 2026-04-02 --until 2026-04-01 --precedence 30 "
            "--percent-off 5",
            card);
    REFUSED("unknown time zone 'Mars/Olympus'",
            "window add --card %s --daily --zone Mars/Olympus --start 01:00 --end 02:00 "
            "--precedence 30 --percent-off 5",
            card);
    REFUSED("invalid --start '25:00'",
            "window add --card %s --daily --zone UTC --start 25:00 --end 02:00 --precedence 30 "
            "--percent-off 5",
            card);
    REFUSED("invalid --weekdays 'funday'",
            "window add --card %s --daily --zone UTC --start 01:00 --end 02:00 --weekdays funday "
            "--precedence 30 --percent-off 5",
            card);
    REFUSED("invalid --percent-off '150'",
            "window add --card %s --daily --zone UTC --start 01:00 --end 02:00 --precedence 30 "
            "--percent-off 150",
            card);
    REFUSED("not both",
            "window add --card %s --daily --zone UTC --start 01:00 --end 02:00 --precedence 30 "
            "--percent-off 5 --hit 1 --miss 1 --output 1",
            card);
    REFUSED("invalid --hit '-0.5'",
            "window add --card %s --once --from 2026-05-01 --until 2026-05-02 --precedence 30 "
            "--hit -0.5 --miss 1 --output 1",
            card);
    REFUSED("no price card with id 999999",
            "window add --card 999999 --once --from 2026-05-01 --until 2026-05-02 --precedence 30 "
            "--percent-off 5");
    REFUSED("give exactly one of --once, --daily, --holiday",
            "window add --card %s --once --daily --from 2026-05-01 --until 2026-05-02 "
            "--precedence 30 --percent-off 5",
            card);
    REFUSED("--once needs --from and --until",
            "window add --card %s --once --from 2026-05-01 --precedence 30 --percent-off 5", card);

    /* calendars and a holiday window */
    OK("--actor carol calendar add fr-holidays --zone Europe/Paris --note 'public holidays'");
    CHECK(strstr(out, "added calendar"));
    char *cal =
        tdb_value(conn, "SELECT id FROM holiday_calendars WHERE name = 'fr-holidays'", 0, NULL);
    OK("calendar date add --calendar %s 2026-05-01 --name 'Fete du Travail'", cal);
    OK("calendar date add --calendar %s 2026-07-14", cal);
    OK("calendar list");
    CHECK(strstr(out, "fr-holidays") && strstr(out, "2026-05-01 2026-07-14"));
    REFUSED("unknown time zone 'Europe/Atlantis'", "calendar add xx --zone Europe/Atlantis");
    REFUSED("already exists", "calendar add fr-holidays --zone Europe/Paris");
    REFUSED("invalid date '2026-02-29'", "calendar date add --calendar %s 2026-02-29", cal);
    REFUSED("already exists", "calendar date add --calendar %s 2026-07-14", cal);
    REFUSED("does not exist", "calendar date add --calendar 999999 2026-07-15");
    OK("window add --card %s --holiday --calendar %s --precedence 15 --percent-off 100", card, cal);
    OK("price preview --provider acme --model m1 --at 2026-07-14T12:00:00+02:00 --hit 0 --miss "
       "1000000 --output 0");
    CHECK(strstr(out, "total:     0 EUR (exact)") && strstr(out, "(holiday, precedence 15)"));
    REFUSED("excludes calendar",
            "window add --card %s --daily --zone UTC --start 01:00 --end 02:00 --precedence 40 "
            "--percent-off 5 --exclude-calendar %s",
            card, cal);
    OK("window list --card %s", card);
    CHECK(strstr(out, "Europe/Paris 22:00-06:00 mon,tue,wed,thu,fri") && strstr(out, "holiday"));

    /* ending a window; an end before its start is refused */
    char *win =
        tdb_value(conn, "SELECT min(id) FROM discount_windows WHERE created_by = 'bob'", 0, NULL);
    REFUSED("is not after the window's start", "window end %s --at 2025-01-01", win);
    REFUSED("no window with id 999999", "window end 999999 --at 2027-01-01");
    REFUSED("invalid date", "window end %s --at 2027-13-01", win);
    OK("--actor dave window end %s --at 2027-01-01", win);
    expect_value(
        "SELECT actor || '|' || action || '|' || (before->>'valid_until' IS NULL) || '|' ||"
        " ((after->>'valid_until')::timestamptz = '2027-01-01Z') FROM audit_log"
        " WHERE actor = 'dave'",
        "dave|update|true|true");

    /* provider tier */
    OK("--actor erin provider tier --provider acme start");
    expect_value("SELECT tier_instant FROM price_providers WHERE provider = 'acme'", "start");
    OK("provider tier --provider acme completion");
    expect_value("SELECT string_agg((before->>'tier_instant') || '->' || (after->>'tier_instant'),"
                 " ',') FROM audit_log WHERE object = 'price_providers/acme' AND action = 'update'",
                 "start->completion");
    REFUSED("not a tier instant", "provider tier --provider acme midpoint");
    free(win);
    free(cal);
    free(card);
}

/* A card that has priced usage is never edited: new cards and windows may
 * not reach back over charged usage, and a window is only ended, in the future. */
static void test_immutability(void)
{
    char *card = acme_card();
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO teams (name) VALUES ('fin');"
             "INSERT INTO api_keys (team_id, key_sha256, display_prefix)"
             " SELECT id, sha256('k'), 'tg-k' FROM teams WHERE name = 'fin';"
             "INSERT INTO usage_events (request_id, team_id, key_id, model_requested, provider,"
             " upstream_model, endpoint, streamed, http_status, received_at, completed_at,"
             " usage_complete, price_card_id, priced_at_instant, charge_currency, charge_pico)"
             " SELECT 'r1', t.id, k.id, 'm1', 'acme', 'm1', 'chat.completions', false, 200,"
             " '2026-06-01Z', '2026-06-01Z', true, %s, '2026-06-01Z', 'EUR', 1"
             " FROM teams t JOIN api_keys k ON k.team_id = t.id WHERE t.name = 'fin'",
             card);
    CHECK(tdb_exec(conn, sql));
    REFUSED("would re-price usage already charged",
            "price add --provider acme --model m1 --currency EUR --hit 1 --miss 1 --output 1 "
            "--from 2026-05-01");
    CHECK(strstr(err, "Charged history is never edited in place"));
    REFUSED("would re-price usage already charged",
            "window add --card %s --once --from 2026-05-20 --until 2026-05-21 --precedence 99 "
            "--percent-off 5",
            card);
    char *win = tdb_value(conn,
                          "SELECT max(id) FROM discount_windows WHERE card_id = (SELECT id"
                          " FROM price_cards WHERE provider = 'acme' AND model = 'm1')",
                          0, NULL);
    REFUSED("only valid_until may change", "window end %s --at 2026-08-01", win);
    OK("window end %s --at 2099-01-01", win);
    OK("price add --provider acme --model m1 --currency EUR --hit 1 --miss 1 --output 1 "
       "--from 2026-06-02");
    free(win);
    free(card);
}

/* Rows made invalid by plain SQL: commands that validate the whole book say so. */
static void test_invalid_book(void)
{
    CHECK(tdb_exec(
        conn, "INSERT INTO price_cards (provider, model, currency, cache_hit_price,"
              " cache_miss_price, output_price, effective_from, created_by)"
              " VALUES ('bad', 'b', 'USD', 1, 1, 1, '2026-01-01Z', 'sql');"
              "INSERT INTO discount_windows (card_id, kind, precedence, valid_from,"
              " cache_hit_price, cache_miss_price, output_price, created_by)"
              " SELECT id, 'once', 1, '2026-01-01Z'::timestamptz, 0, 0, 0, 'sql' FROM price_cards"
              " WHERE provider = 'bad' UNION ALL"
              " SELECT id, 'once', 1, '2026-02-01Z', 0, 0, 0, 'sql' FROM price_cards"
              " WHERE provider = 'bad'"));
    REFUSED("price book would be invalid",
            "price add --provider acme --model m9 --currency USD --hit 1 --miss 1 --output 1 "
            "--from 2026-01-01");
    REFUSED("cannot build the price book", "price preview --provider deepseek --model "
                                           "deepseek-chat --at 2025-03-01 --hit 1 --miss 1 "
                                           "--output 1");
    CHECK(tdb_exec(conn, "DELETE FROM discount_windows WHERE created_by = 'sql'"));
    OK("price preview --provider bad --model b --at 2026-03-01 --hit 1 --miss 1 --output 1");
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    conn = tdb_connect(&db);
    REFUSED("no price card for provider \"deepseek\" model \"deepseek-chat\"",
            "price preview --provider deepseek --model deepseek-chat --at 2025-03-01 --hit 1 "
            "--miss 1 --output 1");
    test_seed_and_examples();
    REFUSED("no price card for deepseek/deepseek-chat at 2024-12-25T23:59:59Z",
            "price preview --provider deepseek --model deepseek-chat --at 2024-12-25T23:59:59Z "
            "--hit 1 --miss 1 --output 1");
    REFUSED("invalid date '2025-03-01 12:00'",
            "price preview --provider deepseek --model deepseek-chat --at '2025-03-01 12:00' "
            "--hit 1 --miss 1 --output 1");
    test_list_history_quote();
    test_price_add();
    test_windows_and_calendars();
    test_immutability();
    test_invalid_book();
    /* every audit row of this test has an actor, a time and an after or before image */
    expect_value("SELECT count(*) FROM audit_log WHERE actor = '' OR at IS NULL"
                 " OR (before IS NULL AND after IS NULL)",
                 "0");
    PQfinish(conn);
    tdb_drop(&db);
    if (tdb_failures)
        fprintf(stderr, "test_ctl_prices: %d checks failed\n", tdb_failures);
    else
        printf("test_ctl_prices: all checks passed\n");
    return tdb_failures ? 1 : 0;
}
