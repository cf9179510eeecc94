// The prefix index when Redis goes away (runs alone: it stops and restarts
// the shared Redis). Under a steady load of multi-turn requests Redis is
// stopped and started again: no request fails, every request has its row
// (without a prediction while Redis is down), the metrics count the
// bypasses, and once Redis is back predictions resume.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const tokDir = `${process.env.TG_SOURCE_ROOT}/data/tokenizers/deepseek-v3`;
const redisUrl = process.env.TG_REDIS_URL;
if (!redisUrl || !process.env.TG_SERVICES_DIR)
  throw new Error('TG_REDIS_URL / TG_SERVICES_DIR not set: run the suite through scripts/test');
const services = (cmd) => execFileSync(`${process.env.TG_SOURCE_ROOT}/scripts/services`, [cmd, process.env.TG_SERVICES_DIR]);

const db = h.createDatabase();
for (const p of ['pa', 'pb'])
  h.ctl(db, 'price', 'add', '--provider', p, '--model', 'deepseek-chat', '--currency', 'USD', '--hit', '0.028',
    '--miss', '0.28', '--output', '0.42', '--from', '2020-01-01T00:00:00Z');
// one at a time: loading the tokenizer takes seconds under ASan on a busy machine
const sims = [];
for (const n of ['a', 'b']) sims.push(await h.startSim('--name', n, '--tokenizer', tokDir, '--completion-tokens', '8'));
const ns = 'pfxr' + randomBytes(4).toString('hex');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  gateway: `route_policy = cheapest\nredis = ${redisUrl}\nredis_namespace = ${ns}\nprefix_index = on\n` +
    'prefix_timeout_ms = 300\n',
  providers: [{ name: 'pa', url: sims[0].url, kind: 'deepseek' }, { name: 'pb', url: sims[1].url, kind: 'deepseek' }],
  models: { chat: [['pa', 'deepseek-chat'], ['pb', 'deepseek-chat']] },
}).replace('[model chat]\n', `[model chat]\ntokenizer = ${tokDir}\n`));
const key = h.createKey(db, 'load');
const nonce = randomBytes(6).toString('hex');
const system = `Load ${nonce}. ` + Array.from({ length: 300 }, (_, i) => `item${i} costs ${i * 7 % 13}`).join('; ');
const metrics = async () => (await fetch(`${gw.adminUrl}/metrics`)).text();
const count = (text, name) => Number((text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)`, 'm')) || [0, 0])[1]);

test('Redis stopped mid-load: no failed request, rows without prediction, bypasses counted, then predictions resume', async () => {
  const results = [];
  let stop = false;
  const worker = async (w) => {
    const messages = [{ role: 'system', content: system }];
    for (let turn = 0; !stop; turn++) {
      messages.push({ role: 'user', content: `worker ${w} turn ${turn}` });
      const t0 = Date.now();
      const r = await h.post(gw, '/v1/chat/completions', key, { model: 'chat', messages, max_tokens: 8 });
      results.push({ status: r.status, id: r.headers.get('x-request-id'), at: t0, text: r.text });
      if (r.status === 200) messages.push({ role: 'assistant', content: r.json.choices[0].message.content });
      if (messages.length > 12) messages.splice(1, 2); // keep prompts bounded
    }
  };
  const load = [0, 1, 2].map(worker);
  let restarted = false;
  let downAt = 0, upAt = 0;
  try {
    await h.sleep(1000);
    downAt = Date.now();
    services('redis-stop');
    await h.sleep(1500);
    services('redis-start');
    upAt = Date.now();
    restarted = true;
    await h.sleep(1500);
  } finally {
    if (!restarted) services('redis-start');
    stop = true;
    await Promise.all(load);
  }
  const failed = results.filter((r) => r.status !== 200);
  assert.deepEqual(failed.map((r) => `${r.status} ${r.text.slice(0, 200)}`), [], 'failed requests');
  assert.ok(results.length >= 20, `only ${results.length} requests`);
  await h.waitFor(`${results.length} rows`, async () =>
    Number(h.psql(db, 'select count(*) from usage_events')[0][0]) >= results.length);
  const rows = h.psql(db, 'select request_id, coalesce(cache_hit_predicted_tokens::text, \'null\') from usage_events')
    .map(([id, p]) => ({ request_id: id, cache_hit_predicted_tokens: p === 'null' ? null : Number(p) }));
  assert.equal(rows.length, results.length, 'one row per request');
  const byId = new Map(rows.map((r) => [r.request_id, r]));
  assert.ok(results.every((r) => byId.has(r.id)), 'every answered request has its row');
  const during = results.filter((r) => r.at > downAt + 100 && r.at < upAt - 100).map((r) => byId.get(r.id));
  assert.ok(during.length > 0, 'requests were sent while Redis was down');
  assert.ok(during.every((r) => r.cache_hit_predicted_tokens === null),
    `rows while Redis was down carry no prediction: ${during.map((r) => r.cache_hit_predicted_tokens)}`);
  const before = results.filter((r) => r.at < downAt - 50).map((r) => byId.get(r.id));
  assert.ok(before.some((r) => r.cache_hit_predicted_tokens > 0), 'predictions before the outage');
  const m = await metrics();
  const bypass = count(m, 'tollgate_prefix_lookups_total{outcome="bypass_down"}') +
    count(m, 'tollgate_prefix_lookups_total{outcome="bypass_timeout"}') +
    count(m, 'tollgate_prefix_lookups_total{outcome="bypass_error"}');
  assert.ok(bypass >= during.length, `bypasses ${bypass} < requests during the outage ${during.length}`);
  assert.ok(count(m, 'tollgate_prefix_records_total{outcome="skipped"}') > 0);
  // Redis came back empty (no persistence): a repeated prompt is predicted again
  const prompt = [{ role: 'system', content: system }, { role: 'user', content: `after ${nonce}` }];
  await h.waitFor('predictions resume', async () => {
    const r1 = await h.post(gw, '/v1/chat/completions', key, { model: 'chat', messages: prompt, max_tokens: 8 });
    const r2 = await h.post(gw, '/v1/chat/completions', key, { model: 'chat', messages: prompt, max_tokens: 8 });
    const [row] = await h.waitForRows(db, 1, `request_id = '${r2.headers.get('x-request-id')}'`);
    return row.cache_hit_predicted_tokens > 0 && row.cache_hit_predicted_tokens === row.cache_hit_tokens && r1.status === 200;
  }, 15000, 200);
});
