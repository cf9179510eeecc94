/* ledger_bench: usage-ledger throughput into PostgreSQL, against a plain COPY
 * of the same kind of rows into the same table in the same run. Run through
 * bench/ledger.sh (which starts PostgreSQL and migrates). Prints events/s for
 * COPY, the writer with the spool (interval and always sync) and without it,
 * and the ratios to COPY. */
#include "gw_usage.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this whole process (the submitting thread, the writer's
 * thread, the spool's syncer): what the ledger costs the gateway's host. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds used so far by every process of the PostgreSQL cluster (the
 * postmaster's children: backends, WAL writer, checkpointer...), from
 * /proc: a measure of what rows cost PostgreSQL that other load on a shared
 * machine disturbs far less than wall time. -1 when /proc is unreadable
 * (PostgreSQL runs as another user: run the bench as root). */
static int pg_postmaster;

/* utime + stime of pid in seconds, plus cutime + cstime (its reaped
 * children: the backends that have exited) when with_children. */
static double proc_cpu_s(int pid, int *ppid, bool with_children)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    long long cut = 0, cst = 0;
    int pp = 0;
    if (!p || sscanf(p + 2, "%*c %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu %lld %lld", &pp,
                     &ut, &st, &cut, &cst) != 5)
        return -1;
    if (ppid)
        *ppid = pp;
    double ticks = (double)(ut + st) + (with_children ? (double)(cut + cst) : 0);
    return ticks / (double)sysconf(_SC_CLK_TCK);
}

static double pg_cpu_s(void)
{
    if (pg_postmaster <= 0)
        return -1;
    /* Backends that exited are in the postmaster's cutime/cstime once reaped. */
    double total = proc_cpu_s(pg_postmaster, NULL, true);
    DIR *d = opendir("/proc");
    if (!d || total < 0) {
        if (d)
            closedir(d);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = atoi(e->d_name), pp = 0;
        double c;
        if (pid > 0 && (c = proc_cpu_s(pid, &pp, false)) >= 0 && pp == pg_postmaster)
            total += c;
    }
    closedir(d);
    return total;
}

static int64_t team_id, key_id;
static int64_t card_id; /* a price card (bench/ledger.sh seeds them); 0: rows unpriced */
static char currency[4];
/* What gw_route.c writes into route_explain, about this long. */
#define BENCH_EXPLAIN                                                                              \
    "{\"policy\":\"cheapest\",\"chosen\":\"deepseek\",\"runner_up\":\"openai\","                   \
    "\"reason\":\"lowest expected charge\",\"expected_pico\":312400000,"                           \
    "\"runner_up_pico\":1250000000}"

/* A realistic priced record; run-unique request ids. */
static gw_usage_record_t rec(const char *run, int i)
{
    gw_usage_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.request_id, sizeof r.request_id, "%s-%09d", run, i);
    r.team_id = team_id;
    r.key_id = key_id;
    snprintf(r.model_requested, sizeof r.model_requested, "deepseek-chat");
    snprintf(r.provider, sizeof r.provider, "deepseek");
    snprintf(r.upstream_model, sizeof r.upstream_model, "deepseek-chat");
    snprintf(r.endpoint, sizeof r.endpoint, "chat.completions");
    r.attempts = 1;
    r.streamed = i % 2;
    r.http_status = 200;
    r.received_at_us = (int64_t)time(NULL) * 1000000 - 1000000 + i % 1000000;
    r.first_byte_at_us = r.received_at_us + 150000;
    r.completed_at_us = r.received_at_us + 900000;
    r.prompt_tokens = 1000 + i % 100;
    r.cache_hit_tokens = 640;
    r.cache_miss_tokens = r.prompt_tokens - 640;
    r.completion_tokens = 50 + i % 30;
    r.reasoning_tokens = 0;
    r.usage_complete = true;
    if (card_id > 0) { /* priced as the gateway prices: four costs and their sum */
        r.price_card_id = card_id;
        r.priced_at_us = r.received_at_us;
        memcpy(r.charge_currency, currency, sizeof r.charge_currency);
        r.cost_pico[0] = (__int128)r.cache_hit_tokens * 70000;
        r.cost_pico[1] = (__int128)r.cache_miss_tokens * 270000;
        r.cost_pico[2] = (__int128)r.completion_tokens * 1100000;
        r.charge_pico = r.cost_pico[0] + r.cost_pico[1] + r.cost_pico[2];
    }
    snprintf(r.route_explain, sizeof r.route_explain, "%s", BENCH_EXPLAIN);
    return r;
}

static void die(PGconn *c, const char *what)
{
    fprintf(stderr, "ledger_bench: %s: %s", what, PQerrorMessage(c));
    exit(1);
}

static void ts_text(char *buf, size_t size, int64_t us)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06d+00", (int)(us % 1000000));
}

/* The peer: one COPY of n rows (text format) into usage_events. */
static double last_pg_us; /* PostgreSQL CPU per row of the last run (-1: unknown) */

/* COPYs rows [from, to) of run `tag` into `table` (text format). */
static void copy_rows(PGconn *c, const char *table, const char *tag, int from, int to)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "COPY %s (request_id, team_id, key_id, model_requested,"
             " provider, upstream_model, attempts, endpoint, streamed,"
             " http_status, error_type, received_at, first_byte_at, completed_at,"
             " prompt_tokens, cache_hit_tokens, cache_miss_tokens,"
             " completion_tokens, reasoning_tokens, usage_complete,"
             " price_card_id, discount_window_id, priced_at_instant,"
             " charge_currency, cost_cache_hit_pico, cost_cache_miss_pico,"
             " cost_output_pico, cost_reasoning_pico, charge_pico, pricing_flags,"
             " route_explain, cache_hit_predicted_tokens, response_cache_hit)"
             " FROM STDIN",
             table);
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die(c, "COPY");
    PQclear(res);
    char line[4096], ra[40], fb[40], ca[40], priced[512];
    for (int i = from; i < to; i++) {
        gw_usage_record_t r = rec(tag, i);
        ts_text(ra, sizeof ra, r.received_at_us);
        ts_text(fb, sizeof fb, r.first_byte_at_us);
        ts_text(ca, sizeof ca, r.completed_at_us);
        if (r.price_card_id > 0)
            snprintf(priced, sizeof priced,
                     "%" PRId64 "\t\\N\t%s\t%s\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t0\t%" PRId64
                     "\t0",
                     r.price_card_id, ra, r.charge_currency, (int64_t)r.cost_pico[0],
                     (int64_t)r.cost_pico[1], (int64_t)r.cost_pico[2], (int64_t)r.charge_pico);
        else
            snprintf(priced, sizeof priced, "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N");
        int len = snprintf(
            line, sizeof line,
            "%s\t%" PRId64 "\t%" PRId64 "\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t\\N\t%s\t%s\t%s"
            "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
            "\tt\t%s\t%s\t\\N\tf\n",
            r.request_id, r.team_id, r.key_id, r.model_requested, r.provider, r.upstream_model,
            r.attempts, r.endpoint, r.streamed ? "t" : "f", r.http_status, ra, fb, ca,
            r.prompt_tokens, r.cache_hit_tokens, r.cache_miss_tokens, r.completion_tokens,
            r.reasoning_tokens, priced, r.route_explain);
        if (PQputCopyData(c, line, len) != 1)
            die(c, "COPY data");
    }
    if (PQputCopyEnd(c, NULL) != 1)
        die(c, "COPY end");
    res = PQgetResult(c);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die(c, "COPY result");
    PQclear(res);
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die(c, sql);
    PQclear(res);
}

/* The peer: one COPY of n rows (text format) into usage_events. With
 * staged, what the writer does (gw_usage.c), from one connection: per batch
 * of 5,000, COPY into a temporary table, then INSERT ... SELECT ... ON
 * CONFLICT DO NOTHING from it, in one transaction. */
static double bench_copy_ex(PGconn *c, const char *tag, int n, bool staged)
{
    double t0 = now_s(), p0 = pg_cpu_s();
    if (!staged)
        copy_rows(c, "usage_events", tag, 0, n);
    else {
        exec_ok(c, "CREATE TEMP TABLE IF NOT EXISTS usage_stage"
                   " (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
        for (int b = 0; b < n; b += 5000) {
            exec_ok(c, "BEGIN");
            copy_rows(c, "usage_stage", tag, b, b + 5000 < n ? b + 5000 : n);
            exec_ok(c, "INSERT INTO usage_events SELECT * FROM usage_stage ON CONFLICT DO NOTHING");
            exec_ok(c, "COMMIT");
        }
    }
    double rate = n / (now_s() - t0), p1 = pg_cpu_s();
    last_pg_us = p0 >= 0 && p1 >= 0 ? (p1 - p0) / n * 1e6 : -1;
    return rate;
}

static double bench_copy(PGconn *c, const char *tag, int n)
{
    return bench_copy_ex(c, tag, n, false);
}

/* The ledger: submit n records (one thread, as fast as it can) and wait
 * until every one is committed. Returns events/s; *submit_us the mean time
 * one submit took. */
static double bench_writer(const char *conninfo, const char *run, const char *spool_dir,
                           gw_spool_sync_t sync, int conns, int n, double *submit_us,
                           double *cpu_us)
{
    gw_usage_writer_opts_t o;
    char err[512];
    gw_usage_writer_opts_default(&o);
    o.conninfo = conninfo;
    o.batch_max = 5000;
    o.flush_ms = 20;
    o.connections = conns;
    if (spool_dir) {
        snprintf(o.spool.dir, sizeof o.spool.dir, "%s", spool_dir);
        o.spool.sync = sync;
        o.spool.max_bytes = (uint64_t)4 << 30;
    }
    gw_usage_writer_t *w = gw_usage_writer_start2(&o, err, sizeof err);
    if (!w) {
        fprintf(stderr, "ledger_bench: %s\n", err);
        exit(1);
    }
    double t0 = now_s(), submit = 0, c0 = cpu_s(), p0 = pg_cpu_s();
    for (int i = 0; i < n; i++) {
        gw_usage_record_t r = rec(run, i);
        double s0 = now_s();
        if (gw_usage_writer_submit(w, &r) != 0) {
            fprintf(stderr, "ledger_bench: submit refused\n");
            exit(1);
        }
        submit += now_s() - s0;
    }
    while (gw_usage_writer_pending(w) > 0)
        usleep(1000);
    double rate = n / (now_s() - t0), p1 = pg_cpu_s();
    last_pg_us = p0 >= 0 && p1 >= 0 ? (p1 - p0) / n * 1e6 : -1;
    if (gw_usage_writer_written(w) != (uint64_t)n) {
        fprintf(stderr, "ledger_bench: %s wrote %" PRIu64 " rows of %d\n", run,
                gw_usage_writer_written(w), n);
        exit(1);
    }
    gw_usage_writer_stop(w, 5000);
    *submit_us = submit / n * 1e6;
    *cpu_us = (cpu_s() - c0) / n * 1e6;
    return rate;
}

int main(int argc, char **argv)
{
    const char *conninfo = getenv("TG_PG_CONNINFO");
    if (argc < 3 || !conninfo) {
        fprintf(stderr, "usage: TG_PG_CONNINFO=... ledger_bench N SPOOL_DIR [N_ALWAYS]\n");
        return 2;
    }
    int n = atoi(argv[1]), n_always = argc > 3 ? atoi(argv[3]) : n / 20;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die(c, "connect");
    PGresult *res = PQexec(c, "INSERT INTO teams (name) VALUES ('ledgerbench') RETURNING id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die(c, "team");
    team_id = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO api_keys (team_id, key_sha256, display_prefix) VALUES (%" PRId64
             ", sha256('ledgerbench'), 'tg-bench') RETURNING id",
             team_id);
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die(c, "key");
    key_id = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);

    res = PQexec(c, "SELECT id, currency FROM price_cards ORDER BY id LIMIT 1");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        card_id = atoll(PQgetvalue(res, 0, 0));
        snprintf(currency, sizeof currency, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    char d1[1024], d2[1024], d3[1024];
    snprintf(d1, sizeof d1, "%s/interval", argv[2]);
    snprintf(d2, sizeof d2, "%s/always", argv[2]);
    snprintf(d3, sizeof d3, "%s/interval1", argv[2]);
    /* The postmaster: the parent of this connection's backend. */
    res = PQexec(c, "SELECT pg_backend_pid()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        proc_cpu_s(atoi(PQgetvalue(res, 0, 0)), &pg_postmaster, false);
    PQclear(res);
    double su[4], cu[4], pg[4], rate[4], copy[6], copy_pg[6];
    copy[0] = bench_copy(c, "copy", n);
    copy_pg[0] = last_pg_us;
    rate[0] = bench_writer(conninfo, "spool", d1, GW_SPOOL_SYNC_INTERVAL, 2, n, &su[0], &cu[0]);
    pg[0] = last_pg_us;
    rate[1] = bench_writer(conninfo, "spool1", d3, GW_SPOOL_SYNC_INTERVAL, 1, n, &su[1], &cu[1]);
    pg[1] = last_pg_us;
    rate[2] = bench_writer(conninfo, "memory", NULL, GW_SPOOL_SYNC_INTERVAL, 1, n, &su[2], &cu[2]);
    pg[2] = last_pg_us;
    rate[3] =
        bench_writer(conninfo, "always", d2, GW_SPOOL_SYNC_ALWAYS, 2, n_always, &su[3], &cu[3]);
    pg[3] = last_pg_us;
    copy[1] = bench_copy(c, "copy2", n); /* again: the machine's load drifts during a run */
    copy_pg[1] = last_pg_us;
    double peer = (copy[0] + copy[1]) / 2, peer_pg = (copy_pg[0] + copy_pg[1]) / 2;
    /* What the daily rollup's trigger (migration 0017) and the pricing
     * columns cost PostgreSQL: COPY without each, between runs with them
     * (the table grows during the run, and later COPYs are slower). */
    copy[2] = copy_pg[2] = -1;
    res = PQexec(c, "ALTER TABLE usage_events DISABLE TRIGGER usage_daily_insert");
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        copy[2] = bench_copy(c, "copy3", n);
        copy_pg[2] = last_pg_us;
        res = PQexec(c, "ALTER TABLE usage_events ENABLE TRIGGER usage_daily_insert");
    }
    PQclear(res);
    copy[3] = bench_copy(c, "copy4", n);
    copy_pg[3] = last_pg_us;
    int64_t card = card_id;
    card_id = 0;
    copy[4] = bench_copy(c, "copy5", n);
    copy_pg[4] = last_pg_us;
    card_id = card;
    copy[5] = bench_copy(c, "copy6", n);
    copy_pg[5] = last_pg_us;
    double staged = bench_copy_ex(c, "staged", n, true), staged_pg = last_pg_us;
    double copy7 = bench_copy(c, "copy7", n), copy7_pg = last_pg_us;
    printf("rows per run: %d (always: %d), one submitting thread, batches of 5000; rows %s, with"
           " a %zu-byte route explanation\n",
           n, n_always, card_id > 0 ? "priced" : "UNPRICED (no price card)", strlen(BENCH_EXPLAIN));
    printf("PG CPU: microseconds of CPU of all PostgreSQL processes per row (-1: not readable);"
           " client CPU: this process (submitting thread, writer, syncer) per row\n");
    printf("%-42s %9s %9s %9s %9s %9s\n", "", "events/s", "vs COPY", "PG CPU", "client", "submit");
    printf("%-42s %9.0f %9s %9.1f   (before the ledger runs %.0f/s, after %.0f/s)\n",
           "COPY (peer, same table), mean", peer, "1.00", peer_pg, copy[0], copy[1]);
    const char *names[] = {
        "ledger, spool interval, 2 connections", "ledger, spool interval, 1 connection",
        "ledger, no spool (memory, 1 connection)", "ledger, spool always, 2 connections"};
    for (int i = 0; i < 4; i++)
        printf("%-42s %9.0f %9.2f %9.1f %9.2f %9.2f\n", names[i], rate[i], rate[i] / peer, pg[i],
               cu[i], su[i]);
    double with_roll = (copy_pg[1] + copy_pg[3]) / 2, priced = (copy_pg[3] + copy_pg[5]) / 2;
    if (copy[2] > 0)
        printf("%-42s %9.0f %9s %9.1f   (with it, around: %.1f: the rollup costs %.0f%% of "
               "PG CPU)\n",
               "COPY, rollup trigger disabled", copy[2], "", copy_pg[2], with_roll,
               100 * (with_roll / copy_pg[2] - 1));
    printf("%-42s %9.0f %9s %9.1f   (priced, around: %.1f: prices cost %.0f%% of PG CPU)\n",
           "COPY, the same rows unpriced", copy[4], "", copy_pg[4], priced,
           100 * (priced / copy_pg[4] - 1));
    printf("%-42s %9.0f %9s %9.1f   (COPY around: %.1f; the writer, 2 connections: %.1f)\n",
           "COPY to a temp table + INSERT ON CONFLICT", staged, "", staged_pg,
           (copy_pg[5] + copy7_pg) / 2, pg[0]);
    (void)copy7;
    printf("one core's worth of PostgreSQL CPU takes %.0f rows/s by COPY, %.0f by the writer "
           "(spool, 2 connections)\n",
           peer_pg > 0 ? 1e6 / peer_pg : -1, pg[0] > 0 ? 1e6 / pg[0] : -1);
    printf("target: ledger (spool, interval) >= 50000 events/s: %s\n",
           rate[0] >= 50000 ? "met" : "NOT met");
    PQfinish(c);
    return 0;
}
