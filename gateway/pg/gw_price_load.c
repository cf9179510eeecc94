/* gw_price_load: the price tables' rows -> a finalized pr_book_t. One query
 * per table; every row goes through the library's add_* checks, then
 * pr_book_load_zones and pr_book_finalize validate the whole. */
#include "gw_price_load.h"

#include "gw_pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_EPOCH_US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

static const char gw_price_cards_sql[] =
    "SELECT id, provider, model, currency, cache_hit_price, cache_miss_price, output_price,"
    " reasoning_price, " GW_EPOCH_US("effective_from") " FROM price_cards ORDER BY id";

static const char gw_price_windows_sql[] =
    "SELECT id, card_id, kind, precedence, " GW_EPOCH_US("valid_from") ", " GW_EPOCH_US(
        "valid_until") ", zone, start_second, end_second, weekdays, calendar_id,"
                       " cache_hit_price, cache_miss_price, output_price, reasoning_price"
                       " FROM discount_windows ORDER BY id";

static const char gw_price_calendars_sql[] = "SELECT id, zone FROM holiday_calendars ORDER BY id";

static const char gw_price_dates_sql[] =
    "SELECT calendar_id, to_char(day, 'YYYY-MM-DD') FROM holiday_dates ORDER BY calendar_id, day";

static const char gw_price_providers_sql[] =
    "SELECT provider, tier_instant FROM price_providers ORDER BY provider";

static int64_t gw_i64(const PGresult *r, int row, int col, int64_t if_null)
{
    return PQgetisnull(r, row, col) ? if_null : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Runs a query expected to return rows. NULL with err set on failure. */
static PGresult *gw_price_query(PGconn *conn, const char *sql, const char *table, char *err,
                                size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        gw_pg_message(conn, r, msg, sizeof msg);
        snprintf(err, errlen, "reading %s: %s", table, msg);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Prefixes the library's message with the row it is about. */
static void gw_price_row_error(char *err, size_t errlen, const char *what, const char *id,
                               const char *msg)
{
    char copy[512];
    snprintf(copy, sizeof copy, "%s", msg);
    snprintf(err, errlen, "%s %s: %s", what, id, copy);
}

static int gw_price_load_cards(PGconn *conn, pr_book_t *b, char *err, size_t errlen)
{
    PGresult *r = gw_price_query(conn, gw_price_cards_sql, "price_cards", err, errlen);
    if (!r)
        return -1;
    char msg[512];
    for (int i = 0; i < PQntuples(r); i++) {
        pr_card_def_t d = {
            .id = gw_i64(r, i, 0, 0),
            .provider = PQgetvalue(r, i, 1),
            .model = PQgetvalue(r, i, 2),
            .currency = PQgetvalue(r, i, 3),
            .prices = {gw_i64(r, i, 4, 0), gw_i64(r, i, 5, 0), gw_i64(r, i, 6, 0),
                       gw_i64(r, i, 7, -1)},
            .effective_from_us = gw_i64(r, i, 8, 0),
        };
        if (pr_book_add_card(b, &d, msg, sizeof msg) != 0) {
            gw_price_row_error(err, errlen, "price card", PQgetvalue(r, i, 0), msg);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return 0;
}

static int gw_price_load_windows(PGconn *conn, pr_book_t *b, char *err, size_t errlen)
{
    PGresult *r = gw_price_query(conn, gw_price_windows_sql, "discount_windows", err, errlen);
    if (!r)
        return -1;
    char msg[512];
    for (int i = 0; i < PQntuples(r); i++) {
        const char *kind = PQgetvalue(r, i, 2);
        pr_window_def_t w;
        memset(&w, 0, sizeof w);
        w.id = gw_i64(r, i, 0, 0);
        w.card_id = gw_i64(r, i, 1, 0);
        w.kind = strcmp(kind, "once") == 0    ? PR_WIN_ONCE
                 : strcmp(kind, "daily") == 0 ? PR_WIN_DAILY
                                              : PR_WIN_HOLIDAY;
        w.precedence = (int32_t)gw_i64(r, i, 3, 0);
        w.valid_from_us = gw_i64(r, i, 4, 0);
        w.valid_until_us = gw_i64(r, i, 5, PR_FOREVER);
        w.zone = PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6);
        w.start_sec = (int32_t)gw_i64(r, i, 7, 0);
        w.end_sec = (int32_t)gw_i64(r, i, 8, 0);
        w.weekdays = (uint8_t)gw_i64(r, i, 9, PR_WEEKDAYS_ALL);
        w.calendar_id = gw_i64(r, i, 10, 0);
        /* Percent windows were turned into explicit prices when saved: the
         * stored prices are what is charged. */
        w.use_percent = false;
        w.prices = (pr_prices_t){gw_i64(r, i, 11, 0), gw_i64(r, i, 12, 0), gw_i64(r, i, 13, 0),
                                 gw_i64(r, i, 14, -1)};
        if (strcmp(kind, "once") != 0 && strcmp(kind, "daily") != 0 &&
            strcmp(kind, "holiday") != 0) {
            snprintf(msg, sizeof msg, "unknown kind '%s'", kind);
            gw_price_row_error(err, errlen, "discount window", PQgetvalue(r, i, 0), msg);
            PQclear(r);
            return -1;
        }
        if (pr_book_add_window(b, &w, msg, sizeof msg) != 0) {
            gw_price_row_error(err, errlen, "discount window", PQgetvalue(r, i, 0), msg);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return 0;
}

static int gw_price_load_calendars(PGconn *conn, pr_book_t *b, char *err, size_t errlen)
{
    char msg[512];
    PGresult *r = gw_price_query(conn, gw_price_calendars_sql, "holiday_calendars", err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (pr_book_add_calendar(b, gw_i64(r, i, 0, 0), PQgetvalue(r, i, 1), msg, sizeof msg) !=
            0) {
            gw_price_row_error(err, errlen, "holiday calendar", PQgetvalue(r, i, 0), msg);
            PQclear(r);
            return -1;
        }
    PQclear(r);
    r = gw_price_query(conn, gw_price_dates_sql, "holiday_dates", err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        int y = 0, m = 0, d = 0;
        const char *day = PQgetvalue(r, i, 1);
        if (sscanf(day, "%d-%d-%d", &y, &m, &d) != 3 ||
            pr_book_add_holiday(b, gw_i64(r, i, 0, 0), y, m, d, msg, sizeof msg) != 0) {
            if (y == 0)
                snprintf(msg, sizeof msg, "unreadable date '%s'", day);
            gw_price_row_error(err, errlen, "holiday date of calendar", PQgetvalue(r, i, 0), msg);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return 0;
}

static int gw_price_load_providers(PGconn *conn, pr_book_t *b, char *err, size_t errlen)
{
    char msg[512];
    PGresult *r = gw_price_query(conn, gw_price_providers_sql, "price_providers", err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        pr_tier_t tier =
            strcmp(PQgetvalue(r, i, 1), "start") == 0 ? PR_TIER_START : PR_TIER_COMPLETION;
        if (pr_book_set_tier(b, PQgetvalue(r, i, 0), tier, msg, sizeof msg) != 0) {
            gw_price_row_error(err, errlen, "provider", PQgetvalue(r, i, 0), msg);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return 0;
}

pr_book_t *gw_price_load_book(PGconn *conn, const char *tzdir, char *err, size_t errlen)
{
    pr_book_t *b = pr_book_new();
    if (!b)
        abort();
    char msg[512];
    if (gw_price_load_providers(conn, b, err, errlen) != 0 ||
        gw_price_load_cards(conn, b, err, errlen) != 0 ||
        gw_price_load_calendars(conn, b, err, errlen) != 0 ||
        gw_price_load_windows(conn, b, err, errlen) != 0)
        goto fail;
    if (pr_book_load_zones(b, tzdir, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "loading time zones: %s", msg);
        goto fail;
    }
    if (pr_book_finalize(b, err, errlen) != 0)
        goto fail;
    return b;
fail:
    pr_book_free(b);
    return NULL;
}
