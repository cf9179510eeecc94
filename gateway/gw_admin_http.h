/* gw_admin_http: the pieces every admin HTTP API on the admin listener
 * shares (prices, budgets and limits): OpenAI-shaped errors with the admin
 * APIs' codes, JSON replies, the PostgreSQL connection per request, the JSON
 * object body of a write, and the x-tollgate-actor header that names who
 * makes a change for the audit log. */
#ifndef GW_ADMIN_HTTP_H
#define GW_ADMIN_HTTP_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdint.h>

struct evhttp_request;

#define GW_ADMIN_MAX_BODY 65536 /* bytes of a write's JSON body */
#define GW_ADMIN_ACTOR_MAX 200  /* characters of x-tollgate-actor */

/* Answers an error: type api_error for 5xx, else invalid_request_error; code
 * not_found (404), conflict (409), body_too_large (413),
 * database_unavailable (503), else invalid_value. */
void gw_admin_fail(struct evhttp_request *req, int status, const char *param, const char *msg);

/* Answers with json (taken: freed here). */
void gw_admin_reply(struct evhttp_request *req, int status, cJSON *json);

/* Connects to PostgreSQL (conninfo, 3 s); NULL after answering 503 and
 * logging the reason under `api` (e.g. "admin prices"). */
PGconn *gw_admin_connect(const char *conninfo, struct evhttp_request *req, const char *api);

/* The JSON object body of a write; NULL after answering 413 (over
 * GW_ADMIN_MAX_BODY) or 400 (not a JSON object). Free with cJSON_Delete. */
cJSON *gw_admin_body(struct evhttp_request *req);

/* Who makes the change, from x-tollgate-actor (1 to GW_ADMIN_ACTOR_MAX
 * printable characters; required for writes); NULL after answering 400. */
const char *gw_admin_actor(struct evhttp_request *req);

/* Adds an instant as RFC 3339 text, or null for an open end (INT64_MAX). */
void gw_admin_add_instant(cJSON *o, const char *name, int64_t us);

#endif
