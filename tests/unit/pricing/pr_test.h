/* pr_test: tiny check macros and helpers shared by the pricing unit tests.
 * Instants are built with libc timegm (independent of the library's calendar). */
#ifndef PR_TEST_H
#define PR_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures;
static int checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        if (strcmp((got), (want)) != 0) {                                                          \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, (got),         \
                    (want));                                                                       \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* An error case: call must fail (-1 / NULL) and leave a message containing `needle`. */
#define CHECK_ERR(call, errbuf, needle)                                                            \
    do {                                                                                           \
        checks++;                                                                                  \
        (errbuf)[0] = '\0';                                                                        \
        int rc_ = (call);                                                                          \
        if (rc_ == 0 || strstr((errbuf), (needle)) == NULL) {                                      \
            fprintf(stderr, "%s:%d: expected failure with \"%s\", got rc %d msg \"%s\"\n",         \
                    __FILE__, __LINE__, (needle), rc_, (errbuf));                                  \
            failures++;                                                                            \
        } else {                                                                                   \
            printf("  refused as expected: %s\n", (errbuf));                                       \
        }                                                                                          \
    } while (0)

/* Unix microseconds of a UTC wall time. */
static inline int64_t utc_us(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000000;
}

static inline int test_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, checks, failures);
    return failures ? 1 : 0;
}

#endif
