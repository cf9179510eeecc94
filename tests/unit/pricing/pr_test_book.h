/* pr_test_book: helpers to build price books in the pricing unit tests. */
#ifndef PR_TEST_BOOK_H
#define PR_TEST_BOOK_H

#include "pr_book.h"
#include "pr_test.h"

static char berr[512];

static inline int card(pr_book_t *b, int64_t id, const char *prov, const char *model,
                       const char *cur, int64_t hit, int64_t miss, int64_t out, int64_t from)
{
    pr_card_def_t d = {id, prov, model, cur, {hit, miss, out, -1}, from};
    int rc = pr_book_add_card(b, &d, berr, sizeof berr);
    if (rc != 0)
        fprintf(stderr, "card %lld: %s\n", (long long)id, berr);
    return rc;
}

static inline pr_window_def_t once_def(int64_t id, int64_t card_id, int prec, int64_t from,
                                       int64_t until, int64_t hit, int64_t miss, int64_t out)
{
    pr_window_def_t w;
    memset(&w, 0, sizeof w);
    w.id = id, w.card_id = card_id, w.kind = PR_WIN_ONCE, w.precedence = prec;
    w.valid_from_us = from, w.valid_until_us = until;
    w.prices = (pr_prices_t){hit, miss, out, -1};
    return w;
}

static inline pr_window_def_t daily_def(int64_t id, int64_t card_id, int prec, const char *zone,
                                        int sh, int sm, int eh, int em, uint8_t weekdays,
                                        int64_t from, int64_t until, int32_t bp)
{
    pr_window_def_t w;
    memset(&w, 0, sizeof w);
    w.id = id, w.card_id = card_id, w.kind = PR_WIN_DAILY, w.precedence = prec;
    w.valid_from_us = from, w.valid_until_us = until;
    w.zone = zone;
    w.start_sec = sh * 3600 + sm * 60, w.end_sec = eh * 3600 + em * 60;
    w.weekdays = weekdays;
    w.use_percent = true, w.percent_off_bp = bp;
    return w;
}

static inline int window(pr_book_t *b, pr_window_def_t w)
{
    int rc = pr_book_add_window(b, &w, berr, sizeof berr);
    if (rc != 0)
        fprintf(stderr, "window %lld: %s\n", (long long)w.id, berr);
    return rc;
}

static inline int finish(pr_book_t *b)
{
    int rc = pr_book_load_zones(b, NULL, berr, sizeof berr);
    if (rc == 0)
        rc = pr_book_finalize(b, berr, sizeof berr);
    if (rc != 0)
        fprintf(stderr, "finalize: %s\n", berr);
    return rc;
}

/* Window id applying to provider/model at an instant: 0 none, -1 error. */
static inline int64_t win_at(const pr_book_t *b, const char *p, const char *m, int64_t at)
{
    const pr_card_t *c;
    const pr_window_t *w;
    if (pr_book_find(b, p, m, at, &c, &w, berr, sizeof berr) != 0)
        return -1;
    return w ? w->id : 0;
}

static inline int64_t card_at(const pr_book_t *b, const char *p, const char *m, int64_t at)
{
    const pr_card_t *c;
    const pr_window_t *w;
    if (pr_book_find(b, p, m, at, &c, &w, berr, sizeof berr) != 0)
        return -1;
    return c->id;
}

#define MON 1
#define TUE 2
#define WED 4
#define THU 8
#define FRI 16
#define SAT 32
#define SUN 64
#define WEEKDAYS 31
#define WEEKEND 96

#endif
