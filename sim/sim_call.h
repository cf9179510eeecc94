/* sim_call: one /v1 generation in progress and its timer-driven state
 * machine: slow headers, time to first token, paced token events, and the
 * faults that need the connection (reset, stall, cut). A call belongs to its
 * loop's sim_calls_t list and is freed exactly once: when its answer is
 * handed to libevent, when libevent reports the connection closed, when its
 * client is seen gone, or by sim_calls_drop_all. */
#ifndef SIM_CALL_H
#define SIM_CALL_H

#include "sim_reply.h"
#include "sim_shared.h"
#include "sim_stats.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SIM_PH_SLOW,   /* waiting before the headers (slow-headers fault) */
    SIM_PH_WAIT,   /* waiting for the first token (stream) or the whole answer */
    SIM_PH_TOKENS, /* streaming tokens */
    SIM_PH_DRAIN,  /* cut: waiting for the partial answer to leave, then close */
    SIM_PH_RESET,  /* reset: close at the next loop turn */
    SIM_PH_STALL,  /* never answer; watch the socket for the client leaving */
} sim_phase_t;

struct sim_call;

/* The calls in flight on one event loop. */
typedef struct sim_calls {
    sim_shared_t *sh;
    struct event_base *base;
    struct sim_call *head;
} sim_calls_t;

typedef struct sim_call {
    /* set by the caller before sim_call_answer */
    sim_fault_t fault;
    bool stream;
    unsigned tps;          /* tokens per second after the first; 0 = at once */
    uint64_t delay_us;     /* until the first token (stream) or the whole answer */
    uint64_t total, limit; /* tokens planned; to send before a cut (= total without) */
    sim_answer_t ans;
    /* private */
    sim_calls_t *_owner;
    struct evhttp_request *_req;
    struct evhttp_connection *_evcon;
    struct event *_timer;
    sim_phase_t _phase;
    uint64_t _sent;
    uint64_t _t_first_us;  /* monotonic time of the first token */
    uint64_t _deadline_us; /* SIM_PH_SLOW / SIM_PH_WAIT: when the wait ends */
    struct sim_call *_prev, *_next;
} sim_call_t;

/* Creates the call for req (which must not have been answered) and links
 * it into calls. Aborts on out-of-memory. */
sim_call_t *sim_call_new(sim_calls_t *calls, struct evhttp_request *req);

/* Starts answering: after --slow-headers-ms first for the slow-headers
 * fault, then headers (stream) and the delay, then the tokens or body. */
void sim_call_answer(sim_call_t *c);

/* Closes the connection with a TCP reset at the next loop turn (closing
 * inside the request callback would pull it from under libevent). */
void sim_call_reset(sim_call_t *c);

/* Never answers; drops the call once its client has gone. */
void sim_call_stall(sim_call_t *c);

/* Frees every call in flight (their requests go with their connections
 * when the HTTP server is freed). */
void sim_calls_drop_all(sim_calls_t *calls);

#endif
