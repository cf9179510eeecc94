/* gw_admin_budgets: the budget and rate-limit administration API on the admin
 * listener (docs/governance.md "Admin HTTP API"): list, read, create or
 * replace (PUT) and delete budgets and rate limits per team and per key,
 * through gw_govern_admin (the same checks and audited transaction as
 * tollgatectl), and a team's current spend, holds and remaining budget
 * (Redis's live figures beside the ledger's). */
#ifndef GW_ADMIN_BUDGETS_H
#define GW_ADMIN_BUDGETS_H

#include <event2/http.h>
#include <stdbool.h>

#include "gw_server.h"

/* Whether `path` belongs to this API (/budgets, /budgets/..., /limits,
 * /limits/...). */
bool gw_admin_budgets_owns(const char *path);

/* Answers one authorized admin request for a path it owns. Runs on the main
 * thread; database and Redis calls block it briefly (connect timeout 3 s for
 * PostgreSQL, redis_timeout_ms for Redis). Every failure is answered with an
 * OpenAI-shaped JSON error. */
void gw_admin_budgets_handle(gw_server_t *s, struct evhttp_request *req, const char *path);

#endif
