/* gw_admin_prices: the price administration API on the admin listener
 * (docs/prices-admin.md "Admin HTTP API"): list, history, preview and writes
 * of price cards and discount windows (through gw_price_admin, the same
 * validated and audited transaction as tollgatectl), and the quote of a
 * gateway model before a request is sent (from the live price book). */
#ifndef GW_ADMIN_PRICES_H
#define GW_ADMIN_PRICES_H

#include <event2/http.h>
#include <stdbool.h>

#include "gw_server.h"

/* Whether `path` belongs to this API (/prices, /prices/..., /quote). */
bool gw_admin_prices_owns(const char *path);

/* Answers one authorized admin request for a path it owns. Runs on the main
 * thread; database calls block it briefly (connect timeout 3 s). Every
 * failure is answered with an OpenAI-shaped JSON error. */
void gw_admin_prices_handle(gw_server_t *s, struct evhttp_request *req, const char *path);

#endif
