/* Unit tests for gateway/gw_config: a full valid file, defaults, secrets from
 * env and files only, and errors that name the file, line and problem. */
#include "gw_config.h"

#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static char dir[] = "/tmp/tg-config-test-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text and expects failure with `needle` in the message. */
static void expect_error(const char *text, const char *needle)
{
    gw_config_t cfg;
    char err[512];
    const char *path = write_file("bad.conf", text);
    int rc = gw_config_load(path, &cfg, err, sizeof err);
    CHECK(rc == -1);
    if (rc == -1 && !strstr(err, needle)) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        check_failures++;
    }
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    setenv("TG_TEST_SECRET", "sk-env", 1);
    write_file("key.txt", "sk-file\n");
    char text[2048];
    snprintf(text, sizeof text,
             "# comment\n[gateway]\nlisten = 127.0.0.1:0   # trailing comment\nworkers = 3\t# tab comment\npostgres = dbname=x\n"
             "admin_token = env:TG_TEST_SECRET\n\n"
             "[provider a]\nkind = deepseek\nbase_url = https://api.example.com/v1/\n"
             "api_key = file:%s/key.txt\n"
             "[provider b]\nbase_url = http://127.0.0.1:9001\napi_key = none\n"
             "[model chat]\nprovider = a upstream=deepseek-chat context=65536\n"
             "provider = b\n",
             dir);
    gw_config_t cfg;
    char err[512];
    int rc = gw_config_load(write_file("ok.conf", text), &cfg, err, sizeof err);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    CHECK(cfg.listen_port == 0 && cfg.workers == 3 && cfg.admin_port == 8081);
    CHECK_STR(cfg.postgres, "dbname=x");
    CHECK_STR(cfg.admin_token, "sk-env");
    CHECK(cfg.n_providers == 2 && cfg.providers[0].tls && cfg.providers[0].port == 443);
    CHECK_STR(cfg.providers[0].host, "api.example.com");
    CHECK_STR(cfg.providers[0].base_path, "/v1");
    CHECK_STR(cfg.providers[0].api_key, "sk-file");
    CHECK(cfg.providers[0].kind == GW_PROVIDER_DEEPSEEK);
    CHECK(!cfg.providers[1].tls && cfg.providers[1].port == 9001 && !cfg.providers[1].api_key);
    const gw_model_cfg_t *m = gw_config_model(&cfg, "chat");
    CHECK(m && m->n_routes == 2 && m->routes[0].context_tokens == 65536);
    CHECK_STR(m->routes[0].upstream_model, "deepseek-chat");
    CHECK_STR(m->routes[1].upstream_model, "chat"); /* defaults to the public name */
    CHECK(gw_config_model(&cfg, "nope") == NULL);
    gw_config_free(&cfg);

    /* governance keys */
    setenv("TG_TEST_REDIS", "redis://127.0.0.1:6379/2", 1);
    rc = gw_config_load(write_file("gov.conf", "[gateway]\nredis = env:TG_TEST_REDIS\ngovernance = on\n"
                                               "redis_failure = open\nredis_open_fraction = 0.25\n"
                                               "redis_timeout_ms = 200\nhold_ttl_ms = 5000\n"
                                               "default_max_tokens = 4096\nredis_namespace = prod-eu\n"),
                        &cfg, err, sizeof err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK_STR(cfg.redis, "redis://127.0.0.1:6379/2");
        CHECK(cfg.governance && cfg.redis_fail_open && cfg.redis_open_percent == 25);
        CHECK_STR(cfg.redis_namespace, "prod-eu");
        CHECK(cfg.redis_timeout_ms == 200 && cfg.hold_ttl_ms == 5000 &&
              cfg.default_max_tokens == 4096);
        gw_config_free(&cfg);
    }
    rc = gw_config_load(write_file("gov2.conf", "[gateway]\nredis_open_fraction = 40%\n"), &cfg, err,
                        sizeof err);
    CHECK(rc == 0 && !cfg.governance && !cfg.redis && !cfg.redis_fail_open &&
          cfg.redis_open_percent == 40 && cfg.redis_timeout_ms == 500);
    if (rc == 0)
        gw_config_free(&cfg);
    expect_error("[gateway]\nredis_namespace = a:b\n", "redis_namespace must be");
    expect_error("[gateway]\ngovernance = on\n", "governance = on needs redis");
    expect_error("[gateway]\ngovernance = maybe\n", "governance must be on or off");
    expect_error("[gateway]\nredis = http://x:1\n", "redis must be redis://");
    expect_error("[gateway]\nredis_failure = ajar\n", "redis_failure must be closed or open");
    expect_error("[gateway]\nredis_open_fraction = 1.5\n", "redis_open_fraction must be between");
    expect_error("[gateway]\nredis_open_fraction = 0\n", "redis_open_fraction must be between");
    expect_error("[gateway]\nredis_open_fraction = 0%\n", "between 1 and 100");
    expect_error("[gateway]\nredis_timeout_ms = 5\n", "between 10 and 60000");
    expect_error("[gateway]\ndefault_max_tokens = -1\n", "default_max_tokens must be between");
    expect_error("[gateway]\nworkers = many\n", "bad.conf:2: workers must be an integer");
    expect_error("[gateway]\nworkers = 0\n", "between 1 and 256");
    expect_error("listen = 1:2\n", ":1: 'listen' appears before any section");
    expect_error("[gateway]\nbogus = 1\n", "unknown key 'bogus'");
    expect_error("[provider p]\nbase_url = ftp://x\n", "must start with http:// or https://");
    expect_error("[provider p]\nbase_url = http://x\napi_key = sk-literal\n",
                 "secrets never go in this file");
    expect_error("[provider p]\nbase_url = http://x\napi_key = env:TG_NOT_SET_ANYWHERE\n",
                 "TG_NOT_SET_ANYWHERE is not set");
    expect_error("[model m]\nprovider = ghost\n", "not defined above it");
    expect_error("[provider p]\nbase_url = http://x\n[model m]\nprovider = p size=3\n",
                 "unknown provider option 'size=3'");
    expect_error("[provider p]\nbase_url = http://x\n[model m]\n", "model m has no provider");
    expect_error("[provider p]\nkind = openai\n", "provider p has no base_url");
    expect_error("[provider p\n", "section header");
    expect_error("[provider p]\nbase_url = http://x\n[provider p]\n", "defined twice");
    expect_error("[gateway]\nnovalue\n", "expected 'key = value'");
    /* routing keys (issue 7): defaults, values and bad values */
    CHECK(gw_config_load(write_file("ok.conf", text), &cfg, err, sizeof err) == 0);
    CHECK_STR(cfg.route_policy, "ordered");
    CHECK(cfg.route_target_margin_pct == 10);
    CHECK(cfg.route_percentile == 90 && cfg.breaker_failures == 5 &&
          cfg.breaker_cooldown_ms == 10000);
    CHECK(cfg.providers[0].expect_ttft_ms == 1000 && cfg.providers[0].expect_tokens_per_s == 50 &&
          cfg.providers[0].cache_hit_percent == 0);
    CHECK_STR(cfg.models[0].policy, "");
    CHECK(cfg.models[0].hedge_after_ms == 0 && cfg.hedge_max_per_minute == 600);
    CHECK(cfg.stream_buffer_bytes == 1 << 20);
    gw_config_free(&cfg);
    CHECK(gw_config_load(write_file("route.conf",
                                    "[gateway]\nroute_policy = round_robin\nroute_percentile = 99\n"
                                    "route_target_margin_pct = 0\n"
                                    "breaker_failures = 2\nbreaker_cooldown_ms = 500\n"
                                    "hedge_max_per_minute = 0\n"
                                    "[provider p]\nbase_url = http://x\nexpect_ttft_ms = 0\n"
                                    "expect_tokens_per_s = 300\ncache_hit_percent = 40\n"
                                    "[model m]\npolicy = balanced\nhedge_after_ms = 250\n"
                                    "provider = p\n"),
                         &cfg, err, sizeof err) == 0);
    CHECK_STR(cfg.route_policy, "round_robin");
    CHECK(cfg.route_target_margin_pct == 0);
    CHECK(cfg.route_percentile == 99 && cfg.breaker_failures == 2 &&
          cfg.breaker_cooldown_ms == 500);
    CHECK(cfg.providers[0].expect_ttft_ms == 0 && cfg.providers[0].expect_tokens_per_s == 300 &&
          cfg.providers[0].cache_hit_percent == 40);
    CHECK_STR(cfg.models[0].policy, "balanced");
    CHECK(cfg.models[0].hedge_after_ms == 250 && cfg.hedge_max_per_minute == 0);
    gw_config_free(&cfg);
    CHECK(gw_config_policy_valid("list_price") && !gw_config_policy_valid("cheap"));
    expect_error("[gateway]\nroute_policy = cheap\n", "route_policy must be cheapest, fastest");
    expect_error("[gateway]\nroute_percentile = 10\n", "between 50 and 100");
    expect_error("[gateway]\nbreaker_failures = 0\n", "between 1 and 1000");
    /* an admin listener off loopback needs a token */
    expect_error("[gateway]\nadmin_listen = 0.0.0.0:8081\n", "not a loopback address");
    CHECK(gw_config_load(write_file("admin.conf", "[gateway]\nadmin_listen = 0.0.0.0:0\n"
                                                  "admin_token = env:TG_TEST_SECRET\n"),
                         &cfg, err, sizeof err) == 0);
    gw_config_free(&cfg);
    CHECK(gw_config_load(write_file("admin2.conf", "[gateway]\nadmin_listen = off\n"), &cfg, err,
                         sizeof err) == 0);
    gw_config_free(&cfg);
    CHECK(gw_config_host_is_loopback("127.0.0.1") && gw_config_host_is_loopback("127.9.9.9") &&
          gw_config_host_is_loopback("::1") && gw_config_host_is_loopback("localhost"));
    CHECK(!gw_config_host_is_loopback("0.0.0.0") && !gw_config_host_is_loopback("10.0.0.1") &&
          !gw_config_host_is_loopback("localhost.evil.example") &&
          !gw_config_host_is_loopback("1270.0.0.1") &&
          !gw_config_host_is_loopback("127.evil.example") && !gw_config_host_is_loopback("::2"));
    expect_error("[gateway]\nroute_target_margin_pct = 101\n", "between 0 and 100");
    expect_error("[gateway]\nbreaker_cooldown_ms = x\n", "must be an integer");
    expect_error("[gateway]\nhedge_max_per_minute = -1\n", "between 0 and 1000000");
    expect_error("[gateway]\nstream_buffer_bytes = 1000\n", "between 16384 and");
    expect_error("[provider p]\nbase_url = http://x\n[model m]\nhedge_after_ms = 600001\n"
                 "provider = p\n",
                 ":4: hedge_after_ms must be between 0 and 600000");
    expect_error("[provider p]\nbase_url = http://x\n[model m]\nhedge_after_ms = soon\n"
                 "provider = p\n",
                 ":4: hedge_after_ms must be an integer");
    expect_error("[provider p]\nbase_url = http://x\ncache_hit_percent = 101\n", "between 0 and 100");
    expect_error("[provider p]\nbase_url = http://x\nexpect_tokens_per_s = 0\n",
                 "between 1 and 1000000");
    expect_error("[provider p]\nbase_url = http://x\nexpect_ttft_ms = -1\n", "between 0 and");
    expect_error("[provider p]\nbase_url = http://x\n[model m]\npolicy = Fastest\nprovider = p\n",
                 ":4: policy must be cheapest");

    CHECK(gw_config_load("/nonexistent/tollgate.conf", &cfg, err, sizeof err) == -1 &&
          strstr(err, "cannot open"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return CHECK_DONE();
}
