/* gw_exchange: the proxy's internal state, shared by its four files and by
 * nothing else. An exchange is one client request (gw_exchange.c: its
 * lifetime, settling, the answer's headers); an attempt is one upstream
 * request made for it (gw_attempt.c: sending, relaying, failover); a hedge is
 * a second attempt racing a late first one (gw_hedge_race.c); gw_proxy.c
 * takes the request from the client to its first attempt. Every exchange
 * ends in gw_exchange_finish(), which answers the client if nobody has,
 * writes the usage record and frees the exchange, exactly once. */
#ifndef GW_EXCHANGE_H
#define GW_EXCHANGE_H

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_govern.h"
#include "gw_prefix.h"
#include "gw_prompt.h"
#include "gw_proxy.h"
#include "gw_respcache_req.h"
#include "gw_route.h"
#include "gw_sse.h"
#include "gw_upstream.h"
#include "gw_usage.h"

#define SSE_MAX_EVENT (1 << 20) /* an upstream event larger than this is garbage */

typedef enum {
    FAIL_NONE = 0,
    FAIL_CONNECT, /* connect error, reset, EOF before a response */
    FAIL_TIMEOUT, /* no response headers in time, or idle too long */
    FAIL_STATUS,  /* 429 or 5xx */
    FAIL_GARBAGE, /* a 200 whose body is not what the protocol says */
} fail_kind_t;

typedef struct attempt attempt_t;

struct gw_exchange {
    gw_worker_t *w;
    gw_exchange_t *prev, *next;
    struct evhttp_request *client; /* NULL once answered or gone */
    struct evhttp_connection *client_conn;
    bool client_gone;
    bool client_started; /* response headers sent: no more failover */
    struct event *client_watch; /* until the answer starts: notices the client leaving
                                   (a timer first, then the socket's watch) */
    bool upstream_paused; /* back-pressure: the current attempt's reading is paused */
    bool stream_timeouts; /* the client's read timeout is off while its stream lasts */
    gw_endpoint_t endpoint;
    gw_key_info_t key;
    int model_index;
    const gw_model_cfg_t *model;
    cJSON *body;
    bool stream;
    bool client_wants_usage;
    gw_route_plan_t plan;     /* routes in the order to try (gw_route) */
    /* the route routing counts in flight for this exchange (the plan's first
     * when it was made), until the attempt sent there reports or the exchange
     * ends; -1 = none */
    int inflight_model, inflight_route;
    int next_in_plan;         /* index into plan.routes of the next attempt */
    gw_prompt_count_t prompt; /* prompt tokens, exact or estimated */
    int64_t max_tokens;       /* the request's max_tokens, 0 when not given */
    /* the attempts (docs/router.md): the one whose answer the client gets,
     * and a hedge racing it before either has produced a byte */
    int route; /* the current attempt's route (the last tried when none) */
    attempt_t *cur;
    attempt_t *hedge;
    int hedge_after_ms;        /* 0 = not hedged */
    struct event *hedge_timer; /* fires hedge_after_ms after the first attempt */
    const char *hedge_outcome; /* "won", "lost", ... once decided; NULL = none */
    bool maybe_billed;         /* an attempt failed in a way a provider may still bill */
    gw_sse_splitter_t sse;
    bool saw_usage;
    bool saw_done;    /* the upstream's [DONE]: held back, sent after settling */
    bool settled;     /* the usage record has been submitted */
    int charge_minor; /* decimals of the charge's currency */
    bool unmetered;   /* the usage writer refused the record (spool full) */
    fail_kind_t last_fail;
    int last_fail_status;
    char last_fail_msg[160];
    char retry_after[32];
    gw_usage_record_t rec;
    /* governance (gw_govern): the admission waiting for Redis (cancelled in
     * gw_exchange_finish) and what settle gives back */
    gw_govern_ticket_t *gov_ticket;
    gw_govern_hold_t gov_hold;
    gw_rc_req_t *rc;     /* response cache (gw_respcache_req); NULL = not used */
    gw_prefix_req_t pfx; /* prefix index (gw_prefix): the prompt's blocks, the prediction */
};

/* One upstream request made for an exchange. libevent's callbacks get the
 * attempt (a request's callback argument cannot change), and reach the
 * exchange through it; only the exchange's current attempt relays. */
struct attempt {
    gw_exchange_t *ex;
    int route;         /* index into the model's routes */
    int number;        /* 1-based: which attempt of the exchange */
    bool first_choice; /* the plan's first route (routing counts it in flight) */
    gw_upstream_conn_t *conn;
    struct evhttp_request *up; /* NULL once finished or cancelled */
    struct event *first_byte_timer;
    struct event *deferred; /* runs the garbage failure outside libevent's callbacks */
    bool cancelling;
    int status;                      /* the response's HTTP status; 0 = none yet */
    enum evhttp_request_error error; /* why libevent failed it */
    bool failed;                     /* error is set */
    bool discard;                    /* a retryable error response: its body is dropped */
    bool garbage; /* a 200 stream turned out not to be SSE: dropped, then failed */
    struct evbuffer *error_body;
    int64_t sent_us, header_us; /* sent; response headers arrived (0 = not yet) */
    char retry_after[32];       /* a 429's Retry-After */
    bool beaten; /* cancelled because the hedge produced a byte first */
    /* evhttp_make_request can fail the request inside itself (a connect that
     * fails at once): its callbacks then only note it, for gw_attempt_start */
    bool starting, failed_at_start;
    /* a hedge's bytes before it won the race, and its own event parser */
    struct evbuffer *early;
    gw_sse_splitter_t early_sse;
};

/* ---- gw_exchange.c: the exchange's lifetime --------------------------- */

/* A new exchange for an authenticated client request (listed on the worker,
 * counted in flight, its request id set on the answer's headers). */
gw_exchange_t *gw_exchange_new(gw_worker_t *w, struct evhttp_request *req, gw_endpoint_t endpoint);
void gw_exchange_detach_client(gw_exchange_t *ex);
/* Watches the client's socket (from 50 ms on) until the answer starts or
 * the client is detached, so that a client leaving before that ends the
 * exchange at once (gw_exchange.c says how). */
void gw_exchange_watch_client(gw_exchange_t *ex);
void gw_record_nothing_used(gw_usage_record_t *rec);
void gw_exchange_charge_text(const gw_exchange_t *ex, char *out, size_t len);
void gw_exchange_settle(gw_exchange_t *ex, int status, const char *error_type);
void gw_exchange_refuse_unmetered(gw_exchange_t *ex);
/* Routing counted plan->routes[0] of model mi in flight: the exchange holds
 * that count (giving back one it held) until an attempt takes it over or the
 * exchange ends. */
void gw_exchange_hold_inflight(gw_exchange_t *ex, int mi, const gw_route_plan_t *plan);
/* Gives back the in-flight count the exchange still holds, if any. */
void gw_exchange_release_inflight(gw_exchange_t *ex);
void gw_exchange_finish(gw_exchange_t *ex, int status, const char *error_type);
void gw_exchange_fail(gw_exchange_t *ex, int status, const char *type, const char *code,
                      const char *param, const char *message);
void gw_exchange_served_by_headers(gw_exchange_t *ex);
void gw_exchange_start_stream(gw_exchange_t *ex);
void gw_exchange_first_byte(gw_exchange_t *ex);

/* ---- gw_attempt.c: upstream attempts ----------------------------------- */

attempt_t *gw_attempt_start(gw_exchange_t *ex, int route, bool may_queue);
void gw_attempt_next(gw_exchange_t *ex);
void gw_attempt_free(attempt_t *a, bool broken);
void gw_attempt_report(attempt_t *a, bool ok);
void gw_attempt_stop(attempt_t *a);
void gw_attempt_make_current(attempt_t *a);
void gw_attempt_cancel_current(gw_exchange_t *ex);
void gw_attempt_failed(attempt_t *a, bool broken, fail_kind_t kind, int status, const char *msg);
void gw_attempt_on_done(struct evhttp_request *up, void *arg);
void gw_exchange_relay_reset(gw_exchange_t *ex);

/* ---- gw_hedge_race.c: the hedge ----------------------------------------- */

/* Arms the hedge timer after the exchange's first attempt was sent, when the
 * request is hedged (hedge_after_ms) and the plan has another route. */
void gw_hedge_arm(gw_exchange_t *ex);
void gw_hedge_explain(gw_exchange_t *ex, const char *outcome, const attempt_t *hedge);
void gw_attempt_cancel_loser(attempt_t *a);
void gw_race_current_won(gw_exchange_t *ex);
void gw_race_hedge_won(attempt_t *h);
void gw_hedge_done(attempt_t *a, struct evhttp_request *up);

#endif
