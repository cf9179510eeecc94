/* gw_govern_alert: what happens once when a budget's soft threshold is
 * crossed (Redis decides "once": the first request past it sets a flag for
 * the period): a log line, a counter, and, when the budget has a webhook URL,
 * one plain HTTP POST of a small JSON document (fire and forget, 5 s timeout;
 * a failure is logged, not retried). */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_govern_int.h"
#include "gw_metrics.h"
#include "gw_server.h"
#include "tg_log.h"

static atomic_ulong g_alerts;

unsigned long gw_govern_alerts_fired(void)
{
    return atomic_load(&g_alerts);
}

static void on_webhook_done(struct evhttp_request *req, void *arg)
{
    char *url = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    gw_metrics_budget_webhook(code >= 200 && code < 300);
    if (code < 200 || code >= 300)
        tg_warn("budget alert: webhook %s answered %d", url, code);
    free(url);
}

/* Splits "http://host[:port][/path]"; returns 0, or -1. */
static int split_url(const char *url, char *host, size_t hl, int *port, const char **path)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    const char *hend = colon ? colon : end;
    if (hend == h || (size_t)(hend - h) >= hl)
        return -1;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    *port = colon ? atoi(colon + 1) : 80;
    if (*port <= 0 || *port > 65535)
        return -1;
    *path = slash ? slash : "/";
    return 0;
}

void gov_alert(gov_worker_t *gw, const gw_gov_budget_t *b, int64_t spent_micro, int64_t held_micro)
{
    atomic_fetch_add(&g_alerts, 1);
    gw_metrics_budget_alert(b->key_id != 0, (int)b->policy);
    tg_warn("budget alert: team %" PRId64 "%s budget %" PRId64
            " passed its soft threshold of %" PRId64 " micro-%s in period %s (spent %" PRId64
            ", held %" PRId64 "); policy %s",
            b->team_id, b->key_id ? " key" : "", b->id, b->soft_micro, b->currency, b->period_id,
            spent_micro, held_micro,
            b->policy == GW_SOFT_DOWNGRADE ? "downgrade"
            : b->policy == GW_SOFT_CHEAPER ? "cheaper"
            : b->policy == GW_SOFT_REFUSE  ? "refuse"
                                           : "alert");
    if (!b->webhook[0])
        return;
    char host[256];
    int port;
    const char *path;
    if (split_url(b->webhook, host, sizeof host, &port, &path) < 0) {
        gw_metrics_budget_webhook(0);
        tg_warn("budget alert: webhook URL %s is not http://host[:port]/path", b->webhook);
        return;
    }
    struct evhttp_connection *c =
        evhttp_connection_base_new(gw->w->base, gw->w->dns, host, (unsigned short)port);
    if (!c) {
        gw_metrics_budget_webhook(0);
        tg_warn("budget alert: cannot create a connection to %s", b->webhook);
        return;
    }
    evhttp_connection_set_timeout(c, 5);
    char *url = strdup(b->webhook);
    if (!url)
        abort();
    struct evhttp_request *req = evhttp_request_new(on_webhook_done, url);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%d", host, port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json");
    evbuffer_add_printf(evhttp_request_get_output_buffer(req),
                        "{\"event\":\"budget.soft_threshold_crossed\",\"team_id\":%" PRId64
                        ",\"key_id\":%" PRId64 ",\"budget_id\":%" PRId64
                        ",\"currency\":\"%s\",\"period\":\"%s\",\"soft_micro\":\"%" PRId64
                        "\",\"hard_micro\":\"%" PRId64 "\",\"spent_micro\":\"%" PRId64
                        "\",\"held_micro\":\"%" PRId64 "\"}",
                        b->team_id, b->key_id, b->id, b->currency, b->period_id, b->soft_micro,
                        b->hard_micro, spent_micro, held_micro);
    if (evhttp_make_request(c, req, EVHTTP_REQ_POST, path) != 0) {
        /* libevent freed req */
        free(url);
        evhttp_connection_free(c);
        gw_metrics_budget_webhook(0);
        tg_warn("budget alert: cannot post to %s", b->webhook);
        return;
    }
    evhttp_connection_free_on_completion(c);
}
