// The response cache when Redis goes away (runs alone: it stops and restarts
// the shared Redis): under a steady load of cacheable requests, Redis stopped
// mid-load costs no failed request (lookups and stores are bypassed within
// response_cache_timeout_ms and the requests go to the provider at normal
// cost); the bypasses are counted; once Redis is back the cache serves again.
// A Redis that accepts but never answers (SIGSTOP) costs a request at most
// the timeout, then it goes to the provider.
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
const ns = 'rcr' + randomBytes(4).toString('hex');
const sim = await h.startSim('--completion-tokens', '16');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }],
  models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']] },
  gateway: `redis = ${process.env.TG_REDIS_URL}\nresponse_cache = on\nresponse_cache_timeout_ms = 100\n` +
    `redis_namespace = ${ns}\n`,
}));
const key = h.createKey(db, 'omega', '--response-cache', 'on');
const services = (cmd) => execFileSync(`${process.env.TG_SOURCE_ROOT}/scripts/services`, [cmd, process.env.TG_SERVICES_DIR]);
const body = (i) => h.chatBody({ model: 'deepseek-chat', temperature: 0, max_tokens: 16,
  messages: [{ role: 'user', content: `repeatable question ${i % 5}` }], stream: i % 2 === 1 });
const metric = async (event) => {
  const m = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  return Number(m.match(new RegExp(`tollgate_response_cache_events_total\\{event="${event}"\\} (\\d+)`))[1]);
};

test('Redis stopped mid-load: zero failed requests, bypasses counted, the cache serves again after', async () => {
  const results = [];
  let stop = false;
  let i = 0;
  // 4 clients in a loop until told to stop
  const worker = async () => {
    while (!stop) {
      const n = i++;
      const r = await h.post(gw, '/v1/chat/completions', key, body(n)).catch((e) => ({ status: 0, text: String(e) }));
      results.push({ n, status: r.status, cache: r.headers?.get('x-tollgate-cache'), text: r.text });
    }
  };
  const workers = [worker(), worker(), worker(), worker()];
  await h.waitFor('some hits', async () => results.filter((r) => r.cache === 'hit').length >= 10, 10000);
  const hitsBefore = await metric('hit');
  assert.ok(hitsBefore >= 10);
  services('redis-stop');
  let restarted = false;
  try {
    const during = results.length;
    await h.waitFor('requests served while Redis is down', async () => results.length >= during + 40, 15000);
    assert.ok(await metric('bypass') > 0, 'bypasses counted');
    assert.ok(results.slice(during + 5).some((r) => r.cache === 'bypass'));
  } finally {
    services('redis-start');
    restarted = true;
  }
  assert.ok(restarted);
  const back = results.length;
  await h.waitFor('hits again after Redis is back', async () =>
    results.slice(back).filter((r) => r.cache === 'hit').length >= 5, 15000);
  stop = true;
  await Promise.all(workers);
  const failed = results.filter((r) => r.status !== 200);
  assert.deepEqual(failed.map((r) => `${r.status} ${r.text.slice(0, 200)}`), [], 'no failed request');
  // every request has exactly one usage row, hits included
  const ids = results.length;
  await h.waitForRows(db, ids, 'true', 20000);
  await h.sleep(300); // no row beyond one per request arrives late
  const [[rows, distinct, hits]] = h.psql(db, `select count(*), count(distinct request_id), count(*) filter (where response_cache_hit) from usage_events`);
  assert.equal(Number(rows), ids);
  assert.equal(Number(distinct), ids);
  assert.ok(Number(hits) >= 15);
  const stats = await sim.stats();
  assert.equal(stats.requests.by_endpoint.chat_completions, ids - Number(hits), 'each miss or bypass went to the provider once');
});

test('a Redis that never answers (SIGSTOP): bypassed after response_cache_timeout_ms, served by the provider', async () => {
  const b = h.chatBody({ model: 'deepseek-chat', temperature: 0, max_tokens: 16,
    messages: [{ role: 'user', content: 'a question while Redis is frozen' }] });
  await h.post(gw, '/v1/chat/completions', key, b); // warm: stored
  await h.waitFor('hit', async () => (await h.post(gw, '/v1/chat/completions', key, b)).headers.get('x-tollgate-cache') === 'hit', 5000, 50);
  const pid = Number(readFileSync(`${process.env.TG_SERVICES_DIR}/redis/redis.pid`, 'utf8'));
  const n0 = (await sim.stats()).requests.by_endpoint.chat_completions;
  process.kill(pid, 'SIGSTOP');
  let resumed = false;
  try {
    const t0 = Date.now();
    const r = await h.post(gw, '/v1/chat/completions', key, b);
    const took = Date.now() - t0;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-tollgate-cache'), 'bypass');
    assert.ok(took >= 90 && took < 2000, `answered in ${took} ms (timeout 100 ms)`);
    assert.equal((await sim.stats()).requests.by_endpoint.chat_completions, n0 + 1, 'the provider answered it');
    // while the connection is being remade, requests bypass at once
    const t1 = Date.now();
    const r2 = await h.post(gw, '/v1/chat/completions', key, b);
    assert.equal(r2.status, 200);
    assert.ok(Date.now() - t1 < 2000);
    process.kill(pid, 'SIGCONT');
    resumed = true;
  } finally {
    if (!resumed) process.kill(pid, 'SIGCONT');
  }
  await h.waitFor('hits again after SIGCONT', async () =>
    (await h.post(gw, '/v1/chat/completions', key, b)).headers.get('x-tollgate-cache') === 'hit', 10000, 100);
});
