/* gw_key_admin: the one implementation of team and API-key administration
 * shared by tollgatectl ("team", "key" commands) and the gateway's admin HTTP
 * API (gw_admin_keys.c): key generation, the checks of names, model lists,
 * expiry and routing values, the lookups, and the writes. teams and api_keys
 * have no audit trigger: each write here inserts its audit_log row (actor,
 * action, row before and after, never key_sha256) in the same statement as
 * the change, so both commit or neither does; the api_keys trigger NOTIFYs
 * running gateways, whose key store reloads at once. Statuses are the
 * GW_PA_* of gw_price_admin.h (400 bad value, 404 unknown team or key, 409
 * conflict with the data, 503 PostgreSQL); nothing is saved on a refusal. */
#ifndef GW_KEY_ADMIN_H
#define GW_KEY_ADMIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_price_admin.h"

#define GW_KEY_RANDOM_BYTES 32
#define GW_KEY_PREFIX "tg-"
#define GW_KEY_LEN (3 + 43)        /* "tg-" + base64url(32 bytes), no padding */
#define GW_KEY_DISPLAY_LEN (3 + 8) /* "tg-" + the first 8 characters */

/* Makes a new key from OpenSSL's RAND_bytes: key gets GW_KEY_LEN characters
 * and a NUL, display the first GW_KEY_DISPLAY_LEN. Returns 0, or -1 if the
 * generator failed (err set). The caller cleanses key after use. */
int gw_key_generate(char key[GW_KEY_LEN + 1], char display[GW_KEY_DISPLAY_LEN + 1], char *err,
                    size_t errlen);

/* ---- values ---------------------------------------------------------------
 * Each returns 0, or -1 with a message naming `opt` ("--models" for the CLI,
 * "models" for the API) that says what is expected. */

/* 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit. */
int gw_key_team_name_check(const char *name, char *err, size_t errlen);
/* Comma-separated model names: 1 to 1023 characters, each name 1 to 127 of
 * letters, digits and ._:/@+-. */
int gw_key_models_check(const char *opt, const char *list, char *err, size_t errlen);
/* A key's label: 1 to 200 characters, no control characters. */
int gw_key_label_check(const char *opt, const char *label, char *err, size_t errlen);
/* An expiry (YYYY-MM-DD or RFC 3339) after now_us -> unix microseconds. */
int gw_key_expiry_parse(const char *opt, const char *text, int64_t now_us, int64_t *out_us,
                        char *err, size_t errlen);

/* Routing rules and defaults of a key (migration 0015, docs/router.md). A
 * set_* flag says the value is given; then NULL clears it (allow: every
 * provider; deny, latency, cost, preference: none). Strings are borrowed. */
typedef struct gw_key_route {
    bool set_allow, set_deny, set_latency, set_cost, set_pref, set_private;
    const char *allow, *deny; /* comma-separated provider names */
    const char *latency;      /* milliseconds as text */
    const char *cost;         /* a decimal amount */
    const char *pref;         /* cheapest | fastest | balanced */
    bool private_on;
    char latency_ms[16]; /* filled by gw_key_route_check: the target's digits, "" = none */
} gw_key_route_t;

/* How gw_key_route_check names the values in its messages. */
typedef enum { GW_KEY_NAMES_CLI, GW_KEY_NAMES_JSON } gw_key_names_t;

/* Checks the given routing values (lists, a provider both allowed and
 * denied, latency 1..3600000, cost at most 12 decimals and 1000000,
 * preference) and fills latency_ms. 0, or -1 with a message and *param the
 * offending field's name in that naming. */
int gw_key_route_check(gw_key_route_t *kr, gw_key_names_t names, const char **param, char *err,
                       size_t errlen);

/* Whether any routing value is given. */
bool gw_key_route_any(const gw_key_route_t *kr);

/* Writes into out the comma-separated provider names of kr's lists that no
 * price card or price provider of this database names (probably typos; they
 * are stored anyway: one database may serve gateways with other providers).
 * "" when there are none or the lookup failed. */
void gw_key_route_unpriced(PGconn *conn, const gw_key_route_t *kr, char *out, size_t outlen);

/* ---- teams ---------------------------------------------------------------- */

/* Creates a team (name checked here), audited as team.create by actor.
 * *id_out its id. GW_PA_CONFLICT when the name is taken. */
int gw_key_team_create(PGconn *conn, const char *actor, const char *name, bool private_team,
                       int64_t *id_out, char *err, size_t errlen);

/* A team's id by name. GW_PA_NOT_FOUND "no team named '...'" when none. */
int gw_key_team_find(PGconn *conn, const char *name, int64_t *id_out, char *err, size_t errlen);

/* Columns of gw_key_teams_select. Instants are unix microseconds. */
enum {
    GW_KT_ID,
    GW_KT_NAME,
    GW_KT_PRIVATE,     /* t | f */
    GW_KT_ACTIVE_KEYS, /* not revoked, not expired */
    GW_KT_KEYS,        /* all of them */
    GW_KT_CREATED_US,
    GW_KT_NCOLS
};

/* Teams ordered by name: all (id 0, name NULL), or the one with that id or
 * name. The result (PQclear it), or NULL with a status and message. */
PGresult *gw_key_teams_select(PGconn *conn, int64_t id, const char *name, int *status, char *err,
                              size_t errlen);

/* ---- keys ----------------------------------------------------------------- */

/* A new key as asked for. Strings are borrowed; NULL: the default. */
typedef struct gw_key_spec {
    const char *team;   /* the team's name (required) */
    const char *models; /* comma-separated allow list; NULL = every model */
    const char *name;   /* label */
    int64_t expires_us; /* 0 = never */
    bool response_cache;
    gw_key_route_t route; /* checked with gw_key_route_check */
} gw_key_spec_t;

/* Creates a key for spec (values already checked), audited as key.create by
 * actor: key receives the clear key (shown once by the caller, then
 * cleansed), display its display prefix, *id_out its id. Without routing
 * values or the cache the 0014/0015 columns keep their defaults. */
int gw_key_create(PGconn *conn, const char *actor, const gw_key_spec_t *spec,
                  char key[GW_KEY_LEN + 1], char display[GW_KEY_DISPLAY_LEN + 1], int64_t *id_out,
                  char *err, size_t errlen);

/* Resolves ID (digits) or DISPLAY_PREFIX to one key. GW_PA_NOT_FOUND when
 * none, GW_PA_CONFLICT when several keys share that prefix. */
int gw_key_find(PGconn *conn, const char *ref, int64_t *id_out, char *err, size_t errlen);

/* Columns of gw_key_select. Instants are unix microseconds (NULL: none);
 * lists are comma-separated (NULL: models all, allow all, deny none). The
 * 0014/0015 columns read as their defaults on an older schema. */
enum {
    GW_KK_ID,
    GW_KK_TEAM,
    GW_KK_PREFIX,
    GW_KK_NAME,
    GW_KK_MODELS,
    GW_KK_EXPIRES_US,
    GW_KK_STATE, /* active | revoked | expired */
    GW_KK_CREATED_US,
    GW_KK_REVOKED_US,
    GW_KK_RESPONSE_CACHE, /* t | f */
    GW_KK_PRIVATE,        /* t | f */
    GW_KK_ALLOW,
    GW_KK_DENY,
    GW_KK_LATENCY_MS,
    GW_KK_MAX_COST,
    GW_KK_PREFERENCE,
    GW_KK_TEAM_ID,
    GW_KK_NCOLS
};

/* Keys ordered by id: all, a team's (team non-NULL), or one (id > 0). The
 * result (PQclear it), or NULL with a status and message. Never selects the
 * key's hash. */
PGresult *gw_key_select(PGconn *conn, const char *team, int64_t id, int *status, char *err,
                        size_t errlen);

/* Revokes key id, audited as key.revoke. *changed false when it was revoked
 * already (nothing written). GW_PA_NOT_FOUND when there is no such key. */
int gw_key_revoke(PGconn *conn, const char *actor, int64_t id, bool *changed, char *err,
                  size_t errlen);

/* Changes key id's routing (the values kr gives; checked) and its response
 * cache opt-in (cache -1: unchanged, 0 off, 1 on) in one transaction,
 * audited as key.route and key.response_cache. GW_PA_NOT_FOUND when there is
 * no such key; GW_PA_CONFLICT when the result would both allow and deny a
 * provider. */
int gw_key_update(PGconn *conn, const char *actor, int64_t id, const gw_key_route_t *kr, int cache,
                  char *err, size_t errlen);

#endif
