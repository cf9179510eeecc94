/* eng_sched: continuous batching over a backend. Requests (token-id prompts)
 * join and leave between steps; each step runs one decode token for every
 * running request plus prompt chunks of newly admitted ones, up to a token
 * budget (chunked prefill). A request is admitted only when the cache can
 * hold all of it (prompt + max_tokens) next to the running ones; otherwise it
 * waits, in arrival order. Prompts start from cached prefix blocks when the
 * backend has them (reported as cache hits). Each request samples with its
 * own parameters and seeded generator (eng_sample); it ends at max_tokens,
 * at one of its stop tokens, or when cancelled. Single-threaded:
 * the caller (a server loop) calls step() and reads results between steps. */
#ifndef ENG_SCHED_H
#define ENG_SCHED_H

#include "eng_backend.h"
#include "eng_sample.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct eng_sched eng_sched_t;

typedef enum {
    ENG_REQ_WAITING = 0, /* queued, not admitted */
    ENG_REQ_PREFILL,     /* admitted, prompt partly run */
    ENG_REQ_DECODE,      /* generating */
    ENG_REQ_FINISHED,
} eng_req_state_t;

typedef enum {
    ENG_FINISH_NONE = 0,
    ENG_FINISH_LENGTH,    /* max_tokens reached */
    ENG_FINISH_STOP,      /* the stop token was generated (it is included) */
    ENG_FINISH_CANCELLED, /* eng_sched_cancel */
    ENG_FINISH_ERROR,     /* e.g. larger than the whole KV cache */
} eng_finish_t;

typedef struct eng_req_info {
    eng_req_state_t state;
    eng_finish_t finish;
    const int32_t *tokens; /* generated so far (valid until the next step/release) */
    int n_tokens;
    int prompt_tokens;
    int cache_hits; /* prompt tokens served from cached blocks */
    char error[160];
} eng_req_info_t;

/* A scheduler over be (which must outlive it): at most token_budget tokens
 * per step (>= 1) and max_running admitted requests. Aborts on OOM. */
eng_sched_t *eng_sched_create(eng_backend_t *be, int token_budget, int max_running);

/* Frees the scheduler and every request's cache blocks. */
void eng_sched_free(eng_sched_t *s);

#define ENG_MAX_STOP_IDS 8

/* What a request asks for: its length, stop token ids (the stop token is
 * included in the output) and how to sample. */
typedef struct eng_req_params {
    int max_tokens;
    int n_stop_ids;
    int32_t stop_ids[ENG_MAX_STOP_IDS];
    eng_sample_params_t sample;
} eng_req_params_t;

/* Queues a request with its parameters; the prompt is copied. Returns its
 * id (> 0) or -1 with err (empty prompt, token outside the vocabulary,
 * max_tokens < 1, too many stop ids). */
int eng_sched_submit_params(eng_sched_t *s, const int32_t *prompt, int n_prompt,
                            const eng_req_params_t *p, char *err, size_t errlen);

/* Queues a greedy request; the prompt is copied. stop_id < 0: none. Returns its id
 * (> 0) or -1 with err (empty prompt, token outside the vocabulary,
 * max_tokens < 1). */
int eng_sched_submit(eng_sched_t *s, const int32_t *prompt, int n_prompt, int max_tokens,
                     int stop_id, char *err, size_t errlen);

/* Ends a request now (client went away): its cache blocks are released at
 * once (full ones stay cached for reuse). Unknown ids are ignored. */
void eng_sched_cancel(eng_sched_t *s, int id);

/* Runs one step. Returns the number of requests that advanced (0: nothing to
 * do), or -1 with err when the backend failed for a reason other than a full
 * cache (affected requests are finished with ENG_FINISH_ERROR). */
int eng_sched_step(eng_sched_t *s, char *err, size_t errlen);

/* Current state of request id. Returns 0, or -1 for an unknown id. */
int eng_sched_info(eng_sched_t *s, int id, eng_req_info_t *out);

/* Forgets a finished request (its info is no longer available). */
void eng_sched_release(eng_sched_t *s, int id);

/* Requests neither finished nor released. */
int eng_sched_active(const eng_sched_t *s);

/* Admitted requests (prefill or decode) now. */
int eng_sched_running(const eng_sched_t *s);

#endif
