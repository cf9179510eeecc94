/* Integration test of the gateway's own costs in tollgatectl and for finance
 * (migration 0018): "usage gateway-costs" lists the rows written by the usage
 * writer with exact totals per currency (table) or every column (CSV), by
 * period; "usage verify" recomputes their charges (card and discount window)
 * and finds a tampered one, and with --spool counts the spool's cost records
 * against the rows; a database without gateway_costs is reported, not
 * crashed on; the finance role reads the two views and the recomputation,
 * not the table; bad arguments are refused. */
#include "spool_files.h"
#include "test_usage_common.h"

#include <inttypes.h>

static char out[1 << 16], err[1 << 16];

static gw_gateway_cost_t cost(const char *id, int attempt, int64_t team, int64_t key,
                              int64_t tokens, int64_t card, int64_t window, int64_t miss_price,
                              int64_t at_us)
{
    gw_gateway_cost_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.request_id, sizeof c.request_id, "%s", id);
    c.attempt = attempt;
    snprintf(c.reason, sizeof c.reason, "hedge_loser");
    c.team_id = team;
    c.key_id = key;
    snprintf(c.model_requested, sizeof c.model_requested, "deepseek-chat");
    snprintf(c.provider, sizeof c.provider, "slow");
    snprintf(c.upstream_model, sizeof c.upstream_model, "deepseek-v3");
    c.sent_at_us = at_us - 120000;
    c.cancelled_at_us = at_us;
    c.prompt_tokens = tokens;
    c.prompt_exact = attempt == 2;
    c.usage_complete = false;
    if (card) {
        c.price_card_id = card;
        c.discount_window_id = window;
        snprintf(c.charge_currency, sizeof c.charge_currency, "USD");
        c.charge_pico = (__int128)miss_price * tokens;
    }
    return c;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int64_t team, key;
    usage_fixture(c, &team, &key);
    char *v = tdb_value(c,
                        "INSERT INTO price_cards (provider, model, currency, cache_hit_price,"
                        " cache_miss_price, output_price, effective_from, created_by)"
                        " VALUES ('slow', 'deepseek-v3', 'USD', 70000, 270000, 1100000,"
                        " '2020-01-01Z', 'test') RETURNING id",
                        0, NULL);
    int64_t card = v ? atoll(v) : 0;
    const char *card_param[] = {v ? v : "0"};
    char *w_id =
        tdb_value(c,
                  "INSERT INTO discount_windows (card_id, kind, valid_from, cache_hit_price,"
                  " cache_miss_price, output_price, created_by) VALUES ($1, 'once',"
                  " '2027-01-01Z', 35000, 135000, 550000, 'test') RETURNING id",
                  1, card_param);
    int64_t window = w_id ? atoll(w_id) : 0;
    free(w_id);
    free(v);
    CHECK(card > 0 && window > 0);

    /* Three priced losers (one under the window), one unpriced, and usage
     * rows beside them. 2027-01-15 08:00 UTC = 1800000000 s. */
    const int64_t t0 = 1800000000000000LL;
    gw_usage_writer_t *w = gw_usage_writer_start(db.conninfo, 100, 5);
    gw_gateway_cost_t cs[4] = {
        cost("req-a", 1, team, key, 1000, card, 0, 270000, t0 + 1),
        cost("req-b", 2, team, key, 2500, card, 0, 270000, t0 + 2000000),
        cost("req-c", 1, team, key, 400, card, window, 135000, t0 + 3000000),
        cost("req-d", 2, team, key, 77, 0, 0, 0, t0 + 4000000),
    };
    for (int i = 0; i < 4; i++)
        CHECK(gw_usage_writer_submit_cost(w, &cs[i]) == 0);
    for (int i = 0; i < 5; i++) {
        gw_usage_record_t r = usage_record("row", i, team, key);
        CHECK(gw_usage_writer_submit(w, &r) == 0);
    }
    CHECK(usage_wait_drained(w, 20000));
    CHECK(gw_usage_writer_costs_written(w) == 4);
    gw_usage_writer_stop(w, 1000);

    /* The listing: every row, an estimate marked, totals exact: USD
     * 270000 x 3500 + 135000 x 400 = 999,000,000 pico = 0.000999. */
    const char *period = "--from 2027-01-15 --to 2027-01-16";
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs %s", period) == 0);
    printf("%s", out);
    CHECK(strstr(out, "req-a") && strstr(out, "req-b") && strstr(out, "req-c") &&
          strstr(out, "req-d"));
    CHECK(strstr(out, "1000~") && strstr(out, "2500 ") && strstr(out, "(unpriced)"));
    CHECK(strstr(out, "TOTAL USD  attempts 3, prompt tokens 3900 (2 estimated), charge 0.000999"));
    CHECK(strstr(out, "TOTAL -    attempts 1, prompt tokens 77 (0 estimated), charge 0.000000"
                      " (unpriced)"));
    CHECK(strstr(out, "2027-01-15T08:00:02.000000Z"));
    /* No period: everything; a later period: nothing. */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs") == 0);
    CHECK(strstr(out, "req-a") && strstr(out, "req-d") && strstr(out, "attempts 3,"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err,
                  "usage gateway-costs --from 2027-01-15T08:00:01Z") == 0);
    CHECK(!strstr(out, "req-a") && strstr(out, "req-b"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err,
                  "usage gateway-costs --to 2027-01-15T08:00:01Z") == 0);
    CHECK(strstr(out, "req-a") && !strstr(out, "req-b"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err,
                  "usage gateway-costs --from 2030-01-01 --to 2030-02-01") == 0);
    CHECK(strstr(out, "(no gateway costs in the period)"));
    /* CSV: the header, every column of one row exactly, NULL as empty. */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs %s --format csv",
                  period) == 0);
    printf("%s", out);
    const char *header = "request_id,attempt,reason,cancelled_at,sent_at,team_id,team_name,key_id,"
                         "model_requested,provider,upstream_model,prompt_tokens,prompt_exact,"
                         "usage_complete,price_card_id,discount_window_id,charge_currency,"
                         "charge_pico\n";
    CHECK(strncmp(out, header, strlen(header)) == 0);
    char want[512];
    snprintf(want, sizeof want,
             "req-c,1,hedge_loser,2027-01-15T08:00:03.000000Z,2027-01-15T08:00:02.880000Z,"
             "%" PRId64 ",acme,%" PRId64 ",deepseek-chat,slow,deepseek-v3,400,f,f,%" PRId64
             ",%" PRId64 ",USD,54000000\n",
             team, key, card, window);
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, "req-d,2,hedge_loser,2027-01-15T08:00:04.000000Z,") &&
          strstr(out, ",77,t,f,,,,\n"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 5 && strstr(err, "listed 4 gateway cost rows"));

    /* verify: the charges recompute (card and window); a tampered one is found. */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s", period) == 0);
    printf("%s", out);
    CHECK(strstr(out, "gateway costs in period:        4 (3 priced, 1 unpriced"));
    CHECK(strstr(out, "gateway cost charges differing: 0 (of 3 recomputed"));
    CHECK(strstr(out, "OK: 0 difference(s)"));
    CHECK(tdb_exec(c, "UPDATE gateway_costs SET charge_pico = charge_pico + 1"
                      " WHERE request_id = 'req-c'"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s", period) == 1);
    CHECK(strstr(out, "gateway cost charges differing: 1") && strstr(out, "req-c attempt 1") &&
          strstr(out, "FAILED: 1 difference(s)"));
    CHECK(tdb_exec(c, "UPDATE gateway_costs SET charge_pico = charge_pico - 1"
                      " WHERE request_id = 'req-c'"));

    /* --spool: cost records waiting in a spool (PostgreSQL unreachable when
     *  they were submitted) and one already written. */
    char dir[512], closed[160];
    spool_tmpdir(dir, sizeof dir, "ctlcosts");
    snprintf(closed, sizeof closed, "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=1",
             tdb_closed_port());
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = closed;
    snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    char e[256];
    w = gw_usage_writer_start2(&o, e, sizeof e);
    CHECK(w != NULL);
    gw_gateway_cost_t sp[3] = {
        cost("req-a", 1, team, key, 1000, card, 0, 270000, t0 + 1), /* already a row */
        cost("sp-1", 2, team, key, 10, card, 0, 270000, t0 + 5000000),
        cost("sp-2", 2, team, key, 10, card, 0, 270000, t0 + 90000000000LL), /* next day */
    };
    for (int i = 0; w && i < 3; i++)
        CHECK(gw_usage_writer_submit_cost(w, &sp[i]) == 0);
    gw_usage_record_t r = usage_record("row", 0, team, key);
    CHECK(w && gw_usage_writer_submit(w, &r) == 0);
    gw_usage_writer_stop(w, 0);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s --spool '%s'", period, dir) ==
          0);
    printf("%s", out);
    CHECK(strstr(out, "gateway cost records:         2 in the period (1 already in gateway_costs,"
                      " 1 waiting), 1 outside it"));
    CHECK(strstr(out, "in the period:                1 (1 already in the ledger"));
    CHECK(!strstr(out, "undecodable"));
    spool_rmdir(dir);

    /* The finance role reads the views and the recomputation, not the table;
     * the daily view sums per currency. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "psql '%s dbname=%s' -X -q -v ON_ERROR_STOP=1 -f '%s/roles.sql' >&2",
             db.admin, db.name, getenv("TG_MIGRATIONS"));
    CHECK(system(cmd) == 0);
    char login[128], fconn[1200];
    snprintf(login, sizeof login, "finc_%s", db.name);
    PGconn *a = PQconnectdb(db.admin);
    snprintf(cmd, sizeof cmd, "CREATE ROLE %s LOGIN IN ROLE tollgate_finance", login);
    CHECK(tdb_exec(a, cmd));
    snprintf(fconn, sizeof fconn, "%s user=%s", db.conninfo, login);
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM finance_gateway_costs"));
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM finance_gateway_costs_daily"));
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM gateway_costs_charge_recomputed"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM gateway_costs"));
    /* ... and so does tollgatectl for a finance user: listing and totals */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "--db '%s' usage gateway-costs", fconn) == 0);
    CHECK(strstr(out, "TOTAL USD") != NULL);
    CHECK(tdb_value_is(c,
                   "SELECT string_agg(concat_ws('|', day, provider, reason,"
                   " coalesce(charge_currency, '-'), attempts, estimated, unpriced,"
                   " prompt_tokens, charge_pico, coalesce(charge_minor_units::text, '-')), ','"
                   " ORDER BY charge_currency) FROM finance_gateway_costs_daily",
                   "2027-01-15|slow|hedge_loser|USD|3|2|0|3900|999000000|0,"
                   "2027-01-15|slow|hedge_loser|-|1|0|1|77|0|-"));
    /* No cost shows in any team's spend. */
    CHECK(tdb_value_is(c, "SELECT sum(requests) FROM finance_usage_daily", "5"));

    /* A database without the table: the listing says what to do; verify
     * still checks the usage rows. */
    CHECK(tdb_exec(c, "DROP TABLE gateway_costs CASCADE"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs") == 1);
    CHECK(strstr(err, "no table gateway_costs (migration 0018)"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s", period) == 0);
    CHECK(strstr(out, "(no table gateway_costs") && strstr(out, "OK: 0 difference(s)"));

    /* Bad arguments. */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs --format xml") == 2);
    CHECK(strstr(err, "expected table or csv"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs --from yesterday") == 2);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err,
                  "usage gateway-costs --from 2027-01-02 --to 2027-01-01") == 2);
    CHECK(strstr(err, "is not before"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs extra") == 2);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage gateway-costs --help") == 0);
    CHECK(strstr(out, "gateway_costs"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage --help") == 0);
    CHECK(strstr(out, "gateway-costs"));

    PQfinish(c);
    tdb_drop(&db);
    snprintf(cmd, sizeof cmd, "DROP ROLE %s", login);
    CHECK(tdb_exec(a, cmd));
    PQfinish(a);
    return tdb_failures ? 1 : 0;
}
