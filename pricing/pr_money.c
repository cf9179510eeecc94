/* pr_money: exact integer money arithmetic (costs in pico-units, half-even
 * presentation rounding, decimal formatting and parsing). No floating point. */
#include "pr_money.h"

#include <stdio.h>
#include <string.h>

int pr_price_check(int64_t price_micro, const char *what, char *err, size_t errlen)
{
    if (price_micro < 0) {
        snprintf(err, errlen, "%s price %lld is negative", what, (long long)price_micro);
        return -1;
    }
    if (price_micro > PR_PRICE_MAX) {
        snprintf(err, errlen,
                 "%s price %lld micro-units per 1M tokens exceeds the cap %lld (1,000,000 "
                 "currency units): check the units",
                 what, (long long)price_micro, (long long)PR_PRICE_MAX);
        return -1;
    }
    return 0;
}

int pr_cost(int64_t tokens, int64_t price_micro, pr_pico_t *out, char *err, size_t errlen)
{
    if (tokens < 0 || tokens > PR_TOKENS_MAX) {
        snprintf(err, errlen, "token count %lld outside [0, %lld]", (long long)tokens,
                 (long long)PR_TOKENS_MAX);
        return -1;
    }
    if (pr_price_check(price_micro, "a", err, errlen) != 0)
        return -1;
    pr_pico_t r;
    /* Cannot overflow within the caps (10^24 < 2^127); checked anyway. */
    if (__builtin_mul_overflow((pr_pico_t)tokens, (pr_pico_t)price_micro, &r)) {
        snprintf(err, errlen, "cost overflow");
        return -1;
    }
    *out = r;
    return 0;
}

int pr_pico_add(pr_pico_t a, pr_pico_t b, pr_pico_t *out, char *err, size_t errlen)
{
    if (__builtin_add_overflow(a, b, out)) {
        snprintf(err, errlen, "amount overflow in a 128-bit sum");
        return -1;
    }
    return 0;
}

static pr_pico_t pow10_pico(int n)
{
    pr_pico_t p = 1;
    while (n-- > 0)
        p *= 10;
    return p;
}

int pr_pico_round(pr_pico_t amount, int decimals, pr_pico_t *out)
{
    if (decimals < 0 || decimals > 12)
        return -1;
    pr_pico_t unit = pow10_pico(12 - decimals);
    int neg = amount < 0;
    /* |amount| is safe: amounts never reach -2^127 within the caps. */
    pr_pico_t a = neg ? -amount : amount;
    pr_pico_t q = a / unit, r = a % unit;
    if (2 * r > unit || (2 * r == unit && (q % 2) == 1))
        q++;
    *out = (neg ? -q : q) * unit;
    return 0;
}

size_t pr_pico_format(pr_pico_t amount, int min_decimals, char *buf, size_t len)
{
    char tmp[64];
    char digits[48];
    size_t nd = 0, n = 0;
    if (min_decimals < 0)
        min_decimals = 0;
    if (min_decimals > 12)
        min_decimals = 12;
    int neg = amount < 0;
    unsigned __int128 a =
        neg ? (unsigned __int128)0 - (unsigned __int128)amount : (unsigned __int128)amount;
    unsigned __int128 ip = a / (unsigned __int128)PR_PICO_PER_UNIT;
    uint64_t frac = (uint64_t)(a % (unsigned __int128)PR_PICO_PER_UNIT);
    do {
        digits[nd++] = (char)('0' + (int)(ip % 10));
        ip /= 10;
    } while (ip > 0);
    if (neg)
        tmp[n++] = '-';
    while (nd > 0)
        tmp[n++] = digits[--nd];
    char f[13];
    for (int i = 11; i >= 0; i--) {
        f[i] = (char)('0' + (int)(frac % 10));
        frac /= 10;
    }
    int keep = 12;
    while (keep > min_decimals && f[keep - 1] == '0')
        keep--;
    if (keep > 0) {
        tmp[n++] = '.';
        memcpy(tmp + n, f, (size_t)keep);
        n += (size_t)keep;
    }
    if (n + 1 > len)
        return 0;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}

size_t pr_pico_format_int(pr_pico_t amount, char *buf, size_t len)
{
    char digits[48];
    size_t nd = 0, n = 0;
    int neg = amount < 0;
    unsigned __int128 a =
        neg ? (unsigned __int128)0 - (unsigned __int128)amount : (unsigned __int128)amount;
    do {
        digits[nd++] = (char)('0' + (int)(a % 10));
        a /= 10;
    } while (a > 0);
    if (nd + (size_t)neg + 1 > len)
        return 0;
    if (neg)
        buf[n++] = '-';
    while (nd > 0)
        buf[n++] = digits[--nd];
    buf[n] = '\0';
    return n;
}

int pr_micro_parse(const char *text, int64_t *out, char *err, size_t errlen)
{
    const char *p = text;
    int64_t ip = 0, fp = 0;
    int nint = 0, nfrac = 0;
    if (text == NULL || *text == '\0') {
        snprintf(err, errlen, "empty price");
        return -1;
    }
    while (*p >= '0' && *p <= '9') {
        if (ip > PR_PRICE_MAX) {
            snprintf(err, errlen, "price \"%s\" is absurdly large", text);
            return -1;
        }
        ip = ip * 10 + (*p++ - '0');
        nint++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (++nfrac > 6) {
                snprintf(err, errlen, "price \"%s\" has more than 6 decimals (micro-units)", text);
                return -1;
            }
            fp = fp * 10 + (*p++ - '0');
        }
    }
    if (*p != '\0' || (nint == 0 && nfrac == 0)) {
        snprintf(err, errlen, "price \"%s\" is not a plain non-negative decimal number", text);
        return -1;
    }
    for (int i = nfrac; i < 6; i++)
        fp *= 10;
    if (ip > PR_PRICE_MAX / 1000000) {
        snprintf(err, errlen, "price \"%s\" exceeds the cap of 1,000,000 per 1M tokens", text);
        return -1;
    }
    int64_t v = ip * 1000000 + fp;
    if (pr_price_check(v, "parsed", err, errlen) != 0)
        return -1;
    *out = v;
    return 0;
}

int pr_price_percent_off(int64_t price_micro, int32_t bp, int64_t *out, char *err, size_t errlen)
{
    if (pr_price_check(price_micro, "base", err, errlen) != 0)
        return -1;
    if (bp < 0 || bp > 10000) {
        snprintf(err, errlen, "discount %d basis points outside [0, 10000]", bp);
        return -1;
    }
    /* price <= 10^12, factor <= 10^4: the product fits in int64 (< 9.2e18). */
    int64_t num = price_micro * (int64_t)(10000 - bp);
    int64_t q = num / 10000, r = num % 10000;
    if (2 * r > 10000 || (2 * r == 10000 && (q % 2) == 1))
        q++;
    *out = q;
    return 0;
}
