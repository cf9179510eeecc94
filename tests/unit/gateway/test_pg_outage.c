/* Integration test of a real PostgreSQL outage (the server is stopped and
 * started again with scripts/services pg-stop/pg-start, so this test runs
 * alone: is_parallel false). The usage writer keeps records submitted during
 * the outage and writes them, exactly once, after PostgreSQL is back; the key
 * store keeps answering from its last table, reconnects, and then sees a
 * revocation within one second again. */
#include "test_usage_common.h"

#include "gw_keystore.h"

static int services(const char *what)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/scripts/services' %s '%s' >&2", getenv("TG_SOURCE_ROOT"), what,
             getenv("TG_SERVICES_DIR"));
    return system(cmd);
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
    int64_t team_id, key_id;
    usage_fixture(c, &team_id, &key_id);
    char out[4096], err[4096], key[128] = "";
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme") == 0);
    CHECK(sscanf(out, "%127s", key) == 1);

    gw_keystore_t *ks = gw_keystore_start(db.conninfo);
    CHECK(gw_keystore_wait_loaded(ks, 10000));
    gw_usage_writer_t *w = gw_usage_writer_start(db.conninfo, 100, 10);
    for (int i = 0; i < 50; i++) {
        gw_usage_record_t r = usage_record("before", i, team_id, key_id);
        gw_usage_writer_submit(w, &r);
    }
    CHECK(usage_wait_drained(w, 10000));
    CHECK(usage_count(c, "before-%") == 50);
    PQfinish(c);

    /* The outage. */
    CHECK(services("pg-stop") == 0);
    for (int i = 0; i < 100; i++) {
        gw_usage_record_t r = usage_record("during", i, team_id, key_id);
        gw_usage_writer_submit(w, &r);
        if (i < 10) /* submitted twice: still one row each */
            gw_usage_writer_submit(w, &r);
    }
    tdb_sleep_ms(1500);
    CHECK(gw_usage_writer_pending(w) == 110);
    /* The key store still answers from the table it loaded. */
    CHECK(gw_keystore_lookup(ks, key, strlen(key), tdb_now_us(), NULL) == GW_KEY_OK);
    uint64_t gen = gw_keystore_generation(ks);
    CHECK(services("pg-start") == 0);

    /* Back: everything pending is written, exactly once. */
    int64_t t0 = tdb_mono_ms();
    CHECK(usage_wait_drained(w, 20000));
    printf("usage rows from the outage written %lld ms after PostgreSQL came back\n",
           (long long)(tdb_mono_ms() - t0));
    c = tdb_connect(&db);
    CHECK(usage_count(c, "during-%") == 100);
    CHECK(usage_count(c, "%") == 150);
    CHECK(gw_usage_writer_written(w) == 150);

    /* The key store reconnects (and reloads), then follows changes again. */
    int64_t end = tdb_mono_ms() + 15000;
    while (gw_keystore_generation(ks) == gen && tdb_mono_ms() < end)
        tdb_sleep_ms(20);
    CHECK(gw_keystore_generation(ks) > gen);
    printf("key store reloaded %lld ms after PostgreSQL came back\n",
           (long long)(tdb_mono_ms() - t0));
    char display[12];
    snprintf(display, sizeof display, "%.11s", key);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "key revoke %s", display) == 0);
    t0 = tdb_mono_ms();
    while (gw_keystore_lookup(ks, key, strlen(key), tdb_now_us(), NULL) != GW_KEY_REVOKED &&
           tdb_mono_ms() - t0 < 5000)
        tdb_sleep_ms(2);
    CHECK(tdb_mono_ms() - t0 < 1000);

    gw_usage_writer_stop(w, 2000);
    gw_keystore_stop(ks);
    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
