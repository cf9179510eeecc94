/* gw_govern_lua: the Lua scripts that Redis runs for governance (atomic, one
 * round trip each). Their argument layouts are documented beside each. */
#ifndef GW_GOVERN_LUA_H
#define GW_GOVERN_LUA_H

enum { GW_LUA_BATCH = 0, GW_LUA_STATUS, GW_LUA_COUNT };

extern const char *const gw_govern_lua[GW_LUA_COUNT];

#endif
