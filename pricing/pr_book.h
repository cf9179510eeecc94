/* pr_book: an immutable, indexed set of price cards, discount windows, holiday
 * calendars, zones and per-provider tier settings, built once (from SQL rows or
 * a test) and then read concurrently without locks by pr_book_find and
 * pr_price_usage. Instants are int64 unix MICROSECONDS (UTC), the resolution of
 * PostgreSQL timestamptz. Pure: no I/O except pr_book_load_zones (pr_book_load.c).
 *
 * Build: pr_book_new, then add_* in any order, then pr_book_finalize, which
 * validates everything (duplicate cards, unknown zones/calendars/cards, windows
 * with equal precedence that can overlap) and builds the index. A book that
 * failed to finalize stays unusable; free it. Reload = build a new book, swap. */
#ifndef PR_BOOK_H
#define PR_BOOK_H

#include "pr_currency.h"
#include "pr_money.h"
#include "pr_tz.h"

#include <stdbool.h>
#include <stdint.h>

#define PR_FOREVER INT64_MAX /* open end of a validity range */
#define PR_PROVIDER_MAX 64   /* provider name bytes incl. NUL */
#define PR_MODEL_MAX 128     /* model name bytes incl. NUL */
#define PR_WEEKDAYS_ALL 0x7f /* bit 0 = Monday .. bit 6 = Sunday */

typedef struct pr_book pr_book_t;

/* Which instant of a request decides its tier (card and window). */
typedef enum { PR_TIER_COMPLETION = 0, PR_TIER_START = 1 } pr_tier_t;

/* Prices in micro-units per 1M tokens. reasoning = -1 in a definition means
 * "same as output"; in a finalized card or window it is always resolved. */
typedef struct pr_prices {
    int64_t cache_hit, cache_miss, output, reasoning;
} pr_prices_t;

typedef struct pr_card_def {
    int64_t id; /* unique, > 0 (the database id) */
    const char *provider, *model, *currency;
    pr_prices_t prices;
    int64_t effective_from_us; /* in force from this instant until the next card */
} pr_card_def_t;

typedef struct pr_card {
    int64_t id;
    char provider[PR_PROVIDER_MAX], model[PR_MODEL_MAX];
    const pr_currency_t *currency;
    pr_prices_t prices;
    int64_t effective_from_us;
    int64_t effective_until_us; /* next card's effective_from, or PR_FOREVER */
} pr_card_t;

typedef enum {
    PR_WIN_ONCE = 0,   /* one-off range [valid_from, valid_until): promotions */
    PR_WIN_DAILY = 1,  /* every day [start_sec, end_sec) local time in `zone` */
    PR_WIN_HOLIDAY = 2 /* every date of calendar `calendar_id` (in its zone) */
} pr_window_kind_t;

typedef struct pr_window_def {
    int64_t id;      /* unique, > 0 */
    int64_t card_id; /* the card whose prices it replaces while it applies */
    pr_window_kind_t kind;
    int32_t precedence;                    /* higher wins when several windows match */
    int64_t valid_from_us, valid_until_us; /* [from, until); until may be PR_FOREVER */
    /* PR_WIN_DAILY: local seconds of day, start in [0,86400), end in (0,86400];
     * end <= start wraps past midnight. weekdays masks the day the occurrence
     * STARTS on (0 means all). calendar_id, if > 0, excludes occurrences that
     * start on its dates (the calendar must use the window's zone). */
    const char *zone;
    int32_t start_sec, end_sec;
    uint8_t weekdays;
    int64_t calendar_id; /* HOLIDAY: required; DAILY: optional exclusion; ONCE: 0 */
    /* Prices: explicit, or percent_off_bp (basis points, 0..10000) of the card's
     * prices, converted to explicit prices by pr_price_percent_off. */
    bool use_percent;
    int32_t percent_off_bp;
    pr_prices_t prices;
} pr_window_def_t;

typedef struct pr_window {
    int64_t id, card_id;
    pr_window_kind_t kind;
    int32_t precedence;
    int64_t valid_from_us, valid_until_us;
    const pr_tz_t *zone; /* DAILY: window zone; HOLIDAY: calendar zone */
    int32_t start_sec, end_sec;
    uint8_t weekdays;
    int64_t calendar_id;
    int32_t percent_off_bp; /* -1 when prices were explicit */
    pr_prices_t prices;     /* explicit, resolved */
    const struct pr_calendar *calendar;
    char zone_name[64];
} pr_window_t;

/* Token counts of one usage record, as the provider reported them; -1 = not
 * reported. completion INCLUDES reasoning (DeepSeek and OpenAI report it so). */
typedef struct pr_usage {
    int64_t prompt, cache_hit, cache_miss, completion, reasoning;
    bool complete; /* false: stream cut short / usage missing */
} pr_usage_t;

/* Flags on a charge: why it may be below the true charge. */
enum {
    PR_FLAG_REPORTED_INCOMPLETE = 1, /* caller said usage was incomplete */
    PR_FLAG_PROMPT_UNKNOWN = 2,      /* prompt tokens (or part) not reported */
    PR_FLAG_CACHE_SPLIT_UNKNOWN = 4, /* hit/miss split unknown: all priced as miss */
    PR_FLAG_COMPLETION_UNKNOWN = 8,  /* completion tokens not reported */
    PR_FLAG_REASONING_UNKNOWN = 16,  /* reasoning split unknown and priced differently */
};
#define PR_FLAGS_INCOMPLETE 0x1f

enum { PR_C_HIT = 0, PR_C_MISS, PR_C_OUTPUT, PR_C_REASONING, PR_C_COUNT };

/* The priced record: what applied and each component, exactly. */
typedef struct pr_charge {
    const pr_card_t *card;     /* points into the book: valid while it lives */
    const pr_window_t *window; /* NULL when no window applied */
    int64_t decided_at_us;     /* the instant that chose card and window */
    pr_prices_t prices;        /* prices applied (window's or card's) */
    int64_t tokens[PR_C_COUNT];
    pr_pico_t cost[PR_C_COUNT]; /* tokens × price, pico-units */
    pr_pico_t total;
    unsigned flags;
} pr_charge_t;

pr_book_t *pr_book_new(void);
/* Frees the book and the zones it owns. NULL is fine. */
void pr_book_free(pr_book_t *b);

/* Each add_* copies what it needs (strings too) and checks the fields it can
 * check alone; cross-checks happen in pr_book_finalize. Return 0, or -1 with a
 * message (nothing is added then). Not allowed after finalize. */
int pr_book_add_card(pr_book_t *b, const pr_card_def_t *def, char *err, size_t errlen);
int pr_book_add_window(pr_book_t *b, const pr_window_def_t *def, char *err, size_t errlen);
/* A holiday calendar: its dates are local dates in `zone`. */
int pr_book_add_calendar(pr_book_t *b, int64_t id, const char *zone, char *err, size_t errlen);
int pr_book_add_holiday(pr_book_t *b, int64_t calendar_id, int y, int m, int d, char *err,
                        size_t errlen);
/* Sets a provider's tier instant (default PR_TIER_COMPLETION). */
int pr_book_set_tier(pr_book_t *b, const char *provider, pr_tier_t tier, char *err, size_t errlen);
/* Gives the book a parsed zone; the book owns it from now on (also on error). */
int pr_book_add_zone(pr_book_t *b, pr_tz_t *tz, char *err, size_t errlen);
/* Name of a zone that windows or calendars use but that has not been added
 * (NULL when none): lets a loader fetch exactly the zones needed. */
const char *pr_book_zone_missing(const pr_book_t *b);
/* Loads every missing zone with pr_tz_load from tzdir (NULL: the system's).
 * The only function of the book that reads files. Returns 0, or -1. */
int pr_book_load_zones(pr_book_t *b, const char *tzdir, char *err, size_t errlen);

/* Validates and indexes. After success the book is read-only and safe to share
 * between threads. Returns 0, or -1 with the first problem found. */
int pr_book_finalize(pr_book_t *b, char *err, size_t errlen);

/* The card in force for provider/model at `at_us` and the window that applies
 * (highest precedence among those matching; *window NULL when none). Returns 0,
 * or -1 with a message (no card for that model, instant before the first card). */
int pr_book_find(const pr_book_t *b, const char *provider, const char *model, int64_t at_us,
                 const pr_card_t **card, const pr_window_t **window, char *err, size_t errlen);

/* The provider's tier instant setting. */
pr_tier_t pr_book_tier(const pr_book_t *b, const char *provider);

/* Prices one usage record. The tier instant (start_us or completion_us, by the
 * provider's setting) decides card and window; each token class is multiplied
 * exactly. Unknown counts are priced on what is known and flagged (see
 * PR_FLAG_*), never silently zero without a flag. Inconsistent counts (hit +
 * miss != prompt, reasoning > completion, negative, > PR_TOKENS_MAX) are
 * refused. Returns 0 and fills *out, or -1 with a message. */
int pr_price_usage(const pr_book_t *b, const char *provider, const char *model, int64_t start_us,
                   int64_t completion_us, const pr_usage_t *usage, pr_charge_t *out, char *err,
                   size_t errlen);

/* Converts a card's prices into a window's by a percentage (basis points),
 * each with pr_price_percent_off: what "saving a percent window" means. */
int pr_prices_percent_off(const pr_prices_t *card, int32_t bp, pr_prices_t *out, char *err,
                          size_t errlen);

/* Writes an instant (unix microseconds) as ISO 8601 UTC ("2025-02-08T16:00:00Z",
 * fractional seconds only when present). Returns buf. 40 bytes suffice. */
char *pr_instant_format(int64_t us, char *buf, size_t len);

/* Counts, for loaders and benchmarks. */
size_t pr_book_card_count(const pr_book_t *b);
size_t pr_book_window_count(const pr_book_t *b);

/* Whether window w matches instant at_us (validity, time of day, weekdays,
 * holidays). Exposed for tests and the benchmark's naive scan. */
bool pr_window_matches(const pr_window_t *w, int64_t at_us);

#endif
