/* rt_explain: the compact JSON of a routing decision kept on each usage row
 * (route_explain, at most 512 bytes), and the parsers of the request headers
 * that state a request's needs. */
#include "rt_route.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
    char *buf;
    size_t len, used;
    bool full;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= o->len - o->used) {
        o->full = true;
        o->buf[o->used] = '\0';
        return;
    }
    o->used += (size_t)w;
}

/* A JSON string of s: quotes, backslashes and control bytes escaped. */
static void put_str(out_t *o, const char *s)
{
    char tmp[160];
    size_t k = 0;
    tmp[k++] = '"';
    for (; s && *s && k < sizeof tmp - 8; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)ch;
        } else if (ch < 0x20) {
            k += (size_t)snprintf(tmp + k, sizeof tmp - k, "\\u%04x", ch);
        } else {
            tmp[k++] = (char)ch;
        }
    }
    tmp[k++] = '"';
    tmp[k] = '\0';
    put(o, "%s", tmp);
}

static void put_candidate(out_t *o, const rt_eval_t *e)
{
    put(o, "{\"p\":");
    put_str(o, e->provider);
    if (e->cost_known) {
        char amount[64];
        pr_pico_format(e->cost, e->minor, amount, sizeof amount);
        put(o, ",\"cost\":\"%s %s\"", amount, e->currency);
        if (e->window_id)
            put(o, ",\"win\":%lld", (long long)e->window_id);
    }
    double ms = e->latency_ms;
    put(o, ",\"ms\":%.0f", isfinite(ms) && ms >= 0 && ms < 1e12 ? ms : -1.0); /* always JSON */
    if (e->dropped)
        put(o, ",\"drop\":\"%s\"", e->dropped);
    put(o, "}");
}

void rt_explain_compact(const rt_decision_t *d, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    out_t o = {buf, len, 0, false};
    put(&o, "{\"policy\":\"%s\"", rt_policy_name(d->policy));
    if (d->chosen >= 0) {
        put(&o, ",\"chosen\":");
        put_str(&o, d->evals[d->chosen].provider);
    }
    if (d->runner_up >= 0) {
        put(&o, ",\"runner_up\":");
        put_str(&o, d->evals[d->runner_up].provider);
    }
    if (d->why)
        put(&o, ",\"why\":\"%s\"", d->why);
    if (d->n == 0)
        put(&o, ",\"error\":\"%s\"", d->code);
    /* the needs and where each came from (request header, key or model default) */
    if (d->latency_target_ms || d->has_max_cost || d->preference_from) {
        const char *sep = "";
        put(&o, ",\"need\":{");
        if (d->latency_target_ms) {
            put(&o, "\"lat\":%lld,\"lat_by\":\"%s\"", (long long)d->latency_target_ms,
                rt_need_from_name(d->latency_from));
            sep = ",";
        }
        if (d->has_max_cost) {
            char amount[64];
            pr_pico_format(d->max_cost, 0, amount, sizeof amount);
            put(&o, "%s\"cost\":\"%s\",\"cost_by\":\"%s\"", sep, amount,
                rt_need_from_name(d->cost_from));
            sep = ",";
        }
        if (d->preference_from)
            put(&o, "%s\"pref_by\":\"%s\"", sep, rt_need_from_name(d->preference_from));
        put(&o, "}");
    }
    put(&o, ",\"c\":[");
    if (o.full) { /* even the frame does not fit: an empty object is still JSON */
        snprintf(buf, len, "%s", len >= 3 ? "{}" : "");
        return;
    }
    size_t keep = o.used;
    int written = 0;
    for (int i = 0; i < d->n_evals; i++) {
        char one[256];
        out_t c = {one, sizeof one, 0, false};
        put_candidate(&c, &d->evals[i]);
        /* room for this one, the comma, and the closing "],\"more\":N}" */
        if (c.full || o.used + c.used + 1 + 16 >= len)
            break;
        put(&o, "%s%s", written ? "," : "", one);
        keep = o.used;
        written++;
    }
    o.used = keep;
    o.buf[o.used] = '\0';
    o.full = false;
    if (written < d->n_evals)
        put(&o, "],\"more\":%d}", d->n_evals - written);
    else
        put(&o, "]}");
    if (o.full)
        snprintf(buf, len, "%s", len >= 3 ? "{}" : "");
}

int rt_parse_latency_ms(const char *s, int64_t *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s < '0' || *s > '9') {
        snprintf(err, errlen, "must be a positive integer of milliseconds");
        return -1;
    }
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v <= 0 || v > 3600000) {
        snprintf(err, errlen, "must be a positive integer of milliseconds, at most 3600000; got '%.40s'", s);
        return -1;
    }
    *out = v;
    return 0;
}

int rt_parse_cost(const char *s, pr_pico_t *out, char *err, size_t errlen)
{
    pr_pico_t v = 0;
    int digits = 0, decimals = -1;
    const char *p = s ? s : "";
    for (; *p; p++) {
        if (*p == '.' && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (*p < '0' || *p > '9' || digits >= 24)
            break;
        if (decimals >= 0 && ++decimals > 12)
            break;
        v = v * 10 + (*p - '0');
        digits++;
    }
    if (*p || digits == 0) {
        snprintf(err, errlen,
                 "must be a non-negative decimal amount with at most 12 decimals, e.g. 0.002; "
                 "got '%.40s'",
                 s ? s : "");
        return -1;
    }
    for (int k = decimals < 0 ? 0 : decimals; k < 12; k++)
        v *= 10;
    *out = v;
    return 0;
}

int rt_parse_preference(const char *s, rt_policy_t *out, char *err, size_t errlen)
{
    if (s && (!strcmp(s, "cheapest") || !strcmp(s, "fastest") || !strcmp(s, "balanced"))) {
        rt_policy_parse(s, out);
        return 0;
    }
    snprintf(err, errlen, "must be cheapest, fastest or balanced; got '%.40s'", s ? s : "");
    return -1;
}

int rt_parse_providers(const char *s, char *err, size_t errlen)
{
    size_t total = s ? strlen(s) : 0;
    if (total == 0 || total > RT_PROVIDER_LIST_MAX) {
        snprintf(err, errlen,
                 "must be 1 to %d characters of comma-separated provider names; got %zu",
                 RT_PROVIDER_LIST_MAX, total);
        return -1;
    }
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len > 63) {
            snprintf(err, errlen,
                     "must be comma-separated provider names of 1 to 63 characters (no empty "
                     "entries); got '%.80s'",
                     s);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("._:/@+-", c))) {
                snprintf(err, errlen,
                         "must be comma-separated provider names of letters, digits and ._:/@+- "
                         "(no spaces); got '%.80s'",
                         s);
                return -1;
            }
        }
        /* the same name earlier in the list: a typo more often than not */
        for (const char *q = s; q < p;) {
            const char *qc = strchr(q, ',');
            if ((size_t)(qc - q) == len && !memcmp(q, p, len)) {
                snprintf(err, errlen, "names provider '%.*s' twice", (int)len, p);
                return -1;
            }
            q = qc + 1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}
