/* The prefix index's configuration keys (etc/tollgate.conf): defaults, TTL
 * defaults by provider kind, and each bad value refused with file:line. */
#include <stdlib.h>
#include <unistd.h>

#include "gw_config.h"
#include "pfx_check.h"

static char dir[] = "/tmp/tg-prefix-config-XXXXXX";

static const char *write_file(const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/t.conf", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static const char base[] = "[gateway]\n"
                           "redis = redis://127.0.0.1:6379\n"
                           "%s\n"
                           "[provider ds]\nkind = deepseek\nbase_url = http://127.0.0.1:1/v1\n"
                           "[provider oa]\nkind = openai\nbase_url = http://127.0.0.1:2/v1\n"
                           "[provider en]\nkind = engine\nbase_url = http://127.0.0.1:3/v1\n%s\n"
                           "[model m]\nprovider = ds\n";

static int load(const char *gw, const char *prov, gw_config_t *c, char *err, size_t errlen)
{
    char text[2048];
    snprintf(text, sizeof text, base, gw, prov);
    return gw_config_load(write_file(text), c, err, errlen);
}

static void expect_error(const char *gw, const char *prov, const char *needle)
{
    gw_config_t c;
    char err[512];
    int rc = load(gw, prov, &c, err, sizeof err);
    CHECK(rc == -1);
    if (rc == -1 && !strstr(err, needle)) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        check_failures++;
    }
    if (rc == 0)
        gw_config_free(&c);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    gw_config_t c;
    char err[512];
    /* defaults: off, 50 ms, 2048 blocks; TTL by kind */
    CHECK(load("", "", &c, err, sizeof err) == 0);
    CHECK(!c.prefix_index && c.prefix_timeout_ms == 50 && c.prefix_max_blocks == 2048);
    CHECK(gw_config_cache_ttl_s(&c.providers[0]) == 21600);
    CHECK(gw_config_cache_ttl_s(&c.providers[1]) == 600);
    CHECK(gw_config_cache_ttl_s(&c.providers[2]) == 300);
    CHECK(!c.providers[0].bill_predicted_cache);
    gw_config_free(&c);
    /* set */
    CHECK(load("prefix_index = on\nprefix_timeout_ms = 5\nprefix_max_blocks = 100",
               "cache_ttl_s = 0\nbill_predicted_cache = on", &c, err, sizeof err) == 0);
    CHECK(c.prefix_index && c.prefix_timeout_ms == 5 && c.prefix_max_blocks == 100);
    CHECK(gw_config_cache_ttl_s(&c.providers[2]) == 0 && c.providers[2].bill_predicted_cache);
    CHECK(gw_config_cache_ttl_s(&c.providers[0]) == 21600);
    gw_config_free(&c);
    /* errors name the file, the line and the problem */
    expect_error("prefix_index = yes", "", "t.conf:3: prefix_index must be on or off, got 'yes'");
    expect_error("prefix_timeout_ms = 0", "", "t.conf:3: prefix_timeout_ms must be between 1 and");
    expect_error("prefix_timeout_ms = fast", "", "t.conf:3: prefix_timeout_ms must be an integer");
    expect_error("prefix_max_blocks = 70000", "", "t.conf:3: prefix_max_blocks must be between");
    expect_error("", "cache_ttl_s = -1", "t.conf:13: cache_ttl_s must be between 0 and 2592000");
    expect_error("", "cache_ttl_s = 1h", "t.conf:13: cache_ttl_s must be an integer");
    expect_error("", "bill_predicted_cache = 1", "t.conf:13: bill_predicted_cache must be on or off");
    /* the index needs Redis: the error points at the prefix_index line */
    {
        const char *text = "[gateway]\nworkers = 1\nprefix_index = on\n"
                           "[provider ds]\nbase_url = http://127.0.0.1:1/v1\n[model m]\nprovider = ds\n";
        int rc = gw_config_load(write_file(text), &c, err, sizeof err);
        CHECK(rc == -1 && strstr(err, "t.conf:3: prefix_index = on needs redis"));
        if (rc == 0)
            gw_config_free(&c);
    }
    unlink(write_file(""));
    rmdir(dir);
    return CHECK_DONE();
}
