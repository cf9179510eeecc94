/* The prefix index's Redis scripts against the real Redis of scripts/services
 * (TG_REDIS_URL): longest cached prefix per route, scoping by team, route and
 * namespace, partial prefixes, TTL expiry, the key layout and its memory per
 * block, NOSCRIPT-free loading, and replies of the wrong shape refused by
 * gw_prefix_reply_parse (real replies from scripts that answer nonsense). */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "gw_prefix_lua.h"
#include "gw_redis.h"
#include "pfx_check.h"

static redisContext *rc;
static char sha[GW_PFX_LUA_COUNT][41];
static char ns[32];

static redisReply *cmd_argv(int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    if (!r) {
        fprintf(stderr, "redis: %s\n", rc->errstr);
        exit(1);
    }
    return r;
}

/* EVALSHA script with the built arguments. */
static redisReply *run(int script, const gw_prefix_args_t *a)
{
    const char **argv = malloc(sizeof *argv * (size_t)(a->argc + 3));
    size_t *lens = malloc(sizeof *lens * (size_t)(a->argc + 3));
    argv[0] = "EVALSHA";
    argv[1] = sha[script];
    argv[2] = "0";
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < a->argc; i++) {
        argv[3 + i] = a->argv[i];
        lens[3 + i] = a->lens[i];
    }
    redisReply *r = cmd_argv(a->argc + 3, argv, lens);
    free(argv);
    free(lens);
    return r;
}

/* Records b[0..n) with `known` leading blocks found by a lookup; expects
 * `written` blocks written. */
static void record_known(int64_t team, const char *route, int64_t ttl_ms, size_t known,
                         const uint64_t *b, size_t n, size_t written)
{
    gw_prefix_args_t a;
    gw_prefix_args_record(&a, ns, team, route, ttl_ms, known, b, n);
    redisReply *r = run(GW_PFX_LUA_RECORD, &a);
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == (long long)written);
    if (r->type == REDIS_REPLY_INTEGER && r->integer != (long long)written)
        fprintf(stderr, "record wrote %lld, expected %zu\n", r->integer, written);
    freeReplyObject(r);
    gw_prefix_args_free(&a);
}

static void record(int64_t team, const char *route, int64_t ttl_ms, const uint64_t *b, size_t n)
{
    record_known(team, route, ttl_ms, 0, b, n, n);
}

/* PTTL of block b of team/route, ms (-2 when absent). */
static long long pttl(int64_t team, const char *route, uint64_t b)
{
    char key[128];
    snprintf(key, sizeof key, "%s:pfx:%lld:%s:%016" PRIx64, ns, (long long)team, route, b);
    const char *argv[] = {"PTTL", key};
    redisReply *r = cmd_argv(2, argv, NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return v;
}

/* Looks up blocks for routes; fills out; returns the parse status. */
static int lookup(int64_t team, const char (*routes)[13], int nr, const uint64_t *b, size_t n,
                  int64_t *out)
{
    gw_prefix_args_t a;
    gw_prefix_args_lookup(&a, ns, team, routes, nr, b, n);
    redisReply *r = run(GW_PFX_LUA_LOOKUP, &a);
    char err[160];
    int st = gw_prefix_reply_parse(r, nr, n, out, err, sizeof err);
    if (st != 0)
        fprintf(stderr, "lookup reply refused: %s\n", err);
    freeReplyObject(r);
    gw_prefix_args_free(&a);
    return st;
}

/* The reply of a script that returns `lua`, checked against the shape of a
 * 2-route lookup over 10 blocks. Returns the parse status; err gets why. */
static int parse_of(const char *lua, char *err, size_t errlen)
{
    const char *argv[] = {"EVAL", lua, "0"};
    redisReply *r = cmd_argv(3, argv, NULL);
    int64_t out[2];
    int st = gw_prefix_reply_parse(r, 2, 10, out, err, errlen);
    freeReplyObject(r);
    return st;
}

int main(void)
{
    const char *url = getenv("TG_REDIS_URL");
    if (!url) {
        fprintf(stderr, "TG_REDIS_URL is not set: run through scripts/test (real Redis)\n");
        return 1;
    }
    char host[256], err[256];
    int port, db;
    if (gw_redis_url_parse(url, host, sizeof host, &port, &db, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rc = redisConnect(host, port);
    if (!rc || rc->err) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 1;
    }
    snprintf(ns, sizeof ns, "ut%d", (int)getpid());
    for (int i = 0; i < GW_PFX_LUA_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", gw_prefix_lua[i]};
        redisReply *r = cmd_argv(3, argv, NULL);
        CHECK(r->type == REDIS_REPLY_STRING && r->len == 40);
        snprintf(sha[i], sizeof sha[i], "%s", r->str);
        freeReplyObject(r);
    }

    char routes[3][13];
    gw_prefix_route_id("pa", "deepseek-chat", routes[0]);
    gw_prefix_route_id("pb", "deepseek-chat", routes[1]);
    gw_prefix_route_id("pa", "deepseek-reasoner", routes[2]);
    CHECK(strlen(routes[0]) == 12 && strspn(routes[0], "0123456789abcdef") == 12);
    CHECK(strcmp(routes[0], routes[1]) && strcmp(routes[0], routes[2]));
    char again[13];
    gw_prefix_route_id("pa", "deepseek-chat", again);
    CHECK(!strcmp(again, routes[0])); /* stable: the same key names across restarts */

    uint64_t conv[40], other[40];
    for (int i = 0; i < 40; i++) {
        conv[i] = 0x1000 + (uint64_t)i * 7919;
        other[i] = i < 25 ? conv[i] : 0x900000 + (uint64_t)i; /* shares 25 leading blocks */
    }
    int64_t out[3];

    /* nothing recorded: 0 everywhere */
    CHECK(lookup(1, (const char(*)[13])routes, 3, conv, 40, out) == 0);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0);

    /* team 1, route pa/chat: 30 blocks of the conversation */
    record(1, routes[0], 60000, conv, 30);
    CHECK(lookup(1, (const char(*)[13])routes, 3, conv, 40, out) == 0);
    CHECK(out[0] == 30 && out[1] == 0 && out[2] == 0);
    /* a prompt sharing 25 leading blocks: 25 */
    CHECK(lookup(1, (const char(*)[13])routes, 1, other, 40, out) == 0);
    CHECK(out[0] == 25);
    /* a shorter prompt: capped by its own length */
    CHECK(lookup(1, (const char(*)[13])routes, 1, conv, 12, out) == 0);
    CHECK(out[0] == 12);
    /* every length from 0 to 40 gives min(n, 30) (the binary search's edges) */
    for (size_t n = 0; n <= 40; n++) {
        CHECK(lookup(1, (const char(*)[13])routes, 1, conv, n, out) == 0);
        CHECK(out[0] == (int64_t)(n < 30 ? n : 30));
    }
    /* another team never sees it */
    CHECK(lookup(2, (const char(*)[13])routes, 3, conv, 40, out) == 0);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0);
    /* another namespace never sees it */
    {
        char keep[24];
        snprintf(keep, sizeof keep, "%.20s", ns);
        snprintf(ns, sizeof ns, "%sx", keep);
        CHECK(lookup(1, (const char(*)[13])routes, 1, conv, 40, out) == 0);
        CHECK(out[0] == 0);
        snprintf(ns, sizeof ns, "%s", keep);
    }
    /* the key layout: <ns>:pfx:<team>:<route>:<block>, a plain string "1" with a TTL */
    {
        char key[128];
        snprintf(key, sizeof key, "%s:pfx:1:%s:%016" PRIx64, ns, routes[0], conv[0]);
        const char *get[] = {"GET", key};
        redisReply *r = cmd_argv(2, get, NULL);
        CHECK(r->type == REDIS_REPLY_STRING && !strcmp(r->str, "1"));
        freeReplyObject(r);
        const char *pttl[] = {"PTTL", key};
        r = cmd_argv(2, pttl, NULL);
        CHECK(r->type == REDIS_REPLY_INTEGER && r->integer > 50000 && r->integer <= 60000);
        freeReplyObject(r);
        const char *mem[] = {"MEMORY", "USAGE", key};
        r = cmd_argv(3, mem, NULL);
        CHECK(r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer < 200);
        printf("memory per block key (MEMORY USAGE, key %zu bytes): %lld bytes\n", strlen(key),
               r->type == REDIS_REPLY_INTEGER ? r->integer : -1);
        freeReplyObject(r);
    }
    /* a second route records a longer prefix, with a short TTL: each route on its own clock */
    record(1, routes[1], 150, conv, 40);
    CHECK(lookup(1, (const char(*)[13])routes, 3, conv, 40, out) == 0);
    CHECK(out[0] == 30 && out[1] == 40 && out[2] == 0);
    usleep(400000);
    CHECK(lookup(1, (const char(*)[13])routes, 3, conv, 40, out) == 0);
    CHECK(out[0] == 30 && out[1] == 0 && out[2] == 0);
    /* the next turn of a conversation: 30 blocks known, the last with most of its
     * TTL left: only the 10 new blocks are written, expiring no later than it */
    record_known(1, routes[0], 60000, 30, conv, 40, 10);
    CHECK(lookup(1, (const char(*)[13])routes, 1, conv, 40, out) == 0);
    CHECK(out[0] == 40);
    {
        long long newest = pttl(1, routes[0], conv[39]), known = pttl(1, routes[0], conv[29]);
        CHECK(newest > 0 && newest <= known + 5); /* read a moment apart */
    }
    /* past half its TTL, the known prefix is written again whole, with the full TTL */
    record(1, routes[2], 400, conv, 10);
    usleep(260000);
    CHECK(pttl(1, routes[2], conv[9]) > 0 && pttl(1, routes[2], conv[9]) < 200);
    record_known(1, routes[2], 400, 10, conv, 20, 20);
    CHECK(pttl(1, routes[2], conv[0]) > 300 && pttl(1, routes[2], conv[19]) > 300);
    /* a known count the route no longer holds (expired meanwhile): all written */
    record_known(1, routes[2], 400, 25, conv, 30, 30);
    /* known larger than the prompt: all written */
    record_known(1, routes[2], 400, 50, conv, 30, 30);

    /* bad shapes from a real Redis: each refused with a reason */
    CHECK(parse_of("return {1, 2}", err, sizeof err) == 0);
    CHECK(parse_of("return 'x'", err, sizeof err) == -1 && strstr(err, "not an array"));
    CHECK(parse_of("return 7", err, sizeof err) == -1 && strstr(err, "not an array"));
    CHECK(parse_of("return {1}", err, sizeof err) == -1 && strstr(err, "1 elements"));
    CHECK(parse_of("return {1, 2, 3}", err, sizeof err) == -1 && strstr(err, "3 elements"));
    CHECK(parse_of("return {1, 'two'}", err, sizeof err) == -1 && strstr(err, "not an integer"));
    CHECK(parse_of("return {1, {2}}", err, sizeof err) == -1 && strstr(err, "not an integer"));
    CHECK(parse_of("return {-1, 2}", err, sizeof err) == -1 && strstr(err, "outside"));
    CHECK(parse_of("return {1, 11}", err, sizeof err) == -1 && strstr(err, "outside"));
    CHECK(parse_of("return redis.error_reply('boom')", err, sizeof err) == -1);
    CHECK(parse_of("return nil", err, sizeof err) == -1);
    CHECK(gw_prefix_reply_parse(NULL, 2, 10, out, err, sizeof err) == -1);
    /* the lookup script with arguments that do not add up: an error, never a crash */
    {
        const char *argv[] = {"EVALSHA", sha[GW_PFX_LUA_LOOKUP], "0", "x:", "2", "abc"};
        redisReply *r = cmd_argv(6, argv, NULL);
        CHECK(r->type == REDIS_REPLY_ERROR);
        CHECK(gw_prefix_reply_parse(r, 2, 0, out, err, sizeof err) == -1);
        freeReplyObject(r);
    }

    /* clean up this test's keys */
    {
        char pat[64];
        snprintf(pat, sizeof pat, "%s:pfx:*", ns);
        const char *keys[] = {"KEYS", pat};
        redisReply *r = cmd_argv(2, keys, NULL);
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const char *del[] = {"DEL", r->element[i]->str};
            freeReplyObject(cmd_argv(2, del, NULL));
        }
        freeReplyObject(r);
    }
    redisFree(rc);
    return CHECK_DONE();
}
