/* eng_serve: the HTTP side of `tollgate-engine serve`. Each /v1 request is
 * parsed and tokenized on the loop, handed to the worker as a job, and
 * answered as the worker's steps produce tokens (the worker wakes the loop
 * through an event after each step). A 100 ms tick notices clients that
 * went away and drops their jobs, which cancels them in the scheduler and
 * frees their cache blocks. */
#include "eng_serve.h"

#include "eng_serve_json.h"
#include "eng_serve_req.h"
#include "eng_text.h"
#include "eng_worker.h"
#include "tg_log.h"
#include "tg_net.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct srv srv_t;

typedef struct call {
    srv_t *s;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    eng_job_t *job;
    eng_serve_req_t rq;
    char id[48];
    long long created;
    int n_seen;   /* tokens taken from the job */
    int32_t *buf; /* max_tokens */
    eng_text_t text;
    tok_buf_t content; /* non-streamed: the whole text */
    bool started;      /* stream: headers and the role event sent */
    struct call *prev, *next;
} call_t;

struct srv {
    const eng_serve_opts_t *o;
    eng_backend_t *be;
    const tok_tokenizer_t *tok;
    const tok_chat_t *chat;
    struct event_base *base;
    struct evhttp *http;
    struct event *notify_ev, *tick_ev;
    eng_worker_t *w;
    eng_serve_limits_t lim;
    call_t *calls;
    unsigned long next_id;
    eng_rng_t seeds; /* seeds of requests that give none */
    /* counters, loop thread only */
    unsigned long long req_ok[2], req_bad, req_failed, req_cancelled;
    unsigned long long gen_tokens, prompt_tokens, hit_tokens;
};

/* ---- small replies --------------------------------------------------- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    default:
        return "Internal Server Error";
    }
}

static void send_buf(struct evhttp_request *req, int status, const char *ctype, struct evbuffer *b)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, status, reason_of(status), b);
}

static void send_error(struct evhttp_request *req, int status, const char *msg, const char *type,
                       const char *param, const char *code)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    eng_json_error(b, msg, type, param, code);
    send_buf(req, status, "application/json", b);
    evbuffer_free(b);
}

/* ---- calls ------------------------------------------------------------- */

static void on_conn_close(struct evhttp_connection *evcon, void *arg);

/* Unlinks and frees c and drops its job. With detach the connection forgets
 * the call first. The request is not touched. */
static void call_free(call_t *c, bool detach)
{
    srv_t *s = c->s;
    if (detach && c->evcon)
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    if (c->job)
        eng_worker_drop(s->w, c->job);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    eng_serve_req_free(&c->rq);
    eng_text_free(&c->text);
    tok_buf_free(&c->content);
    free(c->buf);
    free(c);
}

/* The client went away (or the connection failed) while c was running. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    call_t *c = arg;
    c->s->req_cancelled++;
    tg_info("%s: connection closed, request cancelled", c->id);
    if (c->req && evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    c->evcon = NULL;
    call_free(c, false);
}

static bool peer_gone(call_t *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return true;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static eng_answer_t answer_of(const call_t *c, int cache_hits)
{
    return (eng_answer_t){.chat = c->rq.chat,
                          .id = c->id,
                          .created = c->created,
                          .model = c->rq.model,
                          .prompt_tokens = (int)c->rq.ids.len,
                          .completion_tokens = c->n_seen,
                          .cache_hits = cache_hits};
}

/* Ends c with its answer's last parts and frees it. */
static void call_end(call_t *c, const char *finish_reason, int cache_hits)
{
    srv_t *s = c->s;
    eng_answer_t a = answer_of(c, cache_hits);
    s->req_ok[c->rq.chat ? 0 : 1]++;
    s->gen_tokens += (unsigned long long)a.completion_tokens;
    s->prompt_tokens += (unsigned long long)a.prompt_tokens;
    s->hit_tokens += (unsigned long long)cache_hits;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    struct evhttp_request *req = c->req;
    if (c->rq.stream) {
        eng_json_event_finish(b, &a, finish_reason, c->rq.include_usage);
        if (c->rq.include_usage)
            eng_json_event_usage(b, &a);
        evbuffer_add(b, "data: [DONE]\n\n", 14);
        call_free(c, true);
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
    } else {
        eng_json_full(b, &a, c->content.data ? c->content.data : "", c->content.len,
                      finish_reason);
        call_free(c, true);
        send_buf(req, 200, "application/json", b);
    }
    evbuffer_free(b);
}

/* The job failed inside the engine. */
static void call_fail(call_t *c, const char *msg)
{
    srv_t *s = c->s;
    s->req_failed++;
    tg_warn("%s: %s", c->id, msg);
    struct evhttp_request *req = c->req;
    bool stream = c->rq.stream;
    call_free(c, true);
    if (!stream) {
        send_error(req, 500, msg, "server_error", NULL, "engine_error");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add(b, "data: ", 6);
    eng_json_error(b, msg, "server_error", NULL, "engine_error");
    evbuffer_add(b, "\n\ndata: [DONE]\n\n", 16);
    evhttp_send_reply_chunk(req, b);
    evhttp_send_reply_end(req);
    evbuffer_free(b);
}

/* Takes the job's new tokens: decodes them, applies stop strings, streams
 * the text that is final, and ends the call when the job is done. */
static void call_progress(call_t *c)
{
    srv_t *s = c->s;
    eng_job_view_t v;
    int from = c->n_seen;
    int n = eng_worker_read(s->w, c->job, from, c->buf, &v);
    tok_buf_t piece = {0}, bytes = {0};
    bool stopped = false;
    char err[160];
    for (int i = 0; i < n && !stopped; i++) {
        c->n_seen++;
        bool stop_tok = v.finished && v.finish == ENG_FINISH_STOP && from + i == v.n_tokens - 1;
        if (stop_tok)
            break;
        uint32_t id = (uint32_t)c->buf[i];
        bytes.len = 0;
        if (tok_decode(s->tok, &id, 1, &bytes, err, sizeof err) != 0)
            continue; /* not reached: ids are limited to the tokenizer's */
        stopped = eng_text_push(&c->text, bytes.data, bytes.len, &piece);
    }
    tok_buf_free(&bytes);
    if (!stopped && v.finished && v.finish != ENG_FINISH_ERROR)
        eng_text_finish(&c->text, &piece);
    if (piece.len > 0) {
        if (c->rq.stream) {
            struct evbuffer *b = evbuffer_new();
            if (!b)
                abort();
            eng_answer_t a = answer_of(c, 0);
            eng_json_event_text(b, &a, piece.data, piece.len, false, c->rq.include_usage);
            evhttp_send_reply_chunk(c->req, b);
            evbuffer_free(b);
        } else {
            tok_buf_append(&c->content, piece.data, piece.len);
        }
    }
    tok_buf_free(&piece);
    if (stopped)
        call_end(c, "stop", v.cache_hits);
    else if (v.finished && v.finish == ENG_FINISH_ERROR)
        call_fail(c, v.error[0] ? v.error : "the engine failed");
    else if (v.finished)
        call_end(c, v.finish == ENG_FINISH_LENGTH ? "length" : "stop", v.cache_hits);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv_t *s = arg;
    for (call_t *c = s->calls, *n; c; c = n) {
        n = c->next;
        call_progress(c);
    }
}

/* Called on the worker thread after each step. */
static void notify_from_worker(void *arg)
{
    srv_t *s = arg;
    event_active(s->notify_ev, EV_READ, 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv_t *s = arg;
    for (call_t *c = s->calls, *n; c; c = n) {
        n = c->next;
        if (!peer_gone(c))
            continue;
        tg_info("%s: client went away, request cancelled", c->id);
        s->req_cancelled++;
        struct evhttp_connection *evcon = c->evcon;
        call_free(c, true);
        evhttp_connection_free(evcon);
    }
}

/* ---- endpoints ------------------------------------------------------- */

static void handle_generate(srv_t *s, struct evhttp_request *req, bool chat)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    call_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    eng_serve_err_t e;
    if (eng_serve_req_parse(body ? body : "", len, chat, s->tok, s->chat, &s->lim, &c->rq, &e)) {
        s->req_bad++;
        tg_info("bad request: %s", e.message);
        free(c);
        send_error(req, e.status, e.message, e.type, e.param, e.code);
        return;
    }
    c->s = s;
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    c->created = (long long)time(NULL);
    snprintf(c->id, sizeof c->id, "%s-eng%lu", chat ? "chatcmpl" : "cmpl", ++s->next_id);
    if (!c->rq.has_seed)
        c->rq.params.sample.seed = eng_rng_next(&s->seeds);
    c->buf = malloc((size_t)c->rq.params.max_tokens * sizeof(int32_t));
    if (!c->buf)
        abort();
    eng_text_init(&c->text, (const char *const *)c->rq.stops, c->rq.n_stops);
    /* The prompt as int32 for the scheduler. */
    int32_t *ids = malloc(c->rq.ids.len * sizeof(int32_t));
    if (!ids)
        abort();
    for (size_t i = 0; i < c->rq.ids.len; i++)
        ids[i] = (int32_t)c->rq.ids.ids[i];
    c->job = eng_worker_submit(s->w, ids, (int)c->rq.ids.len, &c->rq.params);
    free(ids);
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    if (c->rq.stream) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, "OK");
        struct evbuffer *b = evbuffer_new();
        if (!b)
            abort();
        eng_answer_t a = answer_of(c, 0);
        eng_json_event_text(b, &a, "", 0, chat, c->rq.include_usage);
        evhttp_send_reply_chunk(req, b);
        evbuffer_free(b);
        c->started = true;
    }
}

static void handle_models(srv_t *s, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[{\"id\":");
    eng_json_string(b, s->o->name, strlen(s->o->name));
    evbuffer_add_printf(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate-engine\","
                           "\"context_length\":%d}]}",
                        s->lim.context);
    send_buf(req, 200, "application/json", b);
    evbuffer_free(b);
}

static void handle_metrics(srv_t *s, struct evhttp_request *req)
{
    eng_worker_stats_t st;
    eng_worker_stats(s->w, &st);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(
        b,
        "# HELP tollgate_engine_requests_total Generation requests by endpoint and outcome.\n"
        "# TYPE tollgate_engine_requests_total counter\n"
        "tollgate_engine_requests_total{endpoint=\"chat.completions\",outcome=\"ok\"} %llu\n"
        "tollgate_engine_requests_total{endpoint=\"completions\",outcome=\"ok\"} %llu\n"
        "tollgate_engine_requests_total{endpoint=\"any\",outcome=\"bad_request\"} %llu\n"
        "tollgate_engine_requests_total{endpoint=\"any\",outcome=\"failed\"} %llu\n"
        "tollgate_engine_requests_total{endpoint=\"any\",outcome=\"cancelled\"} %llu\n"
        "# HELP tollgate_engine_generated_tokens_total Completion tokens generated.\n"
        "# TYPE tollgate_engine_generated_tokens_total counter\n"
        "tollgate_engine_generated_tokens_total %llu\n"
        "# HELP tollgate_engine_prompt_tokens_total Prompt tokens of finished requests.\n"
        "# TYPE tollgate_engine_prompt_tokens_total counter\n"
        "tollgate_engine_prompt_tokens_total %llu\n"
        "# HELP tollgate_engine_cache_hit_tokens_total Prompt tokens served from the prefix "
        "cache.\n"
        "# TYPE tollgate_engine_cache_hit_tokens_total counter\n"
        "tollgate_engine_cache_hit_tokens_total %llu\n"
        "# HELP tollgate_engine_batch_size Requests in the last scheduler step.\n"
        "# TYPE tollgate_engine_batch_size gauge\n"
        "tollgate_engine_batch_size %d\n"
        "# HELP tollgate_engine_batch_size_max The most requests one step has run.\n"
        "# TYPE tollgate_engine_batch_size_max gauge\n"
        "tollgate_engine_batch_size_max %d\n"
        "# HELP tollgate_engine_requests_running Admitted requests.\n"
        "# TYPE tollgate_engine_requests_running gauge\n"
        "tollgate_engine_requests_running %d\n"
        "# HELP tollgate_engine_requests_waiting Requests waiting for admission.\n"
        "# TYPE tollgate_engine_requests_waiting gauge\n"
        "tollgate_engine_requests_waiting %d\n"
        "# HELP tollgate_engine_steps_total Scheduler steps run.\n"
        "# TYPE tollgate_engine_steps_total counter\n"
        "tollgate_engine_steps_total %ld\n"
        "# HELP tollgate_engine_kv_blocks KV cache blocks (64 tokens) by state.\n"
        "# TYPE tollgate_engine_kv_blocks gauge\n"
        "tollgate_engine_kv_blocks{state=\"used\"} %d\n"
        "tollgate_engine_kv_blocks{state=\"cached\"} %d\n"
        "tollgate_engine_kv_blocks{state=\"free\"} %d\n"
        "tollgate_engine_kv_blocks_total %d\n"
        "# HELP tollgate_engine_kv_evictions_total Cached blocks evicted for new ones.\n"
        "# TYPE tollgate_engine_kv_evictions_total counter\n"
        "tollgate_engine_kv_evictions_total %ld\n",
        s->req_ok[0], s->req_ok[1], s->req_bad, s->req_failed, s->req_cancelled, s->gen_tokens,
        s->prompt_tokens, s->hit_tokens, st.last_batch, st.max_batch, st.running, st.waiting, st.steps,
        st.kv.in_use, st.kv.cached, st.kv.free, st.kv.n_blocks, st.kv.evictions);
    send_buf(req, 200, "text/plain; version=0.0.4", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    srv_t *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t pl = strcspn(uri, "?");
    snprintf(path, sizeof path, "%.*s", (int)(pl < sizeof path ? pl : sizeof path - 1), uri);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool chat = !strcmp(path, "/v1/chat/completions");
    if (chat || !strcmp(path, "/v1/completions")) {
        if (cmd != EVHTTP_REQ_POST) {
            send_error(req, 405, "use POST", "invalid_request_error", NULL, "method_not_allowed");
            return;
        }
        handle_generate(s, req, chat);
        return;
    }
    bool get = cmd == EVHTTP_REQ_GET;
    if (get && !strcmp(path, "/v1/models")) {
        handle_models(s, req);
    } else if (get && !strcmp(path, "/healthz")) {
        struct evbuffer *b = evbuffer_new();
        if (!b)
            abort();
        evbuffer_add_printf(b, "{\"status\":\"ok\"}");
        send_buf(req, 200, "application/json", b);
        evbuffer_free(b);
    } else if (get && !strcmp(path, "/metrics")) {
        handle_metrics(s, req);
    } else {
        char msg[320];
        snprintf(msg, sizeof msg, "no such endpoint: %s %s", get ? "GET" : "method", path);
        send_error(req, 404, msg, "invalid_request_error", NULL, "not_found");
    }
}

/* ---- start and stop ----------------------------------------------------- */


static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    tg_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(arg);
}

int eng_serve_run(const eng_serve_opts_t *o, eng_backend_t *be, const tok_tokenizer_t *tok,
                  const tok_chat_t *chat)
{
    char err[300];
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "tollgate-engine serve: libevent has no pthreads support\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    srv_t s = {.o = o, .be = be, .tok = tok, .chat = chat};
    const eng_config_t *cfg = &be->model->cfg;
    eng_kvcache_stats_t kv;
    be->ops->cache_stats(be, &kv);
    uint32_t tv = tok_vocab_size(tok);
    s.lim = (eng_serve_limits_t){.context = cfg->max_pos,
                                 .kv_tokens = kv.n_blocks * ENG_KV_BLOCK,
                                 .default_max = o->default_max_tokens,
                                 .eos_id = cfg->eos_id,
                                 .n_allowed = (int)tv < cfg->vocab ? (int)tv : cfg->vocab};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    eng_rng_seed(&s.seeds, (uint64_t)now.tv_sec * 1000000007u ^ (uint64_t)now.tv_nsec ^
                               (uint64_t)getpid() << 32);
    int port = 0;
    evutil_socket_t fd = tg_listen_tcp(o->host, o->port, false, &port, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "tollgate-engine serve: %s\n", err);
        return 1;
    }
    s.base = event_base_new();
    s.http = evhttp_new(s.base);
    if (!s.base || !s.http)
        abort();
    evhttp_set_max_body_size(s.http, (ev_ssize_t)o->max_body);
    evhttp_set_allowed_methods(s.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(s.http, on_request, &s);
    if (!evhttp_accept_socket_with_handle(s.http, fd)) {
        fprintf(stderr, "tollgate-engine serve: cannot accept on the socket\n");
        evutil_closesocket(fd);
        evhttp_free(s.http);
        event_base_free(s.base);
        return 1;
    }
    s.notify_ev = event_new(s.base, -1, 0, on_notify, &s);
    s.tick_ev = event_new(s.base, -1, EV_PERSIST, on_tick, &s);
    struct event *sigterm = evsignal_new(s.base, SIGTERM, on_signal, s.base);
    struct event *sigint = evsignal_new(s.base, SIGINT, on_signal, s.base);
    if (!s.notify_ev || !s.tick_ev || !sigterm || !sigint)
        abort();
    struct timeval tick = {0, 100000};
    event_add(s.tick_ev, &tick);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    s.w = eng_worker_start(be, o->max_batch_tokens, o->max_running, notify_from_worker, &s);
    int rc = 0;
    if (o->port_file && tg_port_file_write(o->port_file, port) < 0) {
        fprintf(stderr, "tollgate-engine serve: cannot write the port file %s: %s\n",
                o->port_file, strerror(errno));
        rc = 1;
    } else {
        printf("listening on %s:%d\n", o->host, port);
        fflush(stdout);
        event_base_dispatch(s.base);
    }
    /* Stop: forget the calls (the connections own their requests), close
     * the server, then stop the worker, which frees the jobs. */
    while (s.calls)
        call_free(s.calls, true);
    evhttp_free(s.http);
    eng_worker_stop(s.w);
    event_free(s.notify_ev);
    event_free(s.tick_ev);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(s.base);
    libevent_global_shutdown();
    return rc;
}
