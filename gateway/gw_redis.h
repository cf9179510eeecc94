/* gw_redis: one asynchronous Redis connection on a worker's event loop
 * (hiredis 0.14 with its libevent adapter). It connects with a timeout of its
 * own (hiredis 0.14 has none), loads the Lua scripts it was given on every
 * (re)connect, reconnects with back-off, runs EVALSHA with a per-command
 * timeout and falls back to EVAL on NOSCRIPT. Callers hold a ticket per
 * command and may cancel it at any time (e.g. their client went away). */
#ifndef GW_REDIS_H
#define GW_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct gw_redis gw_redis_t;
typedef struct gw_redis_ticket gw_redis_ticket_t;

/* A command's answer. reply is NULL when the command failed (not connected,
 * timed out, connection lost); it lives only during the call (hiredis frees
 * it after): copy what you need. Never called after gw_redis_cancel(). */
typedef void (*gw_redis_cb)(redisReply *reply, void *arg);

/* Parses "redis://HOST:PORT[/DB]". Returns 0, or -1 with a message. */
int gw_redis_url_parse(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                       size_t errlen);

/* Creates the connection object and starts connecting on `base`. scripts:
 * Lua sources kept by pointer (they must outlive the object), loaded with
 * SCRIPT LOAD after each connect. Returns NULL with a message on a bad URL. */
gw_redis_t *gw_redis_new(struct event_base *base, const char *url, int timeout_ms,
                         const char *const *scripts, int n_scripts, char *err, size_t errlen);

/* Whether the connection is up (commands sent now can be answered). */
bool gw_redis_connected(const gw_redis_t *r);

/* Runs script number `script` with EVALSHA (0 keys; args as given, copied).
 * cb runs exactly once, unless the ticket is cancelled first: with the reply,
 * or NULL after timeout_ms / on a lost connection. When not connected, cb is
 * not called and NULL is returned (the caller decides at once). */
gw_redis_ticket_t *gw_redis_eval(gw_redis_t *r, int script, int argc, const char **argv,
                                 const size_t *lens, gw_redis_cb cb, void *arg);

/* Cancels a pending command: its callback will not run. The ticket is freed
 * later by gw_redis when hiredis lets go of it; do not use it after this. */
void gw_redis_cancel(gw_redis_ticket_t *t);

/* Closes the connection and frees everything; pending callbacks run with
 * NULL first. Not from inside a gw_redis callback. */
void gw_redis_free(gw_redis_t *r);

#endif
