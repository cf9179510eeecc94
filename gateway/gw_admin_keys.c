/* gw_admin_keys: HTTP handlers for teams and API keys on the admin listener:
 * GET|POST /teams, GET /teams/{id|name}, GET|POST /keys, GET|PATCH|PUT|DELETE
 * /keys/{id|prefix}, POST /keys/{id|prefix}/revoke. Checks and writes go
 * through gw_key_admin (shared with tollgatectl); bodies are read against a
 * table of fields so that a typo or a field that cannot change is refused. */
#include "gw_admin_keys.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "gw_admin_http.h"
#include "gw_http.h"
#include "gw_key_admin.h"
#include "pr_book.h"
#include "tg_log.h"

#define AK_TEXT_MAX 1100 /* bytes of a joined list or a number as text */
#define AK_SEG_MAX 64    /* characters of a path segment (team name, key prefix, id) */

/* ---- answers ------------------------------------------------------------------ */

static const char *ak_method_name(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "other";
    }
}

/* Answers an OpenAI-shaped error and logs it (method, path, status, code,
 * message). code NULL: the admin APIs' code for the status (as
 * gw_admin_fail). */
static void ak_fail(struct evhttp_request *req, int status, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void ak_fail(struct evhttp_request *req, int status, const char *code, const char *param,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msg[0] = (char)toupper((unsigned char)msg[0]); /* gw_key_admin's messages are clauses */
    if (!code)
        code = status == 404   ? "not_found"
               : status == 409 ? "conflict"
               : status >= 500 ? "database_unavailable"
                               : "invalid_value";
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    tg_warn("admin keys: %s %.200s refused: %d %s: %s", ak_method_name(req), path ? path : "",
            status, code, msg);
    gw_http_send_error(req, status, status >= 500 ? "api_error" : "invalid_request_error", code,
                       param, "%s", msg);
}

/* Answers a gw_key_admin refusal; `write` adds that nothing was saved. */
static void ak_refused(struct evhttp_request *req, int status, const char *err, bool write)
{
    size_t n = strlen(err);
    ak_fail(req, status >= 400 && status <= 599 ? status : 500, NULL, NULL, "%s%s%s", err,
            n && err[n - 1] == '.' ? "" : ".", write ? " Nothing was saved." : "");
}

/* The actor of a write; NULL after answering 400 (logged). */
static const char *ak_actor(struct evhttp_request *req)
{
    const char *actor = gw_admin_actor(req);
    if (!actor)
        tg_warn("admin keys: %s refused: no valid x-tollgate-actor header", ak_method_name(req));
    return actor;
}

/* The JSON object body of a write; NULL after answering 413 or 400 (logged). */
static cJSON *ak_body(struct evhttp_request *req)
{
    size_t n = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    cJSON *body = gw_admin_body(req);
    if (!body)
        tg_warn("admin keys: %s refused: the body (%zu bytes) is %s", ak_method_name(req), n,
                n > GW_ADMIN_MAX_BODY ? "over 64 KiB" : "not a JSON object");
    return body;
}

/* Adds a comma-separated list column as a JSON array of strings; NULL:
 * `null_as_empty` ? [] : null. */
static void ak_add_list(cJSON *o, const char *name, const PGresult *r, int row, int col,
                        bool null_as_empty)
{
    if (PQgetisnull(r, row, col) && !null_as_empty) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(o, name);
    const char *p = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    while (*p) {
        size_t len = strcspn(p, ",");
        char item[256];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        cJSON_AddItemToArray(arr, cJSON_CreateString(item));
        p += len + (p[len] == ',');
    }
}

static void ak_add_text(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddStringToObject(o, name, PQgetvalue(r, row, col));
}

static void ak_add_when(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
    gw_admin_add_instant(o, name,
                         PQgetisnull(r, row, col) ? PR_FOREVER
                                                  : strtoll(PQgetvalue(r, row, col), NULL, 10));
}

static double ak_num(const PGresult *r, int row, int col)
{
    return (double)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* One row of gw_key_teams_select as JSON. */
static cJSON *ak_team_json(const PGresult *r, int i)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "team");
    cJSON_AddNumberToObject(o, "id", ak_num(r, i, GW_KT_ID));
    cJSON_AddStringToObject(o, "name", PQgetvalue(r, i, GW_KT_NAME));
    cJSON_AddBoolToObject(o, "private", PQgetvalue(r, i, GW_KT_PRIVATE)[0] == 't');
    cJSON_AddNumberToObject(o, "active_keys", ak_num(r, i, GW_KT_ACTIVE_KEYS));
    cJSON_AddNumberToObject(o, "keys", ak_num(r, i, GW_KT_KEYS));
    ak_add_when(o, "created_at", r, i, GW_KT_CREATED_US);
    return o;
}

/* One row of gw_key_select as JSON: never the key or its hash. */
static cJSON *ak_key_json(const PGresult *r, int i)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "api_key");
    cJSON_AddNumberToObject(o, "id", ak_num(r, i, GW_KK_ID));
    cJSON_AddStringToObject(o, "display_prefix", PQgetvalue(r, i, GW_KK_PREFIX));
    cJSON_AddStringToObject(o, "team", PQgetvalue(r, i, GW_KK_TEAM));
    cJSON_AddNumberToObject(o, "team_id", ak_num(r, i, GW_KK_TEAM_ID));
    ak_add_text(o, "name", r, i, GW_KK_NAME);
    cJSON_AddStringToObject(o, "state", PQgetvalue(r, i, GW_KK_STATE));
    ak_add_list(o, "models", r, i, GW_KK_MODELS, false);
    ak_add_when(o, "expires_at", r, i, GW_KK_EXPIRES_US);
    ak_add_when(o, "created_at", r, i, GW_KK_CREATED_US);
    ak_add_when(o, "revoked_at", r, i, GW_KK_REVOKED_US);
    cJSON_AddBoolToObject(o, "response_cache", PQgetvalue(r, i, GW_KK_RESPONSE_CACHE)[0] == 't');
    cJSON_AddBoolToObject(o, "private", PQgetvalue(r, i, GW_KK_PRIVATE)[0] == 't');
    ak_add_list(o, "allow_providers", r, i, GW_KK_ALLOW, false);
    ak_add_list(o, "deny_providers", r, i, GW_KK_DENY, true);
    if (PQgetisnull(r, i, GW_KK_LATENCY_MS))
        cJSON_AddNullToObject(o, "latency_target_ms");
    else
        cJSON_AddNumberToObject(o, "latency_target_ms", ak_num(r, i, GW_KK_LATENCY_MS));
    ak_add_text(o, "max_cost", r, i, GW_KK_MAX_COST);
    ak_add_text(o, "preference", r, i, GW_KK_PREFERENCE);
    return o;
}

/* Adds "warnings": the provider names no price card names, if any. */
static void ak_add_warnings(cJSON *o, const char *unpriced)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "warnings");
    for (const char *p = unpriced; *p;) {
        size_t len = strcspn(p, ",");
        char msg[256];
        snprintf(msg, sizeof msg,
                 "no price card names provider '%.*s' (a typo?); it is stored anyway, and a "
                 "gateway without such a provider never matches it",
                 (int)len, p);
        cJSON_AddItemToArray(arr, cJSON_CreateString(msg));
        p += len + (p[len] == ',');
    }
}

/* ---- bodies ------------------------------------------------------------------- */

typedef enum { AK_STRING, AK_BOOL, AK_INT, AK_LIST } ak_type_t;

/* A field a body may hold: its JSON type, and whether a create (POST) and a
 * change (PATCH/PUT) may give it. */
typedef struct ak_field {
    const char *name;
    ak_type_t type;
    bool on_update;
} ak_field_t;

/* A field as read: present (given, maybe null) and its value as text
 * (strings as given, booleans "t"/"f", numbers in digits, lists joined by
 * commas); text NULL for a JSON null. */
typedef struct ak_value {
    bool present;
    const char *text;
    char buf[AK_TEXT_MAX];
} ak_value_t;

enum {
    KF_TEAM,
    KF_NAME,
    KF_MODELS,
    KF_EXPIRES,
    KF_CACHE,
    KF_PRIVATE,
    KF_ALLOW,
    KF_DENY,
    KF_LATENCY,
    KF_COST,
    KF_PREF,
    KF_N
};

static const ak_field_t ak_key_fields[KF_N] = {
    {"team", AK_STRING, false},          {"name", AK_STRING, false},
    {"models", AK_LIST, false},          {"expires_at", AK_STRING, false},
    {"response_cache", AK_BOOL, true},   {"private", AK_BOOL, true},
    {"allow_providers", AK_LIST, true},  {"deny_providers", AK_LIST, true},
    {"latency_target_ms", AK_INT, true}, {"max_cost", AK_STRING, true},
    {"preference", AK_STRING, true},
};

enum { TF_NAME, TF_PRIVATE, TF_N };

static const ak_field_t ak_team_fields[TF_N] = {{"name", AK_STRING, false},
                                                {"private", AK_BOOL, false}};

/* Lists the names of fields (those a change may give when update) into out. */
static void ak_field_names(const ak_field_t *fields, int n, bool update, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        if (!update || fields[i].on_update)
            o += (size_t)snprintf(out + o, len - o, "%s%s", o ? ", " : "", fields[i].name);
}

/* Joins a JSON array of provider or model names into v->buf. False after
 * answering 400. */
static bool ak_read_list(struct evhttp_request *req, const cJSON *f, ak_value_t *v)
{
    size_t o = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, ',')) {
            ak_fail(req, 400, "invalid_value", f->string,
                    "Field '%s' must be an array of names (non-empty strings without commas), or "
                    "null. Nothing was saved.",
                    f->string);
            return false;
        }
        size_t len = strlen(e->valuestring);
        if (o + len + 2 > sizeof v->buf) {
            ak_fail(req, 400, "invalid_value", f->string,
                    "Field '%s' is too long (%zu bytes of names at most). Nothing was saved.",
                    f->string, sizeof v->buf - 2);
            return false;
        }
        if (o)
            v->buf[o++] = ',';
        memcpy(v->buf + o, e->valuestring, len + 1);
        o += len;
    }
    v->buf[o] = '\0';
    v->text = v->buf; /* an empty array: "" (the checks refuse it where it is wrong) */
    return true;
}

/* Reads body against fields into vals[0..n): unknown fields, fields a change
 * may not give (update) and values of the wrong JSON type are refused. False
 * after answering 400. */
static bool ak_read(struct evhttp_request *req, const cJSON *body, const ak_field_t *fields, int n,
                    bool update, ak_value_t *vals)
{
    char names[400];
    memset(vals, 0, sizeof *vals * (size_t)n);
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        int i = 0;
        while (i < n && strcmp(f->string, fields[i].name) != 0)
            i++;
        ak_field_names(fields, n, update, names, sizeof names);
        if (i == n) {
            char param[65];
            snprintf(param, sizeof param, "%.64s", f->string);
            ak_fail(req, 400, "unknown_field", param,
                    "Unknown field '%s' (the fields are: %s). Nothing was saved.", param, names);
            return false;
        }
        if (update && !fields[i].on_update) {
            ak_fail(req, 400, "immutable_field", f->string,
                    "Field '%s' cannot be changed on an existing key (a change may give: %s); "
                    "create a new key and revoke this one. Nothing was saved.",
                    f->string, names);
            return false;
        }
        ak_value_t *v = &vals[i];
        v->present = true;
        bool ok = true;
        if (cJSON_IsNull(f)) {
            ok = fields[i].type != AK_BOOL;
        } else if (fields[i].type == AK_STRING) {
            ok = cJSON_IsString(f);
            v->text = ok ? f->valuestring : NULL;
        } else if (fields[i].type == AK_BOOL) {
            ok = cJSON_IsBool(f);
            v->text = cJSON_IsTrue(f) ? "t" : "f";
        } else if (fields[i].type == AK_INT) {
            ok = cJSON_IsNumber(f) && f->valuedouble == floor(f->valuedouble) &&
                 fabs(f->valuedouble) < 1e15;
            snprintf(v->buf, sizeof v->buf, "%lld", ok ? (long long)f->valuedouble : 0LL);
            v->text = v->buf;
        } else {
            if (!cJSON_IsArray(f))
                ok = false;
            else if (!ak_read_list(req, f, v))
                return false;
        }
        if (!ok) {
            static const char *const what[] = {[AK_STRING] = "a string or null",
                                               [AK_BOOL] = "true or false",
                                               [AK_INT] = "a whole number or null",
                                               [AK_LIST] = "an array of strings or null"};
            ak_fail(req, 400, "invalid_value", f->string,
                    "Field '%s' must be %s. Nothing was saved.", f->string, what[fields[i].type]);
            return false;
        }
    }
    return true;
}

/* Fills the routing part of kr from vals and checks it. False after
 * answering 400. */
static bool ak_route(struct evhttp_request *req, const ak_value_t *vals, gw_key_route_t *kr)
{
    memset(kr, 0, sizeof *kr);
    kr->set_allow = vals[KF_ALLOW].present;
    kr->allow = vals[KF_ALLOW].text;
    kr->set_deny = vals[KF_DENY].present;
    kr->deny = vals[KF_DENY].text && vals[KF_DENY].text[0] ? vals[KF_DENY].text : NULL;
    kr->set_latency = vals[KF_LATENCY].present;
    kr->latency = vals[KF_LATENCY].text;
    kr->set_cost = vals[KF_COST].present;
    kr->cost = vals[KF_COST].text;
    kr->set_pref = vals[KF_PREF].present;
    kr->pref = vals[KF_PREF].text;
    kr->set_private = vals[KF_PRIVATE].present;
    kr->private_on = vals[KF_PRIVATE].present && vals[KF_PRIVATE].text[0] == 't';
    const char *param;
    char err[512];
    if (gw_key_route_check(kr, GW_KEY_NAMES_JSON, &param, err, sizeof err) != 0) {
        ak_fail(req, 400, "invalid_value", param, "%s. Nothing was saved.", err);
        return false;
    }
    return true;
}

/* ---- queries ------------------------------------------------------------------ */

/* Parses the query string into q (always initialized: evhttp_clear_headers
 * after) and refuses parameters other than `allowed` (NULL: none). False
 * after answering 400. */
static bool ak_query(struct evhttp_request *req, struct evkeyvalq *q, const char *allowed)
{
    TAILQ_INIT(q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && evhttp_parse_query_str(query, q) != 0) {
        ak_fail(req, 400, "invalid_value", NULL, "The query string could not be parsed.");
        return false;
    }
    for (struct evkeyval *kv = TAILQ_FIRST(q); kv; kv = TAILQ_NEXT(kv, next)) {
        if (!allowed || strcmp(kv->key, allowed) != 0) {
            ak_fail(req, 400, "unknown_parameter", kv->key,
                    "Unknown query parameter '%.64s'%s%s%s.", kv->key,
                    allowed ? " (this URL takes: " : " (this URL takes none",
                    allowed ? allowed : "", ")");
            return false;
        }
    }
    return true;
}

/* ---- teams ---------------------------------------------------------------------- */

static void ak_teams_get(gw_server_t *s, struct evhttp_request *req, const char *ref)
{
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn)
        return;
    bool digits = ref && ref[0] && strspn(ref, "0123456789") == strlen(ref) && strlen(ref) <= 18;
    if (digits && strtoll(ref, NULL, 10) <= 0) { /* id 0 would select every team */
        PQfinish(conn);
        ak_fail(req, 404, NULL, NULL, "There is no team with id '%.64s' (see GET /teams).", ref);
        return;
    }
    char err[768];
    int st = GW_PA_OK;
    PGresult *r = gw_key_teams_select(conn, digits ? strtoll(ref, NULL, 10) : 0,
                                      ref && !digits ? ref : NULL, &st, err, sizeof err);
    PQfinish(conn);
    if (!r) {
        ak_refused(req, st, err, false);
    } else if (ref && PQntuples(r) != 1) {
        ak_fail(req, 404, NULL, NULL, "There is no team with %s '%.64s' (see GET /teams).",
                digits ? "id" : "name", ref);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (ref) {
            cJSON_AddItemToObject(o, "team", ak_team_json(r, 0));
        } else {
            cJSON *arr = cJSON_AddArrayToObject(o, "teams");
            for (int i = 0; i < PQntuples(r); i++)
                cJSON_AddItemToArray(arr, ak_team_json(r, i));
        }
        gw_admin_reply(req, 200, o);
    }
    PQclear(r);
}

static void ak_team_create(gw_server_t *s, struct evhttp_request *req)
{
    const char *actor = ak_actor(req);
    cJSON *body = actor ? ak_body(req) : NULL;
    if (!body)
        return;
    ak_value_t v[TF_N];
    char err[768];
    if (!ak_read(req, body, ak_team_fields, TF_N, false, v))
        goto done;
    if (!v[TF_NAME].text) {
        ak_fail(req, 400, "missing_field", "name",
                "Field 'name' (the team's name) is required. Nothing was saved.");
        goto done;
    }
    if (gw_key_team_name_check(v[TF_NAME].text, err, sizeof err) != 0) {
        ak_fail(req, 400, "invalid_value", "name", "%s. Nothing was saved.", err);
        goto done;
    }
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn)
        goto done;
    int64_t id = 0;
    bool priv = v[TF_PRIVATE].present && v[TF_PRIVATE].text[0] == 't';
    int st = gw_key_team_create(conn, actor, v[TF_NAME].text, priv, &id, err, sizeof err);
    PGresult *r = st == GW_PA_OK ? gw_key_teams_select(conn, id, NULL, &st, err, sizeof err) : NULL;
    PQfinish(conn);
    if (!r) {
        ak_refused(req, st, err, true);
    } else if (PQntuples(r) == 1) {
        tg_info("admin: %s created team %s (id %" PRId64 "%s)", actor, v[TF_NAME].text, id,
                priv ? ", private" : "");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "team", ak_team_json(r, 0));
        gw_admin_reply(req, 201, o);
    } else {
        ak_fail(req, 500, NULL, NULL, "The team was created but could not be read back.");
    }
    PQclear(r);
done:
    cJSON_Delete(body);
}

/* ---- keys ----------------------------------------------------------------------- */

/* Resolves ref and answers {"key": ...} with `status`, plus `revoked` when
 * revoked >= 0 and the warnings when unpriced is not NULL. */
static void ak_key_reply(struct evhttp_request *req, PGconn *conn, int64_t id, int status,
                         int revoked, const char *unpriced)
{
    char err[768];
    int st = GW_PA_OK;
    PGresult *r = gw_key_select(conn, NULL, id, &st, err, sizeof err);
    if (!r) {
        ak_refused(req, st, err, false);
    } else if (PQntuples(r) != 1) {
        ak_fail(req, 404, NULL, NULL, "Key %" PRId64 " is gone.", id);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "key", ak_key_json(r, 0));
        if (revoked >= 0)
            cJSON_AddBoolToObject(o, "revoked_now", revoked);
        if (unpriced)
            ak_add_warnings(o, unpriced);
        gw_admin_reply(req, status, o);
    }
    PQclear(r);
}

static void ak_keys_list(gw_server_t *s, struct evhttp_request *req)
{
    struct evkeyvalq q;
    if (!ak_query(req, &q, "team")) {
        evhttp_clear_headers(&q);
        return;
    }
    const char *team = evhttp_find_header(&q, "team");
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn) {
        evhttp_clear_headers(&q);
        return;
    }
    char err[768];
    int64_t team_id;
    int st = team ? gw_key_team_find(conn, team, &team_id, err, sizeof err) : GW_PA_OK;
    PGresult *r = st == GW_PA_OK ? gw_key_select(conn, team, 0, &st, err, sizeof err) : NULL;
    PQfinish(conn);
    if (!r) {
        ak_refused(req, st, err, false);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "keys");
        for (int i = 0; i < PQntuples(r); i++)
            cJSON_AddItemToArray(arr, ak_key_json(r, i));
        gw_admin_reply(req, 200, o);
    }
    PQclear(r);
    evhttp_clear_headers(&q);
}

static void ak_key_get(gw_server_t *s, struct evhttp_request *req, const char *ref)
{
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn)
        return;
    char err[768];
    int64_t id = 0;
    int st = gw_key_find(conn, ref, &id, err, sizeof err);
    if (st != GW_PA_OK)
        ak_refused(req, st, err, false);
    else
        ak_key_reply(req, conn, id, 200, -1, NULL);
    PQfinish(conn);
}

static void ak_key_create(gw_server_t *s, struct evhttp_request *req)
{
    const char *actor = ak_actor(req);
    cJSON *body = actor ? ak_body(req) : NULL;
    if (!body)
        return;
    ak_value_t v[KF_N];
    char err[768];
    gw_key_spec_t spec = {0};
    if (!ak_read(req, body, ak_key_fields, KF_N, false, v) || !ak_route(req, v, &spec.route))
        goto done;
    spec.team = v[KF_TEAM].text;
    spec.models = v[KF_MODELS].text;
    spec.name = v[KF_NAME].text;
    spec.response_cache = v[KF_CACHE].present && v[KF_CACHE].text[0] == 't';
    const char *param = NULL;
    if (!spec.team) {
        ak_fail(req, 400, "missing_field", "team",
                "Field 'team' (the name of the team the key belongs to) is required. Nothing "
                "was saved.");
        goto done;
    }
    if ((gw_key_team_name_check(spec.team, err, sizeof err) != 0 && (param = "team")) ||
        (spec.models && gw_key_models_check("models", spec.models, err, sizeof err) != 0 &&
         (param = "models")) ||
        (spec.name && gw_key_label_check("name", spec.name, err, sizeof err) != 0 &&
         (param = "name")) ||
        (v[KF_EXPIRES].text &&
         gw_key_expiry_parse("expires_at", v[KF_EXPIRES].text, (int64_t)time(NULL) * 1000000,
                             &spec.expires_us, err, sizeof err) != 0 &&
         (param = "expires_at"))) {
        ak_fail(req, 400, "invalid_value", param, "%s. Nothing was saved.", err);
        goto done;
    }
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn)
        goto done;
    char key[GW_KEY_LEN + 1], display[GW_KEY_DISPLAY_LEN + 1], unpriced[512];
    int64_t id = 0;
    gw_key_route_unpriced(conn, &spec.route, unpriced, sizeof unpriced);
    int st = gw_key_create(conn, actor, &spec, key, display, &id, err, sizeof err);
    bool created = st == GW_PA_OK;
    PGresult *r = created ? gw_key_select(conn, NULL, id, &st, err, sizeof err) : NULL;
    PQfinish(conn);
    if (!created) {
        ak_refused(req, st, err, true);
        goto done;
    }
    tg_info("admin: %s created key %s (id %" PRId64 ") for team %s", actor, display, id, spec.team);
    cJSON *o = cJSON_CreateObject();
    if (r && PQntuples(r) == 1) {
        cJSON_AddItemToObject(o, "key", ak_key_json(r, 0));
    } else { /* created, but not read back: the key must still reach its owner */
        tg_warn("admin keys: key %s (id %" PRId64 ") created but not read back: %s", display, id,
                r ? "gone" : err);
        cJSON *k = cJSON_AddObjectToObject(o, "key");
        cJSON_AddNumberToObject(k, "id", (double)id);
        cJSON_AddStringToObject(k, "display_prefix", display);
    }
    cJSON *secret = cJSON_AddStringToObject(o, "secret", key);
    ak_add_warnings(o, unpriced);
    /* the only copy of the key the gateway ever sends: never cached on the way */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    gw_http_send_json(req, 201, o);
    OPENSSL_cleanse(secret->valuestring, strlen(secret->valuestring));
    cJSON_Delete(o);
    PQclear(r);
    OPENSSL_cleanse(key, sizeof key);
done:
    cJSON_Delete(body);
}

static void ak_key_update(gw_server_t *s, struct evhttp_request *req, const char *ref)
{
    const char *actor = ak_actor(req);
    cJSON *body = actor ? ak_body(req) : NULL;
    if (!body)
        return;
    ak_value_t v[KF_N];
    gw_key_route_t kr;
    char err[768], names[400];
    if (!ak_read(req, body, ak_key_fields, KF_N, true, v) || !ak_route(req, v, &kr))
        goto done;
    int cache = v[KF_CACHE].present ? v[KF_CACHE].text[0] == 't' : -1;
    if (!gw_key_route_any(&kr) && cache < 0) {
        ak_field_names(ak_key_fields, KF_N, true, names, sizeof names);
        ak_fail(req, 400, "missing_field", NULL, "Nothing to change: give at least one of %s.",
                names);
        goto done;
    }
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn)
        goto done;
    char unpriced[512];
    int64_t id = 0;
    int st = gw_key_find(conn, ref, &id, err, sizeof err);
    if (st == GW_PA_OK) {
        gw_key_route_unpriced(conn, &kr, unpriced, sizeof unpriced);
        st = gw_key_update(conn, actor, id, &kr, cache, err, sizeof err);
    }
    if (st != GW_PA_OK) {
        ak_refused(req, st, err, true);
    } else {
        bool routing = gw_key_route_any(&kr);
        tg_info("admin: %s changed key %" PRId64 " (%s%s%s)", actor, id, routing ? "routing" : "",
                routing && cache >= 0 ? ", " : "",
                cache < 0 ? ""
                : cache   ? "response cache on"
                          : "response cache off");
        ak_key_reply(req, conn, id, 200, -1, unpriced);
    }
    PQfinish(conn);
done:
    cJSON_Delete(body);
}

static void ak_key_revoke(gw_server_t *s, struct evhttp_request *req, const char *ref)
{
    const char *actor = ak_actor(req);
    if (!actor)
        return;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin keys");
    if (!conn)
        return;
    char err[768];
    int64_t id = 0;
    bool changed = false;
    int st = gw_key_find(conn, ref, &id, err, sizeof err);
    if (st == GW_PA_OK)
        st = gw_key_revoke(conn, actor, id, &changed, err, sizeof err);
    if (st != GW_PA_OK) {
        ak_refused(req, st, err, true);
    } else {
        tg_info("admin: %s %s key %" PRId64, actor, changed ? "revoked" : "re-revoked (no change)",
                id);
        ak_key_reply(req, conn, id, 200, changed, NULL);
    }
    PQfinish(conn);
}

/* ---- dispatch ------------------------------------------------------------------- */

bool gw_admin_keys_owns(const char *path)
{
    return !strcmp(path, "/teams") || !strncmp(path, "/teams/", 7) || !strcmp(path, "/keys") ||
           !strncmp(path, "/keys/", 6);
}

/* Answers 405 naming the methods `allowed` takes (logged). */
static void ak_method_refused(struct evhttp_request *req, const char *path, const char *allowed)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allowed);
    ak_fail(req, 405, "method_not_allowed", NULL, "Use %s for %.200s.", allowed, path);
}

/* Splits "/ROOT[/SEG[/TAIL]]": seg and tail get the parts ("" when absent).
 * False when there are more parts or a part is empty or too long. */
static bool ak_split(const char *path, size_t root, char seg[AK_SEG_MAX + 1],
                     char tail[AK_SEG_MAX + 1])
{
    seg[0] = tail[0] = '\0';
    const char *p = path + root;
    char *out[2] = {seg, tail};
    for (int i = 0; *p; i++) {
        size_t len = strcspn(++p, "/");
        if (i == 2 || len == 0 || len > AK_SEG_MAX)
            return false;
        memcpy(out[i], p, len);
        out[i][len] = '\0';
        p += len;
    }
    return true;
}

/* Whether a path segment can name a team or key: letters, digits, _ . - */
static bool ak_seg_ok(const char *seg)
{
    for (const char *p = seg; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
            return false;
    return true;
}

void gw_admin_keys_handle(gw_server_t *s, struct evhttp_request *req, const char *path)
{
    bool teams = !strncmp(path, "/teams", 6);
    char seg[AK_SEG_MAX + 1], tail[AK_SEG_MAX + 1];
    if (!ak_split(path, teams ? 6 : 5, seg, tail) || (teams && tail[0]) ||
        (tail[0] && strcmp(tail, "revoke") != 0)) {
        ak_fail(req, 404, "unknown_url", NULL,
                "Unknown admin URL: %.200s (see docs/keys-admin.md: /teams, /teams/{id|name}, "
                "/keys, /keys/{id|prefix}, /keys/{id|prefix}/revoke).",
                path);
        return;
    }
    if (seg[0] && !ak_seg_ok(seg)) {
        ak_fail(req, 404, NULL, NULL, "There is no %s '%.64s'.", teams ? "team" : "key", seg);
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct evkeyvalq q;
    if (teams && !seg[0]) {
        if (m == EVHTTP_REQ_GET && ak_query(req, &q, NULL))
            ak_teams_get(s, req, NULL);
        else if (m == EVHTTP_REQ_POST)
            ak_team_create(s, req);
        else if (m != EVHTTP_REQ_GET)
            ak_method_refused(req, path, "GET, POST");
    } else if (teams) {
        if (m == EVHTTP_REQ_GET && ak_query(req, &q, NULL))
            ak_teams_get(s, req, seg);
        else if (m != EVHTTP_REQ_GET)
            ak_method_refused(req, path, "GET");
    } else if (!seg[0]) {
        if (m == EVHTTP_REQ_GET)
            ak_keys_list(s, req);
        else if (m == EVHTTP_REQ_POST)
            ak_key_create(s, req);
        else
            ak_method_refused(req, path, "GET, POST");
        return;
    } else if (tail[0]) {
        if (m == EVHTTP_REQ_POST)
            ak_key_revoke(s, req, seg);
        else
            ak_method_refused(req, path, "POST");
        return;
    } else {
        if (m == EVHTTP_REQ_GET && ak_query(req, &q, NULL))
            ak_key_get(s, req, seg);
        else if (m == EVHTTP_REQ_PATCH || m == EVHTTP_REQ_PUT)
            ak_key_update(s, req, seg);
        else if (m == EVHTTP_REQ_DELETE)
            ak_key_revoke(s, req, seg);
        else if (m != EVHTTP_REQ_GET)
            ak_method_refused(req, path, "GET, PATCH, PUT, DELETE");
    }
    if (m == EVHTTP_REQ_GET)
        evhttp_clear_headers(&q);
}
