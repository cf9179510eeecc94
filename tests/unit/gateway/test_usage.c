/* Integration test of gw_usage's writer against a real PostgreSQL: N records
 * are written exactly once even when each is submitted twice, with every
 * field exact (microsecond timestamps, NULL for unknown counts); a record the
 * database refuses is logged and counted without blocking the others; text
 * that is not UTF-8 is made safe; records queued while the database is
 * unreachable stay pending and stop() honours its deadline; the cache
 * columns are written, and a database without them still takes rows; the
 * benchmarks-only switch spool_ledger = off-for-benchmarks discards records. */
#include "test_usage_common.h"

#include <pthread.h>

#define N 2000

typedef struct submitter {
    gw_usage_writer_t *w;
    int64_t team_id, key_id;
    int from, to;
} submitter_t;

static void *submit_range(void *arg)
{
    submitter_t *s = arg;
    for (int i = s->from; i < s->to; i++) {
        gw_usage_record_t r = usage_record("req", i, s->team_id, s->key_id);
        gw_usage_writer_submit(s->w, &r);
    }
    return NULL;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int64_t team_id, key_id;
    usage_fixture(c, &team_id, &key_id);

    gw_usage_writer_t *w = gw_usage_writer_start(db.conninfo, 200, 20);
    CHECK(w != NULL);

    /* N records from four threads, then every one of them again. */
    pthread_t th[4];
    submitter_t s[4];
    for (int round = 0; round < 2; round++) {
        for (int t = 0; t < 4; t++) {
            s[t] = (submitter_t){w, team_id, key_id, t * N / 4, (t + 1) * N / 4};
            CHECK(pthread_create(&th[t], NULL, submit_range, &s[t]) == 0);
        }
        for (int t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
    }
    /* A duplicate inside one batch, too. */
    gw_usage_record_t r = usage_record("req", 7, team_id, key_id);
    gw_usage_writer_submit(w, &r);
    gw_usage_writer_submit(w, &r);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "req-%") == N);
    CHECK(gw_usage_writer_written(w) == N);
    CHECK(gw_usage_writer_rejected(w) == 0);

    /* Field by field, for one record. */
    char *v = tdb_value(
        c,
        "SELECT concat_ws('|', team_id, key_id, model_requested, provider, upstream_model,"
        " attempts, endpoint, streamed, http_status, coalesce(error_type, 'NULL'),"
        " (extract(epoch FROM received_at) * 1000000)::bigint,"
        " (extract(epoch FROM first_byte_at) * 1000000)::bigint,"
        " (extract(epoch FROM completed_at) * 1000000)::bigint, prompt_tokens,"
        " cache_hit_tokens, cache_miss_tokens, completion_tokens, reasoning_tokens,"
        " usage_complete) FROM usage_events WHERE request_id = 'req-000123'",
        0, NULL);
    char want[512];
    gw_usage_record_t e = usage_record("req", 123, team_id, key_id);
    snprintf(want, sizeof want,
             "%lld|%lld|deepseek-chat|sim|deepseek-v3|2|chat.completions|t|200|NULL|%lld|%lld|%lld"
             "|1123|640|483|173|0|t",
             (long long)team_id, (long long)key_id, (long long)e.received_at_us,
             (long long)e.first_byte_at_us, (long long)e.completed_at_us);
    if (v && strcmp(v, want) != 0)
        fprintf(stderr, "got  %s\nwant %s\n", v, want);
    CHECK(v && strcmp(v, want) == 0);
    free(v);

    /* A failed request: no provider, unknown counts, incomplete usage. */
    r = usage_record("fail", 1, team_id, key_id);
    r.provider[0] = r.upstream_model[0] = '\0';
    snprintf(r.error_type, sizeof r.error_type, "upstream_unavailable");
    r.http_status = 503;
    r.first_byte_at_us = 0;
    r.prompt_tokens = r.cache_hit_tokens = r.cache_miss_tokens = GW_USAGE_UNKNOWN;
    r.completion_tokens = r.reasoning_tokens = GW_USAGE_UNKNOWN;
    r.usage_complete = false;
    gw_usage_writer_submit(w, &r);
    /* Text that is not UTF-8 (a client's model name) must not make the row
     * unwritable. */
    r = usage_record("utf8", 1, team_id, key_id);
    snprintf(r.model_requested, sizeof r.model_requested, "%s", "bad\xff\xc3-name");
    gw_usage_writer_submit(w, &r);
    /* Characters that mean something in array literals stay text; the word
     * NULL stays a word. */
    r = usage_record("quote", 1, team_id, key_id);
    snprintf(r.model_requested, sizeof r.model_requested, "%s", "we\"ird\\,{x} 'y'");
    snprintf(r.error_type, sizeof r.error_type, "NULL");
    snprintf(r.provider, sizeof r.provider, "%s", "");
    gw_usage_writer_submit(w, &r);
    /* A record PostgreSQL refuses (no such team) among good ones: it is
     * logged and counted; the others are written. */
    for (int i = 0; i < 10; i++) {
        r = usage_record("mix", i, team_id, key_id);
        if (i == 5)
            r.team_id = 987654321;
        gw_usage_writer_submit(w, &r);
    }
    CHECK(usage_wait_drained(w, 20000));
    v = tdb_value(c,
                  "SELECT concat_ws('|', coalesce(provider, 'NULL'), coalesce(upstream_model,"
                  " 'NULL'), error_type, http_status, coalesce(first_byte_at::text, 'NULL'),"
                  " coalesce(prompt_tokens::text, 'NULL'), coalesce(reasoning_tokens::text,"
                  " 'NULL'), usage_complete) FROM usage_events WHERE request_id = 'fail-000001'",
                  0, NULL);
    CHECK(v && strcmp(v, "NULL|NULL|upstream_unavailable|503|NULL|NULL|NULL|f") == 0);
    free(v);
    v = tdb_value(c, "SELECT model_requested FROM usage_events WHERE request_id = 'utf8-000001'", 0,
                  NULL);
    CHECK(v && strcmp(v, "bad?"
                         "?-name") == 0);
    free(v);
    v = tdb_value(c,
                  "SELECT model_requested || '|' || error_type || '|' ||"
                  " coalesce(provider, 'null') FROM usage_events WHERE request_id = 'quote-000001'",
                  0, NULL);
    CHECK(v && strcmp(v, "we\"ird\\,{x} 'y'|NULL|null") == 0);
    free(v);
    CHECK(usage_count(c, "mix-%") == 9);
    CHECK(gw_usage_writer_rejected(w) == 1);
    CHECK(gw_usage_writer_written(w) == N + 3 + 9);

    /* The cache columns (migration 0013): a prediction and a response-cache
     * hit are written; a record without a prediction gives NULL. */
    r = usage_record("cache", 1, team_id, key_id);
    r.cache_predicted = true;
    r.cache_hit_predicted_tokens = 640;
    r.response_cache_hit = true;
    gw_usage_writer_submit(w, &r);
    CHECK(usage_wait_drained(w, 20000));
    v = tdb_value(c,
                  "SELECT string_agg(coalesce(cache_hit_predicted_tokens::text, 'NULL') || '/' ||"
                  " response_cache_hit, ',' ORDER BY request_id) FROM usage_events"
                  " WHERE request_id IN ('cache-000001', 'req-000123')",
                  0, NULL);
    CHECK(v && strcmp(v, "640/true,NULL/false") == 0);
    free(v);
    gw_usage_writer_stop(w, 2000);

    /* A database one migration behind (no cache columns): rows are still
     * written, without them (a rolling upgrade runs the gateway first). */
    CHECK(tdb_exec(c, "ALTER TABLE usage_events DROP COLUMN cache_hit_predicted_tokens,"
                      " DROP COLUMN response_cache_hit"));
    w = gw_usage_writer_start(db.conninfo, 200, 20);
    CHECK(w != NULL);
    gw_usage_writer_submit(w, &r);
    r = usage_record("older", 1, team_id, key_id);
    gw_usage_writer_submit(w, &r);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "older-%") == 1);
    CHECK(gw_usage_writer_rejected(w) == 0);
    gw_usage_writer_stop(w, 2000);

    /* Without the right to make temporary tables there is no staging table:
     * batches go as one INSERT ... unnest(arrays) each, rows just as exact. */
    char sql[256];
    snprintf(sql, sizeof sql, "REVOKE TEMPORARY ON DATABASE %s FROM PUBLIC, CURRENT_USER", db.name);
    CHECK(tdb_exec(c, sql));
    w = gw_usage_writer_start(db.conninfo, 200, 20);
    CHECK(w != NULL);
    for (int i = 0; i < 500; i++) {
        r = usage_record("unnest", i, team_id, key_id);
        snprintf(r.error_type, sizeof r.error_type, i % 2 ? "tab\there" : "");
        gw_usage_writer_submit(w, &r);
    }
    r = usage_record("unnest-bad", 0, 999999, key_id); /* unknown team: rejected alone */
    gw_usage_writer_submit(w, &r);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "unnest-0%") == 500);
    CHECK(usage_count(c, "unnest-bad%") == 0);
    CHECK(gw_usage_writer_written(w) == 500 && gw_usage_writer_rejected(w) == 1);
    v = tdb_value(c, "SELECT error_type FROM usage_events WHERE request_id = 'unnest-000001'", 0,
                  NULL);
    CHECK(v && strcmp(v, "tab\there") == 0);
    free(v);
    gw_usage_writer_stop(w, 2000);
    snprintf(sql, sizeof sql, "GRANT TEMPORARY ON DATABASE %s TO PUBLIC, CURRENT_USER", db.name);
    CHECK(tdb_exec(c, sql));
    /* The staged path (COPY text format) with the characters it escapes. */
    w = gw_usage_writer_start(db.conninfo, 200, 20);
    CHECK(w != NULL);
    r = usage_record("copyesc", 1, team_id, key_id);
    snprintf(r.error_type, sizeof r.error_type, "t\tn\nr\rb\\N");
    gw_usage_writer_submit(w, &r);
    CHECK(usage_wait_drained(w, 20000));
    v = tdb_value(c, "SELECT error_type FROM usage_events WHERE request_id = 'copyesc-000001'", 0,
                  NULL);
    CHECK(v && strcmp(v, "t\tn\nr\rb\\N") == 0);
    free(v);
    gw_usage_writer_stop(w, 2000);

    /* spool_ledger = off-for-benchmarks: every record is discarded, and a
     * spool directory is not even opened. */
    gw_usage_writer_opts_t o;
    char err[256];
    gw_usage_writer_opts_default(&o);
    o.conninfo = db.conninfo;
    o.flush_ms = 10;
    snprintf(o.spool.dir, sizeof o.spool.dir, "/nonexistent/not/a/spool");
    CHECK(gw_spool_opts_parse(&o.spool, "spool_ledger", "off-for-benchmarks", err,
                              sizeof err) == 1);
    w = gw_usage_writer_start2(&o, err, sizeof err);
    CHECK(w != NULL);
    for (int i = 0; w && i < 20; i++) {
        r = usage_record("off", i, team_id, key_id);
        CHECK(gw_usage_writer_submit(w, &r) == 0);
    }
    tdb_sleep_ms(200);
    CHECK(w && gw_usage_writer_pending(w) == 0 && gw_usage_writer_written(w) == 0);
    CHECK(w && gw_usage_writer_accepting(w));
    CHECK(usage_count(c, "off-%") == 0);
    gw_usage_writer_stop(w, 100);

    /* PostgreSQL unreachable: records stay pending (nothing dropped), and
     * stop() gives up at its deadline, logging each record. */
    char closed[128];
    snprintf(closed, sizeof closed, "host=127.0.0.1 port=%d dbname=x user=x", tdb_closed_port());
    w = gw_usage_writer_start(closed, 100, 10);
    for (int i = 0; i < 5; i++) {
        r = usage_record("lost", i, team_id, key_id);
        gw_usage_writer_submit(w, &r);
    }
    tdb_sleep_ms(400);
    CHECK(gw_usage_writer_pending(w) == 5);
    CHECK(gw_usage_writer_written(w) == 0);
    int64_t t0 = tdb_mono_ms();
    gw_usage_writer_stop(w, 300);
    int64_t took = tdb_mono_ms() - t0;
    printf("stop with PostgreSQL unreachable took %lld ms (deadline 300 ms)\n", (long long)took);
    CHECK(took >= 250 && took < 2500);

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
