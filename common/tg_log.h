/* tg_log: one-line, leveled, thread-safe log records on standard error.
 * Shared by every Tollgate binary. Records look like
 *   2026-11-26T11:02:55.123Z warn  gateway: upstream deepseek: connect refused
 * Never log secrets (API keys, provider credentials): callers pass display
 * prefixes only. */
#ifndef TG_LOG_H
#define TG_LOG_H

typedef enum { TG_LOG_DEBUG = 0, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR } tg_log_level_t;

/* Sets the lowest level that is printed (default TG_LOG_INFO) and the
 * component name shown on every line (default "tollgate"). Not thread-safe:
 * call once at start, before threads exist. */
void tg_log_init(const char *component, tg_log_level_t min_level);

/* Parses "debug", "info", "warn" or "error". Returns 0 and sets *out, or -1. */
int tg_log_level_parse(const char *text, tg_log_level_t *out);

/* Writes one record (a newline is added). Safe from any thread. */
void tg_log(tg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tg_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)

#endif
