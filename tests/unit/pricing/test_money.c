/* Unit test for pricing/pr_money and pr_currency: exact costs, half-even
 * rounding, exact formatting, parsing, percent conversion, bad inputs, and
 * seeded random properties (additive, monotonic, equal to a slow decimal-string
 * reference written here independently of the library). */
#include "pr_currency.h"
#include "pr_money.h"
#include "pr_test.h"

#include <stdlib.h>

static char err[256];

static const char *fmt(pr_pico_t v, int min_dec)
{
    static char b[4][64];
    static int k;
    k = (k + 1) % 4;
    if (pr_pico_format(v, min_dec, b[k], sizeof b[k]) == 0)
        return "(overflow)";
    return b[k];
}

/* --- the reference: decimal strings, schoolbook arithmetic ------------------ */

/* a × b for non-negative decimal digit strings (no leading zeros except "0"). */
static void ref_mul(const char *a, const char *b, char *out)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    int acc[80] = {0};
    for (int i = la - 1; i >= 0; i--)
        for (int j = lb - 1; j >= 0; j--)
            acc[i + j + 1] += (a[i] - '0') * (b[j] - '0');
    for (int k = la + lb - 1; k > 0; k--) {
        acc[k - 1] += acc[k] / 10;
        acc[k] %= 10;
    }
    int k = 0;
    while (k < la + lb - 1 && acc[k] == 0)
        k++;
    int n = 0;
    for (; k < la + lb; k++)
        out[n++] = (char)('0' + acc[k]);
    out[n] = '\0';
}

static void ref_add(const char *a, const char *b, char *out)
{
    char r[96];
    int la = (int)strlen(a), lb = (int)strlen(b), carry = 0, n = 0;
    for (int i = la - 1, j = lb - 1; i >= 0 || j >= 0 || carry; i--, j--) {
        int s = carry + (i >= 0 ? a[i] - '0' : 0) + (j >= 0 ? b[j] - '0' : 0);
        r[n++] = (char)('0' + s % 10);
        carry = s / 10;
    }
    while (n > 1 && r[n - 1] == '0')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = r[n - 1 - i];
    out[n] = '\0';
}

/* Pico-unit digit string -> "units.twelve-digits" with trailing zeros dropped. */
static void ref_pico_to_decimal(const char *p, char *out)
{
    char padded[96];
    int l = (int)strlen(p);
    int pad = l < 13 ? 13 - l : 0;
    memset(padded, '0', (size_t)pad);
    strcpy(padded + pad, p);
    l = (int)strlen(padded);
    int ip = l - 12;
    memcpy(out, padded, (size_t)ip);
    int end = l;
    while (end > ip && padded[end - 1] == '0')
        end--;
    int n = ip;
    if (end > ip) {
        out[n++] = '.';
        memcpy(out + n, padded + ip, (size_t)(end - ip));
        n += end - ip;
    }
    out[n] = '\0';
}

static int64_t rnd64(int64_t max)
{
    /* 62 random bits from rand(), then reduced: seeded, reproducible. */
    uint64_t r = 0;
    for (int i = 0; i < 5; i++)
        r = (r << 15) ^ (uint64_t)(rand() & 0x7fff);
    switch (rand() % 4) { /* mix magnitudes: small, medium, large, near the cap */
    case 0:
        return (int64_t)(r % 1000);
    case 1:
        return (int64_t)(r % 10000000);
    case 2:
        return (int64_t)(r % (uint64_t)(max + 1));
    default:
        return max - (int64_t)(r % 1000);
    }
}

static void test_examples(void)
{
    pr_pico_t a, b, c, t = 0;
    /* V3 standard: 400k hits at $0.07, 600k misses at $0.27, 1M output at $1.10. */
    CHECK(pr_cost(400000, 70000, &a, err, sizeof err) == 0);
    CHECK(pr_cost(600000, 270000, &b, err, sizeof err) == 0);
    CHECK(pr_cost(1000000, 1100000, &c, err, sizeof err) == 0);
    CHECK(pr_pico_add(t, a, &t, err, sizeof err) == 0);
    CHECK(pr_pico_add(t, b, &t, err, sizeof err) == 0);
    CHECK(pr_pico_add(t, c, &t, err, sizeof err) == 0);
    CHECK_STR(fmt(t, 0), "1.29");
    CHECK_STR(fmt(t, 2), "1.29");
    CHECK_STR(fmt(t, 12), "1.290000000000");
    CHECK_STR(fmt(a, 0), "0.028");
    CHECK_STR(fmt(1, 0), "0.000000000001");
    CHECK_STR(fmt(-1, 0), "-0.000000000001");
    CHECK_STR(fmt(0, 0), "0");
    CHECK_STR(fmt(0, 2), "0.00");
    CHECK_STR(fmt((pr_pico_t)PR_TOKENS_MAX * PR_PRICE_MAX * 4, 0), "4000000000000");
    char ib[48];
    CHECK(pr_pico_format_int(t, ib, sizeof ib) == 13);
    CHECK_STR(ib, "1290000000000");
    CHECK(pr_pico_format_int(0, ib, sizeof ib) == 1 && strcmp(ib, "0") == 0);
    CHECK(pr_pico_format_int(-42, ib, sizeof ib) == 3 && strcmp(ib, "-42") == 0);
    CHECK(pr_pico_format_int((pr_pico_t)PR_TOKENS_MAX * PR_PRICE_MAX * 5, ib, sizeof ib) == 25);
    CHECK_STR(ib, "5000000000000000000000000");
    CHECK(pr_pico_format_int(t, ib, 13) == 0); /* needs 14 with the NUL */
    char small[4];
    CHECK(pr_pico_format(t, 0, small, sizeof small) == 0);

    /* Half-even presentation rounding to cents. */
    pr_pico_t r;
    const pr_pico_t cent = (pr_pico_t)10000000000; /* 0.01 in pico */
    CHECK(pr_pico_round((pr_pico_t)2576000000000, 2, &r) == 0 && r == 258 * cent);  /* 2.576 */
    CHECK(pr_pico_round((pr_pico_t)125 * cent / 10, 2, &r) == 0 && r == 12 * cent); /* 0.125 */
    CHECK(pr_pico_round((pr_pico_t)135 * cent / 10, 2, &r) == 0 && r == 14 * cent); /* 0.135 */
    CHECK(pr_pico_round((pr_pico_t)645 * cent / 10, 2, &r) == 0 && r == 64 * cent); /* 0.645 */
    CHECK(pr_pico_round(-(pr_pico_t)125 * cent / 10, 2, &r) == 0 && r == -12 * cent);
    CHECK(pr_pico_round((pr_pico_t)1250000000001, 2, &r) == 0 && r == 125 * cent);
    CHECK(pr_pico_round((pr_pico_t)1245000000001, 2, &r) == 0 && r == 125 * cent);
    CHECK(pr_pico_round((pr_pico_t)1244999999999, 2, &r) == 0 && r == 124 * cent);
    CHECK(pr_pico_round((pr_pico_t)5 * PR_PICO_PER_UNIT / 10, 0, &r) == 0 && r == 0);
    CHECK(pr_pico_round((pr_pico_t)15 * PR_PICO_PER_UNIT / 10, 0, &r) == 0 &&
          r == 2 * PR_PICO_PER_UNIT);
    CHECK(pr_pico_round(12345, 12, &r) == 0 && r == 12345);
    CHECK(pr_pico_round(1, 13, &r) == -1);
    CHECK(pr_pico_round(1, -1, &r) == -1);

    int64_t m;
    CHECK(pr_micro_parse("0.27", &m, err, sizeof err) == 0 && m == 270000);
    CHECK(pr_micro_parse("2.19", &m, err, sizeof err) == 0 && m == 2190000);
    CHECK(pr_micro_parse("1", &m, err, sizeof err) == 0 && m == 1000000);
    CHECK(pr_micro_parse(".5", &m, err, sizeof err) == 0 && m == 500000);
    CHECK(pr_micro_parse("0.000001", &m, err, sizeof err) == 0 && m == 1);
    CHECK(pr_micro_parse("1000000", &m, err, sizeof err) == 0 && m == PR_PRICE_MAX);

    /* Percent conversion: 50% of $0.27 = $0.135 exactly; half-even on ties. */
    CHECK(pr_price_percent_off(270000, 5000, &m, err, sizeof err) == 0 && m == 135000);
    CHECK(pr_price_percent_off(2190000, 7500, &m, err, sizeof err) == 0 && m == 547500);
    CHECK(pr_price_percent_off(1, 5000, &m, err, sizeof err) == 0 && m == 0); /* 0.5 -> 0 */
    CHECK(pr_price_percent_off(3, 5000, &m, err, sizeof err) == 0 && m == 2); /* 1.5 -> 2 */
    CHECK(pr_price_percent_off(5, 5000, &m, err, sizeof err) == 0 && m == 2); /* 2.5 -> 2 */
    CHECK(pr_price_percent_off(7, 3333, &m, err, sizeof err) == 0 && m == 5); /* 4.6669 */
    CHECK(pr_price_percent_off(PR_PRICE_MAX, 0, &m, err, sizeof err) == 0 && m == PR_PRICE_MAX);
    CHECK(pr_price_percent_off(PR_PRICE_MAX, 10000, &m, err, sizeof err) == 0 && m == 0);
}

static void test_bad_input(void)
{
    pr_pico_t r;
    int64_t m;
    CHECK_ERR(pr_cost(-1, 100, &r, err, sizeof err), err, "token count -1");
    CHECK_ERR(pr_cost(PR_TOKENS_MAX + 1, 100, &r, err, sizeof err), err, "outside");
    CHECK_ERR(pr_cost(10, -5, &r, err, sizeof err), err, "negative");
    CHECK_ERR(pr_cost(10, PR_PRICE_MAX + 1, &r, err, sizeof err), err, "exceeds the cap");
    CHECK_ERR(pr_price_check(-1, "output", err, sizeof err), err, "output price -1 is negative");
    pr_pico_t big = ((pr_pico_t)1) << 126;
    CHECK_ERR(pr_pico_add(big, big, &r, err, sizeof err), err, "overflow");
    CHECK_ERR(pr_micro_parse("-0.27", &m, err, sizeof err), err, "not a plain");
    CHECK_ERR(pr_micro_parse("1e3", &m, err, sizeof err), err, "not a plain");
    CHECK_ERR(pr_micro_parse("", &m, err, sizeof err), err, "empty");
    CHECK_ERR(pr_micro_parse(".", &m, err, sizeof err), err, "not a plain");
    CHECK_ERR(pr_micro_parse("0.0000001", &m, err, sizeof err), err, "more than 6 decimals");
    CHECK_ERR(pr_micro_parse("1000000.000001", &m, err, sizeof err), err, "cap");
    CHECK_ERR(pr_micro_parse("99999999999999999999999", &m, err, sizeof err), err, "large");
    CHECK_ERR(pr_price_percent_off(100, 10001, &m, err, sizeof err), err, "basis points");
    CHECK_ERR(pr_price_percent_off(100, -1, &m, err, sizeof err), err, "basis points");
    CHECK_ERR(pr_price_percent_off(-100, 50, &m, err, sizeof err), err, "negative");
}

static void test_currency(void)
{
    const pr_currency_t *c = pr_currency_find("USD", err, sizeof err);
    CHECK(c != NULL && c->minor == 2);
    c = pr_currency_find("CNY", err, sizeof err);
    CHECK(c != NULL && c->minor == 2);
    c = pr_currency_find("JPY", err, sizeof err);
    CHECK(c != NULL && c->minor == 0);
    c = pr_currency_find("EUR", err, sizeof err);
    CHECK(c != NULL && c->minor == 2);
    err[0] = '\0';
    CHECK(pr_currency_find("XYZ", err, sizeof err) == NULL && strstr(err, "unknown currency"));
    printf("  refused as expected: %s\n", err);
    CHECK(pr_currency_find("usd", err, sizeof err) == NULL);
    CHECK(pr_currency_find(NULL, err, sizeof err) == NULL);
    size_t n = 0;
    while (pr_currency_at(n))
        n++;
    CHECK(n >= 20);
}

static void test_properties(void)
{
    srand(20250226);
    char sa[32], sb[32], prod[80], sum[96] = "0", tmp[96], ref[128];
    for (int i = 0; i < 20000; i++) {
        int64_t n = rnd64(PR_TOKENS_MAX), p = rnd64(PR_PRICE_MAX);
        int64_t n2 = rnd64(PR_TOKENS_MAX / 2);
        pr_pico_t c, c2, c12, cs;
        if (n > PR_TOKENS_MAX / 2)
            n /= 2;
        CHECK(pr_cost(n, p, &c, err, sizeof err) == 0);
        CHECK(pr_cost(n2, p, &c2, err, sizeof err) == 0);
        CHECK(pr_cost(n + n2, p, &c12, err, sizeof err) == 0);
        /* additive in tokens */
        CHECK(pr_pico_add(c, c2, &cs, err, sizeof err) == 0 && cs == c12);
        /* monotonic in tokens and in price */
        pr_pico_t more;
        CHECK(pr_cost(n + 1, p, &more, err, sizeof err) == 0 && more >= c);
        if (p < PR_PRICE_MAX)
            CHECK(pr_cost(n, p + 1, &more, err, sizeof err) == 0 && more >= c);
        /* equal to the decimal-string reference, formatted exactly */
        snprintf(sa, sizeof sa, "%lld", (long long)n);
        snprintf(sb, sizeof sb, "%lld", (long long)p);
        ref_mul(sa, sb, prod);
        ref_pico_to_decimal(prod, ref);
        if (strcmp(fmt(c, 0), ref) != 0) {
            fprintf(stderr, "n=%s p=%s: got %s want %s\n", sa, sb, fmt(c, 0), ref);
            failures++;
        }
        char ib2[48];
        pr_pico_format_int(c, ib2, sizeof ib2);
        if (strcmp(ib2, prod) != 0) {
            fprintf(stderr, "int form n=%s p=%s: got %s want %s\n", sa, sb, ib2, prod);
            failures++;
        }
        /* running total of a five-component record, both ways */
        ref_add(sum, prod, tmp);
        strcpy(sum, tmp);
    }
    /* one long sum through pr_pico_add versus the reference's sum */
    srand(20250226);
    pr_pico_t total = 0;
    for (int i = 0; i < 20000; i++) {
        int64_t n = rnd64(PR_TOKENS_MAX), p = rnd64(PR_PRICE_MAX);
        (void)rnd64(PR_TOKENS_MAX / 2);
        if (n > PR_TOKENS_MAX / 2)
            n /= 2;
        pr_pico_t c;
        CHECK(pr_cost(n, p, &c, err, sizeof err) == 0);
        CHECK(pr_pico_add(total, c, &total, err, sizeof err) == 0);
    }
    ref_pico_to_decimal(sum, ref);
    CHECK_STR(fmt(total, 0), ref);
}

int main(void)
{
    test_examples();
    test_bad_input();
    test_currency();
    test_properties();
    return test_done("test_money");
}
