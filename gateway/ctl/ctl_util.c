/* ctl_util: option parsing, connecting, error printing and the validation of
 * names, model lists and dates that tollgatectl's subcommands share. */
#include "ctl.h"

#include "gw_key_admin.h"
#include "gw_pgconn.h"
#include "gw_price_admin.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ctl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tollgatectl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int ctl_args_parse(const char *cmd, int argc, char **argv, ctl_opt_t *opts, size_t nopts,
                   const char **pos, size_t max_pos, size_t *npos, bool *help)
{
    *npos = 0;
    *help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*npos >= max_pos) {
                ctl_error("%s: unexpected argument '%s' (see: tollgatectl %s --help)", cmd, a, cmd);
                return -1;
            }
            pos[(*npos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        ctl_opt_t *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, name, nlen) == 0)
                o = &opts[k];
        if (!o) {
            ctl_error("%s: unknown option '--%.*s' (see: tollgatectl %s --help)", cmd, (int)nlen,
                      name, cmd);
            return -1;
        }
        if (o->takes_value) {
            if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                ctl_error("%s: option --%s needs a value", cmd, o->name);
                return -1;
            }
        } else if (eq) {
            ctl_error("%s: option --%s takes no value", cmd, o->name);
            return -1;
        }
        o->present = true;
    }
    return 0;
}

static void ctl_notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *ctl_connect(const ctl_ctx_t *ctx)
{
    char err[768];
    PGconn *conn = gw_pg_connect(ctx->conninfo, 10, err, sizeof err);
    if (!conn) {
        size_t n = strlen(err);
        bool stop = n > 0 && (err[n - 1] == '.' || err[n - 1] == '?');
        ctl_error("%s%s Is PostgreSQL running there? Set TG_PG_CONNINFO or pass --db CONNINFO "
                  "(a libpq conninfo such as 'host=127.0.0.1 port=5432 dbname=tollgate "
                  "user=tollgate').",
                  err, stop ? "" : ".");
        return NULL;
    }
    PQsetNoticeProcessor(conn, ctl_notice_ignore, NULL);
    return conn;
}

void ctl_pg_error(PGconn *conn, const PGresult *res, const char *what)
{
    char msg[768];
    gw_pg_message(conn, res, msg, sizeof msg);
    ctl_error("%s: %s", what, msg);
}

/* The checks are gw_key_admin's, shared with the admin HTTP API. */
int ctl_team_name_check(const char *name, char *err, size_t errlen)
{
    return gw_key_team_name_check(name, err, errlen);
}

int ctl_models_check(const char *list, char *err, size_t errlen)
{
    return gw_key_models_check("--models", list, err, errlen);
}

int ctl_label_check(const char *label, char *err, size_t errlen)
{
    return gw_key_label_check("--name", label, err, errlen);
}

/* One RFC 3339 parser for the CLI and the admin API (gw_price_admin). */
int ctl_time_parse(const char *text, int64_t *out_us, char *err, size_t errlen)
{
    return gw_price_instant_parse(NULL, text, out_us, err, errlen);
}
