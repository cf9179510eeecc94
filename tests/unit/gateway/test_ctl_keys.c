/* Integration test of "tollgatectl team" and "tollgatectl key": the key is
 * printed once and only its SHA-256 and display prefix are stored (the clear
 * key appears in no table), every change is audited, and each bad input
 * (unknown team, bad date, unknown subcommand, no database, ...) gives a
 * clear error and a non-zero exit. */
#include "tg_testdb.h"

#include "gw_keystore.h"

#include <stdlib.h>
#include <string.h>

static char out[16384], err[16384];

/* Every row of every table in the public schema, as text. */
static char *dump_all(PGconn *c)
{
    PGresult *res = PQexec(c, "SELECT string_agg(t, E'\\n') FROM ("
                              " SELECT row_to_json(x)::text t FROM teams x UNION ALL"
                              " SELECT row_to_json(x)::text FROM api_keys x UNION ALL"
                              " SELECT row_to_json(x)::text FROM audit_log x UNION ALL"
                              " SELECT row_to_json(x)::text FROM schema_migrations x) s");
    char *v = strdup(PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

int main(void)
{
    tdb_t db;
    tdb_create(&db);
    tdb_migrate();
    PGconn *c = tdb_connect(&db);
    int rc;

    /* Teams. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "--actor alice team create acme");
    CHECK(rc == 0 && strstr(out, "created team acme"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "team create vault --private --actor=bob");
    CHECK(rc == 0 && strstr(out, "private"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "team create acme");
    CHECK(rc == 1 && strstr(err, "a team named 'acme' already exists"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "team create 'bad name'");
    CHECK(rc == 2 && strstr(err, "invalid team name"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "team create");
    CHECK(rc == 2 && strstr(err, "give the team's name"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "team list");
    CHECK(rc == 0 && strstr(out, "acme") && strstr(out, "vault"));
    char *v = tdb_value(c, "SELECT private FROM teams WHERE name = 'vault'", 0, NULL);
    CHECK(v && strcmp(v, "t") == 0);
    free(v);
    v = tdb_value(c,
                  "SELECT string_agg(actor || ':' || action || ':' || object, ',' ORDER BY id)"
                  " FROM audit_log WHERE action LIKE 'team.%'",
                  0, NULL);
    CHECK(v && strcmp(v, "alice:team.create:team:acme,bob:team.create:team:vault") == 0);
    free(v);

    /* A key: printed once, alone on stdout. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err,
                 "key create --team acme --models deepseek-chat,gpt-4o --expires 2099-01-01 "
                 "--name 'ci runner' --actor carol");
    CHECK(rc == 0);
    char key[128] = "";
    CHECK(count_lines(out) == 1 && sscanf(out, "%127s", key) == 1);
    CHECK(strlen(key) == 46 && strncmp(key, "tg-", 3) == 0);
    CHECK(strstr(err, key) == NULL); /* details on stderr never repeat the key */
    char display[12];
    snprintf(display, sizeof display, "%.11s", key);
    CHECK(strstr(err, display) != NULL);

    /* Stored: the SHA-256 and the display prefix, nothing else of the key. */
    uint8_t hash[GW_KEY_HASH_LEN];
    char hex[65];
    gw_key_hash(key, strlen(key), hash);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    const char *p[] = {hex};
    v = tdb_value(c,
                  "SELECT display_prefix || '|' || name || '|' || array_to_string(models, ',')"
                  " || '|' || expires_at AT TIME ZONE 'UTC' FROM api_keys"
                  " WHERE encode(key_sha256, 'hex') = $1",
                  1, p);
    CHECK(v && strncmp(v, display, 11) == 0 &&
          strstr(v, "|ci runner|deepseek-chat,gpt-4o|2099-01-01 00:00:00"));
    free(v);
    char *all = dump_all(c);
    CHECK(all && strlen(all) > 100);
    CHECK(strstr(all, key) == NULL);
    CHECK(strstr(all, key + 11) == NULL); /* the secret part, anywhere */
    char middle[20];
    snprintf(middle, sizeof middle, "%.16s", key + 20);
    CHECK(strstr(all, middle) == NULL);
    free(all);
    v = tdb_value(c,
                  "SELECT actor || ':' || action || ':' || (after ? 'key_sha256')::text"
                  " FROM audit_log WHERE action = 'key.create'",
                  0, NULL);
    CHECK(v && strcmp(v, "carol:key.create:false") == 0);
    free(v);

    /* key list shows the display prefix, never the key. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key list");
    CHECK(rc == 0 && strstr(out, display) && !strstr(out, key) && strstr(out, "active"));
    /* ...and whether it opted in to the response cache (off by default) */
    CHECK(strstr(out, "STATE    CACHE") && strstr(out, "active   off   "));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key cache %s on", display);
    CHECK(rc == 0);
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key list");
    CHECK(rc == 0 && strstr(out, "active   on    "));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key list --team vault");
    CHECK(rc == 0 && !strstr(out, display));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key list --team nosuch");
    CHECK(rc == 1 && strstr(err, "no team named 'nosuch'"));

    /* RFC 3339 expiry with an offset is stored as the right instant. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err,
                 "key create --team vault --expires 2031-05-06T07:08:09+02:00");
    CHECK(rc == 0);
    v = tdb_value(c,
                  "SELECT extract(epoch FROM expires_at)::bigint FROM api_keys"
                  " WHERE team_id = (SELECT id FROM teams WHERE name = 'vault')",
                  0, NULL);
    CHECK(v && strcmp(v, "1935810489") == 0);
    free(v);

    /* Revocation by display prefix, then again (nothing changes), by id. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key revoke %s --actor dave", display);
    CHECK(rc == 0 && strstr(out, "revoked key"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key revoke %s", display);
    CHECK(rc == 0 && strstr(out, "already revoked"));
    v = tdb_value(c,
                  "SELECT count(*) || ':' || min(actor) || ':' ||"
                  " bool_and(before->>'revoked_at' IS NULL AND after->>'revoked_at' IS NOT NULL)"
                  " FROM audit_log WHERE action = 'key.revoke'",
                  0, NULL);
    CHECK(v && strcmp(v, "1:dave:true") == 0);
    free(v);
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key list --team acme");
    CHECK(rc == 0 && strstr(out, "revoked"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key revoke 424242");
    CHECK(rc == 1 && strstr(err, "no key with id '424242'"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key revoke tg-nosuchkey");
    CHECK(rc == 1 && strstr(err, "no key with display prefix 'tg-nosuchkey'"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key revoke");
    CHECK(rc == 2 && strstr(err, "give the key's id"));

    /* Bad inputs: each a clear message and a non-zero exit, nothing stored. */
    v = tdb_value(c, "SELECT count(*) FROM api_keys", 0, NULL);
    int keys_before = v ? atoi(v) : -1;
    free(v);
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team nosuch");
    CHECK(rc == 1 && strstr(err, "no team named 'nosuch'") && out[0] == '\0');
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme --expires 31/12/2030");
    CHECK(rc == 2 && strstr(err, "invalid date '31/12/2030'") && out[0] == '\0');
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme --expires 2030-02-30");
    CHECK(rc == 2 && strstr(err, "invalid date"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme --expires 2001-01-01");
    CHECK(rc == 2 && strstr(err, "is in the past"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme --models 'a,,b'");
    CHECK(rc == 2 && strstr(err, "invalid --models"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --models a");
    CHECK(rc == 2 && strstr(err, "--team NAME is required"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team");
    CHECK(rc == 2 && strstr(err, "needs a value"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key create --team acme --colour blue");
    CHECK(rc == 2 && strstr(err, "unknown option '--colour'"));
    v = tdb_value(c, "SELECT count(*) FROM api_keys", 0, NULL);
    CHECK(v && atoi(v) == keys_before);
    free(v);

    /* Unknown commands at each level. */
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "frobnicate");
    CHECK(rc == 2 && strstr(err, "unknown command 'frobnicate'"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key frobnicate");
    CHECK(rc == 2 && strstr(err, "key: unknown command 'frobnicate'"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "team frobnicate");
    CHECK(rc == 2 && strstr(err, "team: unknown command 'frobnicate'"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "%s", "");
    CHECK(rc == 2 && strstr(err, "usage: tollgatectl"));

    /* --help on every level. */
    const char *helps[] = {"--help",           "team --help",       "team create --help",
                           "team list --help", "key --help",        "key create --help",
                           "key list --help",  "key revoke --help", "migrate --help"};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        rc = tdb_ctl(out, sizeof out, err, sizeof err, "%s", helps[i]);
        if (rc != 0 || !strstr(out, "usage: tollgatectl"))
            fprintf(stderr, "help failed: %s\n", helps[i]);
        CHECK(rc == 0 && strstr(out, "usage: tollgatectl"));
    }

    /* No database: a closed port, and one that does not exist. */
    int port = tdb_closed_port();
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "--db 'host=127.0.0.1 port=%d' team list", port);
    CHECK(rc == 1 && strstr(err, "cannot connect to PostgreSQL at 127.0.0.1:") &&
          strstr(err, "Is PostgreSQL running there? Set TG_PG_CONNINFO or pass --db"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "key list --db '%s_missing'", db.conninfo);
    CHECK(rc == 1 && strstr(err, "cannot connect to PostgreSQL") && strstr(err, "_missing"));
    rc = tdb_ctl(out, sizeof out, err, sizeof err, "--db 'port=notaport' key list");
    CHECK(rc == 1 && strstr(err, "cannot connect to PostgreSQL"));

    PQfinish(c);
    tdb_drop(&db);
    return tdb_failures ? 1 : 0;
}
