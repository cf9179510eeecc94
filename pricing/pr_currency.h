/* pr_currency: the ISO 4217 currencies Tollgate knows, with their minor units
 * (the decimals used when a charge is presented). Unknown codes are refused. */
#ifndef PR_CURRENCY_H
#define PR_CURRENCY_H

#include <stddef.h>

typedef struct pr_currency {
    char code[4]; /* "USD" */
    int minor;    /* decimals of the minor unit: USD 2, JPY 0, KWD 3 */
} pr_currency_t;

/* Looks up an ISO 4217 code (exactly three upper-case letters). Returns the
 * static entry, or NULL with a message in err when the code is unknown. */
const pr_currency_t *pr_currency_find(const char *code, char *err, size_t errlen);

/* The i-th known currency (0-based) or NULL past the end: lets tests and the
 * database seed compare lists. */
const pr_currency_t *pr_currency_at(size_t i);

#endif
