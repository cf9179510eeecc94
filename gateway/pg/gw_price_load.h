/* gw_price_load: builds a finalized price book (pricing/pr_book.h) from the
 * price tables of migrations/0002, as the rows are visible to the connection
 * at the time of the call. Shared by the gateway's gw_pricebook (reloads) and
 * tollgatectl (which validates the rows of its own open transaction before it
 * commits). */
#ifndef GW_PRICE_LOAD_H
#define GW_PRICE_LOAD_H

#include <libpq-fe.h>
#include <stddef.h>

#include "pr_book.h"

/* Reads every provider setting, card, window, calendar and holiday date with
 * `conn` (it starts no transaction of its own: run it inside one for a
 * consistent snapshot), loads the zones they name from tzdir (NULL: the
 * system's tz database) and finalizes the book. Returns the book (caller owns
 * it: pr_book_free), or NULL with the first problem in err (a failed query,
 * a row the library refuses, or the library's validation message). */
pr_book_t *gw_price_load_book(PGconn *conn, const char *tzdir, char *err, size_t errlen);

#endif
