/* gw_config: parser for the gateway's INI-style configuration file.
 * Sections [gateway], [provider NAME] and [model NAME]; `key = value` lines;
 * `#` comments (whole lines, or after white space at the end of a line).
 * Every error names the file, the line and the problem. */
#include "gw_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_hedge.h"
#include "rt_route.h"

typedef enum { SEC_NONE, SEC_GATEWAY, SEC_PROVIDER, SEC_MODEL } section_t;

typedef struct parse_ctx {
    const char *path;
    int line;
    char *err;
    size_t errlen;
} parse_ctx_t;

static int fail(parse_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parse_ctx_t *ctx, const char *fmt, ...)
{
    int n = snprintf(ctx->err, ctx->errlen, "%s:%d: ", ctx->path, ctx->line);
    if (n < 0 || (size_t)n >= ctx->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int copy_str(parse_ctx_t *ctx, char *dst, size_t cap, const char *key, const char *value)
{
    if (strlen(value) >= cap)
        return fail(ctx, "%s is too long (at most %zu characters)", key, cap - 1);
    strcpy(dst, value);
    return 0;
}

static int parse_int(parse_ctx_t *ctx, const char *key, const char *value, long long lo,
                     long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0')
        return fail(ctx, "%s must be an integer, got '%s'", key, value);
    if (v < lo || v > hi)
        return fail(ctx, "%s must be between %lld and %lld, got %lld", key, lo, hi, v);
    *out = v;
    return 0;
}

static int parse_int_field(parse_ctx_t *ctx, const char *key, const char *value, long long lo,
                           long long hi, int *out)
{
    long long v;
    if (parse_int(ctx, key, value, lo, hi, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Splits "HOST:PORT" (IPv4 or a name; port 0 allowed). */
static int parse_hostport(parse_ctx_t *ctx, const char *key, const char *value, char *host,
                          size_t hostcap, int *port)
{
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value)
        return fail(ctx, "%s must be HOST:PORT, got '%s'", key, value);
    size_t hl = (size_t)(colon - value);
    if (hl >= hostcap)
        return fail(ctx, "%s: host is too long", key);
    memcpy(host, value, hl);
    host[hl] = '\0';
    return parse_int_field(ctx, key, colon + 1, 0, 65535, port);
}

/* Resolves a secret reference: env:NAME or file:PATH. Literal secrets are
 * refused so that the config file can be shared and committed. A file's
 * trailing newline is dropped. Returns 0 and a malloc'd string (or NULL for
 * "none"), else -1. */
static int resolve_secret(parse_ctx_t *ctx, const char *key, const char *value, bool allow_literal,
                          char **out)
{
    *out = NULL;
    if (strcmp(value, "none") == 0)
        return 0;
    if (strncmp(value, "env:", 4) == 0) {
        const char *v = getenv(value + 4);
        if (!v || !*v)
            return fail(ctx, "%s: environment variable %s is not set", key, value + 4);
        *out = strdup(v);
    } else if (strncmp(value, "file:", 5) == 0) {
        FILE *f = fopen(value + 5, "r");
        if (!f)
            return fail(ctx, "%s: cannot read %s: %s", key, value + 5, strerror(errno));
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *t = trim(buf);
        if (!*t)
            return fail(ctx, "%s: %s is empty", key, value + 5);
        *out = strdup(t);
    } else if (allow_literal) {
        *out = strdup(value);
    } else {
        return fail(ctx, "%s must be env:NAME, file:PATH or none (secrets never go in this file)",
                    key);
    }
    if (!*out)
        abort(); /* out of memory */
    return 0;
}

/* Parses "http://host[:port][/path]" or https into the provider. */
static int parse_base_url(parse_ctx_t *ctx, gw_provider_cfg_t *p, const char *value)
{
    const char *rest;
    if (strncmp(value, "http://", 7) == 0) {
        p->tls = false;
        p->port = 80;
        rest = value + 7;
    } else if (strncmp(value, "https://", 8) == 0) {
        p->tls = true;
        p->port = 443;
        rest = value + 8;
    } else {
        return fail(ctx, "base_url must start with http:// or https://, got '%s'", value);
    }
    const char *slash = strchr(rest, '/');
    size_t authority_len = slash ? (size_t)(slash - rest) : strlen(rest);
    char authority[300];
    if (authority_len == 0 || authority_len >= sizeof authority)
        return fail(ctx, "base_url has no usable host: '%s'", value);
    memcpy(authority, rest, authority_len);
    authority[authority_len] = '\0';
    char *colon = strrchr(authority, ':');
    if (colon) {
        *colon = '\0';
        if (parse_int_field(ctx, "base_url port", colon + 1, 1, 65535, &p->port) < 0)
            return -1;
    }
    if (copy_str(ctx, p->host, sizeof p->host, "base_url host", authority) < 0)
        return -1;
    const char *path = slash ? slash : "";
    if (copy_str(ctx, p->base_path, sizeof p->base_path, "base_url path", path) < 0)
        return -1;
    size_t pl = strlen(p->base_path);
    if (pl > 0 && p->base_path[pl - 1] == '/')
        p->base_path[pl - 1] = '\0';
    return 0;
}


/* ---- routing keys (issue 7, docs/router.md) ------------------------------ */

static const char *const route_policies[] = {"cheapest",    "fastest",    "balanced",
                                             "round_robin", "list_price", "ordered"};

bool gw_config_policy_valid(const char *name)
{
    for (size_t i = 0; i < sizeof route_policies / sizeof route_policies[0]; i++)
        if (!strcmp(name, route_policies[i]))
            return true;
    return false;
}

static int set_policy(parse_ctx_t *ctx, char *dst, size_t cap, const char *k, const char *v)
{
    if (!gw_config_policy_valid(v))
        return fail(ctx,
                    "%s must be cheapest, fastest, balanced, round_robin, list_price or ordered, "
                    "got '%s'",
                    k, v);
    return copy_str(ctx, dst, cap, k, v);
}

/* [gateway] routing keys; 1 when `k` is not one of them. */
static int set_gateway_routing(parse_ctx_t *ctx, gw_config_t *c, const char *k, const char *v)
{
    if (!strcmp(k, "route_policy"))
        return set_policy(ctx, c->route_policy, sizeof c->route_policy, k, v);
    if (!strcmp(k, "route_percentile"))
        return parse_int_field(ctx, k, v, 50, 100, &c->route_percentile);
    if (!strcmp(k, "route_target_margin_pct"))
        return parse_int_field(ctx, k, v, 0, 100, &c->route_target_margin_pct);
    if (!strcmp(k, "breaker_failures"))
        return parse_int_field(ctx, k, v, 1, 1000, &c->breaker_failures);
    if (!strcmp(k, "breaker_cooldown_ms"))
        return parse_int_field(ctx, k, v, 10, 3600000, &c->breaker_cooldown_ms);
    if (!strcmp(k, "hedge_max_per_minute"))
        return parse_int_field(ctx, k, v, 0, 1000000, &c->hedge_max_per_minute);
    return 1;
}

/* [provider] routing keys; 1 when `k` is not one of them. */
static int set_provider_routing(parse_ctx_t *ctx, gw_provider_cfg_t *p, const char *k,
                                const char *v)
{
    if (!strcmp(k, "expect_ttft_ms"))
        return parse_int_field(ctx, k, v, 0, 3600000, &p->expect_ttft_ms);
    if (!strcmp(k, "expect_tokens_per_s"))
        return parse_int_field(ctx, k, v, 1, 1000000, &p->expect_tokens_per_s);
    if (!strcmp(k, "cache_hit_percent"))
        return parse_int_field(ctx, k, v, 0, 100, &p->cache_hit_percent);
    return 1;
}

/* [model] routing keys; 1 when `k` is not one of them. */
static int set_model_routing(parse_ctx_t *ctx, gw_model_cfg_t *m, const char *k, const char *v)
{
    if (!strcmp(k, "policy"))
        return set_policy(ctx, m->policy, sizeof m->policy, k, v);
    if (!strcmp(k, "hedge_after_ms"))
        return parse_int_field(ctx, k, v, 0, GW_HEDGE_MAX_AFTER_MS, &m->hedge_after_ms);
    char err[200];
    if (!strcmp(k, "latency_target_ms")) {
        if (rt_parse_latency_ms(v, &m->latency_target_ms, err, sizeof err) != 0)
            return fail(ctx, "latency_target_ms %s", err);
        return 0;
    }
    if (!strcmp(k, "max_cost")) {
        pr_pico_t c;
        if (rt_parse_cost(v, &c, err, sizeof err) != 0)
            return fail(ctx, "max_cost %s", err);
        if (c > (pr_pico_t)GW_MAX_COST_UNITS * 1000000000000)
            return fail(ctx, "max_cost must be at most %d, got '%s'", GW_MAX_COST_UNITS, v);
        m->has_max_cost = true;
        m->max_cost_pico = (int64_t)c;
        return 0;
    }
    return 1;
}

/* ---- end of routing keys -------------------------------------------------- */

/* ---- prefix index keys (issue 9, docs/cache.md) ---------------------------- */

static int parse_on_off(parse_ctx_t *ctx, const char *k, const char *v, bool *out)
{
    if (strcmp(v, "on") && strcmp(v, "off"))
        return fail(ctx, "%s must be on or off, got '%s'", k, v);
    *out = !strcmp(v, "on");
    return 0;
}

/* [gateway] prefix keys; 1 when `k` is not one of them. */
static int set_gateway_prefix(parse_ctx_t *ctx, gw_config_t *c, const char *k, const char *v)
{
    if (!strcmp(k, "prefix_index")) {
        c->prefix_line = ctx->line;
        return parse_on_off(ctx, k, v, &c->prefix_index);
    }
    if (!strcmp(k, "prefix_timeout_ms"))
        return parse_int_field(ctx, k, v, 1, 10000, &c->prefix_timeout_ms);
    if (!strcmp(k, "prefix_max_blocks"))
        return parse_int_field(ctx, k, v, 1, 65536, &c->prefix_max_blocks);
    return 1;
}

/* [provider] prefix keys; 1 when `k` is not one of them. */
static int set_provider_prefix(parse_ctx_t *ctx, gw_provider_cfg_t *p, const char *k,
                               const char *v)
{
    if (!strcmp(k, "cache_ttl_s")) {
        p->cache_ttl_set = true;
        return parse_int_field(ctx, k, v, 0, 30 * 86400, &p->cache_ttl_s);
    }
    if (!strcmp(k, "bill_predicted_cache"))
        return parse_on_off(ctx, k, v, &p->bill_predicted_cache);
    return 1;
}

int gw_config_cache_ttl_s(const gw_provider_cfg_t *p)
{
    if (p->cache_ttl_set)
        return p->cache_ttl_s;
    return p->kind == GW_PROVIDER_DEEPSEEK ? 21600 : p->kind == GW_PROVIDER_ENGINE ? 300 : 600;
}

/* ---- end of prefix index keys ---------------------------------------------- */

static int set_gateway(parse_ctx_t *ctx, gw_config_t *c, const char *k, const char *v)
{
    char serr[256];
    int spool = gw_spool_opts_parse(&c->spool, k, v, serr, sizeof serr);
    if (spool < 0)
        return fail(ctx, "%s", serr);
    if (spool > 0)
        return 0;
    int rc_opt = gw_rc_opts_parse(&c->respcache, k, v, serr, sizeof serr);
    if (rc_opt <= 0)
        return rc_opt < 0 ? fail(ctx, "%s", serr) : 0;
    if (!strcmp(k, "listen"))
        return parse_hostport(ctx, k, v, c->listen_host, sizeof c->listen_host, &c->listen_port);
    if (!strcmp(k, "admin_listen")) {
        if (!strcmp(v, "off")) {
            c->admin_port = -1;
            return 0;
        }
        return parse_hostport(ctx, k, v, c->admin_host, sizeof c->admin_host, &c->admin_port);
    }
    if (!strcmp(k, "workers"))
        return parse_int_field(ctx, k, v, 1, 256, &c->workers);
    if (!strcmp(k, "max_header_bytes"))
        return parse_int_field(ctx, k, v, 1024, 1 << 20, &c->max_header_bytes);
    if (!strcmp(k, "max_body_bytes"))
        return parse_int_field(ctx, k, v, 1024, 256 << 20, &c->max_body_bytes);
    if (!strcmp(k, "client_timeout_ms"))
        return parse_int_field(ctx, k, v, 100, 3600000, &c->client_timeout_ms);
    if (!strcmp(k, "stream_buffer_bytes"))
        return parse_int_field(ctx, k, v, 16384, 256 << 20, &c->stream_buffer_bytes);
    if (!strcmp(k, "shutdown_grace_ms"))
        return parse_int_field(ctx, k, v, 0, 3600000, &c->shutdown_grace_ms);
    if (!strcmp(k, "usage_batch"))
        return parse_int_field(ctx, k, v, 1, 10000, &c->usage_batch);
    if (!strcmp(k, "usage_flush_ms"))
        return parse_int_field(ctx, k, v, 1, 60000, &c->usage_flush_ms);
    if (!strcmp(k, "postgres")) {
        free(c->postgres);
        return resolve_secret(ctx, k, v, true, &c->postgres);
    }
    if (!strcmp(k, "admin_token")) {
        free(c->admin_token);
        return resolve_secret(ctx, k, v, false, &c->admin_token);
    }
    if (!strcmp(k, "test_clock")) {
        const char *allow = getenv("TOLLGATE_TEST_CLOCK");
        if (!allow || strcmp(allow, "1"))
            return fail(ctx, "test_clock is for tests only (it moves the instants that decide "
                             "prices): remove it, or set TOLLGATE_TEST_CLOCK=1 in a test");
        struct tm tm = {0};
        char *end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
            return fail(ctx, "test_clock must look like 2025-03-01T17:00:00Z, got '%s'", v);
        c->test_clock_us = (int64_t)timegm(&tm) * 1000000;
        return 0;
    }
    if (!strcmp(k, "tls_cert"))
        return copy_str(ctx, c->tls_cert, sizeof c->tls_cert, k, v);
    if (!strcmp(k, "tls_key"))
        return copy_str(ctx, c->tls_key, sizeof c->tls_key, k, v);
    if (!strcmp(k, "redis")) {
        free(c->redis);
        if (resolve_secret(ctx, k, v, true, &c->redis) < 0)
            return -1;
        if (c->redis && strncmp(c->redis, "redis://", 8) != 0)
            return fail(ctx, "redis must be redis://HOST:PORT[/DB], env:NAME or none");
        return 0;
    }
    if (!strcmp(k, "governance")) {
        if (strcmp(v, "on") && strcmp(v, "off"))
            return fail(ctx, "governance must be on or off, got '%s'", v);
        c->governance = !strcmp(v, "on");
        return 0;
    }
    if (!strcmp(k, "redis_failure")) {
        if (strcmp(v, "closed") && strcmp(v, "open"))
            return fail(ctx, "redis_failure must be closed or open, got '%s'", v);
        c->redis_fail_open = !strcmp(v, "open");
        return 0;
    }
    if (!strcmp(k, "redis_open_fraction")) {
        /* a percentage ("25%") or a decimal fraction with at most 2 digits ("0.25") */
        size_t l = strlen(v);
        int pct = -1;
        if (l > 1 && v[l - 1] == '%') {
            char num[16];
            if (l - 1 >= sizeof num)
                return fail(ctx, "redis_open_fraction is too long");
            memcpy(num, v, l - 1);
            num[l - 1] = '\0';
            return parse_int_field(ctx, k, num, 1, 100, &c->redis_open_percent);
        }
        if (!strcmp(v, "1") || !strcmp(v, "1.0") || !strcmp(v, "1.00"))
            pct = 100;
        else if (v[0] == '0' && v[1] == '.' && l >= 3 && l <= 4 && isdigit((unsigned char)v[2]) &&
                 (l == 3 || isdigit((unsigned char)v[3])))
            pct = (v[2] - '0') * 10 + (l == 4 ? v[3] - '0' : 0);
        if (pct < 1)
            return fail(ctx, "redis_open_fraction must be between 0.01 and 1 (or 1%%..100%%), got '%s'",
                        v);
        c->redis_open_percent = pct;
        return 0;
    }
    if (!strcmp(k, "redis_timeout_ms"))
        return parse_int_field(ctx, k, v, 10, 60000, &c->redis_timeout_ms);
    if (!strcmp(k, "redis_namespace")) {
        size_t l = strlen(v);
        if (l == 0 || l > 32 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != l)
            return fail(ctx, "redis_namespace must be 1 to 32 letters, digits, '_' or '-'");
        return copy_str(ctx, c->redis_namespace, sizeof c->redis_namespace, k, v);
    }
    if (!strcmp(k, "hold_ttl_ms"))
        return parse_int_field(ctx, k, v, 1000, 86400000, &c->hold_ttl_ms);
    if (!strcmp(k, "default_max_tokens")) {
        long long mt;
        if (parse_int(ctx, k, v, 1, 10000000, &mt) < 0)
            return -1;
        c->default_max_tokens = mt;
        return 0;
    }
    if (!strcmp(k, "log_level")) {
        if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error"))
            return fail(ctx, "log_level must be debug, info, warn or error, got '%s'", v);
        return copy_str(ctx, c->log_level, sizeof c->log_level, k, v);
    }
    int rr = set_gateway_routing(ctx, c, k, v);
    if (rr <= 0)
        return rr;
    rr = set_gateway_prefix(ctx, c, k, v);
    if (rr <= 0)
        return rr;
    return fail(ctx, "unknown key '%s' in [gateway]", k);
}

static int set_provider(parse_ctx_t *ctx, gw_provider_cfg_t *p, const char *k, const char *v)
{
    if (!strcmp(k, "kind")) {
        if (!strcmp(v, "openai"))
            p->kind = GW_PROVIDER_OPENAI;
        else if (!strcmp(v, "deepseek"))
            p->kind = GW_PROVIDER_DEEPSEEK;
        else if (!strcmp(v, "engine"))
            p->kind = GW_PROVIDER_ENGINE;
        else
            return fail(ctx, "kind must be openai, deepseek or engine, got '%s'", v);
        return 0;
    }
    if (!strcmp(k, "base_url"))
        return parse_base_url(ctx, p, v);
    if (!strcmp(k, "api_key")) {
        free(p->api_key);
        return resolve_secret(ctx, k, v, false, &p->api_key);
    }
    if (!strcmp(k, "max_connections"))
        return parse_int_field(ctx, k, v, 1, 100000, &p->max_connections);
    if (!strcmp(k, "idle_timeout_ms"))
        return parse_int_field(ctx, k, v, 10, 3600000, &p->idle_timeout_ms);
    if (!strcmp(k, "first_byte_timeout_ms"))
        return parse_int_field(ctx, k, v, 10, 3600000, &p->first_byte_timeout_ms);
    if (!strcmp(k, "ca_file"))
        return copy_str(ctx, p->ca_file, sizeof p->ca_file, k, v);
    int rr = set_provider_routing(ctx, p, k, v);
    if (rr <= 0)
        return rr;
    rr = set_provider_prefix(ctx, p, k, v);
    if (rr <= 0)
        return rr;
    return fail(ctx, "unknown key '%s' in [provider %s]", k, p->name);
}

/* "provider = NAME [upstream=MODEL] [context=TOKENS]" */
static int add_route(parse_ctx_t *ctx, gw_config_t *c, gw_model_cfg_t *m, char *v)
{
    if (m->n_routes == GW_MAX_ROUTES)
        return fail(ctx, "model %s has more than %d providers", m->name, GW_MAX_ROUTES);
    gw_route_cfg_t *r = &m->routes[m->n_routes];
    memset(r, 0, sizeof *r);
    char *save = NULL;
    char *name = strtok_r(v, " \t", &save);
    if (!name)
        return fail(ctx, "provider needs a name");
    r->provider = -1;
    for (int i = 0; i < c->n_providers; i++)
        if (!strcmp(c->providers[i].name, name))
            r->provider = i;
    if (r->provider < 0)
        return fail(ctx, "model %s names provider '%s', which is not defined above it", m->name,
                    name);
    if (copy_str(ctx, r->upstream_model, sizeof r->upstream_model, "upstream", m->name) < 0)
        return -1;
    r->context_tokens = 65536;
    for (char *tok = strtok_r(NULL, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (!strncmp(tok, "upstream=", 9)) {
            if (copy_str(ctx, r->upstream_model, sizeof r->upstream_model, "upstream", tok + 9) <
                0)
                return -1;
        } else if (!strncmp(tok, "context=", 8)) {
            long long ctxlen;
            if (parse_int(ctx, "context", tok + 8, 1, 100000000, &ctxlen) < 0)
                return -1;
            r->context_tokens = ctxlen;
        } else {
            return fail(ctx, "unknown provider option '%s' (expected upstream= or context=)", tok);
        }
    }
    m->n_routes++;
    return 0;
}

static void set_defaults(gw_config_t *c, const char *path)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    strcpy(c->listen_host, "0.0.0.0");
    c->listen_port = 8080;
    strcpy(c->admin_host, "127.0.0.1");
    c->admin_port = 8081;
    c->workers = 2;
    c->max_header_bytes = 16384;
    c->max_body_bytes = 4 << 20;
    c->client_timeout_ms = 60000;
    c->stream_buffer_bytes = 1 << 20;
    c->shutdown_grace_ms = 10000;
    c->usage_batch = 500;
    c->usage_flush_ms = 50;
    gw_spool_opts_default(&c->spool);
    gw_rc_opts_default(&c->respcache);
    c->redis_open_percent = 50;
    c->redis_timeout_ms = 500;
    c->hold_ttl_ms = 600000;
    c->default_max_tokens = 8192;
    strcpy(c->redis_namespace, "tollgate");
    strcpy(c->log_level, "info");
    strcpy(c->route_policy, "ordered"); /* routing defaults (docs/router.md) */
    c->route_percentile = 90;
    c->route_target_margin_pct = 10;
    c->breaker_failures = 5;
    c->breaker_cooldown_ms = 10000;
    c->hedge_max_per_minute = 600;
    c->prefix_timeout_ms = 50; /* prefix index defaults (docs/cache.md) */
    c->prefix_max_blocks = 2048;
}

static int check_complete(parse_ctx_t *ctx, gw_config_t *c)
{
    for (int i = 0; i < c->n_providers; i++)
        if (!c->providers[i].host[0]) {
            ctx->line = 0;
            return fail(ctx, "provider %s has no base_url", c->providers[i].name);
        }
    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].n_routes == 0) {
            ctx->line = 0;
            return fail(ctx, "model %s has no provider line", c->models[i].name);
        }
    if (!c->postgres) {
        const char *env = getenv("TG_PG_CONNINFO");
        c->postgres = strdup(env ? env : "");
        if (!c->postgres)
            abort();
    }
    if (c->governance && !c->redis) {
        ctx->line = 0;
        return fail(ctx, "governance = on needs redis = redis://HOST:PORT (or env:NAME)");
    }
    if (c->respcache.enabled && !c->redis) {
        ctx->line = 0;
        return fail(ctx, "response_cache = on needs redis = redis://HOST:PORT (or env:NAME)");
    }
    if (c->prefix_index && !c->redis) {
        ctx->line = c->prefix_line;
        return fail(ctx, "prefix_index = on needs redis = redis://HOST:PORT (or env:NAME)");
    }
    if (c->admin_port >= 0 && !c->admin_token && !gw_config_host_is_loopback(c->admin_host)) {
        ctx->line = 0;
        return fail(ctx, "admin_listen %s is not a loopback address: the admin API (keys, "
                         "prices, budgets) needs admin_token (env:NAME or file:PATH) there",
                    c->admin_host);
    }
    return 0;
}

bool gw_config_host_is_loopback(const char *host)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127; /* a literal: not a name like 127.example.com */
    if (inet_pton(AF_INET6, host, a) == 1)
        return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    return !strcmp(host, "localhost");
}

static int parse_line(parse_ctx_t *ctx, gw_config_t *c, char *line, section_t *sec)
{
    /* A '#' after white space starts a comment (values cannot contain " #"). */
    for (char *p = line; *p; p++)
        if (*p == '#' && p > line && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        char *close = strchr(s, ']');
        if (!close || trim(close + 1)[0] != '\0')
            return fail(ctx, "section header must look like [gateway], [provider NAME] or "
                             "[model NAME]");
        *close = '\0';
        char *body = trim(s + 1);
        if (!strcmp(body, "gateway")) {
            *sec = SEC_GATEWAY;
            return 0;
        }
        char *space = strpbrk(body, " \t");
        char *name = space ? trim(space + 1) : NULL;
        if (space)
            *space = '\0';
        if (!name || !*name)
            return fail(ctx, "[%s] needs a name, e.g. [%s deepseek]", body, body);
        if (!strcmp(body, "provider")) {
            if (c->n_providers == GW_MAX_PROVIDERS)
                return fail(ctx, "more than %d providers", GW_MAX_PROVIDERS);
            for (int i = 0; i < c->n_providers; i++)
                if (!strcmp(c->providers[i].name, name))
                    return fail(ctx, "provider %s is defined twice", name);
            gw_provider_cfg_t *p = &c->providers[c->n_providers++];
            memset(p, 0, sizeof *p);
            p->max_connections = 64;
            p->idle_timeout_ms = 30000;
            p->first_byte_timeout_ms = 60000;
            p->expect_ttft_ms = 1000; /* routing priors (docs/router.md) */
            p->expect_tokens_per_s = 50;
            *sec = SEC_PROVIDER;
            return copy_str(ctx, p->name, sizeof p->name, "provider name", name);
        }
        if (!strcmp(body, "model")) {
            if (c->n_models == GW_MAX_MODELS)
                return fail(ctx, "more than %d models", GW_MAX_MODELS);
            if (gw_config_model(c, name))
                return fail(ctx, "model %s is defined twice", name);
            gw_model_cfg_t *m = &c->models[c->n_models++];
            memset(m, 0, sizeof *m);
            *sec = SEC_MODEL;
            return copy_str(ctx, m->name, sizeof m->name, "model name", name);
        }
        return fail(ctx, "unknown section [%s] (expected gateway, provider or model)", body);
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return fail(ctx, "expected 'key = value', got '%s'", s);
    *eq = '\0';
    char *k = trim(s), *v = trim(eq + 1);
    if (!*k)
        return fail(ctx, "missing key before '='");
    switch (*sec) {
    case SEC_GATEWAY:
        return set_gateway(ctx, c, k, v);
    case SEC_PROVIDER:
        return set_provider(ctx, &c->providers[c->n_providers - 1], k, v);
    case SEC_MODEL:
        if (!strcmp(k, "tokenizer")) {
            gw_model_cfg_t *m = &c->models[c->n_models - 1];
            return copy_str(ctx, m->tokenizer, sizeof m->tokenizer, k, v);
        }
        int rr = set_model_routing(ctx, &c->models[c->n_models - 1], k, v);
        if (rr <= 0)
            return rr;
        if (strcmp(k, "provider"))
            return fail(ctx, "unknown key '%s' in [model] (expected provider, tokenizer, policy, "
                             "latency_target_ms, max_cost or hedge_after_ms)",
                        k);
        return add_route(ctx, c, &c->models[c->n_models - 1], v);
    default:
        return fail(ctx, "'%s' appears before any section", k);
    }
}

int gw_config_load(const char *path, gw_config_t *cfg, char *err, size_t errlen)
{
    parse_ctx_t ctx = {.path = path, .line = 0, .err = err, .errlen = errlen};
    set_defaults(cfg, path);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    section_t sec = SEC_NONE;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        ctx.line++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = fail(&ctx, "line longer than %zu characters", sizeof line - 2);
            break;
        }
        rc = parse_line(&ctx, cfg, line, &sec);
    }
    fclose(f);
    if (rc == 0)
        rc = check_complete(&ctx, cfg);
    if (rc < 0)
        gw_config_free(cfg);
    return rc;
}

void gw_config_free(gw_config_t *cfg)
{
    for (int i = 0; i < cfg->n_providers; i++) {
        if (cfg->providers[i].api_key)
            memset(cfg->providers[i].api_key, 0, strlen(cfg->providers[i].api_key));
        free(cfg->providers[i].api_key);
        cfg->providers[i].api_key = NULL;
    }
    free(cfg->postgres);
    cfg->postgres = NULL;
    free(cfg->admin_token);
    cfg->admin_token = NULL;
    free(cfg->redis);
    cfg->redis = NULL;
}

const gw_model_cfg_t *gw_config_model(const gw_config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_models; i++)
        if (!strcmp(cfg->models[i].name, name))
            return &cfg->models[i];
    return NULL;
}
