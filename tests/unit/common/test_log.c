/* Unit test for common/tg_log: level names parse, unknown names are refused,
 * a record longer than the line buffer is truncated, not overflowed, and a
 * message's control characters cannot make a second line. */
#include "tg_log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
    /* a message with newlines (a client's text, a libpq error) stays one line */
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    CHECK(f && saved >= 0 && dup2(fileno(f), STDERR_FILENO) >= 0);
    tg_warn("refused team '%s'", "x\n2026-01-01T00:00:00.000Z info  test: forged\r\tend");
    dup2(saved, STDERR_FILENO);
    close(saved);
    char out[512] = "";
    rewind(f);
    size_t got = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    CHECK(got > 0 && strchr(out, '\n') == out + got - 1); /* one newline: the record's end */
    CHECK(strstr(out, "refused team 'x 2026-01-01T00:00:00.000Z info  test: forged  end'") != NULL);
    return failures ? 1 : 0;
}
