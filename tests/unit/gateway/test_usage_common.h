/* Helpers shared by the usage writer tests: a team and key to charge, and
 * records with predictable contents. */
#ifndef TEST_USAGE_COMMON_H
#define TEST_USAGE_COMMON_H

#include "gw_usage.h"
#include "tg_testdb.h"

#include <stdlib.h>
#include <string.h>

/* Starts a writer with o, or exits 1 saying why (the test cannot go on). */
static inline gw_usage_writer_t *usage_writer_or_exit(const gw_usage_writer_opts_t *o)
{
    char err[512];
    gw_usage_writer_t *w = gw_usage_writer_start2(o, err, sizeof err);
    if (!w) {
        fprintf(stderr, "test: writer did not start: %s\n", err);
        exit(1);
    }
    return w;
}

/* Creates team "acme" and one key with tollgatectl; returns their ids. */
static inline void usage_fixture(PGconn *c, int64_t *team_id, int64_t *key_id)
{
    char out[4096], err[4096];
    if (tdb_ctl(out, sizeof out, err, sizeof err, "team create acme") != 0 ||
        tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme") != 0) {
        fprintf(stderr, "test: fixture failed: %s\n", err);
        exit(1);
    }
    char *v = tdb_value(c, "SELECT team_id || ' ' || id FROM api_keys", 0, NULL);
    long long t = 0, k = 0;
    if (!v || sscanf(v, "%lld %lld", &t, &k) != 2)
        exit(1);
    free(v);
    *team_id = t;
    *key_id = k;
}

static inline gw_usage_record_t usage_record(const char *prefix, int i, int64_t team_id,
                                             int64_t key_id)
{
    gw_usage_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.request_id, sizeof r.request_id, "%s-%06d", prefix, i);
    r.team_id = team_id;
    r.key_id = key_id;
    snprintf(r.model_requested, sizeof r.model_requested, "deepseek-chat");
    snprintf(r.provider, sizeof r.provider, "sim");
    snprintf(r.upstream_model, sizeof r.upstream_model, "deepseek-v3");
    snprintf(r.endpoint, sizeof r.endpoint, "chat.completions");
    r.attempts = 1 + i % 2;
    r.streamed = i % 2;
    r.http_status = 200;
    r.received_at_us = 1800000000000000LL + i * 1000 + 1; /* exact microseconds */
    r.first_byte_at_us = r.received_at_us + 150000;
    r.completed_at_us = r.received_at_us + 900123;
    r.prompt_tokens = 1000 + i;
    r.cache_hit_tokens = 640;
    r.cache_miss_tokens = 360 + i;
    r.completion_tokens = 50 + i;
    r.reasoning_tokens = 0;
    r.usage_complete = true;
    return r;
}

/* Waits until the writer has nothing pending; false after timeout_ms. */
static inline bool usage_wait_drained(gw_usage_writer_t *w, int timeout_ms)
{
    int64_t end = tdb_mono_ms() + timeout_ms;
    while (gw_usage_writer_pending(w) > 0) {
        if (tdb_mono_ms() > end)
            return false;
        tdb_sleep_ms(10);
    }
    return true;
}

static inline long usage_count(PGconn *c, const char *like)
{
    const char *p[] = {like};
    char *v = tdb_value(c, "SELECT count(*) FROM usage_events WHERE request_id LIKE $1", 1, p);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

#endif
