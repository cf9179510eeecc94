/* ctl_price_util: value parsers, amount printing and the validated write path
 * (BEGIN, actor, statements, rebuild the book from the uncommitted rows,
 * COMMIT or ROLLBACK) for tollgatectl's price administration groups: thin
 * wrappers that print what gw_price_admin (shared with the admin API) says. */
#include "ctl_price.h"

#include "gw_pgconn.h"
#include "gw_price_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_price_money_parse(const char *opt, const char *text, int64_t *out, char *err, size_t errlen)
{
    return gw_price_money_parse(opt, text, out, err, errlen);
}

int ctl_price_instant_parse(const char *opt, const char *text, int64_t *out, char *err,
                            size_t errlen)
{
    char msg[384];
    if (ctl_time_parse(text, out, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s: %s", opt, msg);
        return -1;
    }
    return 0;
}

int ctl_price_int_parse(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                        char *err, size_t errlen)
{
    return gw_price_int_parse(opt, text, min, max, out, err, errlen);
}

int ctl_price_id_parse(const char *opt, const char *text, int64_t *out, char *err, size_t errlen)
{
    return ctl_price_int_parse(opt, text, 1, INT64_MAX / 10, out, err, errlen);
}

int ctl_price_tokens_parse(const char *opt, const char *text, int64_t *out, char *err,
                           size_t errlen)
{
    return ctl_price_int_parse(opt, text, 0, PR_TOKENS_MAX, out, err, errlen);
}

int ctl_price_clock_parse(const char *opt, const char *text, bool allow_24, int32_t *out, char *err,
                          size_t errlen)
{
    return gw_price_clock_parse(opt, text, allow_24, out, err, errlen);
}

int ctl_price_weekdays_parse(const char *text, uint8_t *out, char *err, size_t errlen)
{
    return gw_price_weekdays_parse("--weekdays", text, out, err, errlen);
}

int ctl_price_percent_parse(const char *text, int32_t *out_bp, char *err, size_t errlen)
{
    return gw_price_percent_parse("--percent-off", text, out_bp, err, errlen);
}

const char *ctl_price_micro_format(int64_t micro, char buf[64])
{
    pr_pico_format((pr_pico_t)micro * 1000000, 0, buf, 64);
    return buf;
}

const char *ctl_price_instant_format(int64_t us, char buf[40])
{
    if (us == PR_FOREVER)
        return strcpy(buf, "-");
    return pr_instant_format(us, buf, 40);
}

void ctl_price_refused(PGconn *conn, const PGresult *res, const char *what)
{
    char msg[1536];
    gw_price_admin_refusal(conn, res, what, msg, sizeof msg);
    ctl_error("%s", msg);
}

PGresult *ctl_price_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                         const char *const *params, ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        ctl_price_refused(conn, res, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

void ctl_price_rollback(PGconn *conn)
{
    gw_price_admin_rollback(conn);
}

int ctl_price_begin(PGconn *conn, const ctl_ctx_t *ctx)
{
    char msg[1536];
    if (gw_price_admin_begin(conn, ctx->actor, msg, sizeof msg) != 0) {
        ctl_error("%s", msg);
        return -1;
    }
    return 0;
}

int ctl_price_commit_checked(PGconn *conn, const char *what)
{
    char msg[1536];
    if (gw_price_admin_commit_checked(conn, what, msg, sizeof msg) != 0) {
        ctl_error("%s", msg);
        return -1;
    }
    return 0;
}

pr_book_t *ctl_price_book_load(PGconn *conn)
{
    char msg[1536];
    int status;
    pr_book_t *book = gw_price_admin_book_load(conn, &status, msg, sizeof msg);
    if (!book)
        ctl_error("%s", msg);
    return book;
}

bool ctl_price_help(bool help, const char *usage)
{
    if (help)
        fputs(usage, stdout);
    return help;
}

pr_book_t *ctl_price_book_fetch(const ctl_ctx_t *ctx)
{
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return NULL;
    pr_book_t *book = ctl_price_book_load(conn);
    PQfinish(conn);
    return book;
}

bool ctl_price_required(const char *cmd, const ctl_opt_t *o, int n, unsigned optional)
{
    for (int i = 0; i < n; i++)
        if (!(optional & (1u << i)) && !o[i].present) {
            ctl_error("%s: --%s is required (see: tollgatectl %s --help)", cmd, o[i].name, cmd);
            return false;
        }
    return true;
}
