/* eng_pool: a fixed set of worker threads running one parallel-for at a time.
 * The caller's thread takes part, so a pool of n threads starts n-1 workers. */
#ifndef ENG_POOL_H
#define ENG_POOL_H

#include <stddef.h>

typedef struct eng_pool eng_pool_t;

/* Runs items [lo, hi) of a parallel-for; `ctx` is the caller's. */
typedef void (*eng_pool_fn)(void *ctx, size_t lo, size_t hi);

/* Creates a pool of n_threads (<= 0: the number of online CPUs; capped at 64).
 * Aborts on OOM or when threads cannot be created. */
eng_pool_t *eng_pool_create(int n_threads);

/* Stops and joins the workers. NULL is fine. */
void eng_pool_free(eng_pool_t *p);

int eng_pool_size(const eng_pool_t *p);

/* Splits [0, n) into contiguous ranges, one per thread, and returns when all
 * are done. Ranges are aligned to multiples of `grain` (>= 1). Runs inline
 * when p is NULL, n is small or only one thread exists. Not reentrant: call
 * from one thread at a time and never from inside fn. */
void eng_pool_for(eng_pool_t *p, size_t n, size_t grain, eng_pool_fn fn, void *ctx);

#endif
