/* rt_route: filtering, expected cost and latency, policy scoring and near-tie
 * spreading for one request (see rt_route.h). Money stays in integer
 * pico-units; only latencies are floating point. */
#include "rt_route.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_OUTPUT 256     /* expected completion tokens when nothing is known */
#define NEAR_TIE_PCT 3         /* scores within 3% of the best are near-ties */
#define SCORE_UNKNOWN (INT64_MAX / 4)

static const char *const policy_names[RT_POLICY_COUNT] = {
    "cheapest", "fastest", "balanced", "round_robin", "list_price", "ordered"};

const char *rt_policy_name(rt_policy_t p)
{
    return p >= 0 && p < RT_POLICY_COUNT ? policy_names[p] : "?";
}

int rt_policy_parse(const char *s, rt_policy_t *out)
{
    for (int i = 0; i < RT_POLICY_COUNT; i++)
        if (s && !strcmp(s, policy_names[i])) {
            *out = (rt_policy_t)i;
            return 0;
        }
    return -1;
}

static const char *const need_from_names[] = {"", "request", "key", "model"};

const char *rt_need_from_name(rt_need_from_t f)
{
    return f >= RT_FROM_NONE && f <= RT_FROM_MODEL ? need_from_names[f] : "";
}

bool rt_provider_list_has(const char *list, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == nl && !memcmp(p, name, nl))
            return true;
        p = e;
    }
    return false;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int64_t pico_score(pr_pico_t c)
{
    return c > (pr_pico_t)SCORE_UNKNOWN - 1 ? SCORE_UNKNOWN - 1 : (int64_t)c;
}

/* Expected cost, latency and list price of one candidate. */
static void evaluate(const rt_request_t *rq, const rt_candidate_t *c, const pr_book_t *book,
                     rt_eval_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->provider = c->provider;
    ev->list_price = -1;
    int64_t out = rq->expected_output > 0 ? rq->expected_output
                                          : (rq->max_tokens > 0 ? rq->max_tokens : DEFAULT_OUTPUT);
    if (rq->max_tokens > 0 && out > rq->max_tokens)
        out = rq->max_tokens;
    rt_stats_t none;
    rt_stats_init(&none);
    const rt_stats_t *st = c->stats ? c->stats : &none;
    ev->ttft_ms = rt_stats_ttft_ms(st, rq->percentile, c->prior_ttft_ms);
    double tps = rt_stats_tps(st, c->prior_tps);
    double gen_ms = tps > 0 && out > 1 ? (double)(out - 1) * 1000.0 / tps : 0;
    ev->total_ms = ev->ttft_ms + gen_ms;
    /* a target on a whole answer is checked against the longest answer the
     * request allows (max_tokens), not the average one: a promise, not a bet */
    int64_t bound = rq->max_tokens > 0 ? rq->max_tokens : out;
    double bound_ms = ev->ttft_ms + (tps > 0 && bound > 1 ? (double)(bound - 1) * 1000.0 / tps : 0);
    ev->latency_ms = rq->stream ? ev->ttft_ms : bound_ms;
    if (!book)
        return;
    int64_t hit = 0;
    if (c->cache_hit_bp > 0 && rq->prompt_tokens > 0) {
        int bp = c->cache_hit_bp > 10000 ? 10000 : c->cache_hit_bp;
        hit = rq->prompt_tokens / 10000 * bp + rq->prompt_tokens % 10000 * bp / 10000;
    }
    int64_t prompt = rq->prompt_tokens > 0 ? rq->prompt_tokens : 0;
    pr_usage_t u = {prompt, hit, prompt - hit, out, 0, true};
    int64_t done_us = rq->now_us + (int64_t)(ev->total_ms * 1000.0);
    pr_charge_t ch;
    char err[160];
    if (pr_price_usage(book, c->provider, c->model, rq->now_us, done_us, &u, &ch, err,
                       sizeof err) == 0) {
        ev->cost_known = true;
        ev->cost = ch.total;
        snprintf(ev->currency, sizeof ev->currency, "%s", ch.card->currency->code);
        ev->minor = ch.card->currency->minor;
        ev->window_id = ch.window ? ch.window->id : 0;
    }
    const pr_card_t *card;
    const pr_window_t *win;
    if (pr_book_find(book, c->provider, c->model, rq->now_us, &card, &win, err, sizeof err) == 0)
        ev->list_price = card->prices.cache_miss + card->prices.output;
}

/* Whether the expected latency, with the safety margin, is within the target. */
static bool meets_target(const rt_request_t *rq, const rt_eval_t *e)
{
    int m = rq->target_margin_pct > 0 ? rq->target_margin_pct : 0;
    return e->latency_ms * (100.0 + m) / 100.0 <= (double)rq->latency_target_ms;
}

static bool is_need_policy(rt_policy_t p)
{
    return p == RT_POLICY_CHEAPEST || p == RT_POLICY_FASTEST || p == RT_POLICY_BALANCED;
}

static void fail(rt_decision_t *d, int status, const char *code, const char *param,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(rt_decision_t *d, int status, const char *code, const char *param,
                 const char *fmt, ...)
{
    d->n = 0;
    d->status = status;
    snprintf(d->code, sizeof d->code, "%s", code);
    snprintf(d->param, sizeof d->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
}

/* Whether a drop reason is one of the rules (private, allow, deny). */
static bool is_rule_drop(const char *why)
{
    static const char *const rules[] = {"private_team",    "private_key",
                                        "key_not_allowed", "key_denied",
                                        "request_not_allowed", "request_denied"};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!strcmp(why, rules[i]))
            return true;
    return false;
}

/* The error when the hard filters (window, permission, health) left nothing. */
static void fail_hard(const rt_request_t *rq, const rt_candidate_t *cands, int n,
                      rt_decision_t *d)
{
    int n_ctx = 0, n_perm = 0, n_req = 0;
    int64_t largest = 0;
    char list[200] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        const char *why = d->evals[i].dropped;
        if (!strcmp(why, "context_window"))
            n_ctx++;
        else if (is_rule_drop(why))
            n_perm++;
        if (!strncmp(why, "request_", 8))
            n_req++;
        if (cands[i].context_tokens > largest)
            largest = cands[i].context_tokens;
        int w = snprintf(list + used, sizeof list - used, "%s%s (%s)", i ? ", " : "",
                         cands[i].provider, why);
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
    }
    int64_t need = rq->prompt_tokens + rq->max_tokens;
    if (n_ctx == n) {
        fail(d, 400, "context_length_exceeded", NULL,
             "This model's maximum context length is %lld tokens. However, you requested %lld "
             "tokens (%lld in the messages, %lld in the completion). Please reduce the length "
             "of the messages or completion.",
             (long long)largest, (long long)need, (long long)rq->prompt_tokens,
             (long long)rq->max_tokens);
    } else if (n_perm + n_ctx == n) {
        if (n_req)
            fail(d, 403, "no_permitted_provider", NULL,
                 "No provider that both this API key's rules and the request's "
                 "x-tollgate-allow-providers / x-tollgate-deny-providers permit can serve the "
                 "request (a request can narrow a key's providers, never widen them): %s.",
                 list);
        else
            fail(d, 403, "no_permitted_provider", NULL,
                 "No provider this API key may use can serve the request: %s.", list);
    } else {
        fail(d, 503, "no_healthy_provider", NULL,
             "No healthy provider can serve the request now: %s. Retry shortly.", list);
    }
}

static void cost_text(const rt_eval_t *ev, char *buf, size_t len)
{
    char amount[64];
    if (!ev->cost_known || !pr_pico_format(ev->cost, ev->minor, amount, sizeof amount))
        snprintf(buf, len, "unknown");
    else
        snprintf(buf, len, "%s %s", amount, ev->currency);
}

/* Appends to the decision's message where a need that could not be met came
 * from, when not from the request itself: the key's or the model's default,
 * which the request's header overrides. */
static void say_default(rt_decision_t *d, rt_need_from_t from, const char *what,
                        const char *header)
{
    if (from != RT_FROM_KEY && from != RT_FROM_MODEL)
        return;
    size_t used = strlen(d->message);
    snprintf(d->message + used, sizeof d->message - used,
             " The %s is %s default; a request overrides it with the %s header ('none' "
             "removes it).",
             what, from == RT_FROM_KEY ? "this API key's" : "the model's", header);
}

/* The error when the request's needs left nothing: names the need. */
static void fail_needs(const rt_request_t *rq, int n, rt_decision_t *d, const bool *hard_ok)
{
    int fastest = -1, cheapest = -1, n_lat = 0, n_cost = 0;
    for (int i = 0; i < n; i++) {
        if (!hard_ok[i])
            continue;
        const rt_eval_t *e = &d->evals[i];
        if (fastest < 0 || e->latency_ms < d->evals[fastest].latency_ms)
            fastest = i;
        if (e->cost_known && (cheapest < 0 || e->cost < d->evals[cheapest].cost))
            cheapest = i;
        bool lat_ok = !rq->latency_target_ms || meets_target(rq, e);
        bool cost_ok = !rq->has_max_cost || (e->cost_known && e->cost <= rq->max_cost);
        n_lat += lat_ok;
        n_cost += cost_ok;
    }
    char ceiling[64] = "", cheap[80] = "unknown";
    if (rq->has_max_cost)
        pr_pico_format(rq->max_cost, 0, ceiling, sizeof ceiling);
    if (cheapest >= 0)
        cost_text(&d->evals[cheapest], cheap, sizeof cheap);
    const char *what = rq->stream ? "to the first token" : "for the whole answer";
    if (rq->latency_target_ms && n_lat == 0) {
        fail(d, 422, "latency_target_unmet", "x-tollgate-latency-target-ms",
             "No provider is expected to meet the latency target of %lld ms %s "
             "(x-tollgate-latency-target-ms): the fastest, %s, is expected at %.0f ms.",
             (long long)rq->latency_target_ms, what, d->evals[fastest].provider,
             d->evals[fastest].latency_ms);
        say_default(d, rq->latency_from, "latency target", "x-tollgate-latency-target-ms");
    } else if (rq->has_max_cost && n_cost == 0 && cheapest < 0) {
        fail(d, 422, "max_cost_unmet", "x-tollgate-max-cost",
             "No provider can promise the cost ceiling of %s (x-tollgate-max-cost): none has a "
             "price card for this model.",
             ceiling);
        say_default(d, rq->cost_from, "cost ceiling", "x-tollgate-max-cost");
    } else if (rq->has_max_cost && n_cost == 0) {
        fail(d, 422, "max_cost_unmet", "x-tollgate-max-cost",
             "No provider can serve this request within the cost ceiling of %s "
             "(x-tollgate-max-cost): the cheapest, %s, is expected to cost %s.",
             ceiling, cheapest >= 0 ? d->evals[cheapest].provider : "none", cheap);
        say_default(d, rq->cost_from, "cost ceiling", "x-tollgate-max-cost");
    } else {
        fail(d, 422, "needs_unmet", "x-tollgate-max-cost",
             "The latency target of %lld ms and the cost ceiling of %s cannot both be met: "
             "the fastest, %s (%.0f ms), is too dear, and the cheapest, %s (%s), too slow.",
             (long long)rq->latency_target_ms, ceiling, d->evals[fastest].provider,
             d->evals[fastest].latency_ms, cheapest >= 0 ? d->evals[cheapest].provider : "none",
             cheap);
        say_default(d, rq->latency_from, "latency target", "x-tollgate-latency-target-ms");
        say_default(d, rq->cost_from, "cost ceiling", "x-tollgate-max-cost");
    }
}

/* Scores the eligible candidates (lower is better) for the policy. */
static void score(const rt_request_t *rq, const int *elig, int m, rt_decision_t *d)
{
    pr_pico_t min_cost = -1;
    double min_lat = -1;
    for (int k = 0; k < m; k++) {
        rt_eval_t *e = &d->evals[elig[k]];
        if (e->cost_known && (min_cost < 0 || e->cost < min_cost))
            min_cost = e->cost;
        if (min_lat < 0 || e->latency_ms < min_lat)
            min_lat = e->latency_ms;
    }
    for (int k = 0; k < m; k++) {
        rt_eval_t *e = &d->evals[elig[k]];
        switch (rq->policy) {
        case RT_POLICY_CHEAPEST:
            e->score = e->cost_known ? pico_score(e->cost) : SCORE_UNKNOWN;
            break;
        case RT_POLICY_FASTEST:
            e->score = (int64_t)(e->latency_ms * 1000.0);
            break;
        case RT_POLICY_BALANCED: {
            /* each term: permille of the best (1000 = as good as the best) */
            int64_t ct = 2000;
            if (e->cost_known && min_cost > 0)
                ct = pico_score(e->cost * 1000 / min_cost);
            else if (e->cost_known)
                ct = e->cost == 0 ? 1000 : 2000;
            int64_t lt = min_lat > 0 ? (int64_t)(e->latency_ms * 1000.0 / min_lat) : 1000;
            e->score = ct + lt;
            break;
        }
        case RT_POLICY_LIST_PRICE:
            e->score = e->list_price >= 0 ? e->list_price : SCORE_UNKNOWN;
            break;
        default:
            e->score = 0; /* round-robin and ordered keep the configured order */
            break;
        }
    }
}

void rt_route_decide(const rt_request_t *rq, const rt_candidate_t *cands, int n_cands,
                     const pr_book_t *book, rt_decision_t *d)
{
    memset(d, 0, sizeof *d);
    d->policy = rq->policy;
    d->latency_target_ms = rq->latency_target_ms;
    d->has_max_cost = rq->has_max_cost;
    d->max_cost = rq->max_cost;
    d->latency_from = rq->latency_target_ms ? rq->latency_from : RT_FROM_NONE;
    d->cost_from = rq->has_max_cost ? rq->cost_from : RT_FROM_NONE;
    d->preference_from = rq->preference_from;
    d->chosen = d->runner_up = -1;
    if (n_cands > RT_MAX_CANDIDATES)
        n_cands = RT_MAX_CANDIDATES;
    d->n_evals = n_cands;
    rt_breaker_cfg_t bdef;
    rt_breaker_defaults(&bdef);
    const rt_breaker_cfg_t *bcfg = rq->breaker ? rq->breaker : &bdef;
    bool hard_ok[RT_MAX_CANDIDATES] = {0};
    int n_hard = 0;
    for (int i = 0; i < n_cands; i++) {
        const rt_candidate_t *c = &cands[i];
        rt_eval_t *e = &d->evals[i];
        evaluate(rq, c, book, e);
        const char *why = NULL;
        if (rq->prompt_exact && c->context_tokens < rq->prompt_tokens + rq->max_tokens)
            e->dropped = "context_window";
        else if (rq->team_private && !c->in_house)
            e->dropped = "private_team";
        else if (rq->key_private && !c->in_house)
            e->dropped = "private_key";
        else if (rq->allow && *rq->allow && !rt_provider_list_has(rq->allow, c->provider))
            e->dropped = "key_not_allowed";
        else if (rq->deny && rt_provider_list_has(rq->deny, c->provider))
            e->dropped = "key_denied";
        else if (rq->req_allow && *rq->req_allow &&
                 !rt_provider_list_has(rq->req_allow, c->provider))
            e->dropped = "request_not_allowed";
        else if (rq->req_deny && rt_provider_list_has(rq->req_deny, c->provider))
            e->dropped = "request_denied";
        else if (rq->policy != RT_POLICY_ORDERED && c->stats &&
                 !rt_stats_usable(c->stats, bcfg, rq->now_us, &why))
            e->dropped = why;
        if (!e->dropped) {
            hard_ok[i] = true;
            n_hard++;
        }
    }
    if (n_cands == 0) {
        fail(d, 503, "no_provider", NULL, "The model has no provider.");
        return;
    }
    if (n_hard == 0) {
        fail_hard(rq, cands, n_cands, d);
        return;
    }
    int elig[RT_MAX_CANDIDATES], m = 0;
    bool needs = is_need_policy(rq->policy);
    for (int i = 0; i < n_cands; i++) {
        if (!hard_ok[i])
            continue;
        rt_eval_t *e = &d->evals[i];
        if (needs && rq->latency_target_ms && !meets_target(rq, e))
            e->dropped = "latency_target";
        else if (needs && rq->has_max_cost && !e->cost_known)
            e->dropped = "cost_unknown"; /* a ceiling cannot be promised without a price */
        else if (needs && rq->has_max_cost && e->cost > rq->max_cost)
            e->dropped = "max_cost";
        else
            elig[m++] = i;
    }
    if (m == 0) {
        fail_needs(rq, n_cands, d, hard_ok);
        return;
    }
    score(rq, elig, m, d);
    /* stable insertion sort by score, then by expected latency, then config order */
    for (int a = 1; a < m; a++) {
        int v = elig[a], b = a - 1;
        const rt_eval_t *ev = &d->evals[v];
        while (b >= 0) {
            const rt_eval_t *eb = &d->evals[elig[b]];
            bool after = eb->score > ev->score ||
                         (eb->score == ev->score && needs && eb->latency_ms > ev->latency_ms);
            if (!after)
                break;
            elig[b + 1] = elig[b];
            b--;
        }
        elig[b + 1] = v;
    }
    d->why = rq->policy == RT_POLICY_CHEAPEST   ? "least expected cost"
             : rq->policy == RT_POLICY_FASTEST  ? "least expected latency"
             : rq->policy == RT_POLICY_BALANCED ? "best cost and latency together"
             : rq->policy == RT_POLICY_LIST_PRICE ? "least list price"
             : rq->policy == RT_POLICY_ORDERED  ? "configured order"
                                                : "round robin";
    if (rq->policy == RT_POLICY_ROUND_ROBIN && m > 1) {
        int rot = (int)(rq->seed % (uint64_t)m), tmp[RT_MAX_CANDIDATES];
        for (int k = 0; k < m; k++)
            tmp[k] = elig[(k + rot) % m];
        memcpy(elig, tmp, sizeof(int) * (size_t)m);
    } else if (needs && m > 1) {
        /* near-ties: a weighted draw among those within NEAR_TIE_PCT of the best;
         * a better score weighs more (weight = 2 * limit - score + 1). */
        int64_t best = d->evals[elig[0]].score;
        int64_t limit = best + best / 100 * NEAR_TIE_PCT + (best % 100) * NEAR_TIE_PCT / 100;
        int t = 1;
        while (t < m && d->evals[elig[t]].score <= limit && best < SCORE_UNKNOWN)
            t++;
        if (t > 1) {
            uint64_t w[RT_MAX_CANDIDATES], sum = 0;
            for (int k = 0; k < t; k++) {
                int64_t s = d->evals[elig[k]].score;
                int64_t wk = limit - s + (limit - best) + 1; /* >= 1 */
                w[k] = (uint64_t)(wk > 0 ? wk : 1);
                if (w[k] > (UINT64_MAX >> 8))
                    w[k] = UINT64_MAX >> 8;
                sum += w[k];
            }
            uint64_t r = splitmix64(rq->seed) % sum;
            int pick = 0;
            while (r >= w[pick]) {
                r -= w[pick];
                pick++;
            }
            if (pick > 0) {
                int v = elig[pick];
                memmove(&elig[1], &elig[0], sizeof(int) * (size_t)pick);
                elig[0] = v;
            }
            d->why = rq->policy == RT_POLICY_CHEAPEST   ? "near-tie on expected cost, spread by weight"
                     : rq->policy == RT_POLICY_FASTEST  ? "near-tie on expected latency, spread by weight"
                                                        : "near-tie on cost and latency, spread by weight";
        }
    }
    memcpy(d->order, elig, sizeof(int) * (size_t)m);
    d->n = m;
    d->chosen = elig[0];
    d->runner_up = m > 1 ? elig[1] : -1;
}
