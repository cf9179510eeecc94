/* ctl_price: the pieces shared by tollgatectl's price administration groups
 * ("price", "window", "provider", "calendar"; docs/prices-admin.md): parsing
 * money, instants, clock times, weekdays and percentages from the command
 * line, printing amounts, and the write path: a transaction with the actor
 * set for the audit trigger, validated by rebuilding the whole price book from
 * the rows as they would be (gw_price_load_book) before COMMIT. */
#ifndef CTL_PRICE_H
#define CTL_PRICE_H

#include "ctl.h"

#include "pr_book.h"

/* Subcommand groups (argv[0] is the group's name). Return an exit status. */
int ctl_price_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_window_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_provider_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_calendar_main(ctl_ctx_t *ctx, int argc, char **argv);

/* Parsers of command-line values. Each returns 0, or -1 with a message that
 * names the option (`opt`, e.g. "--miss") and says what is expected. */
/* Decimal currency units per 1M tokens ("0.27") -> micro-units (pr_micro_parse). */
int ctl_price_money_parse(const char *opt, const char *text, int64_t *out, char *err,
                          size_t errlen);
/* An instant (ctl_time_parse) -> unix microseconds. */
int ctl_price_instant_parse(const char *opt, const char *text, int64_t *out, char *err,
                            size_t errlen);
/* A positive database id. */
int ctl_price_id_parse(const char *opt, const char *text, int64_t *out, char *err, size_t errlen);
/* A token count 0..PR_TOKENS_MAX. */
int ctl_price_tokens_parse(const char *opt, const char *text, int64_t *out, char *err,
                           size_t errlen);
/* An integer in [min, max]. */
int ctl_price_int_parse(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                        char *err, size_t errlen);
/* "HH:MM" or "HH:MM:SS" -> seconds of day; "24:00" only when allow_24. */
int ctl_price_clock_parse(const char *opt, const char *text, bool allow_24, int32_t *out, char *err,
                          size_t errlen);
/* "mon,tue,..." (or "weekdays", "weekends", "all") -> bit mask, bit 0 = Monday. */
int ctl_price_weekdays_parse(const char *text, uint8_t *out, char *err, size_t errlen);
/* A percentage "50", "12.5", "0.01" (0..100, at most two decimals) -> basis points. */
int ctl_price_percent_parse(const char *text, int32_t *out_bp, char *err, size_t errlen);

/* Writes micro-units as a decimal amount of currency units ("0.27"). */
const char *ctl_price_micro_format(int64_t micro, char buf[64]);
/* Writes unix microseconds as ISO 8601 UTC. */
const char *ctl_price_instant_format(int64_t us, char buf[40]);

/* Runs a statement with text parameters; PQresultStatus must be `want`.
 * Returns the result (caller PQclear), or NULL after printing why (see
 * ctl_price_refused) with `what` as the subject. */
PGresult *ctl_price_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                         const char *const *params, ExecStatusType want);

/* Prints PostgreSQL's refusal of `what` and a sentence saying what to do. */
void ctl_price_refused(PGconn *conn, const PGresult *res, const char *what);

/* BEGIN and SET LOCAL tollgate.actor (the audit trigger's "who"). Returns 0,
 * or -1 after printing why. */
int ctl_price_begin(PGconn *conn, const ctl_ctx_t *ctx);
/* Rebuilds the price book from the rows of the open transaction; COMMITs if
 * the library accepts it, else ROLLBACKs and prints its message. Returns 0 when
 * committed, -1 otherwise (nothing saved). */
int ctl_price_commit_checked(PGconn *conn, const char *what);
/* ROLLBACK, ignoring errors. */
void ctl_price_rollback(PGconn *conn);

/* Loads the price book in a read-only snapshot. NULL after printing why. */
pr_book_t *ctl_price_book_load(PGconn *conn);
/* Connects, loads the price book and disconnects. NULL after printing why. */
pr_book_t *ctl_price_book_fetch(const ctl_ctx_t *ctx);

/* Checks that every option of o[0..n) is present except those whose bit is
 * set in `optional` (bit i = option i). Prints "CMD: --NAME is required" for
 * the first one missing and returns false. */
bool ctl_price_required(const char *cmd, const ctl_opt_t *o, int n, unsigned optional);

/* Whether a command's --help was asked; prints `usage` to stdout if so. */
bool ctl_price_help(bool help, const char *usage);

#endif
