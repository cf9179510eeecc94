/* tg_log: leveled log records on standard error, one line and one write(2)
 * per record, so that lines from several threads never interleave. */
#include "tg_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "tollgate";
static tg_log_level_t log_min_level = TG_LOG_INFO;
static const char *const level_names[] = {"debug", "info ", "warn ", "error"};

void tg_log_init(const char *component, tg_log_level_t min_level)
{
    if (component)
        log_component = component;
    log_min_level = min_level;
}

int tg_log_level_parse(const char *text, tg_log_level_t *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (tg_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void tg_log(tg_log_level_t level, const char *fmt, ...)
{
    if (level < log_min_level)
        return;
    char line[2048];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000, level_names[level], log_component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated record: keep the newline */
    /* one record, one line: control characters from the message (a client's
     * text, a multi-line libpq error) become spaces, so that no text can
     * forge a record of its own */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
