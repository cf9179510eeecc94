/* The prefix index's Redis side on its own (bench/prefix.sh): loads a
 * realistic index (one team, 3 routes, conversations of 8 to 64 blocks), then
 * times, from a client on the same machine, N lookups of 3 routes over a
 * prompt of B blocks (the gateway's LOOKUP script, EVALSHA), N records of B
 * blocks, and N PINGs as the floor of any round trip; and reads Redis's own
 * CPU per call (INFO commandstats) for each phase. Prints p50/p99/max. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_prefix_lua.h"

static redisContext *rc;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static redisReply *evalsha(const char *sha, const gw_prefix_args_t *a)
{
    const char **argv = malloc(sizeof *argv * (size_t)(a->argc + 3));
    size_t *lens = malloc(sizeof *lens * (size_t)(a->argc + 3));
    argv[0] = "EVALSHA";
    argv[1] = sha;
    argv[2] = "0";
    lens[0] = 7;
    lens[1] = 40;
    lens[2] = 1;
    for (int i = 0; i < a->argc; i++) {
        argv[3 + i] = a->argv[i];
        lens[3 + i] = a->lens[i];
    }
    redisReply *r = redisCommandArgv(rc, a->argc + 3, argv, lens);
    free(argv);
    free(lens);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis: %s\n", r ? r->str : rc->errstr);
        exit(1);
    }
    return r;
}

/* Redis's usec_per_call for EVALSHA (or PING) since the last CONFIG RESETSTAT. */
static double server_us(const char *cmd)
{
    redisReply *r = redisCommand(rc, "INFO commandstats");
    char pat[64];
    snprintf(pat, sizeof pat, "cmdstat_%s:", cmd);
    const char *p = r && r->str ? strstr(r->str, pat) : NULL;
    double v = -1;
    if (p && (p = strstr(p, "usec_per_call=")))
        v = atof(p + 14);
    freeReplyObject(r);
    return v;
}

static void report(const char *what, double *t, int n, double server)
{
    qsort(t, (size_t)n, sizeof *t, cmp);
    printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", what, t[n / 2], t[n * 99 / 100], t[n - 1], server);
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 6379;
    int n = argc > 3 ? atoi(argv[3]) : 5000;
    int blocks = argc > 4 ? atoi(argv[4]) : 40;
    rc = redisConnect(host, port);
    if (!rc || rc->err) {
        fprintf(stderr, "cannot connect to %s:%d\n", host, port);
        return 1;
    }
    char sha[2][41];
    for (int i = 0; i < 2; i++) {
        redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", gw_prefix_lua[i]);
        snprintf(sha[i], 41, "%s", r->str);
        freeReplyObject(r);
    }
    char routes[3][13];
    gw_prefix_route_id("p1", "deepseek-chat", routes[0]);
    gw_prefix_route_id("p2", "deepseek-chat", routes[1]);
    gw_prefix_route_id("p3", "deepseek-chat", routes[2]);
    /* the index: 2,000 conversations of 8..64 blocks, each at one of the routes */
    uint64_t *b = malloc(sizeof *b * 64);
    for (int c = 0; c < 2000; c++) {
        int nb = 8 + c % 57;
        for (int i = 0; i < nb; i++)
            b[i] = (uint64_t)c * 1000003 + (uint64_t)i;
        gw_prefix_args_t a;
        gw_prefix_args_record(&a, "bench", 1, routes[c % 3], 600000, 0, b, (size_t)nb);
        freeReplyObject(evalsha(sha[1], &a));
        gw_prefix_args_free(&a);
    }
    redisReply *mem = redisCommand(rc, "INFO memory");
    const char *um = mem && mem->str ? strstr(mem->str, "used_memory:") : NULL;
    printf("index loaded: 2000 conversations, %d block keys; Redis used_memory %lld bytes\n",
           2000 * 36, um ? atoll(um + 12) : -1LL);
    freeReplyObject(mem);
    double *t = malloc(sizeof *t * (size_t)n);
    uint64_t *q = malloc(sizeof *q * (size_t)blocks);
    printf("\n%d calls each, prompt of %d blocks (%d tokens), 3 routes\n\n", n, blocks, blocks * 64);
    printf("| call | client p50 us | client p99 us | client max us | Redis CPU us/call |\n");
    printf("|---|---|---|---|---|\n");
    freeReplyObject(redisCommand(rc, "CONFIG RESETSTAT"));
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        freeReplyObject(redisCommand(rc, "PING"));
        t[i] = now_us() - t0;
    }
    report("PING (round-trip floor)", t, n, server_us("ping"));
    const char *names[] = {"LOOKUP, prompt cached at one route", "LOOKUP, prompt cached nowhere"};
    for (int kind = 0; kind < 2; kind++) {
        freeReplyObject(redisCommand(rc, "CONFIG RESETSTAT"));
        for (int i = 0; i < n; i++) {
            int c = (i * 7) % 2000;
            for (int k = 0; k < blocks; k++)
                q[k] = kind == 0 ? (uint64_t)c * 1000003 + (uint64_t)k : 0xdead0000ULL + (uint64_t)i * 100 + (uint64_t)k;
            gw_prefix_args_t a;
            gw_prefix_args_lookup(&a, "bench", 1, (const char(*)[13])routes, 3, q, (size_t)blocks);
            double t0 = now_us();
            freeReplyObject(evalsha(sha[0], &a));
            t[i] = now_us() - t0;
            gw_prefix_args_free(&a);
        }
        report(names[kind], t, n, server_us("evalsha"));
    }
    freeReplyObject(redisCommand(rc, "CONFIG RESETSTAT"));
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < blocks; k++)
            q[k] = 0xbeef000000ULL + (uint64_t)(i % 500) * 100 + (uint64_t)k;
        gw_prefix_args_t a;
        /* a conversation's next turn: all but the last 3 blocks known at this route */
        gw_prefix_args_record(&a, "bench", 2, routes[i % 3], 600000, i < 500 ? 0 : (size_t)blocks - 3,
                              q, (size_t)blocks);
        double t0 = now_us();
        freeReplyObject(evalsha(sha[1], &a));
        t[i] = now_us() - t0;
        gw_prefix_args_free(&a);
    }
    report("RECORD, next turn (3 new blocks; the first 500 calls write all)", t, n, server_us("evalsha"));
    free(t);
    free(q);
    free(b);
    redisFree(rc);
    return 0;
}
