/* gw_spool_opts: defaults and configuration-key parsing for the usage spool
 * (spool_dir, spool_sync, spool_sync_ms, spool_max_bytes, spool_full, and
 * spool_ledger, the benchmarks-only switch that turns metering off), so
 * that the gateway's config loader can hand these keys over unchanged. */
#include "gw_spool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_spool_opts_default(gw_spool_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->sync = GW_SPOOL_SYNC_INTERVAL;
    o->sync_ms = 100;
    o->max_bytes = (uint64_t)1 << 30;
    o->full = GW_SPOOL_FULL_REFUSE;
}

/* Parses "123", "64K", "512M", "2G" (powers of 1024). Returns 0 or -1. */
static int sp_parse_bytes(const char *v, uint64_t *out)
{
    if (!v || *v < '0' || *v > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end != '\0' || n > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)n << shift;
    return 0;
}

int gw_spool_opts_parse(gw_spool_opts_t *o, const char *key, const char *value, char *err,
                        size_t errlen)
{
    if (!key || strncmp(key, "spool_", 6) != 0)
        return 0;
    if (!value)
        value = "";
    if (strcmp(key, "spool_dir") == 0) {
        size_t n = strlen(value);
        if (n >= sizeof o->dir) {
            snprintf(err, errlen, "spool_dir: path longer than %zu bytes", sizeof o->dir - 1);
            return -1;
        }
        memcpy(o->dir, value, n + 1);
        return 1;
    }
    if (strcmp(key, "spool_sync") == 0) {
        if (strcmp(value, "always") == 0)
            o->sync = GW_SPOOL_SYNC_ALWAYS;
        else if (strcmp(value, "interval") == 0)
            o->sync = GW_SPOOL_SYNC_INTERVAL;
        else {
            snprintf(err, errlen, "spool_sync: '%s' is not always or interval", value);
            return -1;
        }
        return 1;
    }
    if (strcmp(key, "spool_sync_ms") == 0) {
        char *end;
        errno = 0;
        long ms = strtol(value, &end, 10);
        if (errno || end == value || *end != '\0' || ms < 1 || ms > 60000) {
            snprintf(err, errlen, "spool_sync_ms: '%s' is not an integer from 1 to 60000", value);
            return -1;
        }
        o->sync_ms = (int)ms;
        return 1;
    }
    if (strcmp(key, "spool_max_bytes") == 0) {
        uint64_t b;
        if (sp_parse_bytes(value, &b) != 0 || b < 65536) {
            snprintf(err, errlen,
                     "spool_max_bytes: '%s' is not a byte count of at least 65536 "
                     "(suffix K, M or G allowed)",
                     value);
            return -1;
        }
        o->max_bytes = b;
        return 1;
    }
    if (strcmp(key, "spool_full") == 0) {
        if (strcmp(value, "refuse") == 0)
            o->full = GW_SPOOL_FULL_REFUSE;
        else if (strcmp(value, "block") == 0)
            o->full = GW_SPOOL_FULL_BLOCK;
        else {
            snprintf(err, errlen, "spool_full: '%s' is not refuse or block", value);
            return -1;
        }
        return 1;
    }
    if (strcmp(key, "spool_ledger") == 0) {
        /* Turning the ledger off must never happen by accident: only the
         * long value is taken, and it says what it is for. */
        if (strcmp(value, "on") == 0)
            o->ledger_off = false;
        else if (strcmp(value, "off-for-benchmarks") == 0)
            o->ledger_off = true;
        else {
            snprintf(err, errlen,
                     "spool_ledger: '%s' is not on or off-for-benchmarks (the usage ledger is "
                     "not turned off in production: off-for-benchmarks answers requests with no "
                     "usage row)",
                     value);
            return -1;
        }
        return 1;
    }
    return 0;
}
