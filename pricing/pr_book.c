/* pr_book: building a price book: copying and checking cards, windows,
 * calendars, zones and tier settings, then pr_book_finalize, which cross-checks
 * them (duplicates, references, ambiguous windows) and builds the lookup index. */
#include "pr_book_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 16;                                                          \
            void *np_ = realloc((arr), (cap) * sizeof *(arr));                                     \
            if (np_ == NULL)                                                                       \
                abort();                                                                           \
            (arr) = np_;                                                                           \
        }                                                                                          \
    } while (0)

pr_book_t *pr_book_new(void)
{
    pr_book_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        abort();
    return b;
}

void pr_book_free(pr_book_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->ncals; i++)
        free(b->cals[i].dates);
    for (size_t i = 0; i < b->nzones; i++)
        pr_tz_free(b->zones[i]);
    free(b->cards);
    free(b->wins);
    free(b->win_bp);
    free(b->cals);
    free(b->zones);
    free(b->tiers);
    free(b->groups);
    free(b->slots);
    free(b->win_first);
    free(b->win_count);
    free(b);
}

static int check_open(const pr_book_t *b, char *err, size_t errlen)
{
    if (b->finalized) {
        snprintf(err, errlen, "price book already finalized: build a new one");
        return -1;
    }
    return 0;
}

static int copy_name(char *dst, size_t cap, const char *src, const char *what, char *err,
                     size_t errlen)
{
    if (src == NULL || src[0] == '\0') {
        snprintf(err, errlen, "%s is empty", what);
        return -1;
    }
    if (strlen(src) >= cap) {
        snprintf(err, errlen, "%s \"%.40s...\" is longer than %zu bytes", what, src, cap - 1);
        return -1;
    }
    strcpy(dst, src);
    return 0;
}

/* Checks a price set; reasoning -1 becomes output. */
static int prices_resolve(pr_prices_t *p, const char *who, char *err, size_t errlen)
{
    char what[96];
    const char *names[4] = {"cache-hit", "cache-miss", "output", "reasoning"};
    int64_t *v[4] = {&p->cache_hit, &p->cache_miss, &p->output, &p->reasoning};
    if (p->reasoning == -1)
        p->reasoning = p->output;
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "%s: %s", who, names[i]);
        if (pr_price_check(*v[i], what, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int pr_book_add_card(pr_book_t *b, const pr_card_def_t *def, char *err, size_t errlen)
{
    if (check_open(b, err, errlen) != 0)
        return -1;
    pr_card_t c;
    memset(&c, 0, sizeof c);
    char who[64];
    snprintf(who, sizeof who, "card %lld", (long long)def->id);
    if (def->id <= 0) {
        snprintf(err, errlen, "%s: id must be positive", who);
        return -1;
    }
    if (copy_name(c.provider, sizeof c.provider, def->provider, "card provider", err, errlen) ||
        copy_name(c.model, sizeof c.model, def->model, "card model", err, errlen))
        return -1;
    char cerr[160];
    if ((c.currency = pr_currency_find(def->currency, cerr, sizeof cerr)) == NULL) {
        snprintf(err, errlen, "%s: %s", who, cerr);
        return -1;
    }
    c.id = def->id;
    c.prices = def->prices;
    if (prices_resolve(&c.prices, who, err, errlen) != 0)
        return -1;
    if (def->effective_from_us == PR_FOREVER || def->effective_from_us == INT64_MIN) {
        snprintf(err, errlen, "%s: effective-from instant missing", who);
        return -1;
    }
    c.effective_from_us = def->effective_from_us;
    c.effective_until_us = PR_FOREVER;
    GROW(b->cards, b->ncards, b->capc);
    b->cards[b->ncards++] = c;
    return 0;
}

int pr_book_add_window(pr_book_t *b, const pr_window_def_t *def, char *err, size_t errlen)
{
    if (check_open(b, err, errlen) != 0)
        return -1;
    pr_window_t w;
    memset(&w, 0, sizeof w);
    char who[64];
    snprintf(who, sizeof who, "window %lld", (long long)def->id);
    if (def->id <= 0 || def->card_id <= 0) {
        snprintf(err, errlen, "%s: id and card id must be positive", who);
        return -1;
    }
    if (def->kind != PR_WIN_ONCE && def->kind != PR_WIN_DAILY && def->kind != PR_WIN_HOLIDAY) {
        snprintf(err, errlen, "%s: unknown kind %d", who, (int)def->kind);
        return -1;
    }
    if (def->valid_until_us <= def->valid_from_us) {
        snprintf(err, errlen, "%s: ends before it starts (until <= from)", who);
        return -1;
    }
    w.id = def->id;
    w.card_id = def->card_id;
    w.kind = def->kind;
    w.precedence = def->precedence;
    w.valid_from_us = def->valid_from_us;
    w.valid_until_us = def->valid_until_us;
    w.weekdays = PR_WEEKDAYS_ALL;
    w.calendar_id = 0;
    if (def->kind == PR_WIN_DAILY) {
        if (copy_name(w.zone_name, sizeof w.zone_name, def->zone, "daily window zone", err, errlen))
            return -1;
        if (def->start_sec < 0 || def->start_sec >= 86400 || def->end_sec <= 0 ||
            def->end_sec > 86400) {
            snprintf(err, errlen,
                     "%s: daily start must be in [00:00, 24:00) and end in (00:00, 24:00]", who);
            return -1;
        }
        if (def->start_sec == def->end_sec) {
            snprintf(err, errlen, "%s: daily start equals end (empty window)", who);
            return -1;
        }
        if (def->weekdays > PR_WEEKDAYS_ALL) {
            snprintf(err, errlen, "%s: weekday mask 0x%x has bits beyond Sunday", who,
                     def->weekdays);
            return -1;
        }
        if (def->calendar_id < 0) {
            snprintf(err, errlen, "%s: negative calendar id", who);
            return -1;
        }
        w.start_sec = def->start_sec;
        w.end_sec = def->end_sec;
        w.weekdays = def->weekdays ? def->weekdays : PR_WEEKDAYS_ALL;
        w.calendar_id = def->calendar_id;
    } else if (def->kind == PR_WIN_HOLIDAY) {
        if (def->calendar_id <= 0) {
            snprintf(err, errlen, "%s: a holiday window needs a calendar", who);
            return -1;
        }
        w.calendar_id = def->calendar_id;
    }
    int32_t bp = -1;
    if (def->use_percent) {
        if (def->percent_off_bp < 0 || def->percent_off_bp > 10000) {
            snprintf(err, errlen, "%s: discount %d basis points outside [0, 10000]", who,
                     def->percent_off_bp);
            return -1;
        }
        bp = def->percent_off_bp;
    } else {
        w.prices = def->prices;
        if (prices_resolve(&w.prices, who, err, errlen) != 0)
            return -1;
    }
    w.percent_off_bp = bp;
    size_t cap = b->capw;
    GROW(b->wins, b->nwins, b->capw);
    if (cap != b->capw) {
        int32_t *nb = realloc(b->win_bp, b->capw * sizeof *nb);
        if (nb == NULL)
            abort();
        b->win_bp = nb;
    }
    b->win_bp[b->nwins] = bp;
    b->wins[b->nwins++] = w;
    return 0;
}

int pr_book_add_calendar(pr_book_t *b, int64_t id, const char *zone, char *err, size_t errlen)
{
    if (check_open(b, err, errlen) != 0)
        return -1;
    if (id <= 0) {
        snprintf(err, errlen, "calendar id must be positive");
        return -1;
    }
    for (size_t i = 0; i < b->ncals; i++)
        if (b->cals[i].id == id) {
            snprintf(err, errlen, "calendar %lld defined twice", (long long)id);
            return -1;
        }
    pr_calendar_t c;
    memset(&c, 0, sizeof c);
    c.id = id;
    if (copy_name(c.zone_name, sizeof c.zone_name, zone, "calendar zone", err, errlen))
        return -1;
    GROW(b->cals, b->ncals, b->capcal);
    b->cals[b->ncals++] = c;
    return 0;
}

int pr_book_add_holiday(pr_book_t *b, int64_t calendar_id, int y, int m, int d, char *err,
                        size_t errlen)
{
    if (check_open(b, err, errlen) != 0)
        return -1;
    pr_calendar_t *c = NULL;
    for (size_t i = 0; i < b->ncals; i++)
        if (b->cals[i].id == calendar_id)
            c = &b->cals[i];
    if (c == NULL) {
        snprintf(err, errlen, "holiday for unknown calendar %lld", (long long)calendar_id);
        return -1;
    }
    int64_t yy;
    int mm, dd;
    int64_t day = pr_days_from_civil(y, m, d);
    pr_civil_from_days(day, &yy, &mm, &dd);
    if (y < 1900 || y > 9999 || yy != y || mm != m || dd != d) {
        snprintf(err, errlen, "calendar %lld: %04d-%02d-%02d is not a valid date",
                 (long long)calendar_id, y, m, d);
        return -1;
    }
    GROW(c->dates, c->n, c->cap);
    c->dates[c->n++] = day;
    return 0;
}

int pr_book_set_tier(pr_book_t *b, const char *provider, pr_tier_t tier, char *err, size_t errlen)
{
    if (check_open(b, err, errlen) != 0)
        return -1;
    if (tier != PR_TIER_COMPLETION && tier != PR_TIER_START) {
        snprintf(err, errlen, "unknown tier instant %d", (int)tier);
        return -1;
    }
    pr_tier_setting_t t;
    if (copy_name(t.provider, sizeof t.provider, provider, "provider", err, errlen))
        return -1;
    t.tier = tier;
    for (size_t i = 0; i < b->ntiers; i++)
        if (strcmp(b->tiers[i].provider, provider) == 0) {
            b->tiers[i].tier = tier;
            return 0;
        }
    GROW(b->tiers, b->ntiers, b->capt);
    b->tiers[b->ntiers++] = t;
    return 0;
}

static pr_tz_t *zone_find(const pr_book_t *b, const char *name)
{
    for (size_t i = 0; i < b->nzones; i++)
        if (strcmp(pr_tz_name(b->zones[i]), name) == 0)
            return b->zones[i];
    return NULL;
}

int pr_book_add_zone(pr_book_t *b, pr_tz_t *tz, char *err, size_t errlen)
{
    if (check_open(b, err, errlen) != 0 || tz == NULL) {
        if (tz == NULL)
            snprintf(err, errlen, "no zone given");
        pr_tz_free(tz);
        return -1;
    }
    if (zone_find(b, pr_tz_name(tz)) != NULL) {
        pr_tz_free(tz); /* already there: keep the first */
        return 0;
    }
    GROW(b->zones, b->nzones, b->capz);
    b->zones[b->nzones++] = tz;
    return 0;
}

const char *pr_book_zone_missing(const pr_book_t *b)
{
    for (size_t i = 0; i < b->nwins; i++)
        if (b->wins[i].kind == PR_WIN_DAILY && zone_find(b, b->wins[i].zone_name) == NULL)
            return b->wins[i].zone_name;
    for (size_t i = 0; i < b->ncals; i++)
        if (zone_find(b, b->cals[i].zone_name) == NULL)
            return b->cals[i].zone_name;
    return NULL;
}

static int card_cmp(const void *pa, const void *pb)
{
    const pr_card_t *a = pa, *b = pb;
    int c = strcmp(a->provider, b->provider);
    if (c == 0)
        c = strcmp(a->model, b->model);
    if (c == 0)
        c = (a->effective_from_us > b->effective_from_us) -
            (a->effective_from_us < b->effective_from_us);
    return c;
}

static int int64_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* Index of the card with this id, via the id-sorted (id, index) pairs. */
static long card_index(const int64_t *pairs, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pairs[2 * mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && pairs[2 * lo] == id ? (long)pairs[2 * lo + 1] : -1;
}

typedef struct win_sort {
    long card;
    pr_window_t w;
    int32_t bp;
} win_sort_t;

static int win_cmp(const void *pa, const void *pb)
{
    const win_sort_t *a = pa, *b = pb;
    if (a->card != b->card)
        return (a->card > b->card) - (a->card < b->card);
    if (a->w.precedence != b->w.precedence)
        return (a->w.precedence < b->w.precedence) - (a->w.precedence > b->w.precedence);
    return (a->w.id > b->w.id) - (a->w.id < b->w.id);
}

static int pair_cmp(const void *pa, const void *pb)
{
    return int64_cmp(pa, pb);
}

static int finalize_windows(pr_book_t *b, char *err, size_t errlen)
{
    int rc = -1;
    int64_t *pairs = malloc(sizeof(int64_t) * 2 * (b->ncards ? b->ncards : 1));
    win_sort_t *ws = malloc(sizeof *ws * (b->nwins ? b->nwins : 1));
    b->win_first = calloc(b->ncards ? b->ncards : 1, sizeof(uint32_t));
    b->win_count = calloc(b->ncards ? b->ncards : 1, sizeof(uint32_t));
    if (!pairs || !ws || !b->win_first || !b->win_count)
        abort();
    for (size_t i = 0; i < b->ncards; i++) {
        pairs[2 * i] = b->cards[i].id;
        pairs[2 * i + 1] = (int64_t)i;
    }
    if (b->ncards > 1)
        qsort(pairs, b->ncards, 2 * sizeof(int64_t), pair_cmp);
    for (size_t i = 1; i < b->ncards; i++)
        if (pairs[2 * i] == pairs[2 * i - 2]) {
            snprintf(err, errlen, "card id %lld used twice", (long long)pairs[2 * i]);
            goto out;
        }
    for (size_t i = 0; i < b->nwins; i++) {
        pr_window_t *w = &b->wins[i];
        for (size_t j = 0; j < i; j++)
            if (b->wins[j].id == w->id) {
                snprintf(err, errlen, "window id %lld used twice", (long long)w->id);
                goto out;
            }
        long ci = card_index(pairs, b->ncards, w->card_id);
        if (ci < 0) {
            snprintf(err, errlen, "window %lld refers to unknown card %lld", (long long)w->id,
                     (long long)w->card_id);
            goto out;
        }
        if (w->calendar_id > 0) {
            for (size_t k = 0; k < b->ncals; k++)
                if (b->cals[k].id == w->calendar_id)
                    w->calendar = &b->cals[k];
            if (w->calendar == NULL) {
                snprintf(err, errlen, "window %lld refers to unknown calendar %lld",
                         (long long)w->id, (long long)w->calendar_id);
                goto out;
            }
        }
        const char *zname = w->kind == PR_WIN_DAILY     ? w->zone_name
                            : w->kind == PR_WIN_HOLIDAY ? w->calendar->zone_name
                                                        : NULL;
        if (zname != NULL) {
            if ((w->zone = zone_find(b, zname)) == NULL) {
                snprintf(err, errlen, "window %lld: time zone %s was not loaded", (long long)w->id,
                         zname);
                goto out;
            }
            if (zname != w->zone_name) /* holiday: show the calendar's zone */
                snprintf(w->zone_name, sizeof w->zone_name, "%s", zname);
        }
        if (w->kind == PR_WIN_DAILY && w->calendar != NULL && w->calendar->zone != w->zone) {
            snprintf(
                err, errlen, "window %lld (zone %s) excludes calendar %lld of another zone (%s)",
                (long long)w->id, w->zone_name, (long long)w->calendar_id, w->calendar->zone_name);
            goto out;
        }
        if (b->win_bp[i] >= 0 &&
            pr_prices_percent_off(&b->cards[ci].prices, b->win_bp[i], &w->prices, err, errlen) != 0)
            goto out;
        ws[i].card = ci;
        ws[i].w = *w;
        ws[i].bp = b->win_bp[i];
    }
    if (b->nwins > 1)
        qsort(ws, b->nwins, sizeof *ws, win_cmp);
    for (size_t i = 0; i < b->nwins; i++) {
        b->wins[i] = ws[i].w;
        b->win_bp[i] = ws[i].bp;
        if (b->win_count[ws[i].card]++ == 0)
            b->win_first[ws[i].card] = (uint32_t)i;
    }
    /* Ambiguity: two windows of one card, equal precedence, that can both
     * match while the card is in force. */
    for (size_t c = 0; c < b->ncards; c++) {
        const pr_card_t *card = &b->cards[c];
        pr_window_t *cw = b->wins + b->win_first[c];
        for (uint32_t i = 0; i < b->win_count[c]; i++)
            for (uint32_t j = i + 1; j < b->win_count[c] && cw[j].precedence == cw[i].precedence;
                 j++)
                if (pr_windows_may_overlap(&cw[i], &cw[j], card->effective_from_us,
                                           card->effective_until_us)) {
                    snprintf(err, errlen,
                             "windows %lld and %lld of card %lld (%s/%s) can overlap with the "
                             "same precedence %d: give one a higher precedence",
                             (long long)cw[i].id, (long long)cw[j].id, (long long)card->id,
                             card->provider, card->model, cw[i].precedence);
                    goto out;
                }
    }
    rc = 0;
out:
    free(pairs);
    free(ws);
    return rc;
}

int pr_book_finalize(pr_book_t *b, char *err, size_t errlen)
{
    if (check_open(b, err, errlen) != 0)
        return -1;
    b->finalized = true; /* also on failure: a half-checked book is never used */
    for (size_t i = 0; i < b->ncals; i++) {
        pr_calendar_t *c = &b->cals[i];
        if ((c->zone = zone_find(b, c->zone_name)) == NULL) {
            snprintf(err, errlen, "calendar %lld: time zone %s was not loaded", (long long)c->id,
                     c->zone_name);
            return -1;
        }
        if (c->n > 1)
            qsort(c->dates, c->n, sizeof *c->dates, int64_cmp);
        size_t k = 0;
        for (size_t j = 0; j < c->n; j++)
            if (k == 0 || c->dates[j] != c->dates[k - 1])
                c->dates[k++] = c->dates[j];
        c->n = k;
    }
    if (b->ncards > 1)
        qsort(b->cards, b->ncards, sizeof *b->cards, card_cmp);
    size_t ngroups = 0;
    for (size_t i = 0; i < b->ncards; i++) {
        pr_card_t *c = &b->cards[i];
        bool same =
            i > 0 && strcmp(c[-1].provider, c->provider) == 0 && strcmp(c[-1].model, c->model) == 0;
        if (same && c[-1].effective_from_us == c->effective_from_us) {
            char when[40];
            snprintf(err, errlen, "cards %lld and %lld (%s/%s) both take effect at %s",
                     (long long)c[-1].id, (long long)c->id, c->provider, c->model,
                     pr_instant_format(c->effective_from_us, when, sizeof when));
            return -1;
        }
        if (same)
            c[-1].effective_until_us = c->effective_from_us;
        else
            ngroups++;
    }
    b->groups = calloc(ngroups ? ngroups : 1, sizeof *b->groups);
    b->nslots = 16;
    while (b->nslots < 2 * ngroups)
        b->nslots *= 2;
    b->slots = calloc(b->nslots, sizeof *b->slots);
    if (!b->groups || !b->slots)
        abort();
    for (size_t i = 0; i < b->ncards; i++) {
        pr_card_t *c = &b->cards[i];
        if (i > 0 && strcmp(c[-1].provider, c->provider) == 0 &&
            strcmp(c[-1].model, c->model) == 0) {
            b->groups[b->ngroups - 1].count++;
            continue;
        }
        pr_group_t *g = &b->groups[b->ngroups];
        g->hash = pr_key_hash(c->provider, c->model);
        g->first = (uint32_t)i;
        g->count = 1;
        g->tier = PR_TIER_COMPLETION;
        for (size_t t = 0; t < b->ntiers; t++)
            if (strcmp(b->tiers[t].provider, c->provider) == 0)
                g->tier = b->tiers[t].tier;
        size_t s = (size_t)g->hash & (b->nslots - 1);
        while (b->slots[s] != 0)
            s = (s + 1) & (b->nslots - 1);
        b->slots[s] = (uint32_t)(++b->ngroups);
    }
    if (finalize_windows(b, err, errlen) != 0)
        return -1;
    b->ready = true;
    return 0;
}

size_t pr_book_card_count(const pr_book_t *b)
{
    return b->ncards;
}

size_t pr_book_window_count(const pr_book_t *b)
{
    return b->nwins;
}
