/* gw_pricebook: the gateway's price book (pricing/pr_book.h), loaded from the
 * PostgreSQL price tables (migrations/0002) and rebuilt whenever they change
 * (LISTEN tollgate_prices), so a running gateway charges by a new card within
 * a second. Readers take a reference to the current book and release it when
 * the request is priced; a rebuilt book replaces the old one, which is freed
 * when its last reader releases it. A reload that fails validation keeps the
 * previous book and logs why. */
#ifndef GW_PRICEBOOK_H
#define GW_PRICEBOOK_H

#include <stdbool.h>
#include <stdint.h>

#include "pr_book.h"

typedef struct gw_pricebook gw_pricebook_t;

/* Starts the loader thread (connect, LISTEN, load, reload on notify and every
 * 60 s; back-off and a log line while PostgreSQL is unreachable). tzdir: the
 * tz database folder, NULL for the system's. NULL only on OOM. */
gw_pricebook_t *gw_pricebook_start(const char *conninfo, const char *tzdir);

/* Waits up to timeout_ms for the first successful load. */
bool gw_pricebook_wait_loaded(gw_pricebook_t *pb, int timeout_ms);

/* The current book with a reference taken, or NULL before the first load.
 * Thread-safe and cheap (one atomic increment under a read lock). */
const pr_book_t *gw_pricebook_acquire(gw_pricebook_t *pb);

/* Drops the reference taken by gw_pricebook_acquire (NULL is fine). */
void gw_pricebook_release(gw_pricebook_t *pb, const pr_book_t *book);

/* Incremented by every successful (re)load; for tests and metrics. */
uint64_t gw_pricebook_generation(gw_pricebook_t *pb);

/* Stops the thread and frees the current book (no reader may hold one). */
void gw_pricebook_stop(gw_pricebook_t *pb);

#endif
