/* tollgatectl: the admin CLI. Takes the global options (--db, --actor)
 * from anywhere on the line, then hands the rest to a subcommand group. */
#include "ctl.h"
#include "ctl_budget.h"
#include "ctl_price.h"
#include "tok_cli.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ctl_group {
    const char *name;
    int (*run)(ctl_ctx_t *ctx, int argc, char **argv); /* argv[0] is the group's name */
    const char *summary;
} ctl_group_t;

/* "tokens count|encode|decode": the tokenizer's own CLI; needs no database. */
static int ctl_tokens_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    (void)ctx;
    return tok_cli_main(argc, argv);
}

/* The subcommand groups. To add one, add a line here; a group that needs no
 * database can ignore ctx. */
static const ctl_group_t ctl_groups[] = {
    {"migrate", ctl_migrate_main, "apply pending database migrations (--status to inspect)"},
    {"team", ctl_team_main, "create and list teams"},
    {"key", ctl_key_main, "create, list and revoke API keys"},
    {"price", ctl_price_main, "price cards: add, list, history, preview, quote, seed"},
    {"window", ctl_window_main, "discount windows on price cards: add, list, end"},
    {"provider", ctl_provider_main, "per-provider price settings (tier instant)"},
    {"calendar", ctl_calendar_main, "holiday calendars for discount windows"},
    {"budget", ctl_budget_main, "team and key budgets: set, show, list (audited)"},
    {"limit", ctl_limit_main, "rate limits per team or key: set, show (audited)"},
    {"tokens", ctl_tokens_main, "count, encode or decode text with a tokenizer (no database)"},
    {"usage", ctl_usage_main, "usage ledger: summary, export (csv|json), verify, gateway-costs"},
    {"route", ctl_route_main, "explain a running gateway's routing decision (admin listener)"},
};

static void ctl_usage(FILE *out)
{
    fputs("usage: tollgatectl [--db CONNINFO] [--actor NAME] COMMAND [ARGS]\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof ctl_groups / sizeof ctl_groups[0]; i++)
        fprintf(out, "  %-10s %s\n", ctl_groups[i].name, ctl_groups[i].summary);
    fputs("\n"
          "Global options (accepted anywhere on the line):\n"
          "  --db CONNINFO  PostgreSQL to use, as a libpq conninfo or URI\n"
          "                 (default: $TG_PG_CONNINFO, else libpq's defaults and PG* variables)\n"
          "  --actor NAME   who is making the change, for audit_log\n"
          "                 (default: $SUDO_USER, else $USER, else the login name)\n"
          "  --help         this text; every command has its own --help\n",
          out);
}

/* Removes "--db X", "--db=X", "--actor X", "--actor=X" from argv wherever
 * they are, storing their values in ctx. Returns the new argc, or -1 if one
 * lacks its value. */
static int ctl_take_globals(int argc, char **argv, ctl_ctx_t *ctx)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        const char *name = NULL;
        if (strncmp(argv[i], "--db", 4) == 0 && (argv[i][4] == '\0' || argv[i][4] == '=')) {
            slot = &ctx->conninfo;
            name = "--db";
        } else if (strncmp(argv[i], "--actor", 7) == 0 &&
                   (argv[i][7] == '\0' || argv[i][7] == '=')) {
            slot = &ctx->actor;
            name = "--actor";
        }
        if (!slot) {
            argv[out++] = argv[i];
            continue;
        }
        const char *eq = strchr(argv[i], '=');
        if (eq) {
            *slot = eq + 1;
        } else if (i + 1 < argc) {
            *slot = argv[++i];
        } else {
            ctl_error("option %s needs a value", name);
            return -1;
        }
    }
    argv[out] = NULL;
    return out;
}

static const char *ctl_default_actor(void)
{
    const char *names[] = {"SUDO_USER", "USER", "LOGNAME"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return v;
    }
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_name ? pw->pw_name : "unknown";
}

int main(int argc, char **argv)
{
    ctl_ctx_t ctx = {0};
    argc = ctl_take_globals(argc, argv, &ctx);
    if (argc < 0)
        return CTL_USAGE;
    if (!ctx.conninfo)
        ctx.conninfo = getenv("TG_PG_CONNINFO") ? getenv("TG_PG_CONNINFO") : "";
    if (!ctx.actor)
        ctx.actor = ctl_default_actor();
    if (!ctx.actor[0]) {
        ctl_error("--actor must not be empty");
        return CTL_USAGE;
    }
    if (argc < 2) {
        ctl_usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        ctl_usage(stdout);
        return CTL_OK;
    }
    for (size_t i = 0; i < sizeof ctl_groups / sizeof ctl_groups[0]; i++)
        if (strcmp(argv[1], ctl_groups[i].name) == 0)
            return ctl_groups[i].run(&ctx, argc - 1, argv + 1);
    ctl_error("unknown command '%s' (see: tollgatectl --help)", argv[1]);
    return CTL_USAGE;
}
