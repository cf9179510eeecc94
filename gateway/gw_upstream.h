/* gw_upstream: per-worker keep-alive connection pools to providers, plain HTTP
 * or TLS (OpenSSL: certificate and host-name verification against the system
 * CA store plus an optional CA file). One evhttp_connection carries one request
 * at a time, so a pool hands out idle connections and opens new ones up to the
 * provider's max_connections; beyond that, requests queue on the least busy. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "gw_config.h"

typedef struct gw_upstream_pool gw_upstream_pool_t;

typedef struct gw_upstream_conn {
    struct evhttp_connection *evcon;
    gw_upstream_pool_t *pool;
    int busy;  /* requests in flight on it */
    bool dead; /* TLS connection that closed: replaced, freed at a safe point */
    bool paused; /* its response is paused for a slow client (back-pressure) */
} gw_upstream_conn_t;

struct gw_upstream_pool {
    const gw_provider_cfg_t *cfg;
    int provider;          /* index in the config, for metrics */
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx;      /* NULL for plain HTTP; owned by the server */
    gw_upstream_conn_t **conns;
    int n_conns;
    struct event *reaper;  /* frees dead connections outside their callbacks */
};

/* Creates the TLS context for a provider: TLS 1.2+, peer verification with
 * the system store and cfg->ca_file. Returns NULL with a message (OpenSSL's
 * own) in err. */
SSL_CTX *gw_upstream_ssl_ctx_new(const gw_provider_cfg_t *cfg, char *err, size_t errlen);

void gw_upstream_pool_init(gw_upstream_pool_t *pool, struct event_base *base,
                           struct evdns_base *dns, const gw_provider_cfg_t *cfg, int provider,
                           SSL_CTX *ssl_ctx);

/* Returns a connection to send one request on (busy count incremented): an
 * idle one, a new one up to max_connections, else (may_queue) the least busy
 * to queue behind, streams paused for slow clients last. NULL when none
 * could be created (logged) or, without may_queue, when it would queue. */
gw_upstream_conn_t *gw_upstream_acquire(gw_upstream_pool_t *pool, bool may_queue);

/* Gives a connection back after its request ended. `broken`: the request
 * failed or was cancelled, so a TLS connection is replaced (plain HTTP ones
 * reconnect by themselves). Safe to call from the request's own callbacks. */
void gw_upstream_release(gw_upstream_conn_t *conn, bool broken);

void gw_upstream_pool_free(gw_upstream_pool_t *pool);

#endif
