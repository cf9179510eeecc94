/* Unit test for pricing/pr_tz: TZif parsing of the system tz database checked
 * against glibc's localtime_r (an independent reader of the same files) over
 * seeded random instants 1900-2200 (past the tables, so the POSIX footer is
 * exercised), explicit DST changes in New York and Berlin, the southern
 * hemisphere, leap days and weekdays, and every kind of bad zone or data. */
#include "pr_test.h"
#include "pr_tz.h"

#include <stdlib.h>

static char err[256];

static int32_t glibc_offset(const char *zone, int64_t t)
{
    char tz[96];
    snprintf(tz, sizeof tz, ":%s", zone);
    setenv("TZ", tz, 1); /* test only: the library never touches TZ */
    tzset();
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return (int32_t)tm.tm_gmtoff;
}

static void test_against_glibc(void)
{
    const char *zones[] = {"America/New_York",  "Europe/Berlin",    "Asia/Shanghai",
                           "Australia/Sydney",  "Asia/Kolkata",     "UTC",
                           "America/Sao_Paulo", "Pacific/Chatham",  "Asia/Tehran",
                           "Europe/London",     "America/Santiago", "Africa/Casablanca",
                           "Pacific/Auckland"};
    srand(42);
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        pr_tz_t *tz = NULL;
        CHECK(pr_tz_load(zones[z], NULL, &tz, err, sizeof err) == 0);
        if (tz == NULL) {
            fprintf(stderr, "load %s: %s\n", zones[z], err);
            continue;
        }
        CHECK_STR(pr_tz_name(tz), zones[z]);
        int bad = 0;
        for (int i = 0; i < 3000; i++) {
            /* 1901..2200 in seconds (glibc's time_t is 64-bit here) */
            int64_t lo = -2145916800LL, span = 9615254400LL - lo;
            uint64_t r = ((uint64_t)rand() << 31) ^ (uint64_t)rand();
            int64_t t = lo + (int64_t)(r % (uint64_t)span);
            int32_t want = glibc_offset(zones[z], t), got = pr_tz_offset(tz, t);
            if (want != got && bad++ < 3)
                fprintf(stderr, "%s at %lld: got %d want %d\n", zones[z], (long long)t, got, want);
        }
        CHECK(bad == 0);
        pr_tz_free(tz);
    }
    unsetenv("TZ");
}

static int64_t s_utc(int y, int mo, int d, int h, int mi, int s)
{
    return utc_us(y, mo, d, h, mi, s) / 1000000;
}

static void test_dst_edges(void)
{
    pr_tz_t *ny = NULL, *be = NULL, *sy = NULL;
    CHECK(pr_tz_load("America/New_York", NULL, &ny, err, sizeof err) == 0);
    CHECK(pr_tz_load("Europe/Berlin", NULL, &be, err, sizeof err) == 0);
    CHECK(pr_tz_load("Australia/Sydney", NULL, &sy, err, sizeof err) == 0);
    if (!ny || !be || !sy)
        return;
    /* New York 2025: spring forward 2025-03-09 02:00 EST = 07:00Z, back 11-02 06:00Z */
    CHECK(pr_tz_offset(ny, s_utc(2025, 3, 9, 6, 59, 59)) == -5 * 3600);
    CHECK(pr_tz_offset(ny, s_utc(2025, 3, 9, 7, 0, 0)) == -4 * 3600);
    CHECK(pr_tz_offset(ny, s_utc(2025, 11, 2, 5, 59, 59)) == -4 * 3600);
    CHECK(pr_tz_offset(ny, s_utc(2025, 11, 2, 6, 0, 0)) == -5 * 3600);
    /* Past the table (2037 in fat files): the footer rule. 2100-03-14 is the 2nd Sunday. */
    CHECK(pr_tz_offset(ny, s_utc(2100, 3, 14, 6, 59, 59)) == -5 * 3600);
    CHECK(pr_tz_offset(ny, s_utc(2100, 3, 14, 7, 0, 0)) == -4 * 3600);
    /* Berlin 2025: 03-30 01:00Z to CEST, 10-26 01:00Z back */
    CHECK(pr_tz_offset(be, s_utc(2025, 3, 30, 0, 59, 59)) == 3600);
    CHECK(pr_tz_offset(be, s_utc(2025, 3, 30, 1, 0, 0)) == 7200);
    CHECK(pr_tz_offset(be, s_utc(2025, 10, 26, 0, 59, 59)) == 7200);
    CHECK(pr_tz_offset(be, s_utc(2025, 10, 26, 1, 0, 0)) == 3600);
    /* Sydney (southern): DST ends 2025-04-06 03:00 AEDT = 04-05 16:00Z */
    CHECK(pr_tz_offset(sy, s_utc(2025, 4, 5, 15, 59, 59)) == 11 * 3600);
    CHECK(pr_tz_offset(sy, s_utc(2025, 4, 5, 16, 0, 0)) == 10 * 3600);
    CHECK(pr_tz_offset(sy, s_utc(2150, 1, 1, 0, 0, 0)) == 11 * 3600);
    CHECK(pr_tz_offset(sy, s_utc(2150, 7, 1, 0, 0, 0)) == 10 * 3600);
    /* Local wall time: 2025-03-09 07:30Z is 03:30 EDT on a Sunday (ISO 6). */
    pr_local_t l;
    pr_tz_local(ny, s_utc(2025, 3, 9, 7, 30, 0), &l);
    CHECK(l.sod == 3 * 3600 + 1800 && l.wday == 6 && l.utoff == -4 * 3600);
    int64_t y;
    int m, d;
    pr_civil_from_days(l.days, &y, &m, &d);
    CHECK(y == 2025 && m == 3 && d == 9);
    /* Before midnight UTC but already the next day in Berlin. */
    pr_tz_local(be, s_utc(2024, 12, 31, 23, 30, 0), &l);
    pr_civil_from_days(l.days, &y, &m, &d);
    CHECK(y == 2025 && m == 1 && d == 1 && l.sod == 1800 && l.wday == 2);
    pr_tz_free(ny);
    pr_tz_free(be);
    pr_tz_free(sy);
}

static void test_calendar(void)
{
    int64_t y;
    int m, d;
    /* Leap days: 2024 and 2000 have Feb 29, 2100 and 2025 do not. */
    CHECK(pr_days_from_civil(2024, 3, 1) - pr_days_from_civil(2024, 2, 28) == 2);
    CHECK(pr_days_from_civil(2000, 3, 1) - pr_days_from_civil(2000, 2, 28) == 2);
    CHECK(pr_days_from_civil(2100, 3, 1) - pr_days_from_civil(2100, 2, 28) == 1);
    CHECK(pr_days_from_civil(2025, 3, 1) - pr_days_from_civil(2025, 2, 28) == 1);
    pr_civil_from_days(pr_days_from_civil(2024, 2, 29), &y, &m, &d);
    CHECK(y == 2024 && m == 2 && d == 29);
    CHECK(pr_days_from_civil(1970, 1, 1) == 0);
    CHECK(pr_days_from_civil(1969, 12, 31) == -1);
    CHECK(pr_weekday(pr_days_from_civil(2025, 2, 26)) == 2);  /* Wednesday */
    CHECK(pr_weekday(pr_days_from_civil(2024, 2, 29)) == 3);  /* Thursday */
    CHECK(pr_weekday(pr_days_from_civil(1969, 12, 29)) == 0); /* Monday */
    CHECK(pr_floor_div(-1, 86400) == -1 && pr_floor_div(86400, 86400) == 1);
    /* Round trip and agreement with timegm over a wide range. */
    for (int64_t day = -800000; day < 800000; day += 97) {
        pr_civil_from_days(day, &y, &m, &d);
        CHECK(pr_days_from_civil(y, m, d) == day);
        if (y > 1900 && y < 2500)
            CHECK(utc_us((int)y, m, d, 0, 0, 0) / 1000000 == day * 86400);
    }
}

static void test_posix(void)
{
    pr_tz_posix_t p;
    CHECK(pr_tz_posix_parse("EST5EDT,M3.2.0,M11.1.0", &p, err, sizeof err) == 0);
    CHECK(p.std_off == -18000 && p.dst_off == -14400 && p.has_dst && p.start.month == 3);
    CHECK(pr_tz_posix_parse("<+0330>-3:30", &p, err, sizeof err) == 0);
    CHECK(p.std_off == 12600 && !p.has_dst);
    CHECK(pr_tz_posix_parse("UTC0", &p, err, sizeof err) == 0 && p.std_off == 0);
    CHECK(pr_tz_posix_parse("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", &p, err, sizeof err) == 0);
    CHECK(p.start.time == -7200 && p.end.time == -3600);
    /* Julian forms: J60 is always March 1; 59 (zero-based) is Feb 29 in leap years. */
    CHECK(pr_tz_posix_parse("XXX-1YYY,J60/0,J300/0", &p, err, sizeof err) == 0);
    CHECK(pr_tz_posix_offset(&p, s_utc(2024, 2, 29, 12, 0, 0)) == 3600);
    CHECK(pr_tz_posix_offset(&p, s_utc(2024, 3, 1, 12, 0, 0)) == 7200);
    CHECK(pr_tz_posix_parse("XXX-1YYY,59/0,299/0", &p, err, sizeof err) == 0);
    CHECK(pr_tz_posix_offset(&p, s_utc(2024, 2, 29, 12, 0, 0)) == 7200);
    CHECK(pr_tz_posix_offset(&p, s_utc(2025, 2, 28, 12, 0, 0)) == 3600);
    CHECK(pr_tz_posix_offset(&p, s_utc(2025, 3, 1, 12, 0, 0)) == 7200);
    CHECK_ERR(pr_tz_posix_parse("E5", &p, err, sizeof err), err, "malformed POSIX TZ");
    CHECK_ERR(pr_tz_posix_parse("EST", &p, err, sizeof err), err, "malformed POSIX TZ");
    CHECK_ERR(pr_tz_posix_parse("EST5EDT,M13.2.0,M11.1.0", &p, err, sizeof err), err, "malformed");
    CHECK_ERR(pr_tz_posix_parse("EST5EDT,M3.2.0", &p, err, sizeof err), err, "malformed");
    CHECK_ERR(pr_tz_posix_parse("EST99", &p, err, sizeof err), err, "malformed");
    pr_tz_t *tz = NULL;
    CHECK(pr_tz_from_posix("fixed", "<+08>-8", &tz, err, sizeof err) == 0);
    if (tz)
        CHECK(pr_tz_offset(tz, 0) == 8 * 3600);
    pr_tz_free(tz);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *b = malloc(1 << 16);
    *len = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

static void test_bad_zones(void)
{
    pr_tz_t *tz = NULL;
    CHECK_ERR(pr_tz_load("Mars/Olympus_Mons", NULL, &tz, err, sizeof err), err,
              "unknown time zone \"Mars/Olympus_Mons\"");
    CHECK_ERR(pr_tz_load("../../etc/passwd", NULL, &tz, err, sizeof err), err,
              "not a valid IANA zone name");
    CHECK_ERR(pr_tz_load("/etc/passwd", NULL, &tz, err, sizeof err), err, "not a valid");
    CHECK_ERR(pr_tz_load("", NULL, &tz, err, sizeof err), err, "not a valid");
    CHECK_ERR(pr_tz_load("America", NULL, &tz, err, sizeof err), err, "America");
    CHECK_ERR(pr_tz_load("zone.tab", NULL, &tz, err, sizeof err), err, "not a valid");
    CHECK_ERR(pr_tz_load("iso3166.tab", NULL, &tz, err, sizeof err), err, "not a valid");
    CHECK_ERR(pr_tz_load("right/UTC", NULL, &tz, err, sizeof err), err, "leap-second");
    CHECK(tz == NULL);

    size_t len = 0;
    unsigned char *ny = slurp("/usr/share/zoneinfo/America/New_York", &len);
    CHECK(ny != NULL && len > 100);
    if (!ny)
        return;
    CHECK(pr_tz_parse("NY", ny, len, &tz, err, sizeof err) == 0);
    pr_tz_free(tz);
    tz = NULL;
    CHECK_ERR(pr_tz_parse("x", ny, 30, &tz, err, sizeof err), err, "not a TZif");
    CHECK_ERR(pr_tz_parse("x", ny, 200, &tz, err, sizeof err), err, "truncated");
    CHECK_ERR(pr_tz_parse("x", ny, len - 300, &tz, err, sizeof err), err, "truncated");
    CHECK_ERR(pr_tz_parse("x",
                          (const unsigned char *)"hello world, no zone here at all..."
                                                 "..........",
                          45, &tz, err, sizeof err),
              err, "not a TZif");
    unsigned char *v1 = malloc(len);
    memcpy(v1, ny, len);
    v1[4] = 0;
    CHECK_ERR(pr_tz_parse("x", v1, len, &tz, err, sizeof err), err, "version 1");
    memcpy(v1, ny, len);
    v1[len - 1] = 'X'; /* footer without its closing newline */
    CHECK_ERR(pr_tz_parse("x", v1, len, &tz, err, sizeof err), err, "footer");
    memcpy(v1, ny, len);
    memcpy(v1 + len - 8, "garbage\n", 8); /* footer that is not a TZ string */
    CHECK_ERR(pr_tz_parse("x", v1, len, &tz, err, sizeof err), err, "");
    CHECK(tz == NULL);
    free(v1);
    free(ny);
}

/* Corrupt zone data must be refused or parsed, never crash or read out of
 * bounds (ASan build): seeded random byte flips, truncations and count edits. */
static void test_fuzz(void)
{
    const char *files[] = {"/usr/share/zoneinfo/America/New_York",
                           "/usr/share/zoneinfo/Australia/Sydney", "/usr/share/zoneinfo/UTC"};
    srand(1234);
    int parsed = 0, refused = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t len = 0;
        unsigned char *orig = slurp(files[f], &len);
        CHECK(orig != NULL);
        if (!orig)
            continue;
        for (int i = 0; i < 1500; i++) {
            size_t n = len;
            unsigned char *d = malloc(len);
            memcpy(d, orig, len);
            int flips = 1 + rand() % 4;
            for (int k = 0; k < flips; k++) {
                size_t at = (size_t)rand() % len;
                if (rand() % 3 == 0 && len > 64)
                    at = 20 + (size_t)rand() % 24; /* the header counts */
                d[at] = (unsigned char)rand();
            }
            if (rand() % 4 == 0)
                n = (size_t)rand() % len;
            pr_tz_t *tz = NULL;
            /* exact-size heap copy so ASan sees any overread */
            unsigned char *e = malloc(n ? n : 1);
            memcpy(e, d, n);
            if (pr_tz_parse("fuzz", e, n, &tz, err, sizeof err) == 0) {
                parsed++;
                for (int k = 0; k < 20; k++)
                    (void)pr_tz_offset(tz, ((int64_t)rand() << 20) - ((int64_t)1 << 40));
                pr_tz_free(tz);
            } else {
                refused++;
                CHECK(err[0] != '\0');
            }
            free(e);
            free(d);
        }
        free(orig);
    }
    printf("  fuzz: %d parsed, %d refused with a message\n", parsed, refused);
    CHECK(refused > 0);
}

int main(void)
{
    test_against_glibc();
    test_dst_edges();
    test_calendar();
    test_posix();
    test_bad_zones();
    test_fuzz();
    return test_done("test_tz");
}
