/* gw_respcache_store: the response cache's Redis on each worker: its own
 * asynchronous connection (gw_redis, timeout response_cache_timeout_ms),
 * GET and SET through two small Lua scripts, made at the worker's first use.
 * Redis down or slow never fails a request: the caller is told "unavailable"
 * within the timeout and goes on without the cache. */
#ifndef GW_RESPCACHE_STORE_H
#define GW_RESPCACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_worker gw_worker_t;
typedef struct gw_rcs_ticket gw_rcs_ticket_t;

typedef enum {
    GW_RCS_FOUND = 0,   /* data/len hold the stored entry (valid during the call only) */
    GW_RCS_ABSENT,      /* no entry under the key */
    GW_RCS_UNAVAILABLE, /* not connected, timed out, connection lost, script error */
} gw_rcs_outcome_t;

typedef void (*gw_rcs_get_cb)(gw_rcs_outcome_t outcome, const char *data, size_t len, void *arg);

/* Looks rkey up on w's connection. Returns a ticket, and cb runs later on
 * w's loop, exactly once unless cancelled; or NULL when Redis cannot be asked
 * now (not connected; cb is not called: the caller bypasses at once). Right
 * after the connection is made (the worker's first use) the lookup waits up
 * to the timeout for it instead of bypassing. */
gw_rcs_ticket_t *gw_rcs_get(gw_worker_t *w, const char *rkey, gw_rcs_get_cb cb, void *arg);

/* Cancels a pending lookup: cb will not run. */
void gw_rcs_cancel(gw_rcs_ticket_t *t);

/* Stores data under rkey for ttl_s seconds, fire and forget. Returns false
 * when Redis cannot be asked now (nothing stored). */
bool gw_rcs_set(gw_worker_t *w, const char *rkey, const char *data, size_t len, int ttl_s);

#endif
