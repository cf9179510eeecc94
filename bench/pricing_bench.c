/* pricing_bench: cost of pricing one usage record with pr_price_usage against
 * a book of thousands of cards and windows, compared in the same run with a
 * naive linear scan (every card, every window, same matching and arithmetic).
 * Prints ns/record (median of several runs) for both and their ratio; checks
 * that both give identical charges. Usage: pricing_bench [providers models cards runs] */
#include "pr_book_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct rec {
    char provider[24], model[24];
    int64_t at;
    pr_usage_t u;
} rec_t;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Naive reference: no hash, no sort, no binary search. */
static int naive_price(const pr_book_t *b, const rec_t *r, pr_pico_t *total, int64_t *card_id,
                       int64_t *win_id)
{
    const pr_card_t *best = NULL;
    for (size_t i = 0; i < b->ncards; i++) {
        const pr_card_t *c = &b->cards[i];
        if (strcmp(c->provider, r->provider) == 0 && strcmp(c->model, r->model) == 0 &&
            c->effective_from_us <= r->at &&
            (!best || c->effective_from_us > best->effective_from_us))
            best = c;
    }
    if (!best)
        return -1;
    const pr_window_t *bw = NULL;
    for (size_t i = 0; i < b->nwins; i++) {
        const pr_window_t *w = &b->wins[i];
        if (w->card_id == best->id && (!bw || w->precedence > bw->precedence) &&
            pr_window_matches(w, r->at))
            bw = w;
    }
    const pr_prices_t *p = bw ? &bw->prices : &best->prices;
    int64_t out = r->u.completion - r->u.reasoning;
    *total = (pr_pico_t)r->u.cache_hit * p->cache_hit + (pr_pico_t)r->u.cache_miss * p->cache_miss +
             (pr_pico_t)out * p->output + (pr_pico_t)r->u.reasoning * p->reasoning;
    *card_id = best->id;
    *win_id = bw ? bw->id : 0;
    return 0;
}

int main(int argc, char **argv)
{
    int np = argc > 1 ? atoi(argv[1]) : 10, nm = argc > 2 ? atoi(argv[2]) : 50;
    int nc = argc > 3 ? atoi(argv[3]) : 10, runs = argc > 4 ? atoi(argv[4]) : 7;
    char err[512];
    srand(1);
    pr_book_t *b = pr_book_new();
    const int64_t t0 = INT64_C(1704067200000000); /* 2024-01-01 */
    const int64_t day = INT64_C(86400000000);
    int64_t id = 1, wid = 1;
    const char *zones[] = {"UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin"};
    for (int p = 0; p < np; p++)
        for (int m = 0; m < nm; m++)
            for (int k = 0; k < nc; k++) {
                char prov[24], model[24];
                snprintf(prov, sizeof prov, "prov%d", p);
                snprintf(model, sizeof model, "model-%d", m);
                pr_card_def_t d = {id,
                                   prov,
                                   model,
                                   "USD",
                                   {70000 + k, 270000 + m, 1100000 + p, -1},
                                   t0 + (int64_t)k * 60 * day};
                if (pr_book_add_card(b, &d, err, sizeof err) != 0)
                    goto fail;
                /* a one-off promotion (first week) and a daily off-peak window */
                pr_window_def_t w;
                memset(&w, 0, sizeof w);
                w.id = wid++, w.card_id = id, w.kind = PR_WIN_ONCE, w.precedence = 2;
                w.valid_from_us = d.effective_from_us,
                w.valid_until_us = d.effective_from_us + 7 * day;
                w.prices = (pr_prices_t){1000, 2000, 3000, -1};
                if (pr_book_add_window(b, &w, err, sizeof err) != 0)
                    goto fail;
                memset(&w, 0, sizeof w);
                w.id = wid++, w.card_id = id, w.kind = PR_WIN_DAILY, w.precedence = 1;
                w.valid_from_us = d.effective_from_us, w.valid_until_us = PR_FOREVER;
                w.zone = zones[(p + m) % 4], w.start_sec = 16 * 3600 + 1800, w.end_sec = 1800;
                w.weekdays = PR_WEEKDAYS_ALL, w.use_percent = true, w.percent_off_bp = 5000;
                if (pr_book_add_window(b, &w, err, sizeof err) != 0)
                    goto fail;
                id++;
            }
    if (pr_book_load_zones(b, NULL, err, sizeof err) != 0 ||
        pr_book_finalize(b, err, sizeof err) != 0)
        goto fail;

    enum { NREC = 4096 };
    static rec_t recs[NREC];
    for (int i = 0; i < NREC; i++) {
        rec_t *r = &recs[i];
        snprintf(r->provider, sizeof r->provider, "prov%d", rand() % np);
        snprintf(r->model, sizeof r->model, "model-%d", rand() % nm);
        r->at = t0 + (int64_t)(rand() % (nc * 60)) * day + (int64_t)(rand() % 86400) * 1000000;
        int64_t hit = rand() % 100000, miss = rand() % 100000, comp = rand() % 10000;
        r->u = (pr_usage_t){hit + miss, hit, miss, comp, comp / 3, true};
    }
    /* same answers from both */
    int64_t in_window = 0;
    for (int i = 0; i < NREC; i++) {
        pr_charge_t c;
        pr_pico_t nt;
        int64_t ncard, nwin;
        if (pr_price_usage(b, recs[i].provider, recs[i].model, recs[i].at, recs[i].at, &recs[i].u,
                           &c, err, sizeof err) != 0 ||
            naive_price(b, &recs[i], &nt, &ncard, &nwin) != 0 || nt != c.total ||
            ncard != c.card->id || nwin != (c.window ? c.window->id : 0)) {
            fprintf(stderr, "record %d: fast and naive disagree (%s)\n", i, err);
            return 1;
        }
        in_window += c.window != NULL;
    }
    double fast[64], naive[64];
    if (runs > 64)
        runs = 64;
    volatile pr_pico_t sink = 0;
    for (int run = 0; run < runs; run++) {
        double t = now_ns();
        for (int rep = 0; rep < 50; rep++)
            for (int i = 0; i < NREC; i++) {
                pr_charge_t c;
                pr_price_usage(b, recs[i].provider, recs[i].model, recs[i].at, recs[i].at,
                               &recs[i].u, &c, err, sizeof err);
                sink += c.total;
            }
        fast[run] = (now_ns() - t) / (50.0 * NREC);
        t = now_ns();
        int nn = NREC / 8;
        for (int i = 0; i < nn; i++) {
            pr_pico_t nt;
            int64_t a, w;
            naive_price(b, &recs[i], &nt, &a, &w);
            sink += nt;
        }
        naive[run] = (now_ns() - t) / nn;
    }
    qsort(fast, (size_t)runs, sizeof(double), cmp_double);
    qsort(naive, (size_t)runs, sizeof(double), cmp_double);
    double f = fast[runs / 2], n = naive[runs / 2];
    printf("book: %zu cards, %zu windows (%d providers x %d models x %d cards); %d records, "
           "%lld%% in a window\n",
           pr_book_card_count(b), pr_book_window_count(b), np, nm, nc, NREC,
           (long long)(in_window * 100 / NREC));
    printf("%-28s %12s %12s %12s\n", "implementation", "median ns", "min ns", "max ns");
    printf("%-28s %12.1f %12.1f %12.1f\n", "pr_price_usage (indexed)", f, fast[0], fast[runs - 1]);
    printf("%-28s %12.1f %12.1f %12.1f\n", "naive linear scan", n, naive[0], naive[runs - 1]);
    printf("ratio naive/indexed: %.1fx  (runs: %d; fast path %s 1 us)\n", n / f, runs,
           f < 1000.0 ? "under" : "NOT under");
    pr_book_free(b);
    return 0;
fail:
    fprintf(stderr, "bench setup: %s\n", err);
    pr_book_free(b);
    return 1;
}
