/* ctl_util: option parsing, connecting, error printing and the validation of
 * names, model lists and dates that tollgatectl's subcommands share. */
#include "ctl.h"

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

int ctl_team_name_check(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    bool ok = n >= 1 && n <= 64 && isalnum((unsigned char)name[0]);
    for (size_t i = 1; ok && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = isalnum(c) || c == '_' || c == '.' || c == '-';
    }
    if (!ok) {
        snprintf(err, errlen,
                 "invalid team name '%s': use 1 to 64 characters, letters, digits, '_', '.' or "
                 "'-', starting with a letter or digit",
                 name);
        return -1;
    }
    return 0;
}

int ctl_models_check(const char *list, char *err, size_t errlen)
{
    size_t total = strlen(list);
    if (total == 0 || total > 1023) {
        snprintf(err, errlen,
                 "invalid --models: give 1 to 1023 characters of comma-separated "
                 "model names (leave --models out to allow every model)");
        return -1;
    }
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len > 127) {
            snprintf(err, errlen,
                     "invalid --models '%s': each model name must have 1 to 127 "
                     "characters (no empty entries)",
                     list);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!(isalnum(c) || strchr("._:/@+-", c))) {
                snprintf(err, errlen,
                         "invalid --models '%s': model names may hold letters, digits and "
                         "._:/@+- only",
                         list);
                return -1;
            }
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

int ctl_label_check(const char *label, char *err, size_t errlen)
{
    size_t n = strlen(label);
    bool ok = n >= 1 && n <= 200;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)label[i] >= 0x20 && label[i] != 0x7f;
    if (!ok) {
        snprintf(err, errlen, "invalid --name: give 1 to 200 characters, no control characters");
        return -1;
    }
    return 0;
}

/* One RFC 3339 parser for the CLI and the admin API (gw_price_admin). */
int ctl_time_parse(const char *text, int64_t *out_us, char *err, size_t errlen)
{
    return gw_price_instant_parse(NULL, text, out_us, err, errlen);
}
