/* ctl_price_window: "tollgatectl window add|list|end": discount windows on a
 * price card (one-off promotions, daily hours in a zone, holiday calendars),
 * validated with the whole price book before COMMIT and audited by trigger. */
#include "ctl_price.h"

#include "gw_price_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ctl_window_usage[] =
    "usage: tollgatectl [--db CONNINFO] [--actor NAME] window COMMAND\n"
    "\n"
    "  window add --card ID KIND --precedence N PRICES [--from I] [--until I] [--note T]\n"
    "     KIND:   --once --from I --until I\n"
    "           | --daily --zone Z --start HH:MM --end HH:MM [--weekdays mon,tue,..]\n"
    "                     [--exclude-calendar ID]\n"
    "           | --holiday --calendar ID\n"
    "     PRICES: --percent-off P | --hit X --miss Y --output Z [--reasoning R]\n"
    "                 add a discount window to a price card\n"
    "  window list [--card ID]    list windows\n"
    "  window end ID --at INSTANT end a window at an instant (valid_until)\n"
    "\n"
    "A window replaces its card's prices while it applies; when several apply,\n"
    "the highest precedence wins (equal precedences that can overlap are refused).\n"
    "Daily windows: local [start, end) in the IANA zone; end <= start wraps past\n"
    "midnight; --end 24:00 is the end of the day. See docs/prices-admin.md.\n";

enum {
    W_CARD,
    W_ONCE,
    W_DAILY,
    W_HOLIDAY,
    W_FROM,
    W_UNTIL,
    W_ZONE,
    W_START,
    W_END,
    W_WEEKDAYS,
    W_EXCL,
    W_CAL,
    W_PREC,
    W_PCT,
    W_HIT,
    W_MISS,
    W_OUT,
    W_REAS,
    W_NOTE,
    W_N
};

/* Fills a window definition from parsed options; -1 after printing why. The
 * zone and note point into the options. */
static int ctl_window_cols(ctl_opt_t *o, gw_price_window_new_t *c)
{
    char err[512];
    int64_t v;
    memset(c, 0, sizeof *c);
    int kinds = o[W_ONCE].present + o[W_DAILY].present + o[W_HOLIDAY].present;
    if (kinds != 1) {
        ctl_error("window add: give exactly one of --once, --daily, --holiday");
        return -1;
    }
    if (!o[W_CARD].present || !o[W_PREC].present) {
        ctl_error("window add: --card and --precedence are required");
        return -1;
    }
    if (ctl_price_id_parse("--card", o[W_CARD].value, &v, err, sizeof err) != 0)
        goto bad;
    c->card_id = v;
    if (ctl_price_int_parse("--precedence", o[W_PREC].value, -1000000, 1000000, &v, err,
                            sizeof err) != 0)
        goto bad;
    c->precedence = (int32_t)v;
    int64_t from = 0, until = 0;
    char ftxt[40], utxt[40];
    if (o[W_FROM].present) {
        if (ctl_price_instant_parse("--from", o[W_FROM].value, &from, err, sizeof err) != 0)
            goto bad;
        c->from_us = from;
        c->has_from = true;
    }
    if (o[W_UNTIL].present) {
        if (ctl_price_instant_parse("--until", o[W_UNTIL].value, &until, err, sizeof err) != 0)
            goto bad;
        c->until_us = until;
        c->has_until = true;
    }
    if (c->has_from && c->has_until && until <= from) {
        ctl_error("window add: --until (%s) must be after --from (%s)",
                  pr_instant_format(until, utxt, sizeof utxt),
                  pr_instant_format(from, ftxt, sizeof ftxt));
        return -1;
    }
    c->weekdays = PR_WEEKDAYS_ALL;
    if (o[W_ONCE].present) {
        c->kind = PR_WIN_ONCE;
        if (!c->has_from || !c->has_until) {
            ctl_error("window add: --once needs --from and --until (the promotion's range)");
            return -1;
        }
        if (o[W_ZONE].present || o[W_START].present || o[W_END].present || o[W_WEEKDAYS].present ||
            o[W_EXCL].present || o[W_CAL].present) {
            ctl_error("window add: --once takes no --zone, --start, --end, --weekdays or "
                      "calendar");
            return -1;
        }
    } else if (o[W_DAILY].present) {
        c->kind = PR_WIN_DAILY;
        if (!o[W_ZONE].present || !o[W_START].present || !o[W_END].present) {
            ctl_error("window add: --daily needs --zone, --start and --end");
            return -1;
        }
        if (o[W_CAL].present) {
            ctl_error("window add: --calendar is for --holiday; a daily window excludes a "
                      "calendar's dates with --exclude-calendar");
            return -1;
        }
        pr_tz_t *tz = NULL;
        char msg[384];
        if (strlen(o[W_ZONE].value) >= 128 ||
            pr_tz_load(o[W_ZONE].value, NULL, &tz, msg, sizeof msg) != 0) {
            ctl_error("window add: unknown time zone '%s': give an IANA zone from the tz "
                      "database such as UTC, Asia/Shanghai or America/New_York",
                      o[W_ZONE].value);
            return -1;
        }
        pr_tz_free(tz);
        c->zone = o[W_ZONE].value;
        int32_t s, e;
        if (ctl_price_clock_parse("--start", o[W_START].value, false, &s, err, sizeof err) != 0 ||
            ctl_price_clock_parse("--end", o[W_END].value, true, &e, err, sizeof err) != 0)
            goto bad;
        if (s == e) {
            ctl_error("window add: --start and --end are the same: the window would be empty "
                      "(a whole day is --start 00:00 --end 24:00)");
            return -1;
        }
        c->start_sec = s;
        c->end_sec = e;
        if (o[W_WEEKDAYS].present) {
            uint8_t mask;
            if (ctl_price_weekdays_parse(o[W_WEEKDAYS].value, &mask, err, sizeof err) != 0)
                goto bad;
            c->weekdays = mask;
        }
        if (o[W_EXCL].present) {
            if (ctl_price_id_parse("--exclude-calendar", o[W_EXCL].value, &v, err, sizeof err) != 0)
                goto bad;
            c->calendar_id = v;
        }
    } else {
        c->kind = PR_WIN_HOLIDAY;
        if (!o[W_CAL].present) {
            ctl_error("window add: --holiday needs --calendar ID (see: tollgatectl calendar "
                      "list)");
            return -1;
        }
        if (o[W_ZONE].present || o[W_START].present || o[W_END].present || o[W_WEEKDAYS].present ||
            o[W_EXCL].present) {
            ctl_error("window add: --holiday takes its zone from the calendar; no --zone, "
                      "--start, --end, --weekdays or --exclude-calendar");
            return -1;
        }
        if (ctl_price_id_parse("--calendar", o[W_CAL].value, &v, err, sizeof err) != 0)
            goto bad;
        c->calendar_id = v;
    }
    bool explicit_prices =
        o[W_HIT].present || o[W_MISS].present || o[W_OUT].present || o[W_REAS].present;
    if (o[W_PCT].present == explicit_prices) {
        ctl_error("window add: give either --percent-off P or --hit, --miss and --output "
                  "(explicit prices), not both");
        return -1;
    }
    if (o[W_PCT].present) {
        int32_t bp;
        if (ctl_price_percent_parse(o[W_PCT].value, &bp, err, sizeof err) != 0)
            goto bad;
        c->percent_off_bp = bp;
        c->use_percent = true;
    } else {
        if (!o[W_HIT].present || !o[W_MISS].present || !o[W_OUT].present) {
            ctl_error("window add: explicit prices need --hit, --miss and --output");
            return -1;
        }
        int64_t p[4] = {0, 0, 0, -1};
        if (ctl_price_money_parse("--hit", o[W_HIT].value, &p[0], err, sizeof err) != 0 ||
            ctl_price_money_parse("--miss", o[W_MISS].value, &p[1], err, sizeof err) != 0 ||
            ctl_price_money_parse("--output", o[W_OUT].value, &p[2], err, sizeof err) != 0 ||
            (o[W_REAS].present &&
             ctl_price_money_parse("--reasoning", o[W_REAS].value, &p[3], err, sizeof err) != 0))
            goto bad;
        c->prices = (pr_prices_t){p[0], p[1], p[2], p[3]};
    }
    return 0;
bad:
    ctl_error("window add: %s", err);
    return -1;
}

static int ctl_window_add(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[W_N] = {{"card", true, false, NULL},
                        {"once", false, false, NULL},
                        {"daily", false, false, NULL},
                        {"holiday", false, false, NULL},
                        {"from", true, false, NULL},
                        {"until", true, false, NULL},
                        {"zone", true, false, NULL},
                        {"start", true, false, NULL},
                        {"end", true, false, NULL},
                        {"weekdays", true, false, NULL},
                        {"exclude-calendar", true, false, NULL},
                        {"calendar", true, false, NULL},
                        {"precedence", true, false, NULL},
                        {"percent-off", true, false, NULL},
                        {"hit", true, false, NULL},
                        {"miss", true, false, NULL},
                        {"output", true, false, NULL},
                        {"reasoning", true, false, NULL},
                        {"note", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("window add", argc, argv, o, W_N, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, ctl_window_usage))
        return CTL_OK;
    gw_price_window_new_t c;
    if (ctl_window_cols(o, &c) != 0)
        return CTL_FAIL;
    c.note = o[W_NOTE].present ? o[W_NOTE].value : NULL;
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    static const char *kinds[] = {"once", "daily", "holiday"};
    char msg[1536];
    int64_t id;
    pr_prices_t saved;
    int rc = CTL_OK;
    if (gw_price_admin_window_add(conn, ctx->actor, &c, &id, &saved, msg, sizeof msg) != 0) {
        ctl_error("%s", msg);
        rc = CTL_FAIL;
    } else {
        char b[4][64];
        printf("added %s window %lld on card %lld: hit %s, miss %s, output %s, reasoning %s per "
               "1M\n",
               kinds[c.kind], (long long)id, (long long)c.card_id,
               ctl_price_micro_format(saved.cache_hit, b[0]),
               ctl_price_micro_format(saved.cache_miss, b[1]),
               ctl_price_micro_format(saved.output, b[2]),
               ctl_price_micro_format(saved.reasoning, b[3]));
    }
    PQfinish(conn);
    return rc;
}

static int ctl_window_list(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"card", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("window list", argc, argv, o, 1, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl window list [--card ID]\n"))
        return CTL_OK;
    char err[512], card[24];
    int64_t v;
    if (o[0].present) {
        if (ctl_price_id_parse("--card", o[0].value, &v, err, sizeof err) != 0) {
            ctl_error("window list: %s", err);
            return CTL_FAIL;
        }
        snprintf(card, sizeof card, "%lld", (long long)v);
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    const char *params[] = {o[0].present ? card : NULL};
    PGresult *res = ctl_price_exec(
        conn, "window list",
        "SELECT w.id, w.card_id, c.provider || '/' || c.model, w.kind, w.precedence,"
        " to_char(w.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        " COALESCE(to_char(w.valid_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "   '-'),"
        " CASE w.kind WHEN 'daily' THEN w.zone || ' '"
        "   || to_char(make_interval(secs => w.start_second), 'HH24:MI') || '-'"
        "   || to_char(make_interval(secs => w.end_second), 'HH24:MI')"
        "   || CASE WHEN w.weekdays <> 127 THEN ' ' || (SELECT string_agg(d, ',' ORDER BY i)"
        "      FROM unnest(ARRAY['mon','tue','wed','thu','fri','sat','sun']) WITH ORDINALITY"
        "      AS a(d, i) WHERE w.weekdays & (1 << (i::int - 1)) <> 0) ELSE '' END"
        "   || COALESCE(' except calendar ' || w.calendar_id, '')"
        "   WHEN 'holiday' THEN 'calendar ' || w.calendar_id ELSE '' END,"
        " w.cache_hit_price, w.cache_miss_price, w.output_price,"
        " COALESCE(w.reasoning_price, w.output_price)"
        " FROM discount_windows w JOIN price_cards c ON c.id = w.card_id"
        " WHERE $1::bigint IS NULL OR w.card_id = $1::bigint ORDER BY w.card_id, w.valid_from, "
        "w.id",
        1, params, PGRES_TUPLES_OK);
    int rc = CTL_FAIL;
    if (res) {
        printf("%-6s %-6s %-32s %-8s %-5s %-21s %-21s %-24s %9s %9s %9s %9s\n", "ID", "CARD",
               "PROVIDER/MODEL", "KIND", "PREC", "FROM", "UNTIL", "WHEN", "HIT", "MISS", "OUTPUT",
               "REASONING");
        for (int r = 0; r < PQntuples(res); r++) {
            char b[4][64];
            for (int k = 0; k < 4; k++)
                ctl_price_micro_format(strtoll(PQgetvalue(res, r, 8 + k), NULL, 10), b[k]);
            printf("%-6s %-6s %-32s %-8s %-5s %-21s %-21s %-24s %9s %9s %9s %9s\n",
                   PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                   PQgetvalue(res, r, 3), PQgetvalue(res, r, 4), PQgetvalue(res, r, 5),
                   PQgetvalue(res, r, 6), PQgetvalue(res, r, 7), b[0], b[1], b[2], b[3]);
        }
        PQclear(res);
        rc = CTL_OK;
    }
    PQfinish(conn);
    return rc;
}

static int ctl_window_end(ctl_ctx_t *ctx, int argc, char **argv)
{
    ctl_opt_t o[] = {{"at", true, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("window end", argc, argv, o, 1, pos, 1, &npos, &help) != 0)
        return CTL_USAGE;
    if (ctl_price_help(help, "usage: tollgatectl window end ID --at INSTANT\n"
                             "Sets the window's end (valid_until). On a card that has priced\n"
                             "usage only an end not in the past is accepted.\n"))
        return CTL_OK;
    if (npos != 1 || !o[0].present) {
        ctl_error("window end: give the window's id and --at INSTANT");
        return CTL_USAGE;
    }
    char err[512], at[40];
    int64_t v, us;
    if (ctl_price_id_parse("window id", pos[0], &v, err, sizeof err) != 0 ||
        ctl_price_instant_parse("--at", o[0].value, &us, err, sizeof err) != 0) {
        ctl_error("window end: %s", err);
        return CTL_FAIL;
    }
    PGconn *conn = ctl_connect(ctx);
    if (!conn)
        return CTL_FAIL;
    char msg[1536];
    int rc = CTL_OK;
    if (gw_price_admin_window_end(conn, ctx->actor, v, us, msg, sizeof msg) != 0) {
        ctl_error("%s", msg);
        rc = CTL_FAIL;
    } else {
        printf("window %lld now ends at %s\n", (long long)v, pr_instant_format(us, at, sizeof at));
    }
    PQfinish(conn);
    return rc;
}

int ctl_window_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ctl_window_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "add") == 0)
        return ctl_window_add(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return ctl_window_list(ctx, argc - 2, argv + 2);
    if (strcmp(argv[1], "end") == 0)
        return ctl_window_end(ctx, argc - 2, argv + 2);
    ctl_error("window: unknown command '%s' (add, list, end; see: tollgatectl window --help)",
              argv[1]);
    return CTL_USAGE;
}
