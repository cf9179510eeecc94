/* ctl_key_cache: "tollgatectl key cache" and the --response-cache option of
 * "key create": turns the response cache on or off for one API key
 * (api_keys.response_cache, migration 0014; docs/response-cache.md). The
 * audited write is gw_key_admin's, shared with the admin HTTP API. */
#include "ctl_key_cache.h"

#include "ctl_key_route.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ctl_key_cache_usage[] =
    "usage: tollgatectl key cache ID|DISPLAY_PREFIX on|off\n"
    "\n"
    "Opts the key in to (on) or out of (off) the gateway's response cache:\n"
    "exact repeats of its deterministic requests (temperature 0 or a seed) are\n"
    "answered from the cache when the gateway has response_cache = on. Running\n"
    "gateways pick the change up within a second. A request can still override\n"
    "it with the header x-tollgate-cache: on|off.\n";

int ctl_key_cache_parse(const char *value, bool *on, char *err, size_t errlen)
{
    if (value && !strcmp(value, "on")) {
        *on = true;
        return 0;
    }
    if (value && !strcmp(value, "off")) {
        *on = false;
        return 0;
    }
    snprintf(err, errlen, "the response cache setting must be on or off, got '%s'",
             value ? value : "");
    return -1;
}

int ctl_key_cache_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[2];
    size_t npos;
    bool help;
    if (ctl_args_parse("key cache", argc, argv, NULL, 0, pos, 2, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_key_cache_usage, stdout);
        return CTL_OK;
    }
    bool on;
    char err[768];
    if (npos != 2) {
        ctl_error("key cache: give the key's id or display prefix, then on or off (see: "
                  "tollgatectl key cache --help)");
        return CTL_USAGE;
    }
    if (ctl_key_cache_parse(pos[1], &on, err, sizeof err) != 0) {
        ctl_error("key cache: %s", err);
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    int64_t id = ctl_key_find(conn, pos[0], "key cache");
    gw_key_route_t none = {0};
    int rc = CTL_FAIL;
    if (id > 0 && gw_key_update(conn, ctx->actor, id, &none, on, err, sizeof err) != GW_PA_OK) {
        ctl_error("key cache: %s", err);
    } else if (id > 0) {
        printf("key id %" PRId64 ": response cache %s; running gateways pick it up within a "
               "second\n",
               id, on ? "on" : "off");
        rc = CTL_OK;
    }
    PQfinish(conn);
    return rc;
}
