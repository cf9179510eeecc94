/* ctl_team: "tollgatectl team create|list". Teams own keys and usage; each
 * creation is written to audit_log in the same statement. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

static const char ctl_team_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] team COMMAND\n"
    "\n"
    "  team create NAME [--private]   create a team (private teams may use in-house\n"
    "                                 providers only)\n"
    "  team list                      list teams with their number of active keys\n"
    "\n"
    "Team names: 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit.\n";

static int ctl_team_create(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {{"private", false, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    char err[512];
    if (ctl_args_parse("team create", argc, argv, opts, 1, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs("usage: tollgatectl team create NAME [--private]\n", stdout);
        return CTL_OK;
    }
    if (npos != 1) {
        ctl_error("team create: give the team's name (see: tollgatectl team create --help)");
        return CTL_USAGE;
    }
    if (ctl_team_name_check(pos[0], err, sizeof err) != 0) {
        ctl_error("team create: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {pos[0], opts[0].present ? "t" : "f", ctx->actor};
    /* One statement: the team and its audit row commit together. */
    PGresult *res = PQexecParams(
        conn,
        "WITH t AS (INSERT INTO teams (name, private) VALUES ($1, $2::boolean) RETURNING *),"
        " a AS (INSERT INTO audit_log (actor, action, object, after)"
        "       SELECT $3, 'team.create', 'team:' || t.name, to_jsonb(t) FROM t)"
        " SELECT id FROM t",
        3, NULL, params, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("created team %s (id %s%s)\n", pos[0], PQgetvalue(res, 0, 0),
               opts[0].present ? ", private" : "");
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "23505") == 0)
            ctl_error("team create: a team named '%s' already exists", pos[0]);
        else
            ctl_pg_error(conn, res,
                         "team create failed (is the schema migrated? run: "
                         "tollgatectl migrate)");
        rc = CTL_FAIL;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int ctl_team_list(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("team list", argc, argv, NULL, 0, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs("usage: tollgatectl team list\n", stdout);
        return CTL_OK;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    PGresult *res = PQexec(
        conn, "SELECT t.id, t.name, t.private,"
              " (SELECT count(*) FROM api_keys k WHERE k.team_id = t.id AND k.revoked_at IS NULL"
              "    AND (k.expires_at IS NULL OR k.expires_at > now())),"
              " to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
              " FROM teams t ORDER BY t.name");
    int rc = CTL_OK;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("%-6s %-32s %-8s %-12s %s\n", "ID", "NAME", "PRIVATE", "ACTIVE KEYS", "CREATED");
        for (int r = 0; r < PQntuples(res); r++)
            printf("%-6s %-32s %-8s %-12s %s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                   PQgetvalue(res, r, 2)[0] == 't' ? "yes" : "no", PQgetvalue(res, r, 3),
                   PQgetvalue(res, r, 4));
    } else {
        ctl_pg_error(conn, res,
                     "team list failed (is the schema migrated? run: tollgatectl "
                     "migrate)");
        rc = CTL_FAIL;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int ctl_team_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_team_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "create") == 0)
        return ctl_team_create(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return ctl_team_list(ctx, argc - 2, argv + 2);
    ctl_error("team: unknown command '%s' (create, list; see: tollgatectl team --help)", argv[1]);
    return CTL_USAGE;
}
