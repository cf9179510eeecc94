/* Integration test of the daily rollup (migration 0017) against a real
 * PostgreSQL: rows written by the usage writer on two connections (every
 * record submitted twice), then updated, deleted, moved out of the default
 * partition; after each step usage_daily equals the same sums computed from
 * the rows, group for group, and the finance views that read it agree with
 * the rows. usage_daily_rebuild() repairs a damaged day; the finance role is
 * granted nothing on the table itself. */
#include "spool_files.h"
#include "test_usage_common.h"

/* Groups where usage_daily and a GROUP BY over the rows differ (either way). */
#define TRUTH                                                                                      \
    "SELECT (completed_at AT TIME ZONE 'UTC')::date, team_id, key_id, model_requested,"            \
    " provider, charge_currency, count(*),"                                                        \
    " count(*) FILTER (WHERE error_type IS NOT NULL OR http_status >= 400),"                       \
    " count(*) FILTER (WHERE NOT usage_complete), count(*) FILTER (WHERE price_card_id IS NULL),"  \
    " COALESCE(sum(prompt_tokens), 0)::bigint, COALESCE(sum(cache_hit_tokens), 0)::bigint,"        \
    " COALESCE(sum(cache_miss_tokens), 0)::bigint, COALESCE(sum(completion_tokens), 0)::bigint,"   \
    " COALESCE(sum(reasoning_tokens), 0)::bigint, COALESCE(sum(charge_pico), 0)::numeric(40,0)"    \
    " FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6"
#define DIFF                                                                                       \
    "SELECT count(*) FROM ((" TRUTH " EXCEPT SELECT * FROM usage_daily) UNION ALL"                 \
    " (SELECT * FROM usage_daily EXCEPT " TRUTH ")) x"

static long value_long(PGconn *c, const char *sql)
{
    char *v = tdb_value(c, sql, 0, NULL);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

/* A record on one of 5 days, 3 models, with or without a provider, some
 * errors, some incomplete, some with unknown token counts. */
static gw_usage_record_t varied(int i, int64_t team, int64_t key)
{
    gw_usage_record_t r = usage_record("roll", i, team, key);
    snprintf(r.model_requested, sizeof r.model_requested, "model-%d", i % 3);
    if (i % 4 == 0)
        r.provider[0] = '\0';
    if (i % 7 == 0) {
        r.http_status = 502;
        snprintf(r.error_type, sizeof r.error_type, "upstream_error");
    }
    r.usage_complete = i % 6 != 0;
    if (i % 9 == 0)
        r.completion_tokens = GW_USAGE_UNKNOWN;
    int64_t day_us = (int64_t)86400 * 1000000;
    r.received_at_us += (i % 5) * day_us;
    r.first_byte_at_us += (i % 5) * day_us;
    r.completed_at_us += (i % 5) * day_us;
    return r;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int64_t team, key;
    usage_fixture(c, &team, &key);
    enum { N = 3000 };

    /* 1. N records, each submitted twice, written on two connections in
     *    batches of 100 (the same groups from both: no deadlock, no double
     *    count: ON CONFLICT skips are not in the transition table). */
    char dir[512], err[512];
    spool_tmpdir(dir, sizeof dir, "roll");
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = db.conninfo;
    o.batch_max = 100;
    o.flush_ms = 10;
    o.connections = 2;
    snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    gw_usage_writer_t *w = gw_usage_writer_start2(&o, err, sizeof err);
    CHECK(w != NULL);
    if (!w)
        return 1;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++) {
            gw_usage_record_t r = varied(i, team, key);
            CHECK(gw_usage_writer_submit(w, &r) == 0);
        }
    CHECK(usage_wait_drained(w, 60000));
    CHECK(gw_usage_writer_written(w) == N);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);
    CHECK(value_long(c, "SELECT sum(requests) FROM usage_daily") == N);
    long groups = value_long(c, "SELECT count(*) FROM usage_daily");
    printf("usage_daily: %ld groups for %d rows\n", groups, N);
    CHECK(groups == 5 * 3 * 2); /* days x models x provider or none */
    CHECK(value_long(c, DIFF) == 0);

    /* 2. Updates (a charge corrected, a row moved to another day) and
     *    deletes: subtracted and added in the same statement. */
    CHECK(tdb_exec(c, "UPDATE usage_events SET prompt_tokens = prompt_tokens + 7,"
                      " charge_pico = 12345 WHERE request_id LIKE 'roll-0001%'"));
    CHECK(tdb_exec(c, "UPDATE usage_events SET completed_at = completed_at + interval '9 days'"
                      " WHERE request_id = 'roll-000042'"));
    CHECK(value_long(c, DIFF) == 0);
    CHECK(tdb_exec(c, "DELETE FROM usage_events WHERE request_id LIKE 'roll-0002%'"));
    CHECK(value_long(c, DIFF) == 0);
    CHECK(value_long(c, "SELECT sum(requests) FROM usage_daily") == N - 100);
    /* A group whose rows are all deleted disappears. */
    CHECK(tdb_exec(c, "DELETE FROM usage_events WHERE request_id = 'roll-000042'"));
    CHECK(value_long(c, "SELECT count(*) FROM usage_daily WHERE requests <= 0") == 0);
    CHECK(value_long(c, DIFF) == 0);

    /* 3. A row of a month without a partition lands in the default one;
     *    usage_partitions_ensure() moves it into its own: sums unchanged. */
    CHECK(tdb_exec(c, "INSERT INTO usage_events (request_id, team_id, key_id, model_requested,"
                      " endpoint, streamed, http_status, received_at, completed_at,"
                      " usage_complete) SELECT 'far-1', team_id, id, 'm', 'chat.completions',"
                      " false, 200, '2031-05-01', '2031-05-01', true FROM api_keys LIMIT 1"));
    CHECK(value_long(c, "SELECT count(*) FROM usage_events_default") == 1);
    CHECK(value_long(c, "SELECT usage_partitions_ensure()") >= 1);
    CHECK(value_long(c, "SELECT count(*) FROM usage_events_default") == 0);
    CHECK(value_long(c, DIFF) == 0);
    CHECK(value_long(c, "SELECT requests FROM usage_daily WHERE day = '2031-05-01'") == 1);

    /* 4. The finance views read the rollup and agree with the rows. */
    CHECK(value_long(c, "SELECT sum(requests) FROM finance_usage_daily") ==
          value_long(c, "SELECT count(*) FROM usage_events"));
    char *a = tdb_value(c,
                        "SELECT sum(errors) || '/' || sum(charge_pico) || '/' ||"
                        " sum(prompt_tokens) FROM finance_spend_monthly",
                        0, NULL);
    char *b = tdb_value(c,
                        "SELECT count(*) FILTER (WHERE error_type IS NOT NULL OR http_status"
                        " >= 400) || '/' || COALESCE(sum(charge_pico), 0) || '/' ||"
                        " COALESCE(sum(prompt_tokens), 0) FROM usage_events",
                        0, NULL);
    printf("finance_spend_monthly %s, rows %s (errors/charge/prompt tokens)\n", a ? a : "?",
           b ? b : "?");
    CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);

    /* 5. A damaged day is recomputed from the rows by usage_daily_rebuild. */
    CHECK(tdb_exec(c, "ALTER TABLE usage_events DISABLE TRIGGER usage_daily_delete"));
    CHECK(tdb_exec(c, "DELETE FROM usage_events WHERE request_id LIKE 'roll-0003%'"));
    CHECK(tdb_exec(c, "ALTER TABLE usage_events ENABLE TRIGGER usage_daily_delete"));
    CHECK(value_long(c, DIFF) > 0);
    CHECK(value_long(c, "SELECT usage_daily_rebuild('2027-01-01', '2027-03-01')") > 0);
    CHECK(value_long(c, DIFF) == 0);

    /* 6. Nothing granted on the table itself: finance reads the views. */
    CHECK(value_long(c, "SELECT count(*) FROM information_schema.role_table_grants"
                        " WHERE table_name = 'usage_daily' AND grantee <> current_user") == 0);

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
