/* gw_respcache_store: the response cache's per-worker Redis connection and
 * its two scripts (see gw_respcache_store.h). The connection is separate from
 * governance's so that its timeout can be short: a slow cache costs at most
 * response_cache_timeout_ms, then the request goes on to a provider. */
#include "gw_respcache_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "gw_metrics.h"
#include "gw_redis.h"
#include "gw_server.h"
#include "tg_log.h"

#define RCS_MAX_WORKERS 256
#define RCS_POLL_MS 2 /* while waiting for the first connect */

/* ARGV[1] = key. The entry, or false (nil) when absent. */
static const char lua_get[] = "return redis.call('GET', ARGV[1])\n";
/* ARGV[1] = key, ARGV[2] = entry, ARGV[3] = TTL in seconds. */
static const char lua_set[] = "redis.call('SET', ARGV[1], ARGV[2], 'EX', tonumber(ARGV[3]))\n"
                              "return 1\n";
static const char *const rcs_scripts[] = {lua_get, lua_set};
enum { RCS_GET = 0, RCS_SET = 1 };

typedef struct rcs_worker {
    gw_redis_t *redis;
    int64_t created_us;
    int timeout_ms;
} rcs_worker_t;

static rcs_worker_t *rcs_workers[RCS_MAX_WORKERS]; /* slot i: worker i's thread only */

struct gw_rcs_ticket {
    rcs_worker_t *rw;
    gw_redis_ticket_t *rt; /* the GET in flight */
    struct event *poll;    /* waiting for the first connect */
    int64_t deadline_us;
    char *rkey;
    gw_rcs_get_cb cb;
    void *arg;
};

static int64_t mono_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* The calling worker's connection, made at its first use; NULL when the
 * configuration has no usable Redis URL (logged once). */
static rcs_worker_t *rcs_worker(gw_worker_t *w)
{
    if (w->index < 0 || w->index >= RCS_MAX_WORKERS)
        return NULL;
    rcs_worker_t *rw = rcs_workers[w->index];
    if (rw)
        return rw->redis ? rw : NULL;
    rw = calloc(1, sizeof *rw);
    if (!rw)
        abort();
    const gw_config_t *cfg = w->server->cfg;
    rw->created_us = mono_us();
    rw->timeout_ms = cfg->respcache.timeout_ms;
    char err[256];
    rw->redis = gw_redis_new(w->base, cfg->redis, cfg->respcache.timeout_ms, rcs_scripts, 2, err,
                             sizeof err);
    if (!rw->redis)
        tg_error("response cache: %s; the cache is bypassed", err);
    rcs_workers[w->index] = rw;
    return rw->redis ? rw : NULL;
}

static void ticket_free(gw_rcs_ticket_t *t)
{
    if (t->poll)
        event_free(t->poll);
    free(t->rkey);
    free(t);
}

static void on_get_reply(redisReply *reply, void *arg)
{
    gw_rcs_ticket_t *t = arg;
    gw_rcs_get_cb cb = t->cb;
    void *cbarg = t->arg;
    ticket_free(t);
    if (!reply)
        cb(GW_RCS_UNAVAILABLE, NULL, 0, cbarg);
    else if (reply->type == REDIS_REPLY_STRING)
        cb(GW_RCS_FOUND, reply->str, (size_t)reply->len, cbarg);
    else if (reply->type == REDIS_REPLY_NIL)
        cb(GW_RCS_ABSENT, NULL, 0, cbarg);
    else
        cb(GW_RCS_UNAVAILABLE, NULL, 0, cbarg); /* not what the script returns: treat as down */
}

static bool send_get(gw_rcs_ticket_t *t)
{
    const char *argv[] = {t->rkey};
    t->rt = gw_redis_eval(t->rw->redis, RCS_GET, 1, argv, NULL, on_get_reply, t);
    return t->rt != NULL;
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_rcs_ticket_t *t = arg;
    if (gw_redis_connected(t->rw->redis) && send_get(t))
        return;
    if (mono_us() < t->deadline_us) {
        struct timeval tv = {0, RCS_POLL_MS * 1000};
        evtimer_add(t->poll, &tv);
        return;
    }
    gw_rcs_get_cb cb = t->cb;
    void *cbarg = t->arg;
    ticket_free(t);
    cb(GW_RCS_UNAVAILABLE, NULL, 0, cbarg);
}

gw_rcs_ticket_t *gw_rcs_get(gw_worker_t *w, const char *rkey, gw_rcs_get_cb cb, void *arg)
{
    rcs_worker_t *rw = rcs_worker(w);
    if (!rw)
        return NULL;
    gw_rcs_ticket_t *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->rw = rw;
    t->cb = cb;
    t->arg = arg;
    t->rkey = strdup(rkey);
    if (!t->rkey)
        abort();
    if (gw_redis_connected(rw->redis)) {
        if (send_get(t))
            return t;
        ticket_free(t);
        return NULL;
    }
    /* just made: wait for the first connect, at most the timeout */
    int64_t now = mono_us();
    if (now - rw->created_us > (int64_t)rw->timeout_ms * 1000) {
        ticket_free(t);
        return NULL;
    }
    t->deadline_us = rw->created_us + (int64_t)rw->timeout_ms * 1000;
    t->poll = evtimer_new(w->base, on_poll, t);
    if (!t->poll)
        abort();
    struct timeval tv = {0, RCS_POLL_MS * 1000};
    evtimer_add(t->poll, &tv);
    return t;
}

void gw_rcs_cancel(gw_rcs_ticket_t *t)
{
    if (!t)
        return;
    if (t->rt)
        gw_redis_cancel(t->rt); /* gw_redis frees its ticket; ours is not reached again */
    ticket_free(t);
}

static void on_set_reply(redisReply *reply, void *arg)
{
    (void)arg;
    gw_metrics_respcache(reply ? GW_M_RC_STORE : GW_M_RC_BYPASS);
}

bool gw_rcs_set(gw_worker_t *w, const char *rkey, const char *data, size_t len, int ttl_s)
{
    rcs_worker_t *rw = rcs_worker(w);
    if (!rw || !gw_redis_connected(rw->redis))
        return false;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {rkey, data, ttl};
    size_t lens[] = {strlen(rkey), len, strlen(ttl)};
    return gw_redis_eval(rw->redis, RCS_SET, 3, argv, lens, on_set_reply, NULL) != NULL;
}
