// The prefix index end to end (docs/cache.md), against the real Redis and
// simulators that tokenize exactly like DeepSeek and report DeepSeek-style
// cache hits (64-token blocks from token 0, per API key):
// a conversation growing turn by turn keeps going to the provider holding
// its prefix, and each row's predicted hit tokens equal the reported ones;
// at different prices the expected cost with the predicted hits decides;
// two teams with the same prompt never share a prediction; a prompt under 64
// tokens is predicted 0 without a lookup; a provider that reports no cache
// hits is billed the prediction only where the admin opted in, and
// `tollgatectl usage verify` agrees with those rows; the metrics count it all.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const tokDir = `${process.env.TG_SOURCE_ROOT}/data/tokenizers/deepseek-v3`;
const redisUrl = process.env.TG_REDIS_URL;
if (!redisUrl) throw new Error('TG_REDIS_URL is not set: run the suite through scripts/test');
const redis = (...args) => execFileSync('redis-cli', ['-u', redisUrl, ...args], { encoding: 'utf8' }).trim();

const db = h.createDatabase();
const ns = 'pfx' + randomBytes(4).toString('hex');
const from = '2020-01-01T00:00:00Z';
for (const [p, hit, miss, out] of [['pa', '0.028', '0.28', '0.42'], ['pb', '0.028', '0.28', '0.42'],
  ['pc', '0.028', '0.28', '0.42'], ['pd', '0.028', '0.28', '0.42'],
  ['pe', '0.07', '0.70', '1.05'], ['pf', '0.028', '0.28', '0.42'], ['pg', '0.005', '0.05', '0.42']])
  h.ctl(db, 'price', 'add', '--provider', p, '--model', 'deepseek-chat', '--currency', 'USD', '--hit', hit,
    '--miss', miss, '--output', out, '--from', from);
// Simulators that must count exactly like the gateway load the tokenizer
// (seconds under ASan on a busy machine): they start one at a time, within
// the harness's start timeout; the others keep the 4-byte rule.
const sim = (name, ...extra) => h.startSim('--name', name, '--completion-tokens', '24', ...extra);
const exact = (name, ...extra) => sim(name, '--tokenizer', tokDir, ...extra);
const simA = await exact('a');
const simB = await exact('b');
const simE = await exact('e');
const [simC, simD, simF, simG] = await Promise.all([sim('c', '--report-cache', 'off'),
  sim('d', '--report-cache', 'off'), sim('f'), sim('g')]);
const conf = h.gatewayConfig({
  conninfo: db,
  gateway: `route_policy = cheapest\nredis = ${redisUrl}\nredis_namespace = ${ns}\nprefix_index = on\n` +
    'prefix_timeout_ms = 1000\n',
  providers: [
    { name: 'pa', url: simA.url, kind: 'deepseek', extra: 'cache_ttl_s = 3600\n' },
    { name: 'pb', url: simB.url, kind: 'deepseek' },
    { name: 'pc', url: simC.url, extra: 'bill_predicted_cache = on\ncache_ttl_s = 600\n' },
    { name: 'pd', url: simD.url },
    // different prices: pe is fast and 2.5x dearer, pf cheap, pg very cheap on input
    { name: 'pe', url: simE.url, kind: 'deepseek', extra: 'expect_ttft_ms = 5\n' },
    { name: 'pf', url: simF.url, kind: 'deepseek', extra: 'expect_ttft_ms = 500\n' },
    { name: 'pg', url: simG.url, kind: 'deepseek', extra: 'expect_ttft_ms = 500\n' },
  ],
  models: {
    chat: [['pa', 'deepseek-chat'], ['pb', 'deepseek-chat']],
    billed: [['pc', 'deepseek-chat']],
    unbilled: [['pd', 'deepseek-chat']],
    estimated: [['pa', 'deepseek-chat']],
    priced: [['pe', 'deepseek-chat'], ['pf', 'deepseek-chat']],
    priced2: [['pe', 'deepseek-chat'], ['pg', 'deepseek-chat']],
  },
}).replace(/\[model (chat|billed|unbilled|priced|priced2)\]\n/g, (m) => `${m}tokenizer = ${tokDir}\n`);
const gw = await h.startGateway(conf);
const alpha = h.createKey(db, 'alpha');
const beta = h.createKey(db, 'beta');
const teamId = (t) => Number(h.psql(db, `select id from teams where name = '${t}'`)[0][0]);

// A long system prompt (about 1,700 tokens), unique to this run.
const words = ['ledger', 'quorum', 'basalt', 'meridian', 'lantern', 'cobalt', 'harbor', 'tundra', 'vector', 'saffron'];
const longText = (seed, n) => Array.from({ length: n }, (_, i) => `${words[(i * 7 + seed) % 10]}${(i * 31 + seed) % 97}`).join(' ');
const nonce = randomBytes(6).toString('hex');
const system = `Run ${nonce}. You are a careful assistant for the finance team. ${longText(3, 800)}`;

// The streamed answer's text (the charge comment line carries no data).
const sseContent = (text) => text.split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
  .map((l) => JSON.parse(l.slice(6))).filter((e) => e.choices?.length)
  .map((e) => e.choices[0].delta.content || '').join('');
const rowOf = async (r) => (await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`))[0];
const send = (key, model, messages, extra = {}, headers = {}) =>
  h.post(gw, '/v1/chat/completions', key, { model, messages, max_tokens: 24, ...extra }, headers);
const metric = async (name) => {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)`, 'm'));
  assert.ok(m, `metric ${name} missing`);
  return Number(m[1]);
};

test('a growing conversation stays with the provider holding its prefix; predicted = reported each turn', async () => {
  const messages = [{ role: 'system', content: system }];
  let first = null;
  for (let turn = 1; turn <= 6; turn++) {
    messages.push({ role: 'user', content: `Turn ${turn}: ${longText(turn, 40 + turn * 13)}` });
    const r = await send(alpha, 'chat', messages, { stream: turn % 2 === 0 });
    assert.equal(r.status, 200, r.text);
    const provider = r.headers.get('x-tollgate-provider');
    const content = turn % 2 === 0
      ? sseContent(r.text)
      : r.json.choices[0].message.content;
    messages.push({ role: 'assistant', content });
    const row = await rowOf(r);
    assert.equal(row.provider, provider);
    assert.equal(row.cache_hit_predicted_tokens, row.cache_hit_tokens,
      `turn ${turn}: predicted ${row.cache_hit_predicted_tokens}, reported ${row.cache_hit_tokens}`);
    const explain = row.route_explain;
    assert.ok(explain.pfx, `turn ${turn}: the explanation shows the prediction: ${JSON.stringify(explain)}`);
    if (turn === 1) {
      first = provider;
      assert.equal(row.cache_hit_tokens, 0);
      assert.deepEqual(explain.pfx, { pa: 0, pb: 0 });
    } else {
      assert.equal(provider, first, `turn ${turn} left the provider holding its prefix`);
      assert.ok(row.cache_hit_tokens > 1500, `turn ${turn}: only ${row.cache_hit_tokens} hit tokens`);
      assert.equal(row.cache_hit_tokens % 64, 0);
      assert.equal(explain.pfx[first], row.cache_hit_predicted_tokens);
      assert.equal(explain.pfx[first === 'pa' ? 'pb' : 'pa'], 0);
      assert.equal(explain.chosen, first);
    }
  }
  // the blocks live under this team's keys, with the provider's TTL
  const keys = redis('--scan', '--pattern', `${ns}:pfx:${teamId('alpha')}:*`).split('\n').filter(Boolean);
  assert.ok(keys.length >= 30, `${keys.length} keys`);
  const ttl = Number(redis('TTL', keys[0]));
  assert.ok(ttl > 0 && ttl <= (first === 'pa' ? 3600 : 21600), `ttl ${ttl}`);
  assert.ok(await metric('tollgate_prefix_lookups_total{outcome="hit"}') >= 5);
  const compared = await metric('tollgate_prefix_compared_total');
  assert.ok(compared >= 6);
  assert.equal(await metric('tollgate_prefix_exact_total'), compared);
  assert.equal(await metric('tollgate_prefix_predicted_tokens_total'), await metric('tollgate_prefix_reported_tokens_total'));
});

test('two teams with the same prompt never share: the second team predicts 0 and routes as if new', async () => {
  const prompt = [{ role: 'system', content: `Team test ${nonce}. ${longText(11, 600)}` }, { role: 'user', content: 'Summarize.' }];
  const a1 = await send(alpha, 'chat', prompt);
  const a2 = await send(alpha, 'chat', prompt);
  assert.equal(a1.status, 200);
  assert.equal(a2.status, 200);
  const rowA2 = await rowOf(a2);
  assert.ok(rowA2.cache_hit_predicted_tokens > 0, 'alpha predicts its own prefix');
  assert.equal(rowA2.cache_hit_predicted_tokens, rowA2.cache_hit_tokens);
  const b1 = await send(beta, 'chat', prompt);
  assert.equal(b1.status, 200);
  const rowB = await rowOf(b1);
  assert.equal(rowB.cache_hit_predicted_tokens, 0, 'beta must not see alpha\'s prefix');
  assert.deepEqual(rowB.route_explain.pfx, { pa: 0, pb: 0 });
  // not influenced: both providers were expected to cost the same for beta
  const costs = rowB.route_explain.c.map((c) => c.cost);
  assert.equal(costs.length, 2);
  assert.equal(costs[0], costs[1], JSON.stringify(rowB.route_explain));
  // ...while for alpha the holder was cheaper
  const costsA = Object.fromEntries(rowA2.route_explain.c.map((c) => [c.p, c.cost]));
  assert.notEqual(costsA.pa, costsA.pb);
  // every key is under one of the two teams' own prefixes
  const all = redis('--scan', '--pattern', `${ns}:pfx:*`).split('\n').filter(Boolean);
  const teams = new Set(all.map((k) => k.split(':')[2]));
  assert.deepEqual([...teams].sort(), [String(teamId('alpha')), String(teamId('beta'))].sort());
});

test('different prices: the expected cost with the predicted hits decides, not the prefix alone', async () => {
  const prompt = [{ role: 'system', content: `Prices ${nonce}. ${longText(7, 700)}` }, { role: 'user', content: 'Go on.' }];
  // the first request asks for speed: the fast, dear host serves it and holds the prefix
  const r1 = await send(alpha, 'priced', prompt, {}, { 'x-tollgate-preference': 'fastest' });
  assert.equal(r1.headers.get('x-tollgate-provider'), 'pe');
  // by cost: the dear host's cached prefix makes it cheaper than the cheap host's misses
  const r2 = await send(alpha, 'priced', prompt);
  assert.equal(r2.status, 200, r2.text);
  const row2 = await rowOf(r2);
  assert.equal(r2.headers.get('x-tollgate-provider'), 'pe', JSON.stringify(row2.route_explain));
  assert.ok(row2.route_explain.pfx.pe > 1000 && row2.route_explain.pfx.pf === 0);
  assert.equal(row2.cache_hit_predicted_tokens, row2.cache_hit_tokens);
  // a host whose misses cost less than the other's hits wins despite the prefix elsewhere
  const r3 = await send(alpha, 'priced2', prompt);
  const row3 = await rowOf(r3);
  assert.equal(r3.headers.get('x-tollgate-provider'), 'pg', JSON.stringify(row3.route_explain));
  assert.ok(row3.route_explain.pfx.pe > 1000, 'the prefix at pe was known and weighed');
  assert.equal(row3.cache_hit_predicted_tokens, 0);
});

test('a prompt under 64 tokens is predicted 0 without asking Redis', async () => {
  const before = await metric('tollgate_prefix_lookups_total{outcome="short"}');
  const r = await send(alpha, 'chat', [{ role: 'user', content: 'Hi!' }]);
  assert.equal(r.status, 200);
  const row = await rowOf(r);
  assert.equal(row.cache_hit_predicted_tokens, 0);
  assert.equal(await metric('tollgate_prefix_lookups_total{outcome="short"}'), before + 1);
});

test('a model without a tokenizer gets no prediction (NULL on the row)', async () => {
  const r = await send(alpha, 'estimated', [{ role: 'system', content: system }, { role: 'user', content: 'x' }]);
  assert.equal(r.status, 200);
  const row = await rowOf(r);
  assert.equal(row.cache_hit_predicted_tokens, null);
  assert.equal(row.route_explain.pfx, undefined);
});

test('bill_predicted_cache: a provider reporting no hits is billed the prediction only when opted in', async () => {
  const prompt = [{ role: 'system', content: `Billing ${nonce}. ${longText(5, 500)}` }, { role: 'user', content: 'Go.' }];
  for (const model of ['billed', 'unbilled']) {
    const r1 = await send(alpha, model, prompt);
    const r2 = await send(alpha, model, prompt);
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.json.usage.prompt_cache_hit_tokens, 0, 'the client sees the usage as reported (no hits)');
    const [row1, row2] = [await rowOf(r1), await rowOf(r2)];
    assert.equal(row1.cache_hit_predicted_tokens, 0);
    assert.ok(row2.cache_hit_predicted_tokens > 0);
    if (model === 'billed') {
      // the prediction, capped at the provider's own prompt count (this simulator
      // counts 4 bytes a token, not like the gateway's tokenizer)
      assert.ok(row2.cache_hit_tokens > 0);
      assert.equal(row2.cache_hit_tokens, Math.min(row2.cache_hit_predicted_tokens, row2.prompt_tokens));
      assert.equal(row2.cache_miss_tokens, row2.prompt_tokens - row2.cache_hit_tokens);
      assert.equal(row2.route_explain.cache_billed, 'predicted');
      assert.equal(BigInt(row2.cost_cache_hit_pico), BigInt(row2.cache_hit_tokens) * 28000n);
      assert.equal(BigInt(row2.cost_cache_miss_pico), BigInt(row2.cache_miss_tokens) * 280000n);
      assert.equal(row2.pricing_flags, 0);
    } else {
      assert.equal(row2.cache_hit_tokens, 0, 'not opted in: billing stays with the (absent) report');
      assert.equal(row2.route_explain.cache_billed, undefined);
    }
  }
  assert.ok(await metric('tollgate_prefix_billed_predicted_total') >= 1);
  const now = Date.now();
  const out = h.ctl(db, 'usage', 'verify', '--from', new Date(now - 3600e3).toISOString(),
    '--to', new Date(now + 3600e3).toISOString());
  assert.match(out, /OK: 0 difference\(s\)/);
});
