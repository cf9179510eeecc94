/* ctl_key_route: the routing rules and defaults of an API key (migration
 * 0015, docs/router.md) as tollgatectl options, shared by "key create" and
 * "key set", and the key lookup the key commands share. The checks and the
 * writes are gw_key_admin's (shared with the admin HTTP API). */
#ifndef CTL_KEY_ROUTE_H
#define CTL_KEY_ROUTE_H

#include "ctl.h"

#include "gw_key_admin.h"

/* The options, in this order: allow-providers, deny-providers,
 * latency-target-ms, max-cost, preference, private, no-private. */
#define CTL_KEY_ROUTE_NOPTS 7

/* Fills opts[0..CTL_KEY_ROUTE_NOPTS) with the options (not present). */
void ctl_key_route_opts(ctl_opt_t *opts);

/* Reads and checks the parsed options into out (its strings point into
 * argv). `all`/`none` clear a list or a default (for "key set"). Returns 0,
 * or -1 with err set (a usage error). */
int ctl_key_route_parse(const ctl_opt_t *opts, gw_key_route_t *out, char *err, size_t errlen);

/* Warns (standard error) about provider names that no price card or price
 * provider of this database names: probably a typo. They are stored anyway
 * (a gateway may have a provider without a card); a gateway that has no such
 * provider never matches the name. */
void ctl_key_route_warn(PGconn *conn, const gw_key_route_t *kr);

/* Resolves ID or DISPLAY_PREFIX to one key id (ctl_key.c). Returns the id, 0
 * when there is no single match (printed, prefixed by cmd), -1 on a database
 * error (printed). */
int64_t ctl_key_find(PGconn *conn, const char *ref, const char *cmd);

/* Formats an instant column (unix microseconds) of res to the second as
 * "YYYY-MM-DDTHH:MM:SSZ", or `none` when it is NULL. Returns buf. */
const char *ctl_key_when(const PGresult *res, int row, int col, const char *none, char *buf,
                         size_t len);

/* "tollgatectl key set ID|PREFIX [options]": changes a key's routing rules
 * and defaults (audited as key.route; running gateways reload at once);
 * with no options, shows them. Returns an exit status. */
int ctl_key_set(ctl_ctx_t *ctx, int argc, char **argv);

extern const char ctl_key_route_usage[]; /* the options' help text */

#endif
