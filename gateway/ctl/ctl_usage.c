/* ctl_usage: "tollgatectl usage summary|export|verify" — what finance pulls
 * from the ledger: spend per team/model/provider for a period, every row of a
 * period streamed as CSV or JSON through a server-side cursor (bounded memory
 * for any number of rows), and a verification that recomputes every charge
 * from the rows and the price tables and counts spool records against rows.
 * "usage gateway-costs" (the gateway's own costs) is in ctl_usage_costs.c. */
#include "ctl.h"
#include "ctl_usage_costs.h"

#include "gw_spool.h"
#include "gw_spool_rec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_EXPORT_FETCH 5000 /* rows per FETCH: the export's memory bound */

static const char ctl_usage_usage[] =
    "usage: tollgatectl [--db CONNINFO] usage COMMAND\n"
    "\n"
    "  usage summary --from TIME --to TIME [--by team|model|provider]\n"
    "                      spend, requests, errors and tokens per group and currency\n"
    "  usage export --from TIME --to TIME [--team NAME] [--format csv|json]\n"
    "                      every usage row of the period on standard output, streamed\n"
    "  usage verify --from TIME --to TIME [--spool DIR]\n"
    "                      recompute every charge from the rows and the price tables;\n"
    "                      with --spool, count the spool's records against the rows\n"
    "  usage gateway-costs [--from TIME] [--to TIME] [--format table|csv]\n"
    "                      the gateway's own costs (cancelled hedge attempts), in no\n"
    "                      team's spend, with totals per currency\n"
    "\n"
    "TIME is YYYY-MM-DD (00:00 UTC) or RFC 3339 (2027-01-31T18:00:00Z); the period is\n"
    "[--from, --to) on the rows' completion time. Amounts are exact: pico-units of the\n"
    "currency (10^-12) in exports, decimals in the summary (docs/finance.md).\n";

/* The period options every subcommand takes; fills from/to as microsecond
 * text for SQL. Returns 0, or CTL_USAGE after printing why. */
static int ctl_usage_period(const char *cmd, const ctl_opt_t *from, const ctl_opt_t *to,
                            char from_us[24], char to_us[24])
{
    char err[256];
    int64_t f, t;
    if (!from->present || !to->present) {
        ctl_error("usage %s: --from and --to are required (see: tollgatectl usage --help)", cmd);
        return CTL_USAGE;
    }
    if (ctl_time_parse(from->value, &f, err, sizeof err) != 0 ||
        ctl_time_parse(to->value, &t, err, sizeof err) != 0) {
        ctl_error("usage %s: %s", cmd, err);
        return CTL_USAGE;
    }
    if (f >= t) {
        ctl_error("usage %s: --from %s is not before --to %s", cmd, from->value, to->value);
        return CTL_USAGE;
    }
    snprintf(from_us, 24, "%" PRId64, f);
    snprintf(to_us, 24, "%" PRId64, t);
    return 0;
}

#define CTL_PERIOD_SQL                                                                             \
    " u.completed_at >= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'"               \
    " AND u.completed_at < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'"

static int ctl_usage_summary(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {
        {"from", true, false, NULL}, {"to", true, false, NULL}, {"by", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    char from[24], to[24];
    if (ctl_args_parse("usage summary", argc, argv, opts, 3, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_usage_usage, stdout);
        return CTL_OK;
    }
    int rc = ctl_usage_period("summary", &opts[0], &opts[1], from, to);
    if (rc)
        return rc;
    const char *by = opts[2].present ? opts[2].value : "team", *col;
    if (strcmp(by, "team") == 0)
        col = "t.name";
    else if (strcmp(by, "model") == 0)
        col = "u.model_requested";
    else if (strcmp(by, "provider") == 0)
        col = "COALESCE(u.provider, '(none)')";
    else {
        ctl_error("usage summary: --by %s: expected team, model or provider", by);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    char sql[2048];
    /* Charges are summed as numeric (exact) and shown to 6 decimals. */
    snprintf(sql, sizeof sql,
             "SELECT %s, COALESCE(u.charge_currency, '-'), count(*),"
             " count(*) FILTER (WHERE u.error_type IS NOT NULL OR u.http_status >= 400),"
             " COALESCE(sum(u.prompt_tokens), 0), COALESCE(sum(u.completion_tokens), 0),"
             " round(COALESCE(sum(u.charge_pico), 0) / 1000000000000::numeric, 6)::text,"
             " count(*) FILTER (WHERE u.price_card_id IS NULL)"
             " FROM usage_events u JOIN teams t ON t.id = u.team_id WHERE" CTL_PERIOD_SQL
             " GROUP BY 1, 2 ORDER BY 2, sum(u.charge_pico) DESC NULLS LAST, 1",
             col);
    const char *params[] = {from, to};
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res, "usage summary failed");
        PQclear(res);
        PQfinish(conn);
        return CTL_FAIL;
    }
    printf("%-32s %-4s %10s %8s %14s %14s %22s %9s\n", by, "cur", "requests", "errors",
           "prompt_tok", "output_tok", "charge", "unpriced");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-32s %-4s %10s %8s %14s %14s %22s %9s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
               PQgetvalue(res, i, 7));
    PQclear(res);
    /* Totals per currency, as exact decimals too. */
    res = PQexecParams(conn,
                       "SELECT COALESCE(u.charge_currency, '-'), count(*),"
                       " round(COALESCE(sum(u.charge_pico), 0) / 1000000000000::numeric, 6)::text"
                       " FROM usage_events u WHERE" CTL_PERIOD_SQL " GROUP BY 1 ORDER BY 1",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++)
            printf("%-32s %-4s %10s %8s %14s %14s %22s\n", "TOTAL", PQgetvalue(res, i, 0),
                   PQgetvalue(res, i, 1), "", "", "", PQgetvalue(res, i, 2));
        if (PQntuples(res) == 0)
            printf("(no usage in the period)\n");
    } else {
        ctl_pg_error(conn, res, "usage summary totals failed");
    }
    PQclear(res);
    PQfinish(conn);
    return CTL_OK;
}

/* Export columns: name and JSON kind (s string, n number, b boolean, p pico
 * amount as a string so no JSON reader rounds it). Order = finance_usage. */
static const struct {
    const char *name, kind;
} ctl_export_cols[] = {
    {"request_id", 's'},
    {"completed_at", 's'},
    {"received_at", 's'},
    {"first_byte_at", 's'},
    {"team_id", 'n'},
    {"team_name", 's'},
    {"key_id", 'n'},
    {"key_prefix", 's'},
    {"key_name", 's'},
    {"endpoint", 's'},
    {"model_requested", 's'},
    {"provider", 's'},
    {"upstream_model", 's'},
    {"attempts", 'n'},
    {"streamed", 'b'},
    {"http_status", 'n'},
    {"error_type", 's'},
    {"is_error", 'b'},
    {"usage_complete", 'b'},
    {"prompt_tokens", 'n'},
    {"cache_hit_tokens", 'n'},
    {"cache_miss_tokens", 'n'},
    {"completion_tokens", 'n'},
    {"reasoning_tokens", 'n'},
    {"price_card_id", 'n'},
    {"discount_window_id", 'n'},
    {"priced_at_instant", 's'},
    {"charge_currency", 's'},
    {"cost_cache_hit_pico", 'p'},
    {"cost_cache_miss_pico", 'p'},
    {"cost_output_pico", 'p'},
    {"cost_reasoning_pico", 'p'},
    {"charge_pico", 'p'},
    {"pricing_flags", 'n'},
};
#define CTL_EXPORT_NCOLS (sizeof ctl_export_cols / sizeof ctl_export_cols[0])

void ctl_csv_field(FILE *out, const char *v)
{
    if (!strpbrk(v, ",\"\r\n") && v[0] != ' ' && (v[0] == '\0' || v[strlen(v) - 1] != ' ')) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            fputc('"', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

static void ctl_json_string(FILE *out, const char *v)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* Prints rows [0, n) of res in the chosen format. */
static void ctl_export_rows(FILE *out, const PGresult *res, bool json, uint64_t *done)
{
    for (int i = 0; i < PQntuples(res); i++, (*done)++) {
        if (json)
            fputs(*done ? ",\n{" : "{", out);
        for (size_t c = 0; c < CTL_EXPORT_NCOLS; c++) {
            bool null = PQgetisnull(res, i, (int)c);
            const char *v = PQgetvalue(res, i, (int)c);
            if (!json) {
                if (c)
                    fputc(',', out);
                if (!null)
                    ctl_csv_field(out, v);
                continue;
            }
            fprintf(out, "%s\"%s\":", c ? "," : "", ctl_export_cols[c].name);
            if (null)
                fputs("null", out);
            else if (ctl_export_cols[c].kind == 'n')
                fputs(v, out);
            else if (ctl_export_cols[c].kind == 'b')
                fputs(v[0] == 't' ? "true" : "false", out);
            else
                ctl_json_string(out, v);
        }
        fputs(json ? "}" : "\n", out);
    }
}

static int ctl_usage_export(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {{"from", true, false, NULL},
                        {"to", true, false, NULL},
                        {"team", true, false, NULL},
                        {"format", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    char from[24], to[24];
    if (ctl_args_parse("usage export", argc, argv, opts, 4, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_usage_usage, stdout);
        return CTL_OK;
    }
    int rc = ctl_usage_period("export", &opts[0], &opts[1], from, to);
    if (rc)
        return rc;
    const char *format = opts[3].present ? opts[3].value : "csv";
    bool json = strcmp(format, "json") == 0;
    if (!json && strcmp(format, "csv") != 0) {
        ctl_error("usage export: --format %s: expected csv or json", format);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    /* Timestamps as RFC 3339 UTC with microseconds; amounts as exact text. */
    char sql[4096];
    size_t n = (size_t)snprintf(sql, sizeof sql, "DECLARE tg_export NO SCROLL CURSOR FOR SELECT ");
    for (size_t c = 0; c < CTL_EXPORT_NCOLS; c++) {
        const char *name = ctl_export_cols[c].name;
        if (strstr(name, "_at"))
            n += (size_t)snprintf(sql + n, sizeof sql - n,
                                  "%sto_char(u.%s AT TIME ZONE 'UTC',"
                                  " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                                  c ? ", " : "", name);
        else
            n += (size_t)snprintf(sql + n, sizeof sql - n, "%su.%s", c ? ", " : "", name);
    }
    snprintf(sql + n, sizeof sql - n,
             " FROM finance_usage u WHERE" CTL_PERIOD_SQL
             " AND ($3::text IS NULL OR u.team_name = $3) ORDER BY u.completed_at, u.request_id");
    const char *params[] = {from, to, opts[2].present ? opts[2].value : NULL};
    PGresult *res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    PQclear(res);
    res = PQexecParams(conn, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ctl_pg_error(conn, res,
                     "usage export failed (is the schema migrated? run: tollgatectl migrate)");
        PQclear(res);
        PQfinish(conn);
        return CTL_FAIL;
    }
    PQclear(res);
    if (json)
        fputs("[\n", stdout);
    else
        for (size_t c = 0; c < CTL_EXPORT_NCOLS; c++)
            printf("%s%s", c ? "," : "", ctl_export_cols[c].name);
    if (!json)
        fputc('\n', stdout);
    uint64_t done = 0;
    char fetch[64];
    snprintf(fetch, sizeof fetch, "FETCH %d FROM tg_export", CTL_EXPORT_FETCH);
    for (;;) {
        res = PQexec(conn, fetch);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ctl_pg_error(conn, res, "usage export: fetching rows failed");
            rc = CTL_FAIL;
            break;
        }
        int got = PQntuples(res);
        ctl_export_rows(stdout, res, json, &done);
        PQclear(res);
        if (got < CTL_EXPORT_FETCH)
            break;
        if (ferror(stdout))
            break;
    }
    if (rc == CTL_OK && json)
        fputs(done ? "\n]\n" : "]\n", stdout);
    PQclear(PQexec(conn, "COMMIT"));
    PQfinish(conn);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ctl_error("usage export: writing the output failed");
        return CTL_FAIL;
    }
    if (rc == CTL_OK)
        fprintf(stderr, "exported %" PRIu64 " rows\n", done);
    return rc;
}

/* --spool: the spool's records in the period, collected for a look-up. */
typedef struct ctl_spool_scan {
    int64_t from_us, to_us;
    char **ids;
    size_t n, cap;
    uint64_t undecodable, outside;
    /* gateway cost records in the period (on cancelled_at) */
    char **cost_ids;
    int *cost_attempts;
    size_t ncost, cost_cap;
    uint64_t cost_outside;
} ctl_spool_scan_t;

/* A gateway cost record of the spool: collected when in the period. */
static void ctl_spool_visit_cost(ctl_spool_scan_t *s, const uint8_t *payload, size_t len)
{
    gw_gateway_cost_t c;
    char err[128];
    if (gw_spool_rec_decode_cost(payload, len, &c, err, sizeof err) != 0) {
        s->undecodable++;
        return;
    }
    if (c.cancelled_at_us < s->from_us || c.cancelled_at_us >= s->to_us) {
        s->cost_outside++;
        return;
    }
    if (s->ncost == s->cost_cap) {
        s->cost_cap = s->cost_cap ? s->cost_cap * 2 : 64;
        s->cost_ids = realloc(s->cost_ids, s->cost_cap * sizeof *s->cost_ids);
        s->cost_attempts = realloc(s->cost_attempts, s->cost_cap * sizeof *s->cost_attempts);
        if (!s->cost_ids || !s->cost_attempts)
            abort();
    }
    s->cost_ids[s->ncost] = strdup(c.request_id);
    if (!s->cost_ids[s->ncost])
        abort();
    s->cost_attempts[s->ncost++] = c.attempt;
}

static void ctl_spool_visit(void *arg, const uint8_t *payload, size_t len)
{
    ctl_spool_scan_t *s = arg;
    gw_usage_record_t r;
    char err[128];
    if (gw_spool_rec_kind(payload, len) == GW_SPOOL_REC_COST) {
        ctl_spool_visit_cost(s, payload, len);
        return;
    }
    if (gw_spool_rec_decode(payload, len, &r, err, sizeof err) != 0) {
        s->undecodable++;
        return;
    }
    if (r.completed_at_us < s->from_us || r.completed_at_us >= s->to_us) {
        s->outside++;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        if (!s->ids)
            abort();
    }
    s->ids[s->n] = strdup(r.request_id);
    if (!s->ids[s->n])
        abort();
    s->n++;
}

/* Counts how many of ids[0..n) have a row, 1000 at a time. -1 on error. */
static int64_t ctl_ids_in_ledger(PGconn *conn, char **ids, size_t n)
{
    int64_t found = 0;
    for (size_t i = 0; i < n; i += 1000) {
        size_t k = n - i < 1000 ? n - i : 1000, len = 3;
        for (size_t j = 0; j < k; j++)
            len += strlen(ids[i + j]) * 2 + 4;
        char *arr = malloc(len), *p = arr;
        if (!arr)
            abort();
        *p++ = '{';
        for (size_t j = 0; j < k; j++) {
            if (j)
                *p++ = ',';
            *p++ = '"';
            for (const char *q = ids[i + j]; *q; q++) {
                if (*q == '"' || *q == '\\')
                    *p++ = '\\';
                *p++ = *q;
            }
            *p++ = '"';
        }
        *p++ = '}';
        *p = '\0';
        const char *params[] = {arr};
        PGresult *res = PQexecParams(conn,
                                     "SELECT count(DISTINCT request_id) FROM usage_events WHERE "
                                     "request_id = ANY($1::text[])",
                                     1, NULL, params, NULL, NULL, 0);
        free(arr);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ctl_pg_error(conn, res, "usage verify: looking spool records up failed");
            PQclear(res);
            return -1;
        }
        found += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    return found;
}

/* One verification query returning a single count; -1 on error. */
static int64_t ctl_count(PGconn *conn, const char *sql, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    int64_t v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        ctl_pg_error(conn, res,
                     "usage verify failed (is the schema migrated? run: tollgatectl migrate)");
    PQclear(res);
    return v;
}

/* Prints up to 10 request ids of a failing check. */
static void ctl_examples(PGconn *conn, const char *sql, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(res); i++)
            printf("    %s\n", PQgetvalue(res, i, 0));
    PQclear(res);
}

static int ctl_usage_verify(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {
        {"from", true, false, NULL}, {"to", true, false, NULL}, {"spool", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    char from[24], to[24];
    if (ctl_args_parse("usage verify", argc, argv, opts, 3, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_usage_usage, stdout);
        return CTL_OK;
    }
    int rc = ctl_usage_period("verify", &opts[0], &opts[1], from, to);
    if (rc)
        return rc;
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {from, to};
    /* One snapshot for every count. */
    PQclear(PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    int64_t rows =
        ctl_count(conn, "SELECT count(*) FROM usage_events u WHERE" CTL_PERIOD_SQL, params);
    int64_t dups = ctl_count(conn,
                             "SELECT count(*) - count(DISTINCT request_id) FROM usage_events u"
                             " WHERE" CTL_PERIOD_SQL,
                             params);
    int64_t priced = ctl_count(conn,
                               "SELECT count(*) FROM usage_events u WHERE" CTL_PERIOD_SQL
                               " AND u.price_card_id IS NOT NULL",
                               params);
    static const char mismatch_sql[] =
        " FROM usage_charge_recomputed r JOIN usage_events u USING (request_id, completed_at)"
        " WHERE" CTL_PERIOD_SQL " AND r.pricing_flags = 0 AND r.recomputed_pico <> r.charge_pico";
    static const char parts_sql[] =
        " FROM usage_events u WHERE" CTL_PERIOD_SQL " AND u.price_card_id IS NOT NULL"
        " AND u.charge_pico IS DISTINCT FROM u.cost_cache_hit_pico + u.cost_cache_miss_pico"
        " + u.cost_output_pico + u.cost_reasoning_pico";
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT count(*)%s", mismatch_sql);
    int64_t mismatched = ctl_count(conn, sql, params);
    snprintf(sql, sizeof sql, "SELECT count(*)%s", parts_sql);
    int64_t parts = ctl_count(conn, sql, params);
    /* Response-cache hits charged by the `free` rule (pricing flag 32,
     * docs/response-cache.md) must charge exactly nothing; hits charged at the
     * cache-hit price carry flag 0 and are recomputed like any row. */
    static const char free_sql[] =
        " FROM usage_events u WHERE" CTL_PERIOD_SQL " AND u.price_card_id IS NOT NULL"
        " AND (u.pricing_flags & 32) <> 0 AND (NOT u.response_cache_hit"
        " OR u.charge_pico IS DISTINCT FROM 0 OR u.cost_cache_hit_pico IS DISTINCT FROM 0"
        " OR u.cost_cache_miss_pico IS DISTINCT FROM 0 OR u.cost_output_pico IS DISTINCT FROM 0"
        " OR u.cost_reasoning_pico IS DISTINCT FROM 0)";
    snprintf(sql, sizeof sql, "SELECT count(*)%s", free_sql);
    int64_t free_bad = ctl_count(conn, sql, params);
    int64_t free_rows =
        ctl_count(conn,
                                  "SELECT count(*) FROM usage_events u WHERE" CTL_PERIOD_SQL
                                  " AND u.price_card_id IS NOT NULL AND (u.pricing_flags & 32) <> 0",
                                  params);
    int64_t incomplete = ctl_count(conn,
                                   "SELECT count(*) FROM usage_events u WHERE" CTL_PERIOD_SQL
                                   " AND u.price_card_id IS NOT NULL AND u.pricing_flags <> 0"
                                   " AND (u.pricing_flags & 32) = 0",
                                   params);
    if (rows < 0 || dups < 0 || priced < 0 || mismatched < 0 || parts < 0 || incomplete < 0 ||
        free_bad < 0 || free_rows < 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    printf("rows in period:                 %" PRId64 " (%" PRId64 " priced, %" PRId64
           " unpriced)\n",
           rows, priced, rows - priced);
    printf("request ids present twice:      %" PRId64 "\n", dups);
    printf("charges differing from prices:  %" PRId64 " (of %" PRId64 " recomputed; %" PRId64
           " priced on incomplete counts not compared)\n",
           mismatched, priced - incomplete - free_rows, incomplete);
    if (mismatched > 0) {
        snprintf(sql, sizeof sql, "SELECT request_id%s ORDER BY 1 LIMIT 10", mismatch_sql);
        ctl_examples(conn, sql, params);
    }
    printf("charges differing from parts:   %" PRId64 "\n", parts);
    if (parts > 0) {
        snprintf(sql, sizeof sql, "SELECT u.request_id%s ORDER BY 1 LIMIT 10", parts_sql);
        ctl_examples(conn, sql, params);
    }
    printf("response-cache hits charged free: %" PRId64 " (%" PRId64 " not exactly zero)\n",
           free_rows, free_bad);
    if (free_bad > 0) {
        snprintf(sql, sizeof sql, "SELECT u.request_id%s ORDER BY 1 LIMIT 10", free_sql);
        ctl_examples(conn, sql, params);
    }
    int64_t differences = dups + mismatched + parts + free_bad;
    int64_t cost_bad = ctl_gateway_costs_verify(conn, params);
    differences += cost_bad < 0 ? 1 : cost_bad;
    if (opts[2].present) {
        ctl_spool_scan_t s = {0};
        s.from_us = strtoll(from, NULL, 10);
        s.to_us = strtoll(to, NULL, 10);
        gw_spool_inspect_t in;
        char err[512];
        if (gw_spool_inspect(opts[2].value, ctl_spool_visit, &s, &in, err, sizeof err) != 0) {
            ctl_error("usage verify: %s", err);
            differences++;
        } else {
            int64_t found = ctl_ids_in_ledger(conn, s.ids, s.n);
            printf("spool %s: %" PRIu64 " records not yet checkpointed in %" PRIu64
                   " segment(s) (%s)\n",
                   opts[2].value, in.records, in.segments,
                   in.in_use ? "a gateway is running on it" : "no gateway running on it");
            printf("  in the period:                %zu (%" PRId64
                   " already in the ledger, %" PRId64 " waiting to be written)\n",
                   s.n, found, found < 0 ? 0 : (int64_t)s.n - found);
            printf("  outside the period:           %" PRIu64 "\n", s.outside);
            printf("  damaged regions:              %" PRIu64 " corrupted, %" PRIu64
                   " torn tail(s)\n",
                   in.corrupted, in.torn);
            if (s.undecodable)
                printf("  undecodable records:          %" PRIu64 "\n", s.undecodable);
            int64_t cwaiting = 0; /* gateway cost records not yet rows */
            if (s.ncost || s.cost_outside) {
                int64_t cfound =
                    ctl_gateway_costs_in_ledger(conn, s.cost_ids, s.cost_attempts, s.ncost);
                cwaiting = cfound < 0 ? 0 : (int64_t)s.ncost - cfound;
                printf("  gateway cost records:         %zu in the period (%" PRId64
                       " already in gateway_costs, %" PRId64 " waiting), %" PRIu64 " outside it\n",
                       s.ncost, cfound < 0 ? 0 : cfound, cwaiting, s.cost_outside);
                if (cfound < 0)
                    differences++;
            }
            if (found < 0)
                differences++;
            else if (!in.in_use && (found < (int64_t)s.n || cwaiting > 0))
                printf("  (no writer is draining this spool: start the gateway on it to write "
                       "the waiting records)\n");
        }
        for (size_t i = 0; i < s.n; i++)
            free(s.ids[i]);
        free(s.ids);
        for (size_t i = 0; i < s.ncost; i++)
            free(s.cost_ids[i]);
        free(s.cost_ids);
        free(s.cost_attempts);
    }
    PQclear(PQexec(conn, "COMMIT"));
    PQfinish(conn);
    printf("%s: %" PRId64 " difference(s)\n", differences ? "FAILED" : "OK", differences);
    return differences ? CTL_FAIL : CTL_OK;
}

int ctl_usage_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_usage_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "summary") == 0)
        return ctl_usage_summary(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "export") == 0)
        return ctl_usage_export(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "verify") == 0)
        return ctl_usage_verify(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "gateway-costs") == 0)
        return ctl_usage_gateway_costs(ctx, argc - 2, argv + 2);
    ctl_error("usage: unknown command '%s' (see: tollgatectl usage --help)", argv[1]);
    return CTL_USAGE;
}
