/* pr_currency: static table of known ISO 4217 currencies and their minor units.
 * Extending it is a code change on purpose: the database table `currencies`
 * (migration 0002) holds the same list. */
#include "pr_currency.h"

#include <stdio.h>
#include <string.h>

static const pr_currency_t currencies[] = {
    {"AED", 2}, {"AUD", 2}, {"BHD", 3}, {"BRL", 2}, {"CAD", 2}, {"CHF", 2}, {"CNY", 2}, {"CZK", 2},
    {"DKK", 2}, {"EUR", 2}, {"GBP", 2}, {"HKD", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"JPY", 0},
    {"KRW", 0}, {"KWD", 3}, {"MXN", 2}, {"NOK", 2}, {"NZD", 2}, {"PLN", 2}, {"SAR", 2}, {"SEK", 2},
    {"SGD", 2}, {"THB", 2}, {"TRY", 2}, {"TWD", 2}, {"USD", 2}, {"VND", 0}, {"ZAR", 2},
};

const pr_currency_t *pr_currency_find(const char *code, char *err, size_t errlen)
{
    if (code != NULL) {
        for (size_t i = 0; i < sizeof currencies / sizeof currencies[0]; i++)
            if (strcmp(currencies[i].code, code) == 0)
                return &currencies[i];
    }
    snprintf(err, errlen, "unknown currency \"%.16s\" (expected an ISO 4217 code such as USD, CNY)",
             code ? code : "(null)");
    return NULL;
}

const pr_currency_t *pr_currency_at(size_t i)
{
    return i < sizeof currencies / sizeof currencies[0] ? &currencies[i] : NULL;
}
