/* ctl_usage_costs: "tollgatectl usage gateway-costs" lists the gateway's own
 * costs (gateway_costs: today the cancelled losers of hedged requests) of a
 * period with totals per currency, or as CSV; and the checks of those rows
 * that "usage verify" adds (charges recomputed from the price tables, spool
 * records looked up). These are the gateway's money, never a team's. */
#include "ctl_usage_costs.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CTL_COSTS_FETCH 5000 /* rows per FETCH: the listing's memory bound */

static const char ctl_costs_usage[] =
    "usage: tollgatectl [--db CONNINFO] usage gateway-costs [--from TIME] [--to TIME]\n"
    "                                                      [--format table|csv]\n"
    "\n"
    "Lists the costs the gateway bears itself (table gateway_costs: the cancelled\n"
    "losers of hedged requests), which are in no team's usage or spend, ordered by\n"
    "the time they were cancelled, in [--from, --to) (either may be left out).\n"
    "table (the default) ends with a TOTAL line per currency; csv prints every\n"
    "column of the view finance_gateway_costs, amounts as exact pico-units.\n"
    "TIME is YYYY-MM-DD (00:00 UTC) or RFC 3339.\n";

/* Columns of the listing, in finance_gateway_costs' order; timestamps
 * become RFC 3339 UTC text. */
static const char *const ctl_costs_cols[] = {
    "request_id",      "attempt",        "reason",         "cancelled_at",
    "sent_at",         "team_id",        "team_name",      "key_id",
    "model_requested", "provider",       "upstream_model", "prompt_tokens",
    "prompt_exact",    "usage_complete", "price_card_id",  "discount_window_id",
    "charge_currency", "charge_pico",
};
#define CTL_COSTS_NCOLS (sizeof ctl_costs_cols / sizeof ctl_costs_cols[0])

#define CTL_COSTS_PERIOD_SQL                                                                       \
    " ($1::bigint IS NULL OR g.cancelled_at >= timestamptz 'epoch' + $1::bigint"                   \
    " * interval '1 microsecond') AND ($2::bigint IS NULL OR g.cancelled_at < timestamptz"         \
    " 'epoch' + $2::bigint * interval '1 microsecond')"

/* True when the connected database has gateway_costs; else prints why not. */
static bool ctl_costs_table(PGconn *conn, const char *cmd)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('gateway_costs') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        ctl_pg_error(conn, res, cmd);
    else if (!have)
        ctl_error("%s: the database has no table gateway_costs (migration 0018); run: "
                  "tollgatectl migrate",
                  cmd);
    PQclear(res);
    return have;
}

/* Parses the optional period into microsecond text (NULL when absent).
 * Returns 0, or CTL_USAGE after printing why. */
static int ctl_costs_period(const ctl_opt_t *from, const ctl_opt_t *to, char from_us[24],
                            char to_us[24], const char **f_out, const char **t_out)
{
    char err[256];
    int64_t f = 0, t = 0;
    *f_out = *t_out = NULL;
    if (from->present) {
        if (ctl_time_parse(from->value, &f, err, sizeof err) != 0) {
            ctl_error("usage gateway-costs: --from: %s", err);
            return CTL_USAGE;
        }
        snprintf(from_us, 24, "%" PRId64, f);
        *f_out = from_us;
    }
    if (to->present) {
        if (ctl_time_parse(to->value, &t, err, sizeof err) != 0) {
            ctl_error("usage gateway-costs: --to: %s", err);
            return CTL_USAGE;
        }
        snprintf(to_us, 24, "%" PRId64, t);
        *t_out = to_us;
    }
    if (from->present && to->present && f >= t) {
        ctl_error("usage gateway-costs: --from %s is not before --to %s", from->value, to->value);
        return CTL_USAGE;
    }
    return 0;
}

/* Prints the rows of res: CSV (every column), or the table's chosen ones. */
static void ctl_costs_rows(const PGresult *res, bool csv)
{
    for (int i = 0; i < PQntuples(res); i++) {
        if (csv) {
            for (int c = 0; c < (int)CTL_COSTS_NCOLS; c++) {
                if (c)
                    fputc(',', stdout);
                if (!PQgetisnull(res, i, c))
                    ctl_csv_field(stdout, PQgetvalue(res, i, c));
            }
            fputc('\n', stdout);
            continue;
        }
        /* request_id, attempt, cancelled_at, provider, upstream_model, team,
         * prompt tokens (~ an estimate), charge to 6 decimals, currency. */
        char tokens[32];
        snprintf(tokens, sizeof tokens, "%s%s",
                 PQgetisnull(res, i, 11) ? "-" : PQgetvalue(res, i, 11),
                 PQgetvalue(res, i, 12)[0] == 't' ? "" : "~");
        const char *team = PQgetisnull(res, i, 6) ? PQgetvalue(res, i, 5) : PQgetvalue(res, i, 6);
        printf("%-40s %3s %-27s %-16s %-24s %-16s %12s %22s %-4s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 3), PQgetvalue(res, i, 9),
               PQgetvalue(res, i, 10), team, tokens,
               PQgetisnull(res, i, 18) ? "(unpriced)" : PQgetvalue(res, i, 18),
               PQgetisnull(res, i, 16) ? "-" : PQgetvalue(res, i, 16));
    }
}

int ctl_usage_gateway_costs(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {
        {"from", true, false, NULL}, {"to", true, false, NULL}, {"format", true, false, NULL}};
    const char *pos[1], *from, *to;
    size_t npos;
    bool help;
    char from_us[24], to_us[24];
    if (ctl_args_parse("usage gateway-costs", argc, argv, opts, 3, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_costs_usage, stdout);
        return CTL_OK;
    }
    int rc = ctl_costs_period(&opts[0], &opts[1], from_us, to_us, &from, &to);
    if (rc)
        return rc;
    const char *format = opts[2].present ? opts[2].value : "table";
    bool csv = strcmp(format, "csv") == 0;
    if (!csv && strcmp(format, "table") != 0) {
        ctl_error("usage gateway-costs: --format %s: expected table or csv", format);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    if (!ctl_costs_table(conn, "usage gateway-costs")) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    char sql[2048];
    size_t n = (size_t)snprintf(sql, sizeof sql, "DECLARE tg_costs NO SCROLL CURSOR FOR SELECT ");
    for (size_t c = 0; c < CTL_COSTS_NCOLS; c++) {
        const char *name = ctl_costs_cols[c];
        if (strstr(name, "_at"))
            n += (size_t)snprintf(sql + n, sizeof sql - n,
                                  "%sto_char(g.%s AT TIME ZONE 'UTC',"
                                  " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                                  c ? ", " : "", name);
        else
            n += (size_t)snprintf(sql + n, sizeof sql - n, "%sg.%s", c ? ", " : "", name);
    }
    snprintf(sql + n, sizeof sql - n,
             ", round(g.charge_pico / 1000000000000::numeric, 6)::text"
             " FROM finance_gateway_costs g WHERE" CTL_COSTS_PERIOD_SQL
             " ORDER BY g.cancelled_at, g.request_id, g.attempt");
    const char *params[] = {from, to};
    PQclear(PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ctl_pg_error(conn, res, "usage gateway-costs failed");
        PQclear(res);
        PQfinish(conn);
        return CTL_FAIL;
    }
    PQclear(res);
    if (csv)
        for (size_t c = 0; c < CTL_COSTS_NCOLS; c++)
            printf("%s%s", c ? "," : "", ctl_costs_cols[c]);
    else
        printf("%-40s %3s %-27s %-16s %-24s %-16s %12s %22s %-4s\n", "request_id", "att",
               "cancelled_at", "provider", "upstream_model", "team", "prompt_tok", "charge", "cur");
    if (csv)
        fputc('\n', stdout);
    uint64_t done = 0;
    char fetch[64];
    snprintf(fetch, sizeof fetch, "FETCH %d FROM tg_costs", CTL_COSTS_FETCH);
    for (;;) {
        res = PQexec(conn, fetch);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ctl_pg_error(conn, res, "usage gateway-costs: fetching rows failed");
            rc = CTL_FAIL;
            PQclear(res);
            break;
        }
        int got = PQntuples(res);
        ctl_costs_rows(res, csv);
        done += (uint64_t)got;
        PQclear(res);
        if (got < CTL_COSTS_FETCH || ferror(stdout))
            break;
    }
    if (rc == CTL_OK && !csv) {
        /* Totals per currency, exact decimals, in the same snapshot. */
        res = PQexecParams(conn,
                           "SELECT COALESCE(g.charge_currency, '-'), count(*),"
                           " COALESCE(sum(g.prompt_tokens), 0),"
                           " count(*) FILTER (WHERE NOT g.prompt_exact),"
                           " round(COALESCE(sum(g.charge_pico), 0) / 1000000000000::numeric,"
                           " 6)::text FROM finance_gateway_costs g WHERE" CTL_COSTS_PERIOD_SQL
                           " GROUP BY 1 ORDER BY 1",
                           2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            for (int i = 0; i < PQntuples(res); i++)
                printf("TOTAL %-4s attempts %s, prompt tokens %s (%s estimated), charge %s%s\n",
                       PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                       PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                       strcmp(PQgetvalue(res, i, 0), "-") == 0 ? " (unpriced)" : "");
            if (PQntuples(res) == 0)
                printf("(no gateway costs in the period)\n");
        } else {
            ctl_pg_error(conn, res, "usage gateway-costs: totals failed");
            rc = CTL_FAIL;
        }
        PQclear(res);
    }
    PQclear(PQexec(conn, "COMMIT"));
    PQfinish(conn);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ctl_error("usage gateway-costs: writing the output failed");
        return CTL_FAIL;
    }
    if (rc == CTL_OK && csv)
        fprintf(stderr, "listed %" PRIu64 " gateway cost rows\n", done);
    return rc;
}

/* One count; -1 (printed) on error. */
static int64_t ctl_costs_count(PGconn *conn, const char *sql, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    int64_t v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        ctl_pg_error(conn, res, "usage verify: checking gateway_costs failed");
    PQclear(res);
    return v;
}

int64_t ctl_gateway_costs_verify(PGconn *conn, const char *const *params)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('gateway_costs') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!have) {
        printf("gateway costs:                  (no table gateway_costs: migration 0018 not "
               "applied)\n");
        return 0;
    }
    /* verify's period, on cancelled_at ($1, $2 are never NULL here). */
    int64_t rows = ctl_costs_count(
        conn, "SELECT count(*) FROM gateway_costs g WHERE" CTL_COSTS_PERIOD_SQL, params);
    int64_t priced =
        ctl_costs_count(conn,
                        "SELECT count(*) FROM gateway_costs g WHERE" CTL_COSTS_PERIOD_SQL
                        " AND g.price_card_id IS NOT NULL",
                        params);
    /* A charge in another currency than its card's is a difference too. */
    static const char bad_sql[] =
        " FROM gateway_costs_charge_recomputed g WHERE" CTL_COSTS_PERIOD_SQL
        " AND (g.recomputed_pico IS DISTINCT FROM g.charge_pico"
        " OR g.card_currency IS DISTINCT FROM g.charge_currency)";
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT count(*)%s", bad_sql);
    int64_t bad = ctl_costs_count(conn, sql, params);
    if (rows < 0 || priced < 0 || bad < 0)
        return -1;
    printf("gateway costs in period:        %" PRId64 " (%" PRId64 " priced, %" PRId64
           " unpriced; the gateway's, in no team's spend)\n",
           rows, priced, rows - priced);
    printf("gateway cost charges differing: %" PRId64 " (of %" PRId64
           " recomputed as prompt tokens x cache-miss price)\n",
           bad, priced);
    if (bad > 0) {
        snprintf(sql, sizeof sql,
                 "SELECT g.request_id || ' attempt ' || g.attempt%s ORDER BY 1 LIMIT 10", bad_sql);
        res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            for (int i = 0; i < PQntuples(res); i++)
                printf("    %s\n", PQgetvalue(res, i, 0));
        PQclear(res);
    }
    return bad;
}

int64_t ctl_gateway_costs_in_ledger(PGconn *conn, char **ids, const int *attempts, size_t n)
{
    if (n == 0)
        return 0;
    PGresult *res = PQexec(conn, "SELECT to_regclass('gateway_costs') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!have) {
        ctl_error("usage verify: the spool holds gateway cost records but the database has no "
                  "table gateway_costs (migration 0018); run: tollgatectl migrate");
        return -1;
    }
    int64_t found = 0;
    for (size_t i = 0; i < n; i += 1000) {
        size_t k = n - i < 1000 ? n - i : 1000, len = 3;
        for (size_t j = 0; j < k; j++)
            len += strlen(ids[i + j]) * 2 + 4;
        char *arr = malloc(len), *p = arr, *att = malloc(k * 12 + 3), *q = att;
        if (!arr || !att)
            abort();
        *p++ = '{';
        *q++ = '{';
        for (size_t j = 0; j < k; j++) {
            if (j) {
                *p++ = ',';
                *q++ = ',';
            }
            *p++ = '"';
            for (const char *s = ids[i + j]; *s; s++) {
                if (*s == '"' || *s == '\\')
                    *p++ = '\\';
                *p++ = *s;
            }
            *p++ = '"';
            q += snprintf(q, 12, "%d", attempts[i + j]);
        }
        *p++ = '}';
        *p = '\0';
        *q++ = '}';
        *q = '\0';
        const char *params[] = {arr, att};
        res = PQexecParams(conn,
                           "SELECT count(*) FROM gateway_costs g JOIN unnest($1::text[],"
                           " $2::int[]) AS s(rid, att) ON g.request_id = s.rid"
                           " AND g.attempt = s.att",
                           2, NULL, params, NULL, NULL, 0);
        free(arr);
        free(att);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ctl_pg_error(conn, res, "usage verify: looking spool cost records up failed");
            PQclear(res);
            return -1;
        }
        found += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    return found;
}
