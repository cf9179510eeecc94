/* gw_govern: admission and settle of rate limits and budgets (gw_govern.h).
 * One Redis connection per worker loop (gw_redis); budgets and limits from the
 * shared gw_govern_store snapshot; holds priced with the live price book.
 * When Redis cannot be reached the deployment's choice applies: refuse (503)
 * or admit under local per-worker limits (gw_govern_local.c). */
#include "gw_govern.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "gw_govern_calc.h"
#include "gw_govern_int.h"
#include "gw_govern_lua.h"
#include "gw_govern_store.h"
#include "gw_http.h"
#include "gw_pricebook.h"
#include "gw_redis.h"
#include "gw_server.h"
#include "tg_log.h"

#define STARTUP_WAIT_MS 3000     /* first Redis connect and first snapshot */
#define STALE_LEDGER_US 10000000 /* an older ledger figure is not used to rebuild */
#define SETTLE_QUEUE_MAX 10000

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static gw_govern_store_t *g_store;
static const gw_config_t *g_cfg;
static gov_worker_t *g_workers[GW_GOV_MAX_WORKERS]; /* slot i: worker i's thread only */
static pthread_key_t g_worker_key; /* its destructor tears a worker's state down */
static atomic_int g_live_workers;

static void gov_worker_free(void *arg);
static void on_batch_event(evutil_socket_t fd, short what, void *arg);

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

bool gw_govern_enabled(const gw_config_t *cfg)
{
    return cfg->governance && cfg->redis;
}

static void global_init(void)
{
    g_store = gw_govern_store_start(g_cfg->postgres, 500);
    if (!g_store)
        tg_error("governance: cannot start the budget loader thread");
    if (pthread_key_create(&g_worker_key, gov_worker_free) != 0)
        abort();
}

static void queue_flush(gov_worker_t *gw);

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gov_worker_t *gw = arg;
    if (gw->n_queued && gw_redis_connected(gw->redis))
        queue_flush(gw);
}

/* The calling worker's governance state, created at its first use. */
static gov_worker_t *gov_worker(gw_worker_t *w)
{
    if (w->index < 0 || w->index >= GW_GOV_MAX_WORKERS)
        return NULL;
    gov_worker_t *gw = g_workers[w->index];
    if (gw)
        return gw;
    g_cfg = w->server->cfg;
    pthread_once(&g_once, global_init);
    gw = calloc(1, sizeof *gw);
    if (!gw)
        abort();
    gw->w = w;
    gw->created_us = now_us();
    char err[256];
    gw->redis = gw_redis_new(w->base, w->server->cfg->redis, w->server->cfg->redis_timeout_ms,
                             gw_govern_lua, GW_LUA_COUNT, err, sizeof err);
    if (!gw->redis)
        tg_error("governance: %s", err);
    gw->flush_timer = event_new(w->base, -1, EV_PERSIST, on_flush_timer, gw);
    gw->batch_ev = event_new(w->base, -1, 0, on_batch_event, gw);
    if (!gw->flush_timer || !gw->batch_ev)
        abort();
    struct timeval tv = {0, 500000};
    evtimer_add(gw->flush_timer, &tv);
    g_workers[w->index] = gw;
    atomic_fetch_add(&g_live_workers, 1);
    pthread_setspecific(g_worker_key, gw);
    return gw;
}

static void pending_free(struct pending_cmd *p);
typedef struct gov_batch gov_batch_t;
static void batch_flush(gov_worker_t *gw);
static void on_batch_reply(redisReply *reply, void *arg);

/* Runs when a worker thread ends (its loop has returned; the event base is
 * freed later by the server): closes the worker's Redis connection (pending
 * callbacks run first with no reply: admissions are answered, settles land
 * in the queue), frees the settles still queued (their holds expire in
 * Redis by themselves) and, with the last worker, stops the budget loader. */
static void gov_worker_free(void *arg)
{
    gov_worker_t *gw = arg;
    event_free(gw->flush_timer);
    batch_flush(gw); /* what this tick still had: sent, then answered NULL below */
    gw_redis_free(gw->redis);
    gw->redis = NULL;
    while (gw->batch) { /* added by the callbacks just run: nothing can send it now */
        gov_batch_t *b = gw->batch;
        gw->batch = NULL;
        on_batch_reply(NULL, b);
    }
    event_free(gw->batch_ev);
    if (gw->n_queued)
        tg_warn("governance: worker %d stops with %d settle(s) not sent; their holds expire by "
                "themselves",
                gw->w->index, gw->n_queued);
    for (int i = 0; i < gw->n_queued; i++)
        pending_free(gw->queued[i]);
    free(gw->queued);
    tg_info("governance: worker %d closed its Redis connection", gw->w->index);
    g_workers[gw->w->index] = NULL;
    free(gw);
    if (atomic_fetch_sub(&g_live_workers, 1) == 1) {
        gw_govern_store_t *st = g_store;
        g_store = NULL;
        gw_govern_store_stop(st);
        tg_info("governance: budget loader stopped");
    }
}

/* ---- settle (and its retry queue) -------------------------------------- */

typedef struct pending_cmd {
    gov_worker_t *gw;
    int argc;
    char **argv;
} pending_cmd_t;

static void pending_free(pending_cmd_t *p)
{
    free(p->argv); /* one block with the arguments */
    free(p);
}

static void pending_send(pending_cmd_t *p);
static void on_batch_reply(redisReply *reply, void *arg);

static void pending_queue(pending_cmd_t *p)
{
    gov_worker_t *gw = p->gw;
    if (gw->n_queued >= SETTLE_QUEUE_MAX) {
        tg_warn("governance: settle queue full; dropping one (its hold expires by itself)");
        pending_free(p);
        return;
    }
    if (gw->n_queued == gw->cap_queued) {
        gw->cap_queued = gw->cap_queued ? gw->cap_queued * 2 : 64;
        gw->queued = realloc(gw->queued, sizeof *gw->queued * (size_t)gw->cap_queued);
        if (!gw->queued)
            abort();
    }
    gw->queued[gw->n_queued++] = p;
}

struct gw_govern_ticket {
    gov_worker_t *gw;
    gw_govern_cb cb; /* NULL once cancelled (orphan: settle at once if admitted) */
    void *arg;
    gw_govern_hold_t *out_hold;
    gw_govern_hold_t hold; /* filled while building the command */
    gov_budget_ref_t budgets[GW_GOV_MAX_BUDGETS];
    char model[128];
    int argc;
    char **argv;
    bool redis_pending;
    struct event *retry; /* waiting for the first connect / snapshot */
    int64_t deadline_us;
    gw_govern_request_t rq; /* for the retry; pointers into the exchange */
};

/* ---- batches: one EVALSHA per worker and loop tick -------------------------
 * Admissions and settles are not sent one by one: each joins the worker's
 * batch, which is sent when the loop has run the tick's other callbacks (an
 * event activated by the first item) or at once when full. Redis runs the
 * items in order in one BATCH script, each as its own script would; the
 * reply has one answer per item. */

#define GOV_BATCH_MAX 64

struct gov_batch {
    gov_worker_t *gw;
    int n;
    char kind[GOV_BATCH_MAX]; /* 'a' admission (a ticket), 's' settle (a pending_cmd) */
    void *item[GOV_BATCH_MAX];
};

static void admit_finish(gw_govern_ticket_t *t, const redisReply *reply);

/* Sends gw's current batch (if any). Not connected: the admissions are
 * decided as if Redis had not answered, the settles wait in the queue. */
static void batch_flush(gov_worker_t *gw)
{
    gov_batch_t *b = gw->batch;
    if (!b)
        return;
    gw->batch = NULL;
    gw_redis_ticket_t *rt = NULL;
    int argc = 1;
    for (int i = 0; i < b->n; i++)
        argc += 2 + (b->kind[i] == 'a' ? ((gw_govern_ticket_t *)b->item[i])->argc
                                       : ((pending_cmd_t *)b->item[i])->argc);
    const char **argv = malloc(sizeof *argv * (size_t)argc);
    char (*counts)[12] = malloc(sizeof *counts * (size_t)(b->n + 1));
    if (!argv || !counts)
        abort();
    int n = 0;
    snprintf(counts[b->n], sizeof counts[b->n], "%d", b->n);
    argv[n++] = counts[b->n];
    for (int i = 0; i < b->n; i++) {
        int ac;
        char **av;
        if (b->kind[i] == 'a') {
            ac = ((gw_govern_ticket_t *)b->item[i])->argc;
            av = ((gw_govern_ticket_t *)b->item[i])->argv;
            argv[n++] = "a";
        } else {
            ac = ((pending_cmd_t *)b->item[i])->argc;
            av = ((pending_cmd_t *)b->item[i])->argv;
            argv[n++] = "s";
        }
        snprintf(counts[i], sizeof counts[i], "%d", ac);
        argv[n++] = counts[i];
        for (int k = 0; k < ac; k++)
            argv[n++] = av[k];
    }
    rt = gw_redis_eval(gw->redis, GW_LUA_BATCH, n, argv, NULL, on_batch_reply, b);
    free(argv); /* gw_redis copied the arguments */
    free(counts);
    if (!rt)
        on_batch_reply(NULL, b);
}

static void on_batch_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    batch_flush(arg);
}

/* Adds an admission ('a', a ticket) or a settle ('s', a pending_cmd) to the
 * worker's batch. */
static void batch_add(gov_worker_t *gw, char kind, void *item)
{
    if (!gw->batch) {
        gw->batch = calloc(1, sizeof *gw->batch);
        if (!gw->batch)
            abort();
        gw->batch->gw = gw;
        event_active(gw->batch_ev, EV_TIMEOUT, 1);
    }
    gov_batch_t *b = gw->batch;
    b->kind[b->n] = kind;
    b->item[b->n++] = item;
    if (b->n == GOV_BATCH_MAX)
        batch_flush(gw);
}

static void on_batch_reply(redisReply *reply, void *arg)
{
    gov_batch_t *b = arg;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == (size_t)b->n;
    if (reply && !ok)
        tg_warn("governance: Redis answered a batch of %d with something else", b->n);
    for (int i = 0; i < b->n; i++) {
        if (b->kind[i] == 'a') {
            admit_finish(b->item[i], ok ? reply->element[i] : NULL);
        } else if (ok) {
            pending_free(b->item[i]);
        } else {
            pending_queue(b->item[i]); /* retried once Redis answers again */
        }
    }
    free(b);
}

static void pending_send(pending_cmd_t *p)
{
    batch_add(p->gw, 's', p);
}

/* Sends what waited for Redis to come back (called when it answered). */
static void queue_flush(gov_worker_t *gw)
{
    int n = gw->n_queued;
    if (!n)
        return;
    pending_cmd_t **q = gw->queued;
    gw->queued = NULL;
    gw->n_queued = gw->cap_queued = 0;
    tg_info("governance: Redis is back; sending %d delayed settle(s)", n);
    for (int i = 0; i < n; i++)
        pending_send(q[i]);
    free(q);
}

/* A command's arguments live in one block: `max` pointers, then the texts
 * packed one after the other (a number takes at most 21 bytes, each of the
 * `nstr` strings at most GOV_STR_MAX: request ids, scope and budget keys).
 * One malloc and one free per command instead of one per argument. */
#define GOV_NUM_MAX 21
#define GOV_STR_MAX 96

static char **args_new(int max, int nstr)
{
    char **a = malloc((size_t)max * (sizeof(char *) + GOV_NUM_MAX) + (size_t)nstr * GOV_STR_MAX);
    if (!a)
        abort();
    return a;
}

/* Where argument n's text goes: after the previous one. */
static char *arg_at(char **a, int max, int n)
{
    return n == 0 ? (char *)(a + max) : a[n - 1] + strlen(a[n - 1]) + 1;
}

static void arg_i64(char **a, int max, int *n, int64_t v)
{
    a[*n] = arg_at(a, max, *n);
    snprintf(a[*n], GOV_NUM_MAX, "%" PRId64, v);
    (*n)++;
}

static void arg_str(char **a, int max, int *n, const char *v)
{
    a[*n] = arg_at(a, max, *n);
    snprintf(a[*n], GOV_STR_MAX, "%s", v);
    (*n)++;
}

/* Builds and sends the SETTLE script for hold h with the given charges. */
static void settle_send(gov_worker_t *gw, const gw_govern_hold_t *h, int64_t completion_tokens,
                        const int64_t *charge_micro)
{
    pending_cmd_t *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->gw = gw;
    int max = 6 + 2 * h->n_scopes + 1 + 3 * h->n_budgets;
    p->argv = args_new(max, 1 + h->n_scopes + h->n_budgets);
    char **a = p->argv;
    int n = 0;
    int64_t now_ms = now_us() / 1000;
    arg_i64(a, max, &n, now_ms);
    arg_str(a, max, &n, h->request_id);
    arg_i64(a, max, &n, completion_tokens > 0 ? completion_tokens : 0);
    arg_i64(a, max, &n, now_ms / 60000);
    arg_i64(a, max, &n, h->n_scopes);
    for (int i = 0; i < h->n_scopes; i++) {
        arg_str(a, max, &n, h->scopes[i]);
        arg_i64(a, max, &n, h->scope_flags[i]);
    }
    arg_i64(a, max, &n, h->n_budgets);
    for (int i = 0; i < h->n_budgets; i++) {
        arg_str(a, max, &n, h->bkeys[i]);
        arg_i64(a, max, &n, charge_micro ? charge_micro[i] : 0);
        arg_i64(a, max, &n, h->holds[i]);
    }
    p->argc = n;
    pending_send(p);
}

void gw_govern_settle(gw_worker_t *w, gw_govern_hold_t *hold, const gw_usage_record_t *rec)
{
    if (!hold->active && !hold->local)
        return;
    gov_worker_t *gw = gov_worker(w);
    int64_t charge[GW_GOV_MAX_BUDGETS] = {0};
    for (int i = 0; i < hold->n_budgets; i++) {
        if (rec->price_card_id && !strcmp(rec->charge_currency, hold->currency[i]) &&
            gw_pico_to_micro_ceil(rec->charge_pico, &charge[i]) < 0)
            charge[i] = INT64_MAX / 4;
    }
    int64_t ctok = rec->completion_tokens > 0 ? rec->completion_tokens : 0;
    /* a local (fail-open) admission's charge reaches the shared spend too,
     * once Redis is back (the settle waits in the queue) */
    if (gw)
        settle_send(gw, hold, ctok, charge);
    if (hold->local && gw)
        gov_local_settle(gw, hold, ctok, charge);
    memset(hold, 0, sizeof *hold);
}

/* ---- admission --------------------------------------------------------- */

static void ticket_free(gw_govern_ticket_t *t)
{
    if (t->retry)
        event_free(t->retry);
    free(t->argv); /* one block with the arguments */
    free(t);
}

static void deny(gw_govern_result_t *res, int status, const char *type, const char *code,
                 const char *retry, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void deny(gw_govern_result_t *res, int status, const char *type, const char *code,
                 const char *retry, const char *fmt, ...)
{
    res->allow = false;
    res->status = status;
    snprintf(res->type, sizeof res->type, "%s", type);
    snprintf(res->code, sizeof res->code, "%s", code);
    snprintf(res->retry_after, sizeof res->retry_after, "%s", retry ? retry : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

/* Formats micro-units as a decimal amount ("1.25"). */
static void micro_text(int64_t micro, char *out, size_t len)
{
    snprintf(out, len, "%s%" PRId64 ".%06" PRId64, micro < 0 ? "-" : "",
             (micro < 0 ? -micro : micro) / 1000000, (micro < 0 ? -micro : micro) % 1000000);
    /* trim trailing zeros, keep two decimals */
    size_t l = strlen(out);
    char *dot = strchr(out, '.');
    while (dot && l > (size_t)(dot - out) + 3 && out[l - 1] == '0')
        out[--l] = '\0';
}

/* Which limits and budgets apply to key; fills the ticket's command. Returns
 * 0 with the command built, 1 when nothing applies (allow, no trip), or -1
 * with *res filled (deny). */
static int build_admit(gw_govern_ticket_t *t, const gw_gov_snapshot_t *snap,
                       const gw_govern_request_t *rq, gw_govern_result_t *res)
{
    const gw_config_t *cfg = t->gw->w->server->cfg;
    gw_govern_hold_t *h = &t->hold;
    memset(h, 0, sizeof *h);
    snprintf(h->request_id, sizeof h->request_id, "%s", rq->request_id);
    const gw_gov_limit_t *lims[GW_GOV_MAX_SCOPES];
    int nl = 0;
    for (int i = 0; i < snap->n_limits && nl < GW_GOV_MAX_SCOPES; i++) {
        const gw_gov_limit_t *l = &snap->limits[i];
        if (l->team_id == rq->key->team_id && (l->key_id == 0 || l->key_id == rq->key->key_id))
            lims[nl++] = l;
    }
    int nb = 0;
    for (int i = 0; i < snap->n_budgets && nb < GW_GOV_MAX_BUDGETS; i++) {
        const gw_gov_budget_t *b = &snap->budgets[i];
        if (b->team_id == rq->key->team_id && (b->key_id == 0 || b->key_id == rq->key->key_id))
            t->budgets[nb++].b = b;
    }
    if (nl == 0 && nb == 0)
        return 1;
    /* only scopes with a limit are counted (the team's row, the key's row) */
    const gw_gov_limit_t *scope_lim[GW_GOV_MAX_SCOPES];
    h->n_scopes = 0;
    for (int i = 0; i < nl; i++) {
        const gw_gov_limit_t *l = lims[i];
        int k = h->n_scopes++;
        scope_lim[k] = l;
        if (l->key_id)
            snprintf(h->scopes[k], sizeof h->scopes[k], "%s:k:%" PRId64, cfg->redis_namespace,
                     l->key_id);
        else
            snprintf(h->scopes[k], sizeof h->scopes[k], "%s:t:%" PRId64, cfg->redis_namespace,
                     l->team_id);
        h->scope_flags[k] = (l->concurrent > 0 ? 1 : 0) | (l->tpm > 0 ? 2 : 0);
    }
    int64_t max_tokens = rq->max_tokens > 0 ? rq->max_tokens : cfg->default_max_tokens;
    const pr_book_t *book = gw_pricebook_acquire(t->gw->w->server->prices);
    for (int i = 0; i < nb; i++) {
        const gw_gov_budget_t *b = t->budgets[i].b;
        int unpriced = 0;
        char err[160];
        int64_t hold = 0;
        if (gw_hold_micro(book, cfg, rq->model, rq->plan->routes, rq->plan->n, rq->prompt_bound,
                          max_tokens, b->currency, rq->now_us, &hold, &unpriced, err,
                          sizeof err) < 0) {
            gw_pricebook_release(t->gw->w->server->prices, book);
            deny(res, 400, "invalid_request_error", "invalid_value", NULL,
                 "This request's worst-case cost cannot be computed: %s.", err);
            return -1;
        }
        if (unpriced == rq->plan->n && rq->plan->n > 0)
            tg_debug("request %s: no route priced in %s: budget %" PRId64 " holds nothing",
                     rq->request_id, b->currency, b->id);
        t->budgets[i].hold = hold;
        snprintf(h->bkeys[i], sizeof h->bkeys[i], "%s:b:%" PRId64 ":%s", cfg->redis_namespace,
                 b->id, b->period_id);
        snprintf(h->currency[i], sizeof h->currency[i], "%s", b->currency);
        int64_t ttl = 0;
        if (b->period_end_s != INT64_MAX)
            ttl = b->period_end_s - snap->taken_at_us / 1000000 + 86400;
        h->period_ttl_s[i] = ttl;
        h->holds[i] = hold;
        if (hold > h->hold_micro)
            h->hold_micro = hold;
    }
    gw_pricebook_release(t->gw->w->server->prices, book);
    h->n_budgets = nb;
    bool ledger_fresh = rq->now_us - snap->taken_at_us < STALE_LEDGER_US;
    int max = 9 + 4 * h->n_scopes + 6 * nb;
    t->argv = args_new(max, 1 + h->n_scopes + nb);
    char **a = t->argv;
    int n = 0;
    int64_t now_ms = rq->now_us / 1000;
    arg_i64(a, max, &n, now_ms);
    arg_str(a, max, &n, rq->request_id);
    arg_i64(a, max, &n, cfg->hold_ttl_ms);
    arg_i64(a, max, &n, rq->prompt_tokens > 0 ? rq->prompt_tokens : 0);
    arg_i64(a, max, &n, now_ms + cfg->hold_ttl_ms);
    arg_i64(a, max, &n, now_ms / 60000);
    arg_i64(a, max, &n, now_ms / 60000 - 1);
    arg_i64(a, max, &n, h->n_scopes);
    for (int s = 0; s < h->n_scopes; s++) {
        const gw_gov_limit_t *l = scope_lim[s];
        arg_str(a, max, &n, h->scopes[s]);
        arg_i64(a, max, &n, l->rpm);
        arg_i64(a, max, &n, l->tpm);
        arg_i64(a, max, &n, l->concurrent);
    }
    arg_i64(a, max, &n, nb);
    for (int i = 0; i < nb; i++) {
        const gw_gov_budget_t *b = t->budgets[i].b;
        int64_t hard = b->hard_micro;
        /* policy refuse: past the soft threshold is as good as past the hard limit */
        if (b->policy == GW_SOFT_REFUSE && b->soft_micro > 0 && b->soft_micro < hard)
            hard = b->soft_micro;
        arg_str(a, max, &n, h->bkeys[i]);
        arg_i64(a, max, &n, hard);
        arg_i64(a, max, &n, b->soft_micro);
        arg_i64(a, max, &n, t->budgets[i].hold);
        arg_i64(a, max, &n, ledger_fresh ? b->ledger_micro : -1);
        arg_i64(a, max, &n, h->period_ttl_s[i]);
    }
    t->argc = n;
    return 0;
}

/* Reads ADMIT's answer into res (and the soft-threshold consequences). */
static void read_admit(gw_govern_ticket_t *t, const redisReply *r, gw_govern_result_t *res,
                       bool *admitted)
{
    memset(res, 0, sizeof *res);
    *admitted = false;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        deny(res, 503, "api_error", "governance_unavailable", "1",
             "The rate-limit service gave an unexpected answer; retry shortly.");
        return;
    }
    long long code = r->element[0]->integer;
    long long retry = r->element[1]->type == REDIS_REPLY_INTEGER ? r->element[1]->integer : 1;
    const char *what = r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "";
    char ra[24];
    snprintf(ra, sizeof ra, "%lld", retry < 1 ? 1 : retry > 86400 ? 86400 : retry);
    const char *scope = strstr(what, ":k:") ? "API key" : "team";
    switch (code) {
    case 0:
        break;
    case 1:
        deny(res, 429, "requests", "rate_limit_exceeded", ra,
             "Rate limit reached for this %s on requests per minute. Retry after %s s.", scope, ra);
        return;
    case 2:
        deny(res, 429, "tokens", "rate_limit_exceeded", ra,
             "Rate limit reached for this %s on tokens per minute (this request has %" PRId64
             " prompt tokens). Retry after %s s.",
             scope, t->rq.prompt_tokens, ra);
        return;
    case 3:
        deny(res, 429, "requests", "rate_limit_exceeded", ra,
             "Too many concurrent requests for this %s. Retry after %s s.", scope, ra);
        return;
    case 4: {
        const gov_budget_ref_t *ref = NULL;
        for (int i = 0; i < t->hold.n_budgets; i++)
            if (!strcmp(t->hold.bkeys[i], what))
                ref = &t->budgets[i];
        char hard[40] = "", hold[40] = "";
        int64_t held = r->elements > 4 && r->element[4]->type == REDIS_REPLY_INTEGER
                           ? r->element[4]->integer
                           : 0;
        if (ref) {
            micro_text(ref->b->policy == GW_SOFT_REFUSE && ref->b->soft_micro > 0
                           ? ref->b->soft_micro
                           : ref->b->hard_micro,
                       hard, sizeof hard);
            micro_text(ref->hold, hold, sizeof hold);
        }
        deny(res, 429, "insufficient_quota", "insufficient_quota", held > 0 ? "1" : NULL,
             "You exceeded your %s budget: this request could cost up to %s %s and the %s "
             "limit of %s %s for period %s would be passed. %s",
             ref && ref->b->key_id ? "API key's" : "team's", hold, ref ? ref->b->currency : "",
             ref && ref->b->policy == GW_SOFT_REFUSE ? "soft" : "hard", hard,
             ref ? ref->b->currency : "", ref ? ref->b->period_id : "",
             held > 0 ? "Requests in flight hold part of it; retry when they finish, or "
                        "lower max_tokens."
                      : "Ask an admin to raise the budget.");
        return;
    }
    case 5:
        deny(res, 503, "api_error", "budget_unavailable", "1",
             "The budget state is being rebuilt from the ledger; retry shortly.");
        return;
    default:
        deny(res, 503, "api_error", "governance_unavailable", "1",
             "The rate-limit service gave an unexpected answer; retry shortly.");
        return;
    }
    *admitted = true;
    res->allow = true;
    size_t per = 4;
    for (int i = 0; i < t->hold.n_budgets && 3 + (size_t)i * per + 3 < r->elements; i++) {
        redisReply **e = &r->element[3 + (size_t)i * per];
        bool over = e[0]->integer == 1, crossed = e[1]->integer == 1;
        const gw_gov_budget_t *b = t->budgets[i].b;
        if (crossed) {
            char soft[40];
            micro_text(b->soft_micro, soft, sizeof soft);
            gov_alert(t->gw, b, e[2]->integer, e[3]->integer);
        }
        if (!over)
            continue;
        if (b->policy == GW_SOFT_DOWNGRADE) {
            char to[128];
            if (!res->downgrade_to[0] &&
                gw_gov_downgrade_lookup(b->downgrades, t->model, to, sizeof to)) {
                snprintf(res->downgrade_to, sizeof res->downgrade_to, "%s", to);
                snprintf(res->header, sizeof res->header,
                         "downgraded %s -> %s (soft threshold passed)", t->model, to);
            } else if (!res->header[0]) {
                snprintf(res->header, sizeof res->header, "soft threshold passed");
            }
        } else if (b->policy == GW_SOFT_CHEAPER) {
            res->cheaper_only = true;
            if (!res->downgrade_to[0])
                snprintf(res->header, sizeof res->header,
                         "cheaper providers only (soft threshold passed)");
        } else if (!res->header[0]) {
            snprintf(res->header, sizeof res->header, "soft threshold passed");
        }
    }
}

/* An admission's answer (NULL: Redis did not answer): decides, keeps or gives
 * back the hold, and calls the requester (unless it went away). */
static void admit_finish(gw_govern_ticket_t *t, const redisReply *reply)
{
    gov_worker_t *gw = t->gw;
    t->redis_pending = false;
    gw_govern_result_t res;
    memset(&res, 0, sizeof res);
    bool admitted = false;
    if (!reply) {
        if (t->cb)
            gov_unavailable(gw, &t->rq, t->out_hold, &res);
    } else {
        read_admit(t, reply, &res, &admitted);
        queue_flush(gw);
    }
    if (admitted) {
        t->hold.active = true;
        if (!t->cb) { /* the client left while we waited: give it all back */
            settle_send(gw, &t->hold, 0, NULL);
        } else {
            *t->out_hold = t->hold;
        }
    }
    gw_govern_cb cb = t->cb;
    void *cbarg = t->arg;
    ticket_free(t);
    if (cb)
        cb(&res, cbarg);
}

/* Tries to send the admission; returns true when it is now pending (or was
 * decided through the callback path), false when decided into *res. */
static int admit_try(gw_govern_ticket_t *t, gw_govern_result_t *res);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_govern_ticket_t *t = arg;
    gw_govern_result_t res;
    memset(&res, 0, sizeof res);
    int rc = admit_try(t, &res);
    if (rc == 1)
        return; /* pending again (Redis or another retry) */
    gw_govern_cb cb = t->cb;
    void *cbarg = t->arg;
    ticket_free(t);
    cb(&res, cbarg);
}

/* 1: pending (callback later); 0: decided into *res (allow or deny). */
static int admit_try(gw_govern_ticket_t *t, gw_govern_result_t *res)
{
    gov_worker_t *gw = t->gw;
    gw_govern_store_t *st = g_store;
    const gw_gov_snapshot_t *snap = st ? gw_govern_store_acquire(st) : NULL;
    bool starting = now_us() < t->deadline_us;
    if (!snap || !gw_redis_connected(gw->redis)) {
        if (starting) {
            if (snap)
                gw_govern_store_release(st, snap);
            if (!t->retry) {
                t->retry = evtimer_new(gw->w->base, on_retry, t);
                if (!t->retry)
                    abort();
            }
            struct timeval tv = {0, 5000};
            evtimer_add(t->retry, &tv);
            return 1;
        }
        if (!snap) {
            deny(res, 503, "api_error", "governance_unavailable", "1",
                 "Budgets and rate limits are not loaded yet (database unreachable); retry "
                 "shortly.");
            return 0;
        }
        gov_local_admit(gw, snap, &t->rq, t->out_hold, res);
        gw_govern_store_release(st, snap);
        return 0;
    }
    int rc = build_admit(t, snap, &t->rq, res);
    if (rc != 0) {
        gw_govern_store_release(st, snap);
        if (rc == 1) {
            memset(res, 0, sizeof *res);
            res->allow = true;
        }
        return 0;
    }
    /* the reply is read after the snapshot may be gone: keep copies */
    for (int i = 0; i < t->hold.n_budgets; i++) {
        t->budgets[i].copy = *t->budgets[i].b;
        t->budgets[i].b = &t->budgets[i].copy;
    }
    gw_govern_store_release(st, snap);
    t->redis_pending = true;
    batch_add(gw, 'a', t);
    return 1;
}

gw_govern_ticket_t *gw_govern_admit(gw_worker_t *w, const gw_govern_request_t *rq,
                                    gw_govern_hold_t *hold, gw_govern_cb cb, void *arg,
                                    gw_govern_result_t *res)
{
    memset(res, 0, sizeof *res);
    memset(hold, 0, sizeof *hold);
    gov_worker_t *gw = gov_worker(w);
    if (!gw || !gw->redis) {
        deny(res, 503, "api_error", "governance_unavailable", NULL,
             "Governance is misconfigured on this gateway (see its log).");
        return NULL;
    }
    gw_govern_ticket_t *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->gw = gw;
    t->cb = cb;
    t->arg = arg;
    t->out_hold = hold;
    t->rq = *rq;
    snprintf(t->model, sizeof t->model, "%s", rq->model->name);
    t->deadline_us = gw->created_us + STARTUP_WAIT_MS * 1000LL;
    if (admit_try(t, res) == 1)
        return t;
    ticket_free(t);
    return NULL;
}

void gw_govern_cancel(gw_worker_t *w, gw_govern_ticket_t *t)
{
    (void)w;
    if (!t)
        return;
    if (t->redis_pending) {
        t->cb = NULL; /* admit_finish gives back what Redis may still admit */
        return;
    }
    ticket_free(t);
}

/* ---- Redis unavailable ------------------------------------------------- */

void gov_unavailable(gov_worker_t *gw, const gw_govern_request_t *rq, gw_govern_hold_t *hold,
                     gw_govern_result_t *res)
{
    const gw_gov_snapshot_t *snap = g_store ? gw_govern_store_acquire(g_store) : NULL;
    if (!snap) {
        deny(res, 503, "api_error", "governance_unavailable", "1",
             "Budgets and rate limits are not loaded yet; retry shortly.");
        return;
    }
    gov_local_admit(gw, snap, rq, hold, res);
    gw_govern_store_release(g_store, snap);
}

/* ---- GET /v1/tollgate/budget -------------------------------------------- */

typedef struct status_req {
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    bool gone;
    int n;
    gw_gov_budget_t budgets[GW_GOV_MAX_BUDGETS];
    char bkeys[GW_GOV_MAX_BUDGETS][96];
} status_req_t;

static void on_status_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    status_req_t *s = arg;
    s->gone = true;
    if (s->req)
        evhttp_send_reply_end(s->req); /* frees the detached request */
    s->req = NULL;
}

static void on_status_reply(redisReply *reply, void *arg)
{
    status_req_t *s = arg;
    if (s->gone) {
        free(s);
        return;
    }
    evhttp_connection_set_closecb(s->conn, NULL, NULL);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)(2 * s->n)) {
        gw_http_send_error(s->req, 503, "api_error", "governance_unavailable", NULL,
                           "The budget state cannot be read right now; retry shortly.");
        free(s);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "tollgate.budget");
    cJSON *arr = cJSON_AddArrayToObject(root, "budgets");
    for (int i = 0; i < s->n; i++) {
        const gw_gov_budget_t *b = &s->budgets[i];
        long long spent = reply->element[2 * i]->integer;
        long long held = reply->element[2 * i + 1]->integer;
        bool lost = spent < 0;
        if (lost)
            spent = b->ledger_micro;
        cJSON *o = cJSON_CreateObject();
        char txt[40];
        cJSON_AddStringToObject(o, "scope", b->key_id ? "key" : "team");
        cJSON_AddStringToObject(o, "currency", b->currency);
        cJSON_AddStringToObject(o, "period",
                                b->period == GW_PERIOD_DAY     ? "day"
                                : b->period == GW_PERIOD_MONTH ? "month"
                                                               : "total");
        cJSON_AddStringToObject(o, "period_id", b->period_id);
        cJSON_AddStringToObject(o, "zone", b->zone);
        micro_text(b->hard_micro, txt, sizeof txt);
        cJSON_AddStringToObject(o, "hard_limit", txt);
        if (b->soft_micro) {
            micro_text(b->soft_micro, txt, sizeof txt);
            cJSON_AddStringToObject(o, "soft_threshold", txt);
        }
        micro_text(spent, txt, sizeof txt);
        cJSON_AddStringToObject(o, "spent", txt);
        micro_text(held, txt, sizeof txt);
        cJSON_AddStringToObject(o, "held", txt);
        micro_text(b->hard_micro - spent - held, txt, sizeof txt);
        cJSON_AddStringToObject(o, "remaining", txt);
        snprintf(txt, sizeof txt, "%lld", spent);
        cJSON_AddStringToObject(o, "spent_micro", txt);
        snprintf(txt, sizeof txt, "%lld", held);
        cJSON_AddStringToObject(o, "held_micro", txt);
        snprintf(txt, sizeof txt, "%" PRId64, b->hard_micro);
        cJSON_AddStringToObject(o, "hard_limit_micro", txt);
        cJSON_AddStringToObject(o, "soft_policy",
                                b->policy == GW_SOFT_DOWNGRADE ? "downgrade"
                                : b->policy == GW_SOFT_CHEAPER ? "cheaper"
                                : b->policy == GW_SOFT_REFUSE  ? "refuse"
                                                               : "alert");
        if (lost)
            cJSON_AddBoolToObject(o, "spent_from_ledger", true);
        cJSON_AddItemToArray(arr, o);
    }
    gw_http_send_json(s->req, 200, root);
    cJSON_Delete(root);
    free(s);
}

void gw_govern_serve_budget(gw_worker_t *w, struct evhttp_request *req, const gw_key_info_t *key)
{
    if (!gw_govern_enabled(w->server->cfg)) {
        gw_http_send_error(req, 404, "invalid_request_error", "not_found", NULL,
                           "Budgets are not enforced on this gateway (governance = off).");
        return;
    }
    gov_worker_t *gw = gov_worker(w);
    const gw_gov_snapshot_t *snap = g_store ? gw_govern_store_acquire(g_store) : NULL;
    if (!snap || !gw || !gw_redis_connected(gw->redis)) {
        gw_govern_store_release(g_store, snap);
        gw_http_send_error(req, 503, "api_error", "governance_unavailable", NULL,
                           "The budget state cannot be read right now; retry shortly.");
        return;
    }
    status_req_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    for (int i = 0; i < snap->n_budgets && s->n < GW_GOV_MAX_BUDGETS; i++) {
        const gw_gov_budget_t *b = &snap->budgets[i];
        if (b->team_id == key->team_id && (b->key_id == 0 || b->key_id == key->key_id)) {
            s->budgets[s->n] = *b;
            snprintf(s->bkeys[s->n], sizeof s->bkeys[s->n], "%s:b:%" PRId64 ":%s",
                     w->server->cfg->redis_namespace, b->id, b->period_id);
            s->n++;
        }
    }
    gw_govern_store_release(g_store, snap);
    const char *argv[2 + GW_GOV_MAX_BUDGETS];
    char now[24], n[8];
    snprintf(now, sizeof now, "%" PRId64, now_us() / 1000);
    snprintf(n, sizeof n, "%d", s->n);
    argv[0] = now;
    argv[1] = n;
    for (int i = 0; i < s->n; i++)
        argv[2 + i] = s->bkeys[i];
    s->req = req;
    s->conn = evhttp_request_get_connection(req);
    if (!gw_redis_eval(gw->redis, GW_LUA_STATUS, 2 + s->n, argv, NULL, on_status_reply, s)) {
        free(s);
        gw_http_send_error(req, 503, "api_error", "governance_unavailable", NULL,
                           "The budget state cannot be read right now; retry shortly.");
        return;
    }
    evhttp_connection_set_closecb(s->conn, on_status_close, s);
}

void gw_govern_cheapest(gw_worker_t *w, const gw_model_cfg_t *model, gw_route_plan_t *plan,
                        int64_t prompt_tokens, int64_t max_tokens, int64_t now_us)
{
    const gw_config_t *cfg = w->server->cfg;
    if (max_tokens <= 0)
        max_tokens = cfg->default_max_tokens;
    const pr_book_t *book = gw_pricebook_acquire(w->server->prices);
    if (!book)
        return;
    int64_t cost[GW_MAX_ROUTES];
    int64_t best = INT64_MAX;
    for (int i = 0; i < plan->n; i++) {
        const gw_route_cfg_t *r = &model->routes[plan->routes[i]];
        const pr_card_t *card;
        const pr_window_t *win;
        char err[160];
        cost[i] = INT64_MAX;
        if (pr_book_find(book, cfg->providers[r->provider].name, r->upstream_model, now_us, &card,
                         &win, err, sizeof err) != 0)
            continue;
        int unpriced;
        int64_t c;
        if (gw_hold_micro(book, cfg, model, &plan->routes[i], 1, prompt_tokens, max_tokens,
                          card->currency->code, now_us, &c, &unpriced, err, sizeof err) == 0)
            cost[i] = c;
        if (cost[i] < best)
            best = cost[i];
    }
    gw_pricebook_release(w->server->prices, book);
    if (best == INT64_MAX)
        return; /* nothing priced: keep the plan */
    int n = 0;
    for (int i = 0; i < plan->n; i++)
        if (cost[i] == best)
            plan->routes[n++] = plan->routes[i];
    plan->n = n;
}
