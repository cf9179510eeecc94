/* pr_tz: time zones from the system tz database, for daily windows and holiday
 * dates. The pure part parses TZif bytes (RFC 8536, version 2+: 64-bit data and
 * the POSIX TZ footer for instants past the table) and maps UTC seconds to local
 * wall time; the file reading lives apart in pr_tz_load.c. Leap-second ("right/")
 * zones are refused. */
#ifndef PR_TZ_H
#define PR_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pr_tz pr_tz_t;

/* A POSIX TZ rule date: Jn (1..365, Feb 29 never counted), n (0..365) or
 * Mm.w.d (month, week 1..5 where 5 = last, weekday 0 = Sunday), and the local
 * time of the change in seconds (may be negative or exceed a day). */
typedef struct pr_tz_rule {
    char kind; /* 'J', 'N' or 'M' */
    int day, week, month;
    int32_t time;
} pr_tz_rule_t;

/* A parsed POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0". Offsets are
 * seconds east of UTC (the string's sign is inverted). */
typedef struct pr_tz_posix {
    int32_t std_off, dst_off;
    bool has_dst;
    pr_tz_rule_t start, end;
} pr_tz_posix_t;

/* Local wall time of an instant: days since 1970-01-01 (local date), seconds
 * into that day, ISO weekday (0 = Monday .. 6 = Sunday) and the UTC offset. */
typedef struct pr_local {
    int64_t days;
    int32_t sod;
    int wday;
    int32_t utoff;
} pr_local_t;

/* Parses a POSIX TZ string. Returns 0, or -1 with a message. */
int pr_tz_posix_parse(const char *s, pr_tz_posix_t *out, char *err, size_t errlen);

/* UTC offset (seconds east) that a POSIX rule gives at UTC instant t. */
int32_t pr_tz_posix_offset(const pr_tz_posix_t *p, int64_t t);

/* Parses TZif data (version 2 or later) for the zone called `name`.
 * Returns 0 and a new zone in *out (free with pr_tz_free), or -1 with a message
 * saying what is wrong with the data. Does no I/O. */
int pr_tz_parse(const char *name, const unsigned char *data, size_t len, pr_tz_t **out, char *err,
                size_t errlen);

/* A zone with a fixed rule and no table (e.g. "UTC0"), for tests and UTC. */
int pr_tz_from_posix(const char *name, const char *posix, pr_tz_t **out, char *err, size_t errlen);

void pr_tz_free(pr_tz_t *tz);
const char *pr_tz_name(const pr_tz_t *tz);

/* UTC offset in seconds east of UTC at UTC instant t (unix seconds). */
int32_t pr_tz_offset(const pr_tz_t *tz, int64_t t);

/* Local wall time at UTC instant t (unix seconds). */
void pr_tz_local(const pr_tz_t *tz, int64_t t, pr_local_t *out);

/* Proleptic Gregorian calendar helpers. */
int64_t pr_days_from_civil(int64_t y, int m, int d);
void pr_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* ISO weekday (0 = Monday) of a day count since 1970-01-01 (a Thursday). */
int pr_weekday(int64_t days);
/* floor(a / b) for b > 0. */
int64_t pr_floor_div(int64_t a, int64_t b);

/* Reads the TZif file of zone `name` under `tzdir` (NULL: /usr/share/zoneinfo)
 * and parses it. Names must look like IANA names (letters, digits, '/', '_',
 * '-', '+'; no "..", no leading '/'). This is the only function here that does
 * I/O. Returns 0, or -1 with a message (unknown zone, unreadable, bad data). */
int pr_tz_load(const char *name, const char *tzdir, pr_tz_t **out, char *err, size_t errlen);

#endif
