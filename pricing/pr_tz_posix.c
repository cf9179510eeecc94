/* pr_tz_posix: the POSIX TZ rule strings found in TZif footers
 * ("CET-1CEST,M3.5.0,M10.5.0/3"), which give local time for instants past the
 * end of a zone's transition table. Pure: parsing and arithmetic only. */
#include "pr_tz.h"

#include <ctype.h>
#include <stdio.h>

static const char *parse_name(const char *s)
{
    if (*s == '<') {
        s++;
        while (*s && *s != '>')
            s++;
        return *s == '>' ? s + 1 : NULL;
    }
    const char *b = s;
    while (isalpha((unsigned char)*s))
        s++;
    return s - b >= 3 ? s : NULL;
}

/* [+-]hh[:mm[:ss]] with hours up to max_h; sets seconds (sign applied). */
static const char *parse_hms(const char *s, int max_h, int32_t *out)
{
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return NULL;
    int h = 0, m = 0, sec = 0, nd = 0;
    while (isdigit((unsigned char)*s) && nd < 3) {
        h = h * 10 + (*s++ - '0');
        nd++;
    }
    if (h > max_h)
        return NULL;
    if (*s == ':') {
        s++;
        if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
            return NULL;
        m = (s[0] - '0') * 10 + (s[1] - '0');
        s += 2;
        if (*s == ':') {
            s++;
            if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
                return NULL;
            sec = (s[0] - '0') * 10 + (s[1] - '0');
            s += 2;
        }
    }
    if (m > 59 || sec > 59)
        return NULL;
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *parse_num(const char *s, int *out)
{
    int v = 0, nd = 0;
    while (isdigit((unsigned char)*s) && nd < 4) {
        v = v * 10 + (*s++ - '0');
        nd++;
    }
    if (nd == 0)
        return NULL;
    *out = v;
    return s;
}

static const char *parse_rule(const char *s, pr_tz_rule_t *r)
{
    r->day = r->week = r->month = 0;
    if (*s == 'J') {
        r->kind = 'J';
        if (!(s = parse_num(s + 1, &r->day)) || r->day < 1 || r->day > 365)
            return NULL;
    } else if (*s == 'M') {
        r->kind = 'M';
        if (!(s = parse_num(s + 1, &r->month)) || *s++ != '.')
            return NULL;
        if (!(s = parse_num(s, &r->week)) || *s++ != '.')
            return NULL;
        if (!(s = parse_num(s, &r->day)))
            return NULL;
        if (r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->day > 6)
            return NULL;
    } else {
        r->kind = 'N';
        if (!(s = parse_num(s, &r->day)) || r->day > 365)
            return NULL;
    }
    r->time = 7200;
    if (*s == '/')
        s = parse_hms(s + 1, 167, &r->time);
    return s;
}

int pr_tz_posix_parse(const char *s, pr_tz_posix_t *out, char *err, size_t errlen)
{
    const char *p = s;
    int32_t off;
    if (!(p = parse_name(p)) || !(p = parse_hms(p, 24, &off)))
        goto bad;
    out->std_off = -off;
    out->has_dst = false;
    out->dst_off = out->std_off;
    if (*p == '\0')
        return 0;
    if (!(p = parse_name(p)))
        goto bad;
    out->has_dst = true;
    out->dst_off = out->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = parse_hms(p, 24, &off)))
            goto bad;
        out->dst_off = -off;
    }
    if (*p == '\0') {
        /* No rule given: POSIX leaves it implementation-defined; use the US rule
         * as glibc does. TZif footers always carry one. */
        out->start = (pr_tz_rule_t){'M', 0, 2, 3, 7200};
        out->end = (pr_tz_rule_t){'M', 0, 1, 11, 7200};
        return 0;
    }
    if (*p++ != ',' || !(p = parse_rule(p, &out->start)) || *p++ != ',' ||
        !(p = parse_rule(p, &out->end)) || *p != '\0')
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "malformed POSIX TZ string \"%.64s\"", s);
    return -1;
}

/* Day number (since 1970-01-01) on which a rule falls in year y. */
static int64_t rule_day(const pr_tz_rule_t *r, int64_t y)
{
    int64_t jan1 = pr_days_from_civil(y, 1, 1);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (r->kind == 'J')
        return jan1 + r->day - 1 + (leap && r->day >= 60 ? 1 : 0);
    if (r->kind == 'N')
        return jan1 + r->day;
    int64_t first = pr_days_from_civil(y, r->month, 1);
    int64_t next =
        r->month == 12 ? pr_days_from_civil(y + 1, 1, 1) : pr_days_from_civil(y, r->month + 1, 1);
    int wd_sun = (pr_weekday(first) + 1) % 7; /* 0 = Sunday */
    int64_t d = first + (r->day - wd_sun + 7) % 7 + (int64_t)(r->week - 1) * 7;
    while (d >= next)
        d -= 7;
    return d;
}

int32_t pr_tz_posix_offset(const pr_tz_posix_t *p, int64_t t)
{
    if (!p->has_dst)
        return p->std_off;
    int64_t y;
    int m, d;
    pr_civil_from_days(pr_floor_div(t + p->std_off, 86400), &y, &m, &d);
    /* DST starts at a time given in standard time and ends at one in DST. */
    int64_t s = rule_day(&p->start, y) * 86400 + p->start.time - p->std_off;
    int64_t e = rule_day(&p->end, y) * 86400 + p->end.time - p->dst_off;
    bool dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    return dst ? p->dst_off : p->std_off;
}
