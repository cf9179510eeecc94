/* gw_redis: an asynchronous Redis connection on one event loop (see gw_redis.h).
 * hiredis 0.14 traps handled here: it has no connect timeout (our own timer
 * frees a context that does not connect in time); a context is never freed
 * from inside one of its own callbacks (only from timers and gw_redis_free);
 * replies are only read inside their callback. */
#include "gw_redis.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_log.h"

#define GW_REDIS_MAX_SCRIPTS 8
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct gw_redis {
    struct event_base *base;
    char host[256];
    int port, db;
    int timeout_ms;
    const char *scripts[GW_REDIS_MAX_SCRIPTS];
    char sha[GW_REDIS_MAX_SCRIPTS][41];
    int n_scripts;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool connected;
    bool was_up; /* for logging state changes only */
    int backoff_ms;
    struct event *connect_timer;   /* connect timeout */
    struct event *reconnect_timer; /* back-off before the next try */
};

struct gw_redis_ticket {
    gw_redis_t *r;
    gw_redis_cb cb;
    void *arg;
    bool done; /* cb ran, or the caller cancelled: cb must not run (again) */
    bool retried;
    struct event *timer;
    int script, argc; /* kept for the NOSCRIPT fallback */
    char **argv; /* into blob */
    size_t *lens;
    char *blob;  /* the arguments' bytes, one allocation */
};

static void redis_connect(gw_redis_t *r);
static void schedule_reconnect(gw_redis_t *r);

int gw_redis_url_parse(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                       size_t errlen)
{
    if (!url || strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis URL must start with redis://");
        return -1;
    }
    const char *h = url + 8;
    const char *colon = strchr(h, ':');
    const char *slash = strchr(h, '/');
    if (!colon || (slash && slash < colon) || colon == h || (size_t)(colon - h) >= hostlen) {
        snprintf(err, errlen, "redis URL must be redis://HOST:PORT[/DB], got '%s'", url);
        return -1;
    }
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || p < 1 || p > 65535 || (*end && *end != '/')) {
        snprintf(err, errlen, "redis URL has a bad port: '%s'", url);
        return -1;
    }
    *port = (int)p;
    *db = 0;
    if (*end == '/' && end[1]) {
        char *e2;
        long d = strtol(end + 1, &e2, 10);
        if (*e2 || d < 0 || d > 1000) {
            snprintf(err, errlen, "redis URL has a bad database number: '%s'", url);
            return -1;
        }
        *db = (int)d;
    }
    return 0;
}

static void sha1_hex(const char *text, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) || n != 20)
        abort(); /* OpenSSL cannot hash: nothing sensible to do */
    for (unsigned i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void ticket_free(gw_redis_ticket_t *t)
{
    if (t->timer)
        event_free(t->timer);
    free(t->blob);
    free(t->argv);
    free(t->lens);
    free(t);
}

/* Drops the current context (not from a hiredis callback): pending commands
 * get their callbacks with NULL, then a reconnect is scheduled. */
static void redis_drop(gw_redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    if (r->was_up)
        tg_warn("redis %s:%d: %s; reconnecting", r->host, r->port, why);
    r->was_up = false;
    r->ac = NULL; /* on_disconnect ignores contexts we drop ourselves */
    r->connected = false;
    redisAsyncFree(ac);
    schedule_reconnect(r);
}

static void schedule_reconnect(gw_redis_t *r)
{
    struct timeval tv = {r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000};
    evtimer_add(r->reconnect_timer, &tv);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* hiredis: the connect finished (or failed; hiredis then frees the context
 * itself after we return). */
static void on_connect(const redisAsyncContext *ac, int status)
{
    gw_redis_t *r = ac->data;
    if (!r || ac != r->ac)
        return;
    evtimer_del(r->connect_timer);
    if (status != REDIS_OK) {
        if (r->was_up || r->backoff_ms == BACKOFF_MIN_MS)
            tg_warn("redis %s:%d: cannot connect: %s", r->host, r->port, ac->errstr);
        r->was_up = false;
        r->ac = NULL;
        r->connected = false;
        schedule_reconnect(r);
        return;
    }
    r->connected = true;
    r->was_up = true;
    r->backoff_ms = BACKOFF_MIN_MS;
    tg_info("redis %s:%d: connected", r->host, r->port);
    redisAsyncContext *c = (redisAsyncContext *)ac;
    if (r->db)
        redisAsyncCommand(c, NULL, NULL, "SELECT %d", r->db);
    for (int i = 0; i < r->n_scripts; i++)
        redisAsyncCommand(c, NULL, NULL, "SCRIPT LOAD %s", r->scripts[i]);
}

/* hiredis: the connection went away (error) or we freed it. */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    gw_redis_t *r = ac->data;
    if (!r || ac != r->ac)
        return; /* dropped by us: already handled */
    tg_warn("redis %s:%d: connection lost: %s", r->host, r->port,
            status == REDIS_OK ? "closed" : ac->errstr);
    r->was_up = false;
    r->ac = NULL;
    r->connected = false;
    schedule_reconnect(r);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_redis_t *r = arg;
    if (r->ac && !r->connected) {
        if (r->was_up || r->backoff_ms == BACKOFF_MIN_MS)
            tg_warn("redis %s:%d: connect timed out after %d ms", r->host, r->port, r->timeout_ms);
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
        schedule_reconnect(r);
    }
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_connect(arg);
}

static void redis_connect(gw_redis_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        tg_error("redis: out of memory creating a context");
        schedule_reconnect(r);
        return;
    }
    if (ac->err) {
        tg_warn("redis %s:%d: cannot connect: %s", r->host, r->port, ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->connected = false;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    evtimer_add(r->connect_timer, &tv);
}

gw_redis_t *gw_redis_new(struct event_base *base, const char *url, int timeout_ms,
                         const char *const *scripts, int n_scripts, char *err, size_t errlen)
{
    if (n_scripts > GW_REDIS_MAX_SCRIPTS) {
        snprintf(err, errlen, "too many scripts");
        return NULL;
    }
    gw_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    if (gw_redis_url_parse(url, r->host, sizeof r->host, &r->port, &r->db, err, errlen) < 0) {
        free(r);
        return NULL;
    }
    r->base = base;
    r->timeout_ms = timeout_ms;
    r->n_scripts = n_scripts;
    for (int i = 0; i < n_scripts; i++) {
        r->scripts[i] = scripts[i];
        sha1_hex(scripts[i], r->sha[i]);
    }
    r->backoff_ms = BACKOFF_MIN_MS;
    r->connect_timer = evtimer_new(base, on_connect_timeout, r);
    r->reconnect_timer = evtimer_new(base, on_reconnect, r);
    if (!r->connect_timer || !r->reconnect_timer)
        abort();
    redis_connect(r);
    return r;
}

bool gw_redis_connected(const gw_redis_t *r)
{
    return r && r->connected;
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    gw_redis_ticket_t *t = privdata;
    redisReply *reply = reply_;
    gw_redis_t *r = t->r;
    if (reply && reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "NOSCRIPT", 8) &&
        !t->retried && !t->done && ac == r->ac) {
        /* the script cache was flushed (SCRIPT FLUSH, a restart): send the source */
        t->retried = true;
        const char **argv = malloc(sizeof *argv * (size_t)(t->argc + 3));
        size_t *lens = malloc(sizeof *lens * (size_t)(t->argc + 3));
        if (!argv || !lens)
            abort();
        argv[0] = "EVAL";
        argv[1] = r->scripts[t->script];
        argv[2] = "0";
        for (int i = 0; i < 3; i++)
            lens[i] = strlen(argv[i]);
        for (int i = 0; i < t->argc; i++) {
            argv[3 + i] = t->argv[i];
            lens[3 + i] = t->lens[i];
        }
        int rc = redisAsyncCommandArgv(ac, on_reply, t, t->argc + 3, argv, lens);
        free(argv);
        free(lens);
        if (rc == REDIS_OK)
            return;
        reply = NULL;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR)
        tg_warn("redis: script error: %s", reply->str);
    if (!t->done) {
        t->done = true;
        if (t->timer)
            evtimer_del(t->timer);
        t->cb(reply && reply->type != REDIS_REPLY_ERROR ? reply : NULL, t->arg);
    }
    ticket_free(t);
}

static void on_command_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_redis_ticket_t *t = arg;
    gw_redis_t *r = t->r;
    if (t->done)
        return;
    t->done = true;
    t->cb(NULL, t->arg);
    /* No answer in time: the server is stuck or the link is. Drop the
     * connection (this frees t through on_reply) and reconnect. */
    char why[64];
    snprintf(why, sizeof why, "no reply within %d ms", r->timeout_ms);
    redis_drop(r, why);
}

gw_redis_ticket_t *gw_redis_eval(gw_redis_t *r, int script, int argc, const char **argv,
                                 const size_t *lens, gw_redis_cb cb, void *arg)
{
    if (!r || !r->connected || !r->ac || script < 0 || script >= r->n_scripts)
        return NULL;
    gw_redis_ticket_t *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->r = r;
    t->cb = cb;
    t->arg = arg;
    t->script = script;
    t->argc = argc;
    t->argv = calloc((size_t)argc + 1, sizeof *t->argv);
    t->lens = calloc((size_t)argc + 1, sizeof *t->lens);
    const char **full = malloc(sizeof *full * (size_t)(argc + 3));
    size_t *flens = malloc(sizeof *flens * (size_t)(argc + 3));
    if (!t->argv || !t->lens || !full || !flens)
        abort();
    full[0] = "EVALSHA";
    full[1] = r->sha[script];
    full[2] = "0";
    flens[0] = 7;
    flens[1] = 40;
    flens[2] = 1;
    size_t total = 0;
    for (int i = 0; i < argc; i++) {
        t->lens[i] = lens ? lens[i] : strlen(argv[i]);
        total += t->lens[i] + 1;
    }
    t->blob = malloc(total + 1);
    if (!t->blob)
        abort();
    char *at = t->blob;
    for (int i = 0; i < argc; i++) {
        t->argv[i] = at;
        memcpy(at, argv[i], t->lens[i]);
        at[t->lens[i]] = '\0';
        at += t->lens[i] + 1;
        full[3 + i] = t->argv[i];
        flens[3 + i] = t->lens[i];
    }
    int rc = redisAsyncCommandArgv(r->ac, on_reply, t, argc + 3, full, flens);
    free(full);
    free(flens);
    if (rc != REDIS_OK) {
        ticket_free(t);
        return NULL;
    }
    t->timer = evtimer_new(r->base, on_command_timeout, t);
    if (!t->timer)
        abort();
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    evtimer_add(t->timer, &tv);
    return t;
}

void gw_redis_cancel(gw_redis_ticket_t *t)
{
    if (!t)
        return;
    t->done = true;
    if (t->timer)
        evtimer_del(t->timer);
}

void gw_redis_free(gw_redis_t *r)
{
    if (!r)
        return;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    event_free(r->connect_timer);
    event_free(r->reconnect_timer);
    free(r);
}
