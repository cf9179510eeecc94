/* Integration test of the gateway's own cost records (gw_usage_writer_submit_cost,
 * table gateway_costs, migration 0018) against a real PostgreSQL: mixed with
 * usage records in the same batches, each cost row is written exactly once,
 * every field exact, with and without a spool; a spool written while
 * PostgreSQL was unreachable is drained after a restart (a backlog on two
 * connections), and replaying it from a stale checkpoint writes nothing
 * twice; a cost record PostgreSQL refuses (a reason its CHECK does not know)
 * is logged and counted without holding back the usage rows behind it, on
 * the staged (COPY) path and the unnest path; a database without
 * gateway_costs still takes every usage row, logs and counts the cost
 * records, and takes them again once the table exists; no cost ever reaches
 * usage_events or the team rollup. */
#include "spool_files.h"
#include "test_usage_common.h"

#include <inttypes.h>

static char closed_conninfo[128];

static gw_gateway_cost_t cost_record(const char *prefix, int i, int64_t team, int64_t key,
                                     int64_t card)
{
    gw_gateway_cost_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.request_id, sizeof c.request_id, "%s-%06d", prefix, i);
    c.attempt = 1 + i % 2;
    snprintf(c.reason, sizeof c.reason, "hedge_loser");
    c.team_id = team;
    c.key_id = key;
    snprintf(c.model_requested, sizeof c.model_requested, "deepseek-chat");
    snprintf(c.provider, sizeof c.provider, "slow");
    snprintf(c.upstream_model, sizeof c.upstream_model, "deepseek-v3");
    c.sent_at_us = 1800000000000000LL + i * 1000 + 7;
    c.cancelled_at_us = c.sent_at_us + 100123;
    c.prompt_tokens = 1000 + i;
    c.prompt_exact = i % 3 != 0;
    c.usage_complete = false;
    if (card > 0) {
        c.price_card_id = card;
        snprintf(c.charge_currency, sizeof c.charge_currency, "USD");
        c.charge_pico = (__int128)270000 * c.prompt_tokens; /* the card's cache-miss price */
    }
    return c;
}

static long count_of(PGconn *c, const char *sql, const char *like)
{
    const char *p[] = {like};
    char *v = tdb_value(c, sql, like ? 1 : 0, like ? p : NULL);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

static long costs_count(PGconn *c, const char *like)
{
    return count_of(c, "SELECT count(*) FROM gateway_costs WHERE request_id LIKE $1", like);
}

static gw_usage_writer_t *writer(const char *conninfo, const char *dir, int conns)
{
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = conninfo;
    o.batch_max = 200;
    o.flush_ms = 10;
    o.connections = conns;
    if (dir)
        snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    return usage_writer_or_exit(&o);
}

/* Submits usage records [from, to) under `prefix`, and after every `every`-th
 * one a cost record under "<prefix>c" (same index). Returns the submits
 * that returned 0. */
static int submit_mixed(gw_usage_writer_t *w, const char *prefix, int from, int to, int every,
                        int64_t team, int64_t key, int64_t card)
{
    int ok = 0;
    char cprefix[32];
    snprintf(cprefix, sizeof cprefix, "%sc", prefix);
    for (int i = from; i < to; i++) {
        gw_usage_record_t r = usage_record(prefix, i, team, key);
        ok += gw_usage_writer_submit(w, &r) == 0;
        if (i % every == 0) {
            gw_gateway_cost_t c = cost_record(cprefix, i, team, key, card);
            ok += gw_usage_writer_submit_cost(w, &c) == 0;
        }
    }
    return ok;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int64_t team, key;
    usage_fixture(c, &team, &key);
    snprintf(closed_conninfo, sizeof closed_conninfo,
             "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=1", tdb_closed_port());
    char *v = tdb_value(c,
                        "INSERT INTO price_cards (provider, model, currency, cache_hit_price,"
                        " cache_miss_price, output_price, effective_from, created_by)"
                        " VALUES ('slow', 'deepseek-v3', 'USD', 70000, 270000, 1100000,"
                        " '2020-01-01Z', 'test') RETURNING id",
                        0, NULL);
    int64_t card = v ? atoll(v) : 0;
    free(v);
    CHECK(card > 0);

    /* 1. In memory: 600 usage records with a cost record after every 10th,
     *    all submitted twice (replays), in mixed batches of 200. */
    gw_usage_writer_t *w = writer(db.conninfo, NULL, 1);
    CHECK(submit_mixed(w, "mem", 0, 600, 10, team, key, card) == 660);
    CHECK(submit_mixed(w, "mem", 0, 600, 10, team, key, card) == 660);
    /* An unpriced one with no count. */
    gw_gateway_cost_t x = cost_record("memx", 1, team, key, 0);
    x.prompt_tokens = GW_USAGE_UNKNOWN;
    CHECK(gw_usage_writer_submit_cost(w, &x) == 0);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "mem-%") == 600);
    CHECK(costs_count(c, "memc-%") == 60);
    CHECK(gw_usage_writer_written(w) == 600);
    CHECK(gw_usage_writer_costs_written(w) == 61);
    CHECK(gw_usage_writer_rejected(w) == 0 && gw_usage_writer_costs_rejected(w) == 0);
    /* Field by field. */
    v = tdb_value(c,
                  "SELECT concat_ws('|', attempt, reason, team_id, key_id, model_requested,"
                  " provider, upstream_model, (extract(epoch FROM sent_at) * 1000000)::bigint,"
                  " (extract(epoch FROM cancelled_at) * 1000000)::bigint, prompt_tokens,"
                  " prompt_exact, usage_complete, price_card_id,"
                  " coalesce(discount_window_id::text, 'NULL'), charge_currency, charge_pico)"
                  " FROM gateway_costs WHERE request_id = 'memc-000130'",
                  0, NULL);
    gw_gateway_cost_t e = cost_record("memc", 130, team, key, card);
    char want[512];
    snprintf(want, sizeof want,
             "1|hedge_loser|%" PRId64 "|%" PRId64 "|deepseek-chat|slow|deepseek-v3|%" PRId64
             "|%" PRId64 "|1130|t|f|%" PRId64 "|NULL|USD|%lld",
             team, key, e.sent_at_us, e.cancelled_at_us, card, 270000LL * 1130);
    if (v && strcmp(v, want) != 0)
        fprintf(stderr, "got  %s\nwant %s\n", v, want);
    CHECK(v && strcmp(v, want) == 0);
    free(v);
    v = tdb_value(c,
                  "SELECT concat_ws('|', coalesce(prompt_tokens::text, 'NULL'),"
                  " coalesce(price_card_id::text, 'NULL'), coalesce(charge_currency, 'NULL'),"
                  " coalesce(charge_pico::text, 'NULL'), attempt)"
                  " FROM gateway_costs WHERE request_id = 'memx-000001'",
                  0, NULL);
    CHECK(v && strcmp(v, "NULL|NULL|NULL|NULL|2") == 0);
    free(v);
    /* The gateway's money is in no team's rows or rollup. */
    CHECK(count_of(c, "SELECT count(*) FROM usage_events", NULL) == 600);
    CHECK(count_of(c, "SELECT sum(requests) FROM usage_daily", NULL) == 600);
    /* Every priced cost row's charge equals its recomputation. */
    CHECK(count_of(c,
                   "SELECT count(*) FROM gateway_costs_charge_recomputed"
                   " WHERE recomputed_pico = charge_pico",
                   NULL) == 60);

    /* 2. A cost record PostgreSQL refuses (a reason the CHECK does not know)
     *    in the middle of a batch: it alone is logged and rejected; the usage
     *    rows and the good cost row behind it are written. */
    for (int i = 0; i < 50; i++) {
        gw_usage_record_t r = usage_record("bad", i, team, key);
        CHECK(gw_usage_writer_submit(w, &r) == 0);
        if (i == 20) {
            gw_gateway_cost_t b = cost_record("badc", i, team, key, card);
            snprintf(b.reason, sizeof b.reason, "mystery");
            CHECK(gw_usage_writer_submit_cost(w, &b) == 0);
            b = cost_record("badc", i + 1, team, key, card);
            CHECK(gw_usage_writer_submit_cost(w, &b) == 0);
        }
    }
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "bad-%") == 50);
    CHECK(costs_count(c, "badc-%") == 1);
    CHECK(gw_usage_writer_rejected(w) == 1 && gw_usage_writer_costs_rejected(w) == 1);
    CHECK(gw_usage_writer_written(w) == 650 && gw_usage_writer_costs_written(w) == 62);
    gw_usage_writer_stop(w, 2000);

    /* 3. A spool written while PostgreSQL was unreachable (kept across a
     *    stop), drained by the next start on two connections: exactly once;
     *    then the same journal replayed from before that drain (a crash
     *    between COMMIT and checkpoint) writes nothing twice. */
    char dir[512], copy[600], cmd[2048];
    spool_tmpdir(dir, sizeof dir, "costs");
    w = writer(closed_conninfo, dir, 2);
    CHECK(submit_mixed(w, "sp", 0, 3000, 25, team, key, card) == 3120);
    CHECK(gw_usage_writer_pending(w) == 3120);
    gw_usage_writer_stop(w, 0);
    snprintf(copy, sizeof copy, "%s.copy", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", copy, dir, copy);
    CHECK(system(cmd) == 0);
    w = writer(db.conninfo, dir, 2);
    CHECK(gw_usage_writer_pending(w) == 3120);
    CHECK(usage_wait_drained(w, 30000));
    CHECK(usage_count(c, "sp-%") == 3000 && costs_count(c, "spc-%") == 120);
    CHECK(gw_usage_writer_written(w) == 3000 && gw_usage_writer_costs_written(w) == 120);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);
    snprintf(cmd, sizeof cmd, "rm -f '%s/lock'; mv '%s' '%s'", copy, copy, dir);
    CHECK(system(cmd) == 0);
    w = writer(db.conninfo, dir, 2);
    CHECK(gw_usage_writer_pending(w) == 3120);
    CHECK(usage_wait_drained(w, 30000));
    CHECK(gw_usage_writer_written(w) == 0 && gw_usage_writer_costs_written(w) == 0);
    CHECK(usage_count(c, "sp-%") == 3000 && costs_count(c, "spc-%") == 120);
    /* Live, with the spool: a bad cost record does not block the rest. */
    gw_gateway_cost_t b = cost_record("spbad", 1, team, key, card);
    snprintf(b.reason, sizeof b.reason, "mystery");
    CHECK(gw_usage_writer_submit_cost(w, &b) == 0);
    CHECK(submit_mixed(w, "sl", 0, 100, 50, team, key, card) == 102);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "sl-%") == 100 && costs_count(c, "slc-%") == 2);
    CHECK(costs_count(c, "spbad-%") == 0 && gw_usage_writer_costs_rejected(w) == 1);
    gw_spool_stats_t st;
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.pending == 0);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    /* 4. The unnest path (no right to make the staging table): the same,
     *    in explicit transactions. */
    char sql[256];
    snprintf(sql, sizeof sql, "REVOKE TEMPORARY ON DATABASE %s FROM PUBLIC, CURRENT_USER", db.name);
    CHECK(tdb_exec(c, sql));
    w = writer(db.conninfo, NULL, 1);
    CHECK(submit_mixed(w, "un", 0, 300, 30, team, key, card) == 310);
    b = cost_record("unbad", 1, team, key, card);
    snprintf(b.reason, sizeof b.reason, "mystery");
    CHECK(gw_usage_writer_submit_cost(w, &b) == 0);
    CHECK(submit_mixed(w, "un", 0, 300, 30, team, key, card) == 310); /* replays */
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "un-%") == 300 && costs_count(c, "unc-%") == 10);
    CHECK(gw_usage_writer_written(w) == 300 && gw_usage_writer_costs_written(w) == 10);
    CHECK(gw_usage_writer_costs_rejected(w) == 1 && gw_usage_writer_rejected(w) == 1);
    gw_usage_writer_stop(w, 1000);
    snprintf(sql, sizeof sql, "GRANT TEMPORARY ON DATABASE %s TO PUBLIC, CURRENT_USER", db.name);
    CHECK(tdb_exec(c, sql));

    /* 5. A database without gateway_costs (migration 0018 not applied):
     *    usage rows flow, cost records are logged and counted, nothing stays
     *    pending; once the table exists the same writer writes them. */
    CHECK(tdb_exec(c, "ALTER TABLE gateway_costs RENAME TO gateway_costs_away"));
    spool_tmpdir(dir, sizeof dir, "nomig");
    w = writer(db.conninfo, dir, 2);
    CHECK(submit_mixed(w, "nm", 0, 400, 40, team, key, card) == 410);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "nm-%") == 400);
    CHECK(gw_usage_writer_written(w) == 400 && gw_usage_writer_costs_written(w) == 0);
    CHECK(gw_usage_writer_costs_rejected(w) == 10 && gw_usage_writer_rejected(w) == 10);
    CHECK(tdb_exec(c, "ALTER TABLE gateway_costs_away RENAME TO gateway_costs"));
    CHECK(submit_mixed(w, "nm2", 0, 10, 5, team, key, card) == 12);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "nm2-%") == 10 && costs_count(c, "nm2c-%") == 2);
    CHECK(costs_count(c, "nmc-%") == 0);
    CHECK(gw_usage_writer_costs_written(w) == 2 && gw_usage_writer_costs_rejected(w) == 10);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    /* Still no cost in any team's rows. */
    CHECK(count_of(c, "SELECT count(*) FROM usage_events WHERE request_id LIKE '%c-%'", NULL) == 0);
    CHECK(count_of(c, "SELECT sum(requests) FROM usage_daily", NULL) ==
          count_of(c, "SELECT count(*) FROM usage_events", NULL));

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
