/* gw_attempt: the upstream attempts of an exchange (see gw_exchange.h):
 * sending one to a route, its libevent callbacks (arg: the attempt), relaying
 * the answer whole or as SSE events while reading its usage, and failing over
 * to the next route before the first byte reached the client. */
#include "gw_exchange.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_clock.h"
#include "gw_http.h"
#include "gw_metrics.h"
#include "gw_usage_json.h"
#include "tg_log.h"

/* Ends an attempt's life: its timers, its connection (given back as broken
 * when the request failed or was cancelled), its stashed error body; clears
 * the exchange's pointer to it and frees it. The attempt's request must be
 * finished (done callback running) or cancelled already. */
void gw_attempt_free(attempt_t *a, bool broken)
{
    gw_exchange_t *ex = a->ex;
    if (a->first_byte_timer)
        event_free(a->first_byte_timer);
    if (a->deferred)
        event_free(a->deferred);
    if (a->conn)
        gw_upstream_release(a->conn, broken);
    if (a->error_body)
        evbuffer_free(a->error_body);
    if (a->early) {
        evbuffer_free(a->early);
        gw_sse_free(&a->early_sse);
    }
    if (ex->cur == a)
        ex->cur = NULL;
    if (ex->hedge == a)
        ex->hedge = NULL;
    free(a);
}

/* Reports the end of an attempt to the metrics and the routing policy. Only
 * the exchange's current attempt has relayed anything (TTFT, output tokens). */
void gw_attempt_report(attempt_t *a, bool ok)
{
    gw_exchange_t *ex = a->ex;
    bool cur = ex->cur == a;
    int provider = ex->model->routes[a->route].provider;
    gw_metrics_upstream_attempt(provider, ok);
    gw_route_outcome_t o = {provider,
                            ok,
                            a->status,
                            a->header_us ? a->header_us - a->sent_us : 0,
                            ex->model_index,
                            a->route,
                            ex->stream,
                            a->sent_us,
                            cur ? ex->rec.first_byte_at_us : 0,
                            cur ? ex->rec.completion_tokens : GW_USAGE_UNKNOWN,
                            a->retry_after,
                            a->first_choice,
                            false,
                            0};
    gw_route_observe(ex->w, &o);
}

/* Stops the attempt's request (from a timer, the client's close, or the
 * callbacks of ANOTHER attempt: never from its own, which libevent is still
 * running). The attempt itself stays for gw_attempt_free. */
void gw_attempt_stop(attempt_t *a)
{
    if (!a->up)
        return;
    a->cancelling = true;
    /* libevent 2.1 runs only the error callback here (which just notes the
     * error); should a version run the done callback too, `cancelling`
     * makes gw_attempt_on_done ignore it */
    evhttp_cancel_request(a->up);
    a->up = NULL;
    a->cancelling = false;
}

/* Makes a the attempt whose answer the client gets: the usage row names its
 * provider. */
void gw_attempt_make_current(attempt_t *a)
{
    gw_exchange_t *ex = a->ex;
    const gw_route_cfg_t *r = &ex->model->routes[a->route];
    ex->cur = a;
    ex->route = a->route;
    snprintf(ex->rec.provider, sizeof ex->rec.provider, "%s",
             ex->w->server->cfg->providers[r->provider].name);
    snprintf(ex->rec.upstream_model, sizeof ex->rec.upstream_model, "%s", r->upstream_model);
}

/* Forgets what an abandoned attempt relayed into the exchange's parser and
 * record (nothing of it reached the client). */
void gw_exchange_relay_reset(gw_exchange_t *ex)
{
    gw_sse_free(&ex->sse);
    gw_sse_init(&ex->sse, SSE_MAX_EVENT);
    ex->saw_usage = ex->saw_done = false;
    ex->pfx.usage_reported_hits = false; /* a failed attempt's usage does not count */
    gw_respcache_attempt_failed(ex->rc);
    ex->rec.prompt_tokens = ex->rec.cache_hit_tokens = ex->rec.cache_miss_tokens =
        ex->rec.completion_tokens = ex->rec.reasoning_tokens = GW_USAGE_UNKNOWN;
    ex->rec.usage_complete = false;
}

/* Cancels the exchange's current attempt because the client left or the
 * gateway is stopping (its cost stays on the team's row, marked incomplete). */
void gw_attempt_cancel_current(gw_exchange_t *ex)
{
    attempt_t *a = ex->cur;
    if (!a)
        return;
    gw_attempt_stop(a);
    gw_route_outcome_t o = {0};
    o.model_index = ex->model_index;
    o.route = a->route;
    o.first_choice = a->first_choice;
    o.cancelled = true;
    gw_route_observe(ex->w, &o);
    gw_attempt_free(a, true);
}

/* The attempt failed before anything reached the client. A hedge that failed
 * is dropped and the first attempt goes on; a current attempt that failed
 * hands over to the hedge when one is out, else the next route is tried, or
 * the client is told what the last failure was. Frees a (broken: give its
 * connection back as broken). */
void gw_attempt_failed(attempt_t *a, bool broken, fail_kind_t kind, int status, const char *msg)
{
    gw_exchange_t *ex = a->ex;
    const gw_route_cfg_t *r = &ex->model->routes[a->route];
    const char *pname = ex->w->server->cfg->providers[r->provider].name;
    bool hedge = ex->hedge == a;
    tg_warn("request %s: provider %s failed (attempt %d%s): %s", ex->rec.request_id, pname,
            a->number, hedge ? ", the hedge" : "", msg);
    gw_attempt_report(a, false);
    if (a->retry_after[0] && !hedge) /* the client's error is the current attempt's */
        snprintf(ex->retry_after, sizeof ex->retry_after, "%s", a->retry_after);
    if (hedge) {
        gw_metrics_hedge(GW_HEDGE_FAILED);
        gw_hedge_explain(ex, "failed", a);
        gw_attempt_free(a, broken);
        return;
    }
    ex->last_fail = kind;
    ex->last_fail_status = status;
    snprintf(ex->last_fail_msg, sizeof ex->last_fail_msg, "provider %s: %s", pname, msg);
    /* 429 and 5xx answers are refusals; a timeout, a reset or a malformed
     * answer may come after the provider did (and billed) the work. */
    if (kind != FAIL_STATUS)
        ex->maybe_billed = true;
    gw_attempt_free(a, broken);
    gw_exchange_relay_reset(ex);
    if (ex->hedge) {
        attempt_t *h = ex->hedge;
        ex->hedge = NULL;
        gw_metrics_hedge(GW_HEDGE_TOOK_OVER);
        gw_hedge_explain(ex, "took_over", h);
        gw_attempt_make_current(h);
        return;
    }
    gw_attempt_next(ex);
}

static void on_first_byte_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    gw_attempt_stop(a);
    if (ex->cur == a && ex->client_started) {
        gw_attempt_report(a, false);
        gw_attempt_free(a, true);
        gw_exchange_fail(ex, 504, "api_error", "upstream_timeout", NULL, "upstream timed out");
        return;
    }
    char msg[96];
    snprintf(
        msg, sizeof msg, "no response within %d ms",
        ex->w->server->cfg->providers[ex->model->routes[a->route].provider].first_byte_timeout_ms);
    gw_attempt_failed(a, true, FAIL_TIMEOUT, 504, msg);
}

/* Ends an attempt whose event stream turned out malformed (its request
 * finished or stopped): mid-stream, the client's stream ends and the row is
 * incomplete; before the first byte, it is a failure like any other. */
static void attempt_garbage(attempt_t *a)
{
    gw_exchange_t *ex = a->ex;
    if (ex->client_started) {
        tg_warn("request %s: upstream sent malformed SSE mid-stream; ending the stream",
                ex->rec.request_id);
        ex->rec.usage_complete = false;
        gw_attempt_report(a, false);
        gw_attempt_free(a, true);
        gw_exchange_fail(ex, 502, "api_error", "upstream_bad_response", NULL, "");
        return;
    }
    gw_attempt_failed(a, true, FAIL_GARBAGE, 502, "malformed event stream");
}

/* Garbage inside a 200 stream is noticed in the chunk callback, where the
 * request cannot be cancelled: this runs just after, from the loop (for the
 * current attempt, or a racing hedge whose bytes are no event stream). */
static void on_deferred_garbage(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt_t *a = arg;
    if (!a->up)
        return;
    gw_attempt_stop(a);
    attempt_garbage(a);
}

/* libevent calls this just before the done callback of a failed attempt. */
static void on_up_error(enum evhttp_request_error error, void *arg)
{
    attempt_t *a = arg;
    a->error = error;
    a->failed = true;
}

static int on_up_header(struct evhttp_request *up, void *arg)
{
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    a->status = evhttp_request_get_response_code(up);
    a->header_us = gw_clock_now_us();
    if (a->first_byte_timer)
        evtimer_del(a->first_byte_timer);
    a->discard = a->status == 429 || a->status >= 500;
    if (a->status == 429) {
        const char *ra = evhttp_find_header(evhttp_request_get_input_headers(up), "Retry-After");
        snprintf(a->retry_after, sizeof a->retry_after, "%s", ra ? ra : "");
    }
    /* a whole answer is on its way: no reason to hedge any more */
    if (ex->cur == a && !ex->stream && a->status == 200 && ex->hedge_timer)
        evtimer_del(ex->hedge_timer);
    return 0;
}

typedef struct relay_batch {
    gw_exchange_t *ex;
    struct evbuffer *out;
} relay_batch_t;

/* Handles one complete upstream SSE event: reads the usage, hides the usage
 * event from clients that did not ask for it, and queues the rest. */
static int on_sse_event(void *arg, const char *event, size_t len)
{
    relay_batch_t *b = arg;
    gw_exchange_t *ex = b->ex;
    gw_respcache_feed_event(ex->rc, event, len);
    if (len > 9 && memmem(event, len, "\"usage\"", 7)) {
        char *data = malloc(len + 1);
        if (!data)
            abort();
        long dl = gw_sse_event_data(event, len, data, len + 1);
        cJSON *j = dl > 0 ? cJSON_ParseWithLength(data, (size_t)dl) : NULL;
        free(data);
        cJSON *usage = j ? cJSON_GetObjectItemCaseSensitive(j, "usage") : NULL;
        if (cJSON_IsObject(usage) && gw_usage_from_json(usage, &ex->rec)) {
            ex->saw_usage = true;
            ex->pfx.usage_reported_hits = gw_prefix_usage_reports_hits(usage);
            const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
            bool usage_only = cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0;
            if (usage_only && !ex->client_wants_usage) {
                cJSON_Delete(j);
                return 0;
            }
            if (gw_usage_json_complete(usage)) {
                char *text = cJSON_PrintUnformatted(j);
                evbuffer_add_printf(b->out, "data: %s\n\n", text);
                free(text);
                cJSON_Delete(j);
                return 0;
            }
        }
        cJSON_Delete(j);
    } else if (len >= 12 && memmem(event, len, "[DONE]", 6)) {
        char data[8];
        if (gw_sse_event_data(event, len, data, sizeof data) == 6 && !memcmp(data, "[DONE]", 6)) {
            ex->saw_done = true; /* held back: sent after the record is settled */
            return 0;
        } /* else "[DONE]" inside content: an ordinary event */
    }
    evbuffer_add(b->out, event, len);
    return 0;
}

/* ---- back-pressure: a slow client pauses the upstream ---------------------
 * Relayed events wait in the client connection's output buffer. Past
 * stream_buffer_bytes the current attempt's reading is paused, so that the
 * provider's bytes wait in the kernel (TCP flow control) instead of the
 * gateway's memory; libevent calls on_client_drained once the client has
 * read everything queued, and reading resumes. Every way a started stream
 * ends replaces that callback (evhttp_send_reply_end) or frees the
 * connection, so it never runs for a freed exchange. */

static struct bufferevent *attempt_bufferevent(attempt_t *a)
{
    return a && a->conn && a->conn->evcon ? evhttp_connection_get_bufferevent(a->conn->evcon)
                                          : NULL;
}

static void on_client_drained(struct evhttp_connection *client, void *arg)
{
    (void)client;
    gw_exchange_t *ex = arg;
    if (!ex->upstream_paused)
        return;
    ex->upstream_paused = false;
    gw_metrics_stream_paused(-1);
    struct bufferevent *bev = attempt_bufferevent(ex->cur);
    if (bev) {
        ex->cur->conn->paused = false;
        bufferevent_enable(bev, EV_READ);
    }
}

/* Hands relayed bytes to the client; pauses the upstream when too much is
 * queued for it. */
static void relay_to_client(gw_exchange_t *ex, attempt_t *a, struct evbuffer *out)
{
    struct evhttp_connection *cc = evhttp_request_get_connection(ex->client);
    struct bufferevent *cbev = cc ? evhttp_connection_get_bufferevent(cc) : NULL;
    size_t queued = cbev ? evbuffer_get_length(bufferevent_get_output(cbev)) : 0;
    if (ex->upstream_paused) {
        /* bytes libevent had read before the pause: queued, the callback kept
         * (each send replaces it) */
        evhttp_send_reply_chunk_with_cb(ex->client, out, on_client_drained, ex);
        return;
    }
    if (queued + evbuffer_get_length(out) <= (size_t)ex->w->server->cfg->stream_buffer_bytes) {
        evhttp_send_reply_chunk(ex->client, out);
        return;
    }
    struct bufferevent *bev = attempt_bufferevent(a);
    evhttp_send_reply_chunk_with_cb(ex->client, out, on_client_drained, ex);
    if (bev) {
        bufferevent_disable(bev, EV_READ);
        a->conn->paused = true;
        ex->upstream_paused = true;
        gw_metrics_stream_paused(1);
    }
}

static int count_event(void *arg, const char *event, size_t len)
{
    (void)event;
    (void)len;
    (*(int *)arg)++;
    return 0;
}

/* A racing hedge's bytes: kept, and parsed by its own splitter until they
 * hold a complete event (the race's "first byte", as for the first attempt,
 * which wins when it relays its first event). Returns true when they do;
 * false otherwise, marking garbage (failed from the loop) when they are not
 * an event stream. */
static bool hedge_has_event(attempt_t *a, const char *bytes, size_t n)
{
    if (!a->early) {
        a->early = evbuffer_new();
        gw_sse_init(&a->early_sse, SSE_MAX_EVENT);
    }
    evbuffer_add(a->early, bytes, n);
    int events = 0;
    if (gw_sse_feed(&a->early_sse, bytes, n, count_event, &events) == -2) {
        a->garbage = true;
        if (!a->deferred)
            a->deferred = evtimer_new(a->ex->w->base, on_deferred_garbage, a);
        struct timeval zero = {0, 0};
        evtimer_add(a->deferred, &zero);
        return false;
    }
    return events > 0;
}

/* Relays upstream bytes of the current attempt: whole SSE events to the
 * client (the stream started with the first), garbage failed from the loop. */
static void relay_bytes(gw_exchange_t *ex, attempt_t *a, const char *bytes, size_t n)
{
    relay_batch_t b = {ex, evbuffer_new()};
    int rc = gw_sse_feed(&ex->sse, bytes, n, on_sse_event, &b);
    if (evbuffer_get_length(b.out) > 0) {
        if (!ex->client_started)
            gw_exchange_start_stream(ex);
        relay_to_client(ex, a, b.out);
    }
    evbuffer_free(b.out);
    if (rc == -2) {
        a->garbage = true;
        if (!a->deferred)
            a->deferred = evtimer_new(ex->w->base, on_deferred_garbage, a);
        struct timeval zero = {0, 0};
        evtimer_add(a->deferred, &zero);
    }
}

static void on_up_chunk(struct evhttp_request *up, void *arg)
{
    attempt_t *a = arg;
    gw_exchange_t *ex = a->ex;
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    if (a->discard || a->garbage || ex->client_gone) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (a->status != 200) {
        if (!a->error_body)
            a->error_body = evbuffer_new();
        if (evbuffer_get_length(a->error_body) < 65536)
            evbuffer_add_buffer(a->error_body, in);
        else
            evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return;
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    if (ex->hedge == a) {
        if (!hedge_has_event(a, bytes, n))
            return;           /* libevent drains what the chunk callback was given */
        gw_race_hedge_won(a); /* its first event came first: relay all it sent */
        size_t e = evbuffer_get_length(a->early);
        relay_bytes(ex, a, (const char *)evbuffer_pullup(a->early, (ev_ssize_t)e), e);
        evbuffer_free(a->early);
        gw_sse_free(&a->early_sse);
        a->early = NULL;
        return;
    }
    relay_bytes(ex, a, bytes, n);
}

/* Flags the record incomplete when the provider never reported usage or the
 * stream never finished. Called once the upstream answer has ended. */
static void usage_close(gw_exchange_t *ex)
{
    if (!ex->saw_usage) {
        tg_warn("request %s: provider sent no usage; row marked incomplete", ex->rec.request_id);
        ex->rec.usage_complete = false;
    }
    if (ex->stream && !ex->saw_done) {
        tg_warn("request %s: stream ended without [DONE]", ex->rec.request_id);
        ex->rec.usage_complete = false;
    }
}

/* The non-streamed answer arrived whole. Returns false if it is not a JSON
 * object (garbage): the caller fails over. */
static bool relay_whole(gw_exchange_t *ex, struct evhttp_request *up)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    size_t n = evbuffer_get_length(in);
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    cJSON *j = cJSON_ParseWithLength(bytes, n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return false;
    }
    gw_respcache_feed_body(ex->rc, j);
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    bool changed = false;
    if (usage && gw_usage_from_json(usage, &ex->rec)) {
        ex->saw_usage = true;
        ex->pfx.usage_reported_hits = gw_prefix_usage_reports_hits(usage);
        changed = gw_usage_json_complete(usage);
    }
    gw_exchange_first_byte(ex);
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    evhttp_add_header(h, "Content-Type", "application/json");
    gw_exchange_served_by_headers(ex);
    gw_exchange_detach_client(ex);
    usage_close(ex);
    gw_exchange_settle(ex, 200, NULL);
    if (ex->unmetered) {
        /* spool_full = refuse: an answer that cannot be metered is not given */
        gw_exchange_refuse_unmetered(ex);
        ex->client = NULL;
        cJSON_Delete(j);
        return true;
    }
    char charge[96];
    gw_exchange_charge_text(ex, charge, sizeof charge);
    if (charge[0])
        evhttp_add_header(h, "x-tollgate-charge", charge);
    if (changed) {
        char *text = cJSON_PrintUnformatted(j);
        struct evbuffer *out = evbuffer_new();
        evbuffer_add_reference(out, text, strlen(text), gw_evbuffer_free_data, NULL);
        evhttp_send_reply(ex->client, 200, "OK", out);
        evbuffer_free(out);
    } else {
        evhttp_send_reply(ex->client, 200, "OK", in);
    }
    ex->client = NULL;
    cJSON_Delete(j);
    return true;
}

/* A non-retryable upstream error (4xx other than 429): relay it as is. */
static void relay_upstream_error(gw_exchange_t *ex, attempt_t *a, struct evhttp_request *up)
{
    struct evbuffer *body = ex->stream ? a->error_body : evhttp_request_get_input_buffer(up);
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(up), "Content-Type");
    evhttp_add_header(h, "Content-Type", ct ? ct : "application/json");
    gw_exchange_first_byte(ex);
    gw_exchange_served_by_headers(ex);
    gw_exchange_detach_client(ex);
    gw_exchange_settle(ex, a->status, "upstream_error");
    evhttp_send_reply(ex->client, a->status, gw_http_reason(a->status), body);
    ex->client = NULL;
}

void gw_attempt_on_done(struct evhttp_request *up, void *arg)
{
    attempt_t *a = arg;
    if (a->starting) { /* failed inside evhttp_make_request: gw_attempt_start ends it */
        a->failed_at_start = true;
        return;
    }
    gw_exchange_t *ex = a->ex;
    if (a->cancelling)
        return; /* gw_attempt_stop() is on the stack and cleans up */
    if (a->deferred)
        evtimer_del(a->deferred);
    if (ex->hedge == a) {
        gw_hedge_done(a, up);
        return;
    }
    if (!up || a->status == 0) {
        if (ex->client_started) {
            /* the stream broke after bytes reached the client: it cannot be retried */
            tg_warn("request %s: upstream connection lost mid-stream", ex->rec.request_id);
            ex->rec.usage_complete = false;
            gw_attempt_report(a, false);
            gw_attempt_free(a, true);
            gw_exchange_fail(ex, 502, "api_error", "upstream_stream_cut", NULL, "");
            return;
        }
        if (a->failed && a->error == EVREQ_HTTP_TIMEOUT)
            gw_attempt_failed(a, true, FAIL_TIMEOUT, 504,
                              "idle timeout (no bytes for idle_timeout_ms)");
        else
            gw_attempt_failed(a, true, FAIL_CONNECT, 502,
                              "connection failed, reset or closed early");
        return;
    }
    int status = a->status;
    if (a->garbage) { /* malformed SSE in the last read: the deferred cancel never ran */
        attempt_garbage(a);
        return;
    }
    if (a->discard) {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP %d", status);
        gw_attempt_failed(a, false, FAIL_STATUS, status, msg);
        return;
    }
    if (status != 200) {
        gw_attempt_report(a, true);
        relay_upstream_error(ex, a, up);
        gw_attempt_free(a, false);
        gw_exchange_finish(ex, status, "upstream_error");
        return;
    }
    if (!ex->stream) {
        if (!relay_whole(ex, up)) {
            gw_attempt_failed(a, false, FAIL_GARBAGE, 502, "response body is not a JSON object");
            return;
        }
    } else {
        if (!ex->client_started && !ex->saw_done) {
            /* 200 with an empty or unterminated stream: nothing reached the client */
            gw_attempt_failed(a, false, FAIL_GARBAGE, 502, "event stream ended before any event");
            return;
        }
        if (!ex->client_started)
            gw_exchange_start_stream(ex);
        gw_exchange_detach_client(ex);
        usage_close(ex);
        gw_exchange_settle(ex, 200, NULL);
        if (ex->saw_done) {
            struct evbuffer *tail = evbuffer_new();
            char charge[96];
            gw_exchange_charge_text(ex, charge, sizeof charge);
            if (charge[0]) /* an SSE comment: clients ignore it, people can read it */
                evbuffer_add_printf(tail, ": x-tollgate-charge %s\n\n", charge);
            evbuffer_add_printf(tail, "data: [DONE]\n\n");
            evhttp_send_reply_chunk(ex->client, tail);
            evbuffer_free(tail);
        }
        evhttp_send_reply_end(ex->client);
        ex->client = NULL;
    }
    gw_attempt_report(a, true);
    gw_attempt_free(a, false);
    gw_exchange_finish(ex, 200, NULL);
}

/* Builds the upstream body for route r: the provider's model name, usage
 * forced on streams. Edits the parsed body in place (the client's own values
 * that matter were read before the first attempt) and prints it. Returns a
 * malloc'd string. */
static char *upstream_body(gw_exchange_t *ex, const gw_route_cfg_t *r)
{
    cJSON *body = ex->body;
    cJSON_ReplaceItemInObjectCaseSensitive(body, "model", cJSON_CreateString(r->upstream_model));
    if (ex->stream) {
        cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
        if (!cJSON_IsObject(so)) {
            cJSON_DeleteItemFromObjectCaseSensitive(body, "stream_options");
            so = cJSON_AddObjectToObject(body, "stream_options");
        }
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"))) {
            cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
            cJSON_AddTrueToObject(so, "include_usage");
        }
    }
    char *text = cJSON_PrintUnformatted(body);
    if (!text)
        abort();
    return text;
}

/* Sends one attempt of the exchange to its route `route` (may_queue: it may
 * wait behind another request on a busy connection when the provider's pool
 * is full). Returns the new attempt (its first-byte timer armed), or NULL
 * when no connection could be had or the request could not be sent (logged,
 * reported to routing; the attempt number is used up either way, as it is in
 * x-tollgate-attempts). */
attempt_t *gw_attempt_start(gw_exchange_t *ex, int route, bool may_queue)
{
    const gw_config_t *cfg = ex->w->server->cfg;
    const gw_route_cfg_t *r = &ex->model->routes[route];
    const gw_provider_cfg_t *p = &cfg->providers[r->provider];
    gw_upstream_conn_t *conn = gw_upstream_acquire(&ex->w->pools[r->provider], may_queue);
    if (!conn)
        return NULL;
    attempt_t *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->ex = ex;
    a->route = route;
    a->conn = conn;
    /* the attempt takes over the exchange's in-flight count for its route */
    a->first_choice = ex->inflight_route == route && ex->inflight_model == ex->model_index;
    if (a->first_choice)
        ex->inflight_route = -1;
    struct evhttp_request *up = evhttp_request_new(gw_attempt_on_done, a);
    evhttp_request_set_header_cb(up, on_up_header);
    evhttp_request_set_error_cb(up, on_up_error);
    evhttp_request_set_chunked_cb(up, ex->stream ? on_up_chunk : NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(up);
    char hostport[300];
    if ((p->tls && p->port == 443) || (!p->tls && p->port == 80))
        snprintf(hostport, sizeof hostport, "%s", p->host);
    else
        snprintf(hostport, sizeof hostport, "%s:%d", p->host, p->port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Accept", ex->stream ? "text/event-stream" : "application/json");
    evhttp_add_header(h, "x-request-id", ex->rec.request_id);
    if (p->api_key) {
        char bearer[4200];
        snprintf(bearer, sizeof bearer, "Bearer %s", p->api_key);
        evhttp_add_header(h, "Authorization", bearer);
    }
    char *body = upstream_body(ex, r);
    evbuffer_add_reference(evhttp_request_get_output_buffer(up), body, strlen(body),
                           gw_evbuffer_free_data, NULL);
    char uri[400];
    snprintf(uri, sizeof uri, "%s/%s", p->base_path,
             ex->endpoint == GW_ENDPOINT_CHAT ? "chat/completions" : "completions");
    a->number = ++ex->rec.attempts;
    a->starting = true;
    int rc = evhttp_make_request(conn->evcon, up, EVHTTP_REQ_POST, uri);
    a->starting = false;
    if (rc != 0 || a->failed_at_start) {
        /* rc != 0: libevent 2.1 unlinks the request but does not free it;
         * failed_at_start: it failed (and freed) the request inside the call */
        if (rc != 0)
            evhttp_request_free(up);
        tg_warn("request %s: cannot send to provider %s (attempt %d): %s", ex->rec.request_id,
                p->name, a->number,
                rc != 0 ? "no request could be made" : "connect failed at once");
        gw_attempt_report(a, false);
        ex->last_fail = FAIL_CONNECT;
        ex->last_fail_status = 502;
        snprintf(ex->last_fail_msg, sizeof ex->last_fail_msg, "provider %s: connect failed",
                 p->name);
        gw_attempt_free(a, true);
        return NULL;
    }
    a->up = up;
    a->sent_us = gw_clock_now_us();
    a->first_byte_timer = evtimer_new(ex->w->base, on_first_byte_timeout, a);
    struct timeval tv = {p->first_byte_timeout_ms / 1000, (p->first_byte_timeout_ms % 1000) * 1000};
    evtimer_add(a->first_byte_timer, &tv);
    return a;
}

/* Starts the attempt on the next route, or fails the exchange when none is
 * left. Never called with an attempt in flight. The first attempt of a
 * hedged exchange also arms its hedge timer. */
void gw_attempt_next(gw_exchange_t *ex)
{
    if (ex->client_gone) {
        ex->rec.usage_complete = false;
        gw_exchange_fail(ex, 499, "api_error", "client_closed", NULL, "");
        return;
    }
    while (ex->next_in_plan < ex->plan.n) {
        if (ex->w->stopping && ex->rec.attempts > 0)
            break; /* shutting down: no new attempts */
        attempt_t *a = gw_attempt_start(ex, ex->plan.routes[ex->next_in_plan++], true);
        if (!a)
            continue;
        gw_attempt_make_current(a);
        if (a->number == 1)
            gw_hedge_arm(ex);
        return;
    }
    /* no route left */
    if (ex->plan.n == 0) {
        gw_record_nothing_used(&ex->rec);
        gw_exchange_fail(ex, ex->plan.status, ex->plan.type, ex->plan.code,
                         ex->plan.param[0] ? ex->plan.param : NULL, ex->plan.message);
        return;
    }
    int status = 502;
    const char *code = "upstream_unavailable";
    if (ex->last_fail == FAIL_TIMEOUT) {
        status = 504;
        code = "upstream_timeout";
    } else if (ex->last_fail == FAIL_STATUS && ex->last_fail_status == 429) {
        status = 429;
        code = "upstream_rate_limited";
    } else if (ex->last_fail == FAIL_STATUS && ex->last_fail_status == 503) {
        status = 503;
        code = "upstream_overloaded";
    }
    char msg[512];
    snprintf(msg, sizeof msg, "No provider could serve model %s (last: %s).", ex->model->name,
             ex->last_fail_msg[0] ? ex->last_fail_msg : "none reachable");
    if (!ex->maybe_billed) {
        gw_record_nothing_used(&ex->rec); /* every provider refused (429/5xx) or none was tried */
    } else {
        /* some attempt may have been done and billed upstream: unknown, not zero */
        ex->rec.usage_complete = false;
    }
    gw_exchange_fail(ex, status, "api_error", code, NULL, msg);
}
