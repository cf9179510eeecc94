/* gw_admin_budgets: HTTP handlers for budgets and rate limits on the admin
 * listener: GET /budgets, GET|PUT|DELETE /budgets/{team}[/keys/{prefix}],
 * GET /budgets/{team}/spend, and the same under /limits. Writes go through
 * gw_govern_admin (shared with tollgatectl; audited by the tables' trigger);
 * running gateways pick them up at their next governance reload (0.5 s).
 * Money is a decimal string plus its integer micro-units. */
#include "gw_admin_budgets.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/time.h>

#include "gw_govern.h"
#include "gw_govern_admin.h"
#include "gw_govern_calc.h"
#include "gw_govern_lua.h"
#include "gw_admin_http.h"
#include "gw_http.h"
#include "gw_pgconn.h"
#include "gw_redis.h"
#include "pr_money.h"
#include "tg_log.h"

#define AB_MAX_SPEND 64 /* budgets of one team read at once */

/* ---- answers ---------------------------------------------------------------- */

/* Adds micro-units as "<name>" (decimal currency units) and "<name>_micro". */
static void ab_add_money(cJSON *o, const char *name, int64_t micro)
{
    char buf[64], key[64];
    pr_pico_format((pr_pico_t)micro * 1000000, 0, buf, sizeof buf);
    cJSON_AddStringToObject(o, name, buf);
    snprintf(key, sizeof key, "%s_micro", name);
    snprintf(buf, sizeof buf, "%" PRId64, micro);
    cJSON_AddStringToObject(o, key, buf);
}

static void ab_add_money_or_null(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
    char key[64];
    if (PQgetisnull(r, row, col)) {
        snprintf(key, sizeof key, "%s_micro", name);
        cJSON_AddNullToObject(o, name);
        cJSON_AddNullToObject(o, key);
    } else {
        ab_add_money(o, name, strtoll(PQgetvalue(r, row, col), NULL, 10));
    }
}

static void ab_add_text_or_null(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddStringToObject(o, name, PQgetvalue(r, row, col));
}

static void ab_add_count_or_null(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddNumberToObject(o, name, (double)strtoll(PQgetvalue(r, row, col), NULL, 10));
}

/* ---- request pieces ------------------------------------------------------------ */

/* Refuses any member of body not in `known` (a typo must not be silently
 * ignored). False after answering 400. */
static bool ab_known_fields(struct evhttp_request *req, const cJSON *body, const char *const *known,
                            const char *list)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(f->string, known[i]);
        if (!ok) {
            char msg[320];
            snprintf(msg, sizeof msg,
                     "Unknown field '%.64s' (the fields are: %s). Nothing was "
                     "saved.",
                     f->string, list);
            gw_admin_fail(req, 400, f->string, msg);
            return false;
        }
    }
    return true;
}

/* A string field (absent or null: *out NULL). False after answering 400. */
static bool ab_string(struct evhttp_request *req, const cJSON *body, const char *name,
                      const char **out, const char *what)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    *out = NULL;
    if (!f || cJSON_IsNull(f))
        return true;
    if (cJSON_IsString(f)) {
        *out = f->valuestring;
        return true;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "Field '%s' must be %s. Nothing was saved.", name, what);
    gw_admin_fail(req, 400, name, msg);
    return false;
}

/* A money field (a decimal string) in micro-units; absent: *out = 0 and
 * *present false. False after answering 400. */
static bool ab_money(struct evhttp_request *req, const cJSON *body, const char *name, int64_t *out,
                     bool *present)
{
    const char *t;
    char err[320], msg[400];
    if (!ab_string(req, body, name, &t,
                   "a decimal string such as \"500\" or \"12.50\" (money "
                   "is never a JSON number)"))
        return false;
    *out = 0;
    *present = t != NULL;
    if (t && gw_gov_amount_parse(name, t, out, err, sizeof err) != 0) {
        snprintf(msg, sizeof msg, "%s. Nothing was saved.", err);
        gw_admin_fail(req, 400, name, msg);
        return false;
    }
    return true;
}

/* A limit: a whole number from 0, or null / absent (0 = no limit). */
static bool ab_count(struct evhttp_request *req, const cJSON *body, const char *name, int64_t *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    *out = 0;
    if (!f || cJSON_IsNull(f))
        return true;
    if (cJSON_IsNumber(f) && f->valuedouble == floor(f->valuedouble) && f->valuedouble >= 0 &&
        f->valuedouble <= (double)GW_GOV_COUNT_MAX) {
        *out = (int64_t)f->valuedouble;
        return true;
    }
    char msg[256];
    snprintf(msg, sizeof msg,
             "Field '%s' must be a whole number from 0 (no limit) to %lld, or "
             "null. Nothing was saved.",
             name, GW_GOV_COUNT_MAX);
    gw_admin_fail(req, 400, name, msg);
    return false;
}

/* ---- paths ------------------------------------------------------------------- */

typedef enum { AB_LIST, AB_TEAM, AB_KEY, AB_SPEND } ab_target_t;

typedef struct ab_path {
    bool limits;
    ab_target_t target;
    char team[65];
    char key[33]; /* AB_KEY: the key's display prefix */
} ab_path_t;

static bool ab_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_'))
            return false;
    return true;
}

/* Splits the path; false after answering 404. */
static bool ab_parse_path(struct evhttp_request *req, const char *path, ab_path_t *out)
{
    memset(out, 0, sizeof *out);
    out->limits = !strncmp(path, "/limits", 7);
    const char *rest = path + (out->limits ? 7 : 8);
    char seg[4][80];
    int n = 0;
    bool ok = true;
    while (*rest == '/' && ok) {
        rest++;
        size_t len = strcspn(rest, "/");
        ok = n < 4 && len > 0 && len < sizeof seg[0];
        if (ok) {
            memcpy(seg[n], rest, len);
            seg[n++][len] = '\0';
        }
        rest += len;
    }
    ok = ok && !*rest;
    if (ok && n == 0) {
        out->target = AB_LIST;
    } else if (ok && n == 1) {
        out->target = AB_TEAM;
    } else if (ok && n == 2 && !out->limits && !strcmp(seg[1], "spend")) {
        out->target = AB_SPEND;
    } else if (ok && n == 3 && !strcmp(seg[1], "keys")) {
        out->target = AB_KEY;
        ok = ab_prefix_ok(seg[2]);
        if (ok)
            snprintf(out->key, sizeof out->key, "%.32s", seg[2]);
    } else {
        ok = false;
    }
    if (ok && n > 0) {
        if (!gw_gov_team_name_ok(seg[0])) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "There is no team named '%.64s' (team names are 1 to 64 "
                     "letters, digits, _ . -).",
                     seg[0]);
            gw_admin_fail(req, 404, NULL, msg);
            return false;
        }
        snprintf(out->team, sizeof out->team, "%.64s", seg[0]);
    }
    if (!ok)
        gw_http_send_error(req, 404, "invalid_request_error", "unknown_url", NULL,
                           "Unknown admin URL: %.200s (see docs/governance.md: /budgets, "
                           "/budgets/TEAM, /budgets/TEAM/spend, /budgets/TEAM/keys/PREFIX, and the "
                           "same under /limits).",
                           path);
    return ok;
}

/* ---- reads ----------------------------------------------------------------------- */

#define AB_BUDGET_SQL                                                                              \
    "SELECT b.id, t.name, k.display_prefix, b.currency, b.period, b.zone, b.hard_micro,"           \
    " b.soft_micro, b.soft_policy, b.downgrades, b.webhook_url,"                                   \
    " (extract(epoch FROM b.updated_at) * 1000000)::bigint, b.updated_by"                          \
    " FROM budgets b JOIN teams t ON t.id = b.team_id LEFT JOIN api_keys k ON k.id = b.key_id"     \
    " WHERE ($1::text IS NULL OR t.name = $1) AND ($2::text IS NULL OR k.display_prefix = $2)"     \
    "   AND ($3::bigint IS NULL OR b.id = $3)"                                                     \
    " ORDER BY t.name, b.key_id NULLS FIRST"

#define AB_LIMIT_SQL                                                                               \
    "SELECT l.id, t.name, k.display_prefix, l.requests_per_minute, l.tokens_per_minute,"           \
    " l.concurrent, (extract(epoch FROM l.updated_at) * 1000000)::bigint, l.updated_by"            \
    " FROM rate_limits l JOIN teams t ON t.id = l.team_id"                                         \
    " LEFT JOIN api_keys k ON k.id = l.key_id"                                                     \
    " WHERE ($1::text IS NULL OR t.name = $1) AND ($2::text IS NULL OR k.display_prefix = $2)"     \
    "   AND ($3::bigint IS NULL OR l.id = $3)"                                                     \
    " ORDER BY t.name, l.key_id NULLS FIRST"

static cJSON *ab_budget_json(const PGresult *r, int i)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)strtoll(PQgetvalue(r, i, 0), NULL, 10));
    cJSON_AddStringToObject(o, "team", PQgetvalue(r, i, 1));
    ab_add_text_or_null(o, "key", r, i, 2);
    cJSON_AddStringToObject(o, "currency", PQgetvalue(r, i, 3));
    cJSON_AddStringToObject(o, "period", PQgetvalue(r, i, 4));
    cJSON_AddStringToObject(o, "zone", PQgetvalue(r, i, 5));
    ab_add_money_or_null(o, "hard", r, i, 6);
    ab_add_money_or_null(o, "soft", r, i, 7);
    cJSON_AddStringToObject(o, "policy", PQgetvalue(r, i, 8));
    cJSON_AddStringToObject(o, "downgrades", PQgetvalue(r, i, 9));
    ab_add_text_or_null(o, "webhook", r, i, 10);
    gw_admin_add_instant(o, "updated_at", strtoll(PQgetvalue(r, i, 11), NULL, 10));
    ab_add_text_or_null(o, "updated_by", r, i, 12);
    return o;
}

static cJSON *ab_limit_json(const PGresult *r, int i)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)strtoll(PQgetvalue(r, i, 0), NULL, 10));
    cJSON_AddStringToObject(o, "team", PQgetvalue(r, i, 1));
    ab_add_text_or_null(o, "key", r, i, 2);
    ab_add_count_or_null(o, "rpm", r, i, 3);
    ab_add_count_or_null(o, "tpm", r, i, 4);
    ab_add_count_or_null(o, "concurrent", r, i, 5);
    gw_admin_add_instant(o, "updated_at", strtoll(PQgetvalue(r, i, 6), NULL, 10));
    ab_add_text_or_null(o, "updated_by", r, i, 7);
    return o;
}

/* Runs the list query of budgets or limits; NULL after answering 503. */
static PGresult *ab_select(PGconn *conn, struct evhttp_request *req, bool limits, const char *team,
                           const char *key, int64_t id)
{
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    const char *p[3] = {team, key, id ? idtxt : NULL};
    PGresult *r =
        PQexecParams(conn, limits ? AB_LIMIT_SQL : AB_BUDGET_SQL, 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char err[512], msg[700];
        gw_pg_message(conn, r, err, sizeof err);
        snprintf(msg, sizeof msg, "Reading %s failed: %s (is the schema migrated?).",
                 limits ? "rate limits" : "budgets", err);
        tg_warn("admin budgets: %s", msg);
        gw_admin_fail(req, 503, NULL, msg);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* GET /budgets[?team=], /budgets/{team}, /budgets/{team}/keys/{p} (and limits). */
static void ab_get(gw_server_t *s, struct evhttp_request *req, const ab_path_t *p)
{
    const char *team = p->target == AB_LIST ? NULL : p->team;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && evhttp_parse_query_str(query, &q) != 0) {
        gw_admin_fail(req, 400, NULL, "The query string could not be parsed.");
        evhttp_clear_headers(&q);
        return;
    }
    if (!team)
        team = evhttp_find_header(&q, "team");
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin budgets");
    if (!conn) {
        evhttp_clear_headers(&q);
        return;
    }
    char err[512];
    int64_t tid, kid;
    int st = team ? gw_gov_scope_resolve(conn, team, p->target == AB_KEY ? p->key : NULL, &tid,
                                         &kid, err, sizeof err)
                  : GW_PA_OK;
    if (st != GW_PA_OK) {
        /* the lookup's message ends "Nothing was saved."; a read saves nothing anyway */
        char *dot = strstr(err, " Nothing was saved.");
        if (dot)
            *dot = '\0';
        gw_admin_fail(req, st, NULL, err);
    } else {
        PGresult *r = ab_select(conn, req, p->limits, team, p->target == AB_KEY ? p->key : NULL, 0);
        if (r && p->target == AB_KEY && PQntuples(r) == 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "The key %s of team '%s' has no %s of its own.", p->key,
                     p->team, p->limits ? "rate limits" : "budget");
            gw_admin_fail(req, 404, NULL, msg);
        } else if (r && p->target == AB_KEY) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, p->limits ? "limits" : "budget",
                                  p->limits ? ab_limit_json(r, 0) : ab_budget_json(r, 0));
            gw_admin_reply(req, 200, o);
        } else if (r) {
            cJSON *o = cJSON_CreateObject();
            cJSON *arr = cJSON_AddArrayToObject(o, p->limits ? "limits" : "budgets");
            for (int i = 0; i < PQntuples(r); i++)
                cJSON_AddItemToArray(arr, p->limits ? ab_limit_json(r, i) : ab_budget_json(r, i));
            gw_admin_reply(req, 200, o);
        }
        PQclear(r);
    }
    PQfinish(conn);
    evhttp_clear_headers(&q);
}

/* ---- writes -------------------------------------------------------------------- */

static const char *const ab_budget_fields[] = {"hard",   "soft",       "currency", "period", "zone",
                                               "policy", "downgrades", "webhook",  NULL};
static const char *const ab_limit_fields[] = {"rpm", "tpm", "concurrent", NULL};

/* Reads and checks a PUT body into *b or *l. False after answering 400. */
static bool ab_put_fields(struct evhttp_request *req, const cJSON *body, bool limits,
                          gw_gov_budget_spec_t *b, gw_gov_limit_spec_t *l)
{
    const char *param;
    char err[400], msg[480];
    int rc;
    if (limits) {
        memset(l, 0, sizeof *l);
        if (!ab_known_fields(req, body, ab_limit_fields, "rpm, tpm, concurrent") ||
            !ab_count(req, body, "rpm", &l->rpm) || !ab_count(req, body, "tpm", &l->tpm) ||
            !ab_count(req, body, "concurrent", &l->concurrent))
            return false;
        rc = gw_gov_limit_check(l, &param, err, sizeof err);
    } else {
        memset(b, 0, sizeof *b);
        bool has_hard, has_soft;
        if (!ab_known_fields(req, body, ab_budget_fields,
                             "hard, soft, currency, period, zone, policy, downgrades, webhook") ||
            !ab_money(req, body, "hard", &b->hard_micro, &has_hard) ||
            !ab_money(req, body, "soft", &b->soft_micro, &has_soft))
            return false;
        if (!has_hard) {
            gw_admin_fail(req, 400, "hard",
                    "Field 'hard' (the hard limit, a decimal string such as "
                    "\"500\") is required. Nothing was saved.");
            return false;
        }
        if (has_soft && b->soft_micro == 0) {
            gw_admin_fail(req, 400, "soft",
                    "soft: the soft threshold must be above zero (leave it "
                    "out for none). Nothing was saved.");
            return false;
        }
        const char *what = "a string";
        if (!ab_string(req, body, "currency", &b->currency, "a string such as \"USD\"") ||
            !ab_string(req, body, "period", &b->period, "\"day\", \"month\" or \"total\"") ||
            !ab_string(req, body, "zone", &b->zone, "an IANA zone name such as \"UTC\"") ||
            !ab_string(req, body, "policy", &b->policy, what) ||
            !ab_string(req, body, "downgrades", &b->downgrades, "a string FROM=TO[,FROM=TO]") ||
            !ab_string(req, body, "webhook", &b->webhook, "a URL string"))
            return false;
        rc = gw_gov_budget_check(b, &param, err, sizeof err);
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s. Nothing was saved.", err);
        gw_admin_fail(req, 400, param, msg);
        return false;
    }
    return true;
}

static void ab_put(gw_server_t *s, struct evhttp_request *req, const ab_path_t *p)
{
    const char *actor = gw_admin_actor(req);
    cJSON *body = actor ? gw_admin_body(req) : NULL;
    if (!body)
        return;
    gw_gov_budget_spec_t b;
    gw_gov_limit_spec_t l;
    if (!ab_put_fields(req, body, p->limits, &b, &l))
        goto done;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin budgets");
    if (!conn)
        goto done;
    const char *key = p->target == AB_KEY ? p->key : NULL;
    char err[1024];
    int64_t id = 0;
    bool created = false;
    int st = p->limits
                 ? gw_gov_limit_put(conn, actor, p->team, key, &l, &id, &created, err, sizeof err)
                 : gw_gov_budget_put(conn, actor, p->team, key, &b, &id, &created, err, sizeof err);
    if (st != GW_PA_OK) {
        gw_admin_fail(req, st, NULL, err);
    } else {
        tg_info("admin: %s %s %s %" PRId64 " of team %s%s%s", actor,
                created ? "created" : "replaced", p->limits ? "rate limits" : "budget", id, p->team,
                key ? " key " : "", key ? key : "");
        PGresult *r = ab_select(conn, req, p->limits, NULL, NULL, id);
        if (r && PQntuples(r) == 1) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, p->limits ? "limits" : "budget",
                                  p->limits ? ab_limit_json(r, 0) : ab_budget_json(r, 0));
            gw_admin_reply(req, created ? 201 : 200, o);
        } else if (r) { /* deleted by someone else in between */
            gw_admin_fail(req, 404, NULL, "Saved, but deleted again before it could be read back.");
        }
        PQclear(r);
    }
    PQfinish(conn);
done:
    cJSON_Delete(body);
}

static void ab_delete(gw_server_t *s, struct evhttp_request *req, const ab_path_t *p)
{
    const char *actor = gw_admin_actor(req);
    if (!actor)
        return;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin budgets");
    if (!conn)
        return;
    const char *key = p->target == AB_KEY ? p->key : NULL;
    char err[1024];
    int64_t id = 0;
    int st = p->limits ? gw_gov_limit_delete(conn, actor, p->team, key, &id, err, sizeof err)
                       : gw_gov_budget_delete(conn, actor, p->team, key, &id, err, sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        gw_admin_fail(req, st, NULL, err);
        return;
    }
    tg_info("admin: %s deleted %s %" PRId64 " of team %s%s%s", actor,
            p->limits ? "rate limits" : "budget", id, p->team, key ? " key " : "", key ? key : "");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "deleted", true);
    cJSON_AddStringToObject(o, "object", p->limits ? "rate_limits" : "budget");
    cJSON_AddNumberToObject(o, "id", (double)id);
    gw_admin_reply(req, 200, o);
}

/* ---- GET /budgets/{team}/spend ---------------------------------------------------- */

typedef struct ab_spend {
    int64_t id, key_id, hard, soft, ledger;
    int64_t redis_spent, redis_held; /* -1: not known */
    char key[33], currency[4], period[8], zone[64], period_id[16];
    int64_t start_s, end_s;
} ab_spend_t;

/* Reads spend and holds of each budget from Redis with governance's own
 * STATUS script (holds past their expiry not counted). Returns 0, or -1 with
 * a message (Redis off, unreachable or answering nonsense). */
static int ab_redis_status(const gw_config_t *cfg, ab_spend_t *b, int n, int64_t now_ms, char *err,
                           size_t errlen)
{
    char host[256];
    int port, db;
    if (!gw_govern_enabled(cfg)) {
        snprintf(err, errlen, "governance is off on this gateway: figures are the ledger's");
        return -1;
    }
    if (gw_redis_url_parse(cfg->redis, host, sizeof host, &port, &db, err, errlen) < 0)
        return -1;
    struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "Redis at %s:%d: %s", host, port, c ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (db) {
        r = redisCommand(c, "SELECT %d", db);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            snprintf(err, errlen, "Redis SELECT %d: %s", db, c->err ? c->errstr : "refused");
            redisFree(c);
            return -1;
        }
    }
    char bkeys[AB_MAX_SPEND][128], nowtxt[24], ntxt[16];
    const char *argv[5 + AB_MAX_SPEND];
    int argc = 0;
    snprintf(nowtxt, sizeof nowtxt, "%" PRId64, now_ms);
    snprintf(ntxt, sizeof ntxt, "%d", n);
    argv[argc++] = "EVAL";
    argv[argc++] = gw_govern_lua[GW_LUA_STATUS];
    argv[argc++] = "0";
    argv[argc++] = nowtxt;
    argv[argc++] = ntxt;
    for (int i = 0; i < n; i++) {
        snprintf(bkeys[i], sizeof bkeys[i], "%s:b:%" PRId64 ":%s", cfg->redis_namespace, b[i].id,
                 b[i].period_id);
        argv[argc++] = bkeys[i];
    }
    r = redisCommandArgv(c, argc, argv, NULL);
    int rc = -1;
    if (!r) {
        snprintf(err, errlen, "Redis: %s", c->errstr);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)(2 * n)) {
        snprintf(err, errlen, "Redis gave an unexpected answer%s%s",
                 r->type == REDIS_REPLY_ERROR ? ": " : "",
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    } else {
        rc = 0;
        for (int i = 0; i < n; i++) {
            b[i].redis_spent = r->element[2 * i]->integer;
            b[i].redis_held = r->element[2 * i + 1]->integer;
        }
    }
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

static void ab_spend(gw_server_t *s, struct evhttp_request *req, const ab_path_t *p)
{
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin budgets");
    if (!conn)
        return;
    char err[512];
    int64_t tid, kid;
    int st = gw_gov_scope_resolve(conn, p->team, NULL, &tid, &kid, err, sizeof err);
    if (st != GW_PA_OK) {
        char *dot = strstr(err, " Nothing was saved.");
        if (dot)
            *dot = '\0';
        gw_admin_fail(req, st, NULL, err);
        PQfinish(conn);
        return;
    }
    char tidtxt[24];
    snprintf(tidtxt, sizeof tidtxt, "%" PRId64, tid);
    const char *params[1] = {tidtxt};
    PGresult *r = PQexecParams(conn,
                               "SELECT b.id, COALESCE(b.key_id, 0), k.display_prefix, b.currency, "
                               "b.period, b.zone, b.hard_micro, COALESCE(b.soft_micro, 0) "
                               "FROM budgets b LEFT JOIN api_keys k ON k.id = b.key_id "
                               "WHERE b.team_id = $1 ORDER BY b.key_id NULLS FIRST LIMIT 64",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[700];
        gw_pg_message(conn, r, err, sizeof err);
        snprintf(msg, sizeof msg, "Reading budgets failed: %s.", err);
        gw_admin_fail(req, 503, NULL, msg);
        PQclear(r);
        PQfinish(conn);
        return;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
    int n = PQntuples(r);
    ab_spend_t *b = calloc((size_t)n + 1, sizeof *b);
    if (!b)
        abort();
    for (int i = 0; i < n && st == GW_PA_OK; i++) {
        b[i].id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        b[i].key_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        snprintf(b[i].key, sizeof b[i].key, "%s", PQgetvalue(r, i, 2));
        snprintf(b[i].currency, sizeof b[i].currency, "%s", PQgetvalue(r, i, 3));
        snprintf(b[i].period, sizeof b[i].period, "%s", PQgetvalue(r, i, 4));
        snprintf(b[i].zone, sizeof b[i].zone, "%s", PQgetvalue(r, i, 5));
        b[i].hard = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        b[i].soft = strtoll(PQgetvalue(r, i, 7), NULL, 10);
        b[i].redis_spent = b[i].redis_held = -1;
        gw_period_t period;
        pr_tz_t *tz = NULL;
        char tzerr[256];
        b[i].start_s = INT64_MIN;
        b[i].end_s = INT64_MAX;
        snprintf(b[i].period_id, sizeof b[i].period_id, "total");
        if (gw_period_parse(b[i].period, &period) < 0 ||
            pr_tz_load(b[i].zone, NULL, &tz, tzerr, sizeof tzerr) < 0) {
            snprintf(err, sizeof err, "budget %" PRId64 " has a bad period or zone (%s/%s)",
                     b[i].id, b[i].period, b[i].zone);
            st = GW_PA_UNAVAILABLE;
            break;
        }
        gw_period_bounds(tz, period, now_us / 1000000, &b[i].start_s, &b[i].end_s, b[i].period_id,
                         sizeof b[i].period_id);
        pr_tz_free(tz);
        st = gw_gov_ledger_micro(conn, tid, b[i].key_id, b[i].currency, b[i].start_s, b[i].end_s,
                                 &b[i].ledger, err, sizeof err);
    }
    PQclear(r);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "Reading the ledger's spend failed: %s.", err);
        gw_admin_fail(req, 503, NULL, msg);
        free(b);
        return;
    }
    char rerr[512] = "";
    bool live = n > 0 && ab_redis_status(s->cfg, b, n, now_us / 1000, rerr, sizeof rerr) == 0;
    if (n > 0 && !live)
        tg_warn("admin budgets: spend of team %s from the ledger only: %s", p->team, rerr);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "tollgate.budget_spend");
    cJSON_AddStringToObject(o, "team", p->team);
    gw_admin_add_instant(o, "at", now_us);
    cJSON_AddBoolToObject(o, "live", live);
    if (n > 0 && !live)
        cJSON_AddStringToObject(o, "message", rerr);
    cJSON *arr = cJSON_AddArrayToObject(o, "budgets");
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", (double)b[i].id);
        cJSON_AddStringToObject(e, "scope", b[i].key_id ? "key" : "team");
        if (b[i].key_id)
            cJSON_AddStringToObject(e, "key", b[i].key);
        else
            cJSON_AddNullToObject(e, "key");
        cJSON_AddStringToObject(e, "currency", b[i].currency);
        cJSON_AddStringToObject(e, "period", b[i].period);
        cJSON_AddStringToObject(e, "zone", b[i].zone);
        cJSON_AddStringToObject(e, "period_id", b[i].period_id);
        gw_admin_add_instant(e, "period_start",
                       b[i].start_s == INT64_MIN ? INT64_MAX : b[i].start_s * 1000000);
        gw_admin_add_instant(e, "period_end", b[i].end_s == INT64_MAX ? INT64_MAX : b[i].end_s * 1000000);
        ab_add_money(e, "hard", b[i].hard);
        if (b[i].soft) {
            ab_add_money(e, "soft", b[i].soft);
        } else {
            cJSON_AddNullToObject(e, "soft");
            cJSON_AddNullToObject(e, "soft_micro");
        }
        /* Redis's spend when it has one (settled charges, rounded up per
         * request); else the ledger's, which Redis is rebuilt from */
        bool from_redis = live && b[i].redis_spent >= 0;
        int64_t spent = from_redis ? b[i].redis_spent : b[i].ledger;
        int64_t held = live ? b[i].redis_held : 0;
        ab_add_money(e, "spent", spent);
        cJSON_AddStringToObject(e, "spent_source", from_redis ? "redis" : "ledger");
        if (live) {
            ab_add_money(e, "held", held);
        } else {
            cJSON_AddNullToObject(e, "held");
            cJSON_AddNullToObject(e, "held_micro");
        }
        ab_add_money(e, "remaining", b[i].hard - spent - held);
        ab_add_money(e, "ledger_spent", b[i].ledger);
        cJSON_AddItemToArray(arr, e);
    }
    free(b);
    gw_admin_reply(req, 200, o);
}

/* ---- dispatch ---------------------------------------------------------------------- */

bool gw_admin_budgets_owns(const char *path)
{
    return !strcmp(path, "/budgets") || !strncmp(path, "/budgets/", 9) ||
           !strcmp(path, "/limits") || !strncmp(path, "/limits/", 8);
}

void gw_admin_budgets_handle(gw_server_t *s, struct evhttp_request *req, const char *path)
{
    ab_path_t p;
    if (!ab_parse_path(req, path, &p))
        return;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    bool writable = p.target == AB_TEAM || p.target == AB_KEY;
    if (m == EVHTTP_REQ_GET) {
        if (p.target == AB_SPEND)
            ab_spend(s, req, &p);
        else
            ab_get(s, req, &p);
    } else if (m == EVHTTP_REQ_PUT && writable) {
        ab_put(s, req, &p);
    } else if (m == EVHTTP_REQ_DELETE && writable) {
        ab_delete(s, req, &p);
    } else {
        gw_http_send_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                           "Use %s for %s.", writable ? "GET, PUT or DELETE" : "GET", path);
    }
}
