/* eng_pool: the engine's parallel-for over matmul rows and attention heads.
 * One generation counter under a mutex hands out each job; workers take a
 * static slice, so results do not depend on timing. */
#include "eng_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct eng_pool {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;
    int pending;
    bool stop;
    /* the current job */
    eng_pool_fn fn;
    void *ctx;
    size_t total, grain;
};

typedef struct {
    eng_pool_t *p;
    int idx;
} worker_arg_t;

/* The slice [lo, hi) of thread idx out of n. */
static void slice(size_t total, size_t grain, int n, int idx, size_t *lo, size_t *hi)
{
    size_t units = (total + grain - 1) / grain;
    size_t a = units * (size_t)idx / (size_t)n, b = units * (size_t)(idx + 1) / (size_t)n;
    *lo = a * grain;
    *hi = b * grain < total ? b * grain : total;
    if (*lo > total)
        *lo = total;
}

static void *worker(void *arg)
{
    worker_arg_t wa = *(worker_arg_t *)arg;
    free(arg);
    eng_pool_t *p = wa.p;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        eng_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        size_t lo, hi;
        slice(p->total, p->grain, p->n, wa.idx, &lo, &hi);
        pthread_mutex_unlock(&p->mu);
        if (lo < hi)
            fn(ctx, lo, hi);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

eng_pool_t *eng_pool_create(int n_threads)
{
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 64)
        n_threads = 64;
    eng_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->th = calloc((size_t)n_threads, sizeof *p->th);
    if (!p->th)
        abort();
    for (int i = 1; i < n_threads; i++) {
        worker_arg_t *wa = malloc(sizeof *wa);
        if (!wa)
            abort();
        wa->p = p;
        wa->idx = i;
        if (pthread_create(&p->th[i], NULL, worker, wa) != 0)
            abort();
    }
    return p;
}

void eng_pool_free(eng_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int eng_pool_size(const eng_pool_t *p)
{
    return p ? p->n : 1;
}

void eng_pool_for(eng_pool_t *p, size_t n, size_t grain, eng_pool_fn fn, void *ctx)
{
    if (grain == 0)
        grain = 1;
    if (n == 0)
        return;
    if (!p || p->n == 1 || n <= grain) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    p->grain = grain;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    size_t lo, hi;
    slice(n, grain, p->n, 0, &lo, &hi);
    if (lo < hi)
        fn(ctx, lo, hi);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
