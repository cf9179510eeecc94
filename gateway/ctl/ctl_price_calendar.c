/* ctl_price_calendar: "tollgatectl provider tier" (which instant of a request
 * decides its price tier) and "tollgatectl calendar add|date add|list"
 * (holiday calendars for discount windows). Validated with the whole price
 * book before COMMIT and audited by trigger, like every price change. */
#include "ctl_price.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ctl_provider_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] provider tier --provider P "
    "completion|start\n"
    "\n"
    "Which instant of a request decides its price card and window: its completion\n"
    "(DeepSeek's rule, the default for providers never set) or its start.\n";

static const char ctl_calendar_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] calendar COMMAND\n"
    "\n"
    "  calendar add NAME --zone Z [--note TEXT]     a holiday calendar in an IANA zone\n"
    "  calendar date add --calendar ID YYYY-MM-DD [--name TEXT]\n"
    "                                               add a local date to a calendar\n"
    "  calendar list                                calendars and their dates\n"
    "\n"
    "Holiday windows (window add --holiday --calendar ID) apply on a calendar's dates;\n"
    "daily windows can skip them (window add --daily ... --exclude-calendar ID).\n";

static int ctl_provider_tier(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"provider", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("provider tier", argc, argv, o, 1, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, ctl_provider_usage))
        return CTL_OK;
    if (!o[0].present || npos != 1) {
        ctl_error("provider tier: give --provider P and completion or start");
        return CTL_USAGE;
    }
    if (strcmp(pos[0], "completion") != 0 && strcmp(pos[0], "start") != 0) {
        ctl_error("provider tier: '%s' is not a tier instant: give completion or start", pos[0]);
        return CTL_FAIL;
    }
    size_t n = strlen(o[0].value);
    if (n == 0 || n >= PR_PROVIDER_MAX) {
        ctl_error("provider tier: invalid --provider: give 1 to %d characters",
                  PR_PROVIDER_MAX - 1);
        return CTL_FAIL;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {o[0].value, pos[0], ctx->actor};
    int rc = CTL_FAIL;
    PGresult *res = NULL;
    if (ctl_price_begin(conn, ctx) != 0)
        goto done;
    res = ctl_price_exec(conn, "provider tier",
                         "INSERT INTO price_providers (provider, tier_instant, created_by)"
                         " VALUES ($1, $2, $3) ON CONFLICT (provider)"
                         " DO UPDATE SET tier_instant = EXCLUDED.tier_instant",
                         3, params, PGRES_COMMAND_OK);
    if (!res) {
        ctl_price_rollback(conn);
        goto done;
    }
    if (ctl_price_commit_checked(conn, "provider tier") != 0)
        goto done;
    printf("provider %s: the %s instant of a request decides its price tier\n", o[0].value, pos[0]);
    rc = CTL_OK;
done:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int ctl_provider_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_provider_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "tier") == 0)
        return ctl_provider_tier(ctx, argc - 2, argv + 2);
    ctl_error("provider: unknown command '%s' (tier; see: tollgatectl provider --help)", argv[1]);
    return CTL_USAGE;
}

static int ctl_calendar_add(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"zone", true, false, NULL}, {"note", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("calendar add", argc, argv, o, 2, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl calendar add NAME --zone Z [--note TEXT]\n"))
        return CTL_OK;
    if (npos != 1 || !o[0].present) {
        ctl_error("calendar add: give the calendar's NAME and --zone Z");
        return CTL_USAGE;
    }
    char err[512];
    if (ctl_label_check(pos[0], err, sizeof err) != 0) {
        ctl_error("calendar add: invalid name: give 1 to 200 characters, no control characters");
        return CTL_FAIL;
    }
    pr_tz_t *tz = NULL;
    if (pr_tz_load(o[0].value, NULL, &tz, err, sizeof err) != 0) {
        ctl_error("calendar add: unknown time zone '%s': give an IANA zone from the tz database "
                  "such as UTC, Asia/Shanghai or America/New_York",
                  o[0].value);
        return CTL_FAIL;
    }
    pr_tz_free(tz);
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {pos[0], o[0].value, o[1].present ? o[1].value : NULL, ctx->actor};
    int rc = CTL_FAIL;
    PGresult *res = NULL;
    if (ctl_price_begin(conn, ctx) != 0)
        goto done;
    res = ctl_price_exec(conn, "calendar add",
                         "INSERT INTO holiday_calendars (name, zone, note, created_by)"
                         " VALUES ($1, $2, $3, $4) RETURNING id",
                         4, params, PGRES_TUPLES_OK);
    if (!res) {
        ctl_price_rollback(conn);
        goto done;
    }
    if (ctl_price_commit_checked(conn, "calendar add") != 0)
        goto done;
    printf("added calendar %s: %s in %s\n", PQgetvalue(res, 0, 0), pos[0], o[0].value);
    rc = CTL_OK;
done:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int ctl_calendar_date_add(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"calendar", true, false, NULL}, {"name", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("calendar date add", argc, argv, o, 2, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl calendar date add --calendar ID YYYY-MM-DD "
                             "[--name TEXT]\n"))
        return CTL_OK;
    if (npos != 1 || !o[0].present) {
        ctl_error("calendar date add: give --calendar ID and the date YYYY-MM-DD");
        return CTL_USAGE;
    }
    char err[512], cal[24];
    int64_t v, us;
    if (ctl_price_id_parse("--calendar", o[0].value, &v, err, sizeof err) != 0) {
        ctl_error("calendar date add: %s", err);
        return CTL_FAIL;
    }
    snprintf(cal, sizeof cal, "%lld", (long long)v);
    if (strlen(pos[0]) != 10 || ctl_time_parse(pos[0], &us, err, sizeof err) != 0) {
        ctl_error("calendar date add: invalid date '%s': give a real local date as YYYY-MM-DD",
                  pos[0]);
        return CTL_FAIL;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {cal, pos[0], o[1].present ? o[1].value : NULL, ctx->actor};
    int rc = CTL_FAIL;
    PGresult *res = NULL;
    if (ctl_price_begin(conn, ctx) != 0)
        goto done;
    res = ctl_price_exec(conn, "calendar date add",
                         "INSERT INTO holiday_dates (calendar_id, day, name, created_by)"
                         " VALUES ($1::bigint, $2::date, $3, $4)",
                         4, params, PGRES_COMMAND_OK);
    if (!res) {
        ctl_price_rollback(conn);
        goto done;
    }
    if (ctl_price_commit_checked(conn, "calendar date add") != 0)
        goto done;
    printf("calendar %s: added %s\n", cal, pos[0]);
    rc = CTL_OK;
done:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int ctl_calendar_list(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("calendar list", argc, argv, NULL, 0, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl calendar list\n"))
        return CTL_OK;
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    PGresult *res = ctl_price_exec(
        conn, "calendar list",
        "SELECT h.id, h.name, h.zone, (SELECT count(*) FROM holiday_dates d"
        " WHERE d.calendar_id = h.id), COALESCE((SELECT string_agg(to_char(d.day, 'YYYY-MM-DD'),"
        " ' ' ORDER BY d.day) FROM holiday_dates d WHERE d.calendar_id = h.id), '')"
        " FROM holiday_calendars h ORDER BY h.id",
        0, NULL, PGRES_TUPLES_OK);
    int rc = CTL_FAIL;
    if (res) {
        printf("%-6s %-24s %-24s %-6s %s\n", "ID", "NAME", "ZONE", "DATES", "");
        for (int r = 0; r < PQntuples(res); r++)
            printf("%-6s %-24s %-24s %-6s %s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                   PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4));
        PQclear(res);
        rc = CTL_OK;
    }
    PQfinish(conn);
    return rc;
}

int ctl_calendar_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_calendar_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "add") == 0)
        return ctl_calendar_add(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "date") == 0 && argc >= 3 && strcmp(argv[2], "add") == 0)
        return ctl_calendar_date_add(ctx, argc - 3, argv + 3);
    if (strcmp(argv[1], "list") == 0)
        return ctl_calendar_list(ctx, argc - 2, argv + 2);
    ctl_error("calendar: unknown command '%s' (add, date add, list; see: tollgatectl calendar "
              "--help)",
              argv[1]);
    return CTL_USAGE;
}
