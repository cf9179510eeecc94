/* gw_admin_prices: HTTP handlers for price administration on the admin
 * listener: GET /prices, /prices/history, /prices/preview, POST /prices/cards,
 * /prices/windows, /prices/windows/{id}/end, and GET/POST /quote. Writes and
 * validation go through gw_price_admin (shared with tollgatectl); money is
 * always a decimal string, instants RFC 3339. */
#include "gw_admin_prices.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_admin_http.h"
#include "gw_http.h"
#include "gw_pgconn.h"
#include "gw_price_admin.h"
#include "tg_log.h"

/* ---- small helpers ---------------------------------------------------------- */

static int64_t ap_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Adds micro-units per 1M tokens as a decimal string. */
static void ap_add_micro(cJSON *o, const char *name, int64_t micro)
{
    char buf[64];
    pr_pico_format((pr_pico_t)micro * 1000000, 0, buf, sizeof buf);
    cJSON_AddStringToObject(o, name, buf);
}

/* Adds an exact amount as "<name>" (decimal) and "<name>_pico" (integer). */
static void ap_add_pico(cJSON *o, const char *name, pr_pico_t v)
{
    char buf[64], key[64];
    pr_pico_format(v, 0, buf, sizeof buf);
    cJSON_AddStringToObject(o, name, buf);
    pr_pico_format_int(v, buf, sizeof buf);
    snprintf(key, sizeof key, "%s_pico", name);
    cJSON_AddStringToObject(o, key, buf);
}

static void ap_add_rounded(cJSON *o, pr_pico_t total, const pr_currency_t *cur)
{
    char buf[64];
    pr_pico_t r;
    pr_pico_round(total, cur->minor, &r);
    pr_pico_format(r, cur->minor, buf, sizeof buf);
    cJSON_AddStringToObject(o, "rounded", buf);
}

/* Parses the query string into q (always initialized; evhttp_clear_headers
 * after). False after answering 400. */
static bool ap_query(struct evhttp_request *req, struct evkeyvalq *q)
{
    TAILQ_INIT(q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && evhttp_parse_query_str(query, q) != 0) {
        gw_admin_fail(req, 400, NULL, "The query string could not be parsed.");
        return false;
    }
    return true;
}

/* A required query parameter; NULL after answering 400. */
static const char *ap_need(struct evhttp_request *req, const struct evkeyvalq *q,
                           const char *name)
{
    const char *v = evhttp_find_header(q, name);
    if (!v || !*v) {
        char msg[128];
        snprintf(msg, sizeof msg, "Query parameter '%s' is required.", name);
        gw_admin_fail(req, 400, name, msg);
        return NULL;
    }
    return v;
}

/* An optional instant parameter (default now). False after answering 400. */
static bool ap_instant(struct evhttp_request *req, const char *name, const char *text,
                       int64_t *out)
{
    char err[512];
    if (!text) {
        *out = ap_now_us();
        return true;
    }
    if (gw_price_instant_parse(name, text, out, err, sizeof err) != 0) {
        gw_admin_fail(req, 400, name, err);
        return false;
    }
    return true;
}

/* A token count 0..PR_TOKENS_MAX from text. False after answering 400. */
static bool ap_tokens(struct evhttp_request *req, const char *name, const char *text,
                      int64_t *out)
{
    char err[256];
    if (gw_price_int_parse(name, text, 0, PR_TOKENS_MAX, out, err, sizeof err) != 0) {
        gw_admin_fail(req, 400, name, err);
        return false;
    }
    return true;
}

/* Reads field `name` as text: a string, or an integer number (never a
 * fraction: money and percentages are decimal strings). *out NULL when the
 * field is absent or null. False after answering 400. */
static bool ap_field(struct evhttp_request *req, const cJSON *body, const char *name,
                     bool allow_int, char numbuf[32], const char **out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    *out = NULL;
    if (!f || cJSON_IsNull(f))
        return true;
    if (cJSON_IsString(f)) {
        *out = f->valuestring;
        return true;
    }
    if (allow_int && cJSON_IsNumber(f) && f->valuedouble == floor(f->valuedouble) &&
        fabs(f->valuedouble) < 9007199254740992.0) {
        snprintf(numbuf, 32, "%lld", (long long)f->valuedouble);
        *out = numbuf;
        return true;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "Field '%s' must be %s.", name,
             allow_int ? "a string or a whole number" : "a string (money is a decimal string "
                                                        "such as \"0.27\")");
    gw_admin_fail(req, 400, name, msg);
    return false;
}

/* A required text field. False after answering 400. */
static bool ap_field_need(struct evhttp_request *req, const cJSON *body, const char *name,
                          bool allow_int, char numbuf[32], const char **out)
{
    if (!ap_field(req, body, name, allow_int, numbuf, out))
        return false;
    if (!*out) {
        char msg[128];
        snprintf(msg, sizeof msg, "Field '%s' is required.", name);
        gw_admin_fail(req, 400, name, msg);
        return false;
    }
    return true;
}

/* A money field into *out (absent: *out = dflt unless required). */
static bool ap_money(struct evhttp_request *req, const cJSON *body, const char *name,
                     bool required, int64_t dflt, int64_t *out)
{
    char nb[32], err[512];
    const char *t;
    if (!(required ? ap_field_need : ap_field)(req, body, name, false, nb, &t))
        return false;
    if (!t) {
        *out = dflt;
        return true;
    }
    if (gw_price_money_parse(name, t, out, err, sizeof err) != 0) {
        gw_admin_fail(req, 400, name, err);
        return false;
    }
    return true;
}

/* Answers a gw_price_admin status with its message. */
static void ap_refused(struct evhttp_request *req, int status, const char *err)
{
    gw_admin_fail(req, status >= 400 && status < 600 ? status : 500, NULL, err);
}

/* ---- GET /prices and /prices/history ----------------------------------------- */

#define AP_CARD_COLS                                                                               \
    " h.id, h.provider, h.model, h.currency, h.cache_hit_price, h.cache_miss_price,"               \
    " h.output_price, h.reasoning_price, (extract(epoch FROM h.effective_from) * 1000000)::bigint," \
    " (extract(epoch FROM h.effective_until) * 1000000)::bigint, h.note"

static int64_t ap_ll(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static cJSON *ap_cards_json(const PGresult *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (int r = 0; r < PQntuples(res); r++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "id", (double)ap_ll(res, r, 0));
        cJSON_AddStringToObject(c, "provider", PQgetvalue(res, r, 1));
        cJSON_AddStringToObject(c, "model", PQgetvalue(res, r, 2));
        cJSON_AddStringToObject(c, "currency", PQgetvalue(res, r, 3));
        ap_add_micro(c, "hit", ap_ll(res, r, 4));
        ap_add_micro(c, "miss", ap_ll(res, r, 5));
        ap_add_micro(c, "output", ap_ll(res, r, 6));
        if (PQgetisnull(res, r, 7))
            cJSON_AddNullToObject(c, "reasoning"); /* = the output price */
        else
            ap_add_micro(c, "reasoning", ap_ll(res, r, 7));
        gw_admin_add_instant(c, "effective_from", ap_ll(res, r, 8));
        gw_admin_add_instant(c, "effective_until",
                       PQgetisnull(res, r, 9) ? PR_FOREVER : ap_ll(res, r, 9));
        if (PQgetisnull(res, r, 10))
            cJSON_AddNullToObject(c, "note");
        else
            cJSON_AddStringToObject(c, "note", PQgetvalue(res, r, 10));
        cJSON_AddItemToArray(arr, c);
    }
    return arr;
}

/* Runs a read query; NULL after answering 503. */
static PGresult *ap_read(PGconn *conn, struct evhttp_request *req, const char *sql, int n,
                         const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char err[1536];
        int st = gw_price_admin_refusal(conn, res, "reading prices", err, sizeof err);
        PQclear(res);
        ap_refused(req, st == GW_PA_INVALID ? 400 : st, err);
        return NULL;
    }
    return res;
}

static void ap_list(gw_server_t *s, struct evhttp_request *req, const struct evkeyvalq *q)
{
    int64_t at;
    if (!ap_instant(req, "at", evhttp_find_header(q, "at"), &at))
        return;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin prices");
    if (!conn)
        return;
    char attxt[40];
    pr_instant_format(at, attxt, sizeof attxt);
    const char *params[] = {attxt, evhttp_find_header(q, "provider"),
                            evhttp_find_header(q, "model")};
    PGresult *res = ap_read(
        conn, req,
        "SELECT" AP_CARD_COLS " FROM price_card_history h"
        " WHERE h.effective_from <= $1::timestamptz"
        "   AND (h.effective_until IS NULL OR h.effective_until > $1::timestamptz)"
        "   AND ($2::text IS NULL OR h.provider = $2) AND ($3::text IS NULL OR h.model = $3)"
        " ORDER BY h.provider, h.model",
        3, params);
    if (res) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "at", attxt);
        cJSON_AddItemToObject(o, "cards", ap_cards_json(res));
        gw_admin_reply(req, 200, o);
        PQclear(res);
    }
    PQfinish(conn);
}

static cJSON *ap_windows_json(const PGresult *w)
{
    static const char *days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    cJSON *arr = cJSON_CreateArray();
    for (int r = 0; r < PQntuples(w); r++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)ap_ll(w, r, 0));
        cJSON_AddNumberToObject(o, "card", (double)ap_ll(w, r, 1));
        const char *kind = PQgetvalue(w, r, 2);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddNumberToObject(o, "precedence", (double)ap_ll(w, r, 3));
        gw_admin_add_instant(o, "valid_from", ap_ll(w, r, 4));
        gw_admin_add_instant(o, "valid_until", PQgetisnull(w, r, 5) ? PR_FOREVER : ap_ll(w, r, 5));
        if (!strcmp(kind, "daily")) {
            char t[16], wd[40] = "";
            cJSON_AddStringToObject(o, "zone", PQgetvalue(w, r, 6));
            for (int k = 0; k < 2; k++) {
                int64_t sec = ap_ll(w, r, 7 + k);
                snprintf(t, sizeof t, "%02d:%02d:%02d", (int)(sec / 3600), (int)(sec / 60 % 60),
                         (int)(sec % 60));
                cJSON_AddStringToObject(o, k ? "end" : "start", t);
            }
            int mask = (int)ap_ll(w, r, 9);
            for (int d = 0; d < 7; d++)
                if (mask & (1 << d))
                    snprintf(wd + strlen(wd), sizeof wd - strlen(wd), "%s%s", wd[0] ? "," : "",
                             days[d]);
            cJSON_AddStringToObject(o, "weekdays", wd);
        }
        if (PQgetisnull(w, r, 10))
            cJSON_AddNullToObject(o, "calendar");
        else
            cJSON_AddNumberToObject(o, "calendar", (double)ap_ll(w, r, 10));
        ap_add_micro(o, "hit", ap_ll(w, r, 11));
        ap_add_micro(o, "miss", ap_ll(w, r, 12));
        ap_add_micro(o, "output", ap_ll(w, r, 13));
        ap_add_micro(o, "reasoning", ap_ll(w, r, 14));
        if (PQgetisnull(w, r, 15)) {
            cJSON_AddNullToObject(o, "percent_off");
        } else {
            char pct[24];
            int64_t bp = ap_ll(w, r, 15);
            snprintf(pct, sizeof pct, "%lld.%02lld", (long long)(bp / 100), (long long)(bp % 100));
            cJSON_AddStringToObject(o, "percent_off", pct);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void ap_history(gw_server_t *s, struct evhttp_request *req, const struct evkeyvalq *q)
{
    const char *prov = ap_need(req, q, "provider");
    const char *model = prov ? ap_need(req, q, "model") : NULL;
    if (!model)
        return;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin prices");
    if (!conn)
        return;
    const char *params[] = {prov, model};
    PGresult *res = ap_read(conn, req,
                            "SELECT" AP_CARD_COLS " FROM price_card_history h"
                            " WHERE h.provider = $1 AND h.model = $2 ORDER BY h.effective_from",
                            2, params);
    PGresult *win =
        res ? ap_read(conn, req,
                      "SELECT w.id, w.card_id, w.kind, w.precedence,"
                      " (extract(epoch FROM w.valid_from) * 1000000)::bigint,"
                      " (extract(epoch FROM w.valid_until) * 1000000)::bigint,"
                      " w.zone, w.start_second, w.end_second, w.weekdays, w.calendar_id,"
                      " w.cache_hit_price, w.cache_miss_price, w.output_price,"
                      " COALESCE(w.reasoning_price, w.output_price), w.percent_off_bp"
                      " FROM discount_windows w JOIN price_cards c ON c.id = w.card_id"
                      " WHERE c.provider = $1 AND c.model = $2 ORDER BY w.valid_from, w.id",
                      2, params)
            : NULL;
    if (res && win) {
        if (PQntuples(res) == 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "No price card for %s/%s (see GET /prices).", prov, model);
            gw_admin_fail(req, 404, "model", msg);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "provider", prov);
            cJSON_AddStringToObject(o, "model", model);
            cJSON_AddItemToObject(o, "cards", ap_cards_json(res));
            cJSON_AddItemToObject(o, "windows", ap_windows_json(win));
            gw_admin_reply(req, 200, o);
        }
    }
    PQclear(res);
    PQclear(win);
    PQfinish(conn);
}

/* ---- GET /prices/preview ------------------------------------------------------ */

static cJSON *ap_card_ref(const pr_card_t *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)c->id);
    cJSON_AddStringToObject(o, "provider", c->provider);
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddStringToObject(o, "currency", c->currency->code);
    gw_admin_add_instant(o, "effective_from", c->effective_from_us);
    gw_admin_add_instant(o, "effective_until", c->effective_until_us);
    return o;
}

static cJSON *ap_window_ref(const pr_window_t *w)
{
    static const char *kinds[] = {"once", "daily", "holiday"};
    if (!w)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)w->id);
    cJSON_AddStringToObject(o, "kind", kinds[w->kind]);
    cJSON_AddNumberToObject(o, "precedence", w->precedence);
    return o;
}

static void ap_preview(gw_server_t *s, struct evhttp_request *req, const struct evkeyvalq *q)
{
    const char *prov = ap_need(req, q, "provider");
    const char *model = prov ? ap_need(req, q, "model") : NULL;
    const char *attxt = model ? ap_need(req, q, "at") : NULL;
    if (!attxt)
        return;
    static const char *names[] = {"hit", "miss", "output"};
    int64_t at, n[3], reas = 0;
    if (!ap_instant(req, "at", attxt, &at))
        return;
    for (int k = 0; k < 3; k++) {
        const char *v = ap_need(req, q, names[k]);
        if (!v || !ap_tokens(req, names[k], v, &n[k]))
            return;
    }
    const char *rtxt = evhttp_find_header(q, "reasoning");
    if (rtxt && !ap_tokens(req, "reasoning", rtxt, &reas))
        return;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin prices");
    if (!conn)
        return;
    char err[1536];
    int status;
    pr_book_t *book = gw_price_admin_book_load(conn, &status, err, sizeof err);
    PQfinish(conn);
    if (!book) {
        ap_refused(req, status, err);
        return;
    }
    pr_usage_t u = {n[0] + n[1], n[0], n[1], n[2] + reas, rtxt ? reas : -1, true};
    pr_charge_t ch;
    if (pr_price_usage(book, prov, model, at, at, &u, &ch, err, sizeof err) != 0) {
        gw_admin_fail(req, 404, "model", err);
        pr_book_free(book);
        return;
    }
    static const char *cls[PR_C_COUNT] = {"cache_hit", "cache_miss", "output", "reasoning"};
    const int64_t prices[PR_C_COUNT] = {ch.prices.cache_hit, ch.prices.cache_miss,
                                        ch.prices.output, ch.prices.reasoning};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "card", ap_card_ref(ch.card));
    cJSON_AddItemToObject(o, "window", ap_window_ref(ch.window));
    gw_admin_add_instant(o, "decided_at", ch.decided_at_us);
    cJSON_AddStringToObject(o, "currency", ch.card->currency->code);
    cJSON *comps = cJSON_AddArrayToObject(o, "components");
    for (int k = 0; k < PR_C_COUNT; k++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "class", cls[k]);
        cJSON_AddNumberToObject(c, "tokens", (double)ch.tokens[k]);
        ap_add_micro(c, "price", prices[k]);
        ap_add_pico(c, "cost", ch.cost[k]);
        cJSON_AddItemToArray(comps, c);
    }
    ap_add_pico(o, "total", ch.total);
    ap_add_rounded(o, ch.total, ch.card->currency);
    cJSON_AddNumberToObject(o, "flags", ch.flags);
    gw_admin_reply(req, 200, o);
    pr_book_free(book);
}

/* ---- POST /prices/cards, /prices/windows, /prices/windows/{id}/end ----------- */

static void ap_card_add(gw_server_t *s, struct evhttp_request *req)
{
    const char *actor = gw_admin_actor(req);
    cJSON *b = actor ? gw_admin_body(req) : NULL;
    if (!b)
        return;
    char nb[4][32], err[1536];
    gw_price_card_new_t c = {0};
    const char *from;
    if (!ap_field_need(req, b, "provider", false, nb[0], &c.provider) ||
        !ap_field_need(req, b, "model", false, nb[0], &c.model) ||
        !ap_field_need(req, b, "currency", false, nb[0], &c.currency) ||
        !ap_money(req, b, "hit", true, 0, &c.prices.cache_hit) ||
        !ap_money(req, b, "miss", true, 0, &c.prices.cache_miss) ||
        !ap_money(req, b, "output", true, 0, &c.prices.output) ||
        !ap_money(req, b, "reasoning", false, -1, &c.prices.reasoning) ||
        !ap_field_need(req, b, "from", false, nb[1], &from) ||
        !ap_field(req, b, "note", false, nb[2], &c.note) ||
        !ap_instant(req, "from", from, &c.from_us))
        goto done;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin prices");
    if (!conn)
        goto done;
    int64_t id;
    int st = gw_price_admin_card_add(conn, actor, &c, &id, err, sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ap_refused(req, st, err);
        goto done;
    }
    tg_info("admin: %s added price card %lld (%s/%s)", actor, (long long)id, c.provider, c.model);
    cJSON *o = cJSON_CreateObject();
    cJSON *card = cJSON_AddObjectToObject(o, "card");
    cJSON_AddNumberToObject(card, "id", (double)id);
    cJSON_AddStringToObject(card, "provider", c.provider);
    cJSON_AddStringToObject(card, "model", c.model);
    cJSON_AddStringToObject(card, "currency", c.currency);
    ap_add_micro(card, "hit", c.prices.cache_hit);
    ap_add_micro(card, "miss", c.prices.cache_miss);
    ap_add_micro(card, "output", c.prices.output);
    if (c.prices.reasoning < 0)
        cJSON_AddNullToObject(card, "reasoning");
    else
        ap_add_micro(card, "reasoning", c.prices.reasoning);
    gw_admin_add_instant(card, "effective_from", c.from_us);
    gw_admin_reply(req, 201, o);
done:
    cJSON_Delete(b);
}

/* Reads the window fields of body `b` into *w. False after answering 400. */
static bool ap_window_fields(struct evhttp_request *req, const cJSON *b, gw_price_window_new_t *w)
{
    char nb[8][32], err[512];
    const char *card, *kind, *prec, *from, *until, *start, *end, *wd, *excl, *cal, *pct;
    int64_t v;
    memset(w, 0, sizeof *w);
    if (!ap_field_need(req, b, "card", true, nb[0], &card) ||
        !ap_field_need(req, b, "kind", false, nb[1], &kind) ||
        !ap_field_need(req, b, "precedence", true, nb[2], &prec) ||
        !ap_field(req, b, "from", false, nb[3], &from) ||
        !ap_field(req, b, "until", false, nb[3], &until) ||
        !ap_field(req, b, "zone", false, nb[3], &w->zone) ||
        !ap_field(req, b, "start", false, nb[3], &start) ||
        !ap_field(req, b, "end", false, nb[3], &end) ||
        !ap_field(req, b, "weekdays", false, nb[3], &wd) ||
        !ap_field(req, b, "exclude_calendar", true, nb[4], &excl) ||
        !ap_field(req, b, "calendar", true, nb[5], &cal) ||
        !ap_field(req, b, "percent_off", true, nb[6], &pct) ||
        !ap_field(req, b, "note", false, nb[7], &w->note))
        return false;
    const char *bad = NULL;
    if (gw_price_int_parse("card", card, 1, INT64_MAX / 10, &w->card_id, err, sizeof err) != 0)
        bad = "card";
    else if (gw_price_int_parse("precedence", prec, -1000000, 1000000, &v, err, sizeof err) != 0)
        bad = "precedence";
    if (bad) {
        gw_admin_fail(req, 400, bad, err);
        return false;
    }
    w->precedence = (int32_t)v;
    if (!strcmp(kind, "once")) {
        w->kind = PR_WIN_ONCE;
    } else if (!strcmp(kind, "daily")) {
        w->kind = PR_WIN_DAILY;
    } else if (!strcmp(kind, "holiday")) {
        w->kind = PR_WIN_HOLIDAY;
    } else {
        gw_admin_fail(req, 400, "kind", "Field 'kind' must be \"once\", \"daily\" or \"holiday\".");
        return false;
    }
    if ((from && !ap_instant(req, "from", from, &w->from_us)) ||
        (until && !ap_instant(req, "until", until, &w->until_us)))
        return false;
    w->has_from = from != NULL;
    w->has_until = until != NULL;
    if ((start || end || wd || excl) && w->kind != PR_WIN_DAILY) {
        gw_admin_fail(req, 400, NULL, "start, end, weekdays and exclude_calendar are for daily windows.");
        return false;
    }
    if (w->kind == PR_WIN_DAILY) {
        if (!start || !end) {
            gw_admin_fail(req, 400, start ? "end" : "start",
                    "A daily window needs zone, start and end (local HH:MM).");
            return false;
        }
        bad = gw_price_clock_parse("start", start, false, &w->start_sec, err, sizeof err) != 0
                  ? "start"
              : gw_price_clock_parse("end", end, true, &w->end_sec, err, sizeof err) != 0 ? "end"
              : wd && gw_price_weekdays_parse("weekdays", wd, &w->weekdays, err, sizeof err) != 0
                  ? "weekdays"
              : excl && gw_price_int_parse("exclude_calendar", excl, 1, INT64_MAX / 10,
                                           &w->calendar_id, err, sizeof err) != 0
                  ? "exclude_calendar"
                  : NULL;
    } else if (w->kind == PR_WIN_HOLIDAY && cal) {
        if (gw_price_int_parse("calendar", cal, 1, INT64_MAX / 10, &w->calendar_id, err,
                               sizeof err) != 0)
            bad = "calendar";
    } else if (cal) {
        snprintf(err, sizeof err, "calendar is for holiday windows.");
        bad = "calendar";
    }
    if (bad) {
        gw_admin_fail(req, 400, bad, err);
        return false;
    }
    bool explicit_prices = cJSON_GetObjectItemCaseSensitive(b, "hit") ||
                           cJSON_GetObjectItemCaseSensitive(b, "miss") ||
                           cJSON_GetObjectItemCaseSensitive(b, "output") ||
                           cJSON_GetObjectItemCaseSensitive(b, "reasoning");
    if ((pct != NULL) == explicit_prices) {
        gw_admin_fail(req, 400, "percent_off",
                "Give either percent_off or hit, miss and output (explicit prices), not both.");
        return false;
    }
    if (pct) {
        w->use_percent = true;
        if (gw_price_percent_parse("percent_off", pct, &w->percent_off_bp, err, sizeof err) != 0) {
            gw_admin_fail(req, 400, "percent_off", err);
            return false;
        }
        return true;
    }
    return ap_money(req, b, "hit", true, 0, &w->prices.cache_hit) &&
           ap_money(req, b, "miss", true, 0, &w->prices.cache_miss) &&
           ap_money(req, b, "output", true, 0, &w->prices.output) &&
           ap_money(req, b, "reasoning", false, -1, &w->prices.reasoning);
}

static void ap_window_add(gw_server_t *s, struct evhttp_request *req)
{
    const char *actor = gw_admin_actor(req);
    cJSON *b = actor ? gw_admin_body(req) : NULL;
    if (!b)
        return;
    gw_price_window_new_t w;
    char err[1536];
    if (!ap_window_fields(req, b, &w))
        goto done;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin prices");
    if (!conn)
        goto done;
    int64_t id;
    pr_prices_t saved;
    int st = gw_price_admin_window_add(conn, actor, &w, &id, &saved, err, sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ap_refused(req, st, err);
        goto done;
    }
    static const char *kinds[] = {"once", "daily", "holiday"};
    tg_info("admin: %s added %s window %lld on card %lld", actor, kinds[w.kind], (long long)id,
            (long long)w.card_id);
    cJSON *o = cJSON_CreateObject();
    cJSON *win = cJSON_AddObjectToObject(o, "window");
    cJSON_AddNumberToObject(win, "id", (double)id);
    cJSON_AddNumberToObject(win, "card", (double)w.card_id);
    cJSON_AddStringToObject(win, "kind", kinds[w.kind]);
    cJSON_AddNumberToObject(win, "precedence", w.precedence);
    ap_add_micro(win, "hit", saved.cache_hit);
    ap_add_micro(win, "miss", saved.cache_miss);
    ap_add_micro(win, "output", saved.output);
    ap_add_micro(win, "reasoning", saved.reasoning);
    gw_admin_reply(req, 201, o);
done:
    cJSON_Delete(b);
}

static void ap_window_end(gw_server_t *s, struct evhttp_request *req, const char *idtxt)
{
    char err[1536], nb[32];
    int64_t id, at;
    if (gw_price_int_parse("window id", idtxt, 1, INT64_MAX / 10, &id, err, sizeof err) != 0) {
        gw_admin_fail(req, 404, NULL, err);
        return;
    }
    const char *actor = gw_admin_actor(req);
    cJSON *b = actor ? gw_admin_body(req) : NULL;
    if (!b)
        return;
    const char *attxt;
    if (!ap_field_need(req, b, "at", false, nb, &attxt) || !ap_instant(req, "at", attxt, &at))
        goto done;
    PGconn *conn = gw_admin_connect(s->cfg->postgres, req, "admin prices");
    if (!conn)
        goto done;
    int st = gw_price_admin_window_end(conn, actor, id, at, err, sizeof err);
    PQfinish(conn);
    if (st != GW_PA_OK) {
        ap_refused(req, st, err);
        goto done;
    }
    tg_info("admin: %s ended window %lld", actor, (long long)id);
    cJSON *o = cJSON_CreateObject();
    cJSON *win = cJSON_AddObjectToObject(o, "window");
    cJSON_AddNumberToObject(win, "id", (double)id);
    gw_admin_add_instant(win, "valid_until", at);
    gw_admin_reply(req, 200, o);
done:
    cJSON_Delete(b);
}

/* ---- GET/POST /quote ----------------------------------------------------------- */

/* Answers the quote of gateway model `m` from the live price book. */
static void ap_quote_send(gw_server_t *s, struct evhttp_request *req, const gw_model_cfg_t *m,
                          int64_t at, int64_t prompt, bool exact, int64_t max_tokens)
{
    const pr_book_t *book = gw_pricebook_acquire(s->prices);
    if (!book) {
        gw_admin_fail(req, 503, NULL, "The gateway has not loaded its price book yet; try again.");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "tollgate.quote");
    cJSON_AddStringToObject(o, "model", m->name);
    gw_admin_add_instant(o, "at", at);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)prompt);
    cJSON_AddBoolToObject(o, "prompt_tokens_exact", exact);
    cJSON_AddNumberToObject(o, "max_tokens", (double)max_tokens);
    cJSON *routes = cJSON_AddArrayToObject(o, "routes");
    cJSON *unpriced = cJSON_AddArrayToObject(o, "unpriced");
    for (int i = 0; i < m->n_routes; i++) {
        const char *prov = s->cfg->providers[m->routes[i].provider].name;
        const char *up = m->routes[i].upstream_model;
        gw_price_quote_t qt;
        char err[512];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "provider", prov);
        cJSON_AddStringToObject(r, "upstream_model", up);
        if (gw_price_admin_quote(book, prov, up, at, prompt, max_tokens, &qt, err, sizeof err) !=
            0) {
            cJSON_AddStringToObject(r, "message", err);
            cJSON_AddItemToArray(unpriced, r);
            continue;
        }
        cJSON_AddNumberToObject(r, "card", (double)qt.card->id);
        cJSON_AddItemToObject(r, "window", ap_window_ref(qt.window));
        cJSON_AddStringToObject(r, "priced_at", qt.use_window ? "window" : "card");
        cJSON_AddStringToObject(r, "currency", qt.card->currency->code);
        ap_add_pico(r, "prompt_cost", qt.prompt_cost);
        ap_add_pico(r, "completion_cost", qt.completion_cost);
        ap_add_pico(r, "total", qt.total);
        ap_add_rounded(r, qt.total, qt.card->currency);
        cJSON_AddItemToArray(routes, r);
    }
    gw_pricebook_release(s->prices, book);
    gw_admin_reply(req, 200, o);
}

static const gw_model_cfg_t *ap_model(gw_server_t *s, struct evhttp_request *req,
                                      const char *name)
{
    const gw_model_cfg_t *m = gw_config_model(s->cfg, name);
    if (!m) {
        char msg[256];
        snprintf(msg, sizeof msg, "The model '%.128s' does not exist on this gateway.", name);
        gw_http_send_error(req, 404, "invalid_request_error", "model_not_found", "model", "%s",
                           msg);
    }
    return m;
}

static void ap_quote_get(gw_server_t *s, struct evhttp_request *req, const struct evkeyvalq *q)
{
    const char *model = ap_need(req, q, "model");
    const char *pt = model ? ap_need(req, q, "prompt_tokens") : NULL;
    const char *mt = pt ? ap_need(req, q, "max_tokens") : NULL;
    int64_t prompt, max_tokens, at;
    if (!mt || !ap_tokens(req, "prompt_tokens", pt, &prompt) ||
        !ap_tokens(req, "max_tokens", mt, &max_tokens) ||
        !ap_instant(req, "at", evhttp_find_header(q, "at"), &at))
        return;
    const gw_model_cfg_t *m = ap_model(s, req, model);
    if (m)
        ap_quote_send(s, req, m, at, prompt, true, max_tokens);
}

/* Whether a body's messages or prompt have a shape gw_prompt_count can read. */
static bool ap_prompt_shape(const cJSON *b, bool *chat)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(b, "prompt");
    if (msgs) {
        *chat = true;
        if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
            return false;
        const cJSON *e;
        cJSON_ArrayForEach(e, msgs)
        {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsObject(e) ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "role")) ||
                (c && !cJSON_IsString(c) && !cJSON_IsArray(c) && !cJSON_IsNull(c)))
                return false;
        }
        return true;
    }
    *chat = false;
    if (cJSON_IsString(prompt))
        return true;
    if (!cJSON_IsArray(prompt))
        return false;
    const cJSON *e;
    cJSON_ArrayForEach(e, prompt) if (!cJSON_IsString(e) && !cJSON_IsNumber(e)) return false;
    return true;
}

static void ap_quote_post(gw_server_t *s, struct evhttp_request *req, const struct evkeyvalq *q)
{
    cJSON *b = gw_admin_body(req);
    if (!b)
        return;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(b, "model");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(b, "max_completion_tokens");
    if (!mt)
        mt = cJSON_GetObjectItemCaseSensitive(b, "max_tokens");
    const cJSON *at_j = cJSON_GetObjectItemCaseSensitive(b, "at");
    const char *attxt = cJSON_IsString(at_j) ? at_j->valuestring : evhttp_find_header(q, "at");
    bool chat;
    int64_t at;
    if (!cJSON_IsString(model)) {
        gw_admin_fail(req, 400, "model", "Field 'model' (a gateway model name) is required.");
    } else if (!cJSON_IsNumber(mt) || mt->valuedouble < 0 ||
               mt->valuedouble != floor(mt->valuedouble) ||
               mt->valuedouble > (double)PR_TOKENS_MAX) {
        gw_admin_fail(req, 400, "max_tokens",
                "A worst-case quote needs max_tokens (or max_completion_tokens): a whole number "
                "from 0.");
    } else if (!ap_prompt_shape(b, &chat)) {
        gw_admin_fail(req, 400, "messages",
                "Give 'messages' (an array of {role, content}) or 'prompt' (a string, or an "
                "array of strings or token ids).");
    } else if (ap_instant(req, "at", attxt, &at)) {
        const gw_model_cfg_t *m = ap_model(s, req, model->valuestring);
        if (m) {
            int mi = (int)(m - s->cfg->models);
            gw_prompt_count_t pc = gw_prompt_count(s->model_tokenizer[mi], b, chat);
            ap_quote_send(s, req, m, at, pc.tokens, pc.exact, (int64_t)mt->valuedouble);
        }
    }
    cJSON_Delete(b);
}

/* ---- dispatch ------------------------------------------------------------------- */

bool gw_admin_prices_owns(const char *path)
{
    return !strcmp(path, "/prices") || !strncmp(path, "/prices/", 8) || !strcmp(path, "/quote");
}

static bool ap_method(struct evhttp_request *req, enum evhttp_cmd_type want, const char *path)
{
    if (evhttp_request_get_command(req) == want)
        return true;
    gw_http_send_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                       "Use %s for %s.", want == EVHTTP_REQ_GET ? "GET" : "POST", path);
    return false;
}

void gw_admin_prices_handle(gw_server_t *s, struct evhttp_request *req, const char *path)
{
    struct evkeyvalq q;
    if (!ap_query(req, &q)) {
        evhttp_clear_headers(&q);
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    const char *prefix = "/prices/windows/";
    size_t plen = strlen(prefix), n = strlen(path);
    if (!strcmp(path, "/prices")) {
        if (ap_method(req, EVHTTP_REQ_GET, path))
            ap_list(s, req, &q);
    } else if (!strcmp(path, "/prices/history")) {
        if (ap_method(req, EVHTTP_REQ_GET, path))
            ap_history(s, req, &q);
    } else if (!strcmp(path, "/prices/preview")) {
        if (ap_method(req, EVHTTP_REQ_GET, path))
            ap_preview(s, req, &q);
    } else if (!strcmp(path, "/prices/cards")) {
        if (ap_method(req, EVHTTP_REQ_POST, path))
            ap_card_add(s, req);
    } else if (!strcmp(path, "/prices/windows")) {
        if (ap_method(req, EVHTTP_REQ_POST, path))
            ap_window_add(s, req);
    } else if (!strncmp(path, prefix, plen) && n > plen + 4 && n - plen - 4 < 24 &&
               !strcmp(path + n - 4, "/end")) {
        char id[24];
        snprintf(id, sizeof id, "%.*s", (int)(n - plen - 4), path + plen);
        if (ap_method(req, EVHTTP_REQ_POST, path))
            ap_window_end(s, req, id);
    } else if (!strcmp(path, "/quote")) {
        if (method == EVHTTP_REQ_POST)
            ap_quote_post(s, req, &q);
        else if (ap_method(req, EVHTTP_REQ_GET, path))
            ap_quote_get(s, req, &q);
    } else {
        gw_http_send_error(req, 404, "invalid_request_error", "unknown_url", NULL,
                           "Unknown admin URL: %s.", path);
    }
    evhttp_clear_headers(&q);
}
