/* gw_prefix_lua: the prefix index's Redis side, without the event loop: the
 * two Lua scripts, the key names, the arguments they take and the check of
 * what Redis answers. Key layout (docs/cache.md):
 *
 *   <namespace>:pfx:<team id>:<route id>:<block hash>  ->  "1", PX = the provider's TTL
 *
 * route id: 12 hex digits of XXH64("<provider>\n<upstream model>"); block
 * hash: 16 hex digits of the chained XXH64 of the prompt's 64-token blocks
 * (tok_block_hashes). One string key per (team, route, block) because Redis
 * 7.0 has no per-field TTL (HEXPIRE is 7.4): each route's blocks expire on
 * the route's own clock. Because every record writes all the blocks of a
 * prompt with one TTL, block k alive implies blocks 0..k-1 alive (written at
 * the same time or later), so the longest cached prefix is found by binary
 * search: about log2(blocks) EXISTS per route. */
#ifndef GW_PREFIX_LUA_H
#define GW_PREFIX_LUA_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

enum { GW_PFX_LUA_LOOKUP = 0, GW_PFX_LUA_RECORD, GW_PFX_LUA_COUNT };

extern const char *const gw_prefix_lua[GW_PFX_LUA_COUNT];

#define GW_PFX_ROUTE_ID_LEN 12
#define GW_PFX_MAX_ROUTES 8

/* Writes the route id of provider/upstream (12 lowercase hex digits + NUL). */
void gw_prefix_route_id(const char *provider, const char *upstream, char out[13]);

/* Arguments of one script call (EVALSHA with 0 keys), owned: release with
 * gw_prefix_args_free. argv[i] has lens[i] bytes. */
typedef struct gw_prefix_args {
    int argc;
    const char **argv;
    size_t *lens;
    char *store; /* the bytes argv points into */
} gw_prefix_args_t;

void gw_prefix_args_free(gw_prefix_args_t *a);

/* LOOKUP: for each of n_routes route ids, the number of leading blocks of
 * blocks[0..n_blocks) that are cached for team `team` under namespace ns.
 * Reply: an array of n_routes integers, each 0..n_blocks. */
void gw_prefix_args_lookup(gw_prefix_args_t *a, const char *ns, int64_t team,
                           const char (*route_ids)[13], int n_routes, const uint64_t *blocks,
                           size_t n_blocks);

/* RECORD: stores blocks[0..n_blocks) for team and route with a TTL of ttl_ms.
 * known: how many leading blocks the lookup found at this route (0 = none or
 * no lookup); while the last of them has more than half its TTL left, only
 * the blocks after it are written (with its remaining TTL), else all blocks
 * get the full TTL again. Reply: the number of blocks written. */
void gw_prefix_args_record(gw_prefix_args_t *a, const char *ns, int64_t team,
                           const char *route_id, int64_t ttl_ms, size_t known,
                           const uint64_t *blocks, size_t n_blocks);

/* Checks a LOOKUP reply: an array of exactly n_routes integers, each between
 * 0 and n_blocks. Returns 0 and fills out[0..n_routes), or -1 with the reason
 * in err (a reply of the wrong shape is refused whole: no prediction). */
int gw_prefix_reply_parse(const redisReply *reply, int n_routes, size_t n_blocks, int64_t *out,
                          char *err, size_t errlen);

#endif
