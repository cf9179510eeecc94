/* ctl_price_util: value parsers, amount printing and the validated write path
 * (BEGIN, actor, statements, rebuild the book from the uncommitted rows,
 * COMMIT or ROLLBACK) shared by tollgatectl's price administration groups. */
#include "ctl_price.h"

#include "gw_pgconn.h"
#include "gw_price_load.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_price_money_parse(const char *opt, const char *text, int64_t *out, char *err, size_t errlen)
{
    char msg[256];
    if (pr_micro_parse(text, out, msg, sizeof msg) != 0) {
        snprintf(err, errlen,
                 "invalid %s '%s': %s (give currency units per 1M tokens, e.g. 0.27, at most "
                 "six decimals, not negative, at most 1000000)",
                 opt, text, msg);
        return -1;
    }
    return 0;
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
    const char *p = text;
    bool neg = *p == '-';
    if (neg)
        p++;
    int64_t v = 0;
    bool ok = *p != '\0' && strlen(p) <= 18;
    for (; ok && *p; p++) {
        ok = isdigit((unsigned char)*p);
        v = v * 10 + (*p - '0');
    }
    if (neg)
        v = -v;
    if (!ok || v < min || v > max) {
        snprintf(err, errlen, "invalid %s '%s': give a whole number from %lld to %lld", opt, text,
                 (long long)min, (long long)max);
        return -1;
    }
    *out = v;
    return 0;
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
    int h = -1, m = -1, s = 0;
    size_t n = strlen(text);
    bool ok = (n == 5 || n == 8) && isdigit((unsigned char)text[0]) &&
              isdigit((unsigned char)text[1]) && text[2] == ':' &&
              isdigit((unsigned char)text[3]) && isdigit((unsigned char)text[4]);
    if (ok) {
        h = (text[0] - '0') * 10 + (text[1] - '0');
        m = (text[3] - '0') * 10 + (text[4] - '0');
    }
    if (ok && n == 8) {
        ok = text[5] == ':' && isdigit((unsigned char)text[6]) && isdigit((unsigned char)text[7]);
        s = (text[6] - '0') * 10 + (text[7] - '0');
    }
    ok = ok && m <= 59 && s <= 59 && (h <= 23 || (allow_24 && h == 24 && m == 0 && s == 0));
    if (!ok) {
        snprintf(err, errlen, "invalid %s '%s': give a local time of day as HH:MM or HH:MM:SS%s",
                 opt, text, allow_24 ? " (24:00 = end of the day)" : " (00:00 to 23:59:59)");
        return -1;
    }
    *out = h * 3600 + m * 60 + s;
    return 0;
}

int ctl_price_weekdays_parse(const char *text, uint8_t *out, char *err, size_t errlen)
{
    static const char *names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    if (strcmp(text, "all") == 0) {
        *out = PR_WEEKDAYS_ALL;
        return 0;
    }
    if (strcmp(text, "weekdays") == 0) {
        *out = 0x1f;
        return 0;
    }
    if (strcmp(text, "weekends") == 0) {
        *out = 0x60;
        return 0;
    }
    uint8_t mask = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int day = -1;
        for (int i = 0; i < 7; i++)
            if (len == 3 && strncasecmp(p, names[i], 3) == 0)
                day = i;
        if (day < 0) {
            snprintf(err, errlen,
                     "invalid --weekdays '%s': give days as mon,tue,wed,thu,fri,sat,sun "
                     "separated by commas (or weekdays, weekends, all)",
                     text);
            return -1;
        }
        mask |= (uint8_t)(1u << day);
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = mask;
    return 0;
}

int ctl_price_percent_parse(const char *text, int32_t *out_bp, char *err, size_t errlen)
{
    const char *p = text;
    int64_t whole = 0, frac = 0;
    int nint = 0, nfrac = 0;
    while (isdigit((unsigned char)*p) && nint < 4)
        whole = whole * 10 + (*p++ - '0'), nint++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p) && nfrac < 3)
            frac = frac * 10 + (*p++ - '0'), nfrac++;
    }
    if (nfrac == 1)
        frac *= 10;
    int64_t bp = whole * 100 + frac;
    if (nint == 0 || *p != '\0' || nfrac > 2 || (text[nint] == '.' && nfrac == 0) || bp > 10000) {
        snprintf(err, errlen,
                 "invalid --percent-off '%s': give a percentage from 0 to 100 with at most two "
                 "decimals (e.g. 50 or 12.5)",
                 text);
        return -1;
    }
    *out_bp = (int32_t)bp;
    return 0;
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
    char msg[768];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary)
        snprintf(msg, sizeof msg, "%s", primary);
    else
        gw_pg_message(conn, res, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *todo;
    if (!state)
        todo = "The connection to PostgreSQL failed; try again.";
    else if (strcmp(state, "23505") == 0)
        todo = "That already exists (for a price card: the same provider, model and --from); "
               "see 'tollgatectl price history' or choose another instant.";
    else if (strcmp(state, "23503") == 0)
        todo = "It refers to something that does not exist: check the id with 'tollgatectl "
               "price list', 'tollgatectl window list' or 'tollgatectl calendar list'.";
    else if (strcmp(state, "23514") == 0 &&
             (strstr(msg, "re-price") || strstr(msg, "priced usage")))
        todo = "Charged history is never edited in place: add a new card that takes over from "
               "a later instant (tollgatectl price add ... --from LATER), or end a window at an "
               "instant not in the past.";
    else if (strcmp(state, "23514") == 0 && strstr(msg, "time zone"))
        todo = "Use an IANA zone name from the tz database, such as UTC, Asia/Shanghai or "
               "America/New_York.";
    else if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
        todo = "A value is out of range or inconsistent; see the command's --help.";
    else if (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0)
        todo = "The price tables are missing: run 'tollgatectl migrate' first.";
    else
        todo = "See the message above.";
    ctl_error("%s refused by PostgreSQL: %s. %s Nothing was saved.", what, msg, todo);
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
    PQclear(PQexec(conn, "ROLLBACK"));
}

int ctl_price_begin(PGconn *conn, const ctl_ctx_t *ctx)
{
    PGresult *res = PQexec(conn, "BEGIN");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        ctl_price_refused(conn, res, "starting a transaction");
    PQclear(res);
    if (!ok)
        return -1;
    const char *params[] = {ctx->actor};
    res = ctl_price_exec(conn, "setting the actor", "SELECT set_config('tollgate.actor', $1, true)",
                         1, params, PGRES_TUPLES_OK);
    if (!res) {
        ctl_price_rollback(conn);
        return -1;
    }
    PQclear(res);
    return 0;
}

int ctl_price_commit_checked(PGconn *conn, const char *what)
{
    char err[1024];
    pr_book_t *book = gw_price_load_book(conn, NULL, err, sizeof err);
    if (!book) {
        ctl_price_rollback(conn);
        ctl_error("%s refused: with this change the price book would be invalid: %s. Nothing "
                  "was saved.",
                  what, err);
        return -1;
    }
    pr_book_free(book);
    PGresult *res = PQexec(conn, "COMMIT");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        ctl_price_refused(conn, res, what);
    PQclear(res);
    return ok ? 0 : -1;
}

pr_book_t *ctl_price_book_load(PGconn *conn)
{
    PGresult *res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ctl_price_refused(conn, res, "reading prices");
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    char err[1024];
    pr_book_t *book = gw_price_load_book(conn, NULL, err, sizeof err);
    ctl_price_rollback(conn);
    if (!book)
        ctl_error("cannot build the price book from the database: %s", err);
    return book;
}

bool ctl_price_help(bool help, const char *usage)
{
    if (help)
        fputs(usage, stdout);
    return help;
}
