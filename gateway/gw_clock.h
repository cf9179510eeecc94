/* gw_clock: the gateway's one clock for instants that matter to money
 * (received, first byte, completed: the price tier is decided by them).
 * Tests can shift it to a chosen instant (config `test_clock`, refused unless
 * the environment says TOLLGATE_TEST_CLOCK=1) to exercise price windows end to
 * end; production never sets it. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

/* Unix microseconds now, shifted by the test offset (0 in production). */
int64_t gw_clock_now_us(void);

/* Makes "now" equal to start_us at this moment; time then runs normally.
 * Call once at start, before threads exist. */
void gw_clock_start_at(int64_t start_us);

#endif
