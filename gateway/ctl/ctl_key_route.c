/* ctl_key_route: a key's routing rules (private, provider allow and deny
 * lists) and routing defaults (latency target, cost ceiling, preference):
 * their tollgatectl options, checks, and "key set" to change them on an
 * existing key. The api_keys trigger NOTIFYs running gateways, which reload
 * the key at once, as on a revocation. */
#include "ctl_key_route.h"

#include "rt_route.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool ctl_key_route_any(const ctl_key_route_t *kr)
{
    return kr->set_allow || kr->set_deny || kr->set_latency || kr->set_cost || kr->set_pref ||
           kr->set_private;
}

/* Checks one provider list option; `clear` is the word that clears it. */
static int check_list(const char *opt, const char *v, const char *clear, const char **out,
                      char *err, size_t errlen)
{
    char why[200];
    if (!strcmp(v, clear)) {
        *out = NULL;
        return 0;
    }
    if (rt_parse_providers(v, why, sizeof why) != 0) {
        snprintf(err, errlen, "invalid --%s: %s (or '%s')", opt, why, clear);
        return -1;
    }
    *out = v;
    return 0;
}

int ctl_key_route_parse(const ctl_opt_t *opts, ctl_key_route_t *kr, char *err, size_t errlen)
{
    char why[200];
    memset(kr, 0, sizeof *kr);
    if (opts[0].present) {
        kr->set_allow = true;
        if (check_list(opts[0].name, opts[0].value, "all", &kr->allow, err, errlen) != 0)
            return -1;
    }
    if (opts[1].present) {
        kr->set_deny = true;
        if (check_list(opts[1].name, opts[1].value, "none", &kr->deny, err, errlen) != 0)
            return -1;
    }
    if (kr->allow && kr->deny) {
        for (const char *p = kr->deny; *p;) {
            size_t len = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            if (rt_provider_list_has(kr->allow, name)) {
                snprintf(err, errlen,
                         "provider '%s' is both allowed and denied: leave it out of one list",
                         name);
                return -1;
            }
            p += len + (p[len] == ',');
        }
    }
    if (opts[2].present) {
        kr->set_latency = true;
        int64_t ms;
        if (strcmp(opts[2].value, "none") != 0) {
            if (rt_parse_latency_ms(opts[2].value, &ms, why, sizeof why) != 0) {
                snprintf(err, errlen, "invalid --latency-target-ms: %s (or 'none')", why);
                return -1;
            }
            snprintf(kr->latency, sizeof kr->latency, "%" PRId64, ms);
        }
    }
    if (opts[3].present) {
        kr->set_cost = true;
        if (strcmp(opts[3].value, "none") != 0) {
            pr_pico_t c;
            if (rt_parse_cost(opts[3].value, &c, why, sizeof why) != 0) {
                snprintf(err, errlen, "invalid --max-cost: %s (or 'none')", why);
                return -1;
            }
            if (c > (pr_pico_t)1000000 * 1000000000000) {
                snprintf(err, errlen, "invalid --max-cost: at most 1000000; got '%s'",
                         opts[3].value);
                return -1;
            }
            kr->cost = opts[3].value;
        }
    }
    if (opts[4].present) {
        kr->set_pref = true;
        rt_policy_t p;
        if (strcmp(opts[4].value, "none") != 0) {
            if (rt_parse_preference(opts[4].value, &p, why, sizeof why) != 0) {
                snprintf(err, errlen, "invalid --preference: %s (or 'none')", why);
                return -1;
            }
            kr->pref = opts[4].value;
        }
    }
    if (opts[5].present && opts[6].present) {
        snprintf(err, errlen, "--private and --no-private contradict each other: give one");
        return -1;
    }
    if (opts[5].present || opts[6].present) {
        kr->set_private = true;
        kr->private_on = opts[5].present;
    }
    return 0;
}

void ctl_key_route_warn(PGconn *conn, const ctl_key_route_t *kr)
{
    const char *lists[2] = {kr->allow, kr->deny};
    for (int i = 0; i < 2; i++) {
        if (!lists[i])
            continue;
        const char *params[] = {lists[i]};
        PGresult *res = PQexecParams(
            conn,
            "SELECT p FROM unnest(string_to_array($1, ',')) p"
            " WHERE NOT EXISTS (SELECT 1 FROM price_cards c WHERE c.provider = p)"
            "   AND NOT EXISTS (SELECT 1 FROM price_providers q WHERE q.provider = p)",
            1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            for (int r = 0; r < PQntuples(res); r++)
                fprintf(stderr,
                        "tollgatectl: warning: no price card names provider '%s' (a typo?); it "
                        "is stored anyway, and a gateway without such a provider never "
                        "matches it\n",
                        PQgetvalue(res, r, 0));
        }
        PQclear(res);
    }
}

bool ctl_key_route_check_failed(const PGresult *res, const char *cmd)
{
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    if (!constraint)
        return false;
    if (!strcmp(constraint, "api_keys_allow_deny_disjoint")) {
        ctl_error("%s: a provider would be both allowed and denied for this key: change "
                  "--allow-providers or --deny-providers (see: tollgatectl key set ID)",
                  cmd);
        return true;
    }
    if (!strncmp(constraint, "api_keys_", 9) && strstr(constraint, "_check")) {
        ctl_error("%s: the database refused a routing value (%s); is the schema migrated "
                  "(tollgatectl migrate)?",
                  cmd, constraint);
        return true;
    }
    return false;
}

/* Prints a key's routing as `key set` shows it, from columns 0..7 of res. */
static void print_route(const PGresult *res)
{
    printf("key %s (id %s)%s\n"
           "  private:           %s\n"
           "  allow providers:   %s\n"
           "  deny providers:    %s\n"
           "  latency target ms: %s\n"
           "  max cost:          %s\n"
           "  preference:        %s\n",
           PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
           PQgetvalue(res, 0, 8)[0] == 't' ? " (revoked)" : "",
           PQgetvalue(res, 0, 2)[0] == 't' ? "yes" : "no", PQgetvalue(res, 0, 3),
           PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6),
           PQgetvalue(res, 0, 7));
}

#define ROUTE_COLUMNS                                                                              \
    " k.display_prefix, k.id, k.private,"                                                          \
    " COALESCE(array_to_string(k.allow_providers, ','), 'all'),"                                   \
    " COALESCE(NULLIF(array_to_string(k.deny_providers, ','), ''), 'none'),"                       \
    " COALESCE(k.latency_target_ms::text, 'none'), COALESCE(k.max_cost::text, 'none'),"            \
    " COALESCE(k.route_preference, 'none (the model''s policy)'), k.revoked_at IS NOT NULL"

int ctl_key_set(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t opts[CTL_KEY_ROUTE_NOPTS];
    ctl_key_route_opts(opts);
    const char *pos[1];
    size_t npos;
    bool help;
    char err[512];
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
    ctl_key_route_t kr;
    if (ctl_key_route_parse(opts, &kr, err, sizeof err) != 0) {
        ctl_error("key set: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t id = ctl_key_find(conn, pos[0], "key set");
    if (id <= 0) {
        PQfinish(conn);
        return CTL_FAIL;
    }
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    PGresult *res;
    if (!ctl_key_route_any(&kr)) {
        const char *params[] = {idtext};
        res = PQexecParams(conn, "SELECT" ROUTE_COLUMNS " FROM api_keys k WHERE k.id = $1::bigint",
                           1, NULL, params, NULL, NULL, 0);
    } else {
        ctl_key_route_warn(conn, &kr);
        const char *t = "t", *f = "f";
        const char *params[] = {idtext,
                                kr.set_allow ? t : f,   kr.allow,
                                kr.set_deny ? t : f,    kr.deny,
                                kr.set_latency ? t : f, kr.latency[0] ? kr.latency : NULL,
                                kr.set_cost ? t : f,    kr.cost,
                                kr.set_pref ? t : f,    kr.pref,
                                kr.set_private ? t : f, kr.private_on ? t : f,
                                ctx->actor};
        /* All parts of the statement see the row as it was before the
         * UPDATE, so `old` is the before image for the audit row. */
        res = PQexecParams(
            conn,
            "WITH old AS (SELECT * FROM api_keys WHERE id = $1::bigint),"
            " k AS (UPDATE api_keys SET"
            "   allow_providers = CASE WHEN $2::bool THEN string_to_array($3::text, ',')"
            "     ELSE allow_providers END,"
            "   deny_providers = CASE WHEN $4::bool THEN string_to_array($5::text, ',')"
            "     ELSE deny_providers END,"
            "   latency_target_ms = CASE WHEN $6::bool THEN $7::integer"
            "     ELSE latency_target_ms END,"
            "   max_cost = CASE WHEN $8::bool THEN $9::numeric ELSE max_cost END,"
            "   route_preference = CASE WHEN $10::bool THEN $11::text ELSE route_preference END,"
            "   private = CASE WHEN $12::bool THEN $13::bool ELSE private END"
            "   WHERE id = $1::bigint RETURNING *),"
            " a AS (INSERT INTO audit_log (actor, action, object, before, after)"
            "   SELECT $14, 'key.route', 'key:' || k.id, to_jsonb(old) - 'key_sha256',"
            "   to_jsonb(k) - 'key_sha256' FROM k, old)"
            " SELECT" ROUTE_COLUMNS " FROM k",
            14, NULL, params, NULL, NULL, 0);
    }
    int rc = CTL_OK;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        print_route(res);
        if (ctl_key_route_any(&kr))
            printf("running gateways apply the change within a second\n");
    } else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        ctl_error("key set: key id %s is gone", idtext);
        rc = CTL_FAIL;
    } else {
        if (!ctl_key_route_check_failed(res, "key set"))
            ctl_pg_error(conn, res, "key set failed");
        rc = CTL_FAIL;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
