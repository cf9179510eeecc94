/* tg_testdb: per-test databases and a tollgatectl runner for the gateway's
 * integration tests (see tg_testdb.h). */
#include "tg_testdb.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int tdb_failures;

int64_t tdb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tdb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tdb_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static PGconn *tdb_connect_to(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "test: cannot connect (%s): %s", conninfo, PQerrorMessage(c));
        exit(1);
    }
    return c;
}

void tdb_create(tdb_t *db)
{
    const char *user = getenv("TG_PG_CONNINFO"), *admin = getenv("TG_PG_ADMIN_CONNINFO");
    if (!user || !*user || !admin || !*admin) {
        fprintf(stderr, "SKIP: TG_PG_CONNINFO / TG_PG_ADMIN_CONNINFO are not set: start the "
                        "services with scripts/services start DIR and source DIR/services.env\n");
        exit(77);
    }
    static int counter;
    snprintf(db->name, sizeof db->name, "tgtest_%d_%lld_%d", (int)getpid(),
             (long long)(tdb_now_us() % 1000000000), counter++);
    /* In a conninfo string a later keyword overrides an earlier one. */
    snprintf(db->conninfo, sizeof db->conninfo, "%s dbname=%s", user, db->name);
    snprintf(db->admin, sizeof db->admin, "%s", admin);
    PGconn *c = tdb_connect_to(admin);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER tollgate", db->name);
    if (!tdb_exec(c, sql))
        exit(1);
    PQfinish(c);
    setenv("TG_PG_CONNINFO", db->conninfo, 1);
}

void tdb_drop(tdb_t *db)
{
    PGconn *c = PQconnectdb(db->admin);
    if (PQstatus(c) == CONNECTION_OK) {
        char sql[256];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
        tdb_exec(c, sql);
    } else {
        fprintf(stderr, "test: cannot drop %s: %s", db->name, PQerrorMessage(c));
    }
    PQfinish(c);
}

static void tdb_slurp(FILE *f, char *buf, size_t len)
{
    rewind(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

int tdb_ctl(char *out, size_t outlen, char *err, size_t errlen, const char *fmt, ...)
{
    const char *ctl = getenv("TG_CTL");
    if (!ctl) {
        fprintf(stderr, "test: TG_CTL (path of tollgatectl) is not set; run under meson test\n");
        exit(1);
    }
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    FILE *fo = tmpfile(), *fe = tmpfile();
    if (!fo || !fe)
        abort();
    snprintf(cmd, sizeof cmd, "'%s' %s >&%d 2>&%d", ctl, args, fileno(fo), fileno(fe));
    fflush(NULL);
    int st = system(cmd);
    char dummy[2];
    tdb_slurp(fo, out ? out : dummy, out ? outlen : sizeof dummy);
    tdb_slurp(fe, err ? err : dummy, err ? errlen : sizeof dummy);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tdb_migrate(void)
{
    char out[4096], err[4096];
    int rc = tdb_ctl(out, sizeof out, err, sizeof err, "migrate --migrations '%s'",
                     getenv("TG_MIGRATIONS"));
    if (rc != 0) {
        fprintf(stderr, "test: tollgatectl migrate failed (%d): %s%s", rc, out, err);
        exit(1);
    }
}

PGconn *tdb_connect(const tdb_t *db)
{
    return tdb_connect_to(db->conninfo);
}

char *tdb_value(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "test: query failed: %s: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    char *v = strdup(PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

bool tdb_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "test: statement failed: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

int tdb_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    close(fd); /* bound but never listening: connections are refused */
    return ntohs(a.sin_port);
}

bool tdb_value_is(PGconn *conn, const char *sql, const char *want)
{
    char *v = tdb_value(conn, sql, 0, NULL);
    bool ok = v && strcmp(v, want) == 0;
    if (!ok)
        fprintf(stderr, "%s\n  got  '%s'\n  want '%s'\n", sql, v ? v : "(error)", want);
    free(v);
    return ok;
}

bool tdb_allowed_as(const char *conninfo, const char *sql)
{
    PGconn *f = PQconnectdb(conninfo);
    if (PQstatus(f) != CONNECTION_OK) {
        fprintf(stderr, "test: login failed: %s", PQerrorMessage(f));
        PQfinish(f);
        return false;
    }
    PGresult *res = PQexec(f, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
    if (!ok && !strstr(PQresultErrorMessage(res), "permission denied"))
        fprintf(stderr, "test: %s: unexpected error %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(f);
    return ok;
}
