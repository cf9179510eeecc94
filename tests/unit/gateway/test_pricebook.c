/* Integration test of gw_pricebook on a fresh database: it loads the seed
 * (brief's worked example), sees a card added by "tollgatectl price add"
 * within a second (generation bump and the new price via pr_book_find), keeps
 * the previous book when the rows are made invalid by plain SQL (and recovers
 * when they are fixed), and lets several threads acquire, price and release
 * while reloads swap books underneath (run under ASan: no use after free, no
 * leak). */
#include "tg_testdb.h"

#include "gw_pricebook.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static char out[16384], err[16384];

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000000;
}

/* Waits until the generation exceeds `gen`; returns the milliseconds waited,
 * or -1 after timeout_ms. */
static int64_t wait_generation(gw_pricebook_t *pb, uint64_t gen, int timeout_ms)
{
    int64_t t0 = tdb_mono_ms();
    while (gw_pricebook_generation(pb) <= gen) {
        if (tdb_mono_ms() - t0 > timeout_ms)
            return -1;
        tdb_sleep_ms(5);
    }
    return tdb_mono_ms() - t0;
}

/* The exact total of the brief's example (400k hit, 600k miss, 1M output). */
static void total_of(const pr_book_t *b, const char *prov, const char *model, int64_t at,
                     char buf[64])
{
    pr_usage_t u = {1000000, 400000, 600000, 1000000, -1, true};
    pr_charge_t ch;
    char e[256];
    if (pr_price_usage(b, prov, model, at, at, &u, &ch, e, sizeof e) != 0) {
        fprintf(stderr, "pricing %s/%s: %s\n", prov, model, e);
        snprintf(buf, 64, "error");
        return;
    }
    pr_pico_format(ch.total, 0, buf, 64);
}

typedef struct reader {
    gw_pricebook_t *pb;
    atomic_bool *stop;
    long priced, wrong;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    int64_t day = utc(2025, 3, 1, 12, 0), night = utc(2025, 3, 1, 17, 0);
    while (!atomic_load(r->stop)) {
        const pr_book_t *b = gw_pricebook_acquire(r->pb);
        char a[64], c[64];
        total_of(b, "deepseek", "deepseek-chat", day, a);
        total_of(b, "deepseek-cny", "deepseek-chat", night, c);
        if (strcmp(a, "1.29") != 0 || strcmp(c, "4.7") != 0)
            r->wrong++;
        r->priced++;
        gw_pricebook_release(r->pb, b);
    }
    return NULL;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int rc = tdb_ctl(out, sizeof out, err, sizeof err, "price seed");
    CHECK(rc == 0);

    gw_pricebook_t *pb = gw_pricebook_start(db.conninfo, NULL);
    CHECK(pb != NULL);
    CHECK(gw_pricebook_wait_loaded(pb, 10000));
    const pr_book_t *b = gw_pricebook_acquire(pb);
    CHECK(b != NULL);
    char total[64];
    if (b) {
        CHECK(pr_book_card_count(b) == 12 && pr_book_window_count(b) == 6);
        total_of(b, "deepseek", "deepseek-reasoner", utc(2025, 3, 1, 12, 0), total);
        CHECK(strcmp(total, "2.576") == 0);
        total_of(b, "deepseek", "deepseek-chat", utc(2025, 3, 1, 17, 0), total);
        CHECK(strcmp(total, "0.645") == 0);
    }
    /* `b` stays held across the reloads below: it must stay valid. */

    /* A new card, seen within a second. */
    uint64_t gen = gw_pricebook_generation(pb);
    rc = tdb_ctl(out, sizeof out, err, sizeof err,
                 "price add --provider deepseek --model deepseek-chat --currency USD --hit 0.01 "
                 "--miss 0.09 --output 0.9 --from 2030-01-01");
    CHECK(rc == 0);
    int64_t waited = wait_generation(pb, gen, 1000);
    printf("  new card seen after %lld ms\n", (long long)waited);
    CHECK(waited >= 0 && waited <= 1000);
    const pr_book_t *nb = gw_pricebook_acquire(pb);
    const pr_card_t *card = NULL;
    const pr_window_t *win = NULL;
    char e[256];
    CHECK(nb && pr_book_find(nb, "deepseek", "deepseek-chat", utc(2030, 1, 2, 0, 0), &card, &win, e,
                             sizeof e) == 0);
    CHECK(card && card->prices.cache_miss == 90000 && card->prices.output == 900000);
    CHECK(nb && pr_book_card_count(nb) == 13);
    gw_pricebook_release(pb, nb);
    /* the old book is still intact for its reader */
    if (b) {
        CHECK(pr_book_card_count(b) == 12);
        total_of(b, "deepseek", "deepseek-chat", utc(2025, 3, 1, 12, 0), total);
        CHECK(strcmp(total, "1.29") == 0);
    }
    gw_pricebook_release(pb, b);

    /* Rows made invalid behind tollgatectl's back: the book is kept. */
    gen = gw_pricebook_generation(pb);
    CHECK(tdb_exec(
        c, "INSERT INTO discount_windows (card_id, kind, precedence, valid_from,"
           " cache_hit_price, cache_miss_price, output_price, created_by)"
           " SELECT id, 'once', 3, '2030-02-01Z'::timestamptz, 0, 0, 0, 'sql' FROM price_cards"
           " WHERE effective_from = '2030-01-01Z' UNION ALL"
           " SELECT id, 'once', 3, '2030-03-01Z', 0, 0, 0, 'sql' FROM price_cards"
           " WHERE effective_from = '2030-01-01Z'"));
    tdb_sleep_ms(1500);
    CHECK(gw_pricebook_generation(pb) == gen);
    nb = gw_pricebook_acquire(pb);
    CHECK(nb && pr_book_card_count(nb) == 13 && pr_book_window_count(nb) == 6);
    CHECK(nb &&
          pr_book_find(nb, "deepseek", "deepseek-chat", utc(2030, 3, 2, 0, 0), &card, &win, e,
                       sizeof e) == 0 &&
          win == NULL && card->prices.cache_miss == 90000);
    gw_pricebook_release(pb, nb);
    /* fixed: the thread is alive and follows again */
    CHECK(tdb_exec(c, "UPDATE discount_windows SET precedence = 4"
                      " WHERE created_by = 'sql' AND valid_from = '2030-03-01Z'"));
    CHECK(wait_generation(pb, gen, 2000) >= 0);
    nb = gw_pricebook_acquire(pb);
    CHECK(nb && pr_book_window_count(nb) == 8);
    CHECK(nb &&
          pr_book_find(nb, "deepseek", "deepseek-chat", utc(2030, 3, 2, 0, 0), &card, &win, e,
                       sizeof e) == 0 &&
          win && win->precedence == 4);
    gw_pricebook_release(pb, nb);

    /* Readers on four threads while reloads swap the book every ~20 ms. */
    atomic_bool stop;
    atomic_init(&stop, false);
    reader_t readers[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        readers[i] = (reader_t){pb, &stop, 0, 0};
        CHECK(pthread_create(&th[i], NULL, reader_main, &readers[i]) == 0);
    }
    gen = gw_pricebook_generation(pb);
    for (int i = 0; i < 60; i++) {
        CHECK(tdb_exec(c, "NOTIFY tollgate_prices"));
        tdb_sleep_ms(20);
    }
    CHECK(wait_generation(pb, gen + 10, 3000) >= 0);
    atomic_store(&stop, true);
    long priced = 0, wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        priced += readers[i].priced;
        wrong += readers[i].wrong;
    }
    printf("  %llu reloads during the reader run; %ld records priced, %ld wrong\n",
           (unsigned long long)(gw_pricebook_generation(pb) - gen), priced, wrong);
    CHECK(priced > 100 && wrong == 0);

    gw_pricebook_stop(pb);
    PQfinish(c);
    tdb_drop(&db);
    if (tdb_failures)
        fprintf(stderr, "test_pricebook: %d checks failed\n", tdb_failures);
    else
        printf("test_pricebook: all checks passed\n");
    return tdb_failures ? 1 : 0;
}
