/* pr_money: exact money arithmetic for Tollgate pricing.
 * A price is an int64 number of micro-units of its currency per 1,000,000 tokens
 * (¥0.5 per 1M tokens = 500000). The cost of n tokens at price P is exactly n × P
 * pico-units (10^-12 of the currency): no division, no rounding, 128-bit sums.
 * Rounding happens once, when an amount is presented (half-even, see pr_pico_round). */
#ifndef PR_MONEY_H
#define PR_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* An exact amount in pico-units (10^-12) of one currency. */
__extension__ typedef __int128 pr_pico_t;

/* Largest accepted price: 10^12 micro-units = 1,000,000 currency units per 1M tokens.
 * Anything above is an input error (a typo in units), not a real price. */
#define PR_PRICE_MAX INT64_C(1000000000000)
/* Largest accepted token count of one class in one usage record (10^12). */
#define PR_TOKENS_MAX INT64_C(1000000000000)
/* Pico-units per currency unit. */
#define PR_PICO_PER_UNIT INT64_C(1000000000000)

/* Checks that a price is within [0, PR_PRICE_MAX]. Returns 0, or -1 with a
 * message naming `what` in err. */
int pr_price_check(int64_t price_micro, const char *what, char *err, size_t errlen);

/* Exact cost of `tokens` tokens at `price_micro` micro-units per 1M tokens, in pico-units:
 * tokens × price_micro. Refuses negative or absurd inputs (above PR_TOKENS_MAX /
 * PR_PRICE_MAX). Returns 0 and sets *out, or -1 with a message in err. */
int pr_cost(int64_t tokens, int64_t price_micro, pr_pico_t *out, char *err, size_t errlen);

/* Adds two amounts, refusing 128-bit overflow. Returns 0 and sets *out, or -1. */
int pr_pico_add(pr_pico_t a, pr_pico_t b, pr_pico_t *out, char *err, size_t errlen);

/* Rounds an amount to `decimals` decimal places of the currency unit (0..12),
 * half to even (banker's rounding: 0.125 -> 0.12, 0.135 -> 0.14), symmetric for
 * negative amounts. The result is still in pico-units. Returns 0, or -1 when
 * decimals is out of range. */
int pr_pico_round(pr_pico_t amount, int decimals, pr_pico_t *out);

/* Writes an amount in currency units as an exact decimal string ("2.576",
 * "-0.000000000001"), keeping at least `min_decimals` (0..12) decimals and
 * dropping further trailing zeros. Returns the length written, or 0 when the
 * buffer is too small (64 bytes always suffice). */
size_t pr_pico_format(pr_pico_t amount, int min_decimals, char *buf, size_t len);

/* Writes an amount as its integer number of pico-units ("2576000000000"), the
 * form stored in numeric(40,0) columns. Returns the length, or 0 when the
 * buffer is too small (48 bytes always suffice). */
size_t pr_pico_format_int(pr_pico_t amount, char *buf, size_t len);

/* Parses a non-negative decimal amount of currency units with at most 6 decimals
 * ("0.27", "1", "2.19") into micro-units. Refuses signs, exponents, more than six
 * decimals and values above PR_PRICE_MAX. Returns 0, or -1 with a message. */
int pr_micro_parse(const char *text, int64_t *out, char *err, size_t errlen);

/* The rule for percentage discounts, applied once when a window is saved:
 * discounted = price × (10000 − bp) / 10000 rounded half to even to the micro-unit,
 * where bp is the discount in basis points (5000 = 50% off, 0..10000).
 * Returns 0 and sets *out, or -1 with a message. */
int pr_price_percent_off(int64_t price_micro, int32_t bp, int64_t *out, char *err, size_t errlen);

#endif
