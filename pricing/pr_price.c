/* pr_price: the read side of a finalized book: which card and window apply to
 * provider/model at an instant (hash on provider+model, binary search on time,
 * windows in precedence order), and the exact charge of one usage record. */
#include "pr_book_internal.h"

#include <stdio.h>
#include <string.h>

uint64_t pr_key_hash(const char *provider, const char *model)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over provider NUL model */
    for (const unsigned char *p = (const unsigned char *)provider; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)model; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static const pr_group_t *group_find(const pr_book_t *b, const char *provider, const char *model)
{
    if (b->nslots == 0)
        return NULL;
    uint64_t h = pr_key_hash(provider, model);
    for (size_t s = (size_t)h & (b->nslots - 1);; s = (s + 1) & (b->nslots - 1)) {
        uint32_t gi = b->slots[s];
        if (gi == 0)
            return NULL;
        const pr_group_t *g = &b->groups[gi - 1];
        const pr_card_t *c = &b->cards[g->first];
        if (g->hash == h && strcmp(c->provider, provider) == 0 && strcmp(c->model, model) == 0)
            return g;
    }
}

char *pr_instant_format(int64_t us, char *buf, size_t len)
{
    int64_t secs = pr_floor_div(us, 1000000), frac = us - secs * 1000000;
    int64_t days = pr_floor_div(secs, 86400), sod = secs - days * 86400, y;
    int m, d;
    pr_civil_from_days(days, &y, &m, &d);
    if (frac)
        snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ", (long long)y, m, d,
                 (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)frac);
    else
        snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
                 (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
    return buf;
}

static int find_in_group(const pr_book_t *b, const pr_group_t *g, int64_t at_us,
                         const pr_card_t **card, const pr_window_t **window, char *err,
                         size_t errlen)
{
    const pr_card_t *cards = b->cards + g->first;
    if (at_us < cards[0].effective_from_us) {
        char a[40], f[40];
        snprintf(err, errlen, "no price card for %s/%s at %s (its first card takes effect %s)",
                 cards[0].provider, cards[0].model, pr_instant_format(at_us, a, sizeof a),
                 pr_instant_format(cards[0].effective_from_us, f, sizeof f));
        return -1;
    }
    size_t lo = 0, hi = g->count; /* last card with effective_from <= at */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cards[mid].effective_from_us <= at_us)
            lo = mid;
        else
            hi = mid;
    }
    size_t ci = g->first + lo;
    *card = &b->cards[ci];
    *window = NULL;
    const pr_window_t *w = b->wins + b->win_first[ci];
    for (uint32_t i = 0; i < b->win_count[ci]; i++)
        if (pr_window_matches(&w[i], at_us)) {
            *window = &w[i]; /* sorted by precedence: the first match wins */
            break;
        }
    return 0;
}

int pr_book_find(const pr_book_t *b, const char *provider, const char *model, int64_t at_us,
                 const pr_card_t **card, const pr_window_t **window, char *err, size_t errlen)
{
    if (!b->ready) {
        snprintf(err, errlen, "price book not finalized (or finalize failed)");
        return -1;
    }
    const pr_group_t *g = group_find(b, provider ? provider : "", model ? model : "");
    if (g == NULL) {
        snprintf(err, errlen, "no price card for provider \"%.64s\" model \"%.128s\"",
                 provider ? provider : "", model ? model : "");
        return -1;
    }
    return find_in_group(b, g, at_us, card, window, err, errlen);
}

pr_tier_t pr_book_tier(const pr_book_t *b, const char *provider)
{
    for (size_t i = 0; i < b->ntiers; i++)
        if (strcmp(b->tiers[i].provider, provider) == 0)
            return b->tiers[i].tier;
    return PR_TIER_COMPLETION;
}

int pr_prices_percent_off(const pr_prices_t *card, int32_t bp, pr_prices_t *out, char *err,
                          size_t errlen)
{
    pr_prices_t r;
    int64_t reasoning = card->reasoning == -1 ? card->output : card->reasoning;
    if (pr_price_percent_off(card->cache_hit, bp, &r.cache_hit, err, errlen) ||
        pr_price_percent_off(card->cache_miss, bp, &r.cache_miss, err, errlen) ||
        pr_price_percent_off(card->output, bp, &r.output, err, errlen) ||
        pr_price_percent_off(reasoning, bp, &r.reasoning, err, errlen))
        return -1;
    *out = r;
    return 0;
}

static int count_ok(int64_t v, const char *what, char *err, size_t errlen)
{
    if (v < -1 || v > PR_TOKENS_MAX) {
        snprintf(err, errlen, "%s token count %lld is invalid (must be -1 for unknown or 0..%lld)",
                 what, (long long)v, (long long)PR_TOKENS_MAX);
        return -1;
    }
    return 0;
}

/* Splits reported counts into the four priced classes; sets flags. */
static int usage_split(const pr_usage_t *u, const pr_prices_t *p, int64_t t[PR_C_COUNT],
                       unsigned *flags, char *err, size_t errlen)
{
    if (count_ok(u->prompt, "prompt", err, errlen) ||
        count_ok(u->cache_hit, "cache-hit", err, errlen) ||
        count_ok(u->cache_miss, "cache-miss", err, errlen) ||
        count_ok(u->completion, "completion", err, errlen) ||
        count_ok(u->reasoning, "reasoning", err, errlen))
        return -1;
    unsigned f = u->complete ? 0 : PR_FLAG_REPORTED_INCOMPLETE;
    int64_t hit = u->cache_hit, miss = u->cache_miss, prompt = u->prompt;
    if (hit >= 0 && miss >= 0) {
        if (prompt >= 0 && prompt != hit + miss) {
            snprintf(err, errlen, "usage: cache hit %lld + miss %lld != prompt %lld",
                     (long long)hit, (long long)miss, (long long)prompt);
            return -1;
        }
    } else if (prompt >= 0) {
        int64_t known = hit >= 0 ? hit : miss;
        if (known > prompt) {
            snprintf(err, errlen, "usage: cache %s %lld exceeds prompt %lld",
                     hit >= 0 ? "hit" : "miss", (long long)known, (long long)prompt);
            return -1;
        }
        if (hit >= 0) {
            miss = prompt - hit;
        } else if (miss >= 0) {
            hit = prompt - miss;
        } else { /* split unknown: price all as miss (the upper bound) */
            hit = 0;
            miss = prompt;
            f |= PR_FLAG_CACHE_SPLIT_UNKNOWN;
        }
    } else {
        f |= PR_FLAG_PROMPT_UNKNOWN;
        hit = hit < 0 ? 0 : hit;
        miss = miss < 0 ? 0 : miss;
    }
    int64_t comp = u->completion, reas = u->reasoning, out;
    if (comp >= 0 && reas >= 0) {
        if (reas > comp) {
            snprintf(err, errlen,
                     "usage: reasoning %lld exceeds completion %lld (completion "
                     "includes reasoning)",
                     (long long)reas, (long long)comp);
            return -1;
        }
        out = comp - reas;
    } else if (comp >= 0) {
        out = comp;
        reas = 0;
        if (p->reasoning != p->output)
            f |= PR_FLAG_REASONING_UNKNOWN;
    } else {
        f |= PR_FLAG_COMPLETION_UNKNOWN;
        out = 0;
        reas = reas < 0 ? 0 : reas;
    }
    t[PR_C_HIT] = hit;
    t[PR_C_MISS] = miss;
    t[PR_C_OUTPUT] = out;
    t[PR_C_REASONING] = reas;
    *flags = f;
    return 0;
}

int pr_price_usage(const pr_book_t *b, const char *provider, const char *model, int64_t start_us,
                   int64_t completion_us, const pr_usage_t *usage, pr_charge_t *out, char *err,
                   size_t errlen)
{
    if (!b->ready) {
        snprintf(err, errlen, "price book not finalized (or finalize failed)");
        return -1;
    }
    const pr_group_t *g = group_find(b, provider ? provider : "", model ? model : "");
    if (g == NULL) {
        snprintf(err, errlen, "no price card for provider \"%.64s\" model \"%.128s\"",
                 provider ? provider : "", model ? model : "");
        return -1;
    }
    int64_t at = g->tier == PR_TIER_START ? start_us : completion_us;
    pr_charge_t c;
    memset(&c, 0, sizeof c);
    if (find_in_group(b, g, at, &c.card, &c.window, err, errlen) != 0)
        return -1;
    c.decided_at_us = at;
    c.prices = c.window ? c.window->prices : c.card->prices;
    if (usage_split(usage, &c.prices, c.tokens, &c.flags, err, errlen) != 0)
        return -1;
    const int64_t price[PR_C_COUNT] = {c.prices.cache_hit, c.prices.cache_miss, c.prices.output,
                                       c.prices.reasoning};
    for (int i = 0; i < PR_C_COUNT; i++)
        if (pr_cost(c.tokens[i], price[i], &c.cost[i], err, errlen) != 0 ||
            pr_pico_add(c.total, c.cost[i], &c.total, err, errlen) != 0)
            return -1;
    *out = c;
    return 0;
}
