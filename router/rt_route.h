/* rt_route: the per-request routing decision. Given the candidates serving a
 * model (each with its price card in the book, its measured state and priors)
 * and the request's needs (latency target, cost ceiling, preference), it
 * filters, scores and orders them, and explains why. The first of the order is
 * the choice, the rest are the fallbacks for errors before the first byte.
 * Pure: the clock, measurements and the price book come in as data. */
#ifndef RT_ROUTE_H
#define RT_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pr_book.h"
#include "rt_stats.h"

#define RT_MAX_CANDIDATES 8

typedef enum {
    RT_POLICY_CHEAPEST = 0, /* least expected cost among those meeting the needs */
    RT_POLICY_FASTEST,      /* least expected latency */
    RT_POLICY_BALANCED,     /* least cost/cheapest + latency/fastest */
    /* baselines, for comparison (bench/router.sh): needs are not considered */
    RT_POLICY_ROUND_ROBIN,  /* rotate over the usable candidates */
    RT_POLICY_LIST_PRICE,   /* least static list price (miss + output per 1M) */
    RT_POLICY_ORDERED,      /* the configured order, context filter only: the gateway's
                             * behaviour before the router (no health filter either) */
    RT_POLICY_COUNT
} rt_policy_t;

/* Where a need (latency target, cost ceiling, preference) came from: the
 * request's header beats the key's default, which beats the model's. */
typedef enum { RT_FROM_NONE = 0, RT_FROM_REQUEST, RT_FROM_KEY, RT_FROM_MODEL } rt_need_from_t;

const char *rt_need_from_name(rt_need_from_t f); /* "request", "key", "model" or "" */

typedef struct rt_candidate {
    const char *provider;     /* provider name = its price cards' provider */
    const char *model;        /* upstream model name = its price cards' model */
    int64_t context_tokens;
    bool in_house;            /* served by our own engine (kind = engine) */
    int cache_hit_bp;         /* expected cache-hit share of the prompt, 0..10000 */
    double prior_ttft_ms;     /* used until measured */
    double prior_tps;
    rt_stats_t *stats;        /* measured state (read, and moved open -> half-open) */
} rt_candidate_t;

typedef struct rt_request {
    int64_t now_us;
    int64_t prompt_tokens;
    bool prompt_exact;        /* false: an estimate never drops a candidate */
    int64_t max_tokens;       /* 0 = not given */
    int64_t expected_output;  /* expected completion tokens (measured); 0 = unknown */
    bool stream;
    rt_policy_t policy;
    int64_t latency_target_ms; /* 0 = none; streams: to first token; else: whole answer */
    bool has_max_cost;
    pr_pico_t max_cost;       /* in each candidate card's currency */
    /* rules: what the key may use (no request can widen them) */
    bool team_private;        /* the key's team is private: in-house candidates only */
    bool key_private;         /* the key itself is private: in-house candidates only */
    const char *allow;        /* the key's allow list: comma-separated provider names;
                               * NULL/"" = all */
    const char *deny;         /* the key's deny list; NULL/"" = none */
    const char *req_allow;    /* the request's own allow list (narrows only); NULL/"" = all */
    const char *req_deny;     /* the request's own deny list; NULL/"" = none */
    /* where each need came from, for the explanation (RT_FROM_NONE = not stated) */
    rt_need_from_t latency_from, cost_from, preference_from;
    uint64_t seed;            /* spreads near-ties; round-robin position */
    int percentile;           /* TTFT percentile checked against targets (e.g. 90) */
    int target_margin_pct;    /* a target is met when latency x (100 + this) / 100 <= it */
    const rt_breaker_cfg_t *breaker; /* NULL = rt_breaker_defaults */
} rt_request_t;

/* What the router thought of one candidate. */
typedef struct rt_eval {
    const char *provider;
    const char *dropped;      /* NULL = eligible; else the reason (see docs/router.md) */
    bool cost_known;
    pr_pico_t cost;           /* expected cost of this request */
    char currency[4];
    int minor;                /* the currency's decimals */
    int64_t window_id;        /* discount window expected to apply; 0 = none */
    int64_t list_price;       /* static miss + output price per 1M (micro); -1 unknown */
    double ttft_ms;           /* expected (percentile) time to first token */
    double latency_ms;        /* what a target is checked against: streams the TTFT,
                               * else TTFT + max_tokens (or expected) at the speed */
    double total_ms;          /* expected time to the last token */
    int64_t score;            /* lower is better (policy-specific) */
} rt_eval_t;

typedef struct rt_decision {
    rt_policy_t policy;
    /* the needs decided on, and where each came from (copied from the request) */
    int64_t latency_target_ms;
    bool has_max_cost;
    pr_pico_t max_cost;
    rt_need_from_t latency_from, cost_from, preference_from;
    int order[RT_MAX_CANDIDATES]; /* candidate indexes, best first */
    int n;
    rt_eval_t evals[RT_MAX_CANDIDATES]; /* one per candidate, in input order */
    int n_evals;
    int chosen, runner_up;    /* candidate indexes, -1 = none */
    const char *why;          /* why the chosen one */
    /* when n == 0: the client's error */
    int status;
    char code[48], param[48], message[512];
} rt_decision_t;

/* Decides for one request. `book` may be NULL (no prices loaded: costs
 * unknown). Candidates are filtered (context window; the rules: private team,
 * private key, the key's allow and deny lists, the request's allow and deny
 * lists, each with its own drop reason; circuit/Retry-After; then the needs) and ordered by the policy; near-ties
 * (within 3% of the best score) are spread by a weighted draw from `seed`.
 * Never returns an order that breaks a stated need: when nothing is left the
 * decision carries the error (n = 0, status 400/422/503, a message naming
 * the need). Does not count the request in flight: the caller calls
 * rt_stats_take on the chosen candidate's stats. */
void rt_route_decide(const rt_request_t *rq, const rt_candidate_t *cands, int n_cands,
                     const pr_book_t *book, rt_decision_t *d);

/* Writes the decision as compact JSON (policy, chosen, runner-up, why, and
 * per candidate its cost, latency or drop reason) into buf, never more than
 * len bytes; candidates that do not fit are left out ("more": N). */
void rt_explain_compact(const rt_decision_t *d, char *buf, size_t len);

const char *rt_policy_name(rt_policy_t p);
/* Parses a policy name (the three preferences and the baselines). Returns 0, or -1. */
int rt_policy_parse(const char *s, rt_policy_t *out);

/* Parses the request headers' values. Each returns 0, or -1 with a message
 * (naming nothing: the caller names the header).
 *  latency target: a positive integer of milliseconds (at most 3,600,000);
 *  max cost: a non-negative decimal of currency units, at most 12 decimals;
 *  preference: cheapest | fastest | balanced. */
int rt_parse_latency_ms(const char *s, int64_t *out, char *err, size_t errlen);
int rt_parse_cost(const char *s, pr_pico_t *out, char *err, size_t errlen);
int rt_parse_preference(const char *s, rt_policy_t *out, char *err, size_t errlen);

#define RT_PROVIDER_LIST_MAX 255 /* bytes of a comma-separated provider list */

/* Checks a provider list (a key's or a request's allow or deny list): 1 to
 * RT_PROVIDER_LIST_MAX bytes of comma-separated names, each 1 to 63 letters,
 * digits or ._:/@+- (no spaces, no empty entries, no name twice). Returns 0,
 * or -1 with a message naming the problem (not the header or flag). */
int rt_parse_providers(const char *s, char *err, size_t errlen);

/* Whether `name` is an element of the comma-separated `list` (whole names;
 * spaces around names ignored). NULL or "" holds nothing. */
bool rt_provider_list_has(const char *list, const char *name);

#endif
