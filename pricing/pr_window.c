/* pr_window: does a discount window apply at an instant (validity, local time
 * of day in its zone, weekday of the occurrence's start, holiday dates), and can
 * two windows ever apply at once (the save-time ambiguity check). */
#include "pr_book_internal.h"

#include <stdlib.h>

bool pr_calendar_has(const pr_calendar_t *c, int64_t day)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->dates[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->dates[lo] == day;
}

bool pr_window_matches(const pr_window_t *w, int64_t at_us)
{
    if (at_us < w->valid_from_us || at_us >= w->valid_until_us)
        return false;
    if (w->kind == PR_WIN_ONCE)
        return true;
    pr_local_t l;
    pr_tz_local(w->zone, pr_floor_div(at_us, 1000000), &l);
    if (w->kind == PR_WIN_HOLIDAY)
        return pr_calendar_has(w->calendar, l.days);
    int64_t occ; /* local day on which the matching occurrence started */
    if (w->start_sec < w->end_sec) {
        if (l.sod < w->start_sec || l.sod >= w->end_sec)
            return false;
        occ = l.days;
    } else if (l.sod >= w->start_sec) {
        occ = l.days;
    } else if (l.sod < w->end_sec) {
        occ = l.days - 1; /* the part after midnight of yesterday's occurrence */
    } else {
        return false;
    }
    if (!((w->weekdays >> pr_weekday(occ)) & 1))
        return false;
    if (w->calendar != NULL && pr_calendar_has(w->calendar, occ))
        return false;
    return true;
}

/* Local week-time intervals [s, e) in [0, 7*86400) that a daily window covers
 * (Monday 00:00 = 0). Up to 14 (a wrap on Sunday splits). Returns the count. */
static int week_intervals(const pr_window_t *w, int64_t iv[14][2])
{
    const int64_t week = 7 * 86400;
    int n = 0;
    for (int d = 0; d < 7; d++) {
        if (!((w->weekdays >> d) & 1))
            continue;
        int64_t s = (int64_t)d * 86400 + w->start_sec;
        int64_t e = (int64_t)d * 86400 + w->end_sec + (w->end_sec <= w->start_sec ? 86400 : 0);
        if (e > week) {
            iv[n][0] = s, iv[n][1] = week, n++;
            iv[n][0] = 0, iv[n][1] = e - week, n++;
        } else {
            iv[n][0] = s, iv[n][1] = e, n++;
        }
    }
    return n;
}

bool pr_windows_may_overlap(const pr_window_t *a, const pr_window_t *b, int64_t lo, int64_t hi)
{
    int64_t from = a->valid_from_us > b->valid_from_us ? a->valid_from_us : b->valid_from_us;
    int64_t until = a->valid_until_us < b->valid_until_us ? a->valid_until_us : b->valid_until_us;
    if (from < lo)
        from = lo;
    if (until > hi)
        until = hi;
    if (from >= until)
        return false; /* never valid at the same time while the card is in force */
    if (a->kind == PR_WIN_DAILY && b->kind == PR_WIN_DAILY && a->zone == b->zone) {
        /* Same zone: both match an instant iff its local week-time is in both
         * coverages (holiday exclusions only shrink them: ignored, conservative). */
        int64_t ia[14][2], ib[14][2];
        int na = week_intervals(a, ia), nb = week_intervals(b, ib);
        for (int i = 0; i < na; i++)
            for (int j = 0; j < nb; j++)
                if (ia[i][0] < ib[j][1] && ib[j][0] < ia[i][1])
                    return true;
        return false;
    }
    const pr_window_t *d = a->kind == PR_WIN_DAILY ? a : b;
    const pr_window_t *h = a->kind == PR_WIN_HOLIDAY ? a : b;
    if (d->kind == PR_WIN_DAILY && h->kind == PR_WIN_HOLIDAY && d->calendar == h->calendar &&
        d->start_sec < d->end_sec && d->zone == h->zone)
        return false; /* a same-day daily window that excludes exactly these dates */
    return true;
}
