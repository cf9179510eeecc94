/* gw_usage: the usage writer. Request threads append records (usage rows
 * and the gateway's own cost rows) to the durable spool (or, without one, to
 * an in-memory queue); one background thread sends them to PostgreSQL in
 * batches, each one transaction with ON CONFLICT DO NOTHING (in spool mode, a
 * backlog on several connections at once, confirmed in order), retrying with
 * back-off while PostgreSQL is unreachable; it also keeps the monthly
 * partitions of usage_events made ahead (migration 0004). See gw_usage.h. */
#include "gw_usage.h"

#include <cjson/cJSON.h>
#include "gw_spool_rec.h"
#include "pr_money.h"

#include "gw_pgconn.h"
#include "tg_log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UW_COLS 33 /* columns of the newest schema (migration 0013) */
#define UW_BATCH_LIMIT 5000 /* rows per statement, at most */
#define UW_BACKOFF_MIN_MS 100
#define UW_BACKOFF_MAX_MS 2000
#define UW_CONNECT_TIMEOUT_S 2
#define UW_PARTITIONS_EVERY_MS (3600 * 1000)
#define UW_LINKS_MAX 4 /* connections (batches in flight) in spool mode, at most */

/* One connection of the writer thread. */
typedef struct uw_link {
    PGconn *conn;             /* NULL: not connected */
    int64_t partitions_at_ms; /* last usage_partitions_ensure() */
    int schema;               /* which uw_schema the database has */
    bool staged;              /* its temporary table uw_stage exists: batches go by COPY */
    bool costs_table;         /* the database has gateway_costs (migration 0018) */
    /* The batch in flight on this link: */
    size_t skipped_costs; /* its cost records not sent (no gateway_costs): logged on success */
    char *tail;           /* unnest path: cost INSERT and COMMIT to send after its result */
} uw_link_t;

/* One record of either kind, as queued, read from the spool and batched. */
typedef struct uw_rec {
    bool is_cost;
    union {
        gw_usage_record_t usage;
        gw_gateway_cost_t cost;
    } u;
} uw_rec_t;

typedef struct uw_item {
    uw_rec_t rec;
    int64_t queued_ms;
} uw_item_t;

struct gw_usage_writer {
    char *conninfo;
    int batch_max;
    int flush_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    uw_item_t *items;  /* ring buffer: [head, head + count) modulo cap */
    size_t cap, head, count;
    bool stopping;
    int64_t stop_deadline_ms;
    uw_link_t links[UW_LINKS_MAX]; /* writer thread only */
    int nlinks;                    /* spool mode: connections with a batch in flight, at most */
    bool off;                      /* spool_ledger = off-for-benchmarks: submit discards */
    gw_spool_t *spool;             /* NULL: the in-memory queue above */
    int64_t oldest_ms;    /* spool mode: when the oldest unsent record came (-1: none, 0: due) */
    unsigned unsignalled; /* spool mode: appends since the thread was last woken */
    atomic_uint_fast64_t written;
    atomic_uint_fast64_t rejected;
    atomic_uint_fast64_t costs_written;
    atomic_uint_fast64_t costs_rejected;
};

typedef enum { UW_DONE, UW_RETRY } uw_result_t;

static int64_t uw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec uw_abs_time(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    return ts;
}

/* Makes a fixed-size text field safe for PostgreSQL: NUL-terminated and valid
 * UTF-8 (bytes that are not become '?'), so a client's odd model name can
 * never make a row unwritable. */
static void uw_text_sanitize(char *s, size_t size)
{
    s[size - 1] = '\0';
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xE0) == 0xC0 ? 2
                   : (*p & 0xF0) == 0xE0 ? 3
                   : (*p & 0xF8) == 0xF0 ? 4
                                         : 0;
        bool ok = n > 0;
        for (size_t i = 1; ok && i < n; i++)
            ok = (p[i] & 0xC0) == 0x80;
        if (ok && n == 2)
            ok = *p >= 0xC2; /* overlong */
        if (ok && n == 3)
            ok = !(*p == 0xE0 && p[1] < 0xA0) && !(*p == 0xED && p[1] >= 0xA0);
        if (ok && n == 4)
            ok = *p <= 0xF4 && !(*p == 0xF0 && p[1] < 0x90) && !(*p == 0xF4 && p[1] >= 0x90);
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* Logs a record that will not reach PostgreSQL, whole, on one line. */
static void uw_log_record(const char *why, const gw_usage_record_t *r)
{
    tg_error("usage writer: %s: request_id=%s team_id=%" PRId64 " key_id=%" PRId64
             " model=%s provider=%s upstream_model=%s endpoint=%s attempts=%d streamed=%d"
             " status=%d error=%s received_us=%" PRId64 " first_byte_us=%" PRId64
             " completed_us=%" PRId64 " prompt=%" PRId64 " cache_hit=%" PRId64
             " cache_miss=%" PRId64 " completion=%" PRId64 " reasoning=%" PRId64 " complete=%d",
             why, r->request_id, r->team_id, r->key_id, r->model_requested, r->provider,
             r->upstream_model, r->endpoint, r->attempts, r->streamed, r->http_status,
             r->error_type, r->received_at_us, r->first_byte_at_us, r->completed_at_us,
             r->prompt_tokens, r->cache_hit_tokens, r->cache_miss_tokens, r->completion_tokens,
             r->reasoning_tokens, r->usage_complete);
}

/* Logs a gateway cost record that will not reach PostgreSQL, whole, on one
 * line (every field, so that it can be inserted by hand). */
static void uw_log_cost(const char *why, const gw_gateway_cost_t *c)
{
    char charge[48];
    if (!pr_pico_format_int(c->charge_pico, charge, sizeof charge))
        snprintf(charge, sizeof charge, "?");
    tg_error("usage writer: %s: gateway cost request_id=%s attempt=%d reason=%s team_id=%" PRId64
             " key_id=%" PRId64 " model=%s provider=%s upstream_model=%s sent_us=%" PRId64
             " cancelled_us=%" PRId64 " prompt=%" PRId64 " prompt_exact=%d complete=%d"
             " price_card_id=%" PRId64 " discount_window_id=%" PRId64 " currency=%s"
             " charge_pico=%s",
             why, c->request_id, c->attempt, c->reason, c->team_id, c->key_id, c->model_requested,
             c->provider, c->upstream_model, c->sent_at_us, c->cancelled_at_us, c->prompt_tokens,
             c->prompt_exact, c->usage_complete, c->price_card_id, c->discount_window_id,
             c->charge_currency, charge);
}

/* Logs a record of either kind that will not reach PostgreSQL. */
static void uw_log_rec(const char *why, const uw_rec_t *r)
{
    if (r->is_cost)
        uw_log_cost(why, &r->u.cost);
    else
        uw_log_record(why, &r->u.usage);
}

/* A growing string; one PostgreSQL array literal per column. */
typedef struct uw_buf {
    char *s;
    size_t len, cap;
} uw_buf_t;

static void uw_buf_put(uw_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        b->s = realloc(b->s, cap);
        if (!b->s)
            abort();
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Appends one text element (NULL: SQL NULL), quoted and escaped as array
 * literal syntax wants: inside double quotes, '"' and '\' get a backslash. */
static void uw_arr_text(uw_buf_t *b, const char *s)
{
    if (!s) {
        uw_buf_put(b, "NULL", 4);
        return;
    }
    uw_buf_put(b, "\"", 1);
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "\"\\"); /* copied in runs, not byte by byte */
        uw_buf_put(b, p, run);
        p += run;
        if (*p) {
            char esc[2] = {'\\', *p++};
            uw_buf_put(b, esc, 2);
        }
    }
    uw_buf_put(b, "\"", 1);
}

/* Appends one integer element; negative means SQL NULL when null_if_negative. */
static void uw_arr_int(uw_buf_t *b, int64_t v, bool null_if_negative)
{
    char num[24], *p = num + sizeof num;
    if (null_if_negative && v < 0) {
        uw_buf_put(b, "NULL", 4);
        return;
    }
    /* By hand rather than snprintf: this runs about 20 times per row. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    uw_buf_put(b, p, (size_t)(num + sizeof num - p));
}

/* Appends record r to the 30 column arrays, in the order of uw_insert_sql. */
static void uw_arr_record(uw_buf_t *col, const gw_usage_record_t *r)
{
    uw_arr_text(&col[0], r->request_id);
    uw_arr_int(&col[1], r->team_id, false);
    uw_arr_int(&col[2], r->key_id, false);
    uw_arr_text(&col[3], r->model_requested);
    uw_arr_text(&col[4], r->provider[0] ? r->provider : NULL);
    uw_arr_text(&col[5], r->upstream_model[0] ? r->upstream_model : NULL);
    uw_arr_int(&col[6], r->attempts, false);
    uw_arr_text(&col[7], r->endpoint);
    uw_buf_put(&col[8], r->streamed ? "t" : "f", 1);
    uw_arr_int(&col[9], r->http_status, false);
    uw_arr_text(&col[10], r->error_type[0] ? r->error_type : NULL);
    uw_arr_int(&col[11], r->received_at_us, false);
    uw_arr_int(&col[12], r->first_byte_at_us > 0 ? r->first_byte_at_us : -1, true);
    uw_arr_int(&col[13], r->completed_at_us, false);
    uw_arr_int(&col[14], r->prompt_tokens, true);
    uw_arr_int(&col[15], r->cache_hit_tokens, true);
    uw_arr_int(&col[16], r->cache_miss_tokens, true);
    uw_arr_int(&col[17], r->completion_tokens, true);
    uw_arr_int(&col[18], r->reasoning_tokens, true);
    uw_buf_put(&col[19], r->usage_complete ? "t" : "f", 1);
    bool priced = r->price_card_id > 0;
    uw_arr_int(&col[20], priced ? r->price_card_id : -1, true);
    uw_arr_int(&col[21], priced && r->discount_window_id > 0 ? r->discount_window_id : -1, true);
    uw_arr_int(&col[22], priced ? r->priced_at_us : -1, true);
    uw_arr_text(&col[23], priced ? r->charge_currency : NULL);
    for (int c = 0; c < 5; c++) {
        char num[48];
        if (priced && pr_pico_format_int(c < 4 ? r->cost_pico[c] : r->charge_pico, num, sizeof num))
            uw_buf_put(&col[24 + c], num, strlen(num));
        else
            uw_buf_put(&col[24 + c], "NULL", 4);
    }
    uw_arr_int(&col[29], priced ? (int64_t)r->pricing_flags : -1, true);
    /* The route explanation goes to a jsonb column: text that is not valid
     * JSON would make PostgreSQL refuse the whole row, so it is checked here
     * and stored as NULL instead (a usage row is never lost over it). */
    cJSON *explain = r->route_explain[0] ? cJSON_Parse(r->route_explain) : NULL;
    uw_arr_text(&col[30], explain ? r->route_explain : NULL);
    cJSON_Delete(explain);
    uw_arr_int(&col[31], r->cache_predicted ? r->cache_hit_predicted_tokens : -1, true);
    uw_buf_put(&col[32], r->response_cache_hit ? "t" : "f", 1);
}

/* Appends one COPY text field (NULL: \N) with its separator before it
 * (none for the first); text is escaped as COPY's text format wants. */
static void uw_copy_text(uw_buf_t *b, const char *s, bool first)
{
    if (!first)
        uw_buf_put(b, "\t", 1);
    if (!s) {
        uw_buf_put(b, "\\N", 2);
        return;
    }
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "\\\t\n\r");
        uw_buf_put(b, p, run);
        p += run;
        if (*p) {
            char esc[2] = {'\\', *p == '\t' ? 't' : *p == '\n' ? 'n' : *p == '\r' ? 'r' : '\\'};
            uw_buf_put(b, esc, 2);
            p++;
        }
    }
}

/* An integer field; negative means NULL when null_if_negative. */
static void uw_copy_int(uw_buf_t *b, int64_t v, bool null_if_negative)
{
    uw_buf_put(b, "\t", 1);
    if (null_if_negative && v < 0) {
        uw_buf_put(b, "\\N", 2);
        return;
    }
    uw_arr_int(b, v, false); /* the digits */
}

/* Writes n digits of v, zero-padded, at p. */
static void uw_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

/* A timestamp field from unix microseconds, as "YYYY-MM-DD HH:MM:SS.ffffff+00"
 * (UTC, exact); NULL when null_if_not_positive and us <= 0, or outside years
 * 1..9999. Formatted by hand (three per row: strftime was a fifth of the
 * writer's CPU); the date from the day number by the civil-from-days
 * algorithm of the proleptic Gregorian calendar. */
static void uw_copy_time(uw_buf_t *b, int64_t us, bool null_if_not_positive)
{
    uw_buf_put(b, "\t", 1);
    int64_t day = us >= 0 ? us / 86400000000LL : -((-us + 86399999999LL) / 86400000000LL);
    int64_t in_day = us - day * 86400000000LL; /* 0 .. 86399999999 */
    int64_t z = day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    if ((null_if_not_positive && us <= 0) || y < 1 || y > 9999) {
        uw_buf_put(b, "\\N", 2);
        return;
    }
    char out[32] = "YYYY-MM-DD HH:MM:SS.ffffff+00";
    uw_digits(out, y, 4);
    uw_digits(out + 5, m, 2);
    uw_digits(out + 8, d, 2);
    uw_digits(out + 11, in_day / 3600000000LL, 2);
    uw_digits(out + 14, in_day / 60000000 % 60, 2);
    uw_digits(out + 17, in_day / 1000000 % 60, 2);
    uw_digits(out + 20, in_day % 1000000, 6);
    uw_buf_put(b, out, 29);
}

/* Appends record r as one line of COPY text with the first `columns`
 * columns of the newest schema, in the order of UW_COLUMNS_0013 (the same
 * values, NULLs and checks as uw_arr_record). */
static void uw_copy_record(uw_buf_t *b, const gw_usage_record_t *r, int columns)
{
    uw_copy_text(b, r->request_id, true);
    uw_copy_int(b, r->team_id, false);
    uw_copy_int(b, r->key_id, false);
    uw_copy_text(b, r->model_requested, false);
    uw_copy_text(b, r->provider[0] ? r->provider : NULL, false);
    uw_copy_text(b, r->upstream_model[0] ? r->upstream_model : NULL, false);
    uw_copy_int(b, r->attempts, false);
    uw_copy_text(b, r->endpoint, false);
    uw_copy_text(b, r->streamed ? "t" : "f", false);
    uw_copy_int(b, r->http_status, false);
    uw_copy_text(b, r->error_type[0] ? r->error_type : NULL, false);
    uw_copy_time(b, r->received_at_us, false);
    uw_copy_time(b, r->first_byte_at_us, true);
    uw_copy_time(b, r->completed_at_us, false);
    uw_copy_int(b, r->prompt_tokens, true);
    uw_copy_int(b, r->cache_hit_tokens, true);
    uw_copy_int(b, r->cache_miss_tokens, true);
    uw_copy_int(b, r->completion_tokens, true);
    uw_copy_int(b, r->reasoning_tokens, true);
    uw_copy_text(b, r->usage_complete ? "t" : "f", false);
    bool priced = r->price_card_id > 0;
    uw_copy_int(b, priced ? r->price_card_id : -1, true);
    uw_copy_int(b, priced && r->discount_window_id > 0 ? r->discount_window_id : -1, true);
    uw_copy_time(b, priced ? r->priced_at_us : -1, true);
    uw_copy_text(b, priced ? r->charge_currency : NULL, false);
    for (int c = 0; c < 5; c++) {
        char num[48];
        bool ok =
            priced && pr_pico_format_int(c < 4 ? r->cost_pico[c] : r->charge_pico, num, sizeof num);
        uw_copy_text(b, ok ? num : NULL, false);
    }
    uw_copy_int(b, priced ? (int64_t)r->pricing_flags : -1, true);
    if (columns > 30) {
        /* Not valid JSON: NULL, as in uw_arr_record (never lose the row). */
        cJSON *explain = r->route_explain[0] ? cJSON_Parse(r->route_explain) : NULL;
        uw_copy_text(b, explain ? r->route_explain : NULL, false);
        cJSON_Delete(explain);
    }
    if (columns > 31) {
        uw_copy_int(b, r->cache_predicted ? r->cache_hit_predicted_tokens : -1, true);
        uw_copy_text(b, r->response_cache_hit ? "t" : "f", false);
    }
    uw_buf_put(b, "\n", 1);
}

/* Appends one SQL literal for text s (NULL: SQL NULL), escaped by libpq for
 * the connection's settings. */
static void uw_sql_text(uw_buf_t *b, PGconn *conn, const char *s)
{
    char *lit = s ? PQescapeLiteral(conn, s, strlen(s)) : NULL;
    if (!lit) { /* NULL, or libpq could not escape it: the row is refused, logged */
        uw_buf_put(b, "NULL", 4);
        return;
    }
    uw_buf_put(b, lit, strlen(lit));
    PQfreemem(lit);
}

/* Appends a timestamptz expression for unix microseconds us (exact). */
static void uw_sql_time(uw_buf_t *b, int64_t us)
{
    uw_buf_put(b, "timestamptz 'epoch' + ", 22);
    uw_arr_int(b, us, false);
    uw_buf_put(b, " * interval '1 microsecond'", 27);
}

/* Builds into *b one INSERT INTO gateway_costs ... VALUES (...), ... ON
 * CONFLICT DO NOTHING for the cost records among recs[0..n) (literals
 * escaped with PQescapeLiteral: these rows are few, one per hedge lost).
 * Returns how many rows it holds (0: *b untouched). */
static size_t uw_cost_sql(uw_buf_t *b, PGconn *conn, const uw_rec_t *recs, size_t n)
{
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].is_cost)
            continue;
        const gw_gateway_cost_t *c = &recs[i].u.cost;
        static const char head[] =
            "INSERT INTO gateway_costs (request_id, attempt, reason, team_id, key_id,"
            " model_requested, provider, upstream_model, sent_at, cancelled_at, prompt_tokens,"
            " prompt_exact, usage_complete, price_card_id, discount_window_id, charge_currency,"
            " charge_pico) VALUES (";
        if (rows++ == 0)
            uw_buf_put(b, head, sizeof head - 1);
        else
            uw_buf_put(b, "), (", 4);
        bool priced = c->price_card_id > 0;
        char num[48];
        uw_sql_text(b, conn, c->request_id);
        uw_buf_put(b, ", ", 2);
        uw_arr_int(b, c->attempt, false);
        uw_buf_put(b, ", ", 2);
        uw_sql_text(b, conn, c->reason);
        uw_buf_put(b, ", ", 2);
        uw_arr_int(b, c->team_id, false);
        uw_buf_put(b, ", ", 2);
        uw_arr_int(b, c->key_id, false);
        uw_buf_put(b, ", ", 2);
        uw_sql_text(b, conn, c->model_requested);
        uw_buf_put(b, ", ", 2);
        uw_sql_text(b, conn, c->provider);
        uw_buf_put(b, ", ", 2);
        uw_sql_text(b, conn, c->upstream_model);
        uw_buf_put(b, ", ", 2);
        uw_sql_time(b, c->sent_at_us);
        uw_buf_put(b, ", ", 2);
        uw_sql_time(b, c->cancelled_at_us);
        uw_buf_put(b, ", ", 2);
        uw_arr_int(b, c->prompt_tokens, true);
        uw_buf_put(b, c->prompt_exact ? ", true, " : ", false, ", c->prompt_exact ? 8 : 9);
        uw_buf_put(b, c->usage_complete ? "true, " : "false, ", c->usage_complete ? 6 : 7);
        uw_arr_int(b, priced ? c->price_card_id : -1, true);
        uw_buf_put(b, ", ", 2);
        uw_arr_int(b, priced && c->discount_window_id > 0 ? c->discount_window_id : -1, true);
        uw_buf_put(b, ", ", 2);
        uw_sql_text(b, conn, priced ? c->charge_currency : NULL);
        uw_buf_put(b, ", ", 2);
        if (priced && pr_pico_format_int(c->charge_pico, num, sizeof num))
            uw_buf_put(b, num, strlen(num));
        else
            uw_buf_put(b, "NULL", 4);
    }
    if (rows)
        uw_buf_put(b, ") ON CONFLICT DO NOTHING", 24);
    return rows;
}

/* One statement for any batch size: each column travels as one array and
 * unnest() turns them back into rows. The text is constant, so PostgreSQL's
 * parse and plan cost does not grow with the batch (a multi-row VALUES list
 * of 20 x n parameters was 4x slower). Timestamps travel as integer
 * microseconds and become timestamptz exactly (no floating point). */
#define UW_COLUMNS                                                                         \
    "request_id, team_id, key_id, model_requested, provider, upstream_model, attempts,"    \
    " endpoint, streamed, http_status, error_type, received_at, first_byte_at,"            \
    " completed_at, prompt_tokens, cache_hit_tokens, cache_miss_tokens, completion_tokens," \
    " reasoning_tokens, usage_complete, price_card_id, discount_window_id,"                \
    " priced_at_instant, charge_currency, cost_cache_hit_pico, cost_cache_miss_pico,"      \
    " cost_output_pico, cost_reasoning_pico, charge_pico, pricing_flags"
#define UW_VALUES                                                                          \
    "rid, tid, kid, mr, pr, um, att, ep, st, hs, et,"                                      \
    " timestamptz 'epoch' + ra * interval '1 microsecond',"                                \
    " timestamptz 'epoch' + fb * interval '1 microsecond',"                                \
    " timestamptz 'epoch' + ca * interval '1 microsecond',"                                \
    " pt, cht, cmt, ct, rt, uc, pcid, dwid,"                                               \
    " timestamptz 'epoch' + pat * interval '1 microsecond',"                               \
    " cur, chit, cmiss, cout, creas, ctot, pfl"
#define UW_ARRAYS                                                                          \
    "$1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],"          \
    " $7::int[], $8::text[], $9::boolean[], $10::int[], $11::text[], $12::bigint[],"       \
    " $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],"          \
    " $18::bigint[], $19::bigint[], $20::boolean[], $21::bigint[], $22::bigint[],"         \
    " $23::bigint[], $24::text[], $25::numeric[], $26::numeric[], $27::numeric[],"         \
    " $28::numeric[], $29::numeric[], $30::int[]"
#define UW_NAMES                                                                           \
    "rid, tid, kid, mr, pr, um, att, ep, st, hs, et, ra, fb, ca, pt, cht, cmt, ct, rt, uc," \
    " pcid, dwid, pat, cur, chit, cmiss, cout, creas, ctot, pfl"
/* The statement for each schema a database may have, newest last: a gateway
 * newer than its database keeps writing rows (rolling upgrades), without the
 * columns the database does not have yet. */
typedef struct uw_schema {
    const char *migration; /* the migration that added `probe` ("" = the base) */
    const char *probe;     /* a column of usage_events it added */
    int columns;           /* how many of the record's columns it takes */
    const char *sql;       /* the batch as one INSERT ... unnest(arrays) */
    const char *copy;      /* staged: the batch COPYed into uw_stage ... */
    const char *insert;    /* ... then moved into usage_events (COMMIT follows) */
} uw_schema_t;

#define UW_STAGED(cols)                                                                    \
    "COPY uw_stage (" cols ") FROM STDIN",                                                 \
        "INSERT INTO usage_events (" cols ") SELECT " cols " FROM uw_stage"                \
        " ON CONFLICT DO NOTHING"
#define UW_COLUMNS_0013 UW_COLUMNS ", route_explain, cache_hit_predicted_tokens, response_cache_hit"

static const uw_schema_t uw_schemas[] = {
    {"", "", 30,
     "INSERT INTO usage_events (" UW_COLUMNS ") SELECT " UW_VALUES " FROM unnest(" UW_ARRAYS
     ") AS v(" UW_NAMES ") ON CONFLICT DO NOTHING",
     UW_STAGED(UW_COLUMNS)},
    {"0010", "route_explain", 31,
     "INSERT INTO usage_events (" UW_COLUMNS ", route_explain) SELECT " UW_VALUES
     ", rex::jsonb FROM unnest(" UW_ARRAYS ", $31::text[]) AS v(" UW_NAMES
     ", rex) ON CONFLICT DO NOTHING",
     UW_STAGED(UW_COLUMNS ", route_explain")},
    {"0013", "cache_hit_predicted_tokens", 33,
     "INSERT INTO usage_events (" UW_COLUMNS ", route_explain, cache_hit_predicted_tokens,"
     " response_cache_hit) SELECT " UW_VALUES ", rex::jsonb, chp, rch FROM unnest(" UW_ARRAYS
     ", $31::text[], $32::bigint[], $33::boolean[]) AS v(" UW_NAMES
     ", rex, chp, rch) ON CONFLICT DO NOTHING",
     UW_STAGED(UW_COLUMNS_0013)},
};
#define UW_SCHEMAS ((int)(sizeof uw_schemas / sizeof uw_schemas[0]))

/* Finds the newest schema the connected database has (each probe column
 * present). Logs when it is not the newest: rows lose the newer columns. */
static int uw_schema_probe(PGconn *conn)
{
    int have = 0;
    for (int i = 1; i < UW_SCHEMAS; i++) {
        const char *params[1] = {uw_schemas[i].probe};
        PGresult *probe = PQexecParams(conn,
                                       "SELECT 1 FROM pg_attribute WHERE attrelid ="
                                       " to_regclass('usage_events') AND attname = $1"
                                       " AND NOT attisdropped",
                                       1, NULL, params, NULL, NULL, 0);
        bool ok = PQresultStatus(probe) == PGRES_TUPLES_OK && PQntuples(probe) == 1;
        PQclear(probe);
        if (!ok)
            break;
        have = i;
    }
    if (have < UW_SCHEMAS - 1)
        tg_warn("usage writer: the database has no usage_events.%s column (migration %s): rows "
                "are written without it and later columns; run tollgatectl migrate",
                uw_schemas[have + 1].probe, uw_schemas[have + 1].migration);
    return have;
}

/* Whether the connected database has the table gateway_costs: 1 yes, 0 no,
 * -1 the question failed (a lost connection, a statement timeout): the
 * caller retries rather than take a failure for "no table" and drop cost
 * records. */
static int uw_costs_probe(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('gateway_costs') IS NOT NULL");
    int have = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        have = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    else
        tg_warn("usage writer: cannot tell whether table gateway_costs exists: %s",
                PQerrorMessage(conn));
    PQclear(res);
    return have;
}

/* Calls usage_partitions_ensure() (migration 0004) when the schema has it:
 * month partitions ahead of time, rows parked in the default partition moved
 * into theirs. Failure is logged and harmless (rows go to the default
 * partition meanwhile); retried at the next connection or hour. */
static void uw_partitions_ensure(uw_link_t *l)
{
    char err[512];
    l->partitions_at_ms = uw_now_ms();
    PGresult *res =
        PQexec(l->conn, "SELECT to_regprocedure('usage_partitions_ensure()') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!have)
        return;
    res = PQexec(l->conn, "SELECT usage_partitions_ensure()");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        tg_warn("usage writer: usage_partitions_ensure() failed: %s",
                gw_pg_message(l->conn, res, err, sizeof err));
    else if (atoi(PQgetvalue(res, 0, 0)) > 0)
        tg_info("usage writer: created %s monthly partition(s) of usage_events",
                PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void uw_link_drop(uw_link_t *l);

/* Makes sure link l is connected (probing the schema and the partitions on
 * a new connection, the partitions again every hour). Returns false, logged,
 * when PostgreSQL cannot be reached; n is the batch waiting, for the log. */
static bool uw_link_ready(gw_usage_writer_t *w, uw_link_t *l, size_t n)
{
    char err[512];
    if (!l->conn) {
        l->conn = gw_pg_connect(w->conninfo, UW_CONNECT_TIMEOUT_S, err, sizeof err);
        if (!l->conn) {
            tg_warn("usage writer: %s; records wait %s (next batch: %zu)", err,
                    w->spool ? "in the spool" : "in memory", n);
            return false;
        }
        tg_info("usage writer: connected to PostgreSQL");
        l->schema = uw_schema_probe(l->conn);
        int costs_table = uw_costs_probe(l->conn);
        if (costs_table < 0) {
            uw_link_drop(l);
            return false;
        }
        l->costs_table = costs_table;
        if (!l->costs_table)
            tg_warn("usage writer: the database has no table gateway_costs (migration 0018): "
                    "gateway cost records (hedge losers) are logged, not written, until it "
                    "exists; run tollgatectl migrate");
        /* Batches go by COPY into this session's temporary table, then one
         * INSERT ... SELECT ... ON CONFLICT DO NOTHING from it (about 20%
         * less PostgreSQL CPU per row than the unnest statement, which
         * stays the fallback when the table cannot be made). */
        PGresult *res = PQexec(l->conn, "CREATE TEMP TABLE uw_stage (LIKE usage_events INCLUDING"
                                        " DEFAULTS) ON COMMIT DELETE ROWS");
        l->staged = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!l->staged)
            tg_warn("usage writer: no staging table (%s): batches go as one INSERT each",
                    gw_pg_message(l->conn, res, err, sizeof err));
        PQclear(res);
        if (l == &w->links[0]) /* once per writer is enough: the first connection does it */
            uw_partitions_ensure(l);
    } else if (l == &w->links[0] && uw_now_ms() - l->partitions_at_ms > UW_PARTITIONS_EVERY_MS) {
        uw_partitions_ensure(l);
    }
    return true;
}

/* Closes link l after a failure (the next use reconnects). */
static void uw_link_drop(uw_link_t *l)
{
    if (l->conn)
        PQfinish(l->conn);
    l->conn = NULL;
    free(l->tail);
    l->tail = NULL;
}

/* Runs `sql` on l, expecting status `want`. Returns 0; or -1 (logged as
 * `what`), with *retry telling a lost connection (dropped) from a refusal. */
static int uw_exec(uw_link_t *l, const char *sql, ExecStatusType want, const char *what,
                   bool *retry)
{
    char err[512];
    PGresult *res = PQexec(l->conn, sql);
    if (PQresultStatus(res) == want) {
        PQclear(res);
        return 0;
    }
    *retry = gw_pg_error_retryable(res) || PQstatus(l->conn) != CONNECTION_OK;
    tg_warn("usage writer: %s failed: %s%s", what, gw_pg_message(l->conn, res, err, sizeof err),
            *retry ? "; will retry" : "");
    PQclear(res);
    if (*retry)
        uw_link_drop(l);
    return -1;
}

/* Staged send: BEGIN, COPY the usage records of recs[0..n) into uw_stage
 * (waited for), then sends the INSERT into usage_events, cost_sql (the
 * batch's INSERT INTO gateway_costs, or "") and the COMMIT without waiting
 * (uw_finish collects them). Returns 0 when sent; 1 when COPY refused the
 * data (rolled back: send the batch the other way); -1 when PostgreSQL is
 * unreachable. */
static int uw_send_staged(uw_link_t *l, const uw_rec_t *recs, size_t n, const char *cost_sql)
{
    char err[512];
    const uw_schema_t *schema = &uw_schemas[l->schema];
    bool retry = true;
    if (uw_exec(l, "BEGIN", PGRES_COMMAND_OK, "BEGIN", &retry) != 0)
        return retry ? -1 : 1;
    if (uw_exec(l, schema->copy, PGRES_COPY_IN, "COPY into uw_stage", &retry) != 0)
        goto refused;
    uw_buf_t data = {0};
    for (size_t i = 0; i < n; i++)
        if (!recs[i].is_cost)
            uw_copy_record(&data, &recs[i].u.usage, schema->columns);
    int ok = (data.len == 0 || PQputCopyData(l->conn, data.s, (int)data.len) == 1) &&
             PQputCopyEnd(l->conn, NULL) == 1;
    free(data.s);
    PGresult *res = ok ? PQgetResult(l->conn) : NULL, *extra;
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        gw_pg_message(l->conn, res, err, sizeof err);
    PQclear(res);
    while ((extra = PQgetResult(l->conn)) != NULL)
        PQclear(extra);
    if (!ok) {
        if (PQstatus(l->conn) != CONNECTION_OK) {
            tg_warn("usage writer: COPY of %zu records failed: %s; will retry", n, err);
            uw_link_drop(l);
            return -1;
        }
        tg_warn("usage writer: COPY of %zu records refused: %s", n, err);
        goto refused;
    }
    uw_buf_t sql = {0};
    uw_buf_put(&sql, schema->insert, strlen(schema->insert));
    if (cost_sql[0]) {
        uw_buf_put(&sql, "; ", 2);
        uw_buf_put(&sql, cost_sql, strlen(cost_sql));
    }
    uw_buf_put(&sql, "; COMMIT", 8);
    ok = PQsendQuery(l->conn, sql.s);
    free(sql.s);
    if (!ok) {
        tg_warn("usage writer: sending %zu records failed: %s; will retry", n,
                gw_pg_message(l->conn, NULL, err, sizeof err));
        uw_link_drop(l);
        return -1;
    }
    return 0;
refused:
    if (!retry && uw_exec(l, "ROLLBACK", PGRES_COMMAND_OK, "ROLLBACK", &retry) == 0)
        return 1;
    return -1;
}

/* Sends recs[0..n) (records of both kinds) as one transaction on link l,
 * connecting first if needed, without waiting for its result (uw_finish
 * collects it). Usage rows go to usage_events, cost rows to gateway_costs;
 * without that table the cost rows are left out (l->skipped_costs; uw_finish
 * logs them once the rest has committed). Returns 0 when sent, -1 (logged)
 * when PostgreSQL cannot be reached: nothing is lost, try again. */
static int uw_send(gw_usage_writer_t *w, uw_link_t *l, const uw_rec_t *recs, size_t n)
{
    char err[512];
    if (!uw_link_ready(w, l, n))
        return -1;
    free(l->tail);
    l->tail = NULL;
    l->skipped_costs = 0;
    size_t costs = 0;
    for (size_t i = 0; i < n; i++)
        costs += recs[i].is_cost;
    if (costs && !l->costs_table) {
        /* Cost records are rare: look again, the migration may have run. */
        int costs_table = uw_costs_probe(l->conn);
        if (costs_table < 0 || PQstatus(l->conn) != CONNECTION_OK) {
            uw_link_drop(l);
            return -1;
        }
        l->costs_table = costs_table;
    }
    uw_buf_t cost_sql = {0};
    if (costs && l->costs_table)
        uw_cost_sql(&cost_sql, l->conn, recs, n);
    else
        l->skipped_costs = costs;
    uw_buf_put(&cost_sql, "", 0); /* "" when none */
    if (l->staged) {
        int r = uw_send_staged(l, recs, n, cost_sql.s);
        if (r <= 0) {
            free(cost_sql.s);
            return r;
        }
        /* COPY refused (it should not; e.g. the table went missing behind a
         * transaction-mode pooler): this connection stops staging, and the
         * unnest statement below takes the batch, finding a bad record row
         * by row if there is one. A new connection tries staging again. */
        tg_warn("usage writer: COPY refused: batches on this connection go as one INSERT each");
        l->staged = false;
    }
    if (cost_sql.len) {
        /* The unnest statement runs alone in autocommit; with cost rows it
         * runs inside BEGIN, and uw_finish sends the cost INSERT and the
         * COMMIT after its result (l->tail). */
        bool retry = true;
        if (uw_exec(l, "BEGIN", PGRES_COMMAND_OK, "BEGIN", &retry) != 0) {
            free(cost_sql.s);
            if (!retry)
                uw_link_drop(l); /* BEGIN refused: start afresh */
            return -1;
        }
        uw_buf_t tail = {0};
        uw_buf_put(&tail, cost_sql.s, cost_sql.len);
        uw_buf_put(&tail, "; COMMIT", 8);
        l->tail = tail.s;
    }
    free(cost_sql.s);
    uw_buf_t col[UW_COLS] = {{0}};
    const char *v[UW_COLS];
    for (size_t c = 0; c < UW_COLS; c++)
        uw_buf_put(&col[c], "{", 1);
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].is_cost)
            continue;
        if (rows++ > 0)
            for (size_t c = 0; c < UW_COLS; c++)
                uw_buf_put(&col[c], ",", 1);
        uw_arr_record(col, &recs[i].u.usage);
    }
    for (size_t c = 0; c < UW_COLS; c++) {
        uw_buf_put(&col[c], "}", 1);
        v[c] = col[c].s;
    }
    const uw_schema_t *schema = &uw_schemas[l->schema];
    /* The connection is blocking: this returns once the whole statement is
     * on its way, and the server works on it while we prepare the next. */
    int ok = PQsendQueryParams(l->conn, schema->sql, schema->columns, NULL, v, NULL, NULL, 0);
    for (size_t c = 0; c < UW_COLS; c++)
        free(col[c].s);
    if (!ok) {
        tg_warn("usage writer: sending %zu records failed: %s; will retry", n,
                gw_pg_message(l->conn, NULL, err, sizeof err));
        uw_link_drop(l);
        return -1;
    }
    return 0;
}

static uw_result_t uw_write(gw_usage_writer_t *w, uw_link_t *l, const uw_rec_t *recs, size_t n);

/* Ends a transaction that a failed staged batch left open (a no-op after
 * the unnest statement, which runs in autocommit). False if it could not. */
static bool uw_txn_reset(uw_link_t *l)
{
    if (PQtransactionStatus(l->conn) == PQTRANS_IDLE)
        return true;
    PQclear(PQexec(l->conn, "ROLLBACK"));
    return PQtransactionStatus(l->conn) == PQTRANS_IDLE;
}

/* Collects every result of what is in flight on link l: the rows the
 * INSERTs reported (the first INSERT is usage_events', the second, when the
 * batch had cost rows, gateway_costs'), how many results came, and the first
 * failure (the caller clears it). With l->tail pending (the unnest path with
 * cost rows) and no failure so far, sends the tail and collects it too. */
static PGresult *uw_collect(uw_link_t *l, uint64_t *usage_rows, uint64_t *cost_rows, int *results)
{
    PGresult *fail = NULL, *next;
    int inserts = 0;
    *usage_rows = *cost_rows = 0;
    *results = 0;
    for (int round = 0; round < 2; round++) {
        while ((next = PQgetResult(l->conn)) != NULL) {
            ++*results;
            if (!fail && PQresultStatus(next) != PGRES_COMMAND_OK) {
                fail = next; /* the first failure */
                continue;
            }
            if (PQresultStatus(next) == PGRES_COMMAND_OK &&
                strncmp(PQcmdStatus(next), "INSERT", 6) == 0) {
                uint64_t k = strtoull(PQcmdTuples(next), NULL, 10);
                *(inserts++ == 0 ? usage_rows : cost_rows) += k;
            }
            PQclear(next);
        }
        if (fail || !l->tail || round > 0)
            break;
        if (!PQsendQuery(l->conn, l->tail)) {
            /* No result object for this: a lost connection. */
            ++*results;
            fail = PQmakeEmptyPGresult(l->conn, PGRES_FATAL_ERROR);
        }
        free(l->tail);
        l->tail = NULL;
    }
    free(l->tail);
    l->tail = NULL;
    return fail;
}

/* Waits for the result of the transaction uw_send sent on link l for
 * recs[0..n). UW_DONE: committed (PostgreSQL answered the COMMIT, which
 * with synchronous_commit on means durable), or, for a single record
 * PostgreSQL refuses as bad data, logged and counted as rejected; a batch
 * with bad data is written again row by row. UW_RETRY: PostgreSQL
 * unreachable or busy; nothing is lost, try again. */
static uw_result_t uw_finish(gw_usage_writer_t *w, uw_link_t *l, const uw_rec_t *recs, size_t n)
{
    char err[512];
    /* The rows count only when every statement succeeded. */
    uint64_t inserted, costs_inserted;
    int results;
    size_t skipped = l->skipped_costs;
    l->skipped_costs = 0;
    PGresult *res = uw_collect(l, &inserted, &costs_inserted, &results);
    uw_result_t out = UW_DONE;
    if (!res && results > 0) {
        atomic_fetch_add(&w->written, inserted);
        atomic_fetch_add(&w->costs_written, costs_inserted);
        /* Cost records left out for want of the table: logged now, once. */
        for (size_t i = 0; skipped && i < n; i++)
            if (recs[i].is_cost)
                uw_log_rec("not written: the database has no table gateway_costs (migration "
                           "0018; run tollgatectl migrate)",
                           &recs[i]);
        atomic_fetch_add(&w->rejected, skipped);
        atomic_fetch_add(&w->costs_rejected, skipped);
    } else if (gw_pg_error_retryable(res) || PQstatus(l->conn) != CONNECTION_OK) {
        tg_warn("usage writer: writing %zu records failed: %s; will retry", n,
                gw_pg_message(l->conn, res, err, sizeof err));
        uw_link_drop(l);
        out = UW_RETRY;
    } else if (!uw_txn_reset(l)) {
        /* The failed staged transaction could not be ended: start afresh. */
        tg_warn("usage writer: cannot roll back a failed batch: %s; will retry",
                PQerrorMessage(l->conn));
        uw_link_drop(l);
        out = UW_RETRY;
    } else if (n > 1) {
        /* Bad data somewhere in the batch: find it row by row so that the
         * good rows are written (duplicates are harmless: ON CONFLICT). */
        for (size_t i = 0; i < n && out == UW_DONE; i++)
            out = uw_write(w, l, &recs[i], 1);
    } else {
        gw_pg_message(l->conn, res, err, sizeof err);
        char why[600];
        snprintf(why, sizeof why, "PostgreSQL refused the record (%s)", err);
        uw_log_rec(why, recs);
        atomic_fetch_add(&w->rejected, 1);
        if (recs->is_cost)
            atomic_fetch_add(&w->costs_rejected, 1);
    }
    PQclear(res);
    return out;
}

/* Sends recs[0..n) in one transaction on link l and waits for it (uw_send,
 * then uw_finish: same results). */
static uw_result_t uw_write(gw_usage_writer_t *w, uw_link_t *l, const uw_rec_t *recs, size_t n)
{
    if (uw_send(w, l, recs, n) != 0)
        return UW_RETRY;
    return uw_finish(w, l, recs, n);
}

/* The writer thread: waits until a batch is full or its oldest record has
 * waited flush_ms (or the writer is stopping), writes it, and on failure
 * backs off. Exits when stopping and the queue is empty or the stop deadline
 * has passed. */
static void *uw_thread(void *arg)
{
    gw_usage_writer_t *w = arg;
    uw_rec_t *batch = malloc((size_t)w->batch_max * sizeof *batch);
    if (!batch)
        abort();
    int backoff = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->count == 0) {
            if (w->stopping)
                break;
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        if (w->stopping && uw_now_ms() >= w->stop_deadline_ms)
            break;
        int64_t due = w->items[w->head].queued_ms + w->flush_ms;
        if (!w->stopping && w->count < (size_t)w->batch_max && uw_now_ms() < due) {
            struct timespec ts = uw_abs_time(due);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        size_t n = w->count < (size_t)w->batch_max ? w->count : (size_t)w->batch_max;
        for (size_t i = 0; i < n; i++)
            batch[i] = w->items[(w->head + i) % w->cap].rec;
        pthread_mutex_unlock(&w->mu);
        uw_result_t r = uw_write(w, &w->links[0], batch, n);
        pthread_mutex_lock(&w->mu);
        if (r == UW_DONE) {
            /* Only this thread removes items, so the first n are still ours. */
            w->head = (w->head + n) % w->cap;
            w->count -= n;
            backoff = 0;
            continue;
        }
        backoff = gw_pg_backoff_next(backoff, UW_BACKOFF_MIN_MS, UW_BACKOFF_MAX_MS);
        int64_t wake = uw_now_ms() + backoff;
        if (w->stopping && wake > w->stop_deadline_ms)
            wake = w->stop_deadline_ms;
        /* A stop request arriving now wakes us early, to shorten the wait
         * to its deadline; submissions do not. */
        bool was_stopping = w->stopping;
        struct timespec ts = uw_abs_time(wake);
        while (uw_now_ms() < wake)
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0 || (!was_stopping && w->stopping))
                break;
    }
    size_t lost = w->count;
    for (size_t i = 0; i < lost; i++)
        uw_log_rec("not written before the stop deadline (PostgreSQL unreachable)",
                   &w->items[(w->head + i) % w->cap].rec);
    if (lost)
        tg_error("usage writer: %zu records could not be written; each is logged above", lost);
    pthread_mutex_unlock(&w->mu);
    free(batch);
    return NULL;
}

/* Spool mode: decodes the records gw_spool_read hands over into a batch. */
typedef struct uw_decode {
    gw_usage_writer_t *w;
    uw_rec_t *batch;
    size_t n;
} uw_decode_t;

static void uw_decode_one(void *arg, const uint8_t *payload, size_t len)
{
    uw_decode_t *d = arg;
    char err[160];
    uw_rec_t *r = &d->batch[d->n];
    r->is_cost = gw_spool_rec_kind(payload, len) == GW_SPOOL_REC_COST;
    if ((r->is_cost ? gw_spool_rec_decode_cost(payload, len, &r->u.cost, err, sizeof err)
                    : gw_spool_rec_decode(payload, len, &r->u.usage, err, sizeof err)) == 0) {
        d->n++;
        return;
    }
    /* Its checksum was right, so this is a format this build cannot read:
     * it cannot become a row; say so, count it, go on. */
    tg_error("usage writer: spool record of %zu bytes not written: %s", len, err);
    atomic_fetch_add(&d->w->rejected, 1);
    if (r->is_cost)
        atomic_fetch_add(&d->w->costs_rejected, 1);
}

/* A batch read from the spool and sent, not yet confirmed (spool mode). */
typedef struct uw_flight {
    uw_rec_t *recs;          /* batch_max records, owned */
    size_t n;                /* records decoded and sent */
    size_t frames;           /* spool records it covers (n plus undecodable ones) */
    gw_spool_pos_t end;      /* the spool position just after them */
    uw_link_t *link;         /* the connection it was sent on */
    bool failed;             /* the send failed: PostgreSQL unreachable */
} uw_flight_t;

/* Waits for flight f's statement and, if it committed, advances the spool's
 * checkpoint past it. The caller confirms flights in the order they were
 * read, so the checkpoint never passes a record that is not a row. */
static uw_result_t uw_flight_confirm(gw_usage_writer_t *w, uw_flight_t *f)
{
    uw_result_t r = f->failed ? UW_RETRY : f->n ? uw_finish(w, f->link, f->recs, f->n) : UW_DONE;
    if (r == UW_DONE && gw_spool_commit(w->spool, f->end, f->frames) != 0)
        r = UW_RETRY;
    return r;
}

/* Collects the result of a flight that will be read and sent again (an
 * earlier one failed): rows it wrote count (the resend skips them: ON
 * CONFLICT), anything else just drops the connection. */
static void uw_flight_abandon(gw_usage_writer_t *w, uw_flight_t *f)
{
    if (f->failed || f->n == 0 || !f->link->conn)
        return;
    uint64_t inserted, costs_inserted;
    int results;
    f->link->skipped_costs = 0; /* the resend logs them */
    PGresult *res = uw_collect(f->link, &inserted, &costs_inserted, &results);
    if (!res && results > 0 && PQtransactionStatus(f->link->conn) == PQTRANS_IDLE) {
        /* committed: the resend skips these rows (ON CONFLICT) */
        atomic_fetch_add(&w->written, inserted);
        atomic_fetch_add(&w->costs_written, costs_inserted);
    } else {
        uw_link_drop(f->link);
    }
    PQclear(res);
}

/* The writer thread in spool mode. It reads a batch from the journal when a
 * batch is full or its oldest record has waited flush_ms, and sends it on
 * one of its nlinks connections; while a backlog of full batches remains it
 * reads and sends the next ones on the other connections without waiting
 * (PostgreSQL inserts them in parallel). Results are taken in the order the
 * batches were read, and the checkpoint advances past a batch only when it
 * and every batch before it have committed. When one fails, the ones after
 * it are abandoned and everything from the checkpoint is read again after a
 * back-off (rows already written are skipped: ON CONFLICT DO NOTHING). Exits
 * when stopping and the spool is drained or the stop deadline has passed
 * (what is left stays on disk). */
static void *uw_thread_spool(void *arg)
{
    gw_usage_writer_t *w = arg;
    int k = w->nlinks;
    uw_flight_t fl[UW_LINKS_MAX];
    memset(fl, 0, sizeof fl);
    for (int i = 0; i < k; i++) {
        fl[i].recs = malloc((size_t)w->batch_max * sizeof *fl[i].recs);
        if (!fl[i].recs)
            abort();
    }
    int head = 0, count = 0, next_link = 0; /* flights: fl[head .. head + count) mod k */
    uint64_t inflight = 0;                  /* spool records in those flights */
    bool broken = false;                    /* a flight in the queue failed to send */
    bool hold = false; /* a read-ahead found nothing: confirm the oldest before reading again */
    gw_spool_pos_t rpos = {0, 0};           /* where the next read starts (if count > 0) */
    int backoff = 0;
    gw_spool_stats_t st;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        gw_spool_stats(w->spool, &st);
        uint64_t unread = st.pending > inflight ? st.pending - inflight : 0;
        if (w->stopping && uw_now_ms() >= w->stop_deadline_ms)
            break;
        if (unread == 0 && count == 0) {
            w->oldest_ms = -1;
            w->unsignalled = 0; /* so that the next submit wakes us */
            if (w->stopping)
                break;
            struct timespec ts = uw_abs_time(uw_now_ms() + 1000);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        bool send = false;
        if (unread > 0 && count < k && !broken && !hold) {
            if (w->oldest_ms < 0)
                w->oldest_ms = uw_now_ms();
            int64_t due = w->oldest_ms + w->flush_ms;
            /* A partial batch goes only when nothing is in flight: under a
             * light load one connection does the work, as before. */
            send = unread >= (uint64_t)w->batch_max ||
                   (count == 0 && (w->stopping || uw_now_ms() >= due));
            if (!send && count == 0) {
                struct timespec ts = uw_abs_time(due);
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
                continue;
            }
        }
        if (send) {
            w->unsignalled = 0;
            pthread_mutex_unlock(&w->mu);
            uw_flight_t *f = &fl[(head + count) % k];
            uw_decode_t d = {w, f->recs, 0};
            f->frames = gw_spool_read_from(w->spool, count ? &rpos : NULL, (size_t)w->batch_max,
                                           uw_decode_one, &d, &f->end);
            pthread_mutex_lock(&w->mu);
            if (f->frames == 0 && count > 0) {
                hold = true;
                continue;
            }
            if (f->frames == 0) { /* nothing readable yet (an append racing the count) */
                struct timespec ts = uw_abs_time(uw_now_ms() + UW_BACKOFF_MIN_MS / 4);
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
                continue;
            }
            pthread_mutex_unlock(&w->mu);
            f->n = d.n;
            f->link = &w->links[next_link];
            next_link = (next_link + 1) % k;
            f->failed = f->n > 0 && uw_send(w, f->link, f->recs, f->n) != 0;
            broken = broken || f->failed;
            rpos = f->end;
            inflight += f->frames;
            count++;
            pthread_mutex_lock(&w->mu);
            continue;
        }
        /* Nothing more to send now: confirm the oldest flight. */
        pthread_mutex_unlock(&w->mu);
        uw_flight_t *f = &fl[head];
        uw_result_t r = uw_flight_confirm(w, f);
        hold = false;
        head = (head + 1) % k;
        count--;
        inflight -= f->frames;
        if (r == UW_DONE) {
            pthread_mutex_lock(&w->mu);
            w->oldest_ms = 0; /* what is left has waited already */
            backoff = 0;
            continue;
        }
        for (; count > 0; count--, head = (head + 1) % k)
            uw_flight_abandon(w, &fl[head]);
        inflight = 0;
        broken = false;
        pthread_mutex_lock(&w->mu);
        backoff = gw_pg_backoff_next(backoff, UW_BACKOFF_MIN_MS, UW_BACKOFF_MAX_MS);
        int64_t wake = uw_now_ms() + backoff;
        if (w->stopping && wake > w->stop_deadline_ms)
            wake = w->stop_deadline_ms;
        bool was_stopping = w->stopping;
        struct timespec ts = uw_abs_time(wake);
        while (uw_now_ms() < wake)
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0 || (!was_stopping && w->stopping))
                break;
    }
    pthread_mutex_unlock(&w->mu);
    /* Past the deadline: the statements already sent are confirmed in order
     * (as a single writer finishes its current one), up to the first failure. */
    bool ok = true;
    for (; count > 0; count--, head = (head + 1) % k) {
        if (ok)
            ok = uw_flight_confirm(w, &fl[head]) == UW_DONE;
        else
            uw_flight_abandon(w, &fl[head]);
    }
    gw_spool_stats(w->spool, &st);
    if (st.pending)
        tg_warn("usage writer: %" PRIu64 " records not yet in PostgreSQL stay in the spool %s; "
                "the next start writes them",
                st.pending, gw_spool_dir(w->spool));
    for (int i = 0; i < k; i++)
        free(fl[i].recs);
    return NULL;
}

void gw_usage_writer_opts_default(gw_usage_writer_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->conninfo = "";
    o->batch_max = 1000;
    o->flush_ms = 50;
    o->connections = 2;
    gw_spool_opts_default(&o->spool);
}

gw_usage_writer_t *gw_usage_writer_start2(const gw_usage_writer_opts_t *o, char *err, size_t errlen)
{
    gw_usage_writer_t *w = calloc(1, sizeof *w);
    pthread_condattr_t ca;
    if (!w)
        return NULL;
    w->conninfo = strdup(o->conninfo ? o->conninfo : "");
    w->batch_max = o->batch_max < 1                ? 1
                   : o->batch_max > UW_BATCH_LIMIT ? UW_BATCH_LIMIT
                                                   : o->batch_max;
    w->flush_ms = o->flush_ms < 0 ? 0 : o->flush_ms;
    w->nlinks = o->connections < 1              ? 1
                : o->connections > UW_LINKS_MAX ? UW_LINKS_MAX
                                                : o->connections;
    w->oldest_ms = 0; /* records left by an earlier run are due at once */
    w->cap = 1024;
    w->items = malloc(w->cap * sizeof *w->items);
    if (!w->conninfo || !w->items) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    if (o->spool.ledger_off) {
        /* Benchmarks only: said at error level so that no log reader can
         * miss that this gateway meters nothing. */
        tg_error("usage ledger OFF (spool_ledger = off-for-benchmarks): requests are answered "
                 "WITHOUT usage rows; for measuring the ledger's cost only, never in production");
        w->off = true;
        atomic_init(&w->written, 0);
        atomic_init(&w->rejected, 0);
        atomic_init(&w->costs_written, 0);
        atomic_init(&w->costs_rejected, 0);
        return w;
    }
    if (o->spool.dir[0]) {
        w->spool = gw_spool_open(&o->spool, err, errlen);
        if (!w->spool)
            goto err;
    }
    atomic_init(&w->written, 0);
    atomic_init(&w->rejected, 0);
    atomic_init(&w->costs_written, 0);
    atomic_init(&w->costs_rejected, 0);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_create(&w->thread, NULL, w->spool ? uw_thread_spool : uw_thread, w) != 0) {
        snprintf(err, errlen, "cannot start the usage writer thread");
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        goto err;
    }
    return w;
err:
    gw_spool_close(w->spool);
    free(w->items);
    free(w->conninfo);
    free(w);
    return NULL;
}

gw_usage_writer_t *gw_usage_writer_start(const char *conninfo, int batch_max, int flush_ms)
{
    gw_usage_writer_opts_t o;
    char err[256];
    gw_usage_writer_opts_default(&o);
    o.conninfo = conninfo;
    o.batch_max = batch_max;
    o.flush_ms = flush_ms;
    return gw_usage_writer_start2(&o, err, sizeof err);
}

/* Doubles the ring buffer, keeping the order. Caller holds the lock. */
static void uw_grow(gw_usage_writer_t *w)
{
    size_t ncap = w->cap * 2;
    uw_item_t *n = malloc(ncap * sizeof *n);
    if (!n)
        abort();
    for (size_t i = 0; i < w->count; i++)
        n[i] = w->items[(w->head + i) % w->cap];
    free(w->items);
    w->items = n;
    w->cap = ncap;
    w->head = 0;
}

/* Appends item (sanitized) to the spool, or to the in-memory queue; wakes
 * the thread when due. Returns 0, or -1 when the spool refused it. */
static int uw_enqueue(gw_usage_writer_t *w, const uw_item_t *item)
{
    if (w->spool) {
        uint8_t buf[GW_SPOOL_REC_MAX];
        size_t len = item->rec.is_cost ? gw_spool_rec_encode_cost(&item->rec.u.cost, buf)
                                       : gw_spool_rec_encode(&item->rec.u.usage, buf);
        if (gw_spool_append(w->spool, buf, len) != 0)
            return -1;
        pthread_mutex_lock(&w->mu);
        if (w->oldest_ms < 0)
            w->oldest_ms = item->queued_ms;
        /* Wake the thread for the first record of a batch and for each full
         * batch; otherwise it wakes on its own flush timer. */
        if (w->unsignalled++ == 0 || w->unsignalled >= (unsigned)w->batch_max) {
            pthread_cond_signal(&w->cv);
            if (w->unsignalled >= (unsigned)w->batch_max)
                w->unsignalled = 1;
        }
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    if (w->count == w->cap)
        uw_grow(w);
    w->items[(w->head + w->count) % w->cap] = *item;
    w->count++;
    if (w->count == 1 || w->count >= (size_t)w->batch_max)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int gw_usage_writer_submit(gw_usage_writer_t *w, const gw_usage_record_t *rec)
{
    if (w->off)
        return 0; /* spool_ledger = off-for-benchmarks: discarded */
    uw_item_t item = {.rec = {.is_cost = false, .u.usage = *rec}, .queued_ms = uw_now_ms()};
    gw_usage_record_t *r = &item.rec.u.usage;
    uw_text_sanitize(r->request_id, sizeof r->request_id);
    uw_text_sanitize(r->model_requested, sizeof r->model_requested);
    uw_text_sanitize(r->provider, sizeof r->provider);
    uw_text_sanitize(r->upstream_model, sizeof r->upstream_model);
    uw_text_sanitize(r->endpoint, sizeof r->endpoint);
    uw_text_sanitize(r->error_type, sizeof r->error_type);
    uw_text_sanitize(r->charge_currency, sizeof r->charge_currency);
    return uw_enqueue(w, &item);
}

int gw_usage_writer_submit_cost(gw_usage_writer_t *w, const gw_gateway_cost_t *c)
{
    if (w->off)
        return 0; /* spool_ledger = off-for-benchmarks: discarded */
    uw_item_t item = {.rec = {.is_cost = true, .u.cost = *c}, .queued_ms = uw_now_ms()};
    gw_gateway_cost_t *r = &item.rec.u.cost;
    uw_text_sanitize(r->request_id, sizeof r->request_id);
    uw_text_sanitize(r->reason, sizeof r->reason);
    uw_text_sanitize(r->model_requested, sizeof r->model_requested);
    uw_text_sanitize(r->provider, sizeof r->provider);
    uw_text_sanitize(r->upstream_model, sizeof r->upstream_model);
    uw_text_sanitize(r->charge_currency, sizeof r->charge_currency);
    return uw_enqueue(w, &item);
}

size_t gw_usage_writer_pending(gw_usage_writer_t *w)
{
    if (w->off)
        return 0;
    if (w->spool) {
        gw_spool_stats_t st;
        gw_spool_stats(w->spool, &st);
        return (size_t)st.pending;
    }
    pthread_mutex_lock(&w->mu);
    size_t n = w->count;
    pthread_mutex_unlock(&w->mu);
    return n;
}

uint64_t gw_usage_writer_written(gw_usage_writer_t *w)
{
    return atomic_load(&w->written);
}

uint64_t gw_usage_writer_rejected(gw_usage_writer_t *w)
{
    return atomic_load(&w->rejected);
}

uint64_t gw_usage_writer_costs_written(gw_usage_writer_t *w)
{
    return atomic_load(&w->costs_written);
}

uint64_t gw_usage_writer_costs_rejected(gw_usage_writer_t *w)
{
    return atomic_load(&w->costs_rejected);
}

void gw_usage_writer_spool_stats(gw_usage_writer_t *w, gw_spool_stats_t *out)
{
    if (w->spool)
        gw_spool_stats(w->spool, out);
    else
        memset(out, 0, sizeof *out);
}

bool gw_usage_writer_accepting(gw_usage_writer_t *w)
{
    return !w->spool || gw_spool_has_room(w->spool, GW_SPOOL_REC_MAX);
}

uint64_t gw_usage_writer_spool_bytes(gw_usage_writer_t *w)
{
    gw_spool_stats_t st;
    gw_usage_writer_spool_stats(w, &st);
    return st.bytes;
}

void gw_usage_writer_stop(gw_usage_writer_t *w, int deadline_ms)
{
    if (!w)
        return;
    if (w->off) {
        free(w->items);
        free(w->conninfo);
        free(w);
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    w->stop_deadline_ms = uw_now_ms() + (deadline_ms < 0 ? 0 : deadline_ms);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->spool)
        gw_spool_unblock(w->spool); /* submits blocked for room return -1 */
    pthread_join(w->thread, NULL);
    gw_spool_close(w->spool);
    for (int i = 0; i < UW_LINKS_MAX; i++)
        uw_link_drop(&w->links[i]);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->items);
    free(w->conninfo);
    free(w);
}
