/* tollgate: the gateway daemon. Loads the configuration, starts the key store
 * and the usage writer (PostgreSQL), the workers and the admin listener, and
 * runs until SIGTERM/SIGINT, then drains in-flight requests and usage rows. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_clock.h"
#include "gw_config.h"
#include "gw_keystore.h"
#include "gw_pricebook.h"
#include "gw_prompt.h"
#include "gw_server.h"
#include "gw_usage.h"
#include "tg_log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: tollgate [--config FILE] [--check-config] [--port-file FILE]\n"
            "\n"
            "The Tollgate gateway: an OpenAI-compatible metering reverse proxy.\n"
            "\n"
            "  --config FILE     configuration file (default /etc/tollgate/tollgate.conf;\n"
            "                    see etc/tollgate.conf for every setting)\n"
            "  --check-config    validate the configuration, print a summary and exit\n"
            "  --port-file FILE  once listening, write the public and admin ports there\n"
            "                    (two lines; useful with port 0 in the config)\n"
            "  --help            this text\n"
            "\n"
            "Environment: TG_PG_CONNINFO (PostgreSQL, when the config has no postgres =),\n"
            "provider secrets named by api_key = env:NAME in the config.\n");
}

int main(int argc, char **argv)
{
    const char *config_path = "/etc/tollgate/tollgate.conf";
    const char *port_file = NULL;
    bool check_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
            port_file = argv[++i];
        } else if (!strcmp(argv[i], "--check-config")) {
            check_only = true;
        } else {
            fprintf(stderr, "tollgate: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    static gw_config_t cfg;
    char err[1024];
    if (gw_config_load(config_path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tollgate: configuration error: %s\n", err);
        return 1;
    }
    if (check_only) {
        for (int m = 0; m < cfg.n_models; m++) {
            gw_tokenizer_t t;
            if (cfg.models[m].tokenizer[0] &&
                gw_tokenizer_load(&t, cfg.models[m].tokenizer, err, sizeof err) < 0) {
                fprintf(stderr, "tollgate: model %s: %s\n", cfg.models[m].name, err);
                gw_config_free(&cfg);
                return 1;
            }
            if (cfg.models[m].tokenizer[0])
                gw_tokenizer_free(&t);
        }
        printf("%s: OK: %d provider(s), %d model(s), %d worker(s), listen %s:%d\n", config_path,
               cfg.n_providers, cfg.n_models, cfg.workers, cfg.listen_host, cfg.listen_port);
        gw_config_free(&cfg);
        return 0;
    }
    tg_log_level_t level = TG_LOG_INFO;
    tg_log_level_parse(cfg.log_level, &level);
    tg_log_init("tollgate", level);
    if (cfg.test_clock_us) {
        gw_clock_start_at(cfg.test_clock_us);
        tg_warn("TEST CLOCK: instants (and so prices) are shifted to start at the configured "
                "test_clock; never use this in production");
    }
    signal(SIGPIPE, SIG_IGN);
    if (!cfg.postgres[0])
        tg_warn("no PostgreSQL connection configured (postgres = or TG_PG_CONNINFO): using "
                "libpq defaults");

    gw_keystore_t *ks = gw_keystore_start(cfg.postgres);
    gw_usage_writer_opts_t uwo;
    gw_usage_writer_opts_default(&uwo);
    uwo.conninfo = cfg.postgres;
    uwo.batch_max = cfg.usage_batch;
    uwo.flush_ms = cfg.usage_flush_ms;
    uwo.spool = cfg.spool;
    gw_usage_writer_t *uw = gw_usage_writer_start2(&uwo, err, sizeof err);
    if (!uw) {
        tg_error("cannot start the usage writer: %s", err);
        if (ks)
            gw_keystore_stop(ks);
        gw_config_free(&cfg);
        return 1;
    }
    if (!ks) {
        tg_error("cannot start the key store");
        return 1;
    }
    if (!cfg.spool.dir[0])
        tg_warn("no spool_dir configured: usage rows wait in memory while PostgreSQL is "
                "unreachable and are lost if the process is killed meanwhile");
    gw_pricebook_t *pb = gw_pricebook_start(cfg.postgres, NULL);
    if (!pb) {
        tg_error("cannot start the price book");
        return 1;
    }
    if (!gw_keystore_wait_loaded(ks, 5000))
        tg_warn("key table not loaded yet (PostgreSQL unreachable?): requests get 503 until it "
                "is");
    if (!gw_pricebook_wait_loaded(pb, 2000))
        tg_warn("price book not loaded yet: requests are not priced until it is");
    gw_server_t *server = gw_server_start(&cfg, ks, uw, pb, err, sizeof err);
    if (!server) {
        tg_error("cannot start: %s", err);
        gw_pricebook_stop(pb);
        gw_usage_writer_stop(uw, 0);
        gw_keystore_stop(ks);
        gw_config_free(&cfg);
        return 1;
    }
    tg_info("listening on %s:%d (admin %s:%d), %d workers, %d providers, %d models",
            cfg.listen_host, server->public_port, cfg.admin_host, server->admin_port, cfg.workers,
            cfg.n_providers, cfg.n_models);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%d\n%d\n", server->public_port, server->admin_port) < 0 ||
            fclose(f) != 0)
            tg_error("cannot write port file %s", port_file);
    }
    gw_server_run(server);
    gw_server_free(server);
    tg_info("workers stopped; writing the remaining usage rows");
    gw_usage_writer_stop(uw, 10000);
    gw_pricebook_stop(pb);
    gw_keystore_stop(ks);
    gw_config_free(&cfg);
    tg_info("stopped");
    return 0;
}
