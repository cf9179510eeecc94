/* gw_server: listeners, worker threads, the admin listener and graceful
 * shutdown (stop accepting, let in-flight streams finish up to the grace
 * deadline, then end the rest with their usage recorded). */
#include "gw_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_admin_budgets.h"
#include "gw_admin_keys.h"
#include "gw_admin_prices.h"
#include "gw_http.h"
#include "gw_metrics.h"
#include "gw_proxy.h"
#include "gw_route.h"
#include "tg_log.h"
#include "tg_net.h"

/* ---- public requests ----------------------------------------------------- */

static void on_public_request(struct evhttp_request *req, void *arg)
{
    gw_worker_t *w = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (!path)
        path = "/";
    if (w->stopping) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        gw_http_send_error(req, 503, "api_error", "gateway_shutting_down", NULL,
                           "The gateway is shutting down; retry on another instance.");
        return;
    }
    bool chat = !strcmp(path, "/v1/chat/completions");
    bool completions = !strcmp(path, "/v1/completions");
    if (chat || completions) {
        if (method != EVHTTP_REQ_POST) {
            gw_http_send_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use POST for %s.", path);
            return;
        }
        gw_proxy_handle(w, req, chat ? GW_ENDPOINT_CHAT : GW_ENDPOINT_COMPLETIONS);
        return;
    }
    if (!strcmp(path, "/v1/models")) {
        if (method != EVHTTP_REQ_GET) {
            gw_http_send_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use GET for /v1/models.");
            return;
        }
        gw_proxy_list_models(w, req);
        return;
    }
    if (!strcmp(path, "/v1/tollgate/budget")) { /* governance: the caller's team budget */
        if (method != EVHTTP_REQ_GET) {
            gw_http_send_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use GET for /v1/tollgate/budget.");
            return;
        }
        gw_proxy_budget(w, req);
        return;
    }
    if (!strcmp(path, "/healthz")) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"status\":\"ok\"}");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    gw_http_send_error(req, 404, "invalid_request_error", "unknown_url", NULL,
                       "Unknown request URL: %s.", path);
}

static struct bufferevent *on_tls_accept(struct event_base *base, void *arg)
{
    gw_server_t *s = arg;
    SSL *ssl = SSL_new(s->listener_ssl);
    if (!ssl)
        return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

/* ---- shutdown ------------------------------------------------------------ */

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_worker_t *w = arg;
    if (w->n_exchanges == 0) {
        /* The last answers are queued but maybe not written yet: give the
         * loop a moment to flush them before the connections are freed. */
        struct timeval flush = {0, 250000};
        event_base_loopexit(w->base, &flush);
        return;
    }
    struct timeval tv = {0, 20000};
    event_base_once(w->base, -1, EV_TIMEOUT, on_drain_check, w, &tv);
}

static void on_grace_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_worker_t *w = arg;
    gw_proxy_abort_all(w);
    struct timeval flush = {0, 200000}; /* let the final bytes reach the clients */
    event_base_loopexit(w->base, &flush);
}

static void on_worker_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_worker_t *w = arg;
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound); /* closes the listening socket */
        w->bound = NULL;
    }
    int grace = w->server->cfg->shutdown_grace_ms;
    struct timeval tv = {grace / 1000, (grace % 1000) * 1000};
    evtimer_add(w->deadline_event, &tv);
    on_drain_check(-1, 0, w);
}

static __thread gw_worker_t *this_worker; /* the worker running on this thread */

/* accept() failed (EMFILE, ENFILE, ENOBUFS...): the listener would be woken
 * again at once and spin, so it pauses for 100 ms, logged once per pause. */
static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    (void)arg; /* the listener's callback argument belongs to evhttp */
    gw_worker_t *w = this_worker;
    int e = EVUTIL_SOCKET_ERROR();
    tg_error("accept failed: %s; pausing new connections for 100 ms",
             evutil_socket_error_to_string(e));
    evconnlistener_disable(listener);
    if (w) {
        struct timeval tv = {0, 100000};
        evtimer_add(w->accept_pause, &tv);
    }
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_worker_t *w = arg;
    if (w->bound && !w->stopping)
        evconnlistener_enable(evhttp_bound_socket_get_listener(w->bound));
}

static void *worker_main(void *arg)
{
    gw_worker_t *w = arg;
    this_worker = w;
    event_base_dispatch(w->base);
    atomic_fetch_sub(&w->server->workers_running, 1);
    return NULL;
}

/* Sets up worker w's loop, evhttp server and provider pools. */
static int worker_init(gw_server_t *s, gw_worker_t *w, int fd, char *err, size_t errlen)
{
    const gw_config_t *cfg = s->cfg;
    w->server = s;
    w->listen_fd = fd;
    /* The changelist batches libevent's many enable/disable calls per event
     * into one epoll_ctl each loop turn (profiling showed ~10% of CPU in
     * epoll_ctl without it). Safe here: we never dup() sockets. */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base) {
        snprintf(err, errlen, "event_base_new failed");
        return -1;
    }
    w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!w->dns)
        w->dns = evdns_base_new(w->base, 0); /* no resolv.conf: numeric hosts still work */
    w->http = evhttp_new(w->base);
    if (!w->http) {
        snprintf(err, errlen, "evhttp_new failed");
        return -1;
    }
    evhttp_set_max_headers_size(w->http, cfg->max_header_bytes);
    /* libevent answers bodies over its own cap with a plain 413; between the
     * configured limit and that cap our handler answers in OpenAI's shape. */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->max_body_bytes * 2);
    evhttp_set_timeout(w->http, (cfg->client_timeout_ms + 999) / 1000);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_default_content_type(w->http, "application/json");
    evhttp_set_gencb(w->http, on_public_request, w);
    if (s->listener_ssl)
        evhttp_set_bevcb(w->http, on_tls_accept, s);
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    if (!w->bound) {
        snprintf(err, errlen, "cannot accept on the public socket");
        close(fd);
        return -1;
    }
    w->accept_pause = evtimer_new(w->base, on_accept_resume, w);
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(w->bound), on_accept_error);
    for (int p = 0; p < cfg->n_providers; p++)
        gw_upstream_pool_init(&w->pools[p], w->base, w->dns, &cfg->providers[p], p,
                              s->provider_ssl[p]);
    w->stop_event = event_new(w->base, -1, 0, on_worker_stop, w);
    w->deadline_event = evtimer_new(w->base, on_grace_deadline, w);
    return 0;
}

/* ---- admin listener ------------------------------------------------------ */

/* Without an admin token only requests addressed to a loopback host are
 * taken: a web page cannot reach the admin API through DNS rebinding (its
 * requests carry the attacker's host name). */
static bool admin_host_loopback(struct evhttp_request *req)
{
    const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    if (!host)
        return true; /* HTTP/1.0 without Host: no browser sends that */
    char name[64];
    const char *end;
    if (host[0] == '[') { /* [::1]:port */
        end = strchr(host, ']');
        if (!end || (size_t)(end - host - 1) >= sizeof name)
            return false;
        memcpy(name, host + 1, (size_t)(end - host - 1));
        name[end - host - 1] = '\0';
        end++;
    } else {
        end = strchr(host, ':');
        size_t n = end ? (size_t)(end - host) : strlen(host);
        if (n >= sizeof name)
            return false;
        memcpy(name, host, n);
        name[n] = '\0';
        end = host + n;
    }
    if (*end == ':' && strspn(end + 1, "0123456789") != strlen(end + 1))
        return false;
    if (*end && *end != ':')
        return false;
    return gw_config_host_is_loopback(name);
}

static bool admin_authorized(gw_server_t *s, struct evhttp_request *req)
{
    if (!s->cfg->admin_token)
        return admin_host_loopback(req);
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    size_t want = strlen(s->cfg->admin_token), got = strlen(auth + 7);
    return want == got && CRYPTO_memcmp(auth + 7, s->cfg->admin_token, want) == 0;
}

static void on_admin_request(struct evhttp_request *req, void *arg)
{
    gw_server_t *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path)
        path = "/";
    if (!strcmp(path, "/healthz")) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"status\":\"ok\",\"keys_loaded\":%zu,\"usage_pending\":%zu}",
                            gw_keystore_size(s->keystore), gw_usage_writer_pending(s->usage));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    if (!admin_authorized(s, req)) {
        if (!s->cfg->admin_token)
            gw_http_send_error(req, 403, "permission_error", "admin_host_not_loopback", NULL,
                               "Without an admin_token the admin API takes only requests "
                               "addressed to a loopback host (Host: 127.0.0.1, localhost or "
                               "[::1]).");
        else
            gw_http_send_error(req, 401, "authentication_error", "invalid_admin_token", NULL,
                               "The admin API needs 'Authorization: Bearer <admin token>'.");
        return;
    }
    if (!strcmp(path, "/metrics")) {
        gw_spool_stats_t sp;
        gw_usage_writer_spool_stats(s->usage, &sp);
        gw_metrics_extra_t extra = {.spool_bytes = sp.bytes,
                                    .spool_corrupted = sp.corrupted,
                                    .spool_torn = sp.torn,
                                    .spool_refused = sp.refused,
                                    .usage_pending = gw_usage_writer_pending(s->usage),
                                    .usage_written = gw_usage_writer_written(s->usage),
                                    .costs_written = gw_usage_writer_costs_written(s->usage),
                                    .costs_rejected = gw_usage_writer_costs_rejected(s->usage),
                                    .keys_loaded = gw_keystore_size(s->keystore)};
        struct evbuffer *b = evbuffer_new();
        gw_metrics_render(b, &extra);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    if (!strcmp(path, "/route/explain")) { /* docs/router.md */
        gw_route_explain_http(s, req);
        return;
    }
    if (gw_admin_budgets_owns(path)) { /* /budgets..., /limits...: docs/governance.md */
        gw_admin_budgets_handle(s, req, path);
        return;
    }
    if (gw_admin_keys_owns(path)) { /* /teams..., /keys...: docs/keys-admin.md */
        gw_admin_keys_handle(s, req, path);
        return;
    }
    if (gw_admin_prices_owns(path)) { /* /prices..., /quote: docs/prices-admin.md */
        gw_admin_prices_handle(s, req, path);
        return;
    }
    gw_http_send_error(req, 404, "invalid_request_error", "unknown_url", NULL,
                       "Unknown admin URL: %s.", path);
}

/* ---- process ------------------------------------------------------------- */

static SSL_CTX *listener_ssl_new(const gw_config_t *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1)
        goto fail;
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1)
        goto fail;
    if (SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;
fail:;
    char buf[256] = "unknown error";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "TLS certificate %s / key %s: %s", cfg->tls_cert, cfg->tls_key, buf);
    SSL_CTX_free(ctx);
    return NULL;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    gw_server_t *s = arg;
    tg_info("signal %d: stopping (grace %d ms)", (int)sig, s->cfg->shutdown_grace_ms);
    for (int i = 0; i < s->n_workers; i++)
        event_active(s->workers[i].stop_event, EV_READ, 0);
}

static void on_workers_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_server_t *s = arg;
    if (atomic_load(&s->workers_running) == 0) {
        event_base_loopexit(s->main_base, NULL);
        return;
    }
    struct timeval tv = {0, 20000};
    event_base_once(s->main_base, -1, EV_TIMEOUT, on_workers_check, s, &tv);
}

gw_server_t *gw_server_start(const gw_config_t *cfg, gw_keystore_t *ks, gw_usage_writer_t *usage,
                             gw_pricebook_t *prices, char *err, size_t errlen)
{
    evthread_use_pthreads();
    gw_server_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cfg = cfg;
    s->keystore = ks;
    s->usage = usage;
    s->prices = prices;
    gw_metrics_init(cfg);
    for (int p = 0; p < cfg->n_providers; p++) {
        if (!cfg->providers[p].tls)
            continue;
        s->provider_ssl[p] = gw_upstream_ssl_ctx_new(&cfg->providers[p], err, errlen);
        if (!s->provider_ssl[p])
            goto fail;
    }
    if (cfg->tls_cert[0] || cfg->tls_key[0]) {
        s->listener_ssl = listener_ssl_new(cfg, err, errlen);
        if (!s->listener_ssl)
            goto fail;
    }
    for (int m = 0; m < cfg->n_models; m++) {
        const char *path = cfg->models[m].tokenizer;
        if (!path[0])
            continue;
        for (int t = 0; t < s->n_tokenizers && !s->model_tokenizer[m]; t++)
            if (!strcmp(s->tokenizers[t].path, path))
                s->model_tokenizer[m] = &s->tokenizers[t];
        if (s->model_tokenizer[m])
            continue;
        char terr[600];
        if (gw_tokenizer_load(&s->tokenizers[s->n_tokenizers], path, terr, sizeof terr) < 0) {
            snprintf(err, errlen, "model %s: %s", cfg->models[m].name, terr);
            goto fail;
        }
        s->model_tokenizer[m] = &s->tokenizers[s->n_tokenizers++];
        tg_info("model %s: exact prompt counts with the tokenizer in %s%s", cfg->models[m].name,
                path, s->model_tokenizer[m]->chat ? " (with its chat template)" : "");
    }
    s->main_base = event_base_new();
    if (!s->main_base) {
        snprintf(err, errlen, "event_base_new failed");
        goto fail;
    }
    s->n_workers = cfg->workers;
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers)
        abort();
    int port = cfg->listen_port;
    for (int i = 0; i < s->n_workers; i++) {
        s->workers[i].index = i;
        int fd = tg_listen_tcp(cfg->listen_host, port, true, &port, err, errlen);
        if (fd < 0)
            goto fail; /* port 0: the first picks a free port, the others join it */
        if (worker_init(s, &s->workers[i], fd, err, errlen) < 0)
            goto fail;
    }
    s->public_port = port;
    s->admin_port = -1;
    if (cfg->admin_port >= 0) {
        s->admin_http = evhttp_new(s->main_base);
        int fd =
            tg_listen_tcp(cfg->admin_host, cfg->admin_port, false, &s->admin_port, err, errlen);
        if (fd < 0)
            goto fail;
        evhttp_set_gencb(s->admin_http, on_admin_request, s);
        evhttp_set_timeout(s->admin_http, 10);
        evhttp_set_max_headers_size(s->admin_http, 16 << 10);
        evhttp_set_max_body_size(s->admin_http, 1 << 20);
        /* libevent refuses PATCH unless allowed: PATCH /keys/{id} (docs/keys-admin.md) */
        evhttp_set_allowed_methods(s->admin_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                                      EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                      EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
        if (!evhttp_accept_socket_with_handle(s->admin_http, fd)) {
            snprintf(err, errlen, "cannot accept on the admin socket");
            close(fd);
            goto fail;
        }
    }
    atomic_store(&s->workers_running, s->n_workers);
    for (int i = 0; i < s->n_workers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            abort(); /* threads already running: no clean way back */
        }
    }
    return s;
fail:
    gw_server_free(s);
    return NULL;
}

void gw_server_run(gw_server_t *s)
{
    struct event *sigterm = evsignal_new(s->main_base, SIGTERM, on_signal, s);
    struct event *sigint = evsignal_new(s->main_base, SIGINT, on_signal, s);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    on_workers_check(-1, 0, s);
    event_base_dispatch(s->main_base);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i].thread, NULL);
    event_free(sigterm);
    event_free(sigint);
    /* Freeing the signal events restored the default action: a second
     * SIGTERM now would kill the process while it writes the last usage rows
     * (bounded by their own deadline), so from here on it is ignored. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

void gw_server_free(gw_server_t *s)
{
    if (!s)
        return;
    for (int i = 0; s->workers && i < s->n_workers; i++) {
        gw_worker_t *w = &s->workers[i];
        if (!w->base)
            continue;
        for (int p = 0; p < s->cfg->n_providers; p++)
            if (w->pools[p].conns)
                gw_upstream_pool_free(&w->pools[p]);
        if (w->stop_event)
            event_free(w->stop_event);
        if (w->deadline_event)
            event_free(w->deadline_event);
        if (w->accept_pause)
            event_free(w->accept_pause);
        if (w->http)
            evhttp_free(w->http);
        if (w->dns)
            evdns_base_free(w->dns, 0);
        event_base_free(w->base);
    }
    free(s->workers);
    if (s->admin_http)
        evhttp_free(s->admin_http);
    if (s->main_base)
        event_base_free(s->main_base);
    for (int p = 0; p < GW_MAX_PROVIDERS; p++)
        SSL_CTX_free(s->provider_ssl[p]);
    for (int t = 0; t < s->n_tokenizers; t++)
        gw_tokenizer_free(&s->tokenizers[t]);
    SSL_CTX_free(s->listener_ssl);
    free(s);
}
