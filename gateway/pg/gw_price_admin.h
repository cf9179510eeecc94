/* gw_price_admin: the one implementation of price administration shared by
 * tollgatectl (price/window commands) and the gateway's admin HTTP API
 * (gw_admin_prices.c): parsing admin values, the validated and audited write
 * transaction (BEGIN, actor, rows, rebuild the whole book, COMMIT or
 * ROLLBACK), adding cards and windows, ending windows, and the worst-case
 * quote. Every function that refuses says what is wrong in err and returns a
 * status that maps to HTTP (400 bad value, 404 unknown id, 409 conflict with
 * the data, 503 PostgreSQL unreachable); nothing is saved on a refusal. */
#ifndef GW_PRICE_ADMIN_H
#define GW_PRICE_ADMIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pr_book.h"

enum {
    GW_PA_OK = 0,
    GW_PA_INVALID = 400,    /* a value is wrong */
    GW_PA_NOT_FOUND = 404,  /* an id that does not exist */
    GW_PA_CONFLICT = 409,   /* refused by the data: overlap, duplicate, charged history */
    GW_PA_UNAVAILABLE = 503 /* PostgreSQL failed or is unreachable */
};

/* ---- values ---------------------------------------------------------------
 * Each parser returns 0, or -1 with a message naming `opt` (e.g. "--start" or
 * "start") that says what is expected. */

/* YYYY-MM-DD (00:00 UTC) or RFC 3339 with an offset -> unix microseconds.
 * opt NULL: the message names no option (tollgatectl uses it so). */
int gw_price_instant_parse(const char *opt, const char *text, int64_t *out_us, char *err,
                           size_t errlen);
/* A whole number in [min, max]. */
int gw_price_int_parse(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                       char *err, size_t errlen);
/* "HH:MM" or "HH:MM:SS" -> seconds of day; "24:00" only when allow_24. */
int gw_price_clock_parse(const char *opt, const char *text, bool allow_24, int32_t *out, char *err,
                         size_t errlen);
/* "mon,tue,..." or weekdays/weekends/all -> mask, bit 0 = Monday. */
int gw_price_weekdays_parse(const char *opt, const char *text, uint8_t *out, char *err,
                            size_t errlen);
/* "50", "12.5" (0..100, two decimals at most) -> basis points. */
int gw_price_percent_parse(const char *opt, const char *text, int32_t *out_bp, char *err,
                           size_t errlen);
/* Decimal currency units per 1M tokens ("0.27") -> micro-units. */
int gw_price_money_parse(const char *opt, const char *text, int64_t *out, char *err, size_t errlen);

/* ---- the write transaction ------------------------------------------------ */

/* Formats PostgreSQL's refusal of `what` (a failed result, or a dead
 * connection when res is NULL) with a sentence saying what to do, ending
 * "Nothing was saved.". Returns the status class. */
int gw_price_admin_refusal(PGconn *conn, const PGresult *res, const char *what, char *err,
                           size_t errlen);
/* BEGIN and set tollgate.actor for the audit trigger. 0 or a status. */
int gw_price_admin_begin(PGconn *conn, const char *actor, char *err, size_t errlen);
/* Rebuilds the price book from the open transaction's rows; COMMITs when the
 * pricing library accepts it, else ROLLBACKs (409). 0 or a status. */
int gw_price_admin_commit_checked(PGconn *conn, const char *what, char *err, size_t errlen);
void gw_price_admin_rollback(PGconn *conn);
/* The price book as committed, read in one read-only snapshot. NULL with a
 * status in *status and a message. Caller frees with pr_book_free. */
pr_book_t *gw_price_admin_book_load(PGconn *conn, int *status, char *err, size_t errlen);

/* ---- cards and windows ---------------------------------------------------- */

typedef struct gw_price_card_new {
    const char *provider, *model, *currency;
    pr_prices_t prices; /* micro-units; reasoning -1 = the output price */
    int64_t from_us;
    const char *note; /* NULL = none */
} gw_price_card_new_t;

/* Checks names, currency and prices (400 with a message), then inserts the
 * card in a validated, audited transaction. *id_out = its id. 0 or a status. */
int gw_price_admin_card_add(PGconn *conn, const char *actor, const gw_price_card_new_t *c,
                            int64_t *id_out, char *err, size_t errlen);

typedef struct gw_price_window_new {
    int64_t card_id;
    pr_window_kind_t kind;
    int32_t precedence;
    bool has_from, has_until; /* without from: the card's effective_from */
    int64_t from_us, until_us;
    const char *zone;          /* DAILY only */
    int32_t start_sec, end_sec; /* DAILY only */
    uint8_t weekdays;          /* DAILY only; 0 = all */
    int64_t calendar_id;       /* HOLIDAY: required; DAILY: excluded dates; 0 = none */
    bool use_percent;
    int32_t percent_off_bp;
    pr_prices_t prices; /* explicit prices; reasoning -1 = output */
    const char *note;
} gw_price_window_new_t;

/* Checks the window's fields for its kind (400), then inserts it in a
 * validated, audited transaction (404 when the card does not exist, 409 when
 * the book would be ambiguous). *id_out = its id, *saved = the explicit prices
 * stored (a percentage is turned into prices by the database trigger, with
 * reasoning resolved). 0 or a status. */
int gw_price_admin_window_add(PGconn *conn, const char *actor, const gw_price_window_new_t *w,
                              int64_t *id_out, pr_prices_t *saved, char *err, size_t errlen);

/* Sets window `id`'s end to at_us (must be after its start), validated and
 * audited. 0 or a status (404 unknown window, 400 end not after start). */
int gw_price_admin_window_end(PGconn *conn, const char *actor, int64_t id, int64_t at_us, char *err,
                              size_t errlen);

/* ---- quote ---------------------------------------------------------------- */

typedef struct gw_price_quote {
    const pr_card_t *card;     /* points into the book */
    const pr_window_t *window; /* in force at the instant, or NULL */
    bool use_window;           /* the window's prices were the dearer */
    pr_pico_t prompt_cost, completion_cost, total;
} gw_price_quote_t;

/* The worst case before a request is sent: every prompt token at the
 * cache-miss price, max_tokens at the dearer of output and reasoning, at the
 * dearer of the card's own prices and the window in force at at_us (it may
 * end, or not yet apply, by the time the request completes). Returns 0, or -1
 * with a message (no card in force, absurd counts). */
int gw_price_admin_quote(const pr_book_t *book, const char *provider, const char *model,
                         int64_t at_us, int64_t prompt, int64_t max_tokens, gw_price_quote_t *out,
                         char *err, size_t errlen);

#endif
