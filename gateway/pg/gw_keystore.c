/* gw_keystore: the in-memory API key table. A background thread loads every
 * key from PostgreSQL, LISTENs on "tollgate_keys" and rebuilds the table on
 * each notification; request threads look keys up by SHA-256 under a read
 * lock. See gw_keystore.h for the contract. */
#include "gw_keystore.h"

#include "gw_pgconn.h"
#include "tg_log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KS_POLL_MS 100        /* how long the thread sleeps on the socket */
#define KS_SAFETY_RELOAD_S 30 /* reload even without a notification */
#define KS_BACKOFF_MIN_MS 100
#define KS_BACKOFF_MAX_MS 5000

typedef struct ks_entry {
    uint8_t hash[GW_KEY_HASH_LEN];
    bool used;
    bool revoked;
    gw_key_info_t info;
} ks_entry_t;

/* An open-addressing table, at most half full; rebuilt whole on each load
 * and swapped in under the write lock. */
typedef struct ks_table {
    ks_entry_t *slots;
    size_t mask; /* slot count - 1 (a power of two) */
    size_t count;
} ks_table_t;

struct gw_keystore {
    char *conninfo;
    pthread_t thread;
    pthread_rwlock_t lock;
    ks_table_t *table; /* NULL until the first load; guarded by lock */
    atomic_bool stopping;
    atomic_uint_fast64_t generation;
};

void gw_key_hash(const char *key, size_t key_len, uint8_t out[GW_KEY_HASH_LEN])
{
    unsigned int len = 0;
    if (!EVP_Digest(key, key_len, out, &len, EVP_sha256(), NULL) || len != GW_KEY_HASH_LEN)
        abort(); /* OpenSSL cannot compute SHA-256: the build is broken */
}

bool gw_key_hash_equal(const uint8_t a[GW_KEY_HASH_LEN], const uint8_t b[GW_KEY_HASH_LEN])
{
    return CRYPTO_memcmp(a, b, GW_KEY_HASH_LEN) == 0;
}

static int64_t ks_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds in short slices, returning early once stopping. */
static void ks_sleep(gw_keystore_t *ks, int ms)
{
    while (ms > 0 && !atomic_load(&ks->stopping)) {
        int slice = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

static void ks_table_free(ks_table_t *t)
{
    if (t) {
        free(t->slots);
        free(t);
    }
}

/* The slot where a hash's probe sequence starts: the hash is uniformly
 * random, so its first bytes are a fine index. */
static size_t ks_slot_of(const ks_table_t *t, const uint8_t hash[GW_KEY_HASH_LEN])
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (size_t)h & t->mask;
}

/* Finds the entry whose hash equals `hash`, comparing each candidate in
 * constant time. Returns NULL if absent. Caller holds the lock. */
static const ks_entry_t *ks_table_find(const ks_table_t *t, const uint8_t hash[GW_KEY_HASH_LEN])
{
    for (size_t i = ks_slot_of(t, hash);; i = (i + 1) & t->mask) {
        const ks_entry_t *e = &t->slots[i];
        if (!e->used)
            return NULL;
        if (gw_key_hash_equal(e->hash, hash))
            return e;
    }
}

static int ks_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool ks_parse_hash(const char *hex, uint8_t out[GW_KEY_HASH_LEN])
{
    if (strlen(hex) != 2 * GW_KEY_HASH_LEN)
        return false;
    for (size_t i = 0; i < GW_KEY_HASH_LEN; i++) {
        int hi = ks_hex_value(hex[2 * i]), lo = ks_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static const char ks_load_sql[] =
    "SELECT k.id, k.team_id, t.name, t.private, k.display_prefix, encode(k.key_sha256, 'hex'),"
    "       k.expires_at IS NULL,"
    "       COALESCE((extract(epoch FROM k.expires_at) * 1000000)::bigint, 0),"
    "       k.revoked_at IS NOT NULL, k.models IS NULL,"
    "       COALESCE(array_to_string(k.models, ','), ''),"
    /* routing rules and defaults (0015), read by name (ks_routing_from_row) */
    "       k.private AS rt_private, k.allow_providers IS NULL AS rt_allow_all,"
    "       COALESCE(array_to_string(k.allow_providers, ','), '') AS rt_allow,"
    "       COALESCE(array_to_string(k.deny_providers, ','), '') AS rt_deny,"
    "       COALESCE(k.latency_target_ms, 0) AS rt_latency_ms,"
    "       COALESCE((k.max_cost * 1000000000000)::bigint, -1) AS rt_max_cost_pico,"
    "       COALESCE(k.route_preference, '') AS rt_preference,"
    /* migration 0014; read through jsonb so that an older schema loads too */
    "       COALESCE((to_jsonb(k) ->> 'response_cache')::boolean, false) AS rc_response_cache"
    "  FROM api_keys k JOIN teams t ON t.id = k.team_id";

/* The value of the column named `name` in row r ("" if there is none). */
static const char *ks_col(const PGresult *res, int r, const char *name)
{
    int c = PQfnumber(res, name);
    return c >= 0 ? PQgetvalue(res, r, c) : "";
}

/* Fills the key's routing rules and defaults (the rt_* columns). A list that
 * does not fit (the schema caps lists at 255 bytes, so only a changed schema
 * gets here) fails closed: the key may use no provider until it is fixed. */
static void ks_routing_from_row(const PGresult *res, int r, gw_key_info_t *in)
{
    in->key_private = ks_col(res, r, "rt_private")[0] == 't';
    bool all = ks_col(res, r, "rt_allow_all")[0] == 't';
    const char *allow = ks_col(res, r, "rt_allow"), *deny = ks_col(res, r, "rt_deny");
    if (strlen(allow) >= sizeof in->allow_providers ||
        strlen(deny) >= sizeof in->deny_providers) {
        tg_error("key store: key %s has a provider allow or deny list longer than %zu bytes; "
                 "it may use no provider until shortened",
                 in->display_prefix, sizeof in->allow_providers - 1);
        snprintf(in->allow_providers, sizeof in->allow_providers, ",");
    } else if (!all) {
        /* a NULL list is every provider; an empty one cannot be stored (the
         * schema's check), but would admit none: "," names no provider */
        snprintf(in->allow_providers, sizeof in->allow_providers, "%s", allow[0] ? allow : ",");
    }
    if (strlen(deny) < sizeof in->deny_providers)
        snprintf(in->deny_providers, sizeof in->deny_providers, "%s", deny);
    in->latency_target_ms = strtoll(ks_col(res, r, "rt_latency_ms"), NULL, 10);
    const char *cost = ks_col(res, r, "rt_max_cost_pico");
    in->max_cost_pico = cost[0] ? strtoll(cost, NULL, 10) : -1;
    snprintf(in->route_preference, sizeof in->route_preference, "%s",
             ks_col(res, r, "rt_preference"));
}

/* Fills one entry from row `r` of the load result. Returns false (and logs)
 * if the row cannot be used; the key is then absent, i.e. refused. */
static bool ks_entry_from_row(const PGresult *res, int r, ks_entry_t *e)
{
    gw_key_info_t *in = &e->info;
    memset(e, 0, sizeof *e);
    in->key_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    in->team_id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    snprintf(in->team_name, sizeof in->team_name, "%s", PQgetvalue(res, r, 2));
    in->team_private = PQgetvalue(res, r, 3)[0] == 't';
    snprintf(in->display_prefix, sizeof in->display_prefix, "%s", PQgetvalue(res, r, 4));
    if (!ks_parse_hash(PQgetvalue(res, r, 5), e->hash)) {
        tg_error("key store: key id %lld has a malformed key_sha256; it is refused",
                 (long long)in->key_id);
        return false;
    }
    if (PQgetvalue(res, r, 6)[0] != 't') {
        in->expires_at_us = strtoll(PQgetvalue(res, r, 7), NULL, 10);
        if (in->expires_at_us <= 0)
            in->expires_at_us = 1; /* before 1970: long expired, not "never" */
    }
    e->revoked = PQgetvalue(res, r, 8)[0] == 't';
    bool all_models = PQgetvalue(res, r, 9)[0] == 't';
    const char *models = PQgetvalue(res, r, 10);
    if (all_models) {
        in->models[0] = '\0';
    } else if (models[0] == '\0') {
        /* An empty (non-NULL) allow list admits nothing; "" would mean every
         * model, so store a list whose only entries are empty names. */
        snprintf(in->models, sizeof in->models, ",");
    } else if (strlen(models) >= sizeof in->models) {
        /* Truncating could turn "gpt-4o-mini" into "gpt-4o": admit nothing. */
        tg_error("key store: key %s has a model allow list longer than %zu bytes; "
                 "it admits no model until shortened",
                 in->display_prefix, sizeof in->models - 1);
        snprintf(in->models, sizeof in->models, ",");
    } else {
        snprintf(in->models, sizeof in->models, "%s", models);
    }
    ks_routing_from_row(res, r, in);
    in->response_cache = ks_col(res, r, "rc_response_cache")[0] == 't';
    return true;
}

/* Builds a fresh table from PostgreSQL and swaps it in. Returns 0, or -1
 * with err set (the old table stays in place). */
static int ks_reload(gw_keystore_t *ks, PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, ks_load_sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_pg_message(conn, res, err, errlen);
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    size_t nslots = 16;
    while (nslots < 2 * (size_t)rows)
        nslots *= 2;
    ks_table_t *t = calloc(1, sizeof *t);
    ks_entry_t *slots = calloc(nslots, sizeof *slots);
    if (!t || !slots)
        abort();
    t->slots = slots;
    t->mask = nslots - 1;
    for (int r = 0; r < rows; r++) {
        ks_entry_t e;
        if (!ks_entry_from_row(res, r, &e))
            continue;
        size_t i = ks_slot_of(t, e.hash);
        while (t->slots[i].used)
            i = (i + 1) & t->mask;
        e.used = true;
        t->slots[i] = e;
        t->count++;
    }
    PQclear(res);
    pthread_rwlock_wrlock(&ks->lock);
    ks_table_t *old = ks->table;
    ks->table = t;
    pthread_rwlock_unlock(&ks->lock);
    ks_table_free(old);
    atomic_fetch_add(&ks->generation, 1);
    tg_debug("key store: loaded %zu keys", t->count);
    return 0;
}

/* Follows one connection: waits on its socket, reloads on notifications and
 * every KS_SAFETY_RELOAD_S. Returns when stopping or when the connection
 * fails (logged). */
static void ks_follow(gw_keystore_t *ks, PGconn *conn)
{
    char err[512];
    int64_t last_load = ks_now_ms();
    while (!atomic_load(&ks->stopping)) {
        int notified = gw_pg_wait_notify(conn, KS_POLL_MS, err, sizeof err);
        if (notified < 0) {
            tg_warn("key store: lost the PostgreSQL connection: %s; keeping the last key "
                    "table and reconnecting",
                    err);
            return;
        }
        if (notified || ks_now_ms() - last_load >= KS_SAFETY_RELOAD_S * 1000) {
            if (ks_reload(ks, conn, err, sizeof err) != 0) {
                tg_warn("key store: reloading keys failed: %s; reconnecting", err);
                return;
            }
            last_load = ks_now_ms();
        }
    }
}

static void *ks_thread(void *arg)
{
    gw_keystore_t *ks = arg;
    int backoff = 0;
    char err[512];
    while (!atomic_load(&ks->stopping)) {
        PGconn *conn = gw_pg_connect(ks->conninfo, 5, err, sizeof err);
        if (conn) {
            /* LISTEN before loading: a change committed between the two is
             * then seen as a notification, never missed. */
            PGresult *res = PQexec(conn, "LISTEN tollgate_keys");
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                gw_pg_message(conn, res, err, sizeof err);
            else if (ks_reload(ks, conn, err, sizeof err) == 0)
                err[0] = '\0';
            PQclear(res);
            if (!err[0]) {
                tg_info("key store: %zu keys loaded; following changes", gw_keystore_size(ks));
                backoff = 0;
                ks_follow(ks, conn);
                PQfinish(conn);
                continue;
            }
            PQfinish(conn);
        }
        backoff = gw_pg_backoff_next(backoff, KS_BACKOFF_MIN_MS, KS_BACKOFF_MAX_MS);
        tg_warn("key store: %s; retrying in %d ms", err, backoff);
        ks_sleep(ks, backoff);
    }
    return NULL;
}

gw_keystore_t *gw_keystore_start(const char *conninfo)
{
    gw_keystore_t *ks = calloc(1, sizeof *ks);
    if (!ks)
        return NULL;
    ks->conninfo = strdup(conninfo ? conninfo : "");
    if (!ks->conninfo)
        goto err;
    if (pthread_rwlock_init(&ks->lock, NULL) != 0)
        goto err;
    atomic_init(&ks->stopping, false);
    atomic_init(&ks->generation, 0);
    if (pthread_create(&ks->thread, NULL, ks_thread, ks) != 0) {
        pthread_rwlock_destroy(&ks->lock);
        goto err;
    }
    return ks;
err:
    free(ks->conninfo);
    free(ks);
    return NULL;
}

bool gw_keystore_wait_loaded(gw_keystore_t *ks, int timeout_ms)
{
    int64_t deadline = ks_now_ms() + timeout_ms;
    while (atomic_load(&ks->generation) == 0) {
        if (ks_now_ms() >= deadline)
            return false;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return true;
}

gw_key_status_t gw_keystore_lookup(gw_keystore_t *ks, const char *key, size_t key_len,
                                   int64_t now_us, gw_key_info_t *out)
{
    uint8_t hash[GW_KEY_HASH_LEN];
    gw_key_hash(key, key_len, hash);
    gw_key_status_t st;
    pthread_rwlock_rdlock(&ks->lock);
    if (!ks->table) {
        st = GW_KEY_NOT_LOADED;
    } else {
        const ks_entry_t *e = ks_table_find(ks->table, hash);
        if (!e) {
            st = GW_KEY_UNKNOWN;
        } else {
            if (e->revoked)
                st = GW_KEY_REVOKED;
            else if (e->info.expires_at_us != 0 && e->info.expires_at_us <= now_us)
                st = GW_KEY_EXPIRED;
            else
                st = GW_KEY_OK;
            if (out)
                *out = e->info;
        }
    }
    pthread_rwlock_unlock(&ks->lock);
    return st;
}

bool gw_key_allows_model(const gw_key_info_t *info, const char *model)
{
    if (info->models[0] == '\0')
        return true;
    size_t mlen = strlen(model);
    if (mlen == 0)
        return false;
    const char *p = info->models;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == mlen && memcmp(p, model, len) == 0)
            return true;
        if (!comma)
            return false;
        p = comma + 1;
    }
}

size_t gw_keystore_size(gw_keystore_t *ks)
{
    pthread_rwlock_rdlock(&ks->lock);
    size_t n = ks->table ? ks->table->count : 0;
    pthread_rwlock_unlock(&ks->lock);
    return n;
}

uint64_t gw_keystore_generation(gw_keystore_t *ks)
{
    return atomic_load(&ks->generation);
}

void gw_keystore_stop(gw_keystore_t *ks)
{
    if (!ks)
        return;
    atomic_store(&ks->stopping, true);
    pthread_join(ks->thread, NULL);
    ks_table_free(ks->table);
    pthread_rwlock_destroy(&ks->lock);
    free(ks->conninfo);
    free(ks);
}
