/* gw_prefix_lua: the prefix index's Lua scripts, key names, script arguments
 * and reply check (layout in gw_prefix_lua.h and docs/cache.md). */
#include "gw_prefix_lua.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

/* LOOKUP: prefix ("<ns>:pfx:<team>:"), n_routes, route ids, n_blocks, block
 * hashes -> {blocks cached per route}. Block 1 is probed first (most
 * prompts are new); then a binary search for the last alive block. */
static const char lookup_lua[] =
    "local pre = ARGV[1]; local nr = tonumber(ARGV[2]); local b0 = 3 + nr\n"
    "local nb = tonumber(ARGV[b0])\n"
    "local out = {}\n"
    "for r = 1, nr do\n"
    "  local rk = pre .. ARGV[2 + r] .. ':'\n"
    "  local lo, hi = 0, 0\n"
    "  if nb > 0 and redis.call('EXISTS', rk .. ARGV[b0 + 1]) == 1 then lo = 1; hi = nb end\n"
    "  while lo < hi do\n"
    "    local mid = math.floor((lo + hi + 1) / 2)\n"
    "    if redis.call('EXISTS', rk .. ARGV[b0 + mid]) == 1 then lo = mid else hi = mid - 1 end\n"
    "  end\n"
    "  out[r] = lo\n"
    "end\n"
    "return out\n";

/* RECORD: prefix ("<ns>:pfx:<team>:<route>:"), ttl_ms, known, block hashes
 * -> blocks written. `known` leading blocks were found cached at this route
 * by the lookup: when the last of them still has more than half its TTL left,
 * only the new blocks are written, with that block's remaining TTL (so TTLs
 * never grow along a prompt and the binary search stays exact); otherwise
 * every block is written with the full TTL. A growing conversation thus
 * costs one PTTL and its new blocks, not a rewrite of its whole history.
 * The value "1" is one of Redis's shared integers: a key costs its name,
 * its dict entry and its expiry entry, nothing more. */
static const char record_lua[] =
    "local pre = ARGV[1]; local ttl = tonumber(ARGV[2]); local known = tonumber(ARGV[3])\n"
    "local n = #ARGV - 3; local from = 1; local px = ttl\n"
    "if known > 0 and known <= n then\n"
    "  local left = redis.call('PTTL', pre .. ARGV[3 + known])\n"
    "  if left > ttl / 2 then from = known + 1; px = left end\n"
    "end\n"
    "for i = from, n do redis.call('SET', pre .. ARGV[3 + i], '1', 'PX', px) end\n"
    "return n - from + 1\n";

const char *const gw_prefix_lua[GW_PFX_LUA_COUNT] = {lookup_lua, record_lua};

void gw_prefix_route_id(const char *provider, const char *upstream, char out[13])
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\n%s", provider, upstream);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof buf ? sizeof buf - 1 : (size_t)n;
    uint64_t h = tok_xxh64(buf, len, 0);
    snprintf(out, 13, "%012" PRIx64, h >> 16);
}

void gw_prefix_args_free(gw_prefix_args_t *a)
{
    free(a->argv);
    free(a->lens);
    free(a->store);
    memset(a, 0, sizeof *a);
}

/* Allocates room for argc arguments and `bytes` bytes of text. */
static void args_alloc(gw_prefix_args_t *a, int argc, size_t bytes)
{
    a->argc = 0;
    a->argv = malloc(sizeof *a->argv * (size_t)argc);
    a->lens = malloc(sizeof *a->lens * (size_t)argc);
    a->store = malloc(bytes);
    if (!a->argv || !a->lens || !a->store)
        abort();
}

/* Appends an argument written with printf into the store at *pos. */
__attribute__((format(printf, 3, 4))) static void args_add(gw_prefix_args_t *a, size_t *pos,
                                                           const char *fmt, ...);
static void args_add(gw_prefix_args_t *a, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsprintf(a->store + *pos, fmt, ap);
    va_end(ap);
    a->argv[a->argc] = a->store + *pos;
    a->lens[a->argc] = (size_t)n;
    a->argc++;
    *pos += (size_t)n + 1;
}

void gw_prefix_args_lookup(gw_prefix_args_t *a, const char *ns, int64_t team,
                           const char (*route_ids)[13], int n_routes, const uint64_t *blocks,
                           size_t n_blocks)
{
    args_alloc(a, 3 + n_routes + (int)n_blocks, strlen(ns) + 64 + 16 * (size_t)n_routes +
                                                    17 * n_blocks);
    size_t pos = 0;
    args_add(a, &pos, "%s:pfx:%" PRId64 ":", ns, team);
    args_add(a, &pos, "%d", n_routes);
    for (int r = 0; r < n_routes; r++)
        args_add(a, &pos, "%s", route_ids[r]);
    args_add(a, &pos, "%zu", n_blocks);
    for (size_t i = 0; i < n_blocks; i++)
        args_add(a, &pos, "%016" PRIx64, blocks[i]);
}

void gw_prefix_args_record(gw_prefix_args_t *a, const char *ns, int64_t team,
                           const char *route_id, int64_t ttl_ms, size_t known,
                           const uint64_t *blocks, size_t n_blocks)
{
    args_alloc(a, 3 + (int)n_blocks, strlen(ns) + strlen(route_id) + 96 + 17 * n_blocks);
    size_t pos = 0;
    args_add(a, &pos, "%s:pfx:%" PRId64 ":%s:", ns, team, route_id);
    args_add(a, &pos, "%" PRId64, ttl_ms);
    args_add(a, &pos, "%zu", known);
    for (size_t i = 0; i < n_blocks; i++)
        args_add(a, &pos, "%016" PRIx64, blocks[i]);
}

int gw_prefix_reply_parse(const redisReply *reply, int n_routes, size_t n_blocks, int64_t *out,
                          char *err, size_t errlen)
{
    if (!reply) {
        snprintf(err, errlen, "no reply");
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "reply is not an array (type %d)", reply->type);
        return -1;
    }
    if (reply->elements != (size_t)n_routes) {
        snprintf(err, errlen, "reply has %zu elements, expected %d", reply->elements, n_routes);
        return -1;
    }
    for (int r = 0; r < n_routes; r++) {
        const redisReply *e = reply->element[r];
        if (!e || e->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen, "reply element %d is not an integer", r);
            return -1;
        }
        if (e->integer < 0 || (unsigned long long)e->integer > (unsigned long long)n_blocks) {
            snprintf(err, errlen, "reply element %d is %lld, outside 0..%zu", r, e->integer,
                     n_blocks);
            return -1;
        }
        out[r] = e->integer;
    }
    return 0;
}
