/* ctl_budget: "tollgatectl budget set|delete|show|list" and "tollgatectl
 * limit set|delete|show": budgets (migration 0011) and rate limits (0012) per
 * team and optionally per key. Checks and writes are gw_govern_admin's, the
 * same as the admin HTTP API's: one transaction with the actor set, audited
 * by the tables' trigger. docs/governance.md. */
#include "ctl.h"
#include "gw_govern_admin.h"

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
    "  budget delete --team NAME [--key PREFIX]   delete that budget\n"
    "  budget show --team NAME    the team's budgets and this period's ledger spend\n"
    "  budget list                every budget\n";

static const char ctl_limit_usage[] =
    "usage: tollgatectl limit COMMAND\n"
    "\n"
    "  limit set --team NAME [--key PREFIX] [--rpm N] [--tpm N] [--concurrent N]\n"
    "        create or replace the rate limits of a team (or one of its keys);\n"
    "        0 or 'none' = no limit of that kind\n"
    "  limit delete --team NAME [--key PREFIX]    delete those limits\n"
    "  limit show --team NAME     the team's limits\n";

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

/* A gw_govern_admin status as tollgatectl's exit status (the message is
 * printed by the caller). */
static int ctl_status(int st)
{
    return st == GW_PA_OK ? CTL_OK : CTL_FAIL;
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
    gw_gov_budget_spec_t b = {0};
    const char *param;
    char err[512];
    if (gw_gov_amount_parse("--hard", o[2].value, &b.hard_micro, err, sizeof err) < 0 ||
        (o[3].present &&
         gw_gov_amount_parse("--soft", o[3].value, &b.soft_micro, err, sizeof err) < 0)) {
        ctl_error("budget set: %s", err);
        return CTL_USAGE;
    }
    if (o[3].present && b.soft_micro == 0) {
        ctl_error("budget set: --soft: the soft threshold must be above zero (leave it out for "
                  "none)");
        return CTL_USAGE;
    }
    b.currency = o[4].present ? o[4].value : NULL;
    b.period = o[5].present ? o[5].value : NULL;
    b.zone = o[6].present ? o[6].value : NULL;
    b.policy = o[7].present ? o[7].value : NULL;
    b.downgrades = o[8].present ? o[8].value : NULL;
    b.webhook = o[9].present ? o[9].value : NULL;
    if (gw_gov_budget_check(&b, &param, err, sizeof err) < 0) {
        /* err starts with the field's name, the option's but for the mapping */
        if (!strcmp(param, "downgrades"))
            ctl_error("budget set: --downgrade%s", err + strlen("downgrades"));
        else
            ctl_error("budget set: --%s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *key = o[1].present ? o[1].value : NULL;
    int64_t id;
    bool created;
    int st = gw_gov_budget_put(conn, ctx->actor, o[0].value, key, &b, &id, &created, err,
                               sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ctl_error("budget set: %s", err);
        return ctl_status(st);
    }
    printf("budget %lld %s: team %s%s%s: hard %s %s per %s (zone %s)%s%s, policy %s\n",
           (long long)id, created ? "created" : "replaced", o[0].value, key ? " key " : "",
           key ? key : "", o[2].value, b.currency, b.period, b.zone, b.soft_micro ? ", soft " : "",
           b.soft_micro ? o[3].value : "", b.policy);
    return CTL_OK;
}

/* "budget delete" and "limit delete". */
static int scope_delete(ctl_ctx_t *ctx, int argc, char **argv, bool limits)
{
    const char *cmd = limits ? "limit delete" : "budget delete";
    ctl_opt_t o[] = {{"team", true, false, NULL}, {"key", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse(cmd, argc, argv, o, 2, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(limits ? ctl_limit_usage : ctl_budget_usage, stdout);
        return CTL_OK;
    }
    if (!o[0].present) {
        ctl_error("%s: --team is required", cmd);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *key = o[1].present ? o[1].value : NULL;
    char err[512];
    int64_t id;
    int st = limits ? gw_gov_limit_delete(conn, ctx->actor, o[0].value, key, &id, err, sizeof err)
                    : gw_gov_budget_delete(conn, ctx->actor, o[0].value, key, &id, err,
                                           sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ctl_error("%s: %s", cmd, err);
        return ctl_status(st);
    }
    printf("%s %lld deleted: team %s%s%s\n", limits ? "limits" : "budget", (long long)id,
           o[0].value, key ? " key " : "", key ? key : "");
    return CTL_OK;
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
    if (!strcmp(argv[1], "delete"))
        return scope_delete(ctx, argc - 2, argv + 2, false);
    if (!strcmp(argv[1], "show"))
        return budget_show(ctx, argc - 2, argv + 2, false);
    if (!strcmp(argv[1], "list"))
        return budget_show(ctx, argc - 2, argv + 2, true);
    ctl_error("budget: unknown command '%s' (set, delete, show, list)", argv[1]);
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
    int64_t v[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        long long x = 0;
        if (o[2 + i].present && parse_count(o[2 + i].value, &x) < 0) {
            ctl_error("limit set: --%s must be a whole number >= 0 or 'none', got '%s'",
                      o[2 + i].name, o[2 + i].value);
            return CTL_USAGE;
        }
        v[i] = x;
    }
    gw_gov_limit_spec_t l = {v[0], v[1], v[2]};
    const char *param;
    char err[512];
    if (gw_gov_limit_check(&l, &param, err, sizeof err) < 0) {
        ctl_error("limit set: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *key = o[1].present ? o[1].value : NULL;
    int64_t id;
    bool created;
    int st = gw_gov_limit_put(conn, ctx->actor, o[0].value, key, &l, &id, &created, err,
                              sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ctl_error("limit set: %s", err);
        return ctl_status(st);
    }
    char t[3][24];
    for (int i = 0; i < 3; i++) {
        if (v[i])
            snprintf(t[i], sizeof t[i], "%lld", (long long)v[i]);
        else
            snprintf(t[i], sizeof t[i], "none");
    }
    printf("limits %lld %s: team %s%s%s: rpm %s, tpm %s, concurrent %s\n", (long long)id,
           created ? "created" : "replaced", o[0].value, key ? " key " : "", key ? key : "",
           t[0], t[1], t[2]);
    return CTL_OK;
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
    if (!strcmp(argv[1], "delete"))
        return scope_delete(ctx, argc - 2, argv + 2, true);
    if (!strcmp(argv[1], "show"))
        return limit_show(ctx, argc - 2, argv + 2);
    ctl_error("limit: unknown command '%s' (set, delete, show)", argv[1]);
    return CTL_USAGE;
}
