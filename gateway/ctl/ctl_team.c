/* ctl_team: "tollgatectl team create|list". Teams own keys and usage; each
 * creation is written to audit_log in the same statement (gw_key_admin,
 * shared with the admin HTTP API). */
#include "ctl.h"
#include "ctl_key_route.h"

#include <inttypes.h>
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
    int64_t id = 0;
    int st = gw_key_team_create(conn, ctx->actor, pos[0], opts[0].present, &id, err, sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ctl_error("team create: %s", err);
        return CTL_FAIL;
    }
    printf("created team %s (id %" PRId64 "%s)\n", pos[0], id, opts[0].present ? ", private" : "");
    return CTL_OK;
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
    char err[768], created[40];
    int st = GW_PA_OK;
    PGresult *res = gw_key_teams_select(conn, 0, NULL, &st, err, sizeof err);
    if (res) {
        printf("%-6s %-32s %-8s %-12s %s\n", "ID", "NAME", "PRIVATE", "ACTIVE KEYS", "CREATED");
        for (int r = 0; r < PQntuples(res); r++)
            printf("%-6s %-32s %-8s %-12s %s\n", PQgetvalue(res, r, GW_KT_ID),
                   PQgetvalue(res, r, GW_KT_NAME),
                   PQgetvalue(res, r, GW_KT_PRIVATE)[0] == 't' ? "yes" : "no",
                   PQgetvalue(res, r, GW_KT_ACTIVE_KEYS),
                   ctl_key_when(res, r, GW_KT_CREATED_US, "", created, sizeof created));
    } else {
        ctl_error("team list: %s", err);
    }
    PQclear(res);
    PQfinish(conn);
    return st == GW_PA_OK ? CTL_OK : CTL_FAIL;
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
