// Governance when Redis misbehaves (runs alone: it stops, restarts and
// flushes the shared Redis). A gateway killed with -9 while holding
// reservations: its holds expire and the budget is right afterwards. FLUSHALL
// (and SCRIPT FLUSH): the spend is rebuilt from the ledger before anything
// is admitted. Redis stopped: a fail-closed gateway refuses with 503 and a
// clear message, a fail-open one serves under local limits at the
// configured fraction; both recover when Redis is back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
h.ctl(db, 'price', 'seed');
const ns = 'it' + randomBytes(4).toString('hex');
const sim = await h.startSim('--completion-tokens', '16');
const stall = await h.startSim('--completion-tokens', '16', '--ttft-ms', '30000');
const base = {
  conninfo: db,
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' },
    { name: 'deepseek-slow', url: stall.url, kind: 'deepseek', firstByteMs: 60000, idleMs: 60000 }],
  models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']], stalled: [['deepseek-slow', 'deepseek-chat']] },
};
const gov = (extra) => `redis = ${process.env.TG_REDIS_URL}\ngovernance = on\nredis_namespace = ${ns}\n` +
  `hold_ttl_ms = 3000\nredis_timeout_ms = 300\n${extra || ''}`;
// stalled requests are priced by the 'deepseek-slow' provider's cards: give it the V3.2 ones
h.psql(process.env.TG_PG_ADMIN_CONNINFO.replace(/dbname=\S+/, `dbname=${db.match(/dbname=(\S+)/)[1]}`),
  `insert into price_providers (provider, tier_instant, created_by) values ('deepseek-slow', 'completion', 'test');
   insert into price_cards (provider, model, currency, cache_hit_price, cache_miss_price, output_price, effective_from, created_by)
   values ('deepseek-slow', 'deepseek-chat', 'USD', 28000, 280000, 420000, '2025-01-01', 'test')`);

const gwA = await h.startGateway(h.gatewayConfig({ ...base, gateway: gov('redis_failure = closed\n') }));
const redis = (...args) => execFileSync('redis-cli', ['-u', process.env.TG_REDIS_URL, ...args], { encoding: 'utf8' }).trim();
const services = (cmd) => execFileSync(`${process.env.TG_SOURCE_ROOT}/scripts/services`, [cmd, process.env.TG_SERVICES_DIR]);
const budget = async (gw, key) => {
  const r = await fetch(`${gw.url}/v1/tollgate/budget`, { headers: { Authorization: `Bearer ${key}` } });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return j.budgets[0];
};
const teamWhere = (t) => `team_id = (select id from teams where name = '${t}')`;
const ledgerPico = (t) => BigInt(h.psql(db, `select coalesce(sum(charge_pico), 0) from usage_events where ${teamWhere(t)}`)[0][0]);
const ceilMicro = (p) => (p + 999999n) / 1000000n;

test('kill -9 a gateway holding reservations: the holds expire, the budget is right after', async () => {
  const key = h.createKey(db, 'kappa');
  h.ctl(db, 'budget', 'set', '--team', 'kappa', '--hard', '0.001', '--period', 'month');
  const gwB = await h.startGateway(h.gatewayConfig({ ...base, gateway: gov('redis_failure = closed\n') }));
  await h.sleep(1200);
  const body = h.chatBody({ model: 'stalled', max_tokens: 20 });
  const stalledBefore = (await stall.stats()).requests.by_endpoint.chat_completions;
  const pending = [];
  for (let i = 0; i < 5; i++) pending.push(h.post(gwB, '/v1/chat/completions', key, body).catch(() => null));
  // a request reaches the provider only after its hold is placed: once the
  // stalled simulator has all five, every hold is in Redis
  await h.waitFor('all five requests at the provider', async () =>
    (await stall.stats()).requests.by_endpoint.chat_completions - stalledBefore >= 5, 10000);
  // (read again if the read-out itself is refused: its Redis timeout is
  // 300 ms, which a loaded machine can pass)
  const held = await h.waitFor('the budget read-out', () => budget(gwA, key), 5000, 100);
  assert.ok(Number(held.held_micro) >= 5 * 10, `five holds: ${held.held_micro} micro`);
  gwB.proc.kill('SIGKILL');
  await gwB.exited;
  await Promise.all(pending);
  const right = await h.waitFor('the budget read-out', () => budget(gwA, key), 2000, 100);
  assert.equal(right.held_micro, held.held_micro, 'the dead gateway\'s holds are still counted for now');
  await h.waitFor('holds expired', async () => (await budget(gwA, key)).held_micro === '0', 8000);
  // a request that needs most of the budget fits again
  const r = await h.post(gwA, '/v1/chat/completions', key, h.chatBody({ model: 'deepseek-chat', max_tokens: 20 }));
  assert.equal(r.status, 200, r.text);
  await h.waitForRows(db, 1, teamWhere('kappa'));
  await h.waitFor('spend settled', async () => BigInt((await budget(gwA, key)).spent_micro) === ceilMicro(ledgerPico('kappa')), 5000);
});

test('kill -9 a gateway holding concurrency slots: the slots expire by their score', async () => {
  const key = h.createKey(db, 'lambda');
  h.ctl(db, 'limit', 'set', '--team', 'lambda', '--concurrent', '2');
  const gwB = await h.startGateway(h.gatewayConfig({ ...base, gateway: gov('redis_failure = closed\n') }));
  await h.sleep(1200);
  const pending = [0, 1].map(() => h.post(gwB, '/v1/chat/completions', key,
    h.chatBody({ model: 'stalled', max_tokens: 20 })).catch(() => null));
  const quick = h.chatBody({ model: 'deepseek-chat', max_tokens: 20 });
  await h.waitFor('both slots taken', async () => {
    const r = await h.post(gwA, '/v1/chat/completions', key, quick);
    return r.status === 429 && r.json.error.code === 'rate_limit_exceeded';
  }, 10000, 100);
  const killedAt = Date.now();
  gwB.proc.kill('SIGKILL');
  await gwB.exited;
  await Promise.all(pending);
  // the dead gateway's slots still count until hold_ttl_ms (3 s) has passed
  const r = await h.post(gwA, '/v1/chat/completions', key, quick);
  if (Date.now() - killedAt < 2000) assert.equal(r.status, 429, r.text);
  await h.waitFor('slots expired', async () =>
    (await h.post(gwA, '/v1/chat/completions', key, quick)).status === 200, 8000, 200);
});

test('FLUSHALL and SCRIPT FLUSH: the spend is rebuilt from the ledger before admitting', async () => {
  const key = h.createKey(db, 'lambda');
  h.ctl(db, 'budget', 'set', '--team', 'lambda', '--hard', '5', '--period', 'day', '--zone', 'Asia/Shanghai');
  await h.sleep(1200);
  for (let i = 0; i < 6; i++)
    assert.equal((await h.post(gwA, '/v1/chat/completions', key, h.chatBody({ model: 'deepseek-chat', max_tokens: 30 }))).status, 200);
  await h.waitForRows(db, 6, teamWhere('lambda'));
  const before = await budget(gwA, key);
  assert.ok(Number(before.spent_micro) > 0);
  await h.sleep(1500); // the gateway's ledger figure includes every row
  redis('FLUSHALL');
  redis('SCRIPT', 'FLUSH');
  const lost = await budget(gwA, key);
  assert.equal(lost.spent_from_ledger, true);
  const ledger = ledgerPico('lambda');
  assert.equal(BigInt(lost.spent_micro), ceilMicro(ledger));
  const r = await h.post(gwA, '/v1/chat/completions', key, h.chatBody({ model: 'deepseek-chat', max_tokens: 30 }));
  assert.equal(r.status, 200, r.text); // EVALSHA -> NOSCRIPT -> EVAL, and the rebuild
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  await h.waitFor('rebuilt spend plus the new charge', async () => {
    const b = await budget(gwA, key);
    return !b.spent_from_ledger && BigInt(b.spent_micro) === ceilMicro(ledger) + ceilMicro(BigInt(row.charge_pico));
  }, 5000);
});

test('Redis down: fail closed refuses with 503, fail open serves under local limits; both recover', async () => {
  const key = h.createKey(db, 'mu');
  const free = h.createKey(db, 'nu'); // a team with no limits never needs Redis
  h.ctl(db, 'limit', 'set', '--team', 'mu', '--rpm', '10');
  h.ctl(db, 'budget', 'set', '--team', 'mu', '--hard', '1');
  const gwOpen = await h.startGateway(h.gatewayConfig({ ...base,
    gateway: gov('redis_failure = open\nredis_open_fraction = 0.5\nworkers = 1\n') }));
  await h.sleep(1200);
  const body = h.chatBody({ model: 'deepseek-chat', max_tokens: 5 });
  assert.equal((await h.post(gwOpen, '/v1/chat/completions', key, body)).status, 200);
  services('redis-stop');
  let restarted = false;
  try {
    const closed = await h.post(gwA, '/v1/chat/completions', key, body);
    assert.equal(closed.status, 503);
    assert.equal(closed.json.error.code, 'governance_unavailable');
    assert.match(closed.json.error.message, /configured to refuse/);
    assert.equal((await h.post(gwA, '/v1/chat/completions', free, body)).status, 200);
    // fail open: rpm 10 x 0.5 / 1 worker = 5 a minute locally
    const res = [];
    for (let i = 0; i < 8; i++) res.push(await h.post(gwOpen, '/v1/chat/completions', key, body));
    const ok = res.filter((r) => r.status === 200);
    assert.ok(ok.length >= 4 && ok.length <= 5, `fail-open admitted ${ok.length} (limit 5 per minute; 4 when a minute starts mid-test)`);
    assert.match(ok[0].headers.get('x-tollgate-budget'), /local limits/);
    const denied = res.find((r) => r.status === 429);
    assert.equal(denied.json.error.code, 'rate_limit_exceeded');
    services('redis-start');
    restarted = true;
    await h.waitFor('fail-closed gateway serving again', async () =>
      (await h.post(gwA, '/v1/chat/completions', key, body)).status === 200, 15000, 200);
  } finally {
    if (!restarted) services('redis-start');
  }
  // the outage's charges reached the shared spend once Redis was back
  await h.waitForRows(db, 1, `${teamWhere('mu')} and http_status = 200`);
  await h.sleep(1500);
  const b = await budget(gwA, key);
  // never less than the ledger (rounding up per request, and a rebuild racing
  // the delayed settles, can only count more)
  assert.ok(BigInt(b.spent_micro) >= ceilMicro(ledgerPico('mu')), `spent ${b.spent_micro} vs ledger ${ledgerPico('mu')}`);
});

test('a Redis that accepts but never answers: commands time out (redis_timeout_ms), then recover', async () => {
  const key = h.createKey(db, 'xi');
  h.ctl(db, 'limit', 'set', '--team', 'xi', '--rpm', '1000');
  await h.sleep(1200);
  const body = h.chatBody({ model: 'deepseek-chat', max_tokens: 5 });
  assert.equal((await h.post(gwA, '/v1/chat/completions', key, body)).status, 200);
  const pid = Number(readFileSync(`${process.env.TG_SERVICES_DIR}/redis/redis.pid`, 'utf8'));
  process.kill(pid, 'SIGSTOP');
  let resumed = false;
  try {
    const t0 = Date.now();
    const r = await h.post(gwA, '/v1/chat/completions', key, body);
    const took = Date.now() - t0;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'governance_unavailable');
    assert.ok(took >= 250 && took < 3000, `answered after ${took} ms (timeout 300 ms)`);
    process.kill(pid, 'SIGCONT');
    resumed = true;
    await h.waitFor('serving again after Redis resumed', async () =>
      (await h.post(gwA, '/v1/chat/completions', key, body)).status === 200, 15000, 200);
  } finally {
    if (!resumed) process.kill(pid, 'SIGCONT');
  }
});
