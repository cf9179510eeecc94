/* gw_upstream: connection pools towards providers (keep-alive, TLS). */
#include "gw_upstream.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_metrics.h"
#include "tg_log.h"

static void openssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, buf);
}

SSL_CTX *gw_upstream_ssl_ctx_new(const gw_provider_cfg_t *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        openssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        openssl_error(err, errlen, "loading the system CA store");
        goto err;
    }
    if (cfg->ca_file[0] && SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        char what[700];
        snprintf(what, sizeof what, "provider %s: loading ca_file %s", cfg->name, cfg->ca_file);
        openssl_error(err, errlen, what);
        goto err;
    }
    return ctx;
err:
    SSL_CTX_free(ctx);
    return NULL;
}

static void reap_dead(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_upstream_pool_t *pool = arg;
    int keep = 0;
    for (int i = 0; i < pool->n_conns; i++) {
        gw_upstream_conn_t *c = pool->conns[i];
        if (c->dead && c->busy == 0) {
            evhttp_connection_free(c->evcon);
            gw_metrics_upstream_conns_add(pool->provider, -1);
            free(c);
        } else {
            pool->conns[keep++] = c;
        }
    }
    pool->n_conns = keep;
}

void gw_upstream_pool_init(gw_upstream_pool_t *pool, struct event_base *base,
                           struct evdns_base *dns, const gw_provider_cfg_t *cfg, int provider,
                           SSL_CTX *ssl_ctx)
{
    memset(pool, 0, sizeof *pool);
    pool->cfg = cfg;
    pool->provider = provider;
    pool->base = base;
    pool->dns = dns;
    pool->ssl_ctx = ssl_ctx;
    pool->conns = calloc((size_t)cfg->max_connections, sizeof *pool->conns);
    pool->reaper = evtimer_new(base, reap_dead, pool);
    if (!pool->conns || !pool->reaper)
        abort();
}

/* A TLS connection cannot be reconnected by evhttp (the SSL object is spent):
 * when it closes, mark it dead so that the pool replaces it. */
static void on_tls_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    gw_upstream_conn_t *c = arg;
    c->dead = true;
    struct timeval zero = {0, 0};
    evtimer_add(c->pool->reaper, &zero);
}

static gw_upstream_conn_t *conn_new(gw_upstream_pool_t *pool)
{
    const gw_provider_cfg_t *cfg = pool->cfg;
    struct bufferevent *bev = NULL;
    if (pool->ssl_ctx) {
        SSL *ssl = SSL_new(pool->ssl_ctx);
        if (!ssl) {
            tg_error("provider %s: SSL_new failed", cfg->name);
            return NULL;
        }
        SSL_set_tlsext_host_name(ssl, cfg->host); /* SNI */
        SSL_set1_host(ssl, cfg->host);            /* verify the certificate's name */
        bev = bufferevent_openssl_socket_new(pool->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(ssl);
            tg_error("provider %s: cannot create TLS bufferevent", cfg->name);
            return NULL;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    }
    struct evhttp_connection *evcon = evhttp_connection_base_bufferevent_new(
        pool->base, pool->dns, bev, cfg->host, (unsigned short)cfg->port);
    if (!evcon) {
        tg_error("provider %s: cannot create a connection to %s:%d", cfg->name, cfg->host,
                 cfg->port);
        return NULL;
    }
    struct timeval tv = {cfg->idle_timeout_ms / 1000, (cfg->idle_timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(evcon, &tv);
    evhttp_connection_set_retries(evcon, 0);
    /* A provider cannot make us buffer without bound: response headers up to
     * 64 KiB, a body (a whole stream included) up to 64 MiB. */
    evhttp_connection_set_max_headers_size(evcon, 64 << 10);
    evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)64 << 20);
    gw_upstream_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->evcon = evcon;
    c->pool = pool;
    if (pool->ssl_ctx)
        evhttp_connection_set_closecb(evcon, on_tls_conn_close, c);
    gw_metrics_upstream_conns_add(pool->provider, 1);
    return c;
}

/* How busy a connection is for queueing: a stream paused for a slow client
 * may hold its connection for long, so anything else is preferred. */
static int queue_weight(const gw_upstream_conn_t *c)
{
    return c->busy + (c->paused ? 1000 : 0);
}

gw_upstream_conn_t *gw_upstream_acquire(gw_upstream_pool_t *pool, bool may_queue)
{
    gw_upstream_conn_t *least = NULL;
    for (int i = 0; i < pool->n_conns; i++) {
        gw_upstream_conn_t *c = pool->conns[i];
        if (c->dead)
            continue;
        if (c->busy == 0) {
            c->busy++;
            return c;
        }
        if (!least || queue_weight(c) < queue_weight(least))
            least = c;
    }
    if (pool->n_conns < pool->cfg->max_connections) {
        gw_upstream_conn_t *c = conn_new(pool);
        if (c) {
            pool->conns[pool->n_conns++] = c;
            c->busy++;
            return c;
        }
    }
    if (!may_queue)
        return NULL;
    if (least)
        least->busy++; /* evhttp queues the request behind the one in flight */
    return least;
}

void gw_upstream_release(gw_upstream_conn_t *conn, bool broken)
{
    conn->busy--;
    conn->paused = false;
    if (broken && conn->pool->ssl_ctx)
        conn->dead = true;
    if (conn->dead && conn->busy == 0) {
        /* freed by the reaper, outside the callbacks of its last request */
        struct timeval zero = {0, 0};
        evtimer_add(conn->pool->reaper, &zero);
    }
}

void gw_upstream_pool_free(gw_upstream_pool_t *pool)
{
    for (int i = 0; i < pool->n_conns; i++) {
        evhttp_connection_free(pool->conns[i]->evcon);
        gw_metrics_upstream_conns_add(pool->provider, -1);
        free(pool->conns[i]);
    }
    free(pool->conns);
    if (pool->reaper)
        event_free(pool->reaper);
    memset(pool, 0, sizeof *pool);
}
