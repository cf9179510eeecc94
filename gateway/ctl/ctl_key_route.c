/* ctl_key_route: a key's routing rules (private, provider allow and deny
 * lists) and routing defaults (latency target, cost ceiling, preference):
 * their tollgatectl options, and "key set" to change them on an existing
 * key. Checks and writes are gw_key_admin's; the api_keys trigger NOTIFYs
 * running gateways, which reload the key at once, as on a revocation. */
#include "ctl_key_route.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr_book.h"

const char ctl_key_route_usage[] =
    "  --allow-providers LIST   only these providers (comma-separated provider names as in\n"
    "                           the gateway's config); 'all' = every provider (the default)\n"
    "  --deny-providers LIST    never these providers; 'none' = no deny list\n"
    "  --private / --no-private the key may use in-house providers only (or not)\n"
    "  --latency-target-ms N    default latency target (streams: to the first token; else\n"
    "                           the whole answer), 1..3600000; 'none' clears it\n"
    "  --max-cost AMOUNT        default ceiling on a request's expected cost, e.g. 0.002, in\n"
    "                           each provider's price-card currency; 'none' clears it\n"
    "  --preference P           default preference: cheapest, fastest or balanced; 'none'\n"
    "                           = the model's policy\n"
    "Rules (private, allow, deny) bind every request of the key: no request header can\n"
    "widen them. Defaults apply when a request states no need of its own: its\n"
    "x-tollgate-latency-target-ms, x-tollgate-max-cost and x-tollgate-preference headers\n"
    "override them (docs/router.md).\n";

void ctl_key_route_opts(ctl_opt_t *opts)
{
    static const char *const names[CTL_KEY_ROUTE_NOPTS] = {
        "allow-providers", "deny-providers", "latency-target-ms", "max-cost",
        "preference",      "private",        "no-private"};
    for (int i = 0; i < CTL_KEY_ROUTE_NOPTS; i++)
        opts[i] = (ctl_opt_t){names[i], i < 5, false, NULL};
}

/* The value of option o, or NULL when it is the word that clears it. */
static const char *clearable(const ctl_opt_t *o, const char *clear)
{
    return strcmp(o->value, clear) ? o->value : NULL;
}

int ctl_key_route_parse(const ctl_opt_t *opts, gw_key_route_t *kr, char *err, size_t errlen)
{
    memset(kr, 0, sizeof *kr);
    if ((kr->set_allow = opts[0].present))
        kr->allow = clearable(&opts[0], "all");
    if ((kr->set_deny = opts[1].present))
        kr->deny = clearable(&opts[1], "none");
    if ((kr->set_latency = opts[2].present))
        kr->latency = clearable(&opts[2], "none");
    if ((kr->set_cost = opts[3].present))
        kr->cost = clearable(&opts[3], "none");
    if ((kr->set_pref = opts[4].present))
        kr->pref = clearable(&opts[4], "none");
    if (opts[5].present && opts[6].present) {
        snprintf(err, errlen, "--private and --no-private contradict each other: give one");
        return -1;
    }
    if (opts[5].present || opts[6].present) {
        kr->set_private = true;
        kr->private_on = opts[5].present;
    }
    const char *param;
    return gw_key_route_check(kr, GW_KEY_NAMES_CLI, &param, err, errlen);
}

void ctl_key_route_warn(PGconn *conn, const gw_key_route_t *kr)
{
    char names[512];
    gw_key_route_unpriced(conn, kr, names, sizeof names);
    for (const char *p = names; *p;) {
        size_t len = strcspn(p, ",");
        fprintf(stderr,
                "tollgatectl: warning: no price card names provider '%.*s' (a typo?); it is "
                "stored anyway, and a gateway without such a provider never matches it\n",
                (int)len, p);
        p += len + (p[len] == ',');
    }
}

const char *ctl_key_when(const PGresult *res, int row, int col, const char *none, char *buf,
                         size_t len)
{
    if (PQgetisnull(res, row, col)) {
        snprintf(buf, len, "%s", none);
        return buf;
    }
    int64_t us = strtoll(PQgetvalue(res, row, col), NULL, 10);
    us -= ((us % 1000000) + 1000000) % 1000000; /* to the second, as key list always showed */
    return pr_instant_format(us, buf, len);
}

/* The value of column col of res's first row, or `none` when NULL. */
static const char *or_none(const PGresult *res, int col, const char *none)
{
    return PQgetisnull(res, 0, col) ? none : PQgetvalue(res, 0, col);
}

/* Prints a key's routing as `key set` shows it, from a gw_key_select row. */
static void print_route(const PGresult *res)
{
    printf("key %s (id %s)%s\n"
           "  private:           %s\n"
           "  allow providers:   %s\n"
           "  deny providers:    %s\n"
           "  latency target ms: %s\n"
           "  max cost:          %s\n"
           "  preference:        %s\n",
           PQgetvalue(res, 0, GW_KK_PREFIX), PQgetvalue(res, 0, GW_KK_ID),
           PQgetisnull(res, 0, GW_KK_REVOKED_US) ? "" : " (revoked)",
           PQgetvalue(res, 0, GW_KK_PRIVATE)[0] == 't' ? "yes" : "no",
           or_none(res, GW_KK_ALLOW, "all"), or_none(res, GW_KK_DENY, "none"),
           or_none(res, GW_KK_LATENCY_MS, "none"), or_none(res, GW_KK_MAX_COST, "none"),
           or_none(res, GW_KK_PREFERENCE, "none (the model's policy)"));
}

int ctl_key_set(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[CTL_KEY_ROUTE_NOPTS];
    ctl_key_route_opts(opts);
    const char *pos[1];
    size_t npos;
    bool help;
    char err[768];
    if (ctl_args_parse("key set", argc, argv, opts, CTL_KEY_ROUTE_NOPTS, pos, 1, &npos, &help) !=
        0)
        return CTL_USAGE;
    if (help) {
        printf("usage: tollgatectl key set ID|DISPLAY_PREFIX [options]\n\n"
               "Changes the key's routing rules and defaults; with no options, shows them.\n"
               "Running gateways reload the key within a second. Audit action: key.route.\n\n%s",
               ctl_key_route_usage);
        return CTL_OK;
    }
    if (npos != 1) {
        ctl_error("key set: give the key's id or display prefix (see: tollgatectl key list)");
        return CTL_USAGE;
    }
    gw_key_route_t kr;
    if (ctl_key_route_parse(opts, &kr, err, sizeof err) != 0) {
        ctl_error("key set: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t id = ctl_key_find(conn, pos[0], "key set");
    int st = id > 0 ? GW_PA_OK : GW_PA_NOT_FOUND;
    bool change = gw_key_route_any(&kr);
    if (st == GW_PA_OK && change) {
        ctl_key_route_warn(conn, &kr);
        st = gw_key_update(conn, ctx->actor, id, &kr, -1, err, sizeof err);
        if (st != GW_PA_OK)
            ctl_error("key set: %s", err);
    }
    PGresult *res = NULL;
    if (st == GW_PA_OK && !(res = gw_key_select(conn, NULL, id, &st, err, sizeof err)))
        ctl_error("key set: %s", err);
    if (res && PQntuples(res) == 1) {
        print_route(res);
        if (change)
            printf("running gateways apply the change within a second\n");
    } else if (res) {
        ctl_error("key set: key id %" PRId64 " is gone", id);
        st = GW_PA_NOT_FOUND;
    }
    PQclear(res);
    PQfinish(conn);
    return st == GW_PA_OK ? CTL_OK : CTL_FAIL;
}
