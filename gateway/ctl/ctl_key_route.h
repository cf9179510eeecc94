/* ctl_key_route: the routing rules and defaults of an API key (migration
 * 0015, docs/router.md) as tollgatectl options, shared by "key create" and
 * "key set". */
#ifndef CTL_KEY_ROUTE_H
#define CTL_KEY_ROUTE_H

#include "ctl.h"

/* The options, in this order: allow-providers, deny-providers,
 * latency-target-ms, max-cost, preference, private, no-private. */
#define CTL_KEY_ROUTE_NOPTS 7

typedef struct ctl_key_route {
    /* set_*: the option was given; a NULL value then clears the rule or default */
    bool set_allow, set_deny, set_latency, set_cost, set_pref, set_private;
    const char *allow, *deny, *cost, *pref; /* point into argv */
    char latency[16];                       /* the target as digits; "" = clear */
    bool private_on;
} ctl_key_route_t;

/* Fills opts[0..CTL_KEY_ROUTE_NOPTS) with the options (not present). */
void ctl_key_route_opts(ctl_opt_t *opts);

/* Checks the parsed options. `all`/`none` clear a list or a default (for
 * "key set"). Returns 0, or -1 with err set (a usage error). */
int ctl_key_route_parse(const ctl_opt_t *opts, ctl_key_route_t *out, char *err, size_t errlen);

/* Whether any option was given. */
bool ctl_key_route_any(const ctl_key_route_t *kr);

/* Warns (standard error) about provider names that no price card or price
 * provider of this database names: probably a typo. They are stored anyway
 * (a gateway may have a provider without a card); a gateway that has no such
 * provider never matches the name. */
void ctl_key_route_warn(PGconn *conn, const ctl_key_route_t *kr);

/* Prints a friendly message when `res` failed on one of 0015's checks (e.g.
 * a provider both allowed and denied). Returns true if it did. */
bool ctl_key_route_check_failed(const PGresult *res, const char *cmd);

/* Resolves ID or DISPLAY_PREFIX to one key id (ctl_key.c). Returns the id, 0
 * when there is no single match (printed, prefixed by cmd), -1 on a database
 * error (printed). */
int64_t ctl_key_find(PGconn *conn, const char *ref, const char *cmd);

/* "tollgatectl key set ID|PREFIX [options]": changes a key's routing rules
 * and defaults (audited as key.route; running gateways reload at once);
 * with no options, shows them. Returns an exit status. */
int ctl_key_set(ctl_ctx_t *ctx, int argc, char **argv);

extern const char ctl_key_route_usage[]; /* the options' help text */

#endif
