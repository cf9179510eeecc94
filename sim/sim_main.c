/* tollgate-sim: the provider simulator's entry point. Parses options, binds
 * the listening socket, announces the port on stdout (first line, flushed),
 * runs one event loop per --threads and stops cleanly on SIGTERM/SIGINT. */
#include "sim_opts.h"
#include "sim_server.h"
#include "sim_tokenize.h"
#include "tg_log.h"
#include "tg_net.h"

#include <event2/event.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct sim_worker {
    struct event_base *base;
    sim_loop_t *loop;
    pthread_t thread;
} sim_worker_t;

static void *worker_main(void *arg)
{
    sim_worker_t *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct event_base *base = arg;
    tg_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    sim_opts_t opts;
    char err[512];
    sim_opts_defaults(&opts);
    int prc = sim_opts_parse(argc, argv, &opts, err, sizeof(err));
    if (prc == 1) {
        sim_opts_usage(stdout);
        return 0;
    }
    tg_log_init("tollgate-sim", opts.log_level);
    if (prc < 0) {
        tg_error("%s", err);
        fprintf(stderr, "tollgate-sim: %s (see --help)\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (opts.threads > 1 && evthread_use_pthreads() != 0) {
        tg_error("libevent thread support unavailable");
        return 1;
    }

    int port = 0;
    evutil_socket_t fd = tg_listen_tcp(opts.host, opts.port, false, &port, err, sizeof(err));
    if (fd < 0) {
        tg_error("%s", err);
        return 1;
    }
    sim_tokenizer_t tokenizer = {0};
    if (opts.tokenizer[0] && sim_tokenizer_load(&tokenizer, opts.tokenizer, err, sizeof(err)) != 0) {
        tg_error("%s", err);
        fprintf(stderr, "tollgate-sim: --tokenizer: %s\n", err);
        close(fd);
        return 2;
    }
    sim_shared_t shared;
    sim_shared_init(&shared, &opts);
    shared.tokenizer = opts.tokenizer[0] ? &tokenizer : NULL;

    int n = opts.threads;
    sim_worker_t *workers = calloc((size_t)n, sizeof(*workers));
    if (!workers)
        abort();
    int rc = 1, started = 0;
    for (int i = 0; i < n; i++) {
        workers[i].base = event_base_new();
        evutil_socket_t wfd = i == 0 ? fd : dup(fd);
        if (!workers[i].base || wfd < 0) {
            tg_error("cannot create event loop %d", i);
            if (wfd >= 0 && i > 0)
                close(wfd);
            goto out;
        }
        workers[i].loop = sim_loop_new(&shared, workers[i].base, wfd, err, sizeof(err));
        if (!workers[i].loop) {
            tg_error("%s", err);
            goto out;
        }
    }
    struct event *sigterm = evsignal_new(workers[0].base, SIGTERM, on_signal, workers[0].base);
    struct event *sigint = evsignal_new(workers[0].base, SIGINT, on_signal, workers[0].base);
    if (!sigterm || !sigint)
        abort();
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);

    if (opts.port_file[0] && tg_port_file_write(opts.port_file, port) < 0) {
        tg_error("cannot write the port file %s: %s", opts.port_file, strerror(errno));
        event_free(sigterm);
        event_free(sigint);
        goto out;
    }
    const char *h = opts.host;
    printf(strchr(h, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n", h, port);
    fflush(stdout);
    tg_info("%s listening on %s:%d with %d loop(s)", opts.name, h, port, n);

    for (started = 1; started < n; started++) {
        if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]) != 0) {
            tg_error("cannot start thread %d", started);
            break;
        }
    }
    event_base_dispatch(workers[0].base);
    rc = 0;
    event_free(sigterm);
    event_free(sigint);
out:
    for (int i = 1; i < started; i++) {
        event_base_loopbreak(workers[i].base);
        pthread_join(workers[i].thread, NULL);
    }
    for (int i = 0; i < n; i++) {
        sim_loop_free(workers[i].loop);
        if (workers[i].base)
            event_base_free(workers[i].base);
    }
    free(workers);
    sim_shared_destroy(&shared);
    sim_tokenizer_free(&tokenizer);
    libevent_global_shutdown();
    return rc;
}
