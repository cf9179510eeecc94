/* Unit tests of rt_route_decide and rt_explain: filters, expected cost with
 * cache hits and a discount window at the completion instant, policies,
 * needs and their errors, near-tie spreading, the compact explanation and the
 * header parsers. Pure: the clock and the measurements are data. */
#include <cjson/cJSON.h>

#include "rt_route.h"
#include "rt_test.h"

/* The explanation goes into a jsonb column: it must always parse. */
static bool json_ok(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    cJSON_Delete(j);
    return j != NULL;
}

static char err[512];
static pr_book_t *book;
static rt_stats_t st[4];
static rt_candidate_t cands[4];

/* cheap: slow TTFT, 64K; fast: dear, 128K; big: middle price, 160K */
static void setup(void)
{
    book = pr_book_new();
    pr_card_def_t c1 = {1, "cheap", "m", "USD", {28000, 280000, 420000, -1}, T0 - 100 * SEC};
    pr_card_def_t c2 = {2, "fast", "m", "USD", {200000, 2000000, 6000000, -1}, T0 - 100 * SEC};
    pr_card_def_t c3 = {3, "big", "m", "USD", {50000, 500000, 1500000, -1}, T0 - 100 * SEC};
    CHECK(pr_book_add_card(book, &c1, err, sizeof err) == 0);
    CHECK(pr_book_add_card(book, &c2, err, sizeof err) == 0);
    CHECK(pr_book_add_card(book, &c3, err, sizeof err) == 0);
    /* a one-off window on "big": 90% off, from T0 + 60 s */
    pr_window_def_t w;
    memset(&w, 0, sizeof w);
    w.id = 7, w.card_id = 3, w.kind = PR_WIN_ONCE, w.precedence = 1;
    w.valid_from_us = T0 + 60 * SEC, w.valid_until_us = T0 + 3600 * SEC;
    w.prices = (pr_prices_t){5000, 50000, 150000, -1};
    CHECK(pr_book_add_window(book, &w, err, sizeof err) == 0);
    CHECK(pr_book_finalize(book, err, sizeof err) == 0);
    for (int i = 0; i < 4; i++)
        rt_stats_init(&st[i]);
    cands[0] = (rt_candidate_t){"cheap", "m", 65536, false, 0, 2000, 50, &st[0]};
    cands[1] = (rt_candidate_t){"fast", "m", 131072, false, 0, 100, 200, &st[1]};
    cands[2] = (rt_candidate_t){"big", "m", 163840, false, 0, 800, 40, &st[2]};
    cands[3] = (rt_candidate_t){"engine", "m", 32768, true, 0, 300, 30, &st[3]};
}

static rt_request_t req(void)
{
    rt_request_t r;
    memset(&r, 0, sizeof r);
    r.now_us = T0;
    r.prompt_tokens = 1000;
    r.prompt_exact = true;
    r.max_tokens = 100;
    r.expected_output = 100;
    r.policy = RT_POLICY_CHEAPEST;
    r.percentile = 90;
    return r;
}

static const char *chosen(const rt_decision_t *d)
{
    return d->chosen >= 0 ? d->evals[d->chosen].provider : "(none)";
}

static void test_cost_and_latency(void)
{
    rt_request_t r = req();
    rt_decision_t d;
    rt_route_decide(&r, cands, 3, book, &d);
    /* cheap: 1000 miss * 0.28 + 100 out * 0.42 (per 1M, micro) = 280000000 + 42000000 pico */
    CHECK(d.evals[0].cost_known);
    CHECK(d.evals[0].cost == (pr_pico_t)1000 * 280000 + (pr_pico_t)100 * 420000);
    CHECK_STR(d.evals[0].currency, "USD");
    CHECK(d.evals[0].list_price == 700000);
    /* latency: TTFT prior + 99 tokens at the prior speed */
    CHECK(d.evals[0].ttft_ms == 2000);
    CHECK(d.evals[0].total_ms > 3979.9 && d.evals[0].total_ms < 3980.1);
    CHECK(d.evals[0].latency_ms == d.evals[0].total_ms); /* not streamed: whole answer */
    /* a target is checked against the longest answer allowed, cost on the expected one */
    r.expected_output = 20;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.evals[0].total_ms > 2379.9 && d.evals[0].total_ms < 2380.1);
    CHECK(d.evals[0].latency_ms > 3979.9 && d.evals[0].latency_ms < 3980.1);
    CHECK(d.evals[0].cost == (pr_pico_t)1000 * 280000 + (pr_pico_t)20 * 420000);
    r.max_tokens = 0; /* no bound: the expected length */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.evals[0].latency_ms == d.evals[0].total_ms);
    r.max_tokens = 100;
    r.expected_output = 100;
    r.stream = true;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.evals[0].latency_ms == 2000);
    CHECK(d.n == 3);
    CHECK_STR(chosen(&d), "cheap");
    CHECK_STR(d.evals[d.runner_up].provider, "big");
    CHECK_STR(d.why, "least expected cost");
    /* expected cache hits lower the expected cost: 80% of 1000 at the hit price */
    rt_candidate_t c[3];
    memcpy(c, cands, sizeof c);
    c[0].cache_hit_bp = 8000;
    rt_route_decide(&r, c, 3, book, &d);
    CHECK(d.evals[0].cost == (pr_pico_t)800 * 28000 + (pr_pico_t)200 * 280000 + (pr_pico_t)100 * 420000);
    /* unknown card: cost unknown, ranked last by cheapest */
    c[0].model = "nope";
    rt_route_decide(&r, c, 3, book, &d);
    CHECK(!d.evals[0].cost_known);
    CHECK(d.evals[0].list_price == -1);
    CHECK(d.order[2] == 0);
    /* no book at all: still a decision (ordered by latency among unknown costs) */
    rt_route_decide(&r, cands, 3, NULL, &d);
    CHECK(d.n == 3);
    CHECK_STR(chosen(&d), "fast");
}

static void test_discount_window_at_completion(void)
{
    /* big's window starts at T0 + 60 s: a request finishing before pays full
     * price, one whose expected completion falls inside gets 90% off */
    rt_request_t r = req();
    rt_decision_t d;
    r.max_tokens = 0;
    r.expected_output = 1001; /* 1000 tokens after the first at 40/s = 25 s */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.evals[2].window_id == 0);
    pr_pico_t full = d.evals[2].cost;
    CHECK(full == (pr_pico_t)1000 * 500000 + (pr_pico_t)1001 * 1500000);
    r.now_us = T0 + 40 * SEC; /* now + 25.8 s is inside the window */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.evals[2].window_id == 7);
    CHECK(d.evals[2].cost * 10 == full);
    /* and then big is the cheapest */
    CHECK_STR(chosen(&d), "big");
    /* started before the window, at T0 + 30 s: completes at 55.8 s, no window */
    r.now_us = T0 + 30 * SEC;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.evals[2].window_id == 0);
}

static void test_filters(void)
{
    rt_request_t r = req();
    rt_decision_t d;
    /* over 64K: only where it fits */
    r.prompt_tokens = 70000;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(d.evals[0].dropped, "context_window");
    CHECK(d.n == 2);
    CHECK_STR(chosen(&d), "big");
    for (int k = 0; k < d.n; k++)
        CHECK(d.order[k] != 0);
    /* an estimate never drops */
    r.prompt_exact = false;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 3);
    /* too long for all: 400 context_length_exceeded with the largest window */
    r.prompt_exact = true;
    r.prompt_tokens = 200000;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 400);
    CHECK_STR(d.code, "context_length_exceeded");
    CHECK_HAS(d.message, "maximum context length is 163840 tokens");
    /* private team, private key: in-house only */
    r = req();
    r.team_private = true;
    rt_route_decide(&r, cands, 4, book, &d);
    CHECK(d.n == 1);
    CHECK_STR(chosen(&d), "engine");
    CHECK_STR(d.evals[0].dropped, "private_team");
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 403);
    CHECK_STR(d.code, "no_permitted_provider");
    CHECK_HAS(d.message, "cheap (private_team)");
    r = req();
    r.key_private = true;
    r.req_allow = "cheap"; /* a request cannot widen a private key */
    rt_route_decide(&r, cands, 4, book, &d);
    CHECK(d.n == 0 && d.status == 403);
    CHECK_STR(d.evals[0].dropped, "private_key");
    CHECK_STR(d.evals[3].dropped, "request_not_allowed");
    CHECK_HAS(d.message, "never widen");
    r.req_allow = NULL;
    rt_route_decide(&r, cands, 4, book, &d);
    CHECK(d.n == 1);
    CHECK_STR(chosen(&d), "engine");
    /* the key's allow and deny lists */
    r = req();
    r.allow = "big, fast";
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(d.evals[0].dropped, "key_not_allowed");
    CHECK_STR(chosen(&d), "big");
    r.allow = NULL;
    r.deny = "cheap,big";
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 1);
    CHECK_STR(chosen(&d), "fast");
    CHECK_STR(d.evals[2].dropped, "key_denied");
    /* the request narrows: its allow list within the key's; its deny on top */
    r = req();
    r.allow = "big,fast";
    r.req_allow = "fast,cheap"; /* naming cheap does not bring it back */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 1);
    CHECK_STR(chosen(&d), "fast");
    CHECK_STR(d.evals[0].dropped, "key_not_allowed");
    CHECK_STR(d.evals[2].dropped, "request_not_allowed");
    r.req_allow = NULL;
    r.req_deny = "big";
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 1);
    CHECK_STR(d.evals[2].dropped, "request_denied");
    r = req();
    r.deny = "fast";
    r.req_allow = "fast"; /* allowing what the key denies: still denied */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 403);
    CHECK_STR(d.evals[1].dropped, "key_denied");
    CHECK_HAS(d.message, "fast (key_denied)");
    /* a need that is a key's or a model's default: the message says so */
    r = req();
    r.latency_target_ms = 1;
    r.latency_from = RT_FROM_KEY;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.status == 422);
    CHECK_HAS(d.message, "The latency target is this API key's default; a request overrides it "
                         "with the x-tollgate-latency-target-ms header");
    r = req();
    r.has_max_cost = true;
    r.max_cost = 1;
    r.cost_from = RT_FROM_MODEL;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(d.code, "max_cost_unmet");
    CHECK_HAS(d.message, "The cost ceiling is the model's default");
    r.cost_from = RT_FROM_REQUEST;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(!strstr(d.message, "default"));
    /* the key's rules alone: the message says nothing of request headers */
    r = req();
    r.allow = "nowhere";
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 403);
    CHECK_HAS(d.message, "No provider this API key may use");
    /* a private key with the context too small everywhere in-house: still 403 */
    r = req();
    r.key_private = true;
    r.prompt_tokens = 150000;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.status == 403);
    r = req();
    r.deny = "chea"; /* whole names only */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 3);
    /* an empty model */
    rt_route_decide(&r, cands, 0, book, &d);
    CHECK(d.n == 0 && d.status == 503);
}

static void test_health(void)
{
    rt_request_t r = req();
    rt_decision_t d;
    rt_breaker_cfg_t bc;
    rt_breaker_defaults(&bc);
    for (int i = 0; i < bc.failures; i++) {
        rt_observation_t f = {T0, false, 503, 0, false, 0, 0, -1, false};
        rt_stats_observe(&st[0], &bc, &f);
    }
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(d.evals[0].dropped, "circuit_open");
    CHECK_STR(chosen(&d), "big");
    /* Retry-After on another */
    rt_observation_t h = {T0, false, 429, 0, false, 0, 0, -1, false};
    h.retry_after_s = 5;
    rt_stats_observe(&st[2], &bc, &h);
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(d.evals[2].dropped, "retry_after");
    CHECK_STR(chosen(&d), "fast");
    /* all unusable: 503 naming each */
    rt_stats_observe(&st[1], &bc, &h);
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 503);
    CHECK_STR(d.code, "no_healthy_provider");
    CHECK_HAS(d.message, "cheap (circuit_open)");
    CHECK_HAS(d.message, "fast (retry_after)");
    /* the ordered policy (the gateway's old behaviour) keeps every route */
    r.policy = RT_POLICY_ORDERED;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 3 && d.order[0] == 0);
    r.policy = RT_POLICY_CHEAPEST;
    /* after the cool-down the probe is allowed back */
    r.now_us = T0 + bc.cooldown_us;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "cheap");
    CHECK(st[0].state == RT_HALF_OPEN);
    for (int i = 0; i < 3; i++)
        rt_stats_init(&st[i]);
}

static void test_needs(void)
{
    rt_request_t r = req();
    rt_decision_t d;
    r.stream = true;
    /* target 1000 ms to first token: cheap (2000) out, big (800) in */
    r.latency_target_ms = 1000;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "big");
    CHECK_STR(d.evals[0].dropped, "latency_target");
    CHECK(d.n == 2);
    /* a safety margin: big's 800 ms x 1.3 = 1040 > 1000: now only the dear one */
    r.target_margin_pct = 30;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "fast");
    CHECK_STR(d.evals[2].dropped, "latency_target");
    r.target_margin_pct = 25; /* 800 x 1.25 = 1000: met (a target is inclusive) */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "big");
    r.target_margin_pct = 0;
    /* 500: only the dear one */
    r.latency_target_ms = 500;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "fast");
    CHECK(d.n == 1);
    /* measured TTFT wins over the prior: big measured at 300 ms (p90) */
    rt_breaker_cfg_t bc;
    rt_breaker_defaults(&bc);
    for (int i = 0; i < 10; i++) {
        rt_observation_t o = {T0, true, 200, 0, true, 300 * 1000, 400 * 1000, 5, false};
        rt_stats_observe(&st[2], &bc, &o);
    }
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "big");
    rt_stats_init(&st[2]);
    /* 50 ms: nobody */
    r.latency_target_ms = 50;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 422);
    CHECK_STR(d.code, "latency_target_unmet");
    CHECK_STR(d.param, "x-tollgate-latency-target-ms");
    CHECK_HAS(d.message, "latency target of 50 ms");
    CHECK_HAS(d.message, "the fastest, fast, is expected at 100 ms");
    /* a cost ceiling below every candidate */
    r = req();
    r.has_max_cost = true;
    r.max_cost = 1000; /* 1e-9 USD */
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 422);
    CHECK_STR(d.code, "max_cost_unmet");
    CHECK_STR(d.param, "x-tollgate-max-cost");
    CHECK_HAS(d.message, "the cheapest, cheap, is expected to cost 0.000322 USD");
    /* a ceiling that excludes the dear one from the fallbacks */
    r.max_cost = (pr_pico_t)400000000; /* 0.0004: cheap 0.000322, big 0.00065, fast 0.0026 */
    r.policy = RT_POLICY_FASTEST;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 1);
    CHECK_STR(chosen(&d), "cheap");
    CHECK_STR(d.evals[1].dropped, "max_cost");
    /* both: fast enough ones are too dear */
    r.stream = true;
    r.latency_target_ms = 500;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 0 && d.status == 422);
    CHECK_STR(d.code, "needs_unmet");
    CHECK_HAS(d.message, "cannot both be met");
    /* a ceiling without a price cannot be promised */
    rt_candidate_t c[3];
    memcpy(c, cands, sizeof c);
    c[0].model = "nope";
    r = req();
    r.has_max_cost = true;
    r.max_cost = (pr_pico_t)1 << 60;
    rt_route_decide(&r, c, 3, book, &d);
    CHECK_STR(d.evals[0].dropped, "cost_unknown");
    /* no prices at all: the ceiling is refused, saying why */
    rt_route_decide(&r, cands, 3, NULL, &d);
    CHECK(d.n == 0 && d.status == 422);
    CHECK_STR(d.code, "max_cost_unmet");
    CHECK_HAS(d.message, "none has a price card");
    /* baselines ignore needs */
    r = req();
    r.latency_target_ms = 1;
    r.policy = RT_POLICY_LIST_PRICE;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.n == 3);
    CHECK_STR(chosen(&d), "cheap");
}

static void test_policies(void)
{
    rt_request_t r = req();
    rt_decision_t d;
    r.policy = RT_POLICY_FASTEST;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK_STR(chosen(&d), "fast");
    CHECK_STR(d.why, "least expected latency");
    r.policy = RT_POLICY_BALANCED;
    rt_route_decide(&r, cands, 3, book, &d);
    /* cost permille of the cheapest: cheap 1000, big 1789, fast 7158; latency
     * permille of the fastest (595 ms): cheap 6689, big 5504, fast 1000:
     * big 7293 < cheap 7689 < fast 8158 */
    CHECK_STR(chosen(&d), "big");
    CHECK(d.evals[2].score < d.evals[0].score && d.evals[0].score < d.evals[1].score);
    CHECK(d.evals[2].score == (int64_t)(d.evals[2].cost * 1000 / d.evals[0].cost) +
                                  (int64_t)(d.evals[2].latency_ms * 1000.0 / d.evals[1].latency_ms));
    CHECK(d.evals[0].score == 1000 + (int64_t)(d.evals[0].latency_ms * 1000.0 / d.evals[1].latency_ms));
    r.policy = RT_POLICY_ORDERED;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.order[0] == 0 && d.order[1] == 1 && d.order[2] == 2);
    r.policy = RT_POLICY_ROUND_ROBIN;
    int seen[3] = {0};
    for (uint64_t s = 0; s < 6; s++) {
        r.seed = s;
        rt_route_decide(&r, cands, 3, book, &d);
        seen[d.chosen]++;
        CHECK(d.n == 3);
    }
    CHECK(seen[0] == 2 && seen[1] == 2 && seen[2] == 2);
    r.policy = RT_POLICY_LIST_PRICE;
    rt_route_decide(&r, cands, 3, book, &d);
    CHECK(d.order[0] == 0 && d.order[1] == 2 && d.order[2] == 1);
    rt_policy_t p;
    CHECK(rt_policy_parse("round_robin", &p) == 0 && p == RT_POLICY_ROUND_ROBIN);
    CHECK(rt_policy_parse("cheap", &p) == -1);
    CHECK(rt_policy_parse(NULL, &p) == -1);
}

static void test_near_ties(void)
{
    /* two providers with the same card prices and latency: spread ~evenly,
     * deterministic for a seed; a clearly cheaper third always wins alone */
    pr_book_t *b = pr_book_new();
    pr_card_def_t a = {1, "a", "m", "USD", {1, 1000000, 1000000, -1}, 0};
    pr_card_def_t bb = {2, "b", "m", "USD", {1, 1010000, 1010000, -1}, 0};
    pr_card_def_t c = {3, "c", "m", "USD", {1, 2000000, 2000000, -1}, 0};
    CHECK(pr_book_add_card(b, &a, err, sizeof err) == 0);
    CHECK(pr_book_add_card(b, &bb, err, sizeof err) == 0);
    CHECK(pr_book_add_card(b, &c, err, sizeof err) == 0);
    CHECK(pr_book_finalize(b, err, sizeof err) == 0);
    rt_candidate_t cs[3] = {{"a", "m", 100000, false, 0, 100, 50, NULL},
                            {"b", "m", 100000, false, 0, 100, 50, NULL},
                            {"c", "m", 100000, false, 0, 100, 50, NULL}};
    rt_request_t r = req();
    rt_decision_t d;
    int count[3] = {0};
    for (uint64_t s = 0; s < 1000; s++) {
        r.seed = s;
        rt_route_decide(&r, cs, 3, b, &d);
        count[d.chosen]++;
        CHECK(d.n == 3);
        CHECK(d.order[2] == 2); /* c is never in the tie */
    }
    printf("near-tie split a/b/c: %d/%d/%d\n", count[0], count[1], count[2]);
    CHECK(count[2] == 0);
    CHECK(count[0] > count[1]); /* the cheaper weighs more ... */
    CHECK(count[1] > 250);      /* ... but both get load */
    r.seed = 42;
    rt_route_decide(&r, cs, 3, b, &d);
    int first = d.chosen;
    rt_route_decide(&r, cs, 3, b, &d);
    CHECK(d.chosen == first);
    CHECK_HAS(d.why, "near-tie");
    /* equal zero costs (free cards) still spread */
    pr_book_free(b);
}

static void test_explain(void)
{
    rt_request_t r = req();
    rt_decision_t d;
    r.prompt_tokens = 70000;
    rt_route_decide(&r, cands, 3, book, &d);
    char buf[512];
    rt_explain_compact(&d, buf, sizeof buf);
    printf("explain: %s\n", buf);
    CHECK_HAS(buf, "\"policy\":\"cheapest\"");
    CHECK_HAS(buf, "\"chosen\":\"big\"");
    CHECK_HAS(buf, "\"runner_up\":\"fast\"");
    CHECK_HAS(buf, "\"why\":\"least expected cost\"");
    CHECK_HAS(buf, "{\"p\":\"cheap\",\"cost\":\"");
    CHECK_HAS(buf, "\"drop\":\"context_window\"");
    CHECK(buf[strlen(buf) - 1] == '}');
    CHECK(json_ok(buf));
    /* too small a buffer: candidates left out and counted, still valid JSON */
    char small[120];
    rt_explain_compact(&d, small, sizeof small);
    printf("explain (120 bytes): %s\n", small);
    CHECK(strlen(small) < sizeof small);
    CHECK_HAS(small, "\"more\":");
    CHECK(small[strlen(small) - 1] == '}');
    CHECK(json_ok(small));
    for (size_t cap = 3; cap <= 400; cap++) { /* every size gives JSON that fits */
        char b[400];
        rt_explain_compact(&d, b, cap);
        CHECK(strlen(b) < cap && json_ok(b));
    }
    char tiny[8];
    rt_explain_compact(&d, tiny, sizeof tiny);
    CHECK_STR(tiny, "{}");
    /* an error decision */
    r.latency_target_ms = 1;
    rt_route_decide(&r, cands, 3, book, &d);
    rt_explain_compact(&d, buf, sizeof buf);
    CHECK_HAS(buf, "\"error\":\"latency_target_unmet\"");
    CHECK(json_ok(buf));
    /* the needs and where they came from */
    r = req();
    r.latency_target_ms = 5000;
    r.latency_from = RT_FROM_KEY;
    r.has_max_cost = true;
    r.max_cost = 2000000000; /* 0.002 */
    r.cost_from = RT_FROM_MODEL;
    r.preference_from = RT_FROM_REQUEST;
    rt_route_decide(&r, cands, 3, book, &d);
    rt_explain_compact(&d, buf, sizeof buf);
    printf("explain with needs: %s\n", buf);
    CHECK_HAS(buf, "\"need\":{\"lat\":5000,\"lat_by\":\"key\",\"cost\":\"0.002\","
                   "\"cost_by\":\"model\",\"pref_by\":\"request\"}");
    CHECK(json_ok(buf));
    r = req();
    r.latency_from = RT_FROM_KEY; /* no target: no source either */
    rt_route_decide(&r, cands, 3, book, &d);
    rt_explain_compact(&d, buf, sizeof buf);
    CHECK(!strstr(buf, "\"need\""));
    /* names are escaped */
    rt_candidate_t q[1] = {{"we\"ird\\", "m", 100000, false, 0, 1, 1, NULL}};
    r = req();
    rt_route_decide(&r, q, 1, book, &d);
    rt_explain_compact(&d, buf, sizeof buf);
    CHECK_HAS(buf, "\"chosen\":\"we\\\"ird\\\\\"");
    CHECK(json_ok(buf));
}

static void test_provider_lists(void)
{
    CHECK(rt_parse_providers("cheap", err, sizeof err) == 0);
    CHECK(rt_parse_providers("cheap,big,azure-eu.1", err, sizeof err) == 0);
    const char *bad[] = {"", ",", "a,", ",a", "a,,b", "a b", "a;b", "a,b,a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(rt_parse_providers(bad[i], err, sizeof err) == -1);
        CHECK(strlen(err) > 10);
    }
    CHECK(rt_parse_providers("a,b,a", err, sizeof err) == -1);
    CHECK_HAS(err, "names provider 'a' twice");
    char long_name[80], long_list[300];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    CHECK(rt_parse_providers(long_name, err, sizeof err) == -1);
    for (int i = 0; i < 64; i++)
        snprintf(long_list + 4 * i, sizeof long_list - 4 * (size_t)i, "p%02d,", i);
    long_list[255] = '\0'; /* 256 bytes would be one too many */
    long_list[254] = 'z';
    CHECK(rt_parse_providers(long_list, err, sizeof err) == 0);
    strcat(long_list, "z");
    CHECK(rt_parse_providers(long_list, err, sizeof err) == -1);
    CHECK(rt_provider_list_has("a, b ,c", "b"));
    CHECK(!rt_provider_list_has("ab,c", "a"));
    CHECK(!rt_provider_list_has(NULL, "a"));
    CHECK(!rt_provider_list_has("", "a"));
    CHECK_STR(rt_need_from_name(RT_FROM_KEY), "key");
    CHECK_STR(rt_need_from_name(RT_FROM_NONE), "");
}

static void test_parsers(void)
{
    int64_t ms;
    pr_pico_t c;
    rt_policy_t p;
    CHECK(rt_parse_latency_ms("1500", &ms, err, sizeof err) == 0 && ms == 1500);
    const char *bad_ms[] = {"", "0", "-5", "1.5", "12ms", "3600001", " 5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ms / sizeof bad_ms[0]; i++) {
        CHECK(rt_parse_latency_ms(bad_ms[i], &ms, err, sizeof err) == -1);
        CHECK_HAS(err, "milliseconds");
    }
    CHECK(rt_parse_latency_ms(NULL, &ms, err, sizeof err) == -1);
    CHECK(rt_parse_cost("0.002", &c, err, sizeof err) == 0 && c == (pr_pico_t)2000000000);
    CHECK(rt_parse_cost("3", &c, err, sizeof err) == 0 && c == (pr_pico_t)3 * 1000000000000);
    CHECK(rt_parse_cost("0.000000000001", &c, err, sizeof err) == 0 && c == 1);
    CHECK(rt_parse_cost("0", &c, err, sizeof err) == 0 && c == 0);
    CHECK(rt_parse_cost(".5", &c, err, sizeof err) == 0 && c == (pr_pico_t)500000000000);
    const char *bad_cost[] = {"", "-1", "1e3", "0.0000000000001", "abc", "1.2.3", ".", "1,5",
                              "1234567890123456789012345"};
    for (size_t i = 0; i < sizeof bad_cost / sizeof bad_cost[0]; i++) {
        CHECK(rt_parse_cost(bad_cost[i], &c, err, sizeof err) == -1);
        CHECK_HAS(err, "decimal");
    }
    CHECK(rt_parse_preference("balanced", &p, err, sizeof err) == 0 && p == RT_POLICY_BALANCED);
    CHECK(rt_parse_preference("fastest", &p, err, sizeof err) == 0 && p == RT_POLICY_FASTEST);
    CHECK(rt_parse_preference("round_robin", &p, err, sizeof err) == -1); /* baselines: config only */
    CHECK(rt_parse_preference("Cheapest", &p, err, sizeof err) == -1);
    CHECK_HAS(err, "cheapest, fastest or balanced");
}

int main(void)
{
    setup();
    test_cost_and_latency();
    test_discount_window_at_completion();
    test_filters();
    test_health();
    test_needs();
    test_policies();
    test_near_ties();
    test_explain();
    test_parsers();
    test_provider_lists();
    pr_book_free(book);
    return report("router_route");
}
