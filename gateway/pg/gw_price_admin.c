/* gw_price_admin: price administration shared by tollgatectl and the admin
 * HTTP API: value parsers, the validated and audited write transaction, card
 * and window writes, and the worst-case quote. See gw_price_admin.h. */
#include "gw_price_admin.h"

#include "gw_pgconn.h"
#include "gw_price_load.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- values ---------------------------------------------------------------- */

/* Reads exactly n digits at *p into *out and advances *p. */
static bool pa_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int pa_days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int gw_price_instant_parse(const char *opt, const char *text, int64_t *out_us, char *err,
                           size_t errlen)
{
    const char *p = text;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, oh = 0, om = 0, sign = 0;
    int64_t frac_us = 0;
    bool ok = pa_digits(&p, 4, &y) && *p++ == '-' && pa_digits(&p, 2, &mo) && *p++ == '-' &&
              pa_digits(&p, 2, &d);
    if (ok && *p != '\0') {
        ok = (*p == 'T' || *p == 't' || *p == ' ') && (p++, true) && pa_digits(&p, 2, &h) &&
             *p++ == ':' && pa_digits(&p, 2, &mi) && *p++ == ':' && pa_digits(&p, 2, &s);
        if (ok && *p == '.') {
            p++;
            int ndig = 0;
            while (isdigit((unsigned char)*p)) {
                if (ndig < 6)
                    frac_us = frac_us * 10 + (*p - '0');
                ndig++;
                p++;
            }
            ok = ndig > 0;
            for (; ndig < 6; ndig++)
                frac_us *= 10;
        }
        if (ok && (*p == 'Z' || *p == 'z')) {
            p++;
        } else if (ok && (*p == '+' || *p == '-')) {
            sign = *p++ == '+' ? 1 : -1;
            ok = pa_digits(&p, 2, &oh) && *p++ == ':' && pa_digits(&p, 2, &om) && oh <= 23 &&
                 om <= 59;
        } else {
            ok = false; /* RFC 3339 requires the offset */
        }
        ok = ok && *p == '\0';
    }
    ok = ok && y >= 1970 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 &&
         d <= pa_days_in_month(y, mo) && h <= 23 && mi <= 59 && s <= 59;
    if (!ok) {
        snprintf(err, errlen,
                 "%s%sinvalid date '%s': use YYYY-MM-DD (midnight UTC starting that day) or RFC "
                 "3339 such as 2027-01-31T18:00:00Z or 2027-01-31T18:00:00+01:00",
                 opt ? opt : "", opt ? ": " : "", text);
        return -1;
    }
    int64_t secs = pr_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
                   sign * (oh * 3600 + om * 60);
    *out_us = secs * 1000000 + frac_us;
    return 0;
}

int gw_price_int_parse(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
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

int gw_price_clock_parse(const char *opt, const char *text, bool allow_24, int32_t *out, char *err,
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

int gw_price_weekdays_parse(const char *opt, const char *text, uint8_t *out, char *err,
                            size_t errlen)
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
                     "invalid %s '%s': give days as mon,tue,wed,thu,fri,sat,sun separated by "
                     "commas (or weekdays, weekends, all)",
                     opt, text);
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

int gw_price_percent_parse(const char *opt, const char *text, int32_t *out_bp, char *err,
                           size_t errlen)
{
    const char *p = text;
    int64_t whole = 0, frac = 0;
    int nint = 0, nfrac = 0;
    while (isdigit((unsigned char)*p) && nint < 4)
        whole = whole * 10 + (*p++ - '0'), nint++;
    bool dot = *p == '.';
    if (dot) {
        p++;
        while (isdigit((unsigned char)*p) && nfrac < 3)
            frac = frac * 10 + (*p++ - '0'), nfrac++;
    }
    if (nfrac == 1)
        frac *= 10;
    int64_t bp = whole * 100 + frac;
    if (nint == 0 || *p != '\0' || nfrac > 2 || (dot && nfrac == 0) || bp > 10000) {
        snprintf(err, errlen,
                 "invalid %s '%s': give a percentage from 0 to 100 with at most two decimals "
                 "(e.g. 50 or 12.5)",
                 opt, text);
        return -1;
    }
    *out_bp = (int32_t)bp;
    return 0;
}

int gw_price_money_parse(const char *opt, const char *text, int64_t *out, char *err, size_t errlen)
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

/* ---- the write transaction ------------------------------------------------- */

int gw_price_admin_refusal(PGconn *conn, const PGresult *res, const char *what, char *err,
                           size_t errlen)
{
    char msg[768];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary)
        snprintf(msg, sizeof msg, "%s", primary);
    else
        gw_pg_message(conn, res, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *todo;
    int status = GW_PA_INVALID;
    if (!state) {
        todo = "The connection to PostgreSQL failed; try again.";
        status = GW_PA_UNAVAILABLE;
    } else if (strcmp(state, "23505") == 0) {
        todo = "That already exists (for a price card: the same provider, model and from "
               "instant); see the price history or choose another instant.";
        status = GW_PA_CONFLICT;
    } else if (strcmp(state, "23503") == 0) {
        todo = "It refers to something that does not exist: check the id with 'tollgatectl "
               "price list', 'tollgatectl window list' or 'tollgatectl calendar list'.";
        status = GW_PA_NOT_FOUND;
    } else if (strcmp(state, "23514") == 0 &&
               (strstr(msg, "re-price") || strstr(msg, "priced usage"))) {
        todo = "Charged history is never edited in place: add a new card that takes over from "
               "a later instant, or end a window at an instant not in the past.";
        status = GW_PA_CONFLICT;
    } else if (strcmp(state, "23514") == 0 && strstr(msg, "time zone")) {
        todo = "Use an IANA zone name from the tz database, such as UTC, Asia/Shanghai or "
               "America/New_York.";
    } else if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0) {
        todo = "A value is out of range or inconsistent; see docs/prices-admin.md.";
    } else if (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0) {
        todo = "The price tables are missing: run 'tollgatectl migrate' first.";
        status = GW_PA_UNAVAILABLE;
    } else {
        todo = "See the message above.";
        status = GW_PA_UNAVAILABLE;
    }
    snprintf(err, errlen, "%s refused by PostgreSQL: %s. %s Nothing was saved.", what, msg, todo);
    return status;
}

/* Runs a statement with text parameters; the result must have status `want`.
 * Returns the result (caller PQclear), or NULL with the refusal in err and
 * its status in *status. */
static PGresult *pa_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                         const char *const *params, ExecStatusType want, int *status, char *err,
                         size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        *status = gw_price_admin_refusal(conn, res, what, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

void gw_price_admin_rollback(PGconn *conn)
{
    PQclear(PQexec(conn, "ROLLBACK"));
}

int gw_price_admin_begin(PGconn *conn, const char *actor, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "BEGIN");
    int status = GW_PA_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        status = gw_price_admin_refusal(conn, res, "starting a transaction", err, errlen);
    PQclear(res);
    if (status != GW_PA_OK)
        return status;
    const char *params[] = {actor};
    res = pa_exec(conn, "setting the actor", "SELECT set_config('tollgate.actor', $1, true)", 1,
                  params, PGRES_TUPLES_OK, &status, err, errlen);
    if (!res) {
        gw_price_admin_rollback(conn);
        return status;
    }
    PQclear(res);
    return GW_PA_OK;
}

int gw_price_admin_commit_checked(PGconn *conn, const char *what, char *err, size_t errlen)
{
    char msg[1024];
    pr_book_t *book = gw_price_load_book(conn, NULL, msg, sizeof msg);
    if (!book) {
        gw_price_admin_rollback(conn);
        snprintf(err, errlen,
                 "%s refused: with this change the price book would be invalid: %s. Nothing was "
                 "saved.",
                 what, msg);
        return GW_PA_CONFLICT;
    }
    pr_book_free(book);
    PGresult *res = PQexec(conn, "COMMIT");
    int status = GW_PA_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        status = gw_price_admin_refusal(conn, res, what, err, errlen);
    PQclear(res);
    return status;
}

pr_book_t *gw_price_admin_book_load(PGconn *conn, int *status, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *status = gw_price_admin_refusal(conn, res, "reading prices", err, errlen);
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    char msg[1024];
    pr_book_t *book = gw_price_load_book(conn, NULL, msg, sizeof msg);
    gw_price_admin_rollback(conn);
    if (!book) {
        *status = GW_PA_UNAVAILABLE;
        snprintf(err, errlen, "cannot build the price book from the database: %s", msg);
    }
    return book;
}

/* ---- cards and windows ----------------------------------------------------- */

/* Checks a provider or model name against the tables' limits. */
static int pa_name_check(const char *what, const char *v, size_t max, char *err, size_t errlen)
{
    size_t n = v ? strlen(v) : 0;
    bool ok = n > 0 && n < max;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)v[i] > 0x20 && v[i] != 0x7f;
    if (!ok) {
        snprintf(err, errlen, "invalid %s '%s': give 1 to %zu printable characters without spaces",
                 what, v ? v : "", max - 1);
        return -1;
    }
    return 0;
}

/* Checks explicit prices (reasoning -1 allowed). */
static int pa_prices_check(const pr_prices_t *p, char *err, size_t errlen)
{
    if (pr_price_check(p->cache_hit, "cache-hit price", err, errlen) != 0 ||
        pr_price_check(p->cache_miss, "cache-miss price", err, errlen) != 0 ||
        pr_price_check(p->output, "output price", err, errlen) != 0 ||
        (p->reasoning != -1 && pr_price_check(p->reasoning, "reasoning price", err, errlen) != 0))
        return -1;
    return 0;
}

static void pa_i64(char buf[24], int64_t v)
{
    snprintf(buf, 24, "%lld", (long long)v);
}

int gw_price_admin_card_add(PGconn *conn, const char *actor, const gw_price_card_new_t *c,
                            int64_t *id_out, char *err, size_t errlen)
{
    char msg[256];
    if (pa_name_check("provider", c->provider, PR_PROVIDER_MAX, err, errlen) != 0 ||
        pa_name_check("model", c->model, PR_MODEL_MAX, err, errlen) != 0)
        return GW_PA_INVALID;
    if (!c->currency || !pr_currency_find(c->currency, msg, sizeof msg)) {
        snprintf(err, errlen, "price add: %s", c->currency ? msg : "currency is required");
        return GW_PA_INVALID;
    }
    if (pa_prices_check(&c->prices, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "price add: %s", msg);
        return GW_PA_INVALID;
    }
    char hit[24], miss[24], out[24], reas[24], from[40];
    pa_i64(hit, c->prices.cache_hit);
    pa_i64(miss, c->prices.cache_miss);
    pa_i64(out, c->prices.output);
    pa_i64(reas, c->prices.reasoning);
    pr_instant_format(c->from_us, from, sizeof from);
    const char *params[] = {c->provider, c->model, c->currency,
                            hit,         miss,     out,
                            c->prices.reasoning < 0 ? NULL : reas,
                            from,        c->note,  actor};
    int status = gw_price_admin_begin(conn, actor, err, errlen);
    if (status != GW_PA_OK)
        return status;
    PGresult *res =
        pa_exec(conn, "price add",
                "INSERT INTO price_cards (provider, model, currency, cache_hit_price,"
                " cache_miss_price, output_price, reasoning_price, effective_from, note,"
                " created_by) VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::bigint,"
                " $7::bigint, $8::timestamptz, $9, $10) RETURNING id",
                10, params, PGRES_TUPLES_OK, &status, err, errlen);
    if (!res) {
        gw_price_admin_rollback(conn);
        return status;
    }
    *id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return gw_price_admin_commit_checked(conn, "price add", err, errlen);
}

/* Checks a window's fields for its kind. 0, or -1 with a message. */
static int pa_window_check(const gw_price_window_new_t *w, char *err, size_t errlen)
{
    if (w->card_id <= 0) {
        snprintf(err, errlen, "window add: give the card's id (a positive number)");
        return -1;
    }
    if (w->has_from && w->has_until && w->until_us <= w->from_us) {
        char a[40], b[40];
        snprintf(err, errlen, "window add: until (%s) must be after from (%s)",
                 pr_instant_format(w->until_us, a, sizeof a),
                 pr_instant_format(w->from_us, b, sizeof b));
        return -1;
    }
    switch (w->kind) {
    case PR_WIN_ONCE:
        if (!w->has_from || !w->has_until) {
            snprintf(err, errlen, "window add: a once window needs from and until");
            return -1;
        }
        if (w->zone || w->calendar_id) {
            snprintf(err, errlen, "window add: a once window takes no zone, hours or calendar");
            return -1;
        }
        break;
    case PR_WIN_DAILY: {
        if (!w->zone) {
            snprintf(err, errlen, "window add: a daily window needs zone, start and end");
            return -1;
        }
        pr_tz_t *tz = NULL;
        char msg[384];
        if (strlen(w->zone) >= 128 || pr_tz_load(w->zone, NULL, &tz, msg, sizeof msg) != 0) {
            snprintf(err, errlen,
                     "window add: unknown time zone '%s': give an IANA zone from the tz database "
                     "such as UTC, Asia/Shanghai or America/New_York",
                     w->zone);
            return -1;
        }
        pr_tz_free(tz);
        if (w->start_sec < 0 || w->start_sec >= 86400 || w->end_sec <= 0 || w->end_sec > 86400 ||
            w->start_sec == w->end_sec) {
            snprintf(err, errlen, "window add: start and end must differ and lie within the day "
                                  "(a whole day is start 00:00, end 24:00)");
            return -1;
        }
        break;
    }
    case PR_WIN_HOLIDAY:
        if (w->calendar_id <= 0 || w->zone) {
            snprintf(err, errlen, "window add: a holiday window needs a calendar id and takes its "
                                  "zone from the calendar");
            return -1;
        }
        break;
    default:
        snprintf(err, errlen, "window add: unknown kind");
        return -1;
    }
    char msg[256];
    if (w->use_percent) {
        if (w->percent_off_bp < 0 || w->percent_off_bp > 10000) {
            snprintf(err, errlen, "window add: percent off must be from 0 to 100");
            return -1;
        }
    } else if (pa_prices_check(&w->prices, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "window add: %s", msg);
        return -1;
    }
    return 0;
}

int gw_price_admin_window_add(PGconn *conn, const char *actor, const gw_price_window_new_t *w,
                              int64_t *id_out, pr_prices_t *saved, char *err, size_t errlen)
{
    if (pa_window_check(w, err, errlen) != 0)
        return GW_PA_INVALID;
    static const char *kinds[] = {"once", "daily", "holiday"};
    char card[24], prec[24], from[40], until[40], start[24], end[24], wd[24], cal[24], pct[24],
        hit[24], miss[24], out[24], reas[24];
    pa_i64(card, w->card_id);
    pa_i64(prec, w->precedence);
    pr_instant_format(w->from_us, from, sizeof from);
    pr_instant_format(w->until_us, until, sizeof until);
    pa_i64(start, w->start_sec);
    pa_i64(end, w->end_sec);
    pa_i64(wd, w->weekdays ? w->weekdays : PR_WEEKDAYS_ALL);
    pa_i64(cal, w->calendar_id);
    pa_i64(pct, w->percent_off_bp);
    pa_i64(hit, w->prices.cache_hit);
    pa_i64(miss, w->prices.cache_miss);
    pa_i64(out, w->prices.output);
    pa_i64(reas, w->prices.reasoning);
    bool daily = w->kind == PR_WIN_DAILY, ex = !w->use_percent;
    const char *params[] = {card,
                            kinds[w->kind],
                            prec,
                            w->has_from ? from : NULL,
                            w->has_until ? until : NULL,
                            daily ? w->zone : NULL,
                            daily ? start : NULL,
                            daily ? end : NULL,
                            wd,
                            w->calendar_id > 0 ? cal : NULL,
                            w->use_percent ? pct : NULL,
                            ex ? hit : NULL,
                            ex ? miss : NULL,
                            ex ? out : NULL,
                            ex && w->prices.reasoning >= 0 ? reas : NULL,
                            w->note,
                            actor};
    int status = gw_price_admin_begin(conn, actor, err, errlen);
    if (status != GW_PA_OK)
        return status;
    PGresult *res = pa_exec(
        conn, "window add",
        "INSERT INTO discount_windows (card_id, kind, precedence, valid_from, valid_until, zone,"
        " start_second, end_second, weekdays, calendar_id, percent_off_bp, cache_hit_price,"
        " cache_miss_price, output_price, reasoning_price, note, created_by)"
        " SELECT c.id, $2, $3::integer, COALESCE($4::timestamptz, c.effective_from),"
        " $5::timestamptz, $6, $7::integer, $8::integer, $9::smallint, $10::bigint, $11::integer,"
        " $12::bigint, $13::bigint, $14::bigint, $15::bigint, $16, $17"
        " FROM price_cards c WHERE c.id = $1::bigint"
        " RETURNING id, cache_hit_price, cache_miss_price, output_price,"
        " COALESCE(reasoning_price, output_price)",
        17, params, PGRES_TUPLES_OK, &status, err, errlen);
    if (!res) {
        gw_price_admin_rollback(conn);
        return status;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        gw_price_admin_rollback(conn);
        snprintf(err, errlen,
                 "window add: no price card with id %s (see: tollgatectl price list or price "
                 "history). Nothing was saved.",
                 card);
        return GW_PA_NOT_FOUND;
    }
    *id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    saved->cache_hit = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    saved->cache_miss = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    saved->output = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    saved->reasoning = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    PQclear(res);
    return gw_price_admin_commit_checked(conn, "window add", err, errlen);
}

int gw_price_admin_window_end(PGconn *conn, const char *actor, int64_t id, int64_t at_us, char *err,
                              size_t errlen)
{
    char idtxt[24], at[40];
    pa_i64(idtxt, id);
    pr_instant_format(at_us, at, sizeof at);
    const char *params[] = {idtxt, at};
    int status = gw_price_admin_begin(conn, actor, err, errlen);
    if (status != GW_PA_OK)
        return status;
    PGresult *res = pa_exec(conn, "window end",
                            "SELECT to_char(valid_from AT TIME ZONE 'UTC',"
                            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), valid_from < $2::timestamptz"
                            " FROM discount_windows WHERE id = $1::bigint FOR UPDATE",
                            2, params, PGRES_TUPLES_OK, &status, err, errlen);
    if (!res) {
        gw_price_admin_rollback(conn);
        return status;
    }
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 1)[0] != 't') {
        gw_price_admin_rollback(conn);
        if (PQntuples(res) != 1) {
            snprintf(err, errlen, "window end: no window with id %s (see: tollgatectl window list)",
                     idtxt);
            status = GW_PA_NOT_FOUND;
        } else {
            snprintf(err, errlen,
                     "window end: the end %s is not after the window's start %s; nothing was "
                     "saved",
                     at, PQgetvalue(res, 0, 0));
            status = GW_PA_INVALID;
        }
        PQclear(res);
        return status;
    }
    PQclear(res);
    res = pa_exec(conn, "window end",
                  "UPDATE discount_windows SET valid_until = $2::timestamptz WHERE id = $1::bigint",
                  2, params, PGRES_COMMAND_OK, &status, err, errlen);
    if (!res) {
        gw_price_admin_rollback(conn);
        return status;
    }
    PQclear(res);
    return gw_price_admin_commit_checked(conn, "window end", err, errlen);
}

/* ---- quote ----------------------------------------------------------------- */

/* Exact worst-case cost at `p`: prompt at the miss price, max tokens at the
 * dearer of output and reasoning. 0, or -1 with err. */
static int pa_worst(const pr_prices_t *p, int64_t prompt, int64_t max_tokens, pr_pico_t *in,
                    pr_pico_t *outc, pr_pico_t *total, char *err, size_t errlen)
{
    int64_t out_price = p->reasoning > p->output ? p->reasoning : p->output;
    if (pr_cost(prompt, p->cache_miss, in, err, errlen) != 0 ||
        pr_cost(max_tokens, out_price, outc, err, errlen) != 0)
        return -1;
    return pr_pico_add(*in, *outc, total, err, errlen);
}

int gw_price_admin_quote(const pr_book_t *book, const char *provider, const char *model,
                         int64_t at_us, int64_t prompt, int64_t max_tokens, gw_price_quote_t *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    pr_pico_t w_in, w_out, w_total;
    if (pr_book_find(book, provider, model, at_us, &out->card, &out->window, err, errlen) != 0 ||
        pa_worst(&out->card->prices, prompt, max_tokens, &out->prompt_cost, &out->completion_cost,
                 &out->total, err, errlen) != 0 ||
        (out->window && pa_worst(&out->window->prices, prompt, max_tokens, &w_in, &w_out,
                                 &w_total, err, errlen) != 0))
        return -1;
    out->use_window = out->window && w_total > out->total;
    if (out->use_window) {
        out->prompt_cost = w_in;
        out->completion_cost = w_out;
        out->total = w_total;
    }
    return 0;
}
