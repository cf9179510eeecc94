/* gw_govern_local: what happens while Redis cannot be reached. Fail closed:
 * every governed request is refused with 503 and a clear message. Fail open:
 * each worker admits under its share of the limits (limit x open fraction /
 * workers; fixed one-minute windows) and of each budget's remaining amount
 * according to the ledger, so a gateway keeps serving but the shared
 * guarantees are relaxed (docs/governance.md says by how much). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "gw_govern_int.h"
#include "gw_server.h"
#include "tg_log.h"

static int64_t share(int64_t limit, const gw_config_t *cfg)
{
    if (limit <= 0)
        return 0;
    __int128 v = (__int128)limit * cfg->redis_open_percent;
    int64_t per = (int64_t)(v / (100 * cfg->workers));
    return per < 1 ? 1 : per;
}

static gov_local_scope_t *scope_get(gov_worker_t *gw, const char *name)
{
    for (int i = 0; i < gw->n_scopes; i++)
        if (!strcmp(gw->scopes[i].name, name))
            return &gw->scopes[i];
    if (gw->n_scopes == GOV_LOCAL_SCOPES)
        return NULL;
    gov_local_scope_t *s = &gw->scopes[gw->n_scopes++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static gov_local_budget_t *budget_get(gov_worker_t *gw, int64_t id)
{
    for (int i = 0; i < gw->n_budgets; i++)
        if (gw->budgets[i].id == id)
            return &gw->budgets[i];
    if (gw->n_budgets == GOV_LOCAL_BUDGETS)
        return NULL;
    gov_local_budget_t *b = &gw->budgets[gw->n_budgets++];
    memset(b, 0, sizeof *b);
    b->id = id;
    return b;
}

static void refuse(gw_govern_result_t *res, int status, const char *type, const char *code,
                   const char *retry, const char *msg)
{
    memset(res, 0, sizeof *res);
    res->status = status;
    snprintf(res->type, sizeof res->type, "%s", type);
    snprintf(res->code, sizeof res->code, "%s", code);
    snprintf(res->retry_after, sizeof res->retry_after, "%s", retry ? retry : "");
    snprintf(res->message, sizeof res->message, "%s", msg);
}

void gov_local_admit(gov_worker_t *gw, const gw_gov_snapshot_t *snap, const gw_govern_request_t *rq,
                     gw_govern_hold_t *hold, gw_govern_result_t *res)
{
    const gw_config_t *cfg = gw->w->server->cfg;
    memset(hold, 0, sizeof *hold);
    const gw_gov_limit_t *lims[2] = {NULL, NULL}; /* team, key */
    const gw_gov_budget_t *buds[GW_GOV_MAX_BUDGETS];
    int nb = 0;
    for (int i = 0; i < snap->n_limits; i++) {
        const gw_gov_limit_t *l = &snap->limits[i];
        if (l->team_id != rq->key->team_id)
            continue;
        if (l->key_id == 0)
            lims[0] = l;
        else if (l->key_id == rq->key->key_id)
            lims[1] = l;
    }
    for (int i = 0; i < snap->n_budgets && nb < GW_GOV_MAX_BUDGETS; i++) {
        const gw_gov_budget_t *b = &snap->budgets[i];
        if (b->team_id == rq->key->team_id && (b->key_id == 0 || b->key_id == rq->key->key_id))
            buds[nb++] = b;
    }
    if (!lims[0] && !lims[1] && nb == 0) {
        memset(res, 0, sizeof *res);
        res->allow = true; /* nothing governs this team: Redis was not needed */
        return;
    }
    if (!cfg->redis_fail_open) {
        refuse(res, 503, "api_error", "governance_unavailable", "1",
               "Rate limits and budgets cannot be checked right now (the shared limit store is "
               "unreachable) and this gateway is configured to refuse rather than guess. Retry "
               "shortly.");
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t minute = tv.tv_sec / 60;
    char names[2][64];
    snprintf(names[0], sizeof names[0], "%s:t:%" PRId64, cfg->redis_namespace, rq->key->team_id);
    snprintf(names[1], sizeof names[1], "%s:k:%" PRId64, cfg->redis_namespace, rq->key->key_id);
    gov_local_scope_t *sc[2];
    for (int s = 0; s < 2; s++) {
        sc[s] = scope_get(gw, names[s]);
        if (!sc[s]) {
            refuse(res, 503, "api_error", "governance_unavailable", "1",
                   "Too many local rate-limit scopes while the shared store is unreachable.");
            return;
        }
        if (sc[s]->minute != minute) {
            sc[s]->minute = minute;
            sc[s]->requests = sc[s]->tokens = 0;
        }
        const gw_gov_limit_t *l = lims[s];
        if (!l)
            continue;
        char ra[16];
        snprintf(ra, sizeof ra, "%d", (int)(60 - tv.tv_sec % 60));
        if (l->rpm && sc[s]->requests + 1 > share(l->rpm, cfg)) {
            refuse(res, 429, "requests", "rate_limit_exceeded", ra,
                   "Rate limit reached on requests per minute (local limits while the shared "
                   "store is unreachable).");
            return;
        }
        if (l->tpm && sc[s]->tokens + rq->prompt_tokens > share(l->tpm, cfg)) {
            refuse(res, 429, "tokens", "rate_limit_exceeded", ra,
                   "Rate limit reached on tokens per minute (local limits while the shared store "
                   "is unreachable).");
            return;
        }
        if (l->concurrent && sc[s]->inflight + 1 > share(l->concurrent, cfg)) {
            refuse(res, 429, "requests", "rate_limit_exceeded", "1",
                   "Too many concurrent requests (local limits while the shared store is "
                   "unreachable).");
            return;
        }
    }
    /* budgets: this worker's share of what the ledger says is left */
    int64_t max_tokens = rq->max_tokens > 0 ? rq->max_tokens : cfg->default_max_tokens;
    const pr_book_t *book = gw_pricebook_acquire(gw->w->server->prices);
    int64_t holds[GW_GOV_MAX_BUDGETS] = {0};
    gov_local_budget_t *lb[GW_GOV_MAX_BUDGETS];
    for (int i = 0; i < nb; i++) {
        int unpriced;
        char err[160];
        lb[i] = budget_get(gw, buds[i]->id);
        if (!lb[i] || gw_hold_micro(book, cfg, rq->model, rq->plan->routes, rq->plan->n,
                                    rq->prompt_bound, max_tokens, buds[i]->currency, rq->now_us,
                                    &holds[i], &unpriced, err, sizeof err) < 0) {
            gw_pricebook_release(gw->w->server->prices, book);
            refuse(res, 503, "api_error", "governance_unavailable", "1",
                   "The budget cannot be checked locally; retry shortly.");
            return;
        }
        int64_t left = buds[i]->hard_micro - buds[i]->ledger_micro;
        if (lb[i]->held + holds[i] > share(left > 0 ? left : 0, cfg) || left <= 0) {
            gw_pricebook_release(gw->w->server->prices, book);
            refuse(res, 429, "insufficient_quota", "insufficient_quota", NULL,
                   "You exceeded your budget (checked locally while the shared store is "
                   "unreachable).");
            return;
        }
    }
    gw_pricebook_release(gw->w->server->prices, book);
    hold->local = true;
    snprintf(hold->request_id, sizeof hold->request_id, "%s", rq->request_id);
    hold->n_scopes = 2;
    for (int s = 0; s < 2; s++) {
        /* flags 0: the shared settle later touches no counter of this scope
         * (the local admission took no slot there) */
        hold->scope_flags[s] = 0;
        snprintf(hold->scopes[s], sizeof hold->scopes[s], "%s", names[s]);
        hold->local_scopes[s] = (int)(sc[s] - gw->scopes);
        sc[s]->requests++;
        sc[s]->tokens += rq->prompt_tokens > 0 ? rq->prompt_tokens : 0;
        sc[s]->inflight++;
    }
    hold->n_budgets = nb;
    for (int i = 0; i < nb; i++) {
        snprintf(hold->bkeys[i], sizeof hold->bkeys[i], "%s:b:%" PRId64 ":%s", cfg->redis_namespace,
                 buds[i]->id, buds[i]->period_id);
        snprintf(hold->currency[i], sizeof hold->currency[i], "%s", buds[i]->currency);
        hold->local_budgets[i] = (int)(lb[i] - gw->budgets);
        hold->period_ttl_s[i] = 0;
        lb[i]->held += holds[i];
        if (holds[i] > hold->hold_micro)
            hold->hold_micro = holds[i];
    }
    /* each budget's own hold is kept per budget for the release */
    memset(res, 0, sizeof *res);
    res->allow = true;
    snprintf(res->header, sizeof res->header, "local limits (shared limit store unreachable)");
    for (int i = 0; i < nb; i++)
        hold->local_holds[i] = holds[i];
}

void gov_local_settle(gov_worker_t *gw, const gw_govern_hold_t *hold, int64_t completion_tokens,
                      const int64_t *charge_micro)
{
    (void)charge_micro; /* the ledger (and Redis, once back) count the charge */
    for (int s = 0; s < hold->n_scopes; s++) {
        gov_local_scope_t *sc = &gw->scopes[hold->local_scopes[s]];
        if (sc->inflight > 0)
            sc->inflight--;
        sc->tokens += completion_tokens;
    }
    for (int i = 0; i < hold->n_budgets; i++) {
        gov_local_budget_t *b = &gw->budgets[hold->local_budgets[i]];
        b->held -= hold->local_holds[i];
        if (b->held < 0)
            b->held = 0;
    }
}
