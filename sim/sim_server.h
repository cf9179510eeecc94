/* sim_server: the simulator's HTTP side on libevent's evhttp. One
 * sim_loop_t per event loop (thread); all loops share one sim_shared_t
 * (stats, prefix cache, fault generator) behind a mutex. Responses are paced
 * with timers on the loop, never by sleeping. */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include "sim_cache.h"
#include "sim_opts.h"
#include "sim_rng.h"
#include "sim_stats.h"

#include <event2/event.h>
#include <pthread.h>

typedef struct sim_shared {
    const sim_opts_t *opts; /* borrowed; outlives the loops */
    pthread_mutex_t lock;   /* guards everything below */
    sim_rng_t fault_rng;
    sim_cache_t *cache;
    sim_stats_t stats;
    uint64_t next_id;
    uint64_t in_flight;
} sim_shared_t;

/* Initializes the shared state for opts. Returns 0 (aborts on OOM). */
int sim_shared_init(sim_shared_t *sh, const sim_opts_t *opts);

void sim_shared_destroy(sim_shared_t *sh);

typedef struct sim_loop sim_loop_t;

/* Serves HTTP on the listening socket fd inside base. Takes ownership of fd
 * (closed by sim_loop_free). Returns NULL with a message in err on failure. */
sim_loop_t *sim_loop_new(sim_shared_t *sh, struct event_base *base, evutil_socket_t fd, char *err,
                         size_t errlen);

/* Drops every call still in flight (their connections are closed) and
 * frees the HTTP server. Call from the thread that ran base, after it
 * stopped. */
void sim_loop_free(sim_loop_t *l);

#endif
