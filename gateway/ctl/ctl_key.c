/* ctl_key: "tollgatectl key create|list|revoke|set|cache" (set and the
 * routing options: ctl_key_route.c; cache, the response cache's opt-in:
 * ctl_key_cache.c). A new key is printed once;
 * PostgreSQL keeps only its SHA-256 and display prefix. Every change writes
 * an audit_log row in the same statement, and the api_keys trigger NOTIFYs
 * running gateways, which reload their key table at once. */
#include "ctl.h"
#include "ctl_key_cache.h"
#include "ctl_key_route.h"

#include "gw_keystore.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Finds a team by name. Returns its id (> 0), 0 if there is none (message
 * printed), -1 on a database error (printed). */
static int64_t ctl_team_find(PGconn *conn, const char *name)
{
    const char *params[] = {name};
    PGresult *res =
        PQexecParams(conn, "SELECT id FROM teams WHERE name = $1", 1, NULL, params, NULL, NULL, 0);
    int64_t id = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res,
                     "cannot look the team up (is the schema migrated? run: "
                     "tollgatectl migrate)");
    } else if (PQntuples(res) == 0) {
        ctl_error("no team named '%s' (see: tollgatectl team list; create it with: tollgatectl "
                  "team create %s)",
                  name, name);
        id = 0;
    } else {
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return id;
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
    char err[512];
    bool rcache = false;
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
    if ((opts[1].present && ctl_models_check(opts[1].value, err, sizeof err) != 0) ||
        (opts[3].present && ctl_label_check(opts[3].value, err, sizeof err) != 0) ||
        (opts[4].present && ctl_key_cache_parse(opts[4].value, &rcache, err, sizeof err) != 0)) {
        ctl_error("key create: %s", err);
        return CTL_USAGE;
    }
    ctl_key_route_t kr;
    if (ctl_key_route_parse(opts + 5, &kr, err, sizeof err) != 0) {
        ctl_error("key create: %s", err);
        return CTL_USAGE;
    }
    char expires[32] = "";
    if (opts[2].present) {
        int64_t us;
        if (ctl_time_parse(opts[2].value, &us, err, sizeof err) != 0) {
            ctl_error("key create: %s", err);
            return CTL_USAGE;
        }
        if (us <= (int64_t)time(NULL) * 1000000) {
            ctl_error("key create: --expires %s is in the past: the key would never work",
                      opts[2].value);
            return CTL_USAGE;
        }
        snprintf(expires, sizeof expires, "%" PRId64, us);
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t team_id = ctl_team_find(conn, opts[0].value);
    if (team_id <= 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    char key[CTL_KEY_LEN + 1], display[CTL_KEY_DISPLAY_LEN + 1];
    uint8_t hash[GW_KEY_HASH_LEN];
    if (ctl_key_generate(key, display, err, sizeof err) != 0) {
        ctl_error("key create: %s", err);
        PQfinish(conn);
        return CTL_FAIL;
    }
    gw_key_hash(key, strlen(key), hash);
    char team[24];
    snprintf(team, sizeof team, "%" PRId64, team_id);
    /* The hash travels as a binary parameter; the clear key never leaves
     * this process except on standard output. */
    ctl_key_route_warn(conn, &kr);
    const char *params[] = {team,       opts[3].value, (const char *)hash,
                            display,    opts[1].value, expires[0] ? expires : NULL,
                            ctx->actor, kr.private_on ? "t" : "f",
                            kr.allow,   kr.deny,
                            kr.latency[0] ? kr.latency : NULL,
                            kr.cost,    kr.pref};
    int lengths[] = {0, 0, GW_KEY_HASH_LEN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int formats[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    /* Without routing options the routing columns (migration 0015) are left
     * to their defaults, so that a key can be made on an older schema. */
    bool routing = ctl_key_route_any(&kr);
    char sql[1024];
    snprintf(
        sql, sizeof sql,
        "WITH k AS (INSERT INTO api_keys (team_id, name, key_sha256, display_prefix, models,"
        "   expires_at%s) VALUES ($1::bigint, $2, $3::bytea, $4, string_to_array($5, ','),"
        "   timestamptz 'epoch' + $6::bigint * interval '1 microsecond'%s) RETURNING *),"
        " a AS (INSERT INTO audit_log (actor, action, object, after)"
        "   SELECT $7, 'key.create', 'key:' || k.id, to_jsonb(k) - 'key_sha256' FROM k)"
        " SELECT id, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        " FROM k",
        routing ? ", private, allow_providers, deny_providers, latency_target_ms, max_cost,"
                  "   route_preference"
                : "",
        routing ? ", $8::bool, string_to_array($9::text, ','), string_to_array($10::text, ','),"
                  "   $11::integer, $12::numeric, $13::text"
                : "");
    PGresult *res = PQexecParams(conn, sql, routing ? 13 : 7, NULL, params, lengths, formats, 0);
    int rc = CTL_OK;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && rcache &&
        ctl_key_cache_set(conn, strtoll(PQgetvalue(res, 0, 0), NULL, 10), true, ctx->actor) != 0)
        fprintf(stderr, "the key was created, but its response cache is off (see above)\n");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        fprintf(stderr, "created key %s (id %s) for team %s; models: %s; expires: %s\n", display,
                PQgetvalue(res, 0, 0), opts[0].value, opts[1].present ? opts[1].value : "all",
                PQgetisnull(res, 0, 1) ? "never" : PQgetvalue(res, 0, 1));
        if (ctl_key_route_any(&kr))
            fprintf(stderr,
                    "routing: private %s; allow %s; deny %s; latency target %s ms; max cost %s; "
                    "preference %s\n",
                    kr.private_on ? "yes" : "no", kr.allow ? kr.allow : "all",
                    kr.deny ? kr.deny : "none", kr.latency[0] ? kr.latency : "none",
                    kr.cost ? kr.cost : "none", kr.pref ? kr.pref : "none");
        fprintf(stderr, "the key is shown once, below; store it now: it cannot be shown again\n");
        printf("%s\n", key);
        fflush(stdout);
    } else {
        if (!ctl_key_route_check_failed(res, "key create"))
            ctl_pg_error(conn, res, "key create failed");
        rc = CTL_FAIL;
    }
    OPENSSL_cleanse(key, sizeof key);
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int ctl_key_list(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[] = {{"team", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("key list", argc, argv, opts, 1, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs("usage: tollgatectl key list [--team NAME]\n", stdout);
        return CTL_OK;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    if (opts[0].present && ctl_team_find(conn, opts[0].value) <= 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    const char *params[] = {opts[0].value};
    PGresult *res = PQexecParams(
        conn,
        "SELECT k.id, t.name, k.display_prefix, COALESCE(k.name, ''),"
        " COALESCE(array_to_string(k.models, ','), '*'),"
        " COALESCE(to_char(k.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "   'never'),"
        " CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'"
        "      WHEN k.expires_at <= now() THEN 'expired' ELSE 'active' END,"
        " to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        /* the response cache's opt-in (migration 0014; through jsonb so that
         * an older schema lists too) */
        " CASE WHEN (to_jsonb(k) ->> 'response_cache')::boolean THEN 'on' ELSE 'off' END"
        " FROM api_keys k JOIN teams t ON t.id = k.team_id"
        " WHERE $1::text IS NULL OR t.name = $1 ORDER BY k.id",
        1, NULL, params, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("%-6s %-20s %-12s %-8s %-5s %-20s %-20s %-20s %s\n", "ID", "TEAM", "PREFIX",
               "STATE", "CACHE", "EXPIRES", "CREATED", "MODELS", "NAME");
        for (int r = 0; r < PQntuples(res); r++)
            printf("%-6s %-20s %-12s %-8s %-5s %-20s %-20s %-20s %s\n", PQgetvalue(res, r, 0),
                   PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 6),
                   PQgetvalue(res, r, 8), PQgetvalue(res, r, 5), PQgetvalue(res, r, 7),
                   PQgetvalue(res, r, 4), PQgetvalue(res, r, 3));
    } else {
        ctl_pg_error(conn, res, "key list failed");
        rc = CTL_FAIL;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int64_t ctl_key_find(PGconn *conn, const char *ref, const char *cmd)
{
    bool digits = ref[0] != '\0' && strlen(ref) <= 18;
    for (const char *p = ref; digits && *p; p++)
        digits = isdigit((unsigned char)*p);
    const char *params[] = {ref};
    PGresult *res = PQexecParams(conn,
                                 digits ? "SELECT id FROM api_keys WHERE id = $1::bigint"
                                        : "SELECT id FROM api_keys WHERE display_prefix = $1"
                                          " ORDER BY id",
                                 1, NULL, params, NULL, NULL, 0);
    int64_t id = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res,
                     "cannot look the key up (is the schema migrated? run: "
                     "tollgatectl migrate)");
    } else if (PQntuples(res) == 0) {
        ctl_error("%s: no key with %s '%s' (see: tollgatectl key list)", cmd,
                  digits ? "id" : "display prefix", ref);
        id = 0;
    } else if (PQntuples(res) > 1) {
        ctl_error("%s: %d keys have the display prefix '%s'; give the id (see: "
                  "tollgatectl key list)",
                  cmd, PQntuples(res), ref);
        id = 0;
    } else {
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return id;
}

static int ctl_key_revoke(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    bool help;
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
    if (id <= 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    const char *params[] = {idtext, ctx->actor};
    /* All parts of the statement see the row as it was before the UPDATE,
     * so `old` is the before image for the audit row. */
    PGresult *res =
        PQexecParams(conn,
                     "WITH old AS (SELECT * FROM api_keys WHERE id = $1::bigint),"
                     " k AS (UPDATE api_keys SET revoked_at = now() WHERE id = $1::bigint"
                     "   AND revoked_at IS NULL RETURNING *),"
                     " a AS (INSERT INTO audit_log (actor, action, object, before, after)"
                     "   SELECT $2, 'key.revoke', 'key:' || k.id, to_jsonb(old) - 'key_sha256',"
                     "   to_jsonb(k) - 'key_sha256' FROM k, old)"
                     " SELECT k.display_prefix FROM k"
                     " UNION ALL SELECT NULL FROM old WHERE old.revoked_at IS NOT NULL",
                     2, NULL, params, NULL, NULL, 0);
    int rc = CTL_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res, "key revoke failed");
        rc = CTL_FAIL;
    } else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        printf("revoked key %s (id %s); running gateways refuse it within a second\n",
               PQgetvalue(res, 0, 0), idtext);
    } else {
        printf("key id %s was already revoked; nothing changed\n", idtext);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
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
