/* ctl_migrate: "tollgatectl migrate [--status]". Applies the numbered SQL
 * files NNNN_name.sql of the migrations folder in order, each in its own
 * transaction, and records them (with the file's SHA-256) in
 * schema_migrations. Refuses a database newer than the files it knows, an
 * applied file whose content changed, and gaps in the order. */
#include "ctl.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef TG_MIGRATIONS_DIR
#define TG_MIGRATIONS_DIR "/usr/share/tollgate/migrations"
#endif
#define CTL_MIGRATIONS_INSTALLED "/usr/share/tollgate/migrations"
#define CTL_MIGRATE_LOCK "7417917" /* pg_advisory_lock key: one migrate at a time */
#define CTL_MIGRATION_MAX_BYTES (16 * 1024 * 1024)

typedef struct ctl_migration {
    int version;
    char file[256];
    char sha256[65];
    char *sql;
    /* from the database */
    bool applied;
    char db_sha256[65];
    char applied_at[40];
} ctl_migration_t;

typedef struct ctl_applied {
    int version;
    char name[256];
    char sha256[65];
    char applied_at[40];
} ctl_applied_t;

static const char ctl_migrate_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] migrate [--status] [--migrations DIR]\n"
    "\n"
    "Applies the pending migrations (files NNNN_name.sql) in order, each in its own\n"
    "transaction, and records each in the table schema_migrations with its SHA-256.\n"
    "Running it again applies nothing. It refuses to run when the database has a\n"
    "migration newer than the files it knows, when an applied file has changed, or\n"
    "when a pending file sorts before one already applied.\n"
    "\n"
    "  --status          show each migration's state; change nothing\n"
    "  --migrations DIR  where the files are (default: the source tree's migrations/\n"
    "                    when it exists, else " CTL_MIGRATIONS_INSTALLED ")\n";

static int ctl_migration_cmp(const void *a, const void *b)
{
    const ctl_migration_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* True for "NNNN_something.sql"; sets *version. */
static bool ctl_migration_name(const char *name, int *version)
{
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
        return false;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)name[i]))
            return false;
    *version = atoi(name);
    return *version > 0;
}

static void ctl_sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Reads a whole file (NUL-terminated). Returns NULL with err set. */
static char *ctl_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CTL_MIGRATION_MAX_BYTES + 1);
    if (!buf)
        abort();
    size_t n = fread(buf, 1, CTL_MIGRATION_MAX_BYTES + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || n > CTL_MIGRATION_MAX_BYTES) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 bad ? "read error" : "larger than 16 MiB");
        free(buf);
        return NULL;
    }
    if (memchr(buf, '\0', n)) {
        snprintf(err, errlen, "%s contains a NUL byte: not an SQL text file", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void ctl_migrations_free(ctl_migration_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].sql);
    free(m);
}

/* Loads every NNNN_*.sql of dir, sorted by version. Returns 0, or -1 after
 * printing the problem (missing folder, no files, two files with one number). */
static int ctl_migrations_load(const char *dir, ctl_migration_t **out, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        ctl_error("cannot open the migrations folder %s: %s (pass --migrations DIR)", dir,
                  strerror(errno));
        return -1;
    }
    ctl_migration_t *m = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        int version;
        if (!ctl_migration_name(e->d_name, &version))
            continue;
        if (strlen(e->d_name) >= sizeof m->file) {
            ctl_error("migration file name too long: %s", e->d_name);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            m = realloc(m, cap * sizeof *m);
            if (!m)
                abort();
        }
        ctl_migration_t *x = &m[n++];
        memset(x, 0, sizeof *x);
        x->version = version;
        snprintf(x->file, sizeof x->file, "%s", e->d_name);
        char path[4096], err[8192];
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        x->sql = ctl_read_file(path, &len, err, sizeof err);
        if (!x->sql) {
            ctl_error("%s", err);
            rc = -1;
            break;
        }
        ctl_sha256_hex(x->sql, len, x->sha256);
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        ctl_error("no migration files (NNNN_name.sql) in %s (pass --migrations DIR)", dir);
        rc = -1;
    }
    if (rc == 0) {
        qsort(m, n, sizeof *m, ctl_migration_cmp);
        for (size_t i = 1; i < n; i++) {
            if (m[i].version == m[i - 1].version) {
                ctl_error("two migrations share the number %04d: %s and %s; renumber one",
                          m[i].version, m[i - 1].file, m[i].file);
                rc = -1;
                break;
            }
        }
    }
    if (rc != 0) {
        ctl_migrations_free(m, n);
        return -1;
    }
    *out = m;
    *count = n;
    return 0;
}

static const char *ctl_migrations_dir(const char *given)
{
    if (given)
        return given;
    struct stat st;
    if (stat(TG_MIGRATIONS_DIR, &st) == 0 && S_ISDIR(st.st_mode))
        return TG_MIGRATIONS_DIR;
    return CTL_MIGRATIONS_INSTALLED;
}

/* Reads schema_migrations (absent: nothing applied). Returns the number of
 * rows (rows in *out, caller frees) or -1 after printing the error. */
static int ctl_applied_load(PGconn *conn, ctl_applied_t **out)
{
    *out = NULL;
    PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res, "cannot read the schema version");
        PQclear(res);
        return -1;
    }
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!exists)
        return 0;
    res =
        PQexec(conn, "SELECT version, name, sha256, to_char(applied_at AT TIME ZONE 'UTC',"
                     " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res, "cannot read schema_migrations");
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    ctl_applied_t *a = calloc((size_t)rows + 1, sizeof *a);
    if (!a)
        abort();
    for (int r = 0; r < rows; r++) {
        a[r].version = atoi(PQgetvalue(res, r, 0));
        snprintf(a[r].name, sizeof a[r].name, "%s", PQgetvalue(res, r, 1));
        snprintf(a[r].sha256, sizeof a[r].sha256, "%s", PQgetvalue(res, r, 2));
        snprintf(a[r].applied_at, sizeof a[r].applied_at, "%s", PQgetvalue(res, r, 3));
    }
    PQclear(res);
    *out = a;
    return rows;
}

/* Matches applied rows to files. Prints each problem; returns how many. */
static int ctl_migrations_check(ctl_migration_t *m, size_t n, const ctl_applied_t *a, int na,
                                const char *dir)
{
    int problems = 0, newest_known = m[n - 1].version, newest_applied = 0;
    for (int i = 0; i < na; i++) {
        if (a[i].version > newest_applied)
            newest_applied = a[i].version;
        ctl_migration_t *f = NULL;
        for (size_t k = 0; k < n; k++)
            if (m[k].version == a[i].version)
                f = &m[k];
        if (f) {
            f->applied = true;
            snprintf(f->db_sha256, sizeof f->db_sha256, "%s", a[i].sha256);
            snprintf(f->applied_at, sizeof f->applied_at, "%s", a[i].applied_at);
            if (strcmp(f->sha256, a[i].sha256) != 0) {
                ctl_error("migration %s was changed after it was applied (the database "
                          "recorded sha256 %.12s..., the file now has %.12s...). Applied "
                          "migrations must never be edited: restore the file and put the "
                          "change in a new migration.",
                          f->file, a[i].sha256, f->sha256);
                problems++;
            }
        } else if (a[i].version > newest_known) {
            ctl_error("the database schema is newer than this tollgatectl: it has migration "
                      "%04d (%s) but the newest file in %s is %04d. Use the tollgatectl (and "
                      "migrations) of the release that upgraded this database; nothing was "
                      "changed.",
                      a[i].version, a[i].name, dir, newest_known);
            problems++;
        } else {
            ctl_error("migration %04d (%s) is applied in the database but its file is missing "
                      "from %s; restore it",
                      a[i].version, a[i].name, dir);
            problems++;
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (!m[k].applied && m[k].version < newest_applied) {
            ctl_error("migration %s is pending but the later migration %04d is already "
                      "applied; migrations apply in order only: renumber it after %04d",
                      m[k].file, newest_applied, newest_applied);
            problems++;
        }
    }
    return problems;
}

static int ctl_exec_ok(PGconn *conn, const char *sql, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        ctl_pg_error(conn, res, what);
    PQclear(res);
    return ok ? 0 : -1;
}

/* Applies one migration in its own transaction, records it, and writes an
 * audit_log row when that table exists. Returns 0 or -1 (rolled back). */
static int ctl_migration_apply(PGconn *conn, const ctl_ctx_t *ctx, const ctl_migration_t *m)
{
    char what[512];
    snprintf(what, sizeof what, "migration %s failed and was rolled back", m->file);
    if (ctl_exec_ok(conn, "BEGIN", "cannot start a transaction") != 0)
        return -1;
    if (ctl_exec_ok(conn, m->sql, what) != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->file, m->sha256, ctx->actor};
    PGresult *res = PQexecParams(
        conn,
        "WITH s AS (INSERT INTO schema_migrations (version, name, sha256) VALUES ($1::int, $2, $3)"
        "  RETURNING version, name, sha256)"
        " SELECT to_regclass('audit_log') IS NOT NULL FROM s",
        3, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    bool audit = ok && PQgetvalue(res, 0, 0)[0] == 't';
    if (!ok)
        ctl_pg_error(conn, res, what);
    PQclear(res);
    if (ok && audit) {
        res = PQexecParams(conn,
                           "INSERT INTO audit_log (actor, action, object, after)"
                           " VALUES ($4, 'schema.migrate', 'migration:' || $2,"
                           " jsonb_build_object('version', $1::int, 'name', $2::text,"
                           " 'sha256', $3::text))",
                           4, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            ctl_pg_error(conn, res, what);
        PQclear(res);
    }
    if (!ok || ctl_exec_ok(conn, "COMMIT", what) != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    return 0;
}

static void ctl_migrate_status_print(const ctl_migration_t *m, size_t n, const ctl_applied_t *a,
                                     int na)
{
    printf("%-8s %-40s %-10s %s\n", "VERSION", "FILE", "STATE", "APPLIED AT");
    for (size_t k = 0; k < n; k++) {
        const char *state = !m[k].applied                              ? "pending"
                            : strcmp(m[k].sha256, m[k].db_sha256) != 0 ? "CHANGED"
                                                                       : "applied";
        printf("%04d     %-40s %-10s %s\n", m[k].version, m[k].file, state,
               m[k].applied ? m[k].applied_at : "-");
    }
    for (int i = 0; i < na; i++) {
        bool known = false;
        for (size_t k = 0; k < n; k++)
            known = known || m[k].version == a[i].version;
        if (!known)
            printf("%04d     %-40s %-10s %s\n", a[i].version, a[i].name, "NO FILE",
                   a[i].applied_at);
    }
}

int ctl_migrate_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {{"status", false, false, NULL}, {"migrations", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("migrate", argc - 1, argv + 1, opts, 2, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_migrate_usage, stdout);
        return CTL_OK;
    }
    bool status_only = opts[0].present;
    const char *dir = ctl_migrations_dir(opts[1].value);
    ctl_migration_t *m;
    size_t n;
    if (ctl_migrations_load(dir, &m, &n) != 0)
        return CTL_FAIL;
    PGconn *conn = ctl_connect(ctx);
    if (!conn) {
        ctl_migrations_free(m, n);
        return CTL_FAIL;
    }
    int rc = CTL_FAIL;
    ctl_applied_t *a = NULL;
    int na;
    if (!status_only &&
        (ctl_exec_ok(conn, "SELECT pg_advisory_lock(" CTL_MIGRATE_LOCK ")",
                     "cannot take the migration lock") != 0 ||
         ctl_exec_ok(conn,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     "cannot create schema_migrations") != 0))
        goto out;
    if ((na = ctl_applied_load(conn, &a)) < 0)
        goto out;
    int problems = ctl_migrations_check(m, n, a, na, dir);
    if (status_only) {
        ctl_migrate_status_print(m, n, a, na);
        rc = problems ? CTL_FAIL : CTL_OK;
        goto out;
    }
    if (problems)
        goto out;
    int applied = 0;
    for (size_t k = 0; k < n; k++) {
        if (m[k].applied)
            continue;
        if (ctl_migration_apply(conn, ctx, &m[k]) != 0)
            goto out;
        printf("applied %s\n", m[k].file);
        applied++;
    }
    printf("database is up to date at version %04d (%d migration%s applied now)\n",
           m[n - 1].version, applied, applied == 1 ? "" : "s");
    rc = CTL_OK;
out:
    free(a);
    PQfinish(conn);
    ctl_migrations_free(m, n);
    return rc;
}
