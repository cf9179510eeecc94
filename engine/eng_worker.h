/* eng_worker: the scheduler's own thread. The HTTP loop hands it jobs
 * (token-id prompts with their parameters) and reads their tokens back; the
 * worker alone calls the scheduler and the backend, one step after another,
 * so a long step never blocks the loop from accepting and answering. After
 * each step it calls notify (from the worker thread; the loop turns that into
 * an event). Everything shared is behind one mutex, held only to copy. */
#ifndef ENG_WORKER_H
#define ENG_WORKER_H

#include "eng_backend.h"
#include "eng_sched.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct eng_worker eng_worker_t;
typedef struct eng_job eng_job_t;

/* What the loop sees of a job (a copy made under the lock). */
typedef struct eng_job_view {
    int n_tokens;       /* generated so far */
    bool admitted;      /* cache_hits is known */
    int cache_hits;
    bool finished;
    eng_finish_t finish;
    char error[160];
} eng_job_view_t;

/* Published after every step and every change of the queue. */
typedef struct eng_worker_stats {
    eng_kvcache_stats_t kv;
    int last_batch; /* requests in the last step */
    int max_batch;  /* the most requests one step has run */
    int running, waiting;
    long steps;
} eng_worker_stats_t;

/* Starts the worker over be (which it then uses alone until stopped).
 * notify(arg) is called from the worker thread when jobs have news. */
eng_worker_t *eng_worker_start(eng_backend_t *be, int token_budget, int max_running,
                               void (*notify)(void *), void *arg);

/* Stops the thread and frees every job still known (the loop must not use
 * its jobs afterwards) and the scheduler. The backend stays the caller's. */
void eng_worker_stop(eng_worker_t *w);

/* Queues a new job (prompt copied). Never fails; a bad job finishes with an
 * error that the loop reads back. The job belongs to the worker; the loop
 * keeps the handle until it calls eng_worker_drop. */
eng_job_t *eng_worker_submit(eng_worker_t *w, const int32_t *prompt, int n_prompt,
                             const eng_req_params_t *p);

/* Copies the job's state into *v and its tokens [from, n_tokens) into
 * tokens (room for max_tokens - from). Returns the count copied. */
int eng_worker_read(eng_worker_t *w, eng_job_t *job, int from, int32_t *tokens,
                    eng_job_view_t *v);

/* The loop is done with the job: a running job is cancelled (its cache
 * blocks are released at the worker's next turn) and freed. */
void eng_worker_drop(eng_worker_t *w, eng_job_t *job);

void eng_worker_stats(eng_worker_t *w, eng_worker_stats_t *out);

#endif
