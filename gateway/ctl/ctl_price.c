/* ctl_price: "tollgatectl price add|list|history|preview|quote|seed": price
 * cards (what a model costs from an instant on), what was in force when, and
 * what a usage or a request would cost. Writes are validated by rebuilding the
 * whole price book before COMMIT (ctl_price_util.c) and audited by trigger. */
#include "ctl_price.h"

#include "gw_price_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#ifndef TG_SEED_DIR
#define TG_SEED_DIR "/usr/share/tollgate/seed"
#endif
#define CTL_SEED_INSTALLED "/usr/share/tollgate/seed"
#define CTL_SEED_FILE "deepseek-prices.sql"
#define CTL_SEED_MAX_BYTES (16 * 1024 * 1024)

static const char ctl_price_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] price COMMAND\n"
    "\n"
    "  price add --provider P --model M --currency C --hit X --miss Y --output Z\n"
    "            [--reasoning R] --from INSTANT [--note TEXT]\n"
    "                       add a price card, in force from INSTANT until the next card\n"
    "  price list [--provider P] [--model M] [--at INSTANT]\n"
    "                       the cards in force at an instant (default: now)\n"
    "  price history --provider P --model M\n"
    "                       every card and window of a model, in time order\n"
    "  price preview --provider P --model M --at INSTANT --hit N --miss N --output N\n"
    "            [--reasoning N]\n"
    "                       what a usage with these token counts costs at INSTANT\n"
    "  price quote --provider P --model M --prompt-tokens N --max-tokens N [--at INSTANT]\n"
    "                       the worst-case cost of a request before it is sent\n"
    "  price seed [FILE]    load DeepSeek's published price history (or FILE)\n"
    "\n"
    "Prices are decimal currency units per 1M tokens (--miss 0.27 = $0.27 per 1M\n"
    "cache-miss input tokens). Instants: YYYY-MM-DD (00:00 UTC) or RFC 3339\n"
    "(2025-02-08T16:00:00Z). Every change is audited with --actor. See\n"
    "docs/prices-admin.md.\n";

/* Current time in unix microseconds. */
static int64_t ctl_price_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Parses the named money options into *out (reasoning may be absent: -1). */
static int ctl_price_parse_prices(const ctl_opt_t *hit, const ctl_opt_t *miss,
                                  const ctl_opt_t *output, const ctl_opt_t *reasoning,
                                  pr_prices_t *out)
{
    char err[512];
    if (ctl_price_money_parse("--hit", hit->value, &out->cache_hit, err, sizeof err) != 0 ||
        ctl_price_money_parse("--miss", miss->value, &out->cache_miss, err, sizeof err) != 0 ||
        ctl_price_money_parse("--output", output->value, &out->output, err, sizeof err) != 0 ||
        (reasoning->present && ctl_price_money_parse("--reasoning", reasoning->value,
                                                     &out->reasoning, err, sizeof err) != 0)) {
        ctl_error("%s", err);
        return -1;
    }
    if (!reasoning->present)
        out->reasoning = -1;
    return 0;
}

/* Checks a provider or model name against the tables' limits. */
static int ctl_price_name_check(const char *opt, const char *v, size_t max)
{
    size_t n = strlen(v);
    bool ok = n > 0 && n < max;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)v[i] > 0x20 && v[i] != 0x7f;
    if (!ok) {
        ctl_error("invalid %s '%s': give 1 to %zu printable characters without spaces", opt, v,
                  max - 1);
        return -1;
    }
    return 0;
}

static int ctl_price_add(ctl_ctx_t *ctx, int argc, char **argv)
{
    enum { P, M, C, HIT, MISS, OUT, REAS, FROM, NOTE, N };
    ctl_opt_t o[N] = {{"provider", true, false, NULL},  {"model", true, false, NULL},
                      {"currency", true, false, NULL},  {"hit", true, false, NULL},
                      {"miss", true, false, NULL},      {"output", true, false, NULL},
                      {"reasoning", true, false, NULL}, {"from", true, false, NULL},
                      {"note", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("price add", argc, argv, o, N, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl price add --provider P --model M --currency C\n"
                             "         --hit X --miss Y --output Z [--reasoning R]\n"
                             "         --from INSTANT [--note TEXT]\n"
                             "Prices in currency units per 1M tokens (e.g. --miss 0.27).\n"
                             "Without --reasoning, reasoning tokens cost the output price.\n"))
        return CTL_OK;
    if (!ctl_price_required("price add", o, N, 1u << REAS | 1u << NOTE))
        return CTL_USAGE;
    char err[512];
    pr_prices_t pr;
    int64_t from;
    if (ctl_price_name_check("--provider", o[P].value, PR_PROVIDER_MAX) != 0 ||
        ctl_price_name_check("--model", o[M].value, PR_MODEL_MAX) != 0)
        return CTL_FAIL;
    if (!pr_currency_find(o[C].value, err, sizeof err)) {
        ctl_error("price add: %s", err);
        return CTL_FAIL;
    }
    if (ctl_price_parse_prices(&o[HIT], &o[MISS], &o[OUT], &o[REAS], &pr) != 0)
        return CTL_FAIL;
    if (ctl_price_instant_parse("--from", o[FROM].value, &from, err, sizeof err) != 0) {
        ctl_error("price add: %s", err);
        return CTL_FAIL;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    gw_price_card_new_t card = {.provider = o[P].value,
                                .model = o[M].value,
                                .currency = o[C].value,
                                .prices = pr,
                                .from_us = from,
                                .note = o[NOTE].present ? o[NOTE].value : NULL};
    int64_t id;
    char msg[1536], fromtxt[40];
    int rc = CTL_OK;
    if (gw_price_admin_card_add(conn, ctx->actor, &card, &id, msg, sizeof msg) != 0) {
        ctl_error("%s", msg);
        rc = CTL_FAIL;
    } else {
        printf("added price card %lld: %s/%s in %s from %s\n", (long long)id, o[P].value,
               o[M].value, o[C].value, pr_instant_format(from, fromtxt, sizeof fromtxt));
    }
    PQfinish(conn);
    return rc;
}

/* Prints the cards of a result with columns id, provider, model, currency,
 * hit, miss, output, reasoning, from_us, until_us (NULL = open). */
static void ctl_price_print_cards(const PGresult *res, int first_col)
{
    printf("%-6s %-14s %-20s %-4s %10s %10s %10s %10s  %-22s %s\n", "ID", "PROVIDER", "MODEL",
           "CUR", "HIT", "MISS", "OUTPUT", "REASONING", "FROM", "UNTIL");
    for (int r = 0; r < PQntuples(res); r++) {
        const int c = first_col;
        char b[4][64], from[40], until[40];
        for (int k = 0; k < 3; k++)
            ctl_price_micro_format(strtoll(PQgetvalue(res, r, c + 4 + k), NULL, 10), b[k]);
        if (PQgetisnull(res, r, c + 7))
            strcpy(b[3], "=output");
        else
            ctl_price_micro_format(strtoll(PQgetvalue(res, r, c + 7), NULL, 10), b[3]);
        ctl_price_instant_format(strtoll(PQgetvalue(res, r, c + 8), NULL, 10), from);
        ctl_price_instant_format(
            PQgetisnull(res, r, c + 9) ? PR_FOREVER : strtoll(PQgetvalue(res, r, c + 9), NULL, 10),
            until);
        printf("%-6s %-14s %-20s %-4s %10s %10s %10s %10s  %-22s %s\n", PQgetvalue(res, r, c),
               PQgetvalue(res, r, c + 1), PQgetvalue(res, r, c + 2), PQgetvalue(res, r, c + 3),
               b[0], b[1], b[2], b[3], from, until);
    }
}

#define CTL_CARD_COLS                                                                              \
    " h.id, h.provider, h.model, h.currency, h.cache_hit_price, h.cache_miss_price,"               \
    " h.output_price, h.reasoning_price, (extract(epoch FROM h.effective_from) * "                 \
    "1000000)::bigint,"                                                                            \
    " (extract(epoch FROM h.effective_until) * 1000000)::bigint"

static int ctl_price_list(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {
        {"provider", true, false, NULL}, {"model", true, false, NULL}, {"at", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("price list", argc, argv, o, 3, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl price list [--provider P] [--model M] "
                             "[--at INSTANT]\nThe cards in force at INSTANT (default: now).\n"))
        return CTL_OK;
    char err[512], attxt[40];
    int64_t at = ctl_price_now_us();
    if (o[2].present && ctl_price_instant_parse("--at", o[2].value, &at, err, sizeof err) != 0) {
        ctl_error("price list: %s", err);
        return CTL_FAIL;
    }
    pr_instant_format(at, attxt, sizeof attxt);
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {attxt, o[0].present ? o[0].value : NULL,
                            o[1].present ? o[1].value : NULL};
    PGresult *res = ctl_price_exec(
        conn, "price list",
        "SELECT" CTL_CARD_COLS " FROM price_card_history h"
        " WHERE h.effective_from <= $1::timestamptz"
        "   AND (h.effective_until IS NULL OR h.effective_until > $1::timestamptz)"
        "   AND ($2::text IS NULL OR h.provider = $2) AND ($3::text IS NULL OR h.model = $3)"
        " ORDER BY h.provider, h.model",
        3, params, PGRES_TUPLES_OK);
    int rc = CTL_FAIL;
    if (res) {
        printf("price cards in force at %s\n", attxt);
        ctl_price_print_cards(res, 0);
        PQclear(res);
        rc = CTL_OK;
    }
    PQfinish(conn);
    return rc;
}

static int ctl_price_history(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"provider", true, false, NULL}, {"model", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("price history", argc, argv, o, 2, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl price history --provider P --model M\n"
                             "Every card of the model and the windows on each, in time order.\n"))
        return CTL_OK;
    if (!o[0].present || !o[1].present) {
        ctl_error("price history: --provider and --model are required");
        return CTL_USAGE;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {o[0].value, o[1].value};
    PGresult *res = ctl_price_exec(conn, "price history",
                                   "SELECT" CTL_CARD_COLS " FROM price_card_history h"
                                   " WHERE h.provider = $1 AND h.model = $2"
                                   " ORDER BY h.effective_from",
                                   2, params, PGRES_TUPLES_OK);
    PGresult *win =
        res ? ctl_price_exec(conn, "price history",
                             "SELECT w.card_id, w.id, w.kind, w.precedence,"
                             " to_char(w.valid_from AT TIME ZONE 'UTC',"
                             "         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                             " COALESCE(to_char(w.valid_until AT TIME ZONE 'UTC',"
                             "         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'),"
                             " CASE w.kind WHEN 'daily' THEN w.zone || ' '"
                             "   || to_char(make_interval(secs => w.start_second), 'HH24:MI')"
                             "   || '-' || to_char(make_interval(secs => w.end_second), 'HH24:MI')"
                             "   WHEN 'holiday' THEN 'calendar ' || w.calendar_id ELSE '' END,"
                             " w.cache_hit_price, w.cache_miss_price, w.output_price,"
                             " w.reasoning_price, w.percent_off_bp"
                             " FROM discount_windows w JOIN price_cards c ON c.id = w.card_id"
                             " WHERE c.provider = $1 AND c.model = $2"
                             " ORDER BY w.valid_from, w.id",
                             2, params, PGRES_TUPLES_OK)
            : NULL;
    int rc = CTL_FAIL;
    if (res && win) {
        if (PQntuples(res) == 0) {
            ctl_error("price history: no price card for %s/%s (see: tollgatectl price list)",
                      o[0].value, o[1].value);
        } else {
            printf("cards of %s/%s\n", o[0].value, o[1].value);
            ctl_price_print_cards(res, 0);
            printf("\nwindows\n%-6s %-6s %-8s %-5s %-21s %-21s %-20s %9s %9s %9s %9s %s\n", "ID",
                   "CARD", "KIND", "PREC", "FROM", "UNTIL", "WHEN", "HIT", "MISS", "OUTPUT",
                   "REASONING", "PERCENT OFF");
            for (int r = 0; r < PQntuples(win); r++) {
                char b[4][64], pct[24] = "-";
                for (int k = 0; k < 3; k++)
                    ctl_price_micro_format(strtoll(PQgetvalue(win, r, 7 + k), NULL, 10), b[k]);
                if (PQgetisnull(win, r, 10))
                    strcpy(b[3], "=output");
                else
                    ctl_price_micro_format(strtoll(PQgetvalue(win, r, 10), NULL, 10), b[3]);
                if (!PQgetisnull(win, r, 11)) {
                    long bp = strtol(PQgetvalue(win, r, 11), NULL, 10);
                    snprintf(pct, sizeof pct, "%ld.%02ld%%", bp / 100, bp % 100);
                }
                printf("%-6s %-6s %-8s %-5s %-21s %-21s %-20s %9s %9s %9s %9s %s\n",
                       PQgetvalue(win, r, 1), PQgetvalue(win, r, 0), PQgetvalue(win, r, 2),
                       PQgetvalue(win, r, 3), PQgetvalue(win, r, 4), PQgetvalue(win, r, 5),
                       PQgetvalue(win, r, 6), b[0], b[1], b[2], b[3], pct);
            }
            rc = CTL_OK;
        }
    }
    PQclear(res);
    PQclear(win);
    PQfinish(conn);
    return rc;
}

/* Prints a charge: card, window, components, exact and rounded totals. */
static void ctl_price_print_charge(const pr_charge_t *ch)
{
    static const char *names[PR_C_COUNT] = {"cache hit", "cache miss", "output", "reasoning"};
    const int64_t prices[PR_C_COUNT] = {ch->prices.cache_hit, ch->prices.cache_miss,
                                        ch->prices.output, ch->prices.reasoning};
    const pr_card_t *c = ch->card;
    const char *cur = c->currency->code;
    char a[64], b[64], from[40], until[40];
    printf("card:      %lld %s/%s, %s, from %s until %s\n", (long long)c->id, c->provider, c->model,
           cur, ctl_price_instant_format(c->effective_from_us, from),
           ctl_price_instant_format(c->effective_until_us, until));
    if (ch->window) {
        const pr_window_t *w = ch->window;
        static const char *kinds[] = {"once", "daily", "holiday"};
        printf("window:    %lld (%s, precedence %d)\n", (long long)w->id, kinds[w->kind],
               (int)w->precedence);
    } else {
        printf("window:    none (the card's prices)\n");
    }
    printf("decided at %s\n", ctl_price_instant_format(ch->decided_at_us, from));
    for (int k = 0; k < PR_C_COUNT; k++)
        printf("%-10s %lld tokens x %s %s/1M = %s %s\n", names[k], (long long)ch->tokens[k],
               ctl_price_micro_format(prices[k], a), cur,
               (pr_pico_format(ch->cost[k], 0, b, 64), b), cur);
    pr_pico_format(ch->total, 0, a, sizeof a);
    printf("total:     %s %s (exact)\n", a, cur);
    pr_pico_t rounded;
    pr_pico_round(ch->total, c->currency->minor, &rounded);
    pr_pico_format(rounded, c->currency->minor, b, sizeof b);
    printf("rounded:   %s %s (half to even, %d decimals)\n", b, cur, c->currency->minor);
    if (ch->flags)
        printf("flags:     %u (priced on incomplete counts)\n", ch->flags);
}

static int ctl_price_preview(ctl_ctx_t *ctx, int argc, char **argv)
{
    enum { P, M, AT, HIT, MISS, OUT, REAS, N };
    ctl_opt_t o[N] = {{"provider", true, false, NULL}, {"model", true, false, NULL},
                      {"at", true, false, NULL},       {"hit", true, false, NULL},
                      {"miss", true, false, NULL},     {"output", true, false, NULL},
                      {"reasoning", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("price preview", argc, argv, o, N, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help,
                       "usage: tollgatectl price preview --provider P --model M --at INSTANT\n"
                       "         --hit N --miss N --output N [--reasoning N]\n"
                       "Token counts: cache-hit and cache-miss input, output (without\n"
                       "reasoning) and reasoning tokens. Prints the card, the window, each\n"
                       "component, the exact total and the rounded amount.\n"))
        return CTL_OK;
    if (!ctl_price_required("price preview", o, N, 1u << REAS))
        return CTL_USAGE;
    char err[512];
    int64_t at, hit, miss, out, reas = 0;
    if (ctl_price_instant_parse("--at", o[AT].value, &at, err, sizeof err) != 0 ||
        ctl_price_tokens_parse("--hit", o[HIT].value, &hit, err, sizeof err) != 0 ||
        ctl_price_tokens_parse("--miss", o[MISS].value, &miss, err, sizeof err) != 0 ||
        ctl_price_tokens_parse("--output", o[OUT].value, &out, err, sizeof err) != 0 ||
        (o[REAS].present &&
         ctl_price_tokens_parse("--reasoning", o[REAS].value, &reas, err, sizeof err) != 0)) {
        ctl_error("price preview: %s", err);
        return CTL_FAIL;
    }
    pr_book_t *book = ctl_price_book_fetch(ctx);
    if (!book)
        return CTL_FAIL;
    pr_usage_t u = {hit + miss, hit, miss, out + reas, o[REAS].present ? reas : -1, true};
    pr_charge_t ch;
    int rc = CTL_OK;
    if (pr_price_usage(book, o[P].value, o[M].value, at, at, &u, &ch, err, sizeof err) != 0) {
        ctl_error("price preview: %s", err);
        rc = CTL_FAIL;
    } else {
        ctl_price_print_charge(&ch);
    }
    pr_book_free(book);
    return rc;
}

static int ctl_price_quote(ctl_ctx_t *ctx, int argc, char **argv)
{
    enum { P, M, PROMPT, MAX, AT, N };
    ctl_opt_t o[N] = {{"provider", true, false, NULL},
                      {"model", true, false, NULL},
                      {"prompt-tokens", true, false, NULL},
                      {"max-tokens", true, false, NULL},
                      {"at", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("price quote", argc, argv, o, N, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(
            help, "usage: tollgatectl price quote --provider P --model M --prompt-tokens N\n"
                  "         --max-tokens N [--at INSTANT]\n"
                  "Worst case before sending: every prompt token at the cache-miss price,\n"
                  "max tokens at the dearer of the output and reasoning prices, at the dearer\n"
                  "of the card's own prices and the window in force at INSTANT (default now).\n"))
        return CTL_OK;
    if (!ctl_price_required("price quote", o, N, 1u << AT))
        return CTL_USAGE;
    char err[512];
    int64_t prompt, max_tokens, at = ctl_price_now_us();
    if (ctl_price_tokens_parse("--prompt-tokens", o[PROMPT].value, &prompt, err, sizeof err) != 0 ||
        ctl_price_tokens_parse("--max-tokens", o[MAX].value, &max_tokens, err, sizeof err) != 0 ||
        (o[AT].present &&
         ctl_price_instant_parse("--at", o[AT].value, &at, err, sizeof err) != 0)) {
        ctl_error("price quote: %s", err);
        return CTL_FAIL;
    }
    pr_book_t *book = ctl_price_book_fetch(ctx);
    if (!book)
        return CTL_FAIL;
    int rc = CTL_FAIL;
    gw_price_quote_t q;
    if (gw_price_admin_quote(book, o[P].value, o[M].value, at, prompt, max_tokens, &q, err,
                             sizeof err) != 0) {
        ctl_error("price quote: %s", err);
        goto done;
    }
    const pr_card_t *card = q.card;
    const pr_window_t *win = q.window;
    bool use_window = q.use_window;
    pr_pico_t in_c = q.prompt_cost, out_c = q.completion_cost, total = q.total;
    char a[64], b[64], t[40];
    const char *cur = card->currency->code;
    printf("quote for %s/%s at %s (worst case)\n", card->provider, card->model,
           pr_instant_format(at, t, sizeof t));
    printf("card:      %lld%s\n", (long long)card->id, win ? "" : " (no window in force)");
    if (win)
        printf("window:    %lld in force; priced at the %s\n", (long long)win->id,
               use_window ? "window's prices (dearer)" : "card's own prices (dearer or equal)");
    printf("prompt     %lld tokens, all at the cache-miss price = %s %s\n", (long long)prompt,
           (pr_pico_format(in_c, 0, a, 64), a), cur);
    printf("completion %lld tokens at the dearer of output/reasoning = %s %s\n",
           (long long)max_tokens, (pr_pico_format(out_c, 0, b, 64), b), cur);
    pr_pico_format(total, 0, a, sizeof a);
    printf("total:     %s %s (exact, at most)\n", a, cur);
    pr_pico_t rounded;
    pr_pico_round(total, card->currency->minor, &rounded);
    pr_pico_format(rounded, card->currency->minor, b, sizeof b);
    printf("rounded:   %s %s\n", b, cur);
    rc = CTL_OK;
done:
    pr_book_free(book);
    return rc;
}

/* The default seed file: next to the source tree when built there, else the
 * installed copy. */
static const char *ctl_price_seed_default(void)
{
    static char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", TG_SEED_DIR, CTL_SEED_FILE);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return path;
    snprintf(path, sizeof path, "%s/%s", CTL_SEED_INSTALLED, CTL_SEED_FILE);
    return path;
}

/* Reads a whole file into a NUL-terminated buffer; NULL after printing why. */
static char *ctl_price_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ctl_error("price seed: cannot open %s: %m", path);
        return NULL;
    }
    char *buf = malloc(CTL_SEED_MAX_BYTES + 1);
    if (!buf)
        abort();
    size_t n = fread(buf, 1, CTL_SEED_MAX_BYTES + 1, f);
    bool bad = ferror(f) || n > CTL_SEED_MAX_BYTES;
    fclose(f);
    if (bad) {
        ctl_error("price seed: cannot read %s (unreadable, or larger than %d bytes)", path,
                  CTL_SEED_MAX_BYTES);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        ctl_error("price seed: %s is not a text file (it holds a NUL byte)", path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Blanks the lines that are only "BEGIN;" or "COMMIT;" (any case): the file
 * runs inside tollgatectl's own transaction, which validates before COMMIT. */
static void ctl_price_strip_txn(char *sql)
{
    for (char *line = sql; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t a = 0, z = len;
        while (a < z && (line[a] == ' ' || line[a] == '\t'))
            a++;
        while (z > a && (line[z - 1] == ' ' || line[z - 1] == '\t' || line[z - 1] == '\r'))
            z--;
        if ((z - a == 6 && strncasecmp(line + a, "BEGIN;", 6) == 0) ||
            (z - a == 7 && strncasecmp(line + a, "COMMIT;", 7) == 0))
            memset(line + a, ' ', z - a);
        if (!end)
            break;
        line = end + 1;
    }
}

static int ctl_price_seed(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("price seed", argc, argv, NULL, 0, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl price seed [FILE]\n"
                             "Loads price data from a SQL file (default: DeepSeek's published\n"
                             "history, etc/seed/deepseek-prices.sql) in one validated\n"
                             "transaction. Safe to re-run: rows already there are kept.\n"))
        return CTL_OK;
    const char *path = npos ? pos[0] : ctl_price_seed_default();
    char *sql = ctl_price_slurp(path);
    if (!sql)
        return CTL_FAIL;
    ctl_price_strip_txn(sql);
    PGconn *conn = ctl_connect(ctx);
    if (!conn) {
        free(sql);
        return CTL_FAIL;
    }
    int rc = CTL_FAIL;
    PGresult *res = NULL;
    if (ctl_price_begin(conn, ctx) != 0)
        goto done;
    PGresult *before = PQexec(conn, "SELECT (SELECT count(*) FROM price_cards),"
                                    " (SELECT count(*) FROM discount_windows)");
    long cards0 = 0, wins0 = 0;
    if (PQresultStatus(before) == PGRES_TUPLES_OK) {
        cards0 = strtol(PQgetvalue(before, 0, 0), NULL, 10);
        wins0 = strtol(PQgetvalue(before, 0, 1), NULL, 10);
    }
    PQclear(before);
    res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ctl_price_refused(conn, res, "price seed");
        ctl_price_rollback(conn);
        goto done;
    }
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        ctl_error("price seed: %s ends the transaction itself (a COMMIT or ROLLBACK not alone on "
                  "its line); remove it so the file can be validated before it is saved",
                  path);
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT (SELECT count(*) FROM price_cards),"
                       " (SELECT count(*) FROM discount_windows)");
    long cards1 = cards0, wins1 = wins0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        cards1 = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        wins1 = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    }
    if (ctl_price_commit_checked(conn, "price seed") != 0)
        goto done;
    printf("seeded from %s: %ld new price cards, %ld new windows\n", path, cards1 - cards0,
           wins1 - wins0);
    rc = CTL_OK;
done:
    PQclear(res);
    PQfinish(conn);
    free(sql);
    return rc;
}

int ctl_price_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_price_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    static const struct {
        const char *name;
        int (*run)(ctl_ctx_t *, int, char **);
    } cmds[] = {{"add", ctl_price_add},         {"list", ctl_price_list},
                {"history", ctl_price_history}, {"preview", ctl_price_preview},
                {"quote", ctl_price_quote},     {"seed", ctl_price_seed}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].run(ctx, argc - 2, argv + 2);
    ctl_error("price: unknown command '%s' (add, list, history, preview, quote, seed; see: "
              "tollgatectl price --help)",
              argv[1]);
    return CTL_USAGE;
}
