/* gw_key_admin: team and API-key administration shared by tollgatectl and
 * the admin HTTP API: key generation, value checks, lookups, and the writes
 * that carry their own audit_log rows. See gw_key_admin.h. */
#include "gw_key_admin.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_keystore.h"
#include "gw_pgconn.h"
#include "rt_route.h"

int gw_key_generate(char key[GW_KEY_LEN + 1], char display[GW_KEY_DISPLAY_LEN + 1], char *err,
                    size_t errlen)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[GW_KEY_RANDOM_BYTES + 1] = {0}; /* one spare zero byte for the tail */
    if (RAND_bytes(raw, GW_KEY_RANDOM_BYTES) != 1) {
        char msg[256];
        ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
        snprintf(err, errlen, "OpenSSL could not generate random bytes: %s", msg);
        return -1;
    }
    size_t o = strlen(GW_KEY_PREFIX);
    memcpy(key, GW_KEY_PREFIX, o);
    /* 32 bytes = 10 groups of 3 plus 2 bytes: 40 + 3 characters. */
    for (size_t i = 0; i < GW_KEY_RANDOM_BYTES; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8;
        if (i + 2 < GW_KEY_RANDOM_BYTES)
            v |= raw[i + 2];
        size_t chars = GW_KEY_RANDOM_BYTES - i >= 3 ? 4 : GW_KEY_RANDOM_BYTES - i + 1;
        for (size_t c = 0; c < chars; c++)
            key[o++] = b64url[(v >> (18 - 6 * c)) & 63];
    }
    key[o] = '\0';
    memcpy(display, key, GW_KEY_DISPLAY_LEN);
    display[GW_KEY_DISPLAY_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return o == GW_KEY_LEN ? 0 : -1;
}

/* ---- values ---------------------------------------------------------------- */

int gw_key_team_name_check(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    bool ok = n >= 1 && n <= 64 && isalnum((unsigned char)name[0]);
    for (size_t i = 1; ok && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = isalnum(c) || c == '_' || c == '.' || c == '-';
    }
    if (!ok) {
        snprintf(err, errlen,
                 "invalid team name '%.80s': use 1 to 64 characters, letters, digits, '_', '.' "
                 "or '-', starting with a letter or digit",
                 name);
        return -1;
    }
    return 0;
}

int gw_key_models_check(const char *opt, const char *list, char *err, size_t errlen)
{
    size_t total = strlen(list);
    if (total == 0 || total > 1023) {
        snprintf(err, errlen,
                 "invalid %s: give 1 to 1023 characters of comma-separated model names (leave "
                 "%s out to allow every model)",
                 opt, opt);
        return -1;
    }
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 127) {
            snprintf(err, errlen,
                     "invalid %s '%.200s': each model name must have 1 to 127 characters (no "
                     "empty entries)",
                     opt, list);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!(isalnum(c) || strchr("._:/@+-", c))) {
                snprintf(err, errlen,
                         "invalid %s '%.200s': model names may hold letters, digits and ._:/@+- "
                         "only",
                         opt, list);
                return -1;
            }
        }
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

int gw_key_label_check(const char *opt, const char *label, char *err, size_t errlen)
{
    size_t n = strlen(label);
    bool ok = n >= 1 && n <= 200;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)label[i] >= 0x20 && label[i] != 0x7f;
    if (!ok) {
        snprintf(err, errlen, "invalid %s: give 1 to 200 characters, no control characters", opt);
        return -1;
    }
    return 0;
}

int gw_key_expiry_parse(const char *opt, const char *text, int64_t now_us, int64_t *out_us,
                        char *err, size_t errlen)
{
    if (gw_price_instant_parse(opt, text, out_us, err, errlen) != 0)
        return -1;
    if (*out_us <= now_us) {
        snprintf(err, errlen, "%s %.64s is in the past: the key would never work", opt, text);
        return -1;
    }
    return 0;
}

/* ---- routing values ------------------------------------------------------------ */

enum { KR_ALLOW, KR_DENY, KR_LATENCY, KR_COST, KR_PREF, KR_N };

/* Each value's name and the word that clears it, per naming. */
static const char *const kr_names[2][KR_N][2] = {
    {{"--allow-providers", "'all'"},
     {"--deny-providers", "'none'"},
     {"--latency-target-ms", "'none'"},
     {"--max-cost", "'none'"},
     {"--preference", "'none'"}},
    {{"allow_providers", "null"},
     {"deny_providers", "null"},
     {"latency_target_ms", "null"},
     {"max_cost", "null"},
     {"preference", "null"}},
};

bool gw_key_route_any(const gw_key_route_t *kr)
{
    return kr->set_allow || kr->set_deny || kr->set_latency || kr->set_cost || kr->set_pref ||
           kr->set_private;
}

/* Formats "invalid NAME: why (or CLEAR)" for value v and names it. */
static int kr_invalid(gw_key_names_t names, int v, const char *why, const char **param, char *err,
                      size_t errlen)
{
    *param = kr_names[names][v][0];
    snprintf(err, errlen, "invalid %s: %s (or %s)", kr_names[names][v][0], why,
             kr_names[names][v][1]);
    return -1;
}

int gw_key_route_check(gw_key_route_t *kr, gw_key_names_t names, const char **param, char *err,
                       size_t errlen)
{
    char why[200];
    *param = NULL;
    kr->latency_ms[0] = '\0';
    if (kr->set_allow && kr->allow && rt_parse_providers(kr->allow, why, sizeof why) != 0)
        return kr_invalid(names, KR_ALLOW, why, param, err, errlen);
    if (kr->set_deny && kr->deny && rt_parse_providers(kr->deny, why, sizeof why) != 0)
        return kr_invalid(names, KR_DENY, why, param, err, errlen);
    if (kr->set_allow && kr->allow && kr->set_deny && kr->deny) {
        for (const char *p = kr->deny; *p;) {
            size_t len = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            if (rt_provider_list_has(kr->allow, name)) {
                *param = kr_names[names][KR_DENY][0];
                snprintf(err, errlen,
                         "provider '%s' is both allowed and denied: leave it out of one list",
                         name);
                return -1;
            }
            p += len + (p[len] == ',');
        }
    }
    if (kr->set_latency && kr->latency) {
        int64_t ms;
        if (rt_parse_latency_ms(kr->latency, &ms, why, sizeof why) != 0)
            return kr_invalid(names, KR_LATENCY, why, param, err, errlen);
        snprintf(kr->latency_ms, sizeof kr->latency_ms, "%" PRId64, ms);
    }
    if (kr->set_cost && kr->cost) {
        pr_pico_t c;
        if (rt_parse_cost(kr->cost, &c, why, sizeof why) != 0)
            return kr_invalid(names, KR_COST, why, param, err, errlen);
        if (c > (pr_pico_t)1000000 * 1000000000000) {
            *param = kr_names[names][KR_COST][0];
            snprintf(err, errlen, "invalid %s: at most 1000000; got '%.40s'",
                     kr_names[names][KR_COST][0], kr->cost);
            return -1;
        }
    }
    if (kr->set_pref && kr->pref) {
        rt_policy_t p;
        if (rt_parse_preference(kr->pref, &p, why, sizeof why) != 0)
            return kr_invalid(names, KR_PREF, why, param, err, errlen);
    }
    return 0;
}

void gw_key_route_unpriced(PGconn *conn, const gw_key_route_t *kr, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *lists[2] = {kr->set_allow ? kr->allow : NULL, kr->set_deny ? kr->deny : NULL};
    size_t o = 0;
    for (int i = 0; i < 2; i++) {
        if (!lists[i])
            continue;
        const char *params[] = {lists[i]};
        PGresult *res =
            PQexecParams(conn,
                         "SELECT p FROM unnest(string_to_array($1, ',')) p"
                         " WHERE NOT EXISTS (SELECT 1 FROM price_cards c WHERE c.provider = p)"
                         "   AND NOT EXISTS (SELECT 1 FROM price_providers q WHERE q.provider = p)",
                         1, NULL, params, NULL, NULL, 0);
        for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK && r < PQntuples(res); r++) {
            int n = snprintf(out + o, outlen - o, "%s%s", o ? "," : "", PQgetvalue(res, r, 0));
            if (n < 0 || (size_t)n >= outlen - o) {
                out[o] = '\0';
                break;
            }
            o += (size_t)n;
        }
        PQclear(res);
    }
}

/* ---- database ----------------------------------------------------------------- */

/* Formats PostgreSQL's refusal of `what` (res NULL: the connection failed)
 * and returns its status: a routing CHECK of 0015 or a value PostgreSQL
 * cannot take (class 22, e.g. text that is not UTF-8) is a bad value (400),
 * a provider both allowed and denied against what is stored a conflict
 * (409), the rest PostgreSQL's problem (503). */
static int ka_refusal(PGconn *conn, const PGresult *res, const char *what, char *err, size_t errlen)
{
    char msg[640];
    /* the primary message only: a DETAIL ("Failing row contains (...)") may
     * quote the whole row, the key's hash included */
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary && *primary)
        snprintf(msg, sizeof msg, "%s", primary);
    else
        gw_pg_message(conn, res, msg, sizeof msg);
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (constraint && !strcmp(constraint, "api_keys_allow_deny_disjoint")) {
        snprintf(err, errlen,
                 "a provider would be both allowed and denied for this key: change the allow "
                 "or the deny list");
        return GW_PA_CONFLICT;
    }
    if (constraint && !strncmp(constraint, "api_keys_", 9) && strstr(constraint, "_check")) {
        snprintf(err, errlen,
                 "the database refused a routing value (%s); is the schema migrated "
                 "(tollgatectl migrate)?",
                 constraint);
        return GW_PA_INVALID;
    }
    if (state && !strncmp(state, "22", 2)) { /* data exception: e.g. text not valid UTF-8 */
        snprintf(err, errlen, "%s: PostgreSQL refused a value: %s", what, msg);
        return GW_PA_INVALID;
    }
    bool schema = state && (!strcmp(state, "42P01") || !strcmp(state, "42703"));
    snprintf(err, errlen, "%s failed: %s%s", what, msg,
             schema ? " (is the schema migrated? run: tollgatectl migrate)" : "");
    return GW_PA_UNAVAILABLE;
}

/* Runs a statement that returns rows; NULL with the refusal's status. */
static PGresult *ka_exec(PGconn *conn, const char *what, const char *sql, int n,
                         const char *const *params, int *status, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *status = ka_refusal(conn, res, what, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

int gw_key_team_create(PGconn *conn, const char *actor, const char *name, bool private_team,
                       int64_t *id_out, char *err, size_t errlen)
{
    if (gw_key_team_name_check(name, err, errlen) != 0)
        return GW_PA_INVALID;
    const char *params[] = {name, private_team ? "t" : "f", actor};
    /* One statement: the team and its audit row commit together. */
    PGresult *res = PQexecParams(
        conn,
        "WITH t AS (INSERT INTO teams (name, private) VALUES ($1, $2::boolean) RETURNING *),"
        " a AS (INSERT INTO audit_log (actor, action, object, after)"
        "       SELECT $3, 'team.create', 'team:' || t.name, to_jsonb(t) FROM t)"
        " SELECT id FROM t",
        3, NULL, params, NULL, NULL, 0);
    int st = GW_PA_OK;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        *id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else if (state && !strcmp(state, "23505")) {
        snprintf(err, errlen, "a team named '%s' already exists", name);
        st = GW_PA_CONFLICT;
    } else {
        st = ka_refusal(conn, res, "team create", err, errlen);
    }
    PQclear(res);
    return st;
}

int gw_key_team_find(PGconn *conn, const char *name, int64_t *id_out, char *err, size_t errlen)
{
    const char *params[] = {name};
    int st = GW_PA_OK;
    PGresult *res = ka_exec(conn, "looking the team up", "SELECT id FROM teams WHERE name = $1", 1,
                            params, &st, err, errlen);
    if (res && PQntuples(res) == 0) {
        snprintf(err, errlen, "no team named '%.80s'", name);
        st = GW_PA_NOT_FOUND;
    } else if (res) {
        *id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return st;
}

PGresult *gw_key_teams_select(PGconn *conn, int64_t id, const char *name, int *status, char *err,
                              size_t errlen)
{
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    const char *params[] = {id > 0 ? idtxt : NULL, name};
    return ka_exec(
        conn, "reading teams",
        "SELECT t.id, t.name, t.private,"
        " (SELECT count(*) FROM api_keys k WHERE k.team_id = t.id AND k.revoked_at IS NULL"
        "    AND (k.expires_at IS NULL OR k.expires_at > now())),"
        " (SELECT count(*) FROM api_keys k WHERE k.team_id = t.id),"
        " (extract(epoch FROM t.created_at) * 1000000)::bigint"
        " FROM teams t"
        " WHERE ($1::bigint IS NULL OR t.id = $1) AND ($2::text IS NULL OR t.name = $2)"
        " ORDER BY t.name",
        2, params, status, err, errlen);
}

int gw_key_create(PGconn *conn, const char *actor, const gw_key_spec_t *spec,
                  char key[GW_KEY_LEN + 1], char display[GW_KEY_DISPLAY_LEN + 1], int64_t *id_out,
                  char *err, size_t errlen)
{
    int64_t team_id = 0;
    int st = gw_key_team_find(conn, spec->team, &team_id, err, errlen);
    if (st != GW_PA_OK)
        return st;
    uint8_t hash[GW_KEY_HASH_LEN];
    if (gw_key_generate(key, display, err, errlen) != 0)
        return GW_PA_UNAVAILABLE;
    gw_key_hash(key, strlen(key), hash);
    char team[24], expires[24];
    snprintf(team, sizeof team, "%" PRId64, team_id);
    snprintf(expires, sizeof expires, "%" PRId64, spec->expires_us);
    const gw_key_route_t *kr = &spec->route;
    /* The hash travels as a binary parameter; the clear key never leaves
     * this process but to the caller. */
    const char *params[] = {team,
                            spec->name,
                            (const char *)hash,
                            display,
                            spec->models,
                            spec->expires_us ? expires : NULL,
                            actor,
                            kr->set_private && kr->private_on ? "t" : "f",
                            kr->set_allow ? kr->allow : NULL,
                            kr->set_deny ? kr->deny : NULL,
                            kr->set_latency && kr->latency_ms[0] ? kr->latency_ms : NULL,
                            kr->set_cost ? kr->cost : NULL,
                            kr->set_pref ? kr->pref : NULL};
    int lengths[] = {0, 0, GW_KEY_HASH_LEN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int formats[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    /* Without routing values or the cache the columns of 0014 and 0015 are
     * left to their defaults, so that a key can be made on an older schema. */
    bool routing = gw_key_route_any(kr);
    char sql[1200];
    snprintf(sql, sizeof sql,
             "WITH k AS (INSERT INTO api_keys (team_id, name, key_sha256, display_prefix, models,"
             "   expires_at%s%s) VALUES ($1::bigint, $2, $3::bytea, $4, string_to_array($5, ','),"
             "   timestamptz 'epoch' + $6::bigint * interval '1 microsecond'%s%s) RETURNING *),"
             " a AS (INSERT INTO audit_log (actor, action, object, after)"
             "   SELECT $7, 'key.create', 'key:' || k.id, to_jsonb(k) - 'key_sha256' FROM k)"
             " SELECT id FROM k",
             routing ? ", private, allow_providers, deny_providers, latency_target_ms, max_cost,"
                       "   route_preference"
                     : "",
             spec->response_cache ? ", response_cache" : "",
             routing
                 ? ", $8::bool, string_to_array($9::text, ','), string_to_array($10::text, ','),"
                   "   $11::integer, $12::numeric, $13::text"
                 : "",
             spec->response_cache ? ", true" : "");
    PGresult *res = PQexecParams(conn, sql, routing ? 13 : 7, NULL, params, lengths, formats, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        *id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else {
        st = ka_refusal(conn, res, "key create", err, errlen);
        OPENSSL_cleanse(key, GW_KEY_LEN + 1);
    }
    PQclear(res);
    return st;
}

int gw_key_find(PGconn *conn, const char *ref, int64_t *id_out, char *err, size_t errlen)
{
    bool digits = ref[0] != '\0' && strlen(ref) <= 18;
    for (const char *p = ref; digits && *p; p++)
        digits = isdigit((unsigned char)*p);
    const char *params[] = {ref};
    int st = GW_PA_OK;
    PGresult *res = ka_exec(conn, "looking the key up",
                            digits ? "SELECT id FROM api_keys WHERE id = $1::bigint"
                                   : "SELECT id FROM api_keys WHERE display_prefix = $1"
                                     " ORDER BY id",
                            1, params, &st, err, errlen);
    if (res && PQntuples(res) == 0) {
        snprintf(err, errlen, "no key with %s '%.64s'", digits ? "id" : "display prefix", ref);
        st = GW_PA_NOT_FOUND;
    } else if (res && PQntuples(res) > 1) {
        snprintf(err, errlen, "%d keys have the display prefix '%.64s'; give the id",
                 PQntuples(res), ref);
        st = GW_PA_CONFLICT;
    } else if (res) {
        *id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return st;
}

/* The provider lists of 0015 through jsonb, so that an older schema lists. */
#define KA_LIST(col)                                                                               \
    " (SELECT string_agg(x, ',' ORDER BY n) FROM jsonb_array_elements_text("                       \
    "   CASE WHEN jsonb_typeof(j -> '" col "') = 'array' THEN j -> '" col "' END)"                 \
    "   WITH ORDINALITY AS e(x, n))"

PGresult *gw_key_select(PGconn *conn, const char *team, int64_t id, int *status, char *err,
                        size_t errlen)
{
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    const char *params[] = {team, id > 0 ? idtxt : NULL};
    return ka_exec(
        conn, "reading keys",
        "SELECT k.id, t.name, k.display_prefix, k.name, array_to_string(k.models, ','),"
        " (extract(epoch FROM k.expires_at) * 1000000)::bigint,"
        " CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'"
        "      WHEN k.expires_at <= now() THEN 'expired' ELSE 'active' END,"
        " (extract(epoch FROM k.created_at) * 1000000)::bigint,"
        " (extract(epoch FROM k.revoked_at) * 1000000)::bigint,"
        " COALESCE((j ->> 'response_cache')::boolean, false),"
        " COALESCE((j ->> 'private')::boolean, false)," KA_LIST("allow_providers") "," KA_LIST(
            "deny_providers") ","
                              " j ->> 'latency_target_ms', j ->> 'max_cost', j ->> "
                              "'route_preference', k.team_id"
                              " FROM api_keys k JOIN teams t ON t.id = k.team_id,"
                              " LATERAL (SELECT to_jsonb(k) - 'key_sha256' AS j) s"
                              " WHERE ($1::text IS NULL OR t.name = $1) AND ($2::bigint IS NULL OR "
                              "k.id = $2)"
                              " ORDER BY k.id",
        2, params, status, err, errlen);
}

int gw_key_revoke(PGconn *conn, const char *actor, int64_t id, bool *changed, char *err,
                  size_t errlen)
{
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    const char *params[] = {idtext, actor};
    int st = GW_PA_OK;
    /* All parts of the statement see the row as it was before the UPDATE,
     * so `old` is the before image for the audit row. */
    PGresult *res =
        ka_exec(conn, "key revoke",
                "WITH old AS (SELECT * FROM api_keys WHERE id = $1::bigint),"
                " k AS (UPDATE api_keys SET revoked_at = now() WHERE id = $1::bigint"
                "   AND revoked_at IS NULL RETURNING *),"
                " a AS (INSERT INTO audit_log (actor, action, object, before, after)"
                "   SELECT $2, 'key.revoke', 'key:' || k.id, to_jsonb(old) - 'key_sha256',"
                "   to_jsonb(k) - 'key_sha256' FROM k, old)"
                " SELECT true FROM k"
                /* not revoked by this statement: already revoked, also by a
                 * concurrent revoke that committed while this one waited */
                " UNION ALL SELECT false FROM old WHERE NOT EXISTS (SELECT 1 FROM k)",
                2, params, &st, err, errlen);
    if (res && PQntuples(res) == 0) {
        snprintf(err, errlen, "no key with id '%s'", idtext);
        st = GW_PA_NOT_FOUND;
    } else if (res) {
        *changed = PQgetvalue(res, 0, 0)[0] == 't';
    }
    PQclear(res);
    return st;
}

/* Runs one audited UPDATE of key id inside the open transaction; false with
 * the status when it failed or changed no row. */
static bool ka_update_one(PGconn *conn, const char *what, const char *sql, int n,
                          const char *const *params, int *st, char *err, size_t errlen)
{
    PGresult *res = ka_exec(conn, what, sql, n, params, st, err, errlen);
    if (res && strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        snprintf(err, errlen, "no key with id '%s'", params[0]);
        *st = GW_PA_NOT_FOUND;
    }
    PQclear(res);
    return *st == GW_PA_OK;
}

int gw_key_update(PGconn *conn, const char *actor, int64_t id, const gw_key_route_t *kr, int cache,
                  char *err, size_t errlen)
{
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    int st = GW_PA_OK;
    PGresult *res = PQexec(conn, "BEGIN");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = ka_refusal(conn, res, "key update", err, errlen);
    PQclear(res);
    if (st != GW_PA_OK)
        return st;
    bool ok = true;
    if (gw_key_route_any(kr)) {
        const char *t = "t", *f = "f";
        const char *params[] = {idtext,
                                kr->set_allow ? t : f,
                                kr->set_allow ? kr->allow : NULL,
                                kr->set_deny ? t : f,
                                kr->set_deny ? kr->deny : NULL,
                                kr->set_latency ? t : f,
                                kr->latency_ms[0] ? kr->latency_ms : NULL,
                                kr->set_cost ? t : f,
                                kr->set_cost ? kr->cost : NULL,
                                kr->set_pref ? t : f,
                                kr->set_pref ? kr->pref : NULL,
                                kr->set_private ? t : f,
                                kr->private_on ? t : f,
                                actor};
        /* `old` is the row before the UPDATE: the audit row's before image. */
        ok = ka_update_one(
            conn, "key route",
            "WITH old AS (SELECT * FROM api_keys WHERE id = $1::bigint),"
            " k AS (UPDATE api_keys SET"
            "   allow_providers = CASE WHEN $2::bool THEN string_to_array($3::text, ',')"
            "     ELSE allow_providers END,"
            "   deny_providers = CASE WHEN $4::bool THEN string_to_array($5::text, ',')"
            "     ELSE deny_providers END,"
            "   latency_target_ms = CASE WHEN $6::bool THEN $7::integer"
            "     ELSE latency_target_ms END,"
            "   max_cost = CASE WHEN $8::bool THEN $9::numeric ELSE max_cost END,"
            "   route_preference = CASE WHEN $10::bool THEN $11::text ELSE route_preference END,"
            "   private = CASE WHEN $12::bool THEN $13::bool ELSE private END"
            "   WHERE id = $1::bigint RETURNING *),"
            " a AS (INSERT INTO audit_log (actor, action, object, before, after)"
            "   SELECT $14, 'key.route', 'key:' || k.id, to_jsonb(old) - 'key_sha256',"
            "   to_jsonb(k) - 'key_sha256' FROM k, old)"
            " SELECT count(*) FROM k",
            14, params, &st, err, errlen);
    }
    if (ok && cache >= 0) {
        const char *params[] = {idtext, cache ? "true" : "false", actor};
        ok =
            ka_update_one(conn, "setting the response cache",
                          "WITH old AS (SELECT * FROM api_keys WHERE id = $1::bigint),"
                          " k AS (UPDATE api_keys SET response_cache = $2::boolean"
                          "   WHERE id = $1::bigint RETURNING *),"
                          " a AS (INSERT INTO audit_log (actor, action, object, before, after)"
                          "   SELECT $3, 'key.response_cache', 'key:' || k.id,"
                          "   to_jsonb(old) - 'key_sha256', to_jsonb(k) - 'key_sha256' FROM k, old)"
                          " SELECT count(*) FROM k",
                          3, params, &st, err, errlen);
    }
    res = PQexec(conn, ok ? "COMMIT" : "ROLLBACK");
    if (ok && PQresultStatus(res) != PGRES_COMMAND_OK)
        st = ka_refusal(conn, res, "key update", err, errlen);
    PQclear(res);
    return st;
}
