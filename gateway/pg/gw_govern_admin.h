/* gw_govern_admin: the one implementation of budget and rate-limit writes
 * shared by tollgatectl (budget/limit commands) and the gateway's admin HTTP
 * API (gw_admin_budgets.c): value checks with messages that say what is
 * expected, the team/key lookup, and the audited write transaction (BEGIN,
 * SET LOCAL tollgate.actor, the statement, COMMIT; the tables' trigger writes
 * the audit_log row with the actor and the row before and after). Statuses
 * are the GW_PA_* of gw_price_admin.h (400 bad value, 404 unknown team, key
 * or budget, 503 PostgreSQL); nothing is saved on a refusal. */
#ifndef GW_GOVERN_ADMIN_H
#define GW_GOVERN_ADMIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_price_admin.h"

#define GW_GOV_AMOUNT_MAX 3999999999999999LL /* micro-units: the CHECK of hard_micro */
#define GW_GOV_COUNT_MAX 1000000000000LL     /* a limit (requests, tokens, slots) */

/* A budget as written. Strings are borrowed; NULL fields take the defaults
 * (currency USD, period month, zone UTC, policy alert, no downgrades, no
 * webhook). */
typedef struct gw_gov_budget_spec {
    int64_t hard_micro; /* > 0 */
    int64_t soft_micro; /* 0 = no soft threshold */
    const char *currency, *period, *zone, *policy, *downgrades, *webhook;
} gw_gov_budget_spec_t;

/* Rate limits as written; 0 = no limit of that kind. */
typedef struct gw_gov_limit_spec {
    int64_t rpm, tpm, concurrent;
} gw_gov_limit_spec_t;

/* A decimal amount in currency units ("12.50", at most 6 decimals) ->
 * micro-units, 0..GW_GOV_AMOUNT_MAX. 0, or -1 with a message naming opt. */
int gw_gov_amount_parse(const char *opt, const char *text, int64_t *out_micro, char *err,
                        size_t errlen);

/* Checks a budget (hard > 0, soft in (0, hard], known currency, period, IANA
 * zone, policy, downgrade mapping and webhook URL shapes; policy downgrade
 * needs a mapping) and fills the defaults in. 0, or -1 with a message and
 * *param naming the offending field ("hard", "soft", "currency", ...). */
int gw_gov_budget_check(gw_gov_budget_spec_t *b, const char **param, char *err, size_t errlen);

/* Checks limits (each 0..GW_GOV_COUNT_MAX, at least one set). 0, or -1 with
 * a message and *param. */
int gw_gov_limit_check(const gw_gov_limit_spec_t *l, const char **param, char *err, size_t errlen);

/* Whether text is a valid team name (1-64: letters, digits, _ . -). */
bool gw_gov_team_name_ok(const char *text);

/* Team name (and optional key display prefix, NULL = the team) -> ids
 * (*key_id 0 for the team). GW_PA_OK, GW_PA_NOT_FOUND with a message naming
 * what is missing, or GW_PA_UNAVAILABLE. */
int gw_gov_scope_resolve(PGconn *conn, const char *team, const char *key_prefix, int64_t *team_id,
                         int64_t *key_id, char *err, size_t errlen);

/* Creates or replaces the budget of a team (key_prefix NULL) or of one of its
 * keys, audited as `actor`. The spec must have passed gw_gov_budget_check.
 * *id_out its id, *created whether it is new. GW_PA_OK or a status. */
int gw_gov_budget_put(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                      const gw_gov_budget_spec_t *b, int64_t *id_out, bool *created, char *err,
                      size_t errlen);

/* Deletes that budget, audited. GW_PA_NOT_FOUND when there is none. */
int gw_gov_budget_delete(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                         int64_t *id_out, char *err, size_t errlen);

/* Creates or replaces rate limits (checked with gw_gov_limit_check), audited. */
int gw_gov_limit_put(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                     const gw_gov_limit_spec_t *l, int64_t *id_out, bool *created, char *err,
                     size_t errlen);

/* Deletes those limits, audited. GW_PA_NOT_FOUND when there are none. */
int gw_gov_limit_delete(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                        int64_t *id_out, char *err, size_t errlen);

/* The ledger's spend of a team (key_id 0) or key in one currency over
 * [start_s, end_s) by received_at, rounded UP to micro-units (the figure
 * Redis is rebuilt from). GW_PA_OK or a status. */
int gw_gov_ledger_micro(PGconn *conn, int64_t team_id, int64_t key_id, const char *currency,
                        int64_t start_s, int64_t end_s, int64_t *out, char *err, size_t errlen);

#endif
