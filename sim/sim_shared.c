/* sim_shared: lifetime of the state shared by all loops, and the common
 * response headers. */
#include "sim_shared.h"

#include <event2/keyvalq_struct.h>
#include <string.h>

void sim_shared_init(sim_shared_t *sh, const sim_opts_t *opts)
{
    memset(sh, 0, sizeof(*sh));
    sh->opts = opts;
    pthread_mutex_init(&sh->lock, NULL);
    sim_shared_seed(sh);
    sh->cache = sim_cache_new(opts->cache_blocks);
}

void sim_shared_seed(sim_shared_t *sh)
{
    sim_rng_seed(&sh->fault_rng, sh->opts->seed);
    sim_rng_seed(&sh->slow_rng, sim_hash_mix(sh->opts->seed, 0x736c6f77ULL)); /* "slow" */
}

void sim_shared_destroy(sim_shared_t *sh)
{
    sim_cache_free(sh->cache);
    pthread_mutex_destroy(&sh->lock);
}

void sim_shared_add_headers(const sim_opts_t *o, struct evhttp_request *req, const char *ctype)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "x-sim-name", o->name);
}
