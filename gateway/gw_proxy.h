/* gw_proxy: one client request from authentication to its usage row: validate
 * the body, pick the model's providers in order, forward, fail over before the
 * first byte reached the client, relay the answer (whole or as SSE events),
 * read the usage on the way and hand the usage record to the writer. */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <event2/http.h>

#include "gw_server.h"

typedef enum { GW_ENDPOINT_CHAT = 0, GW_ENDPOINT_COMPLETIONS } gw_endpoint_t;

/* Serves POST /v1/chat/completions or /v1/completions on worker w. Always
 * answers the client (now or later) and records one usage row once the key
 * has been authenticated. */
void gw_proxy_handle(gw_worker_t *w, struct evhttp_request *req, gw_endpoint_t endpoint);

/* Serves GET /v1/models: the models this key may use. */
void gw_proxy_list_models(gw_worker_t *w, struct evhttp_request *req);

/* Serves GET /v1/tollgate/budget: the caller's team's budgets (gw_govern). */
void gw_proxy_budget(gw_worker_t *w, struct evhttp_request *req);

/* Ends every exchange still in flight on w (shutdown deadline): upstream
 * requests are cancelled, clients get what they got, and each usage row is
 * written as incomplete. */
void gw_proxy_abort_all(gw_worker_t *w);

#endif
