/* gw_govern_admin: budget and rate-limit writes shared by tollgatectl and the
 * admin HTTP API: value checks, team/key lookup, the audited transaction,
 * and the ledger's spend of a budget period. See gw_govern_admin.h. */
#include "gw_govern_admin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_pgconn.h"
#include "pr_currency.h"
#include "pr_tz.h"

/* ---- values ------------------------------------------------------------- */

int gw_gov_amount_parse(const char *opt, const char *text, int64_t *out_micro, char *err,
                        size_t errlen)
{
    const char *p = text;
    int64_t v = 0;
    int decimals = -1, digits = 0;
    if (*p == '-') {
        snprintf(err, errlen,
                 "%s: the amount '%s' is negative: give an amount from 0 in the "
                 "budget's currency, such as 12.50",
                 opt, text);
        return -1;
    }
    for (; *p; p++) {
        if (*p == '.' && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (!isdigit((unsigned char)*p) || (decimals >= 0 && ++decimals > 6) ||
            v > GW_GOV_AMOUNT_MAX / 10)
            break;
        v = v * 10 + (*p - '0');
        digits++;
    }
    for (int d = decimals < 0 ? 0 : decimals; !*p && d < 6 && v <= GW_GOV_AMOUNT_MAX; d++)
        v *= 10;
    if (*p || digits == 0 || decimals == 0 || v > GW_GOV_AMOUNT_MAX) {
        snprintf(err, errlen,
                 "%s: invalid amount '%s': give a decimal number of currency units with at most "
                 "6 decimals, such as 12.50 (below 4000000000)",
                 opt, text);
        return -1;
    }
    *out_micro = v;
    return 0;
}

/* Whether s matches [A-Za-z0-9._:/-]+ (a model name in a downgrade map). */
static bool model_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._:/-", s[i]))
            return false;
    return true;
}

/* "from=to[,from=to...]", the shape of the budgets.downgrades CHECK. */
static bool downgrades_ok(const char *s)
{
    if (strlen(s) > 511)
        return false;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        if (!eq || !model_name_ok(s, (size_t)(eq - s)) ||
            !model_name_ok(eq + 1, n - (size_t)(eq - s) - 1))
            return false;
        if (!comma)
            return true;
        s = comma + 1;
        if (!*s)
            return false;
    }
    return true;
}

/* http://host[:port][/path] with the characters of the webhook_url CHECK. */
static bool webhook_ok(const char *s)
{
    if (strncmp(s, "http://", 7) != 0 || strlen(s) > 511)
        return false;
    const char *p = s + 7, *h = p;
    while (isalnum((unsigned char)*p) || *p == '.' || *p == '-')
        p++;
    if (p == h)
        return false;
    if (*p == ':') {
        const char *d = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == d || p - d > 5 || atoi(d) < 1 || atoi(d) > 65535)
            return false;
    }
    if (*p && *p != '/')
        return false;
    for (; *p; p++)
        if ((unsigned char)*p < '!' || (unsigned char)*p > '~')
            return false;
    return true;
}

static bool zone_chars_ok(const char *z)
{
    size_t n = strlen(z);
    if (n == 0 || n > 63 || z[0] == '/' || z[n - 1] == '/' || strstr(z, "//"))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)z[i]) && !strchr("_+-/", z[i]))
            return false;
    return true;
}

#define BAD(field, ...)                                                                            \
    do {                                                                                           \
        *param = field;                                                                            \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

int gw_gov_budget_check(gw_gov_budget_spec_t *b, const char **param, char *err, size_t errlen)
{
    char why[256];
    *param = NULL;
    if (!b->currency)
        b->currency = "USD";
    if (!b->period)
        b->period = "month";
    if (!b->zone)
        b->zone = "UTC";
    if (!b->policy)
        b->policy = "alert";
    if (!b->downgrades)
        b->downgrades = "";
    if (b->hard_micro <= 0)
        BAD("hard", "hard: the hard limit must be above zero (a decimal amount such as 500)");
    if (b->hard_micro > GW_GOV_AMOUNT_MAX)
        BAD("hard", "hard: the hard limit is too large (below 4000000000)");
    if (b->soft_micro < 0 || b->soft_micro > b->hard_micro)
        BAD("soft", "soft: the soft threshold must be above zero and not above the hard limit");
    if (!pr_currency_find(b->currency, why, sizeof why))
        BAD("currency", "currency: %s", why);
    if (strcmp(b->period, "day") && strcmp(b->period, "month") && strcmp(b->period, "total"))
        BAD("period", "period: must be \"day\", \"month\" or \"total\", not '%.64s'", b->period);
    pr_tz_t *tz = NULL;
    if (!zone_chars_ok(b->zone) || pr_tz_load(b->zone, NULL, &tz, why, sizeof why) < 0)
        BAD("zone",
            "zone: '%.64s' is not a known IANA time zone (such as UTC, Europe/Paris, "
            "Asia/Shanghai)",
            b->zone);
    pr_tz_free(tz);
    if (strcmp(b->policy, "alert") && strcmp(b->policy, "downgrade") &&
        strcmp(b->policy, "cheaper") && strcmp(b->policy, "refuse"))
        BAD("policy",
            "policy: must be \"alert\", \"downgrade\", \"cheaper\" or \"refuse\", not "
            "'%.64s'",
            b->policy);
    if (!downgrades_ok(b->downgrades))
        BAD("downgrades", "downgrades: give FROM=TO[,FROM=TO...] with model names of letters, "
                          "digits and ._:/- (511 characters at most)");
    if (!strcmp(b->policy, "downgrade") && !b->downgrades[0])
        BAD("downgrades", "downgrades: policy \"downgrade\" needs a mapping FROM=TO[,FROM=TO...]");
    if (b->webhook && !webhook_ok(b->webhook))
        BAD("webhook", "webhook: give a plain HTTP URL http://HOST[:PORT][/PATH] (511 characters "
                       "at most)");
    return 0;
}

int gw_gov_limit_check(const gw_gov_limit_spec_t *l, const char **param, char *err, size_t errlen)
{
    *param = NULL;
    const int64_t v[3] = {l->rpm, l->tpm, l->concurrent};
    static const char *names[3] = {"rpm", "tpm", "concurrent"};
    for (int i = 0; i < 3; i++)
        if (v[i] < 0 || v[i] > GW_GOV_COUNT_MAX)
            BAD(names[i], "%s: must be a whole number from 0 (no limit) to %lld", names[i],
                GW_GOV_COUNT_MAX);
    if (!v[0] && !v[1] && !v[2])
        BAD("rpm", "give at least one of rpm, tpm and concurrent above zero (to remove the "
                   "limits, delete them)");
    return 0;
}

bool gw_gov_team_name_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 64 || !isalnum((unsigned char)t[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i]))
            return false;
    return true;
}

/* ---- database ------------------------------------------------------------ */

/* PostgreSQL's refusal as a status and a message ending "Nothing was saved."
 * res NULL or without SQLSTATE: the connection failed (503). */
static int ga_refusal(PGconn *conn, const PGresult *res, const char *what, char *err, size_t errlen)
{
    char msg[768];
    gw_pg_message(conn, res, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))) {
        snprintf(err, errlen, "%s refused by PostgreSQL: %s. Nothing was saved.", what, msg);
        return GW_PA_INVALID;
    }
    snprintf(err, errlen,
             "%s failed: %s (is PostgreSQL up and the schema migrated?). Nothing was "
             "saved.",
             what, msg);
    return GW_PA_UNAVAILABLE;
}

int gw_gov_scope_resolve(PGconn *conn, const char *team, const char *key_prefix, int64_t *team_id,
                         int64_t *key_id, char *err, size_t errlen)
{
    const char *p[2] = {team, key_prefix ? key_prefix : ""};
    PGresult *r = PQexecParams(conn,
                               "SELECT t.id, (SELECT k.id FROM api_keys k WHERE k.team_id = t.id "
                               "AND k.display_prefix = $2) FROM teams t WHERE t.name = $1",
                               2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int st = ga_refusal(conn, r, "looking up the team", err, errlen);
        PQclear(r);
        return st == GW_PA_INVALID ? GW_PA_UNAVAILABLE : st;
    }
    int st = GW_PA_OK;
    if (PQntuples(r) != 1) {
        snprintf(err, errlen,
                 "There is no team named '%.64s' (create it with tollgatectl team "
                 "create). Nothing was saved.",
                 team);
        st = GW_PA_NOT_FOUND;
    } else if (key_prefix && PQgetisnull(r, 0, 1)) {
        snprintf(err, errlen,
                 "Team '%.64s' has no key with the display prefix '%.32s' (see "
                 "tollgatectl key list). Nothing was saved.",
                 team, key_prefix);
        st = GW_PA_NOT_FOUND;
    } else {
        *team_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *key_id = key_prefix ? strtoll(PQgetvalue(r, 0, 1), NULL, 10) : 0;
    }
    PQclear(r);
    return st;
}

/* Runs one write (team id $1, key id $2, then the rest) in an audited
 * transaction. Returns the status; on success *id_out and *created from the
 * statement's RETURNING id, inserted (GW_PA_NOT_FOUND when it returned no
 * row, with `none` as the message). */
static int ga_write(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                    const char *what, const char *none, const char *sql, int nparams,
                    const char **params, int64_t *id_out, bool *created, char *err, size_t errlen)
{
    int64_t team_id, key_id;
    int st = gw_price_admin_begin(conn, actor, err, errlen);
    if (st != GW_PA_OK)
        return st;
    st = gw_gov_scope_resolve(conn, team, key_prefix, &team_id, &key_id, err, errlen);
    if (st != GW_PA_OK) {
        gw_price_admin_rollback(conn);
        return st;
    }
    char tid[24], kid[24];
    snprintf(tid, sizeof tid, "%lld", (long long)team_id);
    snprintf(kid, sizeof kid, "%lld", (long long)key_id);
    params[0] = tid;
    params[1] = key_id ? kid : NULL;
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        st = ga_refusal(conn, r, what, err, errlen);
        PQclear(r);
        gw_price_admin_rollback(conn);
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        gw_price_admin_rollback(conn);
        snprintf(err, errlen, "%s", none);
        return GW_PA_NOT_FOUND;
    }
    *id_out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    if (created)
        *created = !strcmp(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    r = PQexec(conn, "COMMIT");
    st = PQresultStatus(r) == PGRES_COMMAND_OK ? GW_PA_OK : ga_refusal(conn, r, what, err, errlen);
    PQclear(r);
    return st;
}

int gw_gov_budget_put(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                      const gw_gov_budget_spec_t *b, int64_t *id_out, bool *created, char *err,
                      size_t errlen)
{
    char hs[24], ss[24];
    snprintf(hs, sizeof hs, "%lld", (long long)b->hard_micro);
    snprintf(ss, sizeof ss, "%lld", (long long)b->soft_micro);
    const char *p[11] = {
        NULL,      NULL,          b->currency, b->period, b->zone, hs, b->soft_micro ? ss : NULL,
        b->policy, b->downgrades, b->webhook,  actor};
    /* xmax = 0 only on a row this statement inserted (not one it updated) */
    return ga_write(
        conn, actor, team, key_prefix, "saving the budget", "",
        "INSERT INTO budgets (team_id, key_id, currency, period, zone, hard_micro, soft_micro, "
        "soft_policy, downgrades, webhook_url, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, "
        "$8, $9, $10, $11) ON CONFLICT (team_id, COALESCE(key_id, 0)) DO UPDATE SET "
        "currency = EXCLUDED.currency, period = EXCLUDED.period, zone = EXCLUDED.zone, "
        "hard_micro = EXCLUDED.hard_micro, soft_micro = EXCLUDED.soft_micro, "
        "soft_policy = EXCLUDED.soft_policy, downgrades = EXCLUDED.downgrades, "
        "webhook_url = EXCLUDED.webhook_url, updated_by = EXCLUDED.updated_by, "
        "updated_at = now() RETURNING id, xmax = 0",
        11, p, id_out, created, err, errlen);
}

int gw_gov_budget_delete(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                         int64_t *id_out, char *err, size_t errlen)
{
    char none[256];
    snprintf(none, sizeof none, "%s '%.64s'%s%.32s has no budget to delete. Nothing was changed.",
             key_prefix ? "The key of team" : "Team", team, key_prefix ? " with prefix " : "",
             key_prefix ? key_prefix : "");
    const char *p[2];
    return ga_write(conn, actor, team, key_prefix, "deleting the budget", none,
                    "DELETE FROM budgets WHERE team_id = $1 AND key_id IS NOT DISTINCT FROM "
                    "$2::bigint RETURNING id, false",
                    2, p, id_out, NULL, err, errlen);
}

int gw_gov_limit_put(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                     const gw_gov_limit_spec_t *l, int64_t *id_out, bool *created, char *err,
                     size_t errlen)
{
    char v[3][24];
    const int64_t x[3] = {l->rpm, l->tpm, l->concurrent};
    const char *p[6] = {NULL, NULL, NULL, NULL, NULL, actor};
    for (int i = 0; i < 3; i++) {
        snprintf(v[i], sizeof v[i], "%lld", (long long)x[i]);
        p[2 + i] = x[i] > 0 ? v[i] : NULL;
    }
    return ga_write(conn, actor, team, key_prefix, "saving the rate limits", "",
                    "INSERT INTO rate_limits (team_id, key_id, requests_per_minute, "
                    "tokens_per_minute, concurrent, updated_by) VALUES ($1, $2, $3, $4, $5, $6) "
                    "ON CONFLICT (team_id, COALESCE(key_id, 0)) DO UPDATE SET "
                    "requests_per_minute = EXCLUDED.requests_per_minute, "
                    "tokens_per_minute = EXCLUDED.tokens_per_minute, "
                    "concurrent = EXCLUDED.concurrent, updated_by = EXCLUDED.updated_by, "
                    "updated_at = now() RETURNING id, xmax = 0",
                    6, p, id_out, created, err, errlen);
}

int gw_gov_limit_delete(PGconn *conn, const char *actor, const char *team, const char *key_prefix,
                        int64_t *id_out, char *err, size_t errlen)
{
    char none[256];
    snprintf(none, sizeof none,
             "%s '%.64s'%s%.32s has no rate limits to delete. Nothing was changed.",
             key_prefix ? "The key of team" : "Team", team, key_prefix ? " with prefix " : "",
             key_prefix ? key_prefix : "");
    const char *p[2];
    return ga_write(conn, actor, team, key_prefix, "deleting the rate limits", none,
                    "DELETE FROM rate_limits WHERE team_id = $1 AND key_id IS NOT DISTINCT FROM "
                    "$2::bigint RETURNING id, false",
                    2, p, id_out, NULL, err, errlen);
}

int gw_gov_ledger_micro(PGconn *conn, int64_t team_id, int64_t key_id, const char *currency,
                        int64_t start_s, int64_t end_s, int64_t *out, char *err, size_t errlen)
{
    char team[24], key[24], from[32], until[32];
    snprintf(team, sizeof team, "%lld", (long long)team_id);
    snprintf(key, sizeof key, "%lld", (long long)key_id);
    snprintf(from, sizeof from, "%lld", (long long)(start_s == INT64_MIN ? 0 : start_s));
    snprintf(until, sizeof until, "%lld", (long long)(end_s == INT64_MAX ? 32503680000LL : end_s));
    const char *params[5] = {team, key, currency, from, until};
    PGresult *r = PQexecParams(conn,
                               "SELECT ceil(COALESCE(sum(charge_pico), 0) / 1000000)::bigint "
                               "FROM usage_events WHERE team_id = $1 AND ($2::bigint = 0 OR "
                               "key_id = $2) AND charge_currency = $3 AND received_at >= "
                               "to_timestamp($4) AND received_at < to_timestamp($5)",
                               5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        gw_pg_message(conn, r, err, errlen);
        PQclear(r);
        return GW_PA_UNAVAILABLE;
    }
    *out = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return GW_PA_OK;
}
