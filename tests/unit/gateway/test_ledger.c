/* Integration test of the usage writer with a spool, against a real
 * PostgreSQL (a fresh database): records submitted from several threads are
 * written exactly once and the drained segments deleted; records submitted
 * while PostgreSQL is unreachable survive a writer stop and start; replaying
 * a journal whose checkpoint is older than the COMMIT (a crash between the
 * two) writes nothing twice; a torn tail and a corrupted middle record are
 * recovered as docs/ledger.md says, end to end; a full spool refuses
 * (submit returns -1) or blocks until the writer makes room; a backlog is
 * sent on several connections at once, and when the first of the batches in
 * flight fails the rest are sent again: still exactly once, with a record
 * PostgreSQL refuses among them rejected exactly once. */
#include "spool_files.h"
#include "test_usage_common.h"

#include <pthread.h>
#include <stdatomic.h>

static gw_usage_writer_t *writer(const char *conninfo, const char *dir, uint64_t max_bytes,
                                 gw_spool_full_t full)
{
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = conninfo;
    o.batch_max = 200;
    o.flush_ms = 10;
    snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    o.spool.max_bytes = max_bytes;
    o.spool.full = full;
    return usage_writer_or_exit(&o);
}

/* A writer with `conns` connections and batches of `batch`. */
static gw_usage_writer_t *writer_conns(const char *conninfo, const char *dir, int conns, int batch)
{
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = conninfo;
    o.batch_max = batch;
    o.flush_ms = 10;
    o.connections = conns;
    snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    return usage_writer_or_exit(&o);
}

static int submit_range(gw_usage_writer_t *w, const char *prefix, int from, int to, int64_t team,
                        int64_t key)
{
    int ok = 0;
    for (int i = from; i < to; i++) {
        gw_usage_record_t r = usage_record(prefix, i, team, key);
        ok += gw_usage_writer_submit(w, &r) == 0;
    }
    return ok;
}

typedef struct thr {
    gw_usage_writer_t *w;
    const char *prefix;
    int64_t team, key;
    int from, to;
    atomic_int done;
} thr_t;

static void *thr_submit(void *arg)
{
    thr_t *t = arg;
    atomic_store(&t->done, submit_range(t->w, t->prefix, t->from, t->to, t->team, t->key) + 1);
    return NULL;
}

static char closed_conninfo[128];

/* Submits n records with PostgreSQL unreachable and stops the writer at
 * once: they stay in the spool at dir. */
static void spool_offline(const char *dir, const char *prefix, int n, int64_t team, int64_t key)
{
    gw_usage_writer_t *w = writer(closed_conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    CHECK(submit_range(w, prefix, 0, n, team, key) == n);
    gw_usage_writer_stop(w, 0);
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
    char dir[512], last[2048];
    gw_spool_stats_t st;

    /* 1. Four threads, 4000 records, half of them twice; small segments so
     *    that they rotate; each row once; drained segments deleted. */
    spool_tmpdir(dir, sizeof dir, "par");
    gw_usage_writer_t *w = writer(db.conninfo, dir, 256 << 10, GW_SPOOL_FULL_BLOCK);
    thr_t t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (thr_t){w, "par", team, key, i * 1000, (i + 1) * 1000 + (i % 2 ? 0 : 500), 0};
        CHECK(pthread_create(&th[i], NULL, thr_submit, &t[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(atomic_load(&t[i].done) == t[i].to - t[i].from + 1);
    }
    CHECK(usage_wait_drained(w, 30000));
    CHECK(usage_count(c, "par-%") == 4000);
    CHECK(gw_usage_writer_written(w) == 4000);
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.appended == 5000 && st.pending == 0 && st.refused == 0);
    CHECK(spool_segments(dir, NULL, 0) <= 2);
    CHECK(gw_usage_writer_spool_bytes(w) <= 32 << 10);
    gw_usage_writer_stop(w, 2000);
    spool_rmdir(dir);

    /* 2. PostgreSQL unreachable: records wait in the spool across a stop
     *    and a start, then are written exactly once. */
    spool_tmpdir(dir, sizeof dir, "down");
    spool_offline(dir, "down", 300, team, key);
    w = writer(closed_conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    CHECK(gw_usage_writer_pending(w) == 300);
    CHECK(submit_range(w, "down", 300, 400, team, key) == 100);
    tdb_sleep_ms(300);
    CHECK(gw_usage_writer_pending(w) == 400 && gw_usage_writer_written(w) == 0);
    gw_usage_writer_stop(w, 100);
    CHECK(usage_count(c, "down-%") == 0);
    w = writer(db.conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "down-%") == 400);
    CHECK(gw_usage_writer_written(w) == 400);
    gw_usage_writer_stop(w, 1000);

    /* 3. A crash after COMMIT but before the checkpoint: the journal is
     *    replayed from an older checkpoint; nothing is written twice. */
    char copy[600], cmd[2048];
    spool_offline(dir, "replay", 250, team, key);
    snprintf(copy, sizeof copy, "%s.copy", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", copy, dir, copy);
    CHECK(system(cmd) == 0);
    w = writer(db.conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(gw_usage_writer_written(w) == 250);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);
    snprintf(cmd, sizeof cmd, "rm -f '%s/lock'; mv '%s' '%s'", copy, copy, dir);
    CHECK(system(cmd) == 0);
    w = writer(db.conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    CHECK(gw_usage_writer_pending(w) == 250);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(gw_usage_writer_written(w) == 0); /* every row was already there */
    CHECK(usage_count(c, "replay-%") == 250);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    /* 4. A torn tail: the records before it are written, the tail cut off
     *    and counted, new records append cleanly after it. */
    spool_tmpdir(dir, sizeof dir, "torn");
    spool_offline(dir, "torn", 50, team, key);
    spool_segments(dir, last, sizeof last);
    size_t len = 0;
    uint8_t *b = spool_slurp(last, &len);
    CHECK(b && len > 0);
    CHECK(spool_append_raw(last, b, len > 100 ? 100 : len) == 0); /* half a frame */
    free(b);
    w = writer(db.conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.torn == 1 && st.corrupted == 0 && st.pending == 50);
    CHECK(submit_range(w, "torn", 50, 60, team, key) == 10);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "torn-%") == 60);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    /* 5. A corrupted record in the middle: skipped and counted; the records
     *    before and after it are written. */
    spool_tmpdir(dir, sizeof dir, "mid");
    spool_offline(dir, "mid", 50, team, key);
    spool_segments(dir, last, sizeof last);
    b = spool_slurp(last, &len);
    long off = spool_frame_offset(b, len, 20);
    CHECK(off > 0);
    uint8_t x = (uint8_t)(b[off + 30] ^ 0xFF);
    free(b);
    CHECK(spool_patch(last, off + 30, &x, 1) == 0);
    w = writer(db.conninfo, dir, 1 << 20, GW_SPOOL_FULL_REFUSE);
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.corrupted == 1 && st.torn == 0 && st.pending == 49);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "mid-%") == 49);
    CHECK(usage_count(c, "mid-000020") == 0);
    CHECK(usage_count(c, "mid-000019") == 1 && usage_count(c, "mid-000021") == 1);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    /* 6. Spool full, refuse: submit says so (-1), nothing accepted is lost. */
    spool_tmpdir(dir, sizeof dir, "full");
    w = writer(closed_conninfo, dir, 65536, GW_SPOOL_FULL_REFUSE);
    int accepted = submit_range(w, "full", 0, 1000, team, key);
    gw_usage_writer_spool_stats(w, &st);
    printf("spool of 65536 bytes took %d records before refusing\n", accepted);
    CHECK(accepted > 50 && accepted < 1000);
    CHECK(st.refused == (uint64_t)(1000 - accepted) && st.bytes <= 65536);
    CHECK(!gw_usage_writer_accepting(w));
    gw_usage_writer_stop(w, 0);
    w = writer(db.conninfo, dir, 65536, GW_SPOOL_FULL_REFUSE);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "full-%") == accepted);
    CHECK(gw_usage_writer_accepting(w));
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    /* 7. Spool full, block: while the table is locked the submitters wait;
     *    once it is released, every record is written. */
    spool_tmpdir(dir, sizeof dir, "blk");
    PGconn *locker = tdb_connect(&db);
    CHECK(tdb_exec(locker, "BEGIN; LOCK TABLE usage_events IN ACCESS EXCLUSIVE MODE"));
    w = writer(db.conninfo, dir, 65536, GW_SPOOL_FULL_BLOCK);
    thr_t bt = {w, "blk", team, key, 0, 1000, 0};
    pthread_t bth;
    CHECK(pthread_create(&bth, NULL, thr_submit, &bt) == 0);
    tdb_sleep_ms(1000);
    CHECK(atomic_load(&bt.done) == 0); /* blocked on the budget */
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.bytes <= 65536 && st.refused == 0);
    CHECK(tdb_exec(locker, "COMMIT"));
    pthread_join(bth, NULL);
    CHECK(atomic_load(&bt.done) == 1001);
    CHECK(usage_wait_drained(w, 20000));
    CHECK(usage_count(c, "blk-%") == 1000);
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.appended == 1000 && st.refused == 0);
    CHECK(gw_usage_writer_written(w) == 1000);
    gw_usage_writer_stop(w, 1000);
    PQfinish(locker);
    spool_rmdir(dir);

    /* 8. A backlog goes out on several connections at once: with the table
     *    locked, three batches wait inside PostgreSQL together. The backend
     *    of the oldest is then killed: the batches after it are abandoned
     *    and sent again (ON CONFLICT skips what they wrote). One record in
     *    the middle has an unknown team: rejected exactly once. */
    spool_tmpdir(dir, sizeof dir, "pipe");
    w = writer_conns(db.conninfo, dir, 3, 100);
    gw_usage_record_t warm = usage_record("pipe-warm", 0, team, key);
    CHECK(gw_usage_writer_submit(w, &warm) == 0); /* connected, partitions made */
    CHECK(usage_wait_drained(w, 20000));
    /* SHARE mode blocks the INSERTs but lets new connections make their
     * staging table (CREATE TEMP TABLE ... LIKE usage_events) and COPY. */
    locker = tdb_connect(&db);
    CHECK(tdb_exec(locker, "BEGIN; LOCK TABLE usage_events IN SHARE MODE"));
    CHECK(submit_range(w, "pipe", 0, 1050, team, key) == 1050);
    gw_usage_record_t bad = usage_record("pipe-bad", 0, 999999, key);
    CHECK(gw_usage_writer_submit(w, &bad) == 0);
    CHECK(submit_range(w, "pipe", 1050, 2000, team, key) == 950);
    const char *waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                          " AND query LIKE 'INSERT INTO usage_events%'";
    char *v = NULL;
    for (int i = 0; i < 100; i++, tdb_sleep_ms(50)) {
        free(v);
        v = tdb_value(c, waiting, 0, NULL);
        if (v && atoi(v) == 3)
            break;
    }
    printf("batches waiting in PostgreSQL at once: %s (3 connections)\n", v ? v : "?");
    CHECK(v && atoi(v) == 3);
    free(v);
    v = tdb_value(c,
                  "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type ="
                  " 'Lock' AND query LIKE 'INSERT INTO usage_events%' ORDER BY query_start LIMIT 1",
                  0, NULL);
    CHECK(v && strcmp(v, "t") == 0);
    free(v);
    CHECK(tdb_exec(locker, "COMMIT"));
    PQfinish(locker);
    CHECK(usage_wait_drained(w, 30000));
    CHECK(usage_count(c, "pipe-0%") == 2000);
    CHECK(usage_count(c, "pipe-bad%") == 0);
    CHECK(gw_usage_writer_written(w) == 2001);
    CHECK(gw_usage_writer_rejected(w) == 1);
    gw_usage_writer_spool_stats(w, &st);
    CHECK(st.pending == 0 && st.appended == 2002);
    gw_usage_writer_stop(w, 1000);
    spool_rmdir(dir);

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
