/* tg_testdb: helpers for the gateway's integration tests. Each test makes its
 * own fresh database on the PostgreSQL that scripts/services started
 * (TG_PG_CONNINFO / TG_PG_ADMIN_CONNINFO), so tests run in parallel, and
 * drops it at the end. Also: running tollgatectl and capturing its output. */
#ifndef TG_TESTDB_H
#define TG_TESTDB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int tdb_failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            tdb_failures++;                                                                        \
        }                                                                                          \
    } while (0)

typedef struct tdb {
    char name[64];
    char conninfo[1024]; /* the test database, as the tollgate role */
    char admin[1024];    /* the admin conninfo (superuser) */
} tdb_t;

/* Creates a fresh database owned by the tollgate role and points
 * TG_PG_CONNINFO at it (so tollgatectl uses it). Exits 77 (skipped) with a
 * reason if the services' environment is absent, 1 if creation fails. */
void tdb_create(tdb_t *db);

/* Drops the database (WITH (FORCE)). */
void tdb_drop(tdb_t *db);

/* Runs `tollgatectl ARGS...` (TG_CTL) through /bin/sh with the test database;
 * args is a shell fragment. Captures stdout and stderr (NUL-terminated,
 * truncated to their sizes). Returns the exit status (-1 if it died). */
int tdb_ctl(char *out, size_t outlen, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* tdb_ctl("migrate --migrations $TG_MIGRATIONS"), failing the test loudly if
 * it does not succeed. */
void tdb_migrate(void);

/* Connects to the test database or exits 1. */
PGconn *tdb_connect(const tdb_t *db);

/* Runs a one-value query (params: text). Returns a malloc'd copy of the
 * value, "" for NULL or no row, or NULL (printed) on error. */
char *tdb_value(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* True when sql's first value is exactly want; prints both when not. */
bool tdb_value_is(PGconn *conn, const char *sql, const char *want);

/* Runs sql on a new connection with conninfo (e.g. as a role with fewer
 * rights); true when PostgreSQL allowed it. An error other than "permission
 * denied" is printed. */
bool tdb_allowed_as(const char *conninfo, const char *sql);

/* Runs a statement; returns true if it succeeded (else prints why). */
bool tdb_exec(PGconn *conn, const char *sql);

/* A loopback TCP port where nothing listens (best effort). */
int tdb_closed_port(void);

int64_t tdb_now_us(void);
int64_t tdb_mono_ms(void);
void tdb_sleep_ms(int ms);

#endif
