/* gw_govern_lua: governance's Redis scripts. All amounts are integers: money
 * in micro-units of the budget's currency (below 2^53, so Lua's doubles hold
 * them exactly), tokens and requests as counts. Keys (single Redis; the
 * names are built inside the scripts, so this is not Redis Cluster-ready):
 *   tg:rl:<scope>:<minute>   hash r (requests), t (tokens) for one minute
 *   tg:if:<scope>            zset of in-flight request ids, score = expiry ms (no
 *                            TTL: Redis drops it when its last id is removed; the
 *                            ids of a dead gateway are dropped by score at the
 *                            scope's next admission)
 *   tg:<bkey>:spent          the period's settled spend (missing = rebuild)
 *   tg:<bkey>:held           the sum of the holds in the set below
 *   tg:<bkey>:exp            zset "<request id>:<hold>" -> hold expiry ms
 *   tg:<bkey>:alert          set once the soft threshold was crossed
 * Only what a limit needs is read or written (a scope without a requests or
 * tokens limit keeps no minute counters; one without a concurrency limit no
 * in-flight set): Redis CPU is the cost of governance.
 * Rates use a sliding minute: previous minute * (unelapsed share) + this one.
 * Values that only pass through to Redis stay the strings they came as (the
 * gateway sends the expiry and the minutes ready-made): in Redis's Lua 5.1 a
 * number given to redis.call or put in a key name is formatted with
 * sprintf("%.14g"), which profiling showed as ~10% of Redis's CPU. */
#include "gw_govern_lua.h"

/* ADMIT: now_ms, request_id, ttl_ms, prompt_tokens, expiry_ms (now + ttl),
 *   minute (now_ms / 60000), previous minute, n_scopes,
 *   {scope, rpm, tpm, concurrent} * n_scopes, n_budgets,
 *   {bkey, hard, soft, hold, ledger (-1 = unknown), period_ttl_s (0 = none)} * n_budgets
 * -> {code, retry_after_s, what, {over_soft, crossed, spent, held} * n_budgets}
 * code: 0 admitted, 1 requests/min, 2 tokens/min, 3 concurrency, 4 budget,
 * 5 spend lost and no ledger figure to rebuild it from yet. Nothing is
 * changed unless the request is admitted (except a rebuilt spend and the
 * removal of expired holds). */

/* SETTLE: now_ms, request_id, completion_tokens, minute (now_ms / 60000), n_scopes,
 *   {scope, flags (1: concurrency limited, 2: tokens limited)} * n_scopes,
 *   n_budgets, {bkey, charge, hold} * n_budgets -> 1.
 * A hold already dropped as expired is not subtracted twice. A charge is
 * added only where the spend exists: a lost spend is rebuilt from the
 * ledger, which holds this request's row. */

/* BATCH: n, then n items, each: kind ("a" admit or "s" settle), argc, and
 * the item's arguments as documented above (ADMIT, SETTLE). The items run in
 * order, each exactly as its own script would (the whole batch is atomic,
 * which only makes it stricter) -> one reply per item: ADMIT's array, or
 * SETTLE's 1. The admissions and settles of one event-loop tick of a worker
 * travel in one EVALSHA: one round trip for all of them. */
static const char batch_lua[] =
    "local function admit(o)\n"
    "local now = tonumber(ARGV[o+1]); local rid = ARGV[o+2]; local ttl = tonumber(ARGV[o+3])\n"
    "local ptoks = ARGV[o+4]; local ptok = tonumber(ptoks); local nows = ARGV[o+1]\n"
    "local exps = ARGV[o+5]; local mcur = ARGV[o+6]; local mprev = ARGV[o+7]\n"
    "local ns = tonumber(ARGV[o+8]); local i = o + 9\n"
    "local frac = (now % 60000) / 60000\n"
    "local wait = math.ceil((60000 - now % 60000) / 1000)\n"
    "local rl = {}\n"
    "for s = 1, ns do\n"
    "  local name = ARGV[i]; local rpm = tonumber(ARGV[i+1]); local tpm = tonumber(ARGV[i+2])\n"
    "  local conc = tonumber(ARGV[i+3]); i = i + 4\n"
    "  local cur = false; local ifk = false\n"
    "  if rpm > 0 or tpm > 0 then\n"
    "    cur = 'tg:rl:' .. name .. ':' .. mcur\n"
    "    local c = redis.call('HMGET', cur, 'r', 't')\n"
    "    local p = redis.call('HMGET', 'tg:rl:' .. name .. ':' .. mprev, 'r', 't')\n"
    "    local wr = tonumber(p[1] or '0') * (1 - frac) + tonumber(c[1] or '0')\n"
    "    local wt = tonumber(p[2] or '0') * (1 - frac) + tonumber(c[2] or '0')\n"
    "    if rpm > 0 and wr + 1 > rpm then return {1, wait, name} end\n"
    "    if tpm > 0 and wt + ptok > tpm then return {2, wait, name} end\n"
    "  end\n"
    "  if conc > 0 then\n"
    "    ifk = 'tg:if:' .. name\n"
    "    redis.call('ZREMRANGEBYSCORE', ifk, '-inf', nows)\n"
    "    if redis.call('ZCARD', ifk) + 1 > conc then return {3, 1, name} end\n"
    "  end\n"
    "  rl[s] = {cur, ifk}\n"
    "end\n"
    "local nb = tonumber(ARGV[i]); i = i + 1\n"
    "local bs = {}\n"
    "for b = 1, nb do\n"
    "  local bk = ARGV[i]; local hard = tonumber(ARGV[i+1]); local soft = tonumber(ARGV[i+2])\n"
    "  local hold = tonumber(ARGV[i+3]); local ledger = ARGV[i+4]; local pttl = "
    "tonumber(ARGV[i+5])\n"
    "  local holds = ARGV[i+3]; i = i + 6\n"
    "  local sk = 'tg:' .. bk .. ':spent'; local hk = 'tg:' .. bk .. ':held'\n"
    "  local ek = 'tg:' .. bk .. ':exp'\n"
    "  local v = redis.call('MGET', sk, hk)\n"
    "  local spent = v[1]\n"
    "  if not spent then\n"
    "    if tonumber(ledger) < 0 then return {5, 1, bk} end\n"
    "    if pttl > 0 then redis.call('SET', sk, ledger, 'EX', pttl) else redis.call('SET', sk, "
    "ledger) end\n"
    "    spent = ledger\n"
    "  end\n"
    "  spent = tonumber(spent)\n"
    "  local held = tonumber(v[2] or '0')\n"
    "  local old = redis.call('ZRANGEBYSCORE', ek, '-inf', nows, 'LIMIT', '0', '100')\n"
    "  if #old > 0 then\n"
    "    local gone = 0\n"
    "    for _, m in ipairs(old) do gone = gone + tonumber(string.match(m, ':(%d+)$') or '0') end\n"
    "    redis.call('ZREM', ek, unpack(old))\n"
    "    held = tonumber(redis.call('DECRBY', hk, gone))\n"
    "  end\n"
    "  if held < 0 then held = 0 end\n"
    "  if spent + held + hold > hard then return {4, 0, bk, spent, held} end\n"
    "  bs[b] = {bk, hk, ek, spent, held, hold, holds, soft, pttl}\n"
    "end\n"
    "local out = {0, 0, ''}\n"
    "for s = 1, ns do\n"
    "  local r = rl[s]\n"
    "  if r[1] then\n"
    "    if redis.call('HINCRBY', r[1], 'r', '1') == 1 then redis.call('PEXPIRE', r[1], '130000') end\n"
    "    if ptok > 0 then redis.call('HINCRBY', r[1], 't', ptoks) end\n"
    "  end\n"
    "  if r[2] then\n"
    "    redis.call('ZADD', r[2], exps, rid)\n"
    "  end\n"
    "end\n"
    "for b = 1, nb do\n"
    "  local x = bs[b]\n"
    "  redis.call('ZADD', x[3], exps, rid .. ':' .. x[7])\n"
    "  if tonumber(redis.call('INCRBY', x[2], x[7])) == x[6] and x[9] > 0 then\n"
    "    local keep = math.floor(ttl / 1000) + 60\n"
    "    if x[9] > keep then keep = x[9] end\n"
    "    redis.call('EXPIRE', x[2], keep); redis.call('EXPIRE', x[3], keep)\n"
    "  end\n"
    "  local over = 0; local crossed = 0\n"
    "  if x[8] > 0 and x[4] + x[5] + x[6] >= x[8] then\n"
    "    over = 1\n"
    "    local ak = 'tg:' .. x[1] .. ':alert'\n"
    "    local ok\n"
    "    if x[9] > 0 then ok = redis.call('SET', ak, rid, 'NX', 'EX', x[9])\n"
    "    else ok = redis.call('SET', ak, rid, 'NX') end\n"
    "    if ok then crossed = 1 end\n"
    "  end\n"
    "  table.insert(out, over); table.insert(out, crossed)\n"
    "  table.insert(out, x[4]); table.insert(out, x[5] + x[6])\n"
    "end\n"
    "return out\n"
    "end\n"
    "local function settle(o)\n"
    "local rid = ARGV[o+2]; local ctoks = ARGV[o+3]; local ctok = tonumber(ctoks)\n"
    "local mcur = ARGV[o+4]; local ns = tonumber(ARGV[o+5]); local i = o + 6\n"
    "for s = 1, ns do\n"
    "  local name = ARGV[i]; local flags = tonumber(ARGV[i+1]); i = i + 2\n"
    "  if flags % 2 == 1 then redis.call('ZREM', 'tg:if:' .. name, rid) end\n"
    "  if flags >= 2 and ctok > 0 then\n"
    "    local cur = 'tg:rl:' .. name .. ':' .. mcur\n"
    "    if tonumber(redis.call('HINCRBY', cur, 't', ctoks)) == ctok then redis.call('PEXPIRE', "
    "cur, '130000') end\n"
    "  end\n"
    "end\n"
    "local nb = tonumber(ARGV[i]); i = i + 1\n"
    "for b = 1, nb do\n"
    "  local bk = ARGV[i]; local charge = ARGV[i+1]; local hold = ARGV[i+2]; i = i + 3\n"
    "  if redis.call('ZREM', 'tg:' .. bk .. ':exp', rid .. ':' .. hold) == 1 then\n"
    "    redis.call('DECRBY', 'tg:' .. bk .. ':held', hold)\n"
    "  end\n"
    "  local sk = 'tg:' .. bk .. ':spent'\n"
    "  if tonumber(charge) > 0 and redis.call('EXISTS', sk) == 1 then redis.call('INCRBY', sk, "
    "charge) end\n"
    "end\n"
    "return 1\n"
    "end\n"
    "local n = tonumber(ARGV[1]); local i = 2; local res = {}\n"
    "for k = 1, n do\n"
    "  local argc = tonumber(ARGV[i+1])\n"
    "  if ARGV[i] == 'a' then res[k] = admit(i + 1) else res[k] = settle(i + 1) end\n"
    "  i = i + 2 + argc\n"
    "end\n"
    "return res\n";

/* STATUS: now_ms, n_budgets, bkey * n_budgets -> {spent (-1 = lost), held} * n.
 * Read only: holds past their expiry are not counted (nor removed). */
static const char status_lua[] =
    "local now = tonumber(ARGV[1]); local nb = tonumber(ARGV[2]); local out = {}\n"
    "for b = 1, nb do\n"
    "  local bk = ARGV[2 + b]\n"
    "  local v = redis.call('MGET', 'tg:' .. bk .. ':spent', 'tg:' .. bk .. ':held')\n"
    "  local held = tonumber(v[2] or '0')\n"
    "  for _, m in ipairs(redis.call('ZRANGEBYSCORE', 'tg:' .. bk .. ':exp', '-inf', now)) do\n"
    "    held = held - tonumber(string.match(m, ':(%d+)$') or '0')\n"
    "  end\n"
    "  if held < 0 then held = 0 end\n"
    "  table.insert(out, tonumber(v[1] or '-1')); table.insert(out, held)\n"
    "end\n"
    "return out\n";

const char *const gw_govern_lua[GW_LUA_COUNT] = {batch_lua, status_lua};
