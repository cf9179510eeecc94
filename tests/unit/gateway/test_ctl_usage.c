/* Integration test of "tollgatectl usage summary|export|verify" on a real
 * PostgreSQL: the summary's totals are the exact sum of the charges; a CSV
 * export loaded back into PostgreSQL (COPY) and a JSON export parsed with
 * cJSON both give every row once, the charges summing to the rows' charges,
 * odd text intact, across several cursor fetches; --team filters; verify
 * reports zero differences, then finds a tampered charge; --spool counts the
 * spool's records against the rows; bad arguments are refused. */
#include "spool_files.h"
#include "test_usage_common.h"

#include <cjson/cJSON.h>

#define N 12000 /* more than two FETCHes of the export's cursor */

static char out[1 << 16], err[1 << 16];
static int64_t card_id;

static gw_usage_record_t priced(const char *prefix, int i, int64_t team, int64_t key)
{
    gw_usage_record_t r = usage_record(prefix, i, team, key);
    r.price_card_id = card_id;
    r.priced_at_us = r.completed_at_us;
    snprintf(r.charge_currency, sizeof r.charge_currency, "USD");
    r.cost_pico[0] = (__int128)70000 * r.cache_hit_tokens;
    r.cost_pico[1] = (__int128)270000 * r.cache_miss_tokens;
    r.cost_pico[2] = (__int128)1100000 * r.completion_tokens;
    r.charge_pico = r.cost_pico[0] + r.cost_pico[1] + r.cost_pico[2];
    return r;
}

static int64_t team_id(PGconn *c, const char *name)
{
    const char *p[] = {name};
    char *v = tdb_value(c, "SELECT id FROM teams WHERE name = $1", 1, p);
    int64_t id = v ? atoll(v) : 0;
    free(v);
    return id;
}

/* Runs tollgatectl with stdout to a file; returns the exit status. */
static int ctl_to_file(const char *path, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s > '%s'", getenv("TG_CTL"), args, path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int64_t team, key;
    usage_fixture(c, &team, &key);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "team create beta") == 0);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "key create --team beta") == 0);
    int64_t beta = team_id(c, "beta");
    char *v = tdb_value(c,
                        "SELECT id FROM api_keys WHERE team_id = (SELECT id FROM teams WHERE"
                        " name = 'beta')",
                        0, NULL);
    int64_t beta_key = v ? atoll(v) : 0;
    free(v);
    v = tdb_value(c,
                  "INSERT INTO price_cards (provider, model, currency, cache_hit_price,"
                  " cache_miss_price, output_price, effective_from, created_by)"
                  " VALUES ('sim', 'deepseek-v3', 'USD', 70000, 270000, 1100000,"
                  " '2020-01-01Z', 'test') RETURNING id",
                  0, NULL);
    card_id = v ? atoll(v) : 0;
    free(v);

    /* N rows for acme (one with awkward text), 7 for beta, 3 unpriced. */
    gw_usage_writer_t *w = gw_usage_writer_start(db.conninfo, 1000, 5);
    int64_t total = 0, beta_total = 0;
    for (int i = 0; i < N; i++) {
        gw_usage_record_t r = priced("row", i, team, key);
        if (i == 77)
            snprintf(r.model_requested, sizeof r.model_requested, "%s", "we\"ird, \\model\n2");
        total += (int64_t)r.charge_pico;
        CHECK(gw_usage_writer_submit(w, &r) == 0);
    }
    for (int i = 0; i < 7; i++) {
        gw_usage_record_t r = priced("beta", i, beta, beta_key);
        total += (int64_t)r.charge_pico;
        beta_total += (int64_t)r.charge_pico;
        CHECK(gw_usage_writer_submit(w, &r) == 0);
    }
    for (int i = 0; i < 3; i++) {
        gw_usage_record_t r = usage_record("free", i, team, key);
        CHECK(gw_usage_writer_submit(w, &r) == 0);
    }
    CHECK(usage_wait_drained(w, 30000));
    gw_usage_writer_stop(w, 1000);
    CHECK(usage_count(c, "%") == N + 10);
    const char *period = "--from 2027-01-15 --to 2027-01-16";

    /* summary: exact decimal totals (rounded to 6 decimals = micro-units). */
    char want[128];
    int64_t micro = (total + 500000) / 1000000;
    snprintf(want, sizeof want, "%lld.%06lld", (long long)(micro / 1000000),
             (long long)(micro % 1000000));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage summary %s", period) == 0);
    printf("%s", out);
    CHECK(strstr(out, "acme") && strstr(out, "beta") && strstr(out, "TOTAL") && strstr(out, want));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage summary %s --by model", period) == 0);
    CHECK(strstr(out, "deepseek-chat") && strstr(out, want));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage summary %s --by provider", period) == 0);
    CHECK(strstr(out, "sim") && strstr(out, want));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err,
                  "usage summary --from 2030-01-01 --to 2030-02-01") == 0);
    CHECK(strstr(out, "no usage in the period"));

    /* export CSV, loaded back with COPY: same rows, same charges, same text. */
    char csv[256], json[256], cmd[4096], args[512];
    snprintf(csv, sizeof csv, "/tmp/tgexport-%d.csv", (int)getpid());
    snprintf(json, sizeof json, "/tmp/tgexport-%d.json", (int)getpid());
    snprintf(args, sizeof args, "usage export %s --format csv", period);
    CHECK(ctl_to_file(csv, args) == 0);
    v = tdb_value(c,
                  "SELECT string_agg(quote_ident(a.attname) || ' text', ', ' ORDER BY a.attnum)"
                  " FROM pg_attribute a WHERE a.attrelid = 'finance_usage'::regclass"
                  " AND a.attnum > 0",
                  0, NULL);
    snprintf(cmd, sizeof cmd, "CREATE TABLE back (%s)", v ? v : "");
    free(v);
    CHECK(tdb_exec(c, cmd));
    snprintf(cmd, sizeof cmd,
             "psql '%s' -X -q -v ON_ERROR_STOP=1 -c \"\\copy back FROM '%s' CSV HEADER\"",
             db.conninfo, csv);
    CHECK(system(cmd) == 0);
    snprintf(want, sizeof want, "%d|%d|%lld", N + 10, N + 10, (long long)total);
    CHECK(tdb_value_is(c,
                   "SELECT count(*) || '|' || count(DISTINCT request_id) || '|' ||"
                   " sum(charge_pico::numeric) FROM back",
                   want));
    CHECK(tdb_value_is(c,
                   "SELECT count(*) FROM back b JOIN finance_usage f USING (request_id)"
                   " WHERE b.model_requested = f.model_requested"
                   " AND b.charge_pico IS NOT DISTINCT FROM f.charge_pico::text"
                   " AND b.completed_at::timestamptz = f.completed_at"
                   " AND b.prompt_tokens::bigint = f.prompt_tokens",
                   "12010"));
    CHECK(tdb_value_is(c, "SELECT model_requested FROM back WHERE request_id = 'row-000077'",
                   "we\"ird, \\model\n2"));

    /* export JSON for one team, parsed. */
    snprintf(args, sizeof args, "usage export %s --format json --team beta", period);
    CHECK(ctl_to_file(json, args) == 0);
    size_t len = 0;
    char *text = (char *)spool_slurp(json, &len);
    cJSON *arr = text ? cJSON_ParseWithLength(text, len) : NULL;
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 7);
    int64_t sum = 0;
    cJSON *row;
    cJSON_ArrayForEach(row, arr)
    {
        cJSON *ch = cJSON_GetObjectItem(row, "charge_pico");
        CHECK(cJSON_IsString(ch));
        sum += ch ? atoll(ch->valuestring) : 0;
        CHECK(strcmp(cJSON_GetObjectItem(row, "team_name")->valuestring, "beta") == 0);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(row, "prompt_tokens")));
        CHECK(cJSON_IsBool(cJSON_GetObjectItem(row, "streamed")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(row, "error_type")));
    }
    CHECK(sum == beta_total);
    cJSON_Delete(arr);
    free(text);
    /* The whole period as JSON: every row, the awkward text intact. */
    snprintf(args, sizeof args, "usage export %s --format json", period);
    CHECK(ctl_to_file(json, args) == 0);
    text = (char *)spool_slurp(json, &len);
    arr = text ? cJSON_ParseWithLength(text, len) : NULL;
    CHECK(cJSON_GetArraySize(arr) == N + 10);
    bool odd = false;
    cJSON_ArrayForEach(row, arr)
    {
        if (strcmp(cJSON_GetObjectItem(row, "request_id")->valuestring, "row-000077") == 0)
            odd = strcmp(cJSON_GetObjectItem(row, "model_requested")->valuestring,
                         "we\"ird, \\model\n2") == 0;
    }
    CHECK(odd);
    cJSON_Delete(arr);
    free(text);
    /* An empty period is a valid empty document. */
    CHECK(ctl_to_file(json, "usage export --from 2030-01-01 --to 2030-01-02 --format json") == 0);
    text = (char *)spool_slurp(json, &len);
    arr = text ? cJSON_ParseWithLength(text, len) : NULL;
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 0);
    cJSON_Delete(arr);
    free(text);
    unlink(csv);
    unlink(json);

    /* verify: zero differences; then a tampered charge is found. */
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s", period) == 0);
    printf("%s", out);
    CHECK(strstr(out, "OK: 0 difference(s)"));
    CHECK(strstr(out, "rows in period:                 12010 (12007 priced, 3 unpriced)"));
    CHECK(tdb_exec(c, "UPDATE usage_events SET charge_pico = charge_pico + 1"
                      " WHERE request_id = 'row-000123'"));
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s", period) == 1);
    printf("%s", out);
    CHECK(strstr(out, "charges differing from prices:  1") && strstr(out, "row-000123") &&
          strstr(out, "FAILED: 2 difference(s)"));
    CHECK(tdb_exec(c, "UPDATE usage_events SET charge_pico = charge_pico - 1"
                      " WHERE request_id = 'row-000123'"));

    /* verify --spool: 100 records waiting in a spool, 40 of them already
     * written (a crash before the checkpoint), one outside the period. */
    char dir[512];
    spool_tmpdir(dir, sizeof dir, "verify");
    char closed[128];
    snprintf(closed, sizeof closed, "host=127.0.0.1 port=%d dbname=x user=x", tdb_closed_port());
    gw_usage_writer_opts_t o;
    gw_usage_writer_opts_default(&o);
    o.conninfo = closed;
    snprintf(o.spool.dir, sizeof o.spool.dir, "%s", dir);
    w = gw_usage_writer_start2(&o, err, sizeof err);
    CHECK(w != NULL);
    gw_usage_writer_t *direct = gw_usage_writer_start(db.conninfo, 100, 5);
    for (int i = 0; i < 101; i++) {
        gw_usage_record_t r = priced("sp", i, team, key);
        if (i == 100)
            r.completed_at_us += 86400LL * 1000000 * 30; /* next month */
        CHECK(gw_usage_writer_submit(w, &r) == 0);
        if (i < 40)
            CHECK(gw_usage_writer_submit(direct, &r) == 0);
    }
    CHECK(usage_wait_drained(direct, 20000));
    gw_usage_writer_stop(direct, 1000);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s --spool '%s'", period, dir) ==
          0);
    printf("%s", out);
    CHECK(strstr(out, "101 records not yet checkpointed") &&
          strstr(out, "a gateway is running on it"));
    CHECK(strstr(out, "in the period:                100 (40 already in the ledger, 60 waiting"));
    CHECK(strstr(out, "outside the period:           1"));
    gw_usage_writer_stop(w, 0);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s --spool '%s'", period, dir) ==
          0);
    CHECK(strstr(out, "no gateway running on it") && strstr(out, "start the gateway on it"));
    spool_rmdir(dir);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage verify %s --spool '%s'", period, dir) ==
          1);
    CHECK(strstr(err, "cannot open the spool directory"));

    /* Bad arguments: exit 2 with a reason. */
    const char *bad[] = {"usage summary --to 2027-01-16",
                         "usage summary --from 2027-01-16 --to 2027-01-15",
                         "usage summary --from 2027-13-01 --to 2028-01-01",
                         "usage summary --from 2027-01-15 --to 2027-01-16 --by colour",
                         "usage export --from 2027-01-15 --to 2027-01-16 --format xml",
                         "usage export --from 2027-01-15",
                         "usage verify --from yesterday --to 2027-01-16",
                         "usage frobnicate",
                         "usage"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tdb_ctl(out, sizeof out, err, sizeof err, "%s", bad[i]);
        if (rc != 2 || !err[0])
            fprintf(stderr, "'%s': rc %d, stderr '%s'\n", bad[i], rc, err);
        CHECK(rc == 2 && err[0]);
    }
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "usage --help") == 0 &&
          strstr(out, "usage export"));

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
