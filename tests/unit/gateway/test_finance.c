/* Integration test of the finance schema (migration 0004, migrations/roles.sql)
 * on a real PostgreSQL: converting a populated usage_events to monthly
 * partitions keeps every row and the view usage_charge_recomputed; the writer
 * stays idempotent on the partitioned table (also for rows moved out of the
 * default partition); partitions are made ahead; the daily and monthly views
 * add up; retention drops only old months and is off by default; the finance
 * role reads the views and nothing else. */
#include "test_usage_common.h"

#include <time.h>
#include <unistd.h>

#define CARD_HIT 70000
#define CARD_MISS 270000
#define CARD_OUT 1100000

static int64_t card_id;

/* A record priced on the test card (cost = price in micro-units per 1M
 * tokens x tokens, in pico-units), completed at completed_s (unix seconds). */
static gw_usage_record_t priced(const char *prefix, int i, int64_t team, int64_t key,
                                int64_t completed_s)
{
    gw_usage_record_t r = usage_record(prefix, i, team, key);
    r.completed_at_us = completed_s * 1000000 + i;
    r.received_at_us = r.completed_at_us - 900000;
    r.first_byte_at_us = r.received_at_us + 1000;
    r.price_card_id = card_id;
    r.priced_at_us = r.completed_at_us;
    snprintf(r.charge_currency, sizeof r.charge_currency, "USD");
    r.cost_pico[0] = (__int128)CARD_HIT * r.cache_hit_tokens;
    r.cost_pico[1] = (__int128)CARD_MISS * r.cache_miss_tokens;
    r.cost_pico[2] = (__int128)CARD_OUT * (r.completion_tokens - r.reasoning_tokens);
    r.cost_pico[3] = 0;
    r.charge_pico = r.cost_pico[0] + r.cost_pico[1] + r.cost_pico[2];
    if (i % 5 == 4) { /* an error row now and then */
        r.http_status = 502;
        snprintf(r.error_type, sizeof r.error_type, "upstream_error");
    }
    return r;
}

static long count(PGconn *c, const char *sql)
{
    char *v = tdb_value(c, sql, 0, NULL);
    long n = v && *v ? atol(v) : -1;
    free(v);
    return n;
}

/* Writes records through a memory-mode writer; returns rows inserted. */
static uint64_t write_all(const char *conninfo, const gw_usage_record_t *r, int n)
{
    gw_usage_writer_t *w = gw_usage_writer_start(conninfo, 100, 5);
    for (int i = 0; i < n; i++)
        CHECK(gw_usage_writer_submit(w, &r[i]) == 0);
    CHECK(usage_wait_drained(w, 20000));
    uint64_t written = gw_usage_writer_written(w);
    gw_usage_writer_stop(w, 1000);
    return written;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    char out[8192], err[8192], dir[256], cmd[4096];
    /* The schema before 0004, populated. */
    snprintf(dir, sizeof dir, "/tmp/tgfinance-%d", (int)getpid());
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && cp '%s'/0001_*.sql '%s'/0002_*.sql '%s'/", dir, dir,
             getenv("TG_MIGRATIONS"), getenv("TG_MIGRATIONS"), dir);
    CHECK(system(cmd) == 0);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir) == 0);
    PGconn *c = tdb_connect(&db);
    int64_t team, key;
    usage_fixture(c, &team, &key);
    char *v = tdb_value(c,
                        "INSERT INTO price_cards (provider, model, currency, cache_hit_price,"
                        " cache_miss_price, output_price, effective_from, created_by)"
                        " VALUES ('sim', 'deepseek-v3', 'USD', 70000, 270000, 1100000,"
                        " '2020-01-01Z', 'test') RETURNING id",
                        0, NULL);
    card_id = v ? atoll(v) : 0;
    free(v);
    CHECK(card_id > 0);

    enum { N = 30 };
    gw_usage_record_t recs[N];
    int64_t expect_2027 = 0, expect_2024 = 0;
    for (int i = 0; i < N; i++) {
        /* 20 rows on 2027-01-15, 10 on 2024-03-10 (UTC) */
        recs[i] = priced("conv", i, team, key, i < 20 ? 1800000000 : 1710028800);
        *(i < 20 ? &expect_2027 : &expect_2024) += (int64_t)recs[i].charge_pico;
    }
    CHECK(write_all(db.conninfo, recs, N) == N);

    /* 0004 converts the populated table. */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'",
                  getenv("TG_MIGRATIONS")) == 0);
    CHECK(tdb_value_is(c, "SELECT relkind FROM pg_class WHERE relname = 'usage_events'", "p"));
    CHECK(count(c, "SELECT count(*) FROM usage_events") == N);
    CHECK(count(c, "SELECT count(*) FROM usage_events_y2027m01") == 20);
    CHECK(count(c, "SELECT count(*) FROM usage_events_y2024m03") == 10);
    CHECK(count(c, "SELECT count(*) FROM usage_events_default") == 0);
    CHECK(count(c, "SELECT count(*) FROM usage_charge_recomputed WHERE request_id LIKE 'conv-%'"
                   " AND recomputed_pico = charge_pico") == N);
    /* Partitions from last month to three months ahead. */
    CHECK(count(c, "SELECT count(*) FROM generate_series(now() - interval '1 month',"
                   " now() + interval '3 months', interval '1 month') m"
                   " WHERE to_regclass('usage_events_' || to_char(m AT TIME ZONE 'UTC',"
                   " '\"y\"YYYY\"m\"MM')) IS NULL") == 0);

    /* The writer on the partitioned table: replays change nothing. */
    CHECK(write_all(db.conninfo, recs, N) == 0);
    /* A month with no partition: rows park in the default partition, the
     * next usage_partitions_ensure() moves them, and replays still dedup. */
    gw_usage_record_t old[5];
    for (int i = 0; i < 5; i++)
        old[i] = priced("old", i, team, key, 1688169600 + 86400 * i); /* 2023-07-01.. */
    CHECK(write_all(db.conninfo, old, 5) == 5);
    CHECK(count(c, "SELECT count(*) FROM usage_events_default") == 5);
    CHECK(count(c, "SELECT usage_partitions_ensure()") == 1);
    CHECK(count(c, "SELECT count(*) FROM usage_events_default") == 0);
    CHECK(count(c, "SELECT count(*) FROM usage_events_y2023m07") == 5);
    CHECK(write_all(db.conninfo, old, 5) == 0);
    CHECK(count(c, "SELECT count(*) - count(DISTINCT request_id) FROM usage_events") == 0);

    /* Views. */
    char want[256];
    CHECK(count(c, "SELECT sum(requests) FROM finance_usage_daily WHERE day = '2027-01-15'") == 20);
    CHECK(count(c, "SELECT sum(errors) FROM finance_usage_daily WHERE day = '2027-01-15'") == 4);
    snprintf(want, sizeof want, "%lld", (long long)expect_2027);
    CHECK(tdb_value_is(c, "SELECT sum(charge_pico) FROM finance_usage_daily WHERE day = '2027-01-15'",
                   want));
    CHECK(tdb_value_is(
        c, "SELECT sum(charge_pico) FROM finance_spend_monthly WHERE month = '2027-01-01'", want));
    /* Minor units: cents, rounded half up from pico-units (10^10 pico per cent). */
    snprintf(want, sizeof want, "%lld", (long long)((expect_2027 + 5000000000LL) / 10000000000LL));
    CHECK(tdb_value_is(c,
                   "SELECT charge_minor_units FROM finance_spend_monthly_team"
                   " WHERE month = '2027-01-01' AND team_name = 'acme'",
                   want));
    snprintf(want, sizeof want, "%lld", (long long)expect_2024);
    CHECK(tdb_value_is(
        c, "SELECT charge_pico FROM finance_spend_monthly_team WHERE month = '2024-03-01'", want));
    CHECK(tdb_value_is(
        c,
        "SELECT sum(cache_hit_tokens) || '/' || sum(prompt_tokens) FROM finance_usage_daily"
        " WHERE day = '2024-03-10'",
        "6400/10245"));
    CHECK(count(c, "SELECT count(*) FROM finance_usage WHERE is_error") == 6 + 1);

    /* The finance role. */
    snprintf(cmd, sizeof cmd, "psql '%s dbname=%s' -X -q -v ON_ERROR_STOP=1 -f '%s/roles.sql' >&2",
             db.admin, db.name, getenv("TG_MIGRATIONS"));
    CHECK(system(cmd) == 0);
    CHECK(system(cmd) == 0); /* idempotent */
    char login[128], fconn[1200];
    snprintf(login, sizeof login, "fin_%s", db.name);
    PGconn *a = PQconnectdb(db.admin);
    snprintf(cmd, sizeof cmd, "CREATE ROLE %s LOGIN IN ROLE tollgate_finance", login);
    CHECK(tdb_exec(a, cmd));
    snprintf(fconn, sizeof fconn, "%s user=%s", db.conninfo, login);
    CHECK(tdb_allowed_as(fconn, "SELECT count(*) FROM finance_usage"));
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM finance_usage_daily"));
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM finance_spend_monthly"));
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM finance_spend_monthly_team"));
    CHECK(tdb_allowed_as(fconn, "SELECT * FROM usage_charge_recomputed"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM api_keys"));
    CHECK(!tdb_allowed_as(fconn, "SELECT key_sha256 FROM api_keys"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM usage_events"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM usage_events_y2027m01"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM teams"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM audit_log"));
    CHECK(!tdb_allowed_as(fconn, "SELECT * FROM price_cards"));
    CHECK(!tdb_allowed_as(fconn, "DELETE FROM usage_events"));
    CHECK(!tdb_allowed_as(fconn, "UPDATE teams SET private = true"));
    CHECK(!tdb_allowed_as(fconn, "INSERT INTO teams (name) VALUES ('evil')"));
    CHECK(!tdb_allowed_as(fconn, "CREATE TABLE evil (x int)"));
    CHECK(!tdb_allowed_as(fconn, "SELECT usage_partitions_ensure()"));
    CHECK(!tdb_allowed_as(fconn, "UPDATE ledger_settings SET retention_months = 1"));
    CHECK(!tdb_allowed_as(fconn, "DELETE FROM finance_usage"));

    /* Retention: off by default; set to one month it drops 2023-07 and
     * 2024-03 but keeps the current month, last month and the future. */
    CHECK(
        tdb_value_is(c, "SELECT coalesce(retention_months::text, 'off') FROM ledger_settings", "off"));
    CHECK(tdb_exec(c, "UPDATE ledger_settings SET retention_months = 1"));
    count(c, "SELECT usage_partitions_ensure()");
    CHECK(count(c, "SELECT count(*) FROM usage_events") == 20);
    CHECK(tdb_value_is(c, "SELECT to_regclass('usage_events_y2024m03') IS NULL", "t"));
    CHECK(tdb_value_is(c, "SELECT to_regclass('usage_events_y2027m01') IS NOT NULL", "t"));
    CHECK(tdb_value_is(c,
                   "SELECT to_regclass('usage_events_' || to_char((now() - interval '1 month')"
                   " AT TIME ZONE 'UTC', '\"y\"YYYY\"m\"MM')) IS NOT NULL",
                   "t"));

    PQfinish(c);
    tdb_drop(&db);
    snprintf(cmd, sizeof cmd, "DROP ROLE %s", login);
    CHECK(tdb_exec(a, cmd));
    PQfinish(a);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return tdb_failures ? 1 : 0;
}
