/* rt_test: check macros and a small price book shared by the router unit tests. */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <stdio.h>
#include <string.h>

#include "pr_book.h"

static int failures, checks;

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
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || strcmp(g_, w_) != 0) {                                                          \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__,                \
                    g_ ? g_ : "(null)", w_);                                                       \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_HAS(hay, needle)                                                                     \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!strstr((hay), (needle))) {                                                            \
            fprintf(stderr, "%s:%d: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (hay), (needle));  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define T0 INT64_C(1780000000000000) /* 2026-05-28T20:26:40Z, a Thursday */
#define SEC INT64_C(1000000)

static int report(const char *name)
{
    printf("%s: %d checks, %d failures\n", name, checks, failures);
    return failures ? 1 : 0;
}

#endif
