/* gw_exchange: an exchange's lifetime (see gw_exchange.h): created for an
 * authenticated request, priced and settled once (the usage record goes to
 * the writer before the answer's last byte is handed to libevent, so an
 * answered request always has its record), finished and freed once; and the
 * headers that tell the client who served it. */
#include "gw_exchange.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_clock.h"
#include "gw_http.h"
#include "gw_metrics.h"
#include "pr_book.h"
#include "tg_log.h"

gw_exchange_t *gw_exchange_new(gw_worker_t *w, struct evhttp_request *req, gw_endpoint_t endpoint)
{
    gw_exchange_t *ex = calloc(1, sizeof *ex);
    if (!ex)
        abort();
    ex->w = w;
    ex->client = req;
    ex->client_conn = evhttp_request_get_connection(req);
    ex->endpoint = endpoint;
    ex->model_index = -1;
    ex->inflight_route = -1;
    ex->route = -1;
    gw_request_id_new(ex->rec.request_id);
    ex->rec.received_at_us = gw_clock_now_us();
    ex->rec.prompt_tokens = ex->rec.cache_hit_tokens = ex->rec.cache_miss_tokens =
        ex->rec.completion_tokens = ex->rec.reasoning_tokens = GW_USAGE_UNKNOWN;
    snprintf(ex->rec.endpoint, sizeof ex->rec.endpoint, "%s",
             endpoint == GW_ENDPOINT_CHAT ? "chat.completions" : "completions");
    gw_sse_init(&ex->sse, SSE_MAX_EVENT);
    ex->next = w->exchanges;
    if (w->exchanges)
        w->exchanges->prev = ex;
    w->exchanges = ex;
    w->n_exchanges++;
    gw_metrics_inflight_add(1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "x-request-id", ex->rec.request_id);
    return ex;
}

/* ---- noticing a client that left before its answer started ---------------
 * libevent 2.1 stops reading a client's connection while its request is
 * served, so it learns that the client left only when it writes the answer.
 * Until the answer starts, the exchange watches the socket itself and peeks
 * (as nginx does): an orderly close or a reset is handed back to libevent by
 * re-enabling its reading, which then fails the connection and calls the
 * exchange's close callback (on_client_close: attempts cancelled, row 499). */

static void client_unwatch(gw_exchange_t *ex)
{
    if (ex->client_watch) {
        event_free(ex->client_watch);
        ex->client_watch = NULL;
    }
}

static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    gw_exchange_t *ex = arg;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    client_unwatch(ex);
    /* over TLS a clean close starts with a close_notify alert record (content
     * type 21) before the FIN; any other bytes (a pipelined request, TLS
     * application data) tell nothing, and must not be handed to libevent's
     * reader in this state */
    bool tls_alert = n > 0 && ex->w->server->cfg->tls_cert[0] && (unsigned char)byte == 21;
    if (n > 0 && !tls_alert)
        return;
    /* end of stream or an error: libevent reads it and closes the connection */
    bufferevent_enable(evhttp_connection_get_bufferevent(ex->client_conn), EV_READ);
}

/* The watch starts only for an exchange still unanswered after this long:
 * most answers start sooner, and never pay the two epoll_ctl calls. */
#define CLIENT_WATCH_AFTER_MS 50

static void on_client_watch_due(evutil_socket_t fd_unused, short what, void *arg)
{
    (void)fd_unused;
    (void)what;
    gw_exchange_t *ex = arg;
    client_unwatch(ex); /* the timer */
    struct bufferevent *bev =
        ex->client_conn ? evhttp_connection_get_bufferevent(ex->client_conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    ex->client_watch = event_new(ex->w->base, fd, EV_READ | EV_PERSIST, on_client_readable, ex);
    if (ex->client_watch)
        event_add(ex->client_watch, NULL);
}

void gw_exchange_watch_client(gw_exchange_t *ex)
{
    if (ex->client_watch)
        return;
    ex->client_watch = evtimer_new(ex->w->base, on_client_watch_due, ex);
    struct timeval tv = {0, CLIENT_WATCH_AFTER_MS * 1000};
    if (ex->client_watch)
        evtimer_add(ex->client_watch, &tv);
}

/* Stops watching the client's connection: called before the final answer is
 * handed to libevent, which may close the connection and must not call back
 * into an exchange that is about to be freed. */
/* A streaming client sends nothing while it reads: its connection's read
 * timeout (client_timeout_ms, libevent's, re-armed only when a chunk is
 * written) would cut it off whenever the provider is silent, or the stream
 * is paused for it (back-pressure), that long. While the stream lasts only the
 * write timeout applies (a client that stops reading is still dropped); the
 * read timeout is back before the connection may serve its next request. */
static void client_stream_timeouts(gw_exchange_t *ex, bool streaming)
{
    struct evhttp_connection *cc = ex->client ? evhttp_request_get_connection(ex->client) : NULL;
    struct bufferevent *bev = cc ? evhttp_connection_get_bufferevent(cc) : NULL;
    if (!bev)
        return;
    struct timeval tv = {(ex->w->server->cfg->client_timeout_ms + 999) / 1000, 0};
    bufferevent_set_timeouts(bev, streaming ? NULL : &tv, &tv);
    ex->stream_timeouts = streaming;
}

void gw_exchange_detach_client(gw_exchange_t *ex)
{
    client_unwatch(ex);
    if (ex->stream_timeouts && !ex->client_gone)
        client_stream_timeouts(ex, false);
    if (ex->client_conn && !ex->client_gone)
        evhttp_connection_set_closecb(ex->client_conn, NULL, NULL);
    ex->client_conn = NULL;
}

/* Marks every token count known-zero: the request never reached a provider. */
void gw_record_nothing_used(gw_usage_record_t *rec)
{
    rec->prompt_tokens = rec->cache_hit_tokens = rec->cache_miss_tokens = 0;
    rec->completion_tokens = rec->reasoning_tokens = 0;
    rec->usage_complete = true;
}

/* Prices the record with the current price book: the card in force for this
 * provider and upstream model at the provider's tier instant, the window that
 * applies, each component and the exact total. A record with no card stays
 * unpriced (logged); never priced at zero silently. */
static void exchange_price(gw_exchange_t *ex)
{
    gw_usage_record_t *r = &ex->rec;
    if (!r->provider[0] || r->prompt_tokens == GW_USAGE_UNKNOWN)
        return; /* nothing reached a provider, or nothing is known to price */
    const pr_book_t *book = gw_pricebook_acquire(ex->w->server->prices);
    if (!book) {
        tg_warn("request %s: price book not loaded: row left unpriced", r->request_id);
        return;
    }
    pr_usage_t u = {r->prompt_tokens,     r->cache_hit_tokens, r->cache_miss_tokens,
                    r->completion_tokens, r->reasoning_tokens, r->usage_complete};
    pr_charge_t c;
    char err[256];
    if (pr_price_usage(book, r->provider, r->upstream_model, r->received_at_us, r->completed_at_us,
                       &u, &c, err, sizeof err) == 0) {
        r->price_card_id = c.card->id;
        r->discount_window_id = c.window ? c.window->id : 0;
        r->priced_at_us = c.decided_at_us;
        snprintf(r->charge_currency, sizeof r->charge_currency, "%s", c.card->currency->code);
        for (int i = 0; i < PR_C_COUNT; i++)
            r->cost_pico[i] = c.cost[i];
        r->charge_pico = c.total;
        r->pricing_flags = c.flags;
        ex->charge_minor = c.card->currency->minor;
    } else {
        tg_warn("request %s: not priced: %s", r->request_id, err);
    }
    gw_pricebook_release(ex->w->server->prices, book);
}

/* Writes the charge as "AMOUNT CURRENCY" (exact, at least the currency's
 * minor-unit decimals); "" when the record is not priced. */
void gw_exchange_charge_text(const gw_exchange_t *ex, char *out, size_t len)
{
    out[0] = '\0';
    if (!ex->rec.price_card_id)
        return;
    char amount[64];
    if (pr_pico_format(ex->rec.charge_pico, ex->charge_minor, amount, sizeof amount))
        snprintf(out, len, "%s %s", amount, ex->rec.charge_currency);
}

/* Completes the usage record (status, completion instant, price) and submits
 * it, once. Authenticated requests only: an unauthenticated one has no row. */
void gw_exchange_settle(gw_exchange_t *ex, int status, const char *error_type)
{
    if (ex->settled)
        return;
    ex->settled = true;
    ex->rec.completed_at_us = gw_clock_now_us();
    ex->rec.http_status = status;
    if (error_type)
        snprintf(ex->rec.error_type, sizeof ex->rec.error_type, "%s", error_type);
    gw_prefix_settle(ex->w, &ex->pfx, ex->model_index, ex->route, status, &ex->rec);
    exchange_price(ex);
    if (ex->rec.response_cache_hit)
        gw_respcache_charge(ex->w->server->cfg, &ex->rec); /* the configured rule */
    gw_govern_settle(ex->w, &ex->gov_hold, &ex->rec);      /* hold -> actual charge */
    if (ex->key.key_id) {
        ex->rec.team_id = ex->key.team_id;
        ex->rec.key_id = ex->key.key_id;
        if (gw_usage_writer_submit(ex->w->server->usage, &ex->rec) < 0) {
            ex->unmetered = true; /* logged by the writer; the answer is withheld */
            tg_error("request %s: its usage record could not be stored (spool full or disk "
                     "error)",
                     ex->rec.request_id);
        }
    }
}

void gw_exchange_hold_inflight(gw_exchange_t *ex, int mi, const gw_route_plan_t *plan)
{
    if (plan->n <= 0)
        return;
    gw_exchange_release_inflight(ex);
    ex->inflight_model = mi;
    ex->inflight_route = plan->routes[0];
}

void gw_exchange_release_inflight(gw_exchange_t *ex)
{
    if (ex->inflight_route < 0)
        return;
    gw_route_outcome_t o = {0};
    o.model_index = ex->inflight_model;
    o.route = ex->inflight_route;
    o.first_choice = true;
    o.cancelled = true;
    gw_route_observe(ex->w, &o);
    ex->inflight_route = -1;
}

/* Answers 503 usage_ledger_full: the usage record could not be stored
 * (spool_full = refuse), so the answer is withheld. */
void gw_exchange_refuse_unmetered(gw_exchange_t *ex)
{
    gw_http_send_error(ex->client, 503, "api_error", "usage_ledger_full", NULL,
                       "The gateway cannot record usage right now (its usage journal is full). "
                       "Retry later.");
}

/* Ends the exchange: settles it if nobody has, records metrics and frees it.
 * The client must already have been answered or be gone. */
void gw_exchange_finish(gw_exchange_t *ex, int status, const char *error_type)
{
    gw_worker_t *w = ex->w;
    if (ex->gov_ticket) { /* the client left while Redis was deciding */
        gw_govern_cancel(w, ex->gov_ticket);
        ex->gov_ticket = NULL;
    }
    gw_exchange_detach_client(ex);
    gw_exchange_release_inflight(ex); /* ended before an attempt took it over */
    if (ex->hedge)                    /* the race was never decided (e.g. the client left) */
        gw_attempt_cancel_loser(ex->hedge);
    gw_attempt_cancel_current(ex); /* callers free a finished attempt; this is a safety net */
    if (ex->hedge_timer)
        event_free(ex->hedge_timer);
    if (ex->upstream_paused) /* the stream ended while its client was slow */
        gw_metrics_stream_paused(-1);
    gw_exchange_settle(ex, status, error_type);
    status = ex->rec.http_status;
    if (ex->rc) /* stores a complete fresh answer, cancels a pending lookup */
        gw_respcache_end(ex->rc,
                         status == 200 && !ex->unmetered && !ex->client_gone &&
                             !strcmp(ex->model->name, ex->rec.model_requested),
                         &ex->rec);
    double ttft = ex->rec.first_byte_at_us
                      ? (double)(ex->rec.first_byte_at_us - ex->rec.received_at_us) / 1e6
                      : -1;
    gw_metrics_request_done(ex->model_index,
                            ex->route >= 0 ? ex->model->routes[ex->route].provider : -1, status,
                            (double)(ex->rec.completed_at_us - ex->rec.received_at_us) / 1e6, ttft);
    gw_metrics_inflight_add(-1);
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        w->exchanges = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    w->n_exchanges--;
    gw_prefix_release(&ex->pfx);
    cJSON_Delete(ex->body);
    gw_sse_free(&ex->sse);
    free(ex);
}

/* Answers the client with an OpenAI error (if it is still there and nothing
 * was sent yet) and finishes the exchange. */
void gw_exchange_fail(gw_exchange_t *ex, int status, const char *type, const char *code,
                      const char *param, const char *message)
{
    gw_exchange_detach_client(ex);
    gw_exchange_settle(ex, status, code ? code : type);
    if (ex->client && !ex->client_started) {
        if (ex->retry_after[0])
            evhttp_add_header(evhttp_request_get_output_headers(ex->client), "Retry-After",
                              ex->retry_after);
        gw_http_send_error(ex->client, status, type, code, param, "%s", message);
    } else if (ex->client) {
        evhttp_send_reply_end(ex->client);
    }
    ex->client = NULL;
    gw_exchange_finish(ex, status, code ? code : type);
}

void gw_exchange_served_by_headers(gw_exchange_t *ex)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    const gw_route_cfg_t *r = &ex->model->routes[ex->route];
    evhttp_add_header(h, "x-tollgate-provider", ex->w->server->cfg->providers[r->provider].name);
    evhttp_add_header(h, "x-tollgate-upstream-model", r->upstream_model);
    char num[24];
    snprintf(num, sizeof num, "%d", ex->rec.attempts);
    evhttp_add_header(h, "x-tollgate-attempts", num);
    snprintf(num, sizeof num, "%lld", (long long)ex->prompt.tokens);
    evhttp_add_header(h, "x-tollgate-prompt-tokens", num);
    evhttp_add_header(h, "x-tollgate-prompt-tokens-source",
                      ex->prompt.exact ? "tokenizer" : "estimate");
    if (ex->hedge_outcome)
        evhttp_add_header(h, "x-tollgate-hedge", ex->hedge_outcome);
}

void gw_exchange_start_stream(gw_exchange_t *ex)
{
    gw_exchange_first_byte(ex);
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->client);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    gw_exchange_served_by_headers(ex);
    evhttp_send_reply_start(ex->client, 200, "OK");
    client_stream_timeouts(ex, true);
}

/* Marks the first byte sent to the client (headers of a stream, or the whole
 * answer): no more failover, and the hedge race is decided. */
void gw_exchange_first_byte(gw_exchange_t *ex)
{
    client_unwatch(ex); /* libevent watches the connection while it writes */
    ex->rec.first_byte_at_us = gw_clock_now_us();
    ex->client_started = true;
    gw_race_current_won(ex);
}
