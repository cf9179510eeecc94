/* gw_keystore: the gateway's in-memory table of API keys, loaded from
 * PostgreSQL and kept fresh through LISTEN/NOTIFY on channel "tollgate_keys"
 * (a revoked key is refused by every gateway within one second).
 * Keys are looked up by their SHA-256; the clear key is never stored or logged. */
#ifndef GW_KEYSTORE_H
#define GW_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_keystore gw_keystore_t;

typedef enum {
    GW_KEY_OK = 0,
    GW_KEY_UNKNOWN,    /* no such key */
    GW_KEY_REVOKED,    /* revoked_at is set */
    GW_KEY_EXPIRED,    /* expires_at <= now */
    GW_KEY_NOT_LOADED, /* the table has never been loaded (PostgreSQL unreachable) */
} gw_key_status_t;

typedef struct gw_key_info {
    int64_t key_id;
    int64_t team_id;
    char team_name[65];
    char display_prefix[16]; /* safe to log */
    bool team_private;
    int64_t expires_at_us; /* unix microseconds; 0 = never */
    char models[1024];     /* comma-separated allow list; "" = every model */
    /* routing rules and defaults (migration 0015, docs/router.md) */
    bool key_private;            /* in-house providers only */
    char allow_providers[256];   /* comma-separated; "" = every provider */
    char deny_providers[256];    /* comma-separated; "" = none */
    int64_t latency_target_ms;   /* default latency target; 0 = none */
    int64_t max_cost_pico;       /* default cost ceiling (pico-units); -1 = none */
    char route_preference[12];   /* cheapest | fastest | balanced; "" = none */
    bool response_cache;   /* opted in to the response cache (migration 0014) */
} gw_key_info_t;

/* Starts the key store: a background thread connects to PostgreSQL with
 * `conninfo`, loads every key, LISTENs for changes and reloads on each
 * notification (and every 30 s as a safety net). If PostgreSQL is unreachable
 * it logs the libpq message and retries with back-off; lookups answer
 * GW_KEY_NOT_LOADED until the first load succeeds. Returns NULL only on
 * out-of-memory or thread creation failure. */
gw_keystore_t *gw_keystore_start(const char *conninfo);

/* Waits up to timeout_ms for the first successful load. Returns true if loaded. */
bool gw_keystore_wait_loaded(gw_keystore_t *ks, int timeout_ms);

/* Looks up a presented key (the bearer token, not NUL-terminated necessarily).
 * Thread-safe. Comparison of the hash is constant-time. On GW_KEY_OK (and on
 * REVOKED/EXPIRED, for logging) *out is filled. now_us is the current time. */
gw_key_status_t gw_keystore_lookup(gw_keystore_t *ks, const char *key, size_t key_len,
                                   int64_t now_us, gw_key_info_t *out);

/* True if the key's allow list admits `model` (an empty list admits all). */
bool gw_key_allows_model(const gw_key_info_t *info, const char *model);

/* Number of keys loaded (revoked included); for metrics. */
size_t gw_keystore_size(gw_keystore_t *ks);

/* Stops the thread and frees everything. */
void gw_keystore_stop(gw_keystore_t *ks);

#define GW_KEY_HASH_LEN 32

/* SHA-256 of the whole presented key, as stored in api_keys.key_sha256.
 * Used by the gateway and by tollgatectl. */
void gw_key_hash(const char *key, size_t key_len, uint8_t out[GW_KEY_HASH_LEN]);

/* Constant-time equality of two key hashes (CRYPTO_memcmp): the time taken
 * does not depend on where they differ. */
bool gw_key_hash_equal(const uint8_t a[GW_KEY_HASH_LEN], const uint8_t b[GW_KEY_HASH_LEN]);

/* Number of successful (re)loads since start; for tests and metrics. */
uint64_t gw_keystore_generation(gw_keystore_t *ks);

#endif
