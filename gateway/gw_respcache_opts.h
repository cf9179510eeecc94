/* gw_respcache_opts: the response cache's configuration keys in [gateway]
 * (response_cache, response_cache_ttl_s, response_cache_max_bytes,
 * response_cache_timeout_ms, response_cache_charge; etc/tollgate.conf and
 * docs/response-cache.md), so that the config loader hands them over. */
#ifndef GW_RESPCACHE_OPTS_H
#define GW_RESPCACHE_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    GW_RC_CHARGE_CACHE_HIT_PRICE = 0, /* every prompt token at the cache-hit price */
    GW_RC_CHARGE_FREE = 1,            /* nothing charged (pricing flag GW_RC_FLAG_FREE) */
} gw_rc_charge_t;

/* On a usage row's pricing_flags: the response cache's `free` rule charged
 * nothing (the costs are zero; the card names the stored answer's prices). */
#define GW_RC_FLAG_FREE 32

typedef struct gw_rc_opts {
    bool enabled;          /* response_cache = on (default off): keys and requests may opt in */
    int ttl_s;             /* how long an answer is kept (default 3600) */
    int64_t max_bytes;     /* larger stored entries are not stored (default 256 KiB) */
    int timeout_ms;        /* connect and per-command timeout of the cache's Redis (default 50) */
    gw_rc_charge_t charge; /* how a hit is charged (default cache_hit_price) */
} gw_rc_opts_t;

void gw_rc_opts_default(gw_rc_opts_t *o);

/* Parses one [gateway] key. Returns 0 when taken, 1 when the key is not one
 * of the response cache's, -1 with a message (no file or line: the caller
 * adds them) on a bad value. */
int gw_rc_opts_parse(gw_rc_opts_t *o, const char *key, const char *value, char *err, size_t errlen);

#endif
