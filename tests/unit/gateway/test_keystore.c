/* Integration test of gw_keystore against a real PostgreSQL: keys made by
 * tollgatectl are found with their team and allow list; unknown, near-miss,
 * expired and revoked keys are refused; a revocation (and a new key) reaches
 * the running key store within one second through LISTEN/NOTIFY; lookups
 * from several threads run while the table reloads; an unreachable database
 * answers GW_KEY_NOT_LOADED and stops promptly. */
#include "tg_testdb.h"

#include "gw_keystore.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static char out[8192], err[8192];

static void make_key(char key[128], const char *args)
{
    key[0] = '\0';
    int rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create %s", args);
    if (rc != 0 || sscanf(out, "%127s", key) != 1) {
        fprintf(stderr, "test: key create %s failed: %s", args, err);
        exit(1);
    }
}

/* Polls until the key's status is `want` or timeout_ms passes; returns the
 * milliseconds it took, or -1. */
static int64_t wait_status(gw_keystore_t *ks, const char *key, gw_key_status_t want, int timeout_ms,
                           int64_t start_ms)
{
    for (;;) {
        if (gw_keystore_lookup(ks, key, strlen(key), tdb_now_us(), NULL) == want)
            return tdb_mono_ms() - start_ms;
        if (tdb_mono_ms() - start_ms > timeout_ms)
            return -1;
        tdb_sleep_ms(2);
    }
}

typedef struct hammer {
    gw_keystore_t *ks;
    const char *key;
    atomic_bool stop;
    atomic_long lookups;
    atomic_long bad;
} hammer_t;

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    while (!atomic_load(&h->stop)) {
        gw_key_info_t info;
        gw_key_status_t st = gw_keystore_lookup(h->ks, h->key, strlen(h->key), tdb_now_us(), &info);
        if (st != GW_KEY_OK || strcmp(info.team_name, "acme") != 0)
            atomic_fetch_add(&h->bad, 1);
        atomic_fetch_add(&h->lookups, 1);
    }
    return NULL;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "team create acme") == 0);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "team create vault --private") == 0);
    char all[128], some[128], soon[128], priv[128], revoke_me[128];
    make_key(all, "--team acme --name all");
    make_key(some, "--team acme --models deepseek-chat,gpt-4o-mini");
    make_key(soon, "--team acme --expires 2099-01-01");
    make_key(priv, "--team vault");
    make_key(revoke_me, "--team acme");
    /* An expired key: tollgatectl refuses a date in the past, so age it here. */
    CHECK(tdb_exec(c, "UPDATE api_keys SET expires_at = now() - interval '1 hour'"
                      " WHERE expires_at IS NOT NULL"));

    gw_keystore_t *ks = gw_keystore_start(db.conninfo);
    CHECK(ks != NULL);
    CHECK(gw_keystore_wait_loaded(ks, 10000));
    CHECK(gw_keystore_size(ks) == 5);

    gw_key_info_t info;
    int64_t now = tdb_now_us();
    memset(&info, 0, sizeof info);
    CHECK(gw_keystore_lookup(ks, all, strlen(all), now, &info) == GW_KEY_OK);
    CHECK(strcmp(info.team_name, "acme") == 0 && !info.team_private && info.expires_at_us == 0);
    CHECK(strncmp(info.display_prefix, all, 11) == 0 && strlen(info.display_prefix) == 11);
    CHECK(info.key_id > 0 && info.team_id > 0);
    CHECK(gw_key_allows_model(&info, "anything-at-all"));

    CHECK(gw_keystore_lookup(ks, some, strlen(some), now, &info) == GW_KEY_OK);
    CHECK(gw_key_allows_model(&info, "deepseek-chat"));
    CHECK(gw_key_allows_model(&info, "gpt-4o-mini"));
    CHECK(!gw_key_allows_model(&info, "gpt-4o"));
    CHECK(!gw_key_allows_model(&info, "deepseek-reasoner"));

    CHECK(gw_keystore_lookup(ks, priv, strlen(priv), now, &info) == GW_KEY_OK);
    CHECK(info.team_private && strcmp(info.team_name, "vault") == 0);

    memset(&info, 0, sizeof info);
    CHECK(gw_keystore_lookup(ks, soon, strlen(soon), now, &info) == GW_KEY_EXPIRED);
    CHECK(info.expires_at_us > 0 && info.expires_at_us <= now); /* filled for logging */
    /* Expiry follows the caller's clock: a key valid now is expired later. */
    CHECK(gw_keystore_lookup(ks, all, strlen(all), now, NULL) == GW_KEY_OK);

    /* Unknown keys, including near misses of a real one: the lookup compares
     * whole hashes in constant time, so these walk the same path. */
    CHECK(gw_keystore_lookup(ks, "tg-nope", 7, now, NULL) == GW_KEY_UNKNOWN);
    CHECK(gw_keystore_lookup(ks, "", 0, now, NULL) == GW_KEY_UNKNOWN);
    char near[192];
    snprintf(near, sizeof near, "%s", all);
    near[45] = near[45] == 'A' ? 'B' : 'A'; /* last character differs */
    CHECK(gw_keystore_lookup(ks, near, strlen(near), now, NULL) == GW_KEY_UNKNOWN);
    CHECK(gw_keystore_lookup(ks, all, strlen(all) - 1, now, NULL) == GW_KEY_UNKNOWN);
    snprintf(near, sizeof near, "%s ", all); /* trailing junk */
    CHECK(gw_keystore_lookup(ks, near, strlen(near), now, NULL) == GW_KEY_UNKNOWN);
    /* The key need not be NUL-terminated: a prefix of a longer buffer works. */
    snprintf(near, sizeof near, "%sXYZ", all);
    CHECK(gw_keystore_lookup(ks, near, strlen(all), now, NULL) == GW_KEY_OK);

    /* Revocation reaches the running store within one second, while other
     * threads keep looking keys up. */
    hammer_t h = {.ks = ks, .key = all};
    atomic_init(&h.stop, false);
    atomic_init(&h.lookups, 0);
    atomic_init(&h.bad, 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&th[i], NULL, hammer_run, &h) == 0);
    CHECK(gw_keystore_lookup(ks, revoke_me, strlen(revoke_me), tdb_now_us(), NULL) == GW_KEY_OK);
    char display[12];
    snprintf(display, sizeof display, "%.11s", revoke_me);
    CHECK(tdb_ctl(out, sizeof out, err, sizeof err, "key revoke %s", display) == 0);
    int64_t took = wait_status(ks, revoke_me, GW_KEY_REVOKED, 5000, tdb_mono_ms());
    printf("revocation seen by the running key store after %lld ms (after tollgatectl exit)\n",
           (long long)took);
    CHECK(took >= 0 && took < 1000);
    CHECK(gw_keystore_lookup(ks, revoke_me, strlen(revoke_me), tdb_now_us(), &info) ==
          GW_KEY_REVOKED);
    CHECK(strncmp(info.display_prefix, revoke_me, 11) == 0);

    /* A revocation made directly in SQL (not through tollgatectl) is seen
     * too: the trigger notifies. Timed from before the statement. */
    int64_t t0 = tdb_mono_ms();
    const char *p[] = {some};
    char hex_sql[256];
    snprintf(hex_sql, sizeof hex_sql,
             "UPDATE api_keys SET revoked_at = now() WHERE key_sha256 = sha256(convert_to($1,"
             " 'UTF8')) RETURNING id");
    char *v = tdb_value(c, hex_sql, 1, p);
    CHECK(v && atoi(v) > 0);
    free(v);
    took = wait_status(ks, some, GW_KEY_REVOKED, 5000, t0);
    CHECK(took >= 0 && took < 1000);

    /* A key created while the store runs is accepted within one second. */
    char fresh[128];
    make_key(fresh, "--team vault");
    took = wait_status(ks, fresh, GW_KEY_OK, 5000, tdb_mono_ms());
    CHECK(took >= 0 && took < 1000);
    CHECK(gw_keystore_size(ks) == 6);

    atomic_store(&h.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    printf("%ld concurrent lookups during reloads, %ld wrong\n", (long)atomic_load(&h.lookups),
           (long)atomic_load(&h.bad));
    CHECK(atomic_load(&h.lookups) > 0 && atomic_load(&h.bad) == 0);
    CHECK(gw_keystore_generation(ks) >= 4);
    gw_keystore_stop(ks);

    /* PostgreSQL unreachable: never loaded, lookups say so, stop is prompt. */
    char closed[128];
    snprintf(closed, sizeof closed, "host=127.0.0.1 port=%d dbname=x user=x", tdb_closed_port());
    ks = gw_keystore_start(closed);
    CHECK(ks != NULL);
    CHECK(!gw_keystore_wait_loaded(ks, 300));
    CHECK(gw_keystore_lookup(ks, all, strlen(all), tdb_now_us(), NULL) == GW_KEY_NOT_LOADED);
    CHECK(gw_keystore_size(ks) == 0);
    t0 = tdb_mono_ms();
    gw_keystore_stop(ks);
    CHECK(tdb_mono_ms() - t0 < 1000);

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
