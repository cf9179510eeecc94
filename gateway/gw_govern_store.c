/* gw_govern_store: loads budgets, rate limits and each budget's ledger spend
 * from PostgreSQL into immutable snapshots (see gw_govern_store.h). Blocking
 * libpq on a thread of its own; PostgreSQL down = the last snapshot stays
 * (logged), with back-off between reconnects. */
#include "gw_govern_store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "gw_govern_admin.h"
#include "gw_pgconn.h"
#include "tg_log.h"

#define MAX_ZONES 64

struct gw_govern_store {
    char *conninfo;
    int refresh_ms;
    pthread_t thread;
    pthread_mutex_t lock; /* guards current and every snapshot's refs */
    gw_gov_snapshot_t *current;
    _Atomic bool stopping;
    pr_tz_t *zones[MAX_ZONES]; /* loader thread only */
    int n_zones;
};

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void snapshot_free(gw_gov_snapshot_t *s)
{
    if (!s)
        return;
    free(s->budgets);
    free(s->limits);
    free(s);
}

bool gw_gov_downgrade_lookup(const char *mapping, const char *model, char *out, size_t outlen)
{
    size_t ml = strlen(model);
    const char *p = mapping;
    while (p && *p) {
        const char *eq = strchr(p, '=');
        if (!eq)
            return false;
        const char *end = strchr(eq, ',');
        size_t tl = end ? (size_t)(end - eq - 1) : strlen(eq + 1);
        if ((size_t)(eq - p) == ml && !strncmp(p, model, ml) && tl > 0 && tl < outlen) {
            memcpy(out, eq + 1, tl);
            out[tl] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

static const pr_tz_t *zone_get(gw_govern_store_t *st, const char *name)
{
    for (int i = 0; i < st->n_zones; i++)
        if (!strcmp(pr_tz_name(st->zones[i]), name))
            return st->zones[i];
    if (st->n_zones == MAX_ZONES)
        return NULL;
    pr_tz_t *tz;
    char err[256];
    if (pr_tz_load(name, NULL, &tz, err, sizeof err) < 0) {
        tg_warn("governance: budget zone %s: %s", name, err);
        return NULL;
    }
    st->zones[st->n_zones++] = tz;
    return tz;
}

static int64_t field_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Loads one snapshot. Returns it, or NULL with err set (connection problem or
 * bad data). */
static gw_gov_snapshot_t *load(gw_govern_store_t *st, PGconn *conn, char *err, size_t errlen)
{
    gw_gov_snapshot_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->taken_at_us = now_us();
    PGresult *r = PQexec(conn, "SELECT id, team_id, key_id, currency, period, zone, hard_micro, "
                               "soft_micro, soft_policy, downgrades, webhook_url FROM budgets "
                               "ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        gw_pg_message(conn, r, err, errlen);
        PQclear(r);
        snapshot_free(s);
        return NULL;
    }
    int n = PQntuples(r);
    s->budgets = calloc((size_t)n + 1, sizeof *s->budgets);
    if (!s->budgets)
        abort();
    for (int i = 0; i < n; i++) {
        gw_gov_budget_t *b = &s->budgets[s->n_budgets];
        b->id = field_i64(r, i, 0);
        b->team_id = field_i64(r, i, 1);
        b->key_id = field_i64(r, i, 2);
        snprintf(b->currency, sizeof b->currency, "%s", PQgetvalue(r, i, 3));
        if (gw_period_parse(PQgetvalue(r, i, 4), &b->period) < 0)
            continue;
        snprintf(b->zone, sizeof b->zone, "%s", PQgetvalue(r, i, 5));
        b->hard_micro = field_i64(r, i, 6);
        b->soft_micro = field_i64(r, i, 7);
        const char *pol = PQgetvalue(r, i, 8);
        b->policy = !strcmp(pol, "downgrade") ? GW_SOFT_DOWNGRADE
                    : !strcmp(pol, "cheaper") ? GW_SOFT_CHEAPER
                    : !strcmp(pol, "refuse")  ? GW_SOFT_REFUSE
                                              : GW_SOFT_ALERT;
        snprintf(b->downgrades, sizeof b->downgrades, "%s", PQgetvalue(r, i, 9));
        snprintf(b->webhook, sizeof b->webhook, "%s", PQgetvalue(r, i, 10));
        const pr_tz_t *tz = zone_get(st, b->zone);
        if (!tz) {
            tg_error("governance: budget %lld has an unknown zone '%s': requests of its team are "
                     "refused until it is fixed",
                     (long long)b->id, b->zone);
            b->hard_micro = 0; /* fail safe: nothing fits */
            b->period = GW_PERIOD_TOTAL;
        }
        int64_t start_s = INT64_MIN, end_s = INT64_MAX;
        if (tz)
            gw_period_bounds(tz, b->period, s->taken_at_us / 1000000, &start_s, &end_s,
                             b->period_id, sizeof b->period_id);
        else
            snprintf(b->period_id, sizeof b->period_id, "total");
        b->period_end_s = end_s;
        s->n_budgets++;
    }
    PQclear(r);
    /* the ledger's spend of each budget's current period */
    for (int i = 0; i < s->n_budgets; i++) {
        gw_gov_budget_t *b = &s->budgets[i];
        int64_t start_s = INT64_MIN, end_s = b->period_end_s;
        if (b->period != GW_PERIOD_TOTAL) {
            const pr_tz_t *tz = zone_get(st, b->zone);
            char id[16];
            if (tz)
                gw_period_bounds(tz, b->period, s->taken_at_us / 1000000, &start_s, &end_s, id,
                                 sizeof id);
        }
        if (gw_gov_ledger_micro(conn, b->team_id, b->key_id, b->currency, start_s, end_s,
                                &b->ledger_micro, err, errlen) != GW_PA_OK) {
            snapshot_free(s);
            return NULL;
        }
    }
    r = PQexec(conn, "SELECT team_id, key_id, requests_per_minute, tokens_per_minute, concurrent "
                     "FROM rate_limits ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        gw_pg_message(conn, r, err, errlen);
        PQclear(r);
        snapshot_free(s);
        return NULL;
    }
    n = PQntuples(r);
    s->limits = calloc((size_t)n + 1, sizeof *s->limits);
    if (!s->limits)
        abort();
    for (int i = 0; i < n; i++) {
        gw_gov_limit_t *l = &s->limits[s->n_limits++];
        l->team_id = field_i64(r, i, 0);
        l->key_id = field_i64(r, i, 1);
        l->rpm = field_i64(r, i, 2);
        l->tpm = field_i64(r, i, 3);
        l->concurrent = field_i64(r, i, 4);
    }
    PQclear(r);
    return s;
}

static void swap(gw_govern_store_t *st, gw_gov_snapshot_t *s)
{
    pthread_mutex_lock(&st->lock);
    gw_gov_snapshot_t *old = st->current;
    st->current = s;
    bool free_old = old && old->refs == 0;
    if (old)
        old->refs = -1 - old->refs; /* retired: negative, freed by the last release */
    pthread_mutex_unlock(&st->lock);
    if (free_old)
        snapshot_free(old);
}

static void sleep_ms(gw_govern_store_t *st, int ms)
{
    while (ms > 0 && !atomic_load(&st->stopping)) {
        int step = ms > 50 ? 50 : ms;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void *store_thread(void *arg)
{
    gw_govern_store_t *st = arg;
    int backoff = 0;
    char err[1024];
    while (!atomic_load(&st->stopping)) {
        PGconn *conn = gw_pg_connect(st->conninfo, 5, err, sizeof err);
        if (conn) {
            bool first = true;
            while (!atomic_load(&st->stopping)) {
                gw_gov_snapshot_t *s = load(st, conn, err, sizeof err);
                if (!s)
                    break;
                swap(st, s);
                if (first)
                    tg_info("governance: loaded %d budget(s) and %d rate limit(s)", s->n_budgets,
                            s->n_limits);
                first = false;
                backoff = 0;
                sleep_ms(st, st->refresh_ms);
            }
            PQfinish(conn);
            if (atomic_load(&st->stopping))
                break;
        }
        backoff = gw_pg_backoff_next(backoff, 100, 5000);
        tg_warn("governance: %s; keeping the last budgets and limits; retrying in %d ms", err,
                backoff);
        sleep_ms(st, backoff);
    }
    return NULL;
}

gw_govern_store_t *gw_govern_store_start(const char *conninfo, int refresh_ms)
{
    gw_govern_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->conninfo = strdup(conninfo ? conninfo : "");
    st->refresh_ms = refresh_ms;
    if (!st->conninfo || pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st->conninfo);
        free(st);
        return NULL;
    }
    atomic_init(&st->stopping, false);
    if (pthread_create(&st->thread, NULL, store_thread, st) != 0) {
        pthread_mutex_destroy(&st->lock);
        free(st->conninfo);
        free(st);
        return NULL;
    }
    return st;
}

const gw_gov_snapshot_t *gw_govern_store_acquire(gw_govern_store_t *st)
{
    pthread_mutex_lock(&st->lock);
    gw_gov_snapshot_t *s = st->current;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&st->lock);
    return s;
}

void gw_govern_store_release(gw_govern_store_t *st, const gw_gov_snapshot_t *snap)
{
    if (!snap)
        return;
    gw_gov_snapshot_t *s = (gw_gov_snapshot_t *)snap;
    bool free_it = false;
    pthread_mutex_lock(&st->lock);
    if (s->refs > 0) {
        s->refs--;
    } else { /* retired: refs = -1 - readers */
        s->refs++;
        free_it = s->refs == -1;
    }
    pthread_mutex_unlock(&st->lock);
    if (free_it)
        snapshot_free(s);
}

void gw_govern_store_stop(gw_govern_store_t *st)
{
    if (!st)
        return;
    atomic_store(&st->stopping, true);
    pthread_join(st->thread, NULL);
    snapshot_free(st->current);
    for (int i = 0; i < st->n_zones; i++)
        pr_tz_free(st->zones[i]);
    pthread_mutex_destroy(&st->lock);
    free(st->conninfo);
    free(st);
}
