/* gw_admin_http: request and answer pieces shared by the admin HTTP APIs
 * (gw_admin_prices.c, gw_admin_budgets.c, gw_admin_keys.c); see
 * gw_admin_http.h. */
#include "gw_admin_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "gw_http.h"
#include "gw_pgconn.h"
#include "pr_book.h"
#include "tg_log.h"

#define GW_ADMIN_CONNECT_TIMEOUT_S 3

void gw_admin_fail(struct evhttp_request *req, int status, const char *param, const char *msg)
{
    const char *code = status == 404   ? "not_found"
                       : status == 409 ? "conflict"
                       : status == 413 ? "body_too_large"
                       : status == 503 ? "database_unavailable"
                                       : "invalid_value";
    gw_http_send_error(req, status, status >= 500 ? "api_error" : "invalid_request_error", code,
                       param, "%s", msg);
}

void gw_admin_reply(struct evhttp_request *req, int status, cJSON *json)
{
    gw_http_send_json(req, status, json);
    cJSON_Delete(json);
}

PGconn *gw_admin_connect(const char *conninfo, struct evhttp_request *req, const char *api)
{
    char err[512], msg[640];
    PGconn *conn = gw_pg_connect(conninfo, GW_ADMIN_CONNECT_TIMEOUT_S, err, sizeof err);
    if (conn) {
        /* The admin handlers block the main loop (signals, /healthz): a row
         * locked by a migration or a long transaction must not hold it. */
        PGresult *res = PQexec(conn, "SET statement_timeout = '5s'; SET lock_timeout = '2s'");
        bool set = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!set)
            gw_pg_message(conn, res, err, sizeof err);
        PQclear(res);
        if (set)
            return conn;
        PQfinish(conn);
        conn = NULL;
    }
    snprintf(msg, sizeof msg, "%s. Nothing was read or saved; try again.", err);
    tg_warn("%s: %s", api, err);
    gw_admin_fail(req, 503, NULL, msg);
    return NULL;
}

cJSON *gw_admin_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > GW_ADMIN_MAX_BODY) {
        gw_admin_fail(req, 413, NULL, "The request body is too large (64 KiB at most).");
        return NULL;
    }
    const char *bytes = n ? (const char *)evbuffer_pullup(in, (ev_ssize_t)n) : "";
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(bytes, n, &end, false);
    while (j && end && end < bytes + n && strchr(" \t\r\n", *end))
        end++;
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        gw_admin_fail(req, 400, NULL,
                      "The body must be a JSON object; it could not be parsed as one. Nothing "
                      "was saved.");
        return NULL;
    }
    if (end != bytes + n) {
        cJSON_Delete(j);
        gw_admin_fail(req, 400, NULL,
                      "The body must be a JSON object with nothing after it. Nothing was saved.");
        return NULL;
    }
    /* a field given twice, or a string with \u0000 (cut short where it is
     * stored), would be taken silently in a form the admin did not mean */
    const char *twice = NULL;
    for (const cJSON *a = j->child; a && !twice; a = a->next)
        for (const cJSON *b = a->next; b && !twice; b = b->next)
            if (a->string && b->string && !strcmp(a->string, b->string))
                twice = a->string;
    if (twice || memmem(bytes, n, "\\u0000", 6)) {
        char msg[128];
        if (twice)
            snprintf(msg, sizeof msg, "The field '%.64s' is given twice. Nothing was saved.",
                     twice);
        else
            snprintf(msg, sizeof msg, "Strings may not contain \\u0000. Nothing was saved.");
        cJSON_Delete(j);
        gw_admin_fail(req, 400, NULL, msg);
        return NULL;
    }
    return j;
}

const char *gw_admin_actor(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "x-tollgate-actor");
    size_t n = a ? strlen(a) : 0;
    bool ok = n > 0 && n <= GW_ADMIN_ACTOR_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)a[i] >= 0x20 && a[i] != 0x7f;
    if (!ok) {
        gw_http_send_error(req, 400, "invalid_request_error", "missing_actor", "x-tollgate-actor",
                           "Writes need the header 'x-tollgate-actor: NAME' (who makes the "
                           "change, 1 to %d characters) for the audit log. Nothing was saved.",
                           GW_ADMIN_ACTOR_MAX);
        return NULL;
    }
    return a;
}

void gw_admin_add_instant(cJSON *o, const char *name, int64_t us)
{
    char buf[40];
    if (us == PR_FOREVER)
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddStringToObject(o, name, pr_instant_format(us, buf, sizeof buf));
}
