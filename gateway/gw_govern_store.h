/* gw_govern_store: governance data from PostgreSQL for the request path:
 * budgets and rate limits (migrations 0011, 0012) and, for each budget, the
 * spend of its current period according to the ledger (usage_events), which
 * is what Redis is rebuilt from when it lost its counters. A background thread
 * reloads everything every `refresh_ms` into an immutable snapshot; readers
 * take a reference and release it. */
#ifndef GW_GOVERN_STORE_H
#define GW_GOVERN_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "gw_govern_calc.h"

typedef enum {
    GW_SOFT_ALERT = 0, /* only the alert */
    GW_SOFT_DOWNGRADE, /* remap models by `downgrades` */
    GW_SOFT_CHEAPER,   /* cheapest route only */
    GW_SOFT_REFUSE,    /* refuse like the hard limit */
} gw_soft_policy_t;

typedef struct gw_gov_budget {
    int64_t id, team_id, key_id; /* key_id 0: the whole team */
    char currency[4];
    gw_period_t period;
    char zone[64];
    int64_t hard_micro, soft_micro; /* soft 0 = none */
    gw_soft_policy_t policy;
    char downgrades[512]; /* "from=to,from=to" */
    char webhook[512];    /* "" = none */
    /* the period in force when the snapshot was taken */
    char period_id[16];
    int64_t period_end_s;
    int64_t ledger_micro; /* ceil(sum of charge_pico in the period / 10^6) */
} gw_gov_budget_t;

typedef struct gw_gov_limit {
    int64_t team_id, key_id;      /* key_id 0: the whole team */
    int64_t rpm, tpm, concurrent; /* 0 = no limit */
} gw_gov_limit_t;

typedef struct gw_gov_snapshot {
    gw_gov_budget_t *budgets;
    int n_budgets;
    gw_gov_limit_t *limits;
    int n_limits;
    int64_t taken_at_us;
    int refs; /* guarded by the store's lock */
} gw_gov_snapshot_t;

typedef struct gw_govern_store gw_govern_store_t;

/* Starts the loader thread. NULL only on OOM / thread creation failure. */
gw_govern_store_t *gw_govern_store_start(const char *conninfo, int refresh_ms);

/* The current snapshot with a reference, or NULL before the first load. */
const gw_gov_snapshot_t *gw_govern_store_acquire(gw_govern_store_t *st);
void gw_govern_store_release(gw_govern_store_t *st, const gw_gov_snapshot_t *snap);

/* Stops the thread and frees (no reader may hold a snapshot). */
void gw_govern_store_stop(gw_govern_store_t *st);

/* The model a downgrade mapping ("a=b,c=d") sends `model` to, written to out;
 * false when it has no entry for it. */
bool gw_gov_downgrade_lookup(const char *mapping, const char *model, char *out, size_t outlen);

#endif
