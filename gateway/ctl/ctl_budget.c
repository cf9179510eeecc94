/* ctl_budget: "tollgatectl budget set|show|list" and "tollgatectl limit
 * set|show": budgets (migration 0011) and rate limits (0012) per team and
 * optionally per key. Writes are one statement each; the audit row is written
 * by the tables' trigger with the actor (updated_by). docs/governance.md. */
#include "ctl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ctl_budget_usage[] =
    "usage: tollgatectl budget COMMAND\n"
    "\n"
    "  budget set --team NAME [--key PREFIX] --hard AMOUNT [--soft AMOUNT]\n"
    "             [--currency USD] [--period day|month|total] [--zone IANA]\n"
    "             [--policy alert|downgrade|cheaper|refuse] [--downgrade FROM=TO,...]\n"
    "             [--webhook http://HOST[:PORT]/PATH]\n"
    "        create or replace the budget of a team (or of one of its keys, by its\n"
    "        display prefix, e.g. tg-3fa9c1d2); AMOUNT is a decimal in the currency\n"
    "        (at most 6 decimals), periods are aligned in --zone (default UTC)\n"
    "  budget show --team NAME    the team's budgets and this period's ledger spend\n"
    "  budget list                every budget\n";

static const char ctl_limit_usage[] =
    "usage: tollgatectl limit COMMAND\n"
    "\n"
    "  limit set --team NAME [--key PREFIX] [--rpm N] [--tpm N] [--concurrent N]\n"
    "        create or replace the rate limits of a team (or one of its keys);\n"
    "        0 or 'none' = no limit of that kind\n"
    "  limit show --team NAME     the team's limits\n";

/* Parses a non-negative decimal amount into micro-units. Returns 0, or -1. */
static int parse_amount(const char *s, long long *out, char *err, size_t errlen)
{
    long long v = 0;
    int decimals = -1;
    if (!*s)
        goto bad;
    for (const char *p = s; *p; p++) {
        if (*p == '.' && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            goto bad;
        if (decimals >= 0 && ++decimals > 6) {
            snprintf(err, errlen, "amount '%s' has more than 6 decimals", s);
            return -1;
        }
        if (v > 400000000000000LL) {
            snprintf(err, errlen, "amount '%s' is too large", s);
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    for (int d = decimals < 0 ? 0 : decimals; d < 6; d++)
        v *= 10;
    *out = v;
    return 0;
bad:
    snprintf(err, errlen, "amount '%s' must be a decimal number like 12.50", s);
    return -1;
}

static int parse_count(const char *s, long long *out)
{
    if (!strcmp(s, "none")) {
        *out = 0;
        return 0;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000000000LL)
        return -1;
    *out = v;
    return 0;
}

/* Resolves team (and key prefix) to ids. Returns 0, or -1 after a message. */
static int resolve_scope(PGconn *conn, const char *cmd, const char *team, const char *key,
                         char *team_id, char *key_id)
{
    const char *p[2] = {team, key ? key : ""};
    PGresult *r = PQexecParams(conn,
                               "SELECT t.id, (SELECT k.id FROM api_keys k WHERE k.team_id = t.id "
                               "AND k.display_prefix = $2) FROM teams t WHERE t.name = $1",
                               2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, r, "looking up the team failed (is the schema migrated?)");
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) != 1) {
        ctl_error("%s: no team named '%s'", cmd, team);
        PQclear(r);
        return -1;
    }
    snprintf(team_id, 24, "%s", PQgetvalue(r, 0, 0));
    key_id[0] = '\0';
    if (key) {
        if (PQgetisnull(r, 0, 1)) {
            ctl_error("%s: team '%s' has no key with prefix '%s'", cmd, team, key);
            PQclear(r);
            return -1;
        }
        snprintf(key_id, 24, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return 0;
}

static int budget_set(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"team", true, false, NULL},      {"key", true, false, NULL},
                     {"hard", true, false, NULL},      {"soft", true, false, NULL},
                     {"currency", true, false, NULL},  {"period", true, false, NULL},
                     {"zone", true, false, NULL},      {"policy", true, false, NULL},
                     {"downgrade", true, false, NULL}, {"webhook", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    char err[256];
    if (ctl_args_parse("budget set", argc, argv, o, 10, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_budget_usage, stdout);
        return CTL_OK;
    }
    if (!o[0].present || !o[2].present) {
        ctl_error("budget set: --team and --hard are required (see: tollgatectl budget --help)");
        return CTL_USAGE;
    }
    long long hard, soft = 0;
    if (parse_amount(o[2].value, &hard, err, sizeof err) < 0 || hard <= 0) {
        ctl_error("budget set: --hard: %s", hard <= 0 && !err[0] ? "must be above zero" : err);
        return CTL_USAGE;
    }
    if (o[3].present && (parse_amount(o[3].value, &soft, err, sizeof err) < 0 || soft <= 0)) {
        ctl_error("budget set: --soft: %s", err[0] ? err : "must be above zero");
        return CTL_USAGE;
    }
    if (soft > hard) {
        ctl_error("budget set: --soft (%s) must not be above --hard (%s)", o[3].value, o[2].value);
        return CTL_USAGE;
    }
    const char *period = o[5].present ? o[5].value : "month";
    if (strcmp(period, "day") && strcmp(period, "month") && strcmp(period, "total")) {
        ctl_error("budget set: --period must be day, month or total, got '%s'", period);
        return CTL_USAGE;
    }
    const char *policy = o[7].present ? o[7].value : "alert";
    if (strcmp(policy, "alert") && strcmp(policy, "downgrade") && strcmp(policy, "cheaper") &&
        strcmp(policy, "refuse")) {
        ctl_error("budget set: --policy must be alert, downgrade, cheaper or refuse, got '%s'",
                  policy);
        return CTL_USAGE;
    }
    if (!strcmp(policy, "downgrade") && !o[8].present) {
        ctl_error("budget set: --policy downgrade needs --downgrade FROM=TO[,FROM=TO...]");
        return CTL_USAGE;
    }
    const char *zone = o[6].present ? o[6].value : "UTC";
    char zpath[600];
    snprintf(zpath, sizeof zpath, "/usr/share/zoneinfo/%s", zone);
    FILE *zf = strstr(zone, "..") ? NULL : fopen(zpath, "rb");
    if (!zf) {
        ctl_error("budget set: --zone '%s' is not a known IANA time zone", zone);
        return CTL_USAGE;
    }
    fclose(zf);
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    char team_id[24], key_id[24], hs[24], ss[24];
    if (resolve_scope(conn, "budget set", o[0].value, o[1].present ? o[1].value : NULL, team_id,
                      key_id) < 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    snprintf(hs, sizeof hs, "%lld", hard);
    snprintf(ss, sizeof ss, "%lld", soft);
    const char *p[11] = {team_id,
                         key_id[0] ? key_id : NULL,
                         o[4].present ? o[4].value : "USD",
                         period,
                         zone,
                         hs,
                         soft ? ss : NULL,
                         policy,
                         o[8].present ? o[8].value : "",
                         o[9].present ? o[9].value : NULL,
                         ctx->actor};
    PGresult *r = PQexecParams(
        conn,
        "INSERT INTO budgets (team_id, key_id, currency, period, zone, hard_micro, soft_micro, "
        "soft_policy, downgrades, webhook_url, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, "
        "$8, $9, $10, $11) ON CONFLICT (team_id, COALESCE(key_id, 0)) DO UPDATE SET "
        "currency = EXCLUDED.currency, period = EXCLUDED.period, zone = EXCLUDED.zone, "
        "hard_micro = EXCLUDED.hard_micro, soft_micro = EXCLUDED.soft_micro, "
        "soft_policy = EXCLUDED.soft_policy, downgrades = EXCLUDED.downgrades, "
        "webhook_url = EXCLUDED.webhook_url, updated_by = EXCLUDED.updated_by, "
        "updated_at = now() RETURNING id",
        11, NULL, p, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        printf("budget %s: team %s%s%s: hard %s %s per %s (zone %s)%s%s, policy %s\n",
               PQgetvalue(r, 0, 0), o[0].value, key_id[0] ? " key " : "",
               key_id[0] ? o[1].value : "", o[2].value, p[2], period, zone, soft ? ", soft " : "",
               soft ? o[3].value : "", policy);
    } else {
        ctl_pg_error(conn, r, "budget set failed");
        rc = CTL_FAIL;
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* Prints budgets (all, or the team's) with the ledger's spend this period. */
static int budget_print(ctl_ctx_t *ctx, const char *team)
{
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *p[1] = {team};
    PGresult *r = PQexecParams(
        conn,
        "WITH b AS (SELECT b.*, t.name AS team, k.display_prefix AS key, "
        "  CASE b.period WHEN 'day' THEN date_trunc('day', now() AT TIME ZONE b.zone) "
        "  WHEN 'month' THEN date_trunc('month', now() AT TIME ZONE b.zone) END AS local_start "
        "  FROM budgets b JOIN teams t ON t.id = b.team_id LEFT JOIN api_keys k ON k.id = b.key_id "
        "  WHERE $1::text IS NULL OR t.name = $1) "
        "SELECT b.id, b.team, COALESCE(b.key, '-'), b.currency, b.period, b.zone, "
        "  b.hard_micro / 1e6, COALESCE((b.soft_micro / 1e6)::text, '-'), b.soft_policy, "
        "  COALESCE(NULLIF(b.downgrades, ''), '-'), COALESCE(b.webhook_url, '-'), "
        "  (SELECT COALESCE(sum(u.charge_pico), 0) / 1e12 FROM usage_events u "
        "   WHERE u.team_id = b.team_id AND (b.key_id IS NULL OR u.key_id = b.key_id) "
        "   AND u.charge_currency = b.currency AND (b.local_start IS NULL OR "
        "   u.received_at >= b.local_start AT TIME ZONE b.zone)) "
        "FROM b ORDER BY b.team, b.key NULLS FIRST",
        1, NULL, p, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        printf("%-5s %-16s %-12s %-4s %-6s %-18s %-12s %-12s %-10s %-14s %s\n", "ID", "TEAM", "KEY",
               "CUR", "PERIOD", "ZONE", "HARD", "SOFT", "POLICY", "SPENT(LEDGER)",
               "DOWNGRADES / WEBHOOK");
        for (int i = 0; i < PQntuples(r); i++)
            printf("%-5s %-16s %-12s %-4s %-6s %-18s %-12s %-12s %-10s %-14s %s %s\n",
                   PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                   PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                   PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8),
                   PQgetvalue(r, i, 11), PQgetvalue(r, i, 9), PQgetvalue(r, i, 10));
        if (team && PQntuples(r) == 0)
            printf("(team %s has no budget)\n", team);
    } else {
        ctl_pg_error(conn, r, "reading budgets failed (is the schema migrated?)");
        rc = CTL_FAIL;
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

static int budget_show(ctl_ctx_t *ctx, int argc, char **argv, bool all)
{
    ctl_opt_t o[] = {{"team", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse(all ? "budget list" : "budget show", argc, argv, o, all ? 0 : 1, pos, 0,
                       &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_budget_usage, stdout);
        return CTL_OK;
    }
    if (!all && !o[0].present) {
        ctl_error("budget show: --team is required");
        return CTL_USAGE;
    }
    return budget_print(ctx, all ? NULL : o[0].value);
}

int ctl_budget_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(ctl_budget_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (!strcmp(argv[1], "set"))
        return budget_set(ctx, argc - 2, argv + 2);
    if (!strcmp(argv[1], "show"))
        return budget_show(ctx, argc - 2, argv + 2, false);
    if (!strcmp(argv[1], "list"))
        return budget_show(ctx, argc - 2, argv + 2, true);
    ctl_error("budget: unknown command '%s' (set, show, list)", argv[1]);
    return CTL_USAGE;
}

static int limit_set(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"team", true, false, NULL},
                     {"key", true, false, NULL},
                     {"rpm", true, false, NULL},
                     {"tpm", true, false, NULL},
                     {"concurrent", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("limit set", argc, argv, o, 5, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_limit_usage, stdout);
        return CTL_OK;
    }
    if (!o[0].present) {
        ctl_error("limit set: --team is required (see: tollgatectl limit --help)");
        return CTL_USAGE;
    }
    char vals[3][24];
    const char *p[6];
    for (int i = 0; i < 3; i++) {
        long long v = 0;
        if (o[2 + i].present && parse_count(o[2 + i].value, &v) < 0) {
            ctl_error("limit set: --%s must be a whole number >= 0 or 'none', got '%s'",
                      o[2 + i].name, o[2 + i].value);
            return CTL_USAGE;
        }
        snprintf(vals[i], sizeof vals[i], "%lld", v);
        p[2 + i] = v > 0 ? vals[i] : NULL;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    char team_id[24], key_id[24];
    if (resolve_scope(conn, "limit set", o[0].value, o[1].present ? o[1].value : NULL, team_id,
                      key_id) < 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    p[0] = team_id;
    p[1] = key_id[0] ? key_id : NULL;
    p[5] = ctx->actor;
    PGresult *r = PQexecParams(
        conn,
        "INSERT INTO rate_limits (team_id, key_id, requests_per_minute, tokens_per_minute, "
        "concurrent, updated_by) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (team_id, COALESCE(key_id, 0)) DO UPDATE SET "
        "requests_per_minute = EXCLUDED.requests_per_minute, "
        "tokens_per_minute = EXCLUDED.tokens_per_minute, concurrent = EXCLUDED.concurrent, "
        "updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING id",
        6, NULL, p, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        printf("limits %s: team %s%s%s: rpm %s, tpm %s, concurrent %s\n", PQgetvalue(r, 0, 0),
               o[0].value, key_id[0] ? " key " : "", key_id[0] ? o[1].value : "",
               p[2] ? p[2] : "none", p[3] ? p[3] : "none", p[4] ? p[4] : "none");
    else {
        ctl_pg_error(conn, r, "limit set failed");
        rc = CTL_FAIL;
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

static int limit_show(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"team", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("limit show", argc, argv, o, 1, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_limit_usage, stdout);
        return CTL_OK;
    }
    if (!o[0].present) {
        ctl_error("limit show: --team is required");
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *p[1] = {o[0].value};
    PGresult *r = PQexecParams(
        conn,
        "SELECT l.id, COALESCE(k.display_prefix, '-'), COALESCE(l.requests_per_minute::text, "
        "'none'), COALESCE(l.tokens_per_minute::text, 'none'), COALESCE(l.concurrent::text, "
        "'none') FROM rate_limits l JOIN teams t ON t.id = l.team_id LEFT JOIN api_keys k ON "
        "k.id = l.key_id WHERE t.name = $1 ORDER BY l.key_id NULLS FIRST",
        1, NULL, p, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        printf("%-5s %-12s %-10s %-12s %s\n", "ID", "KEY", "RPM", "TPM", "CONCURRENT");
        for (int i = 0; i < PQntuples(r); i++)
            printf("%-5s %-12s %-10s %-12s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
        if (PQntuples(r) == 0)
            printf("(team %s has no rate limits)\n", o[0].value);
    } else {
        ctl_pg_error(conn, r, "reading limits failed (is the schema migrated?)");
        rc = CTL_FAIL;
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

int ctl_limit_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(ctl_limit_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (!strcmp(argv[1], "set"))
        return limit_set(ctx, argc - 2, argv + 2);
    if (!strcmp(argv[1], "show"))
        return limit_show(ctx, argc - 2, argv + 2);
    ctl_error("limit: unknown command '%s' (set, show)", argv[1]);
    return CTL_USAGE;
}
