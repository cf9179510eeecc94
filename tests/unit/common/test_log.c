/* Unit test for common/tg_log: level names parse, unknown names are refused,
 * and a record longer than the line buffer is truncated, not overflowed. */
#include "tg_log.h"

#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

int main(void)
{
    tg_log_level_t level = TG_LOG_ERROR;
    CHECK(tg_log_level_parse("debug", &level) == 0 && level == TG_LOG_DEBUG);
    CHECK(tg_log_level_parse("warn", &level) == 0 && level == TG_LOG_WARN);
    CHECK(tg_log_level_parse("verbose", &level) == -1);
    tg_log_init("test", TG_LOG_DEBUG);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tg_info("long record: %s", big);
    return failures ? 1 : 0;
}
