/* gw_usage: usage records and the writer that takes them to PostgreSQL
 * (table usage_events; the gateway's own costs to gateway_costs) off the
 * request's hot path. Every record submitted is
 * written exactly once (INSERT ... ON CONFLICT DO NOTHING), in
 * batches, by a background thread. With a spool directory (start2) each
 * record is first appended to a durable journal (gw_spool.h) inside submit,
 * and the thread drains the journal, surviving crashes and restarts; without
 * one, records wait in memory while PostgreSQL is down (docs/ledger.md). */
#ifndef GW_USAGE_H
#define GW_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_spool.h"

#define GW_USAGE_UNKNOWN (-1) /* a token count the provider did not report */

typedef struct gw_usage_record {
    char request_id[40];
    int64_t team_id;
    int64_t key_id;
    char model_requested[128];
    char provider[64]; /* "" when no provider was reached */
    char upstream_model[128];
    char endpoint[24];   /* "chat.completions" or "completions" */
    char error_type[48]; /* "" on success */
    int attempts;
    bool streamed;
    int http_status;
    int64_t received_at_us;   /* unix microseconds */
    int64_t first_byte_at_us; /* 0 = no byte reached the client */
    int64_t completed_at_us;
    int64_t prompt_tokens; /* GW_USAGE_UNKNOWN when not reported */
    int64_t cache_hit_tokens;
    int64_t cache_miss_tokens;
    int64_t completion_tokens;
    int64_t reasoning_tokens;
    bool usage_complete;
    /* Pricing (pricing/pr_book.h): all zero when the request was not priced
     * (no price card for this provider and upstream model: logged). */
    int64_t price_card_id;               /* 0 = not priced */
    int64_t discount_window_id;          /* 0 = no window applied */
    int64_t priced_at_us;                /* the instant that chose card and window */
    char charge_currency[4];             /* ISO code, "" when not priced */
    __extension__ __int128 cost_pico[4]; /* cache hit, cache miss, output, reasoning */
    __extension__ __int128 charge_pico;  /* their sum, exact */
    unsigned pricing_flags;              /* PR_FLAG_*: non-zero = priced on incomplete counts */
    /* Why this provider: policy, chosen, runner-up and reason, as compact
     * JSON written by gateway/gw_route.c; "" when no decision was made. */
    char route_explain[512];
    /* Caches (docs/cache.md): the prefix index's prediction of the serving
     * provider's cache-hit tokens (only when cache_predicted; zero-initialised
     * records predict nothing), and whether the answer came from the
     * gateway's response cache. */
    bool cache_predicted;
    int64_t cache_hit_predicted_tokens;
    bool response_cache_hit;
} gw_usage_record_t;

/* One cost the gateway bears itself (not a team's request): today only the
 * cancelled loser of a hedged request (reason "hedge_loser"). Written to the
 * table gateway_costs (migration 0018), never to usage_events: it counts in
 * no team's spend, budget or usage rows (docs/finance.md). */
typedef struct gw_gateway_cost {
    char request_id[40];     /* the client request it was made for */
    int attempt;             /* which attempt of that request, 1-based */
    char reason[24];         /* "hedge_loser" */
    int64_t team_id, key_id; /* whose request caused it: informational only, never charged */
    char model_requested[128];
    char provider[64];
    char upstream_model[128];
    int64_t sent_at_us; /* unix microseconds */
    int64_t cancelled_at_us;
    int64_t prompt_tokens;      /* the gateway's own count (the provider reported none) */
    bool prompt_exact;          /* false: an estimate */
    bool usage_complete;        /* false: the provider may bill more or less */
    int64_t price_card_id;      /* 0 = not priced */
    int64_t discount_window_id; /* 0 = none */
    char charge_currency[4];    /* "" when not priced */
    /* exact; priced by the caller as a cache-miss prompt, no output */
    __extension__ __int128 charge_pico;
} gw_gateway_cost_t;

typedef struct gw_usage_writer gw_usage_writer_t;

/* Starts the writer thread. batch_max: rows per INSERT (e.g. 1000);
 * flush_ms: longest a record waits before its batch is sent (e.g. 50).
 * PostgreSQL may be down at start: the writer retries with back-off and logs.
 * Returns NULL only on out-of-memory or thread creation failure. */
gw_usage_writer_t *gw_usage_writer_start(const char *conninfo, int batch_max, int flush_ms);

typedef struct gw_usage_writer_opts {
    const char *conninfo;  /* copied */
    int batch_max;         /* rows per INSERT (1..5000) */
    int flush_ms;          /* longest a record waits for its batch */
    gw_spool_opts_t spool; /* spool.dir "" = records kept in memory only */
    /* With a spool: PostgreSQL connections, each with at most one batch in
     * flight, used only while a backlog of full batches waits (1..4; the
     * checkpoint still advances strictly in order). Without a spool: 1. */
    int connections;
} gw_usage_writer_opts_t;

/* conninfo "", batch 1000, flush 50 ms, 2 connections, spool defaults (no
 * directory). */
void gw_usage_writer_opts_default(gw_usage_writer_opts_t *o);

/* Starts the writer with options; with a spool directory, opens it first
 * (recovery: records left by an earlier run are drained first). Returns NULL
 * with err set when the spool cannot be opened, or on thread failure. */
gw_usage_writer_t *gw_usage_writer_start2(const gw_usage_writer_opts_t *o, char *err,
                                          size_t errlen);

/* Takes a copy of *rec. Thread-safe. Without a spool: queued in memory,
 * never blocks, returns 0. With a spool: appended to the journal with
 * write(2) before returning 0 (and fdatasync'd in sync mode "always"), so a
 * process killed after the return loses nothing. Returns -1 when the spool
 * refused the record (over spool_max_bytes with spool_full = refuse, or a
 * disk write error; logged and counted): the caller must treat the request as
 * not metered (e.g. answer 503). With spool_full = block it waits for room. */
int gw_usage_writer_submit(gw_usage_writer_t *w, const gw_usage_record_t *rec);

/* Takes a copy of *c; same durability, thread-safety and return contract as
 * gw_usage_writer_submit (0, or -1 when the spool refused it: logged). The
 * record travels through the same spool and queue, in order with usage
 * records, and becomes one row of gateway_costs (INSERT ... ON CONFLICT DO
 * NOTHING on (request_id, attempt), in the same transaction as its batch's
 * usage rows). A database without that table (migration 0018 not applied)
 * does not hold usage rows back: the cost record is logged whole as an error
 * line and counted in gw_usage_writer_costs_rejected (docs/ledger.md). */
int gw_usage_writer_submit_cost(gw_usage_writer_t *w, const gw_gateway_cost_t *c);

/* False when the spool has no room for another record (PostgreSQL down for
 * long enough to fill spool_max_bytes): a gateway that must not serve
 * unmetered requests refuses new ones (e.g. 503) before calling a provider,
 * instead of learning it from submit's -1 after the provider has answered.
 * Always true without a spool. */
bool gw_usage_writer_accepting(gw_usage_writer_t *w);

/* Spool counters (all zero without a spool); see gw_spool_stats_t. */
void gw_usage_writer_spool_stats(gw_usage_writer_t *w, gw_spool_stats_t *out);

/* Bytes the spool's segment files take on disk now (0 without a spool). */
uint64_t gw_usage_writer_spool_bytes(gw_usage_writer_t *w);

/* Records queued (or in the spool) but not yet committed; for metrics and
 * tests. */
size_t gw_usage_writer_pending(gw_usage_writer_t *w);

/* Rows committed since start; for metrics. */
uint64_t gw_usage_writer_written(gw_usage_writer_t *w);

/* Records PostgreSQL refused as bad data (e.g. an unknown team_id): each is
 * logged whole as an error line (so it can be replayed by hand) and taken off
 * the queue, so that one bad record cannot block every record behind it. */
uint64_t gw_usage_writer_rejected(gw_usage_writer_t *w);

/* Gateway cost rows committed to gateway_costs since start (not counted in
 * gw_usage_writer_written); for metrics. */
uint64_t gw_usage_writer_costs_written(gw_usage_writer_t *w);

/* Of gw_usage_writer_rejected, the gateway cost records: refused by
 * PostgreSQL (e.g. a reason its CHECK does not know) or not written because
 * the database has no table gateway_costs. Each is logged whole. */
uint64_t gw_usage_writer_costs_rejected(gw_usage_writer_t *w);

/* Drains what is queued (waiting at most deadline_ms for PostgreSQL), stops
 * the thread and frees. Without a spool the records not written are logged
 * whole (lost to the table); with one they stay in the journal for the next
 * start (one log line says how many). */
void gw_usage_writer_stop(gw_usage_writer_t *w, int deadline_ms);

#endif
