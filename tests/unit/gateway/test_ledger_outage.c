/* Integration test of a real PostgreSQL outage with the spool (the server is
 * stopped and started with scripts/services pg-stop/pg-start, so this test
 * runs alone). Records submitted during the outage wait on disk; the writer
 * is stopped and started again while PostgreSQL is still down (a gateway
 * restart); when PostgreSQL returns the backlog drains: no row lost, none
 * twice. Prints how long the backlog took to drain. */
#include "spool_files.h"
#include "test_usage_common.h"

static int services(const char *what)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/scripts/services' %s '%s' >&2", getenv("TG_SOURCE_ROOT"), what,
             getenv("TG_SERVICES_DIR"));
    return system(cmd);
}

static gw_usage_writer_t *writer(const char *conninfo, const char *dir)
{
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = conninfo;
    o.batch_max = 1000;
    o.flush_ms = 20;
    snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    return usage_writer_or_exit(&o);
}

static void submit(gw_usage_writer_t *w, const char *prefix, int from, int to, int64_t team,
                   int64_t key)
{
    for (int i = from; i < to; i++) {
        gw_usage_record_t r = usage_record(prefix, i, team, key);
        CHECK(gw_usage_writer_submit(w, &r) == 0);
    }
}

int main(void)
{
    if (!getenv("TG_SERVICES_DIR") || !getenv("TG_SOURCE_ROOT")) {
        fprintf(stderr, "SKIP: TG_SERVICES_DIR is not set: this test stops and restarts the "
                        "PostgreSQL of scripts/services and needs its state folder\n");
        return 77;
    }
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int64_t team, key;
    usage_fixture(c, &team, &key);
    char dir[512];
    spool_tmpdir(dir, sizeof dir, "outage");

    gw_usage_writer_t *w = writer(db.conninfo, dir);
    submit(w, "before", 0, 1000, team, key);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "before-%") == 1000);
    PQfinish(c);

    CHECK(services("pg-stop") == 0);
    submit(w, "during", 0, 10000, team, key);
    submit(w, "during", 0, 500, team, key); /* submitted twice: still one row each */
    tdb_sleep_ms(500);
    CHECK(gw_usage_writer_pending(w) == 10500);
    gw_usage_writer_stop(w, 200); /* the gateway stops during the outage */
    w = writer(db.conninfo, dir);
    CHECK(gw_usage_writer_pending(w) == 10500);
    submit(w, "during", 10000, 20000, team, key);
    CHECK(gw_usage_writer_pending(w) == 20500);

    CHECK(services("pg-start") == 0);
    int64_t t0 = tdb_mono_ms();
    CHECK(usage_wait_drained(w, 30000));
    printf("backlog of 20500 records drained %lld ms after PostgreSQL came back\n",
           (long long)(tdb_mono_ms() - t0));
    c = tdb_connect(&db);
    CHECK(usage_count(c, "during-%") == 20000);
    CHECK(usage_count(c, "%") == 21000);
    CHECK(gw_usage_writer_written(w) == 20000);
    char *v =
        tdb_value(c, "SELECT count(*) - count(DISTINCT request_id) FROM usage_events", 0, NULL);
    CHECK(v && strcmp(v, "0") == 0);
    free(v);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);
    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
