/* gw_pgconn: connecting to PostgreSQL the same way everywhere (key store,
 * usage writer, tollgatectl): a default connect timeout, an error message that
 * names the server (never the password) and says what to do, and a back-off
 * schedule for reconnecting background threads. */
#ifndef GW_PGCONN_H
#define GW_PGCONN_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects with `conninfo` (a libpq conninfo string or URI; NULL or "" means
 * libpq's defaults and PG* environment variables). A connect_timeout of
 * `default_timeout_s` seconds and TCP keepalives (a dead peer is detected in
 * about 20 s) apply unless conninfo sets its own. Returns the
 * connection (caller owns it: PQfinish) or NULL with a one-line message in err
 * of the form "cannot connect to PostgreSQL at host:port/db: <libpq message>". */
PGconn *gw_pg_connect(const char *conninfo, int default_timeout_s, char *err, size_t errlen);

/* Copies PQerrorMessage(conn) (or a result's message when res is not NULL)
 * into err without its trailing newline. Returns err. */
const char *gw_pg_message(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/* True if the SQLSTATE of a failed result means the statement may succeed
 * when simply retried (connection lost, server shutting down, too many
 * connections, serialization failure, deadlock) rather than bad data. A NULL
 * result or one without a SQLSTATE counts as retryable (the connection died). */
int gw_pg_error_retryable(const PGresult *res);

/* The next back-off delay: doubles `cur_ms` from `min_ms` up to `max_ms`. */
int gw_pg_backoff_next(int cur_ms, int min_ms, int max_ms);

/* Waits up to poll_ms for NOTIFY messages on a LISTENing connection and
 * consumes them. Returns 1 if at least one arrived, 0 if none did (timeout or
 * EINTR), -1 if the connection is lost (libpq's message in err). */
int gw_pg_wait_notify(PGconn *conn, int poll_ms, char *err, size_t errlen);

#endif
