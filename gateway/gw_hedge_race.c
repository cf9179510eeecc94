/* gw_hedge_race: a hedged exchange's race (docs/router.md, "Hedging"): the
 * hedge sent when the first attempt's first byte is late, the first byte
 * deciding the winner, the loser cancelled and billed to the gateway
 * (gateway_costs), and the outcome in the row's route_explain. When a request
 * is hedged at all is gw_hedge.c's. */
#include "gw_exchange.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_clock.h"
#include "gw_hedge.h"
#include "gw_metrics.h"
#include "pr_book.h"
#include "tg_log.h"

/* Notes the race's outcome in the usage row's route_explain (the first
 * decisive event only) and in the client's x-tollgate-hedge header. */
void gw_hedge_explain(gw_exchange_t *ex, const char *outcome, const attempt_t *hedge)
{
    if (ex->hedge_outcome)
        return;
    ex->hedge_outcome = outcome;
    char add[200];
    if (hedge)
        snprintf(
            add, sizeof add, "\"hedge\":{\"after_ms\":%d,\"provider\":\"%s\",\"outcome\":\"%s\"}",
            ex->hedge_after_ms,
            ex->w->server->cfg->providers[ex->model->routes[hedge->route].provider].name, outcome);
    else
        snprintf(add, sizeof add, "\"hedge\":{\"after_ms\":%d,\"outcome\":\"%s\"}",
                 ex->hedge_after_ms, outcome);
    char *e = ex->rec.route_explain;
    size_t len = strlen(e);
    if (len >= 2 && e[len - 1] == '}' && len + strlen(add) + 1 < sizeof ex->rec.route_explain) {
        snprintf(e + len - 1, sizeof ex->rec.route_explain - (len - 1), "%s%s}",
                 e[len - 2] == '{' ? "" : ",", add);
    } else if (len == 0) {
        snprintf(e, sizeof ex->rec.route_explain, "{%s}", add);
    } else {
        tg_warn("request %s: route_explain full; hedge outcome '%s' not recorded there",
                ex->rec.request_id, outcome);
    }
}

/* The gateway's own cost of a cancelled attempt (a hedge's loser): its
 * prompt priced as cache misses, no output, usage marked incomplete, written
 * to gateway_costs through the usage writer, never to the team. */
static void hedge_bill_gateway(attempt_t *a)
{
    gw_exchange_t *ex = a->ex;
    const gw_route_cfg_t *r = &ex->model->routes[a->route];
    gw_gateway_cost_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.request_id, sizeof c.request_id, "%s", ex->rec.request_id);
    c.attempt = a->number;
    snprintf(c.reason, sizeof c.reason, "%s", "hedge_loser");
    c.team_id = ex->key.team_id;
    c.key_id = ex->key.key_id;
    snprintf(c.model_requested, sizeof c.model_requested, "%s", ex->rec.model_requested);
    snprintf(c.provider, sizeof c.provider, "%s", ex->w->server->cfg->providers[r->provider].name);
    snprintf(c.upstream_model, sizeof c.upstream_model, "%s", r->upstream_model);
    c.sent_at_us = a->sent_us;
    c.cancelled_at_us = gw_clock_now_us();
    c.prompt_tokens = ex->prompt.tokens;
    c.prompt_exact = ex->prompt.exact;
    c.usage_complete = false;
    const pr_book_t *book = gw_pricebook_acquire(ex->w->server->prices);
    if (book) {
        pr_usage_t u = {c.prompt_tokens, 0, c.prompt_tokens, 0, 0, false};
        pr_charge_t ch;
        char err[256];
        if (pr_price_usage(book, c.provider, c.upstream_model, c.sent_at_us, c.cancelled_at_us, &u,
                           &ch, err, sizeof err) == 0) {
            c.price_card_id = ch.card->id;
            c.discount_window_id = ch.window ? ch.window->id : 0;
            snprintf(c.charge_currency, sizeof c.charge_currency, "%s", ch.card->currency->code);
            c.charge_pico = ch.total;
        } else {
            tg_warn("request %s: hedge loser's cost not priced: %s", c.request_id, err);
        }
        gw_pricebook_release(ex->w->server->prices, book);
    }
    if (gw_usage_writer_submit_cost(ex->w->server->usage, &c) < 0)
        tg_error("request %s: the gateway cost of attempt %d could not be stored (spool full or "
                 "disk error)",
                 c.request_id, c.attempt);
}

/* Cancels an attempt that lost the race (or whose client left) and is not
 * the one the client's row is for: billed to the gateway, nothing learned
 * by routing but its in-flight count. */
void gw_attempt_cancel_loser(attempt_t *a)
{
    tg_info("request %s: cancelling attempt %d (provider %s): %s", a->ex->rec.request_id, a->number,
            a->ex->w->server->cfg->providers[a->ex->model->routes[a->route].provider].name,
            a->ex->client_gone ? "the client left" : "the other attempt answered first");
    hedge_bill_gateway(a);
    gw_attempt_stop(a);
    gw_route_outcome_t o = {0};
    o.model_index = a->ex->model_index;
    o.route = a->route;
    o.first_choice = a->first_choice;
    o.cancelled = true;
    if (a->beaten) /* slower than the hedge: routing learns that much of its tail */
        o.late_us = gw_clock_now_us() - a->sent_us;
    gw_route_observe(a->ex->w, &o);
    gw_attempt_free(a, true);
}

/* The current attempt produced the first byte for the client: the race is
 * over and a hedge still out lost. */
void gw_race_current_won(gw_exchange_t *ex)
{
    if (ex->hedge_timer)
        evtimer_del(ex->hedge_timer);
    if (!ex->hedge)
        return;
    gw_metrics_hedge(GW_HEDGE_LOST);
    gw_hedge_explain(ex, "lost", ex->hedge);
    gw_attempt_cancel_loser(ex->hedge);
}

/* The hedge produced its first byte first: the first attempt is cancelled
 * (billed to the gateway) and the hedge becomes the exchange's attempt. */
void gw_race_hedge_won(attempt_t *h)
{
    gw_exchange_t *ex = h->ex;
    attempt_t *first = ex->cur;
    ex->hedge = NULL;
    gw_metrics_hedge(GW_HEDGE_WON);
    gw_hedge_explain(ex, "won", h);
    if (first) {
        ex->cur = NULL;
        first->beaten = true;
        gw_attempt_cancel_loser(first);
    }
    gw_exchange_relay_reset(ex);
    gw_attempt_make_current(h);
}

/* A hedge's upstream answer ended before the hedge produced any byte for the
 * client: a failure drops it (the first attempt goes on); a complete 200
 * answer (not streamed) wins the race and is relayed as the exchange's. */
void gw_hedge_done(attempt_t *a, struct evhttp_request *up)
{
    if (!up || a->status == 0) {
        bool timeout = a->failed && a->error == EVREQ_HTTP_TIMEOUT;
        gw_attempt_failed(a, true, timeout ? FAIL_TIMEOUT : FAIL_CONNECT, timeout ? 504 : 502,
                          timeout ? "idle timeout (no bytes for idle_timeout_ms)"
                                  : "connection failed, reset or closed early");
        return;
    }
    if (a->garbage || a->discard || a->status != 200 || a->ex->stream) {
        char msg[64];
        snprintf(msg, sizeof msg, a->status != 200 ? "HTTP %d" : "no answer before it ended",
                 a->status);
        gw_attempt_failed(a, a->garbage, a->discard ? FAIL_STATUS : FAIL_GARBAGE, a->status, msg);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    size_t n = evbuffer_get_length(in);
    cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n);
    bool whole = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!whole) {
        gw_attempt_failed(a, false, FAIL_GARBAGE, 502, "response body is not a JSON object");
        return;
    }
    gw_race_hedge_won(a);
    gw_attempt_on_done(up, a); /* now the exchange's attempt: relayed like any answer */
}

/* The first attempt's first byte is late (hedge_after_ms): send the next
 * route in the plan as a hedge, unless the race is already decided, no route
 * is left, the gateway is stopping or the per-minute cap is spent. */
static void on_hedge_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_exchange_t *ex = arg;
    attempt_t *first = ex->cur;
    /* only the first attempt is hedged (not a failover's), and only while no
     * definite answer is on its way (a whole 200, or any other status) */
    if (!first || first->number != 1 || ex->hedge || ex->client_started || ex->client_gone ||
        ex->w->stopping || (first->status != 0 && (first->status != 200 || !ex->stream)) ||
        ex->next_in_plan >= ex->plan.n)
        return;
    if (!gw_hedge_take(ex->w->server->cfg->hedge_max_per_minute, gw_clock_now_us())) {
        gw_metrics_hedge(GW_HEDGE_CAPPED);
        gw_hedge_explain(ex, "capped", NULL);
        tg_info("request %s: hedge due but hedge_max_per_minute is spent", ex->rec.request_id);
        return;
    }
    while (ex->next_in_plan < ex->plan.n) {
        /* never queued behind another request on a busy connection: it could
         * not win, and would still be billed when cancelled */
        attempt_t *h = gw_attempt_start(ex, ex->plan.routes[ex->next_in_plan++], false);
        if (!h)
            continue;
        ex->hedge = h;
        gw_metrics_hedge(GW_HEDGE_SENT);
        tg_info("request %s: no first byte from %s after %d ms: hedging to %s (attempt %d)",
                ex->rec.request_id, ex->rec.provider, ex->hedge_after_ms,
                ex->w->server->cfg->providers[ex->model->routes[h->route].provider].name,
                h->number);
        return;
    }
}

void gw_hedge_arm(gw_exchange_t *ex)
{
    if (ex->hedge_after_ms <= 0 || ex->hedge_timer || ex->next_in_plan >= ex->plan.n)
        return;
    ex->hedge_timer = evtimer_new(ex->w->base, on_hedge_due, ex);
    /* the loop's cached time dates from before this request's work: the
     * threshold counts from the send */
    event_base_update_cache_time(ex->w->base);
    struct timeval tv = {ex->hedge_after_ms / 1000, (ex->hedge_after_ms % 1000) * 1000};
    evtimer_add(ex->hedge_timer, &tv);
}
