/* ctl_key_cache: "tollgatectl key cache" and the --response-cache option of
 * "key create": turns the response cache on or off for one API key
 * (api_keys.response_cache, migration 0014; docs/response-cache.md). */
#include "ctl_key_cache.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ctl_key_cache_usage[] =
    "usage: tollgatectl key cache ID|DISPLAY_PREFIX on|off\n"
    "\n"
    "Opts the key in to (on) or out of (off) the gateway's response cache:\n"
    "exact repeats of its deterministic requests (temperature 0 or a seed) are\n"
    "answered from the cache when the gateway has response_cache = on. Running\n"
    "gateways pick the change up within a second. A request can still override\n"
    "it with the header x-tollgate-cache: on|off.\n";

int ctl_key_cache_parse(const char *value, bool *on, char *err, size_t errlen)
{
    if (value && !strcmp(value, "on")) {
        *on = true;
        return 0;
    }
    if (value && !strcmp(value, "off")) {
        *on = false;
        return 0;
    }
    snprintf(err, errlen, "the response cache setting must be on or off, got '%s'",
             value ? value : "");
    return -1;
}

int ctl_key_cache_set(PGconn *conn, int64_t id, bool on, const char *actor)
{
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    const char *params[] = {idtext, on ? "true" : "false", actor};
    /* every part of the statement sees the row as it was before the UPDATE */
    PGresult *res =
        PQexecParams(conn,
                     "WITH old AS (SELECT * FROM api_keys WHERE id = $1::bigint),"
                     " k AS (UPDATE api_keys SET response_cache = $2::boolean"
                     "   WHERE id = $1::bigint RETURNING *),"
                     " a AS (INSERT INTO audit_log (actor, action, object, before, after)"
                     "   SELECT $3, 'key.response_cache', 'key:' || k.id,"
                     "   to_jsonb(old) - 'key_sha256', to_jsonb(k) - 'key_sha256' FROM k, old)"
                     " SELECT count(*) FROM k",
                     3, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res,
                     "setting the response cache failed (is the schema migrated? run: "
                     "tollgatectl migrate)");
        rc = -1;
    } else if (strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        ctl_error("key id %s does not exist", idtext);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* Resolves ID or DISPLAY_PREFIX to one key id: > 0, 0 when there is no
 * single match (printed), -1 on a database error (printed). */
static int64_t ctl_key_cache_find(PGconn *conn, const char *ref)
{
    bool digits = ref[0] != '\0' && strlen(ref) <= 18;
    for (const char *p = ref; digits && *p; p++)
        digits = isdigit((unsigned char)*p);
    const char *params[] = {ref};
    PGresult *res = PQexecParams(conn,
                                 digits ? "SELECT id FROM api_keys WHERE id = $1::bigint"
                                        : "SELECT id FROM api_keys WHERE display_prefix = $1",
                                 1, NULL, params, NULL, NULL, 0);
    int64_t id = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_pg_error(conn, res,
                     "cannot look the key up (is the schema migrated? run: "
                     "tollgatectl migrate)");
    } else if (PQntuples(res) != 1) {
        ctl_error("key cache: %s key with %s '%s' (see: tollgatectl key list)",
                  PQntuples(res) ? "more than one" : "no", digits ? "id" : "display prefix", ref);
        id = 0;
    } else {
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return id;
}

int ctl_key_cache_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[2];
    size_t npos;
    bool help;
    if (ctl_args_parse("key cache", argc, argv, NULL, 0, pos, 2, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_key_cache_usage, stdout);
        return CTL_OK;
    }
    bool on;
    char err[160];
    if (npos != 2) {
        ctl_error("key cache: give the key's id or display prefix, then on or off (see: "
                  "tollgatectl key cache --help)");
        return CTL_USAGE;
    }
    if (ctl_key_cache_parse(pos[1], &on, err, sizeof err) != 0) {
        ctl_error("key cache: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t id = ctl_key_cache_find(conn, pos[0]);
    int rc = CTL_FAIL;
    if (id > 0 && ctl_key_cache_set(conn, id, on, ctx->actor) == 0) {
        printf("key id %" PRId64 ": response cache %s; running gateways pick it up within a "
               "second\n",
               id, on ? "on" : "off");
        rc = CTL_OK;
    }
    PQfinish(conn);
    return rc;
}
