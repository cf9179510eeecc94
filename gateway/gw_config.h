/* gw_config: the gateway's one human-edited configuration file (infrastructure
 * only: listeners, limits, providers, models). Business data (keys, prices,
 * budgets) lives in PostgreSQL. The format is documented in etc/tollgate.conf. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_respcache_opts.h"
#include "gw_spool.h"

#define GW_MAX_PROVIDERS 64
#define GW_MAX_MODELS 128
#define GW_MAX_ROUTES 8
#define GW_MAX_COST_UNITS 1000000 /* largest cost ceiling (model or key default) */

typedef enum { GW_PROVIDER_OPENAI = 0, GW_PROVIDER_DEEPSEEK, GW_PROVIDER_ENGINE } gw_provider_kind_t;

typedef struct gw_provider_cfg {
    char name[64];
    gw_provider_kind_t kind;
    bool tls;               /* https base URL */
    char host[256];
    int port;
    char base_path[256];    /* path prefix before /chat/completions, e.g. "/v1" */
    char *api_key;          /* resolved secret (env: or file:), NULL when none; never logged */
    int max_connections;    /* per worker thread */
    int idle_timeout_ms;    /* connect and read inactivity */
    int first_byte_timeout_ms; /* response headers must arrive within this */
    char ca_file[512];      /* extra CA bundle for this provider, "" = system store only */
    /* routing (issue 7, docs/router.md): what to expect before anything is measured */
    int expect_ttft_ms;      /* time to first token; default 1000 */
    int expect_tokens_per_s; /* output speed; default 50 */
    int cache_hit_percent;   /* expected cache-hit share of prompts, 0..100; default 0 */
    /* prefix index (issue 9, docs/cache.md) */
    int cache_ttl_s;          /* how long this provider keeps a prompt prefix (when set) */
    bool cache_ttl_set;       /* false: the default of its kind (gw_config_cache_ttl_s) */
    bool bill_predicted_cache; /* bill the gateway's prediction when usage reports no hits */
} gw_provider_cfg_t;

typedef struct gw_route_cfg {
    int provider;           /* index into gw_config_t.providers */
    char upstream_model[128];
    int64_t context_tokens; /* the provider's context window for this model */
} gw_route_cfg_t;

typedef struct gw_model_cfg {
    char name[128];         /* the name clients use */
    gw_route_cfg_t routes[GW_MAX_ROUTES]; /* in order of preference */
    int n_routes;
    char tokenizer[512];    /* tokenizer folder or file; "" = estimate prompt tokens */
    char policy[16];        /* routing policy (docs/router.md); "" = the gateway's route_policy */
    /* the model's default needs, when neither the request nor its key states one */
    int64_t latency_target_ms; /* 0 = none */
    bool has_max_cost;
    int64_t max_cost_pico;     /* cost ceiling in pico-units of each card's currency */
    /* hedging (docs/router.md): race the next route when the first byte is
     * this late, for requests with a latency need; 0 = never hedged */
    int hedge_after_ms;
} gw_model_cfg_t;

typedef struct gw_config {
    char path[512];
    char listen_host[64];
    int listen_port;        /* 0 = pick a free port */
    char admin_host[64];
    int admin_port;         /* 0 = pick a free port; -1 = no admin listener */
    int workers;
    int max_header_bytes;
    int max_body_bytes;
    int client_timeout_ms;
    int stream_buffer_bytes; /* a stream's bytes queued for a slow client before the
                                upstream is paused (back-pressure); 1 MiB */
    int shutdown_grace_ms;
    char *postgres;         /* libpq conninfo (resolved) */
    char *admin_token;      /* resolved secret, NULL = admin API needs no token (loopback only) */
    char tls_cert[512];     /* public listener TLS; "" = plain HTTP */
    char tls_key[512];
    char log_level[16];
    int usage_batch;
    int usage_flush_ms;
    gw_spool_opts_t spool;  /* the durable usage journal (spool_* keys) */
    int64_t test_clock_us;  /* tests only: "now" at start (0 = the real clock) */
    /* routing (issue 7, docs/router.md) */
    char route_policy[16];   /* default policy: ordered (see gw_config_policy_valid) */
    int route_percentile;    /* TTFT percentile checked against latency targets; 90 */
    int route_target_margin_pct; /* safety margin on latency predictions for targets; 10 */
    int breaker_failures;    /* consecutive failures that open a provider's circuit; 5 */
    int breaker_cooldown_ms; /* open -> one probe after this; 10000 */
    int hedge_max_per_minute; /* hedged attempts per minute per process; 600 (0 = none) */
    /* governance (docs/governance.md) */
    char *redis;               /* redis://host:port[/db] (resolved; env: allowed), NULL = none */
    bool governance;           /* rate limits and budgets on (needs redis) */
    bool redis_fail_open;      /* Redis unreachable: false = refuse (503), true = local limits */
    int redis_open_percent;    /* fail open: local limits at this percent of the shared ones */
    int redis_timeout_ms;      /* connect and per-command timeout */
    int hold_ttl_ms;           /* a budget hold / in-flight slot expires after this */
    int64_t default_max_tokens; /* worst case when a request states no max_tokens */
    char redis_namespace[40];   /* prefix of governance keys (deployments sharing a Redis) */
    gw_rc_opts_t respcache;     /* response cache (response_cache* keys, docs/response-cache.md) */
    /* prefix index (issue 9, docs/cache.md) */
    bool prefix_index;          /* predict provider cache hits from Redis (needs redis) */
    int prefix_timeout_ms;      /* connect and per-lookup timeout of its own connection; 50 */
    int prefix_max_blocks;      /* blocks looked up and recorded per prompt; 2048 */
    int prefix_line;            /* line of prefix_index (for the check of redis) */
    gw_provider_cfg_t providers[GW_MAX_PROVIDERS];
    int n_providers;
    gw_model_cfg_t models[GW_MAX_MODELS];
    int n_models;
} gw_config_t;

/* Reads and validates the file at `path` into *cfg (zeroed first). Secrets are
 * resolved from the environment (env:NAME) or files (file:PATH) and are never
 * accepted literally. Returns 0, or -1 with "PATH:LINE: problem" in err. On
 * failure *cfg holds nothing that needs freeing. */
int gw_config_load(const char *path, gw_config_t *cfg, char *err, size_t errlen);

/* Frees the resolved strings inside *cfg (not cfg itself). */
void gw_config_free(gw_config_t *cfg);

/* Whether `name` is a routing policy the gateway knows. */
bool gw_config_policy_valid(const char *name);

/* The prefix-cache TTL of provider p in seconds: cache_ttl_s when set, else
 * by kind: deepseek 21600 (DeepSeek keeps prefixes hours to days), openai
 * 600, engine 300. 0 = prefixes served there are not recorded. */
int gw_config_cache_ttl_s(const gw_provider_cfg_t *p);

/* Whether host (an address or name, no port) is this machine's loopback:
 * 127.x.x.x, ::1 or localhost. */
bool gw_config_host_is_loopback(const char *host);

/* Finds a model by client-facing name; NULL if none. */
const gw_model_cfg_t *gw_config_model(const gw_config_t *cfg, const char *name);

#endif
