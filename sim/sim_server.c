/* sim_server: routes requests, injects faults and paces answers with one
 * timer per call. A call is the state of one /v1 generation in progress; it
 * is owned by its loop's list and freed exactly once: when its answer is
 * handed to libevent, when libevent reports its connection closed, or when
 * the loop is freed. */
#include "sim_server.h"

#include "sim_reply.h"
#include "sim_request.h"
#include "sim_text.h"
#include "tg_log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

typedef enum {
    PH_SLOW,   /* waiting before the headers (slow-headers fault) */
    PH_WAIT,   /* waiting for the first token (stream) or the whole answer */
    PH_TOKENS, /* streaming tokens */
    PH_DRAIN,  /* cut: waiting for the partial answer to leave, then close */
    PH_RESET,  /* reset: close at the next loop turn */
    PH_STALL,  /* never answer; watch the socket for the client leaving */
} sim_phase_t;

typedef struct sim_call {
    struct sim_loop *loop;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    sim_phase_t phase;
    sim_fault_t fault;
    bool stream;
    unsigned tps;
    uint64_t delay_us;          /* PH_WAIT duration */
    uint64_t total, sent, limit; /* tokens: planned, sent, to send before a cut */
    uint64_t t_first_us;        /* monotonic time of the first token */
    uint64_t deadline_us;       /* PH_SLOW / PH_WAIT: when the wait ends */
    sim_answer_t ans;
    struct sim_call *prev, *next;
} sim_call_t;

struct sim_loop {
    sim_shared_t *sh;
    struct event_base *base;
    struct evhttp *http;
    sim_call_t *calls; /* in flight on this loop */
};

static const char garbage_bytes[] = "<html><body>upstream says \xff\xfe\x01 {{{ not json\n\x00\x7f";

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int sim_shared_init(sim_shared_t *sh, const sim_opts_t *opts)
{
    memset(sh, 0, sizeof(*sh));
    sh->opts = opts;
    pthread_mutex_init(&sh->lock, NULL);
    sim_rng_seed(&sh->fault_rng, opts->seed);
    sh->cache = sim_cache_new(opts->cache_blocks);
    return 0;
}

void sim_shared_destroy(sim_shared_t *sh)
{
    sim_cache_free(sh->cache);
    pthread_mutex_destroy(&sh->lock);
}

/* ---- plain replies --------------------------------------------------- */

static void add_common_headers(struct evhttp_request *req, const sim_opts_t *o, const char *ctype)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "x-sim-name", o->name);
}

/* Sends a whole reply with body b (drained). The request is libevent's again
 * afterwards. */
static void send_body(struct evhttp_request *req, const sim_opts_t *o, int status,
                      const char *reason, const char *ctype, struct evbuffer *b)
{
    add_common_headers(req, o, ctype);
    evhttp_send_reply(req, status, reason, b);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

/* Sends OpenAI's error shape with the given status. */
static void send_error(struct evhttp_request *req, const sim_opts_t *o, int status,
                       const char *message, const char *type, const char *param, const char *code)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    sim_reply_error(b, message, type, param, code);
    if (status == 429) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%u", o->retry_after_s);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
    }
    send_body(req, o, status, reason_of(status), "application/json", b);
    evbuffer_free(b);
}

static void set_last_status(sim_shared_t *sh, int status)
{
    pthread_mutex_lock(&sh->lock);
    sh->stats.last.status = status;
    pthread_mutex_unlock(&sh->lock);
}

/* ---- calls ------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_conn_close(struct evhttp_connection *evcon, void *arg);

static sim_call_t *call_new(sim_loop_t *l, struct evhttp_request *req)
{
    sim_call_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->loop = l;
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    c->timer = evtimer_new(l->base, on_timer, c);
    if (!c->timer)
        abort();
    c->next = l->calls;
    if (l->calls)
        l->calls->prev = c;
    l->calls = c;
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    pthread_mutex_lock(&l->sh->lock);
    l->sh->in_flight++;
    pthread_mutex_unlock(&l->sh->lock);
    return c;
}

/* Unlinks and frees the call. With detach, the connection forgets it first
 * (needed before any libevent call that may free the connection). The
 * request itself is not touched. */
static void call_free(sim_call_t *c, bool detach)
{
    sim_loop_t *l = c->loop;
    if (detach && c->evcon)
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    event_free(c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_lock(&l->sh->lock);
    l->sh->in_flight--;
    pthread_mutex_unlock(&l->sh->lock);
    free(c);
}

static void arm(sim_call_t *c, uint64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000u), (suseconds_t)(us % 1000000u)};
    evtimer_add(c->timer, &tv);
}

static void count_cancelled(sim_shared_t *sh)
{
    pthread_mutex_lock(&sh->lock);
    sh->stats.cancelled++;
    pthread_mutex_unlock(&sh->lock);
}

/* libevent is closing the connection of a call still in progress (client
 * gone, write error): forget the call. A request libevent has detached from
 * the connection is ours to free; an attached one goes with the connection. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    sim_call_t *c = arg;
    tg_debug("call closed by the connection in phase %d", (int)c->phase);
    if (c->req && evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    c->evcon = NULL;
    count_cancelled(c->loop->sh);
    call_free(c, false);
}

/* Closes the call's connection at once (the request goes with it); with
 * abortive, the kernel sends a reset instead of a clean close. */
static void call_close_connection(sim_call_t *c, bool abortive)
{
    struct evhttp_connection *evcon = c->evcon;
    if (abortive) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
        evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
        struct linger lg = {1, 0};
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    call_free(c, true);
    evhttp_connection_free(evcon);
}

/* Non-streamed answer: the whole body at once (or its faulty variant). */
static void answer_whole(sim_call_t *c)
{
    const sim_opts_t *o = c->loop->sh->opts;
    struct evhttp_request *req = c->req;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    if (c->fault == SIM_FAULT_GARBAGE) {
        evbuffer_add(b, garbage_bytes, sizeof(garbage_bytes) - 1);
    } else {
        sim_reply_full(b, &c->ans);
    }
    if (c->fault == SIM_FAULT_CUT) {
        /* Half of the body, chunked, then the connection closes. */
        size_t half = evbuffer_get_length(b) / 2;
        struct evbuffer *part = evbuffer_new();
        if (!part)
            abort();
        evbuffer_remove_buffer(b, part, half);
        add_common_headers(req, o, "application/json");
        evhttp_send_reply_start(req, 200, "OK");
        evhttp_send_reply_chunk(req, part);
        evbuffer_free(part);
        evbuffer_free(b);
        c->phase = PH_DRAIN;
        arm(c, 1000);
        return;
    }
    call_free(c, true);
    send_body(req, o, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

/* Sends the tokens due now; finishes, cuts or re-arms the timer. */
static void stream_tick(sim_call_t *c)
{
    uint64_t now = now_us();
    uint64_t due = c->total;
    if (c->tps > 0) {
        uint64_t elapsed = now - c->t_first_us;
        uint64_t n = 1 + elapsed * c->tps / 1000000u;
        if (n < due)
            due = n;
    }
    if (due > c->limit)
        due = c->limit;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    if (c->total == 0 && c->sent == 0)
        sim_reply_event_token(b, &c->ans, 0); /* the role, empty content */
    while (c->sent < due)
        sim_reply_event_token(b, &c->ans, c->sent++);

    if (c->fault == SIM_FAULT_CUT && c->sent >= c->limit) {
        evhttp_send_reply_chunk(c->req, b);
        evbuffer_free(b);
        c->phase = PH_DRAIN;
        arm(c, 1000);
        return;
    }
    if (c->sent == c->total) {
        sim_reply_event_finish(b, &c->ans);
        if (c->ans.include_usage && c->ans.with_usage)
            sim_reply_event_usage(b, &c->ans);
        sim_reply_event_done(b);
        struct evhttp_request *req = c->req;
        call_free(c, true);
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
        evbuffer_free(b);
        return;
    }
    evhttp_send_reply_chunk(c->req, b);
    evbuffer_free(b);
    uint64_t next = c->t_first_us + c->sent * 1000000u / c->tps;
    arm(c, next > now ? next - now : 0);
}

/* True when the peer of a waiting call has gone (EOF or error). */
static bool peer_gone(sim_call_t *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return true;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Long waits are cut into slices so that a client that leaves meanwhile is
 * noticed (and counted as cancelled) within WAIT_SLICE_US. */
#define WAIT_SLICE_US 100000u

static void wait_start(sim_call_t *c, uint64_t us)
{
    c->deadline_us = now_us() + us;
    arm(c, us < WAIT_SLICE_US ? us : WAIT_SLICE_US);
}

/* Returns true when the wait is over; otherwise re-arms the next slice, or
 * drops the call (false, c freed) if its client has gone. */
static bool wait_over(sim_call_t *c)
{
    uint64_t now = now_us();
    if (now >= c->deadline_us)
        return true;
    if (peer_gone(c)) {
        count_cancelled(c->loop->sh);
        call_close_connection(c, false);
        return false;
    }
    uint64_t left = c->deadline_us - now;
    arm(c, left < WAIT_SLICE_US ? left : WAIT_SLICE_US);
    return false;
}

/* Headers of the answer go out now; the first token after the delay. */
static void answer_start(sim_call_t *c)
{
    const sim_opts_t *o = c->loop->sh->opts;
    c->phase = PH_WAIT;
    if (c->stream) {
        add_common_headers(c->req, o, "text/event-stream");
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Cache-Control", "no-cache");
        evhttp_send_reply_start(c->req, 200, "OK");
    }
    wait_start(c, c->delay_us);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sim_call_t *c = arg;
    switch (c->phase) {
    case PH_SLOW:
        if (wait_over(c))
            answer_start(c);
        break;
    case PH_WAIT:
        if (!wait_over(c))
            break;
        if (!c->stream) {
            answer_whole(c);
        } else if (c->fault == SIM_FAULT_GARBAGE) {
            struct evbuffer *b = evbuffer_new();
            if (!b)
                abort();
            evbuffer_add(b, garbage_bytes, sizeof(garbage_bytes) - 1);
            struct evhttp_request *req = c->req;
            call_free(c, true);
            evhttp_send_reply_chunk(req, b);
            evhttp_send_reply_end(req);
            evbuffer_free(b);
        } else {
            c->phase = PH_TOKENS;
            c->t_first_us = now_us();
            stream_tick(c);
        }
        break;
    case PH_TOKENS:
        stream_tick(c);
        break;
    case PH_DRAIN: {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            arm(c, 1000);
            break;
        }
        call_close_connection(c, false);
        break;
    }
    case PH_RESET:
        call_close_connection(c, true);
        break;
    case PH_STALL:
        if (peer_gone(c)) {
            count_cancelled(c->loop->sh);
            call_close_connection(c, false);
        }
        else
            arm(c, 500000);
        break;
    }
}

/* ---- /v1 generation ---------------------------------------------------- */

/* Returns the bearer token of an Authorization header, or NULL. */
static const char *bearer_of(const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return NULL;
    auth += 7;
    while (*auth == ' ')
        auth++;
    return *auth ? auth : NULL;
}

/* Reads a per-request numeric override header. Returns 0 (absent leaves
 * *out alone) or -1 when malformed. */
static int header_uint(struct evkeyvalq *h, const char *name, unsigned max, unsigned *out)
{
    const char *v = evhttp_find_header(h, name);
    if (!v)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (end == v || *end || *v == '-' || n > max)
        return -1;
    *out = (unsigned)n;
    return 0;
}

static sim_fault_t draw_fault(const sim_opts_t *o, double u)
{
    double r[] = {o->rate_429, o->rate_500, o->rate_503, o->rate_reset, o->rate_stall};
    sim_fault_t f[] = {SIM_FAULT_429, SIM_FAULT_500, SIM_FAULT_503, SIM_FAULT_RESET,
                       SIM_FAULT_STALL};
    double acc = 0;
    for (int i = 0; i < 5; i++) {
        acc += r[i];
        if (u < acc)
            return f[i];
    }
    return SIM_FAULT_NONE;
}

static void handle_generate(sim_loop_t *l, struct evhttp_request *req, sim_kind_t kind)
{
    sim_shared_t *sh = l->sh;
    const sim_opts_t *o = sh->opts;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(h, "Authorization");
    const char *key = bearer_of(auth);
    char label[32];
    sim_stats_key_label(key, label, sizeof(label));

    pthread_mutex_lock(&sh->lock);
    sim_stats_count_key(&sh->stats, label);
    sim_stats_last_t *last = &sh->stats.last;
    memset(last, 0, sizeof(*last));
    last->valid = true;
    last->endpoint = kind == SIM_KIND_CHAT ? SIM_EP_CHAT : SIM_EP_COMPLETIONS;
    last->authorization = auth != NULL;
    last->max_tokens = -1;
    snprintf(last->key, sizeof(last->key), "%s", label);
    const char *rid = evhttp_find_header(h, "x-request-id");
    snprintf(last->request_id, sizeof(last->request_id), "%s", rid ? rid : "");
    double u = sim_rng_unit(&sh->fault_rng);
    pthread_mutex_unlock(&sh->lock);

    if (o->api_key[0] && (!key || strcmp(key, o->api_key) != 0)) {
        pthread_mutex_lock(&sh->lock);
        sh->stats.unauthorized++;
        sh->stats.last.status = 401;
        pthread_mutex_unlock(&sh->lock);
        send_error(req, o, 401, "Incorrect API key provided.", "invalid_request_error", NULL,
                   "invalid_api_key");
        return;
    }

    sim_fault_t fault = draw_fault(o, u);
    const char *fh = evhttp_find_header(h, "x-sim-fault");
    if (fh && sim_fault_parse(fh, &fault) < 0) {
        pthread_mutex_lock(&sh->lock);
        sh->stats.bad_request++;
        sh->stats.last.status = 400;
        pthread_mutex_unlock(&sh->lock);
        send_error(req, o, 400, "Unknown x-sim-fault value.", "invalid_request_error",
                   "x-sim-fault", "invalid_value");
        return;
    }
    unsigned ttft = o->ttft_ms, ntok = o->completion_tokens, tps = o->tokens_per_s;
    const char *bad_hdr = NULL;
    if (header_uint(h, "x-sim-ttft-ms", 3600000, &ttft) < 0)
        bad_hdr = "x-sim-ttft-ms";
    else if (header_uint(h, "x-sim-completion-tokens", 1000000, &ntok) < 0)
        bad_hdr = "x-sim-completion-tokens";
    else if (header_uint(h, "x-sim-tokens-per-s", 10000000, &tps) < 0)
        bad_hdr = "x-sim-tokens-per-s";
    pthread_mutex_lock(&sh->lock);
    sh->stats.by_fault[fault]++;
    sh->stats.last.fault = fault;
    if (bad_hdr) {
        sh->stats.bad_request++;
        sh->stats.last.status = 400;
    }
    pthread_mutex_unlock(&sh->lock);
    if (bad_hdr) {
        send_error(req, o, 400, "Malformed simulator override header.", "invalid_request_error",
                   bad_hdr, "invalid_value");
        return;
    }

    switch (fault) {
    case SIM_FAULT_429:
        set_last_status(sh, 429);
        send_error(req, o, 429, "Rate limit reached for requests (simulated).", "rate_limit_error",
                   NULL, "rate_limit_exceeded");
        return;
    case SIM_FAULT_500:
        set_last_status(sh, 500);
        send_error(req, o, 500, "The server had an error while processing your request "
                                "(simulated).", "server_error", NULL, "internal_error");
        return;
    case SIM_FAULT_503:
        set_last_status(sh, 503);
        send_error(req, o, 503, "server busy, please try again later (simulated).",
                   "server_error", NULL, "server_busy");
        return;
    case SIM_FAULT_RESET: {
        /* Closing from inside the request callback would pull the
         * connection out from under libevent: do it on the next turn. */
        sim_call_t *c = call_new(l, req);
        c->phase = PH_RESET;
        arm(c, 0);
        return;
    }
    case SIM_FAULT_STALL: {
        sim_call_t *c = call_new(l, req);
        c->phase = PH_STALL;
        arm(c, 500000);
        return;
    }
    default:
        break;
    }

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    sim_request_t r;
    char err[256];
    const char *param;
    if (sim_request_parse(body, len, kind, &r, err, sizeof(err), &param) < 0) {
        pthread_mutex_lock(&sh->lock);
        sh->stats.bad_request++;
        sh->stats.last.status = 400;
        pthread_mutex_unlock(&sh->lock);
        tg_info("400 on %s: %s", kind == SIM_KIND_CHAT ? "chat" : "completions", err);
        send_error(req, o, 400, err, "invalid_request_error", param, "invalid_request_error");
        return;
    }
    uint64_t prompt = r.tokens.count;
    bool too_long = o->context && prompt > o->context;

    uint64_t n = ntok;
    const char *finish = "stop";
    if (r.max_tokens >= 0 && (uint64_t)r.max_tokens < n) {
        n = (uint64_t)r.max_tokens;
        finish = "length";
    }
    bool reasoner = strstr(r.model, "reasoner") != NULL;
    sim_usage_t usage = {.prompt = prompt, .completion = n, .reasoning = reasoner ? n / 2 : 0};
    uint64_t key_hash = sim_hash_bytes(0x6b6579ULL, key ? key : "", key ? strlen(key) : 0);

    pthread_mutex_lock(&sh->lock);
    last = &sh->stats.last;
    snprintf(last->model, sizeof(last->model), "%s", r.model);
    last->stream = r.stream;
    memcpy(last->stream_options, r.stream_options_json, sizeof(last->stream_options));
    last->max_tokens = r.max_tokens;
    last->prompt_tokens = prompt;
    if (too_long) {
        sh->stats.context_exceeded++;
        last->status = 400;
    } else {
        if (o->cache) {
            usage.hit = (uint64_t)sim_cache_lookup(sh->cache, key_hash, r.tokens.blocks,
                                                   r.tokens.nblocks) *
                        SIM_BLOCK_TOKENS;
            sim_cache_store(sh->cache, key_hash, r.tokens.blocks, r.tokens.nblocks);
        }
        usage.miss = prompt - usage.hit;
        last->status = 200;
        sh->stats.streamed += r.stream;
        sh->stats.prompt_tokens += prompt;
        sh->stats.completion_tokens += n;
        sh->stats.reasoning_tokens += usage.reasoning;
        sh->stats.cache_hit_tokens += usage.hit;
        sh->stats.cache_miss_tokens += usage.miss;
    }
    uint64_t id = ++sh->next_id;
    pthread_mutex_unlock(&sh->lock);

    if (too_long) {
        snprintf(err, sizeof(err),
                 "This model's maximum context length is %lu tokens. However, your messages "
                 "resulted in %llu tokens. Please reduce the length of the messages.",
                 o->context, (unsigned long long)prompt);
        send_error(req, o, 400, err, "invalid_request_error",
                   kind == SIM_KIND_CHAT ? "messages" : "prompt", "context_length_exceeded");
        sim_request_free(&r);
        return;
    }

    sim_call_t *c = call_new(l, req);
    c->fault = fault;
    c->stream = r.stream;
    c->tps = tps;
    c->total = n;
    c->limit = fault == SIM_FAULT_CUT ? (n > 1 ? n / 2 : n) : n;
    c->delay_us = (uint64_t)ttft * 1000u;
    if (!r.stream && tps > 0 && n > 1)
        c->delay_us += (n - 1) * 1000000u / tps;
    sim_answer_t *a = &c->ans;
    a->kind = kind;
    snprintf(a->id, sizeof(a->id), "%s-sim%llu", kind == SIM_KIND_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)id);
    a->created = (long long)time(NULL);
    snprintf(a->model, sizeof(a->model), "%s", r.model);
    a->fingerprint = o->name;
    a->reasoner = reasoner;
    a->include_usage = r.include_usage;
    a->with_usage = fault != SIM_FAULT_NO_USAGE;
    a->finish_reason = finish;
    a->usage = usage;
    a->n_reasoning = usage.reasoning;
    a->n_content = n - usage.reasoning;
    sim_text_seed(&a->rng_content, o->seed, r.model, r.tokens.all_hash, 1);
    sim_text_seed(&a->rng_reasoning, o->seed, r.model, r.tokens.all_hash, 2);
    sim_request_free(&r);

    if (fault == SIM_FAULT_SLOW_HEADERS) {
        c->phase = PH_SLOW;
        wait_start(c, (uint64_t)o->slow_headers_ms * 1000u);
    } else {
        answer_start(c);
    }
}

/* ---- other endpoints --------------------------------------------------- */

static void handle_models(sim_loop_t *l, struct evhttp_request *req)
{
    const sim_opts_t *o = l->sh->opts;
    const char *key = bearer_of(evhttp_find_header(evhttp_request_get_input_headers(req),
                                                   "Authorization"));
    if (o->api_key[0] && (!key || strcmp(key, o->api_key) != 0)) {
        pthread_mutex_lock(&l->sh->lock);
        l->sh->stats.unauthorized++;
        pthread_mutex_unlock(&l->sh->lock);
        send_error(req, o, 401, "Incorrect API key provided.", "invalid_request_error", NULL,
                   "invalid_api_key");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[");
    const char *p = o->models;
    bool first = true;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            evbuffer_add_printf(b, "%s{\"id\":\"%.*s\",\"object\":\"model\",\"created\":0,"
                                   "\"owned_by\":\"%s\"}",
                                first ? "" : ",", (int)n, p, o->name);
            first = false;
        }
        p += n + (p[n] == ',');
    }
    evbuffer_add_printf(b, "]}");
    send_body(req, o, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void handle_stats(sim_loop_t *l, struct evhttp_request *req)
{
    sim_shared_t *sh = l->sh;
    pthread_mutex_lock(&sh->lock);
    char *json = sim_stats_json(&sh->stats, sh->opts->name, sh->opts->cache,
                                sim_cache_size(sh->cache), sh->opts->cache_blocks, sh->in_flight);
    pthread_mutex_unlock(&sh->lock);
    if (!json)
        abort();
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add(b, json, strlen(json));
    free(json);
    send_body(req, sh->opts, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void handle_reset(sim_loop_t *l, struct evhttp_request *req)
{
    sim_shared_t *sh = l->sh;
    pthread_mutex_lock(&sh->lock);
    memset(&sh->stats, 0, sizeof(sh->stats));
    sim_cache_clear(sh->cache);
    sim_rng_seed(&sh->fault_rng, sh->opts->seed);
    pthread_mutex_unlock(&sh->lock);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(b, "{\"reset\":true}");
    send_body(req, sh->opts, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sim_loop_t *l = arg;
    const sim_opts_t *o = l->sh->opts;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    sim_endpoint_t ep = SIM_EP_OTHER;
    int want = EVHTTP_REQ_POST;
    if (strcmp(path, "/v1/chat/completions") == 0) {
        ep = SIM_EP_CHAT;
    } else if (strcmp(path, "/v1/completions") == 0) {
        ep = SIM_EP_COMPLETIONS;
    } else if (strcmp(path, "/v1/models") == 0) {
        ep = SIM_EP_MODELS;
        want = EVHTTP_REQ_GET;
    } else if (strcmp(path, "/healthz") == 0) {
        ep = SIM_EP_HEALTHZ;
        want = EVHTTP_REQ_GET;
    } else if (strcmp(path, "/sim/stats") == 0) {
        ep = SIM_EP_STATS;
        want = EVHTTP_REQ_GET;
    } else if (strcmp(path, "/sim/reset") == 0) {
        ep = SIM_EP_RESET;
    }
    if (ep != SIM_EP_RESET) {
        pthread_mutex_lock(&l->sh->lock);
        l->sh->stats.total++;
        l->sh->stats.by_endpoint[ep]++;
        pthread_mutex_unlock(&l->sh->lock);
    }
    if (ep == SIM_EP_OTHER) {
        send_error(req, o, 404, "Unknown request URL.", "invalid_request_error", NULL,
                   "unknown_url");
        return;
    }
    if ((int)cmd != want) {
        send_error(req, o, 405, "Method not allowed for this URL.", "invalid_request_error", NULL,
                   "method_not_allowed");
        return;
    }
    switch (ep) {
    case SIM_EP_CHAT: handle_generate(l, req, SIM_KIND_CHAT); break;
    case SIM_EP_COMPLETIONS: handle_generate(l, req, SIM_KIND_COMPLETIONS); break;
    case SIM_EP_MODELS: handle_models(l, req); break;
    case SIM_EP_STATS: handle_stats(l, req); break;
    case SIM_EP_RESET: handle_reset(l, req); break;
    default: {
        struct evbuffer *b = evbuffer_new();
        if (!b)
            abort();
        evbuffer_add_printf(b, "{\"status\":\"ok\",\"name\":\"%s\"}", o->name);
        send_body(req, o, 200, "OK", "application/json", b);
        evbuffer_free(b);
    }
    }
}

/* ---- loops ----------------------------------------------------------------- */

sim_loop_t *sim_loop_new(sim_shared_t *sh, struct event_base *base, evutil_socket_t fd, char *err,
                         size_t errlen)
{
    sim_loop_t *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    l->sh = sh;
    l->base = base;
    l->http = evhttp_new(base);
    if (!l->http) {
        snprintf(err, errlen, "evhttp_new failed");
        goto fail;
    }
    evhttp_set_max_body_size(l->http, (ev_ssize_t)sh->opts->max_body);
    evhttp_set_max_headers_size(l->http, 64 * 1024);
    evhttp_set_timeout(l->http, (int)sh->opts->idle_timeout_s);
    evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(l->http, on_request, l);
    if (!evhttp_accept_socket_with_handle(l->http, fd)) {
        snprintf(err, errlen, "cannot serve on the listening socket");
        goto fail;
    }
    return l;
fail:
    if (l->http)
        evhttp_free(l->http);
    evutil_closesocket(fd);
    free(l);
    return NULL;
}

void sim_loop_free(sim_loop_t *l)
{
    if (!l)
        return;
    /* Calls in flight: their requests are still attached to connections
     * (a detached one is freed in on_conn_close), so evhttp_free frees them. */
    while (l->calls)
        call_free(l->calls, true);
    evhttp_free(l->http);
    free(l);
}
