/* pr_tz: TZif (RFC 8536, v2+) parsing and UTC -> local time mapping, plus the
 * calendar arithmetic pricing needs. Pure: bytes in, zone out; no file access,
 * no TZ environment, no libc time functions. */
#include "pr_tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pr_tz {
    char name[64];
    int64_t *trans; /* ascending UTC instants of transitions */
    uint8_t *idx;   /* type index in force from each transition */
    size_t ntrans;
    int32_t *type_off; /* UT offset of each local time type */
    size_t ntypes;
    bool has_footer;
    pr_tz_posix_t footer;
};

int64_t pr_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era-based arithmetic:
 * 400-year cycles of 146097 days). */
int64_t pr_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = pr_floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12; /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void pr_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = pr_floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int pr_weekday(int64_t days)
{
    return (int)((days % 7 + 7 + 3) % 7); /* 1970-01-01 was a Thursday (3) */
}

static int64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static pr_tz_t *tz_new(const char *name, char *err, size_t errlen)
{
    if (name == NULL || strlen(name) >= sizeof((pr_tz_t *)0)->name) {
        snprintf(err, errlen, "time zone name missing or too long");
        return NULL;
    }
    pr_tz_t *tz = calloc(1, sizeof *tz);
    if (tz == NULL)
        abort();
    strcpy(tz->name, name);
    return tz;
}

int pr_tz_parse(const char *name, const unsigned char *data, size_t len, pr_tz_t **out, char *err,
                size_t errlen)
{
    char perr[128];
    pr_tz_t *tz = tz_new(name, err, errlen);
    if (tz == NULL)
        return -1;
    if (len < 44 || memcmp(data, "TZif", 4) != 0) {
        snprintf(err, errlen, "zone %s: not a TZif file", name);
        goto fail;
    }
    if (data[4] < '2') {
        snprintf(err, errlen, "zone %s: TZif version 1 has no 64-bit data; need version 2+", name);
        goto fail;
    }
    /* Skip the version-1 block (32-bit data) to reach the version-2 header. */
    uint64_t c[6];
    for (int i = 0; i < 6; i++)
        c[i] = be32(data + 20 + 4 * i);
    uint64_t v1 = c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
    size_t off = 44 + (size_t)v1;
    if (v1 > len || off + 44 > len || memcmp(data + off, "TZif", 4) != 0) {
        snprintf(err, errlen, "zone %s: truncated TZif data (no version-2 header)", name);
        goto fail;
    }
    for (int i = 0; i < 6; i++)
        c[i] = be32(data + off + 20 + 4 * i);
    uint64_t isut = c[0], isstd = c[1], leap = c[2], timecnt = c[3], typecnt = c[4], charcnt = c[5];
    if (leap != 0) {
        snprintf(err, errlen, "zone %s: leap-second zones (right/...) are not supported", name);
        goto fail;
    }
    if (typecnt == 0 || typecnt > 256 || timecnt > 100000 || charcnt > 100000 || isut > typecnt ||
        isstd > typecnt) {
        snprintf(err, errlen, "zone %s: TZif counts out of range", name);
        goto fail;
    }
    off += 44;
    size_t need = (size_t)(timecnt * 9 + typecnt * 6 + charcnt + isstd + isut);
    if (off + need > len) {
        snprintf(err, errlen, "zone %s: truncated TZif version-2 data", name);
        goto fail;
    }
    tz->ntrans = (size_t)timecnt;
    tz->ntypes = (size_t)typecnt;
    tz->trans = malloc(sizeof(int64_t) * (tz->ntrans ? tz->ntrans : 1));
    tz->idx = malloc(tz->ntrans ? tz->ntrans : 1);
    tz->type_off = malloc(sizeof(int32_t) * tz->ntypes);
    if (!tz->trans || !tz->idx || !tz->type_off)
        abort();
    const unsigned char *p = data + off;
    for (size_t i = 0; i < tz->ntrans; i++) {
        tz->trans[i] = be64(p + 8 * i);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1]) {
            snprintf(err, errlen, "zone %s: TZif transitions not ascending", name);
            goto fail;
        }
    }
    p += 8 * tz->ntrans;
    for (size_t i = 0; i < tz->ntrans; i++) {
        tz->idx[i] = p[i];
        if (p[i] >= typecnt) {
            snprintf(err, errlen, "zone %s: TZif transition type index out of range", name);
            goto fail;
        }
    }
    p += tz->ntrans;
    for (size_t i = 0; i < tz->ntypes; i++) {
        int32_t o = (int32_t)be32(p + 6 * i);
        if (o < -25 * 3600 || o > 26 * 3600) {
            snprintf(err, errlen, "zone %s: TZif UT offset %d out of range", name, o);
            goto fail;
        }
        tz->type_off[i] = o;
    }
    off += need;
    /* Footer: "\n" POSIX-TZ "\n" (may be empty). */
    if (off < len) {
        if (data[off] != '\n') {
            snprintf(err, errlen, "zone %s: malformed TZif footer", name);
            goto fail;
        }
        const unsigned char *nl = memchr(data + off + 1, '\n', len - off - 1);
        size_t flen = nl ? (size_t)(nl - (data + off + 1)) : 0;
        if (nl == NULL || flen >= 128) {
            snprintf(err, errlen, "zone %s: malformed TZif footer", name);
            goto fail;
        }
        if (flen > 0) {
            char fs[128];
            memcpy(fs, data + off + 1, flen);
            fs[flen] = '\0';
            if (pr_tz_posix_parse(fs, &tz->footer, perr, sizeof perr) != 0) {
                snprintf(err, errlen, "zone %s: %s", name, perr);
                goto fail;
            }
            tz->has_footer = true;
        }
    }
    *out = tz;
    return 0;
fail:
    pr_tz_free(tz);
    return -1;
}

int pr_tz_from_posix(const char *name, const char *posix, pr_tz_t **out, char *err, size_t errlen)
{
    pr_tz_t *tz = tz_new(name, err, errlen);
    if (tz == NULL)
        return -1;
    if (pr_tz_posix_parse(posix, &tz->footer, err, errlen) != 0) {
        pr_tz_free(tz);
        return -1;
    }
    tz->has_footer = true;
    *out = tz;
    return 0;
}

void pr_tz_free(pr_tz_t *tz)
{
    if (tz == NULL)
        return;
    free(tz->trans);
    free(tz->idx);
    free(tz->type_off);
    free(tz);
}

const char *pr_tz_name(const pr_tz_t *tz)
{
    return tz->name;
}

int32_t pr_tz_offset(const pr_tz_t *tz, int64_t t)
{
    if (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1]) {
        if (tz->has_footer)
            return pr_tz_posix_offset(&tz->footer, t);
        if (tz->ntrans == 0)
            return tz->type_off ? tz->type_off[0] : 0;
        return tz->type_off[tz->idx[tz->ntrans - 1]];
    }
    if (t < tz->trans[0])
        return tz->type_off[0];
    size_t lo = 0, hi = tz->ntrans - 1; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->type_off[tz->idx[lo]];
}

void pr_tz_local(const pr_tz_t *tz, int64_t t, pr_local_t *out)
{
    int32_t o = pr_tz_offset(tz, t);
    int64_t lt = t + o;
    out->utoff = o;
    out->days = pr_floor_div(lt, 86400);
    out->sod = (int32_t)(lt - out->days * 86400);
    out->wday = pr_weekday(out->days);
}
