/* gw_hedge: the hedge threshold of a request and the process-wide cap on
 * hedged attempts (see gw_hedge.h). */
#include "gw_hedge.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

int gw_hedge_threshold(const char *header, int model_after_ms, int64_t latency_target_ms,
                       int *after_ms, char *err, size_t errlen)
{
    *after_ms = 0;
    int want = model_after_ms;
    if (header) {
        char *end;
        long long v = strtoll(header, &end, 10);
        if (!*header || *end || v < 0 || v > GW_HEDGE_MAX_AFTER_MS || header[0] == '+' ||
            header[0] == ' ') {
            snprintf(err, errlen,
                     "Header %s must be an integer number of milliseconds from 0 (no hedge) to "
                     "%d, got '%.40s'.",
                     GW_HEDGE_HEADER, GW_HEDGE_MAX_AFTER_MS, header);
            return -1;
        }
        if (v < want) /* lowers the model's threshold or turns it off; never raises it */
            want = (int)v;
    }
    if (model_after_ms <= 0 || latency_target_ms <= 0)
        return 0;
    *after_ms = want;
    return 0;
}

static _Atomic int64_t window_minute = -1;
static _Atomic int window_taken;

bool gw_hedge_take(int max_per_minute, int64_t now_us)
{
    if (max_per_minute <= 0)
        return false;
    int64_t minute = now_us / 60000000;
    int64_t seen = atomic_load(&window_minute);
    if (seen != minute && atomic_compare_exchange_strong(&window_minute, &seen, minute))
        atomic_store(&window_taken, 0); /* a new minute: its budget is whole again */
    return atomic_fetch_add(&window_taken, 1) < max_per_minute;
}
