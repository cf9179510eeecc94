/* gw_admin_keys: the team and API-key administration API on the admin
 * listener (docs/keys-admin.md): list, read and create teams; list, read,
 * create (the key is in the answer, once), change (routing rules and
 * defaults, response cache) and revoke keys, through gw_key_admin (the same
 * checks and audited statements as tollgatectl team|key). Running gateways
 * pick key changes up through the api_keys trigger's NOTIFY. */
#ifndef GW_ADMIN_KEYS_H
#define GW_ADMIN_KEYS_H

#include <event2/http.h>
#include <stdbool.h>

#include "gw_server.h"

/* Whether `path` belongs to this API (/teams, /teams/..., /keys, /keys/...). */
bool gw_admin_keys_owns(const char *path);

/* Answers one authorized admin request for a path it owns. Runs on the main
 * thread; each request opens its own PostgreSQL connection (connect timeout
 * 3 s) and blocks the admin loop while its statements run. Every refusal is
 * an OpenAI-shaped JSON error and a log line; the clear key is never logged. */
void gw_admin_keys_handle(gw_server_t *s, struct evhttp_request *req, const char *path);

#endif
