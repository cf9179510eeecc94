/* pr_book_internal: the book's private layout, shared by pr_book.c (building,
 * validation), pr_window.c (matching, overlap) and pr_price.c (lookup). */
#ifndef PR_BOOK_INTERNAL_H
#define PR_BOOK_INTERNAL_H

#include "pr_book.h"

typedef struct pr_calendar {
    int64_t id;
    char zone_name[64];
    const pr_tz_t *zone;
    int64_t *dates; /* local day numbers, sorted and unique after finalize */
    size_t n, cap;
} pr_calendar_t;

typedef struct pr_group {
    uint64_t hash;
    uint32_t first, count; /* cards[first .. first+count), by effective_from */
    pr_tier_t tier;
} pr_group_t;

typedef struct pr_tier_setting {
    char provider[PR_PROVIDER_MAX];
    pr_tier_t tier;
} pr_tier_setting_t;

struct pr_book {
    bool finalized; /* no more adds (set by finalize, even when it fails) */
    bool ready;     /* finalize succeeded: lookups allowed */
    pr_card_t *cards;
    size_t ncards, capc;
    pr_window_t *wins;
    size_t nwins, capw;
    int32_t *win_bp; /* percent of each window def, -1 = explicit (parallel to wins) */
    pr_calendar_t *cals;
    size_t ncals, capcal;
    pr_tz_t **zones;
    size_t nzones, capz;
    pr_tier_setting_t *tiers;
    size_t ntiers, capt;
    /* index, built by finalize */
    pr_group_t *groups;
    size_t ngroups;
    uint32_t *slots;                 /* open addressing: group index + 1, 0 = empty */
    size_t nslots;                   /* power of two */
    uint32_t *win_first, *win_count; /* per card: its windows in wins[] */
};

uint64_t pr_key_hash(const char *provider, const char *model);
bool pr_calendar_has(const pr_calendar_t *c, int64_t day);
/* Whether two windows of one card with equal precedence can both match at some
 * instant inside [lo, hi). Conservative: true unless proven disjoint. */
bool pr_windows_may_overlap(const pr_window_t *a, const pr_window_t *b, int64_t lo, int64_t hi);

#endif
