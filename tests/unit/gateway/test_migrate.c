/* Integration test of "tollgatectl migrate" on a fresh database: applies every
 * file and is idempotent; --status; refuses a newer schema, a changed file, a
 * pending file older than an applied one; rolls a failing file back whole;
 * clear errors for a missing or empty folder. */
#include "tg_testdb.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[16384], err[16384];

/* Copies the source migrations into a scratch folder that the test may edit. */
static void scratch_copy(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s'/*.sql '%s'/", dir, dir,
             getenv("TG_MIGRATIONS"), dir);
    if (system(cmd) != 0)
        exit(1);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        exit(1);
    fputs(text, f);
    fclose(f);
}

static int count_files(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -cE '^[0-9]{4}_.*\\.sql$'", dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (!p || fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    PGconn *c = tdb_connect(&db);
    const char *src = getenv("TG_MIGRATIONS");
    int nfiles = count_files(src);
    CHECK(nfiles >= 1);

    /* First run applies everything. */
    int rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", src);
    CHECK(rc == 0);
    CHECK(strstr(out, "applied 0001_teams_keys_usage.sql") != NULL);
    char *v = tdb_value(c, "SELECT count(*) FROM schema_migrations", 0, NULL);
    CHECK(v && atoi(v) == nfiles);
    free(v);
    v = tdb_value(c, "SELECT count(*) FROM audit_log WHERE action = 'schema.migrate'", 0, NULL);
    CHECK(v && atoi(v) == nfiles);
    free(v);
    v = tdb_value(c, "SELECT to_regclass('api_keys') IS NOT NULL", 0, NULL);
    CHECK(v && strcmp(v, "t") == 0);
    free(v);

    /* Second run: nothing to do, nothing changes. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", src);
    CHECK(rc == 0 && strstr(out, "(0 migrations applied now)") != NULL);
    CHECK(strstr(out, "applied 0001") == NULL);
    v = tdb_value(c, "SELECT count(*) FROM schema_migrations", 0, NULL);
    CHECK(v && atoi(v) == nfiles);
    free(v);

    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --status --migrations '%s'", src);
    CHECK(rc == 0 && strstr(out, "0001_teams_keys_usage.sql") && strstr(out, "applied"));
    CHECK(strstr(out, "pending") == NULL);

    /* The default folder baked in at build time is the source tree's. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --status");
    CHECK(rc == 0 && strstr(out, "0001_teams_keys_usage.sql"));

    /* A database newer than the files this tollgatectl knows. */
    CHECK(tdb_exec(c, "INSERT INTO schema_migrations (version, name, sha256)"
                      " VALUES (9999, '9999_future.sql', 'x')"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", src);
    CHECK(rc == 1 && strstr(err, "newer than this tollgatectl") && strstr(err, "9999"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --status --migrations '%s'", src);
    CHECK(rc == 1 && strstr(out, "NO FILE"));
    CHECK(tdb_exec(c, "DELETE FROM schema_migrations WHERE version = 9999"));

    /* An applied file that was edited afterwards. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tg-migrate-test-%d", P_tmpdir, (int)getpid());
    scratch_copy(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/0001_teams_keys_usage.sql", dir);
    FILE *f = fopen(path, "a");
    CHECK(f != NULL);
    if (f) {
        fputs("-- an innocent-looking edit\n", f);
        fclose(f);
    }
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir);
    CHECK(rc == 1 && strstr(err, "0001_teams_keys_usage.sql was changed after it was applied"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --status --migrations '%s'", dir);
    CHECK(rc == 1 && strstr(out, "CHANGED"));

    /* New files apply in order; a failing one is rolled back whole. */
    scratch_copy(dir);
    write_file(dir, "9000_extra.sql", "CREATE TABLE extra_a (x int);\n");
    write_file(dir, "9001_bad.sql", "CREATE TABLE extra_b (x int);\nSELECT no_such_function();\n");
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir);
    CHECK(rc == 1 && strstr(out, "applied 9000_extra.sql"));
    CHECK(strstr(err, "9001_bad.sql failed and was rolled back") &&
          strstr(err, "no_such_function"));
    v = tdb_value(c,
                  "SELECT to_regclass('extra_b') IS NULL AND to_regclass('extra_a') IS NOT NULL"
                  " AND NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 9001)",
                  0, NULL);
    CHECK(v && strcmp(v, "t") == 0);
    free(v);
    write_file(dir, "9001_bad.sql", "CREATE TABLE extra_b (x int);\n");
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir);
    CHECK(rc == 0 && strstr(out, "applied 9001_bad.sql"));

    /* A pending file that sorts before an applied one. */
    write_file(dir, "8999_late.sql", "CREATE TABLE extra_c (x int);\n");
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir);
    CHECK(rc == 1 && strstr(err, "8999_late.sql is pending but the later migration 9001"));

    /* Two files with one number. */
    scratch_copy(dir);
    write_file(dir, "0001_twin.sql", "SELECT 1;\n");
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir);
    CHECK(rc == 1 && strstr(err, "share the number 0001"));

    /* Missing and empty folders. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s/nope'", dir);
    CHECK(rc == 1 && strstr(err, "cannot open the migrations folder"));
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0);
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'", dir);
    CHECK(rc == 1 && strstr(err, "no migration files"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);

    /* Bad usage. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --frobnicate");
    CHECK(rc == 2 && strstr(err, "unknown option '--frobnicate'"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --help");
    CHECK(rc == 0 && strstr(out, "usage: tollgatectl"));

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
