/* gw_pricebook: the gateway's current price book, rebuilt by a background
 * thread from PostgreSQL (LISTEN tollgate_prices, and every 60 s) and handed
 * to request threads by reference count, so an old book lives until its last
 * reader releases it. See gw_pricebook.h for the contract. */
#include "gw_pricebook.h"

#include "gw_pgconn.h"
#include "gw_price_load.h"
#include "tg_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PB_POLL_MS 100        /* how long the thread sleeps on the socket */
#define PB_SAFETY_RELOAD_S 60 /* reload even without a notification */
#define PB_BACKOFF_MIN_MS 100
#define PB_BACKOFF_MAX_MS 5000

/* A book and its references: one for being current, one per reader. */
typedef struct pb_holder {
    pr_book_t *book;
    atomic_long refs;
    struct pb_holder *next; /* in the retired list */
} pb_holder_t;

struct gw_pricebook {
    char *conninfo;
    char *tzdir; /* NULL: the system's */
    pthread_t thread;
    pthread_rwlock_t lock; /* guards current */
    pb_holder_t *current;  /* NULL until the first load */
    pthread_mutex_t retired_mx;
    pb_holder_t *retired; /* replaced books still held by readers */
    atomic_bool stopping;
    atomic_uint_fast64_t generation;
};

static int64_t pb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pb_sleep(gw_pricebook_t *pb, int ms)
{
    while (ms > 0 && !atomic_load(&pb->stopping)) {
        int slice = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

static void pb_holder_free(pb_holder_t *h)
{
    pr_book_free(h->book);
    free(h);
}

/* Drops one reference of a retired holder; frees it at zero. Caller holds
 * retired_mx. */
static void pb_retired_drop(gw_pricebook_t *pb, pb_holder_t *h)
{
    if (atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    for (pb_holder_t **p = &pb->retired; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    pb_holder_free(h);
}

/* Makes `book` current; the previous book is retired and freed once its
 * readers are gone. */
static void pb_swap(gw_pricebook_t *pb, pr_book_t *book)
{
    pb_holder_t *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    h->book = book;
    atomic_init(&h->refs, 1);
    /* The old book enters the retired list before the write lock is let go:
     * a reader that no longer finds it current always finds it there. */
    pthread_rwlock_wrlock(&pb->lock);
    pb_holder_t *old = pb->current;
    pb->current = h;
    if (old) {
        pthread_mutex_lock(&pb->retired_mx);
        old->next = pb->retired;
        pb->retired = old;
        pthread_mutex_unlock(&pb->retired_mx);
    }
    pthread_rwlock_unlock(&pb->lock);
    atomic_fetch_add(&pb->generation, 1);
    if (old) {
        pthread_mutex_lock(&pb->retired_mx);
        pb_retired_drop(pb, old); /* its reference as the current book */
        pthread_mutex_unlock(&pb->retired_mx);
    }
}

/* Loads a new book in one read-only snapshot and swaps it in. Returns 0;
 * -1 when the data is refused (err set, the old book stays, the connection
 * is fine); -2 when the connection failed. */
static int pb_reload(gw_pricebook_t *pb, PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        gw_pg_message(conn, res, err, errlen);
        PQclear(res);
        return -2;
    }
    PQclear(res);
    pr_book_t *book = gw_price_load_book(conn, pb->tzdir, err, errlen);
    res = PQexec(conn, book ? "COMMIT" : "ROLLBACK");
    bool ended = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (PQstatus(conn) != CONNECTION_OK || !ended) {
        if (book) {
            pr_book_free(book);
            gw_pg_message(conn, NULL, err, errlen);
        }
        return -2;
    }
    if (!book)
        return -1;
    size_t cards = pr_book_card_count(book), windows = pr_book_window_count(book);
    pb_swap(pb, book);
    tg_debug("price book: loaded %zu cards and %zu windows", cards, windows);
    return 0;
}

/* Follows one connection: reloads on notifications and every
 * PB_SAFETY_RELOAD_S. Returns when stopping or the connection failed. */
static void pb_follow(gw_pricebook_t *pb, PGconn *conn)
{
    char err[1024];
    int64_t last_load = pb_now_ms();
    while (!atomic_load(&pb->stopping)) {
        int notified = gw_pg_wait_notify(conn, PB_POLL_MS, err, sizeof err);
        if (notified < 0) {
            tg_warn("price book: lost the PostgreSQL connection: %s; keeping the current book "
                    "and reconnecting",
                    err);
            return;
        }
        if (notified || pb_now_ms() - last_load >= PB_SAFETY_RELOAD_S * 1000) {
            last_load = pb_now_ms();
            int rc = pb_reload(pb, conn, err, sizeof err);
            if (rc == -1)
                tg_error("price book: the price tables were changed into an invalid state, "
                         "keeping the previous book: %s",
                         err);
            if (rc == -2) {
                tg_warn("price book: reloading failed: %s; keeping the current book and "
                        "reconnecting",
                        err);
                return;
            }
        }
    }
}

static void *pb_thread(void *arg)
{
    gw_pricebook_t *pb = arg;
    int backoff = 0;
    char err[1024];
    while (!atomic_load(&pb->stopping)) {
        PGconn *conn = gw_pg_connect(pb->conninfo, 5, err, sizeof err);
        if (conn) {
            /* LISTEN before loading: a change committed in between is then
             * seen as a notification, never missed. */
            PGresult *res = PQexec(conn, "LISTEN tollgate_prices");
            int rc = -2;
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                gw_pg_message(conn, res, err, sizeof err);
            else
                rc = pb_reload(pb, conn, err, sizeof err);
            PQclear(res);
            if (rc == -1)
                tg_error("price book: the price tables are invalid: %s; %s", err,
                         atomic_load(&pb->generation) ? "keeping the previous book"
                                                      : "no prices until they are fixed");
            if (rc != -2) {
                if (rc == 0)
                    tg_info("price book: loaded; following changes (LISTEN tollgate_prices)");
                backoff = 0;
                pb_follow(pb, conn);
                PQfinish(conn);
                continue;
            }
            PQfinish(conn);
        }
        backoff = gw_pg_backoff_next(backoff, PB_BACKOFF_MIN_MS, PB_BACKOFF_MAX_MS);
        tg_warn("price book: %s; retrying in %d ms", err, backoff);
        pb_sleep(pb, backoff);
    }
    return NULL;
}

gw_pricebook_t *gw_pricebook_start(const char *conninfo, const char *tzdir)
{
    gw_pricebook_t *pb = calloc(1, sizeof *pb);
    if (!pb)
        return NULL;
    pb->conninfo = strdup(conninfo ? conninfo : "");
    pb->tzdir = tzdir ? strdup(tzdir) : NULL;
    if (!pb->conninfo || (tzdir && !pb->tzdir))
        goto err;
    if (pthread_rwlock_init(&pb->lock, NULL) != 0)
        goto err;
    if (pthread_mutex_init(&pb->retired_mx, NULL) != 0) {
        pthread_rwlock_destroy(&pb->lock);
        goto err;
    }
    atomic_init(&pb->stopping, false);
    atomic_init(&pb->generation, 0);
    if (pthread_create(&pb->thread, NULL, pb_thread, pb) != 0) {
        pthread_mutex_destroy(&pb->retired_mx);
        pthread_rwlock_destroy(&pb->lock);
        goto err;
    }
    return pb;
err:
    free(pb->conninfo);
    free(pb->tzdir);
    free(pb);
    return NULL;
}

bool gw_pricebook_wait_loaded(gw_pricebook_t *pb, int timeout_ms)
{
    int64_t deadline = pb_now_ms() + timeout_ms;
    while (atomic_load(&pb->generation) == 0) {
        if (pb_now_ms() >= deadline)
            return false;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return true;
}

const pr_book_t *gw_pricebook_acquire(gw_pricebook_t *pb)
{
    const pr_book_t *book = NULL;
    pthread_rwlock_rdlock(&pb->lock);
    if (pb->current) {
        atomic_fetch_add(&pb->current->refs, 1);
        book = pb->current->book;
    }
    pthread_rwlock_unlock(&pb->lock);
    return book;
}

void gw_pricebook_release(gw_pricebook_t *pb, const pr_book_t *book)
{
    if (!book)
        return;
    /* Fast path: still the current book, which keeps its own reference until
     * it is retired under the write lock, so this cannot drop the last one. */
    pthread_rwlock_rdlock(&pb->lock);
    if (pb->current && pb->current->book == book) {
        atomic_fetch_sub(&pb->current->refs, 1);
        pthread_rwlock_unlock(&pb->lock);
        return;
    }
    pthread_rwlock_unlock(&pb->lock);
    /* Replaced since: it is in the retired list (retiring happens under
     * retired_mx, and the book stayed current until then). */
    pthread_mutex_lock(&pb->retired_mx);
    pb_holder_t *h = pb->retired;
    while (h && h->book != book)
        h = h->next;
    if (h)
        pb_retired_drop(pb, h);
    else
        tg_error("price book: release of a book that is not held (programmer error)");
    pthread_mutex_unlock(&pb->retired_mx);
}

uint64_t gw_pricebook_generation(gw_pricebook_t *pb)
{
    return atomic_load(&pb->generation);
}

void gw_pricebook_stop(gw_pricebook_t *pb)
{
    if (!pb)
        return;
    atomic_store(&pb->stopping, true);
    pthread_join(pb->thread, NULL);
    if (pb->current)
        pb_holder_free(pb->current);
    while (pb->retired) {
        pb_holder_t *h = pb->retired;
        pb->retired = h->next;
        tg_error("price book: stopped while a reader still held a book (programmer error)");
        pb_holder_free(h);
    }
    pthread_mutex_destroy(&pb->retired_mx);
    pthread_rwlock_destroy(&pb->lock);
    free(pb->conninfo);
    free(pb->tzdir);
    free(pb);
}
