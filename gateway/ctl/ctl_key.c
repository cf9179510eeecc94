/* ctl_key: "tollgatectl key create|list|revoke|set|cache" (set and the
 * routing options: ctl_key_route.c; cache, the response cache's opt-in:
 * ctl_key_cache.c). A new key is printed once; PostgreSQL keeps only its
 * SHA-256 and display prefix. The checks, lookups and audited writes are
 * gw_key_admin's (shared with the admin HTTP API); the api_keys trigger
 * NOTIFYs running gateways, which reload their key table at once. */
#include "ctl.h"
#include "ctl_key_cache.h"
#include "ctl_key_route.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pr_book.h"

static const char ctl_key_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] key COMMAND\n"
    "\n"
    "  key create --team NAME [--models m1,m2] [--expires DATE] [--name LABEL]\n"
    "             [routing options: see key create --help]\n"
    "                      make a key; it is printed once, on standard output\n"
    "  key list [--team NAME]\n"
    "                      list keys (display prefix only; the key is never shown)\n"
    "  key revoke ID|DISPLAY_PREFIX\n"
    "                      revoke a key; running gateways refuse it within a second\n"
    "  key set ID|DISPLAY_PREFIX [routing options]\n"
    "                      change a key's routing rules and defaults (none: show them)\n"
    "  key cache ID|DISPLAY_PREFIX on|off\n"
    "                      opt a key in to or out of the response cache\n";

static const char ctl_key_create_usage[] =
    "usage: tollgatectl key create --team NAME [--models m1,m2] [--expires DATE] [--name LABEL]\n"
    "\n"
    "  --team NAME      the team the key belongs to (required)\n"
    "  --models LIST    comma-separated models the key may use (default: every model)\n"
    "  --expires DATE   YYYY-MM-DD (the key stops working at 00:00 UTC that day) or\n"
    "                   RFC 3339, e.g. 2027-01-31T18:00:00Z or 2027-01-31T18:00:00+01:00\n"
    "  --name LABEL     a label to tell keys apart\n"
    "  --response-cache on|off\n"
    "                   answer exact repeats from the response cache (default off)\n"
    "\n"
    "Routing rules and defaults (change them later with: tollgatectl key set):\n"
    "%s"
    "\n"
    "The key (tg- followed by 43 base64url characters) is printed alone on standard\n"
    "output, once; details go to standard error. Only its SHA-256 and its first 11\n"
    "characters (the display prefix) are stored.\n";

/* Prints a gw_key_admin refusal as "cmd: message", with where to look for
 * an unknown team or key. */
static void ctl_key_refused(const char *cmd, int status, const char *err)
{
    if (status == GW_PA_NOT_FOUND && !strncmp(err, "no team", 7))
        ctl_error("%s: %s (see: tollgatectl team list)", cmd, err);
    else if (status == GW_PA_NOT_FOUND || status == GW_PA_CONFLICT)
        ctl_error("%s: %s (see: tollgatectl key list)", cmd, err);
    else
        ctl_error("%s: %s", cmd, err);
}

static int ctl_key_create(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[5 + CTL_KEY_ROUTE_NOPTS] = {{"team", true, false, NULL},
                                               {"models", true, false, NULL},
                                               {"expires", true, false, NULL},
                                               {"name", true, false, NULL},
                                               {"response-cache", true, false, NULL}};
    ctl_key_route_opts(opts + 5);
    const char *pos[1];
    size_t npos;
    bool help;
    char err[768];
    if (ctl_args_parse("key create", argc, argv, opts, 5 + CTL_KEY_ROUTE_NOPTS, pos, 0, &npos,
                       &help) != 0)
        return CTL_USAGE;
    if (help) {
        printf(ctl_key_create_usage, ctl_key_route_usage);
        return CTL_OK;
    }
    if (!opts[0].present) {
        ctl_error("key create: --team NAME is required (see: tollgatectl key create --help)");
        return CTL_USAGE;
    }
    gw_key_spec_t spec = {.team = opts[0].value, .models = opts[1].value, .name = opts[3].value};
    if ((opts[1].present && ctl_models_check(opts[1].value, err, sizeof err) != 0) ||
        (opts[3].present && ctl_label_check(opts[3].value, err, sizeof err) != 0) ||
        (opts[4].present &&
         ctl_key_cache_parse(opts[4].value, &spec.response_cache, err, sizeof err) != 0) ||
        ctl_key_route_parse(opts + 5, &spec.route, err, sizeof err) != 0 ||
        (opts[2].present && gw_key_expiry_parse("--expires", opts[2].value,
                                                (int64_t)time(NULL) * 1000000, &spec.expires_us,
                                                err, sizeof err) != 0)) {
        ctl_error("key create: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    char key[GW_KEY_LEN + 1], display[GW_KEY_DISPLAY_LEN + 1], when[40];
    int64_t id = 0;
    ctl_key_route_warn(conn, &spec.route);
    int st = gw_key_create(conn, ctx->actor, &spec, key, display, &id, err, sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ctl_key_refused("key create", st, err);
        return CTL_FAIL;
    }
    const gw_key_route_t *kr = &spec.route;
    fprintf(stderr, "created key %s (id %" PRId64 ") for team %s; models: %s; expires: %s\n",
            display, id, spec.team, spec.models ? spec.models : "all",
            spec.expires_us ? pr_instant_format(spec.expires_us, when, sizeof when) : "never");
    if (gw_key_route_any(kr))
        fprintf(stderr,
                "routing: private %s; allow %s; deny %s; latency target %s ms; max cost %s; "
                "preference %s\n",
                kr->private_on ? "yes" : "no", kr->allow ? kr->allow : "all",
                kr->deny ? kr->deny : "none", kr->latency_ms[0] ? kr->latency_ms : "none",
                kr->cost ? kr->cost : "none", kr->pref ? kr->pref : "none");
    if (spec.response_cache)
        fprintf(stderr, "response cache: on\n");
    fprintf(stderr, "the key is shown once, below; store it now: it cannot be shown again\n");
    printf("%s\n", key);
    fflush(stdout);
    OPENSSL_cleanse(key, sizeof key);
    return CTL_OK;
}

static int ctl_key_list(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {{"team", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    char err[768];
    if (ctl_args_parse("key list", argc, argv, opts, 1, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs("usage: tollgatectl key list [--team NAME]\n", stdout);
        return CTL_OK;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t team_id;
    int st = GW_PA_OK;
    PGresult *res = NULL;
    if (opts[0].present)
        st = gw_key_team_find(conn, opts[0].value, &team_id, err, sizeof err);
    if (st == GW_PA_OK)
        res = gw_key_select(conn, opts[0].value, 0, &st, err, sizeof err);
    if (res) {
        char expires[40], created[40];
        printf("%-6s %-20s %-12s %-8s %-5s %-20s %-20s %-20s %s\n", "ID", "TEAM", "PREFIX",
               "STATE", "CACHE", "EXPIRES", "CREATED", "MODELS", "NAME");
        for (int r = 0; r < PQntuples(res); r++)
            printf("%-6s %-20s %-12s %-8s %-5s %-20s %-20s %-20s %s\n",
                   PQgetvalue(res, r, GW_KK_ID), PQgetvalue(res, r, GW_KK_TEAM),
                   PQgetvalue(res, r, GW_KK_PREFIX), PQgetvalue(res, r, GW_KK_STATE),
                   PQgetvalue(res, r, GW_KK_RESPONSE_CACHE)[0] == 't' ? "on" : "off",
                   ctl_key_when(res, r, GW_KK_EXPIRES_US, "never", expires, sizeof expires),
                   ctl_key_when(res, r, GW_KK_CREATED_US, "", created, sizeof created),
                   PQgetisnull(res, r, GW_KK_MODELS) ? "*" : PQgetvalue(res, r, GW_KK_MODELS),
                   PQgetvalue(res, r, GW_KK_NAME));
    } else {
        ctl_key_refused("key list", st, err);
    }
    PQclear(res);
    PQfinish(conn);
    return st == GW_PA_OK ? CTL_OK : CTL_FAIL;
}

int64_t ctl_key_find(PGconn *conn, const char *ref, const char *cmd)
{
    char err[768];
    int64_t id = 0;
    int st = gw_key_find(conn, ref, &id, err, sizeof err);
    if (st != GW_PA_OK) {
        ctl_key_refused(cmd, st, err);
        return st == GW_PA_UNAVAILABLE ? -1 : 0;
    }
    return id;
}

static int ctl_key_revoke(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    bool help;
    char err[768];
    if (ctl_args_parse("key revoke", argc, argv, NULL, 0, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs("usage: tollgatectl key revoke ID|DISPLAY_PREFIX\n\n"
              "Revokes the key at once: running gateways are notified and refuse it\n"
              "within a second. Revoking is final.\n",
              stdout);
        return CTL_OK;
    }
    if (npos != 1) {
        ctl_error("key revoke: give the key's id or display prefix (see: tollgatectl key list)");
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t id = ctl_key_find(conn, pos[0], "key revoke");
    bool changed = false;
    int st = id > 0 ? gw_key_revoke(conn, ctx->actor, id, &changed, err, sizeof err)
                    : GW_PA_NOT_FOUND;
    int st2;
    PGresult *res = changed ? gw_key_select(conn, NULL, id, &st2, err, sizeof err) : NULL;
    if (id > 0 && st != GW_PA_OK)
        ctl_key_refused("key revoke", st, err);
    else if (changed)
        printf("revoked key %s (id %" PRId64 "); running gateways refuse it within a second\n",
               res && PQntuples(res) == 1 ? PQgetvalue(res, 0, GW_KK_PREFIX) : pos[0], id);
    else if (st == GW_PA_OK)
        printf("key id %" PRId64 " was already revoked; nothing changed\n", id);
    PQclear(res);
    PQfinish(conn);
    return st == GW_PA_OK ? CTL_OK : CTL_FAIL;
}

int ctl_key_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_key_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "create") == 0)
        return ctl_key_create(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return ctl_key_list(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "revoke") == 0)
        return ctl_key_revoke(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "set") == 0)
        return ctl_key_set(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "cache") == 0)
        return ctl_key_cache_main(ctx, argc - 2, argv + 2);
    ctl_error("key: unknown command '%s' (create, list, revoke, set, cache; see: tollgatectl key "
              "--help)",
              argv[1]);
    return CTL_USAGE;
}
