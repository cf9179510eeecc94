/* gw_pgconn: one way to open a PostgreSQL connection and to describe its
 * failures, shared by everything in the gateway and tollgatectl that talks
 * to PostgreSQL (key store, price book, usage writer, governance store,
 * admin APIs). */
#include "gw_pgconn.h"
#include <errno.h>
#include <poll.h>

#include <stdio.h>
#include <string.h>

const char *gw_pg_message(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    const char *msg = res ? PQresultErrorMessage(res) : (conn ? PQerrorMessage(conn) : "");
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    if (!msg || !*msg)
        msg = "unknown error";
    snprintf(err, errlen, "%s", msg);
    /* libpq messages end with a newline and may span lines: keep one line. */
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    /* ... and collapse the runs of blanks that leaves. */
    char *w = err;
    for (char *r = err; *r; r++)
        if (!(*r == ' ' && (w == err || w[-1] == ' ')))
            *w++ = *r;
    *w = '\0';
    size_t n = strlen(err);
    while (n > 0 && err[n - 1] == ' ')
        err[--n] = '\0';
    return err;
}

PGconn *gw_pg_connect(const char *conninfo, int default_timeout_s, char *err, size_t errlen)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", default_timeout_s > 0 ? default_timeout_s : 5);
    /* With expand_dbname, the expanded conninfo overrides the keywords before
     * it, so the user's own settings win over these defaults. The TCP
     * keepalives and user timeout make a silently dead server (a network
     * partition: no RST) an error within about 20 s instead of a thread
     * blocked forever, or a LISTEN that hears nothing and does not know it. */
    const char *keys[] = {
        "connect_timeout",  "application_name", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *vals[] = {timeout, "tollgate", "10", "3", "3", "20000", conninfo ? conninfo : "",
                          NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];
        gw_pg_message(conn, NULL, msg, sizeof msg);
        const char *host = PQhost(conn), *port = PQport(conn), *db = PQdb(conn);
        snprintf(err, errlen, "cannot connect to PostgreSQL at %s:%s/%s: %s",
                 host && *host ? host : "(default socket)", port && *port ? port : "5432",
                 db ? db : "", msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

int gw_pg_error_retryable(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state || strlen(state) != 5)
        return 1;
    return strncmp(state, "08", 2) == 0     /* connection exception */
           || strncmp(state, "57", 2) == 0  /* operator intervention: shutdown */
           || strncmp(state, "53", 2) == 0  /* insufficient resources */
           || strcmp(state, "40001") == 0   /* serialization failure */
           || strcmp(state, "40P01") == 0   /* deadlock detected */
           || strcmp(state, "55P03") == 0   /* lock not available */
           || strncmp(state, "58", 2) == 0; /* system error (I/O) */
}

int gw_pg_backoff_next(int cur_ms, int min_ms, int max_ms)
{
    if (cur_ms < min_ms)
        return min_ms;
    if (cur_ms >= max_ms / 2)
        return max_ms;
    return cur_ms * 2;
}

int gw_pg_wait_notify(PGconn *conn, int poll_ms, char *err, size_t errlen)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    if (pfd.fd < 0) {
        snprintf(err, errlen, "no socket");
        return -1;
    }
    int ready = poll(&pfd, 1, poll_ms);
    if (ready < 0 && errno == EINTR)
        return 0;
    if (ready < 0) {
        snprintf(err, errlen, "poll: %s", strerror(errno));
        return -1;
    }
    if (!PQconsumeInput(conn)) {
        gw_pg_message(conn, NULL, err, errlen);
        return -1;
    }
    int notified = 0;
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
        notified = 1;
        PQfreemem(n);
    }
    return notified;
}
