/* ctl: the pieces of tollgatectl (the admin CLI) shared by its subcommands:
 * the run context, option parsing, connecting, input validation, key
 * generation. Each subcommand group lives in its own file (ctl_migrate.c,
 * ctl_team.c, ctl_key.c). */
#ifndef CTL_H
#define CTL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses: 0 success, 1 the operation failed, 2 bad usage. */
#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

typedef struct ctl_ctx {
    const char *conninfo; /* --db, else $TG_PG_CONNINFO, else "" (libpq defaults) */
    const char *actor;    /* --actor, else $SUDO_USER, $USER, the login name */
} ctl_ctx_t;

/* One option a command accepts; filled in by ctl_args_parse. */
typedef struct ctl_opt {
    const char *name; /* without the leading "--" */
    bool takes_value;
    bool present;
    const char *value;
} ctl_opt_t;

/* Parses argv[0..argc) for the command `cmd` (for messages): "--name value",
 * "--name=value" and flags from opts; everything else is positional (at most
 * max_pos, stored in pos). "--help"/"-h" sets *help. Returns 0, or -1 after
 * printing what is wrong to stderr. */
int ctl_args_parse(const char *cmd, int argc, char **argv, ctl_opt_t *opts, size_t nopts,
                   const char **pos, size_t max_pos, size_t *npos, bool *help);

/* Prints "tollgatectl: <message>" to stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Connects to ctx->conninfo. On failure prints what to do and returns NULL.
 * libpq notices are silenced on the connection. */
PGconn *ctl_connect(const ctl_ctx_t *ctx);

/* Prints a failed statement's message, prefixed by `what`. */
void ctl_pg_error(PGconn *conn, const PGresult *res, const char *what);

/* Validation of outside input; each returns 0, or -1 with err set. */
int ctl_team_name_check(const char *name, char *err, size_t errlen);
int ctl_models_check(const char *list, char *err, size_t errlen);
int ctl_label_check(const char *label, char *err, size_t errlen);

/* Parses "YYYY-MM-DD" (00:00:00 UTC that day) or RFC 3339
 * "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" into unix microseconds. */
int ctl_time_parse(const char *text, int64_t *out_us, char *err, size_t errlen);

#define CTL_KEY_RANDOM_BYTES 32
#define CTL_KEY_PREFIX "tg-"
#define CTL_KEY_LEN (3 + 43)        /* "tg-" + base64url(32 bytes), no padding */
#define CTL_KEY_DISPLAY_LEN (3 + 8) /* "tg-" + the first 8 characters */

/* Makes a new key from RAND_bytes: key gets CTL_KEY_LEN characters and a NUL,
 * display the first CTL_KEY_DISPLAY_LEN. Returns 0, or -1 if OpenSSL's
 * generator failed (err set). */
int ctl_key_generate(char key[CTL_KEY_LEN + 1], char display[CTL_KEY_DISPLAY_LEN + 1], char *err,
                     size_t errlen);

/* Subcommand groups: argv[0] is the group's name. Return an exit status. */
int ctl_migrate_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_team_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_key_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_usage_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_route_main(ctl_ctx_t *ctx, int argc, char **argv); /* ctl_route.c: no database */

#endif
