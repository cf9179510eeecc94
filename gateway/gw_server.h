/* gw_server: the gateway process: worker threads (one libevent loop and one
 * evhttp server each, sharing the public port through SO_REUSEPORT), the admin
 * listener on the main thread, and graceful shutdown. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "gw_config.h"
#include "gw_keystore.h"
#include "gw_pricebook.h"
#include "gw_prompt.h"
#include "gw_upstream.h"
#include "gw_usage.h"

typedef struct gw_server gw_server_t;
typedef struct gw_exchange gw_exchange_t;

typedef struct gw_worker {
    int index;
    gw_server_t *server;
    pthread_t thread;
    struct event_base *base;
    struct evdns_base *dns;
    struct evhttp *http;
    int listen_fd;
    struct evhttp_bound_socket *bound;
    struct event *stop_event;     /* activated from the main thread on SIGTERM */
    struct event *deadline_event; /* end of the shutdown grace period */
    struct event *accept_pause;   /* re-enables accepting after accept() failed */
    gw_upstream_pool_t pools[GW_MAX_PROVIDERS];
    gw_exchange_t *exchanges;     /* in flight, doubly linked */
    int n_exchanges;
    bool stopping;
} gw_worker_t;

struct gw_server {
    const gw_config_t *cfg;
    gw_keystore_t *keystore;
    gw_usage_writer_t *usage;
    gw_pricebook_t *prices;
    SSL_CTX *provider_ssl[GW_MAX_PROVIDERS];
    SSL_CTX *listener_ssl;       /* public TLS, NULL = plain */
    gw_tokenizer_t tokenizers[GW_MAX_MODELS]; /* distinct ones, loaded at start */
    int n_tokenizers;
    const gw_tokenizer_t *model_tokenizer[GW_MAX_MODELS]; /* NULL = estimate */
    gw_worker_t *workers;
    int n_workers;
    int public_port;             /* resolved (port 0 in the config picks one) */
    int admin_port;
    struct event_base *main_base;
    struct evhttp *admin_http;
    _Atomic int workers_running;
};

/* Creates listeners, worker threads and the admin listener. The keystore,
 * usage writer and price book are owned by the caller and must outlive the
 * server. Returns NULL with a message in err. */
gw_server_t *gw_server_start(const gw_config_t *cfg, gw_keystore_t *ks, gw_usage_writer_t *usage,
                             gw_pricebook_t *prices, char *err, size_t errlen);

/* Runs the main thread's loop (admin listener, signals) until SIGTERM/SIGINT
 * has been handled and every worker has drained or hit the grace deadline. */
void gw_server_run(gw_server_t *server);

void gw_server_free(gw_server_t *server);

#endif
