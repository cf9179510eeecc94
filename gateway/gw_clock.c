/* gw_clock: wall-clock microseconds with an optional test offset. */
#include "gw_clock.h"

#include <stddef.h>
#include <sys/time.h>

static int64_t clock_offset_us;

static int64_t real_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

int64_t gw_clock_now_us(void)
{
    return real_now_us() + clock_offset_us;
}

void gw_clock_start_at(int64_t start_us)
{
    clock_offset_us = start_us - real_now_us();
}
