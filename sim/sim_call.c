/* sim_call: the timer-driven life of one /v1 generation: slow headers, time
 * to first token, paced SSE token events or the whole body, and the faults
 * that need the connection itself (reset, stall, cut, garbage). No call ever
 * sleeps: every wait is a timer on the loop. */
#include "sim_call.h"

#include "tg_log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char garbage_bytes[] = "<html><body>upstream says \xff\xfe\x01 {{{ not json\n\x00\x7f";

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_conn_close(struct evhttp_connection *evcon, void *arg);

sim_call_t *sim_call_new(sim_calls_t *l, struct evhttp_request *req)
{
    sim_call_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->_owner = l;
    c->_req = req;
    c->_evcon = evhttp_request_get_connection(req);
    c->_timer = evtimer_new(l->base, on_timer, c);
    if (!c->_timer)
        abort();
    c->_next = l->head;
    if (l->head)
        l->head->_prev = c;
    l->head = c;
    evhttp_connection_set_closecb(c->_evcon, on_conn_close, c);
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
    sim_calls_t *l = c->_owner;
    if (detach && c->_evcon)
        evhttp_connection_set_closecb(c->_evcon, NULL, NULL);
    event_free(c->_timer);
    if (c->_prev)
        c->_prev->_next = c->_next;
    else
        l->head = c->_next;
    if (c->_next)
        c->_next->_prev = c->_prev;
    pthread_mutex_lock(&l->sh->lock);
    l->sh->in_flight--;
    pthread_mutex_unlock(&l->sh->lock);
    free(c);
}

static void arm(sim_call_t *c, uint64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000u), (suseconds_t)(us % 1000000u)};
    evtimer_add(c->_timer, &tv);
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
    tg_debug("call closed by the connection in phase %d", (int)c->_phase);
    if (c->_req && evhttp_request_get_connection(c->_req) == NULL)
        evhttp_request_free(c->_req);
    c->_evcon = NULL;
    count_cancelled(c->_owner->sh);
    call_free(c, false);
}

/* Closes the call's connection at once (the request goes with it); with
 * abortive, the kernel sends a reset instead of a clean close. */
static void call_close_connection(sim_call_t *c, bool abortive)
{
    struct evhttp_connection *evcon = c->_evcon;
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
    struct evhttp_request *req = c->_req;
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
        sim_shared_add_headers(c->_owner->sh->opts, req, "application/json");
        evhttp_send_reply_start(req, 200, "OK");
        evhttp_send_reply_chunk(req, part);
        evbuffer_free(part);
        evbuffer_free(b);
        c->_phase = SIM_PH_DRAIN;
        arm(c, 1000);
        return;
    }
    sim_shared_add_headers(c->_owner->sh->opts, req, "application/json");
    call_free(c, true);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* Sends the tokens due now; finishes, cuts or re-arms the timer. */
static void stream_tick(sim_call_t *c)
{
    uint64_t now = now_us();
    uint64_t due = c->total;
    if (c->tps > 0) {
        uint64_t elapsed = now - c->_t_first_us;
        uint64_t n = 1 + elapsed * c->tps / 1000000u;
        if (n < due)
            due = n;
    }
    if (due > c->limit)
        due = c->limit;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    if (c->total == 0 && c->_sent == 0)
        sim_reply_event_token(b, &c->ans, 0); /* the role, empty content */
    while (c->_sent < due)
        sim_reply_event_token(b, &c->ans, c->_sent++);

    if (c->fault == SIM_FAULT_CUT && c->_sent >= c->limit) {
        evhttp_send_reply_chunk(c->_req, b);
        evbuffer_free(b);
        c->_phase = SIM_PH_DRAIN;
        arm(c, 1000);
        return;
    }
    if (c->_sent == c->total) {
        sim_reply_event_finish(b, &c->ans);
        if (c->ans.include_usage && c->ans.with_usage)
            sim_reply_event_usage(b, &c->ans);
        sim_reply_event_done(b);
        struct evhttp_request *req = c->_req;
        call_free(c, true);
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
        evbuffer_free(b);
        return;
    }
    evhttp_send_reply_chunk(c->_req, b);
    evbuffer_free(b);
    uint64_t next = c->_t_first_us + c->_sent * 1000000u / c->tps;
    arm(c, next > now ? next - now : 0);
}

/* True when the peer of a waiting call has gone (EOF or error). */
static bool peer_gone(sim_call_t *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->_evcon);
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
    c->_deadline_us = now_us() + us;
    arm(c, us < WAIT_SLICE_US ? us : WAIT_SLICE_US);
}

/* Returns true when the wait is over; otherwise re-arms the next slice, or
 * drops the call (false, c freed) if its client has gone. */
static bool wait_over(sim_call_t *c)
{
    uint64_t now = now_us();
    if (now >= c->_deadline_us)
        return true;
    if (peer_gone(c)) {
        count_cancelled(c->_owner->sh);
        call_close_connection(c, false);
        return false;
    }
    uint64_t left = c->_deadline_us - now;
    arm(c, left < WAIT_SLICE_US ? left : WAIT_SLICE_US);
    return false;
}

/* Headers of the answer go out now; the first token after the delay. */
static void answer_start(sim_call_t *c)
{
    c->_phase = SIM_PH_WAIT;
    if (c->stream) {
        sim_shared_add_headers(c->_owner->sh->opts, c->_req, "text/event-stream");
        evhttp_add_header(evhttp_request_get_output_headers(c->_req), "Cache-Control", "no-cache");
        evhttp_send_reply_start(c->_req, 200, "OK");
    }
    wait_start(c, c->delay_us);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sim_call_t *c = arg;
    switch (c->_phase) {
    case SIM_PH_SLOW:
        if (wait_over(c))
            answer_start(c);
        break;
    case SIM_PH_WAIT:
        if (!wait_over(c))
            break;
        if (!c->stream) {
            answer_whole(c);
        } else if (c->fault == SIM_FAULT_GARBAGE) {
            struct evbuffer *b = evbuffer_new();
            if (!b)
                abort();
            evbuffer_add(b, garbage_bytes, sizeof(garbage_bytes) - 1);
            struct evhttp_request *req = c->_req;
            call_free(c, true);
            evhttp_send_reply_chunk(req, b);
            evhttp_send_reply_end(req);
            evbuffer_free(b);
        } else {
            c->_phase = SIM_PH_TOKENS;
            c->_t_first_us = now_us();
            stream_tick(c);
        }
        break;
    case SIM_PH_TOKENS:
        stream_tick(c);
        break;
    case SIM_PH_DRAIN: {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->_evcon);
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            arm(c, 1000);
            break;
        }
        call_close_connection(c, false);
        break;
    }
    case SIM_PH_RESET:
        call_close_connection(c, true);
        break;
    case SIM_PH_STALL:
        if (peer_gone(c)) {
            count_cancelled(c->_owner->sh);
            call_close_connection(c, false);
        } else {
            arm(c, 500000);
        }
        break;
    }
}

void sim_call_answer(sim_call_t *c)
{
    if (c->fault == SIM_FAULT_SLOW_HEADERS) {
        c->_phase = SIM_PH_SLOW;
        wait_start(c, (uint64_t)c->_owner->sh->opts->slow_headers_ms * 1000u);
    } else {
        answer_start(c);
    }
}

void sim_call_reset(sim_call_t *c)
{
    c->_phase = SIM_PH_RESET;
    arm(c, 0);
}

void sim_call_stall(sim_call_t *c)
{
    c->_phase = SIM_PH_STALL;
    arm(c, 500000);
}

void sim_calls_drop_all(sim_calls_t *calls)
{
    /* Requests still in flight are attached to their connections (a detached
     * one was freed in on_conn_close), so freeing the server frees them. */
    while (calls->head)
        call_free(calls->head, true);
}
