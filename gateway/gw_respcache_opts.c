/* gw_respcache_opts: defaults and parsing of the response cache's
 * configuration keys (see gw_respcache_opts.h). */
#include "gw_respcache_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_rc_opts_default(gw_rc_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->ttl_s = 3600;
    o->max_bytes = 256 * 1024;
    o->timeout_ms = 50;
    o->charge = GW_RC_CHARGE_CACHE_HIT_PRICE;
}

static int rc_int(const char *key, const char *v, long long lo, long long hi, long long *out,
                  char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end != '\0') {
        snprintf(err, errlen, "%s must be an integer, got '%s'", key, v);
        return -1;
    }
    if (n < lo || n > hi) {
        snprintf(err, errlen, "%s must be between %lld and %lld, got %lld", key, lo, hi, n);
        return -1;
    }
    *out = n;
    return 0;
}

int gw_rc_opts_parse(gw_rc_opts_t *o, const char *key, const char *value, char *err, size_t errlen)
{
    long long n;
    if (!strcmp(key, "response_cache")) {
        if (strcmp(value, "on") && strcmp(value, "off")) {
            snprintf(err, errlen, "response_cache must be on or off, got '%s'", value);
            return -1;
        }
        o->enabled = !strcmp(value, "on");
        return 0;
    }
    if (!strcmp(key, "response_cache_ttl_s")) {
        if (rc_int(key, value, 1, 30 * 86400, &n, err, errlen) < 0)
            return -1;
        o->ttl_s = (int)n;
        return 0;
    }
    if (!strcmp(key, "response_cache_max_bytes")) {
        if (rc_int(key, value, 256, 64 << 20, &n, err, errlen) < 0)
            return -1;
        o->max_bytes = n;
        return 0;
    }
    if (!strcmp(key, "response_cache_timeout_ms")) {
        if (rc_int(key, value, 1, 60000, &n, err, errlen) < 0)
            return -1;
        o->timeout_ms = (int)n;
        return 0;
    }
    if (!strcmp(key, "response_cache_charge")) {
        if (!strcmp(value, "free"))
            o->charge = GW_RC_CHARGE_FREE;
        else if (!strcmp(value, "cache_hit_price"))
            o->charge = GW_RC_CHARGE_CACHE_HIT_PRICE;
        else {
            snprintf(err, errlen, "response_cache_charge must be free or cache_hit_price, got '%s'",
                     value);
            return -1;
        }
        return 0;
    }
    return 1;
}
