/* sim_shared: the state all of tollgate-sim's event loops share (options,
 * stats, prefix cache, fault generator) behind one mutex, and the response
 * headers every answer carries. */
#ifndef SIM_SHARED_H
#define SIM_SHARED_H

#include "sim_cache.h"
#include "sim_opts.h"
#include "sim_rng.h"
#include "sim_stats.h"

#include <event2/http.h>
#include <pthread.h>

typedef struct sim_shared {
    const sim_opts_t *opts; /* borrowed; outlives the loops */
    pthread_mutex_t lock;   /* guards everything below */
    sim_rng_t fault_rng;
    sim_rng_t slow_rng; /* --rate-slow draws: their own sequence, so that turning the
                           tail on leaves the fault outcomes as they were */
    sim_cache_t *cache;
    const struct sim_tokenizer *tokenizer; /* --tokenizer (read-only), NULL = 4-byte rule */
    sim_stats_t stats;
    uint64_t next_id;
    uint64_t in_flight;
} sim_shared_t;

/* Initializes the shared state for opts (aborts on out-of-memory). */
void sim_shared_init(sim_shared_t *sh, const sim_opts_t *opts);

void sim_shared_destroy(sim_shared_t *sh);

/* (Re)seeds the fault and slow-tail generators from --seed (at start and on
 * POST /sim/reset). The caller holds sh->lock or is alone. */
void sim_shared_seed(sim_shared_t *sh);

/* Adds Content-Type and x-sim-name to the response headers of req. */
void sim_shared_add_headers(const sim_opts_t *o, struct evhttp_request *req, const char *ctype);

#endif
