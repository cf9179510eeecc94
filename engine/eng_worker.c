/* eng_worker: the scheduler thread. Jobs move inbox -> active -> done;
 * a job is freed once both sides are finished with it: the loop has dropped
 * it, and the worker has taken it out of the scheduler. */
#include "eng_worker.h"

#include "tg_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct eng_job {
    int32_t *prompt;
    int n_prompt;
    eng_req_params_t p;
    int sched_id;        /* 0 until submitted */
    bool dropped;        /* the loop is done with it */
    bool out_of_sched;   /* finished and released, or never entered */
    int32_t *tokens;     /* max_tokens */
    eng_job_view_t view; /* view.n_tokens counts tokens */
    eng_job_t *next;
};

struct eng_worker {
    eng_backend_t *be;
    eng_sched_t *sched;
    void (*notify)(void *);
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool quit;
    eng_job_t *inbox, *active; /* singly linked */
    eng_worker_stats_t stats;
};

static void job_free(eng_job_t *j)
{
    free(j->prompt);
    free(j->tokens);
    free(j);
}

/* Submits the inbox to the scheduler (lock held). Returns true when a job
 * was refused (it is finished now: the loop must hear of it). */
static bool take_inbox(eng_worker_t *w)
{
    bool refused = false;
    while (w->inbox) {
        eng_job_t *j = w->inbox;
        w->inbox = j->next;
        char err[160];
        int id = eng_sched_submit_params(w->sched, j->prompt, j->n_prompt, &j->p, err, sizeof err);
        if (id < 0) {
            j->view.finished = true;
            j->view.finish = ENG_FINISH_ERROR;
            snprintf(j->view.error, sizeof j->view.error, "%s", err);
            j->out_of_sched = true;
            refused = true;
        } else {
            j->sched_id = id;
        }
        j->next = w->active;
        w->active = j;
    }
    return refused;
}

/* Copies the scheduler's news into the jobs; cancels and frees dropped ones
 * (lock held). */
static void sync_jobs(eng_worker_t *w)
{
    for (eng_job_t **pj = &w->active; *pj;) {
        eng_job_t *j = *pj;
        if (!j->out_of_sched) {
            eng_req_info_t info;
            if (j->dropped) {
                eng_sched_cancel(w->sched, j->sched_id);
                eng_sched_release(w->sched, j->sched_id);
                j->out_of_sched = true;
            } else if (eng_sched_info(w->sched, j->sched_id, &info) == 0) {
                for (int i = j->view.n_tokens; i < info.n_tokens; i++)
                    j->tokens[i] = info.tokens[i];
                j->view.n_tokens = info.n_tokens;
                if (info.state != ENG_REQ_WAITING) {
                    j->view.admitted = true;
                    j->view.cache_hits = info.cache_hits;
                }
                if (info.state == ENG_REQ_FINISHED) {
                    j->view.finished = true;
                    j->view.finish = info.finish;
                    snprintf(j->view.error, sizeof j->view.error, "%s", info.error);
                    eng_sched_release(w->sched, j->sched_id);
                    j->out_of_sched = true;
                }
            }
        }
        if (j->dropped && j->out_of_sched) {
            *pj = j->next;
            job_free(j);
            continue;
        }
        pj = &j->next;
    }
    w->be->ops->cache_stats(w->be, &w->stats.kv);
    w->stats.running = eng_sched_running(w->sched);
    w->stats.waiting = eng_sched_active(w->sched) - w->stats.running;
}

static void *worker_main(void *arg)
{
    eng_worker_t *w = arg;
    char err[256];
    pthread_mutex_lock(&w->lock);
    while (!w->quit) {
        if (take_inbox(w)) {
            pthread_mutex_unlock(&w->lock);
            w->notify(w->arg);
            pthread_mutex_lock(&w->lock);
        }
        sync_jobs(w);
        if (w->quit)
            break;
        if (eng_sched_active(w->sched) == 0) {
            if (!w->inbox) /* a job queued while unlocked is taken at once */
                pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        pthread_mutex_unlock(&w->lock);
        int n = eng_sched_step(w->sched, err, sizeof err);
        if (n < 0)
            tg_warn("engine step failed: %s", err);
        pthread_mutex_lock(&w->lock);
        w->stats.last_batch = n > 0 ? n : 0;
        if (n > w->stats.max_batch)
            w->stats.max_batch = n;
        w->stats.steps++;
        sync_jobs(w);
        pthread_mutex_unlock(&w->lock);
        w->notify(w->arg);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

eng_worker_t *eng_worker_start(eng_backend_t *be, int token_budget, int max_running,
                               void (*notify)(void *), void *arg)
{
    eng_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->be = be;
    w->sched = eng_sched_create(be, token_budget, max_running);
    w->notify = notify;
    w->arg = arg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    be->ops->cache_stats(be, &w->stats.kv);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        abort();
    return w;
}

void eng_worker_stop(eng_worker_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    eng_sched_free(w->sched);
    for (eng_job_t *j = w->inbox, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    for (eng_job_t *j = w->active, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

eng_job_t *eng_worker_submit(eng_worker_t *w, const int32_t *prompt, int n_prompt,
                             const eng_req_params_t *p)
{
    eng_job_t *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->n_prompt = n_prompt;
    j->prompt = malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof(int32_t));
    j->tokens = malloc((size_t)(p->max_tokens > 0 ? p->max_tokens : 1) * sizeof(int32_t));
    if (!j->prompt || !j->tokens)
        abort();
    if (n_prompt > 0)
        memcpy(j->prompt, prompt, (size_t)n_prompt * sizeof(int32_t));
    j->p = *p;
    pthread_mutex_lock(&w->lock);
    eng_job_t **tail = &w->inbox; /* keep arrival order */
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return j;
}

int eng_worker_read(eng_worker_t *w, eng_job_t *job, int from, int32_t *tokens,
                    eng_job_view_t *v)
{
    pthread_mutex_lock(&w->lock);
    *v = job->view;
    int n = 0;
    for (int i = from; i < job->view.n_tokens; i++)
        tokens[n++] = job->tokens[i];
    pthread_mutex_unlock(&w->lock);
    return n;
}

void eng_worker_drop(eng_worker_t *w, eng_job_t *job)
{
    pthread_mutex_lock(&w->lock);
    job->dropped = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void eng_worker_stats(eng_worker_t *w, eng_worker_stats_t *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}
